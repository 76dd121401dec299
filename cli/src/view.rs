//! What the commands show, as data: built from what was read (both clusters'
//! `FailoverGroup`s and the record) by pure functions, rendered by [`crate::render`] or
//! serialized as JSON/YAML as it is.

use failover_engine::spec::{AutoFailoverStatus, FailoverGroup, FailoverProgress, Group};
use failover_engine::trail::{Ended, Mark, MarkEvent, kind_words, outcome_words};
use failover_model::{Cluster, Record, Variant};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// What was read of one cluster.
#[derive(Clone, Debug)]
pub struct ClusterRead {
    /// The cluster's name.
    pub name: String,
    /// Its `FailoverGroup` (`None`: there is none), or why it could not be read.
    pub read: Result<Option<FailoverGroup>, String>,
}

/// What was read of the record: the record and its trail (`None`: there is no record),
/// or why it could not be read.
pub type RecordRead = Result<Option<(Record, Vec<Mark>)>, String>;

/// One group across both clusters and the record.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// The namespace.
    pub namespace: String,
    /// The group.
    pub name: String,
    /// Where the record's values come from: the table, or (when it cannot be read) a
    /// cluster operator's last view of it.
    pub record_source: String,
    /// Why the record could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    /// The active cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The fencing token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// The lock's holder, while a phase of a failover runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<String>,
    /// Seconds left of the lock, by this machine's clock against the holder's stamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_left_seconds: Option<f64>,
    /// A request waiting to start, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_request: Option<String>,
    /// The failover in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverView>,
    /// Each cluster.
    pub clusters: Vec<ClusterView>,
    /// What needs attention: unreachable clusters, identity and spec drift, each
    /// operator's problems.
    pub problems: Vec<String>,
    /// The last ended failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<EndedView>,
}

/// The failover in flight.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverView {
    /// Where it stands, as the operators' status says it (id, mode, source, target,
    /// stage, step, `done/total`, per-kind counts from the operator running the step,
    /// needs-operator), computed here from the record when it was read.
    #[serde(flatten)]
    pub position: FailoverProgress,
    /// The cluster whose operator reported the per-kind counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds_from: Option<String>,
    /// A person's action asked for and not carried out yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    /// Who asked for it (the cluster whose `Failover` object started it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked_in: Option<String>,
    /// When it started (the lock taken), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Seconds since it started, by this machine's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_seconds: Option<f64>,
    /// The stages so far, from the record's trail.
    pub stages: Vec<StageView>,
}

/// One stage of a failover.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageView {
    /// The stage.
    pub stage: String,
    /// The cluster that ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How long it took (or has taken so far, while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// It has ended.
    pub done: bool,
}

/// One cluster of a group.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Its name.
    pub name: String,
    /// Its API server answered.
    pub reachable: bool,
    /// Why it did not, or why its group is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds since its operator's last heartbeat in the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_seconds: Option<f64>,
    /// For the active cluster: seconds of lease left (negative once it ran out: it has
    /// fenced itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_left_seconds: Option<f64>,
    /// Its operator's last health report: workloads ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workloads_ready: Option<bool>,
    /// Its operator's last health report: traffic open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_open: Option<bool>,
    /// Its operator's `Ready` condition (`True`/`False`), if it published one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Its auto-failover watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_failover: Option<AutoFailoverStatus>,
}

/// One ended failover.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndedView {
    /// Its id (hex).
    pub id: String,
    /// `consistency`, `uptime`, `forced` (none for a request that never started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// Who asked: the cluster whose `Failover` object it was, and the object when it was
    /// found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    /// When it started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// From start to end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Its stages.
    pub stages: Vec<StageView>,
    /// What else happened: a stage flagged needs-operator, a person's actions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// The trail's marks people look for besides the stages: needs-operator flags (with
/// their stage) and a person's actions.
pub fn events(e: &Ended) -> Vec<String> {
    let plan = e
        .kind
        .map(|k| failover_model::Plan::with_hooks(k, Variant::Correct, e.hooks));
    e.trail
        .iter()
        .filter_map(|m| match m.event {
            MarkEvent::Stuck => {
                let stage = plan
                    .zip(m.done)
                    .and_then(|(p, d)| p.get(d))
                    .map(|s| format!(" at {}", s.stage))
                    .unwrap_or_default();
                Some(format!("needs-operator{stage}"))
            }
            MarkEvent::Asked(a) => Some(format!("{} asked", a.name())),
            _ => None,
        })
        .collect()
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Seconds between two millisecond stamps (negative if `to` is earlier).
fn seconds(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1000.0
}

/// The group's slot names and parsed spec, from the first cluster whose copy parses.
fn parsed(ns: &str, name: &str, clusters: &[ClusterRead]) -> Option<Group> {
    clusters.iter().find_map(|c| {
        let fg = c.read.as_ref().ok()?.as_ref()?;
        let first = fg.spec.clusters.first()?;
        Group::parse(ns, name, &fg.spec, first).ok()
    })
}

/// The slot names: the parsed spec's, else a published status's, else `A`/`B`.
fn slot_names(group: Option<&Group>, clusters: &[ClusterRead]) -> [String; 2] {
    if let Some(g) = group {
        return g.clusters.clone();
    }
    for c in clusters {
        if let Ok(Some(fg)) = &c.read
            && let Some(s) = &fg.status
            && s.clusters.len() == 2
        {
            return [s.clusters[0].name.clone(), s.clusters[1].name.clone()];
        }
    }
    ["A".into(), "B".into()]
}

/// The stages of a trail, for a view.
fn stage_views(
    spans: &[failover_engine::trail::StageSpan],
    names: &[String; 2],
    now: u64,
) -> Vec<StageView> {
    spans
        .iter()
        .map(|s| StageView {
            stage: s.stage.to_string(),
            by: s.by.map(|c| names[c.index()].clone()),
            seconds: Some(seconds(s.from, s.to.unwrap_or(now)).max(0.0)),
            done: s.to.is_some(),
        })
        .collect()
}

/// The view of an ended failover; `asked_by` names the `Failover` object when it was
/// found in a cluster.
pub fn ended_view(e: &Ended, names: &[String; 2], asked_by: Option<String>) -> EndedView {
    let request = e.request();
    let started = e.started_at();
    EndedView {
        id: format!("{:016x}", e.id),
        mode: e
            .kind
            .map(kind_words)
            .or_else(|| request.and_then(|r| r.kind).map(kind_words)),
        outcome: outcome_words(e.outcome),
        asked_by: asked_by.or_else(|| request.and_then(|r| r.by).map(|c| names[c.index()].clone())),
        started: started.map(rfc3339),
        ended: (e.ended_at > 0).then(|| rfc3339(e.ended_at)),
        seconds: started.map(|s| seconds(s, e.ended_at).max(0.0)),
        stages: stage_views(&e.stages(), names, e.ended_at),
        events: events(e),
    }
}

/// One group's view from what was read at `now` (ms since the epoch, this machine's
/// clock).
pub fn group_view(
    namespace: &str,
    name: &str,
    clusters: &[ClusterRead],
    record: &RecordRead,
    last: Option<&Ended>,
    table_words: &str,
    now: u64,
) -> GroupView {
    let group = parsed(namespace, name, clusters);
    let names = slot_names(group.as_ref(), clusters);
    let mut problems = Vec::new();
    let mut views: Vec<ClusterView> = Vec::new();
    for c in clusters {
        let mut view = ClusterView {
            name: c.name.clone(),
            reachable: c.read.is_ok(),
            error: None,
            heartbeat_age_seconds: None,
            lease_left_seconds: None,
            workloads_ready: None,
            traffic_open: None,
            ready: None,
            auto_failover: None,
        };
        match &c.read {
            Err(e) => {
                view.error = Some(e.clone());
                problems.push(format!("{}: unreachable: {e}", c.name));
            }
            Ok(None) => {
                let e = format!("no FailoverGroup {namespace}/{name} in this cluster");
                problems.push(format!("{}: {e}", c.name));
                view.error = Some(e);
            }
            Ok(Some(fg)) => {
                let status = fg.status.clone().unwrap_or_default();
                if let Some(invalid) = &status.invalid {
                    problems.push(format!("{}: the spec is invalid: {invalid}", c.name));
                }
                for p in &status.problems {
                    problems.push(format!("{}: {p}", c.name));
                }
                if fg.status.is_none() {
                    problems.push(format!(
                        "{}: no status: is the operator running in this cluster?",
                        c.name
                    ));
                } else if status.observed_generation.is_some()
                    && status.observed_generation < fg.metadata.generation
                {
                    problems.push(format!(
                        "{}: the operator has not seen the latest spec (generation {:?}, \
                         observed {:?})",
                        c.name, fg.metadata.generation, status.observed_generation
                    ));
                }
                view.ready = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone());
                view.auto_failover = status.auto_failover.clone();
                // Without the record, the operator's own view of it.
                if let Some(h) = status.clusters.iter().find(|h| h.name == c.name) {
                    view.heartbeat_age_seconds = h.heartbeat_age_seconds.map(|s| s as f64);
                    view.lease_left_seconds = h.lease_left_seconds.map(|s| s as f64);
                }
            }
        }
        views.push(view);
    }
    // Specs that differ between the clusters.
    let specs: Vec<(&str, &FailoverGroup)> = clusters
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.read.as_ref().ok()?.as_ref()?)))
        .collect();
    if let [(a, fa), (b, fb)] = specs.as_slice()
        && fa.spec != fb.spec
    {
        problems.push(format!(
            "the FailoverGroup specs in {a} and {b} differ: no failover starts until they \
             agree (apply the same spec to both)"
        ));
    }
    let mut out = GroupView {
        namespace: namespace.to_string(),
        name: name.to_string(),
        record_source: table_words.to_string(),
        record_error: None,
        active: None,
        token: None,
        lock_holder: None,
        lock_left_seconds: None,
        pending_request: None,
        failover: None,
        clusters: views,
        problems,
        last: last.map(|e| ended_view(e, &names, None)),
    };
    match record {
        Ok(Some((r, trail))) => {
            fill_from_record(&mut out, group.as_ref(), &names, r, trail, clusters, now)
        }
        Ok(None) => {
            out.record_error = Some("the table has no record of this group yet".into());
            out.problems.push(
                "no record in the table: the operators create it when they first run the \
                 group"
                    .into(),
            );
            fill_from_status(&mut out, clusters);
        }
        Err(e) => {
            out.record_error = Some(e.clone());
            fill_from_status(&mut out, clusters);
        }
    }
    out
}

/// The record's values.
fn fill_from_record(
    out: &mut GroupView,
    group: Option<&Group>,
    names: &[String; 2],
    r: &Record,
    trail: &[Mark],
    clusters: &[ClusterRead],
    now: u64,
) {
    let slot = |c: Cluster| names[c.index()].clone();
    out.active = Some(slot(r.active));
    out.token = Some(r.token);
    if let Some(lock) = r.lock {
        out.lock_holder = Some(slot(lock.holder));
        out.lock_left_seconds = Some(seconds(now, lock.until));
    }
    if let Some(p) = r.request {
        out.pending_request = Some(format!(
            "to {} ({}), asked in {}",
            slot(p.to),
            p.mode,
            slot(p.by)
        ));
    }
    let lease = group.map(|g| g.timing.lease_ttl);
    for c in Cluster::ALL {
        let name = slot(c);
        let Some(view) = out.clusters.iter_mut().find(|v| v.name == name) else {
            continue;
        };
        let beat = r.heartbeat[c.index()];
        view.heartbeat_age_seconds = beat.map(|b| seconds(b, now));
        view.lease_left_seconds = match (c == r.active, beat, lease) {
            (true, Some(b), Some(l)) => Some(seconds(now, b + l)),
            _ => None,
        };
        if let Some(h) = r.health[c.index()] {
            view.workloads_ready = Some(h.workloads_ready);
            view.traffic_open = Some(h.traffic_open);
        }
        if let Some(other) = r.contested[c.index()] {
            out.problems.push(format!(
                "an operator with another identity ({other:016x}) tried to claim {name}'s slot: \
                 an operator is configured with the wrong cluster name (check \
                 --cluster-name of both clusters' operators)"
            ));
        }
    }
    if let (Some(a), Some(b)) = (r.spec[0], r.spec[1])
        && a != b
    {
        out.problems.push(
            "the two operators' spec fingerprints in the record differ: no failover starts \
             until both clusters run the same FailoverGroup spec"
                .into(),
        );
    }
    if let Some(f) = r.failover {
        let (kinds, kinds_from) = kinds_of(clusters, &format!("{:016x}", f.id));
        let started = trail
            .iter()
            .find(|m| matches!(m.event, MarkEvent::Acquired | MarkEvent::Forced))
            .map(|m| m.at);
        let asked_in = trail
            .iter()
            .find(|m| m.event == MarkEvent::Requested)
            .and_then(|m| m.by)
            .map(slot);
        let spans = failover_engine::trail::stage_spans(f.kind, f.hooks, trail, None);
        out.failover = Some(FailoverView {
            position: FailoverProgress::of(&f, names, group, kinds),
            kinds_from,
            asked: f.asked.map(|a| format!("{} asked", a.name())),
            asked_in,
            started: started.map(rfc3339),
            running_seconds: started.map(|s| seconds(s, now).max(0.0)),
            stages: stage_views(&spans, names, now),
        });
    }
}

/// The per-kind progress of failover `id` from the cluster whose operator runs its
/// step (the only one that reports kinds).
fn kinds_of(clusters: &[ClusterRead], id: &str) -> (Vec<String>, Option<String>) {
    for c in clusters {
        if let Ok(Some(fg)) = &c.read
            && let Some(f) = fg.status.as_ref().and_then(|s| s.failover.as_ref())
            && f.id == id
            && !f.kinds.is_empty()
        {
            return (f.kinds.clone(), Some(c.name.clone()));
        }
    }
    (Vec::new(), None)
}

/// Without the record: the values of the first reachable cluster's status.
fn fill_from_status(out: &mut GroupView, clusters: &[ClusterRead]) {
    let Some((name, status)) = clusters.iter().find_map(|c| {
        let s = c.read.as_ref().ok()?.as_ref()?.status.as_ref()?;
        s.active.is_some().then_some((c.name.clone(), s))
    }) else {
        out.record_source = "nowhere: neither the table nor a cluster's status".into();
        return;
    };
    out.record_source = format!("{name}'s operator (its last view of the record)");
    out.active = status.active.clone();
    out.token = status.token;
    out.lock_holder = status.lock_holder.clone();
    if let Some(f) = &status.failover {
        let (kinds, kinds_from) = kinds_of(clusters, &f.id);
        out.failover = Some(FailoverView {
            position: FailoverProgress { kinds, ..f.clone() },
            kinds_from,
            asked: None,
            asked_in: None,
            started: None,
            running_seconds: None,
            stages: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::spec::{FailoverGroupStatus, FailoverProgress};
    use failover_model::{Health, Hooks, InFlight, Lock, Mode, Plan, PlanKind};

    const NOW: u64 = 1_800_000_000_000;

    fn group(status: Option<FailoverGroupStatus>) -> FailoverGroup {
        let mut fg = FailoverGroup::new(
            "shop",
            failover_integration::app::group_spec(["east", "west"]),
        );
        fg.status = status;
        fg
    }

    fn mark(event: MarkEvent, by: Cluster, at: u64, done: Option<u32>) -> Mark {
        Mark {
            event,
            by: Some(by),
            at,
            done,
            to: None,
            kind: None,
        }
    }

    fn record() -> (Record, Vec<Mark>) {
        let mut r = Record::new(Cluster::A, [Some(NOW - 400), Some(NOW - 900)]);
        r.token = 3;
        r.lock = Some(Lock {
            holder: Cluster::A,
            until: NOW + 5_000,
        });
        r.failover = Some(InFlight {
            id: 0xab,
            kind: PlanKind::Planned(Mode::Consistency),
            source: Cluster::A,
            target: Cluster::B,
            done: 3,
            stuck: false,
            asked: None,
            hooks: Hooks::NONE,
        });
        r.health = [
            Some(Health {
                workloads_ready: true,
                traffic_open: true,
            }),
            None,
        ];
        r.contested = [None, Some(77)];
        let trail = vec![
            Mark {
                to: Some(Cluster::B),
                ..mark(MarkEvent::Requested, Cluster::B, NOW - 10_000, None)
            },
            mark(MarkEvent::Acquired, Cluster::A, NOW - 9_000, Some(1)),
            mark(
                MarkEvent::Journaled { released: false },
                Cluster::A,
                NOW - 8_000,
                Some(2),
            ),
            mark(
                MarkEvent::Journaled { released: false },
                Cluster::A,
                NOW - 7_000,
                Some(3),
            ),
        ];
        (r, trail)
    }

    #[test]
    fn the_record_and_both_clusters_join_into_one_view() {
        let status = FailoverGroupStatus {
            failover: Some(FailoverProgress {
                id: format!("{:016x}", 0xab),
                kinds: vec!["scaled down 1/3 Deployments".into()],
                ..FailoverProgress::default()
            }),
            ..FailoverGroupStatus::default()
        };
        let clusters = [
            ClusterRead {
                name: "east".into(),
                read: Ok(Some(group(Some(status)))),
            },
            ClusterRead {
                name: "west".into(),
                read: Err("connection refused".into()),
            },
        ];
        let v = group_view(
            "ns",
            "shop",
            &clusters,
            &Ok(Some(record())),
            None,
            "table t",
            NOW,
        );
        assert_eq!(v.active.as_deref(), Some("east"));
        assert_eq!(v.token, Some(3));
        assert_eq!(v.lock_holder.as_deref(), Some("east"));
        assert_eq!(v.lock_left_seconds, Some(5.0));
        let flight = v.failover.expect("in flight");
        let f = &flight.position;
        let plan = Plan::of(PlanKind::Planned(Mode::Consistency), Variant::Correct);
        let next = plan.get(3).expect("step 3");
        assert_eq!(f.stage, next.stage.to_string());
        assert_eq!(f.step, next.step.to_string());
        assert_eq!(f.progress, format!("3/{}", plan.steps.len()));
        assert_eq!((f.source.as_str(), f.target.as_str()), ("east", "west"));
        assert_eq!(f.kinds, ["scaled down 1/3 Deployments"]);
        assert_eq!(flight.kinds_from.as_deref(), Some("east"));
        assert_eq!(flight.asked_in.as_deref(), Some("west"));
        assert_eq!(flight.running_seconds, Some(9.0));
        let last = flight.stages.last().expect("a stage");
        assert!(!last.done);
        let east = &v.clusters[0];
        assert!(east.reachable);
        assert_eq!(east.heartbeat_age_seconds, Some(0.4));
        assert_eq!(east.lease_left_seconds, Some(15.6));
        assert_eq!(
            (east.workloads_ready, east.traffic_open),
            (Some(true), Some(true))
        );
        let west = &v.clusters[1];
        assert!(!west.reachable);
        assert_eq!(west.heartbeat_age_seconds, Some(0.9));
        assert_eq!(
            west.lease_left_seconds, None,
            "only the active cluster has a lease"
        );
        assert!(
            v.problems
                .iter()
                .any(|p| p == "west: unreachable: connection refused")
        );
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("tried to claim west's slot")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn without_the_record_the_operators_view_is_shown_and_said_so() {
        let status = FailoverGroupStatus {
            active: Some("west".into()),
            token: Some(9),
            ..FailoverGroupStatus::default()
        };
        let clusters = [
            ClusterRead {
                name: "east".into(),
                read: Err("timed out".into()),
            },
            ClusterRead {
                name: "west".into(),
                read: Ok(Some(group(Some(status)))),
            },
        ];
        let v = group_view(
            "ns",
            "shop",
            &clusters,
            &Err("no credentials".into()),
            None,
            "t",
            NOW,
        );
        assert_eq!(v.active.as_deref(), Some("west"));
        assert_eq!(v.token, Some(9));
        assert_eq!(v.record_error.as_deref(), Some("no credentials"));
        assert!(
            v.record_source.starts_with("west's operator"),
            "{}",
            v.record_source
        );
    }

    #[test]
    fn specs_that_differ_between_the_clusters_are_a_problem() {
        let mut other = group(None);
        other.spec.step_timeout_seconds = Some(99);
        let clusters = [
            ClusterRead {
                name: "east".into(),
                read: Ok(Some(group(None))),
            },
            ClusterRead {
                name: "west".into(),
                read: Ok(Some(other)),
            },
        ];
        let v = group_view("ns", "shop", &clusters, &Ok(None), None, "t", NOW);
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("specs in east and west differ"))
        );
        assert!(v.problems.iter().any(|p| p.contains("no status")));
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("no record in the table"))
        );
    }
}
