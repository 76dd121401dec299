//! The protocol's states as [`timeline`] pieces: what the simulator, the integration
//! monitor and the CLI draw the same way. Pure, like the renderer.
//!
//! - [`state_bands`]: a cluster's bands (volumes primary, pods running, traffic open, Flux
//!   suspended) from samples of its [`ClusterState`];
//! - [`record_spans`]: the record lane, a span per (active cluster, lock holder, token);
//! - [`journal_stages`]: each cluster's stage spans from the failover's journal position
//!   (the stage of the next step and the cluster that owns it), for observers that see
//!   the record but not the operators' lines;
//! - [`journal_marks`]: a mark per journal move, request and history item;
//! - [`uptime_windows`]: where an uptime failover is in flight (the overlap it accepts);
//! - [`from_trail`]: one ended failover from the record's history alone (what `kubectl
//!   failover history --timeline` draws).

use std::collections::BTreeMap;

use failover_model::{
    Cluster, ClusterState, Mode, Plan, PlanKind, Record, Role, Stage, Step, Time, Variant,
};

use crate::timeline::{self, BandKind, ClusterLane, Mark, Ms, Span, Timeline, Window};
use crate::trail::{Ended, Mark as TrailMark, MarkEvent, kind_words, outcome_words};

/// A cluster's name on a picture.
pub fn cluster_name(c: Cluster) -> &'static str {
    match c {
        Cluster::A => "A",
        Cluster::B => "B",
    }
}

/// Whether a cluster's state shows a band's condition.
type Holds = fn(&ClusterState) -> bool;

/// The state bands of one cluster from `samples` (time, alive, state), each span's hover
/// text the state where it began.
pub fn state_bands(lane: &mut ClusterLane, samples: &[(Ms, bool, ClusterState)], end: Ms) {
    let bands: [(BandKind, Holds); 4] = [
        (BandKind::VolumesPrimary, ClusterState::volumes_primary),
        (BandKind::PodsRunning, |s| s.workloads_running),
        (BandKind::TrafficOpen, |s| s.network_open),
        (BandKind::FluxSuspended, |s| s.flux_suspended),
    ];
    for (kind, on) in bands {
        let series: Vec<(Ms, bool)> = samples
            .iter()
            .map(|(at, alive, s)| (*at, *alive && on(s)))
            .collect();
        let band = lane.band_mut(kind);
        for mut span in timeline::spans_of(&series, end, "") {
            span.detail = samples
                .iter()
                .rev()
                .find(|(at, _, _)| *at <= span.from)
                .map_or(String::new(), |(_, _, s)| format!("{s:?}"));
            band.spans.push(span);
        }
    }
}

/// The record lane's words for `r`: `active A · lock B · token 2`.
pub fn holding(r: &Record) -> String {
    let lock = r.lock.map_or("no lock".to_string(), |l| {
        format!("lock {}", cluster_name(l.holder))
    });
    format!(
        "active {} · {lock} · token {}",
        cluster_name(r.active),
        r.token
    )
}

/// A span per stretch of the same [`holding`], its hover text the record where it began.
pub fn record_spans(records: &[(Ms, &Record)], end: Ms) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(String, Ms, String)> = None;
    for (at, r) in records {
        let label = holding(r);
        if open.as_ref().is_some_and(|(l, _, _)| *l == label) {
            continue;
        }
        if let Some((l, from, detail)) = open.take() {
            out.push(Span::new(from, *at, l, detail));
        }
        open = Some((label, *at, format!("{r:?}")));
    }
    if let Some((l, from, detail)) = open {
        out.push(Span::new(from, end, l, detail));
    }
    out
}

/// The stage the failover in `r` is at and the cluster whose operator runs it.
pub fn stage_at(r: &Record) -> Option<(Cluster, Stage)> {
    let f = r.failover?;
    let step = f.next_step()?;
    let c = match step.owner {
        Role::Source => f.source,
        Role::Target => f.target,
    };
    Some((c, step.stage))
}

/// Each cluster's stage spans from the journal: a span for every stretch of records at
/// one stage owned by one cluster (added to the lanes named by [`cluster_name`]). A
/// stage the journal went through between two records (it began and ended in between)
/// gets a span of no length at the later record, so no stage of the failover is
/// missing from the picture.
pub fn journal_stages(lanes: &mut [ClusterLane], records: &[(Ms, &Record)], end: Ms) {
    let mut open: Option<(Cluster, Stage, Ms, String)> = None;
    let close = |lanes: &mut [ClusterLane], open: Option<(Cluster, Stage, Ms, String)>, to| {
        if let Some((c, stage, from, detail)) = open
            && let Some(lane) = lanes.iter_mut().find(|l| l.name == cluster_name(c))
        {
            lane.stage(from, to, stage.name(), detail);
        }
    };
    let mut last: Option<failover_model::InFlight> = None;
    for (at, r) in records {
        let now = stage_at(r);
        let before = last.take();
        last = r.failover;
        if open.as_ref().map(|(c, s, _, _)| (*c, *s)) == now {
            continue;
        }
        close(lanes, open.take(), *at);
        if let (Some(b), Some(f)) = (before, r.failover)
            && b.id == f.id
        {
            let steps = &f.plan(failover_model::Variant::Correct).steps;
            let mut passed: Vec<(Cluster, Stage)> = Vec::new();
            for s in steps.iter().take(f.done as usize).skip(b.done as usize + 1) {
                let c = match s.owner {
                    Role::Source => f.source,
                    Role::Target => f.target,
                };
                let was = b.next_step().map(|n| n.stage);
                if Some(s.stage) != was
                    && now != Some((c, s.stage))
                    && passed.last() != Some(&(c, s.stage))
                {
                    passed.push((c, s.stage));
                }
            }
            for (c, stage) in passed {
                let detail = "began and ended between two records".to_string();
                close(lanes, Some((c, stage, *at, detail)), *at);
            }
        }
        open = now.map(|(c, s)| (c, s, *at, format!("from {r:?}")));
    }
    close(lanes, open.take(), end);
}

/// A mark per change of the journal position, request or history in `records`.
pub fn journal_marks(records: &[(Ms, &Record)]) -> Vec<Mark> {
    let mut out = Vec::new();
    let mut last: Option<&Record> = None;
    for (at, r) in records {
        let before = last.replace(r);
        let done = |r: Option<&Record>| r.and_then(|r| r.failover).map(|f| (f.id, f.done));
        if let Some((id, n)) = done(Some(r))
            && done(before) != Some((id, n))
        {
            out.push(Mark::new(*at, format!("journal #{n}"), format!("{r:?}")));
        }
        if r.request.is_some() && before.is_none_or(|b| b.request != r.request) {
            out.push(Mark::new(*at, "request", format!("{r:?}")));
        }
        if let Some(h) = r.history.last()
            && before.is_none_or(|b| b.history.last() != Some(h))
        {
            out.push(Mark::new(
                *at,
                format!("history: {:?}", h.outcome),
                format!("{r:?}"),
            ));
        }
    }
    out
}

/// The windows where an uptime failover is in flight, from `(time, record)` samples.
pub fn uptime_windows(records: &[(Ms, Option<&Record>)], end: Ms) -> Vec<Window> {
    let series: Vec<(Ms, bool)> = records
        .iter()
        .map(|(at, r)| {
            let uptime = r.is_some_and(|r| {
                r.failover
                    .is_some_and(|f| f.kind == PlanKind::Planned(Mode::Uptime))
            });
            (*at, uptime)
        })
        .collect();
    timeline::spans_of(&series, end, "")
        .into_iter()
        .map(|s| Window::new(s.from, s.to, "uptime failover in flight"))
        .collect()
}

/// How a step the journal recorded done changes its owner's state bands: the band, and
/// whether it now holds. Confirmations (the awaits) end what they wait for; the
/// target's promotion begins its primary volumes at the write (the spec counts).
fn band_change(step: Step) -> Option<(BandKind, bool)> {
    Some(match step {
        Step::SuspendFlux => (BandKind::FluxSuspended, true),
        Step::ResumeFlux => (BandKind::FluxSuspended, false),
        Step::DisableNetwork => (BandKind::TrafficOpen, false),
        Step::EnableNetwork => (BandKind::TrafficOpen, true),
        Step::AwaitWorkloadsDown => (BandKind::PodsRunning, false),
        Step::AwaitWorkloadsReady => (BandKind::PodsRunning, true),
        Step::AwaitVolumesSecondary => (BandKind::VolumesPrimary, false),
        Step::PromoteVolumes => (BandKind::VolumesPrimary, true),
        _ => return None,
    })
}

/// A mark's words on the record lane.
fn mark_words(m: &TrailMark, names: &[String; 2]) -> String {
    let who =
        m.by.map_or("a person".to_string(), |c| names[c.index()].clone());
    match m.event {
        MarkEvent::Requested => format!(
            "request at {who}{}",
            m.to.map(|t| format!(" → {}", names[t.index()]))
                .unwrap_or_default()
        ),
        MarkEvent::Journaled { released } => format!(
            "{who}: {} #{}",
            if released { "hand-off" } else { "journal" },
            m.done.unwrap_or_default()
        ),
        event => format!("{who}: {}", event.name()),
    }
}

/// One ended failover as the record's history keeps it ([`Ended`]): each cluster's
/// stages and its state bands as the journal recorded each step done (a step's band
/// changes when its journal entry was written, by the writer's clock), the lock in the
/// record lane, a mark per trail entry, and the uptime window for an uptime failover.
/// `names` are the clusters' names in slot order. Times are milliseconds since the Unix
/// epoch; the axis starts at the request (or the start).
pub fn from_trail(e: &Ended, names: &[String; 2]) -> Timeline {
    let kind = e.kind.map_or("not started".to_string(), kind_words);
    let route = match (e.source, e.target) {
        (Some(s), Some(t)) => format!(", {} → {}", names[s.index()], names[t.index()]),
        _ => String::new(),
    };
    let mut t = Timeline::new(format!(
        "failover {:016x} ({kind}{route}): {}",
        e.id,
        outcome_words(e.outcome)
    ));
    let start = e
        .request()
        .map(|m| m.at)
        .or(e.started_at())
        .unwrap_or(e.ended_at);
    let end = e.ended_at.max(start + 1);
    t.start = start as Ms;
    t.end = (end + (end - start) / 20 + 200) as Ms;
    t.subtitle = vec![
        "from the record's history: each step's time is when its journal entry was written, \
         by the writer's clock"
            .into(),
    ];
    // One lane per cluster, in slot order: a cluster's lane is at its index.
    for name in names {
        t.clusters.push(ClusterLane::new(name.clone()));
    }
    for s in e.stages() {
        let Some(by) = s.by else { continue };
        let to = s.to.unwrap_or(end);
        t.clusters[by.index()].stage(
            s.from as Ms,
            to.max(s.from + 1) as Ms,
            s.stage.name(),
            format!("run by {}", names[by.index()]),
        );
    }
    // The bands: the source serves and the target stands by (Flux suspended) until the
    // journal says otherwise; a forced failover's source is not in its journal.
    if let (Some(kind), Some(source), Some(target)) = (e.kind, e.source, e.target) {
        let plan = Plan::with_hooks(kind, Variant::Correct, e.hooks);
        let mut state: BTreeMap<(Cluster, BandKind), Option<Time>> = BTreeMap::new();
        if kind != PlanKind::Forced {
            for band in [
                BandKind::VolumesPrimary,
                BandKind::PodsRunning,
                BandKind::TrafficOpen,
            ] {
                state.insert((source, band), Some(start));
            }
        }
        state.insert((target, BandKind::FluxSuspended), Some(start));
        let close = |t: &mut Timeline, c: Cluster, band: BandKind, from: Time, to: Time| {
            t.clusters[c.index()].band_mut(band).push(
                from as Ms,
                to.max(from + 1) as Ms,
                "",
                format!("as journaled by {}", names[c.index()]),
            );
        };
        for m in &e.trail {
            let Some(done) = m.done.filter(|d| *d > 0) else {
                continue;
            };
            let Some(step) = plan.get(done - 1) else {
                continue;
            };
            let Some((band, on)) = band_change(step.step) else {
                continue;
            };
            let c = match step.owner {
                Role::Source => source,
                Role::Target => target,
            };
            let open = state.entry((c, band)).or_default();
            match (on, *open) {
                (true, None) => *open = Some(m.at),
                (false, Some(from)) => {
                    *open = None;
                    close(&mut t, c, band, from, m.at);
                }
                _ => {}
            }
        }
        let last = t.end as Time;
        for ((c, band), from) in state {
            if let Some(from) = from {
                close(&mut t, c, band, from, last);
            }
        }
        if kind == PlanKind::Planned(Mode::Uptime) {
            let from = e.started_at().unwrap_or(start);
            t.accepted.push(Window::new(
                from as Ms,
                end as Ms,
                "uptime failover in flight",
            ));
        }
    }
    // The record lane: who holds the lock, from the trail's lock moves.
    let mut holder: Option<(String, Time)> = None;
    let mut lock_moves = |t: &mut Timeline, label: Option<String>, at: Time| {
        if let Some((l, from)) = holder.take() {
            t.record.push(Span::new(from as Ms, at as Ms, l, ""));
        }
        holder = label.map(|l| (l, at));
    };
    for m in &e.trail {
        let who = m.by.map(|c| names[c.index()].clone());
        match (m.event, who) {
            (MarkEvent::Acquired | MarkEvent::Forced | MarkEvent::TookOver, Some(w)) => {
                lock_moves(&mut t, Some(format!("lock {w}")), m.at);
            }
            (MarkEvent::Journaled { released: true }, _) => {
                lock_moves(&mut t, Some("lock free (handed off)".into()), m.at);
            }
            _ => {}
        }
        t.record_marks.push(Mark::new(
            m.at as Ms,
            mark_words(m, names),
            format!("{:?}", m),
        ));
    }
    lock_moves(&mut t, None, end);
    t.record_marks.push(Mark::new(
        end as Ms,
        format!("history: {}", outcome_words(e.outcome)),
        format!(
            "ended by {} with token {}",
            names[e.ended_by.index()],
            e.token
        ),
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{elements, svg};
    use failover_model::{Hooks, Outcome};

    /// A failover's trail as the operators write it: the request, then a mark per plan
    /// step journaled done, 100 ms apart, by the step's owner (the lock taken at the
    /// first, a hand-off at each phase's end and the take-over after it).
    fn ended(mode: Mode) -> Ended {
        let kind = PlanKind::Planned(mode);
        let plan = Plan::with_hooks(kind, Variant::Correct, Hooks::NONE);
        let (source, target) = (Cluster::A, Cluster::B);
        let owner = |r: Role| if r == Role::Source { source } else { target };
        let mut trail = vec![TrailMark {
            event: MarkEvent::Requested,
            by: Some(target),
            at: 1_000,
            done: None,
            to: Some(target),
            kind: Some(kind),
        }];
        let n = plan.steps.len() as u32;
        for done in 1..n {
            let step = plan.steps[done as usize - 1];
            let next = plan.steps[done as usize];
            let event = match step.step {
                Step::AcquireLock => MarkEvent::Acquired,
                Step::AwaitHandOff => MarkEvent::TookOver,
                _ => MarkEvent::Journaled {
                    released: next.owner != step.owner,
                },
            };
            trail.push(TrailMark {
                event,
                by: Some(owner(step.owner)),
                at: 1_000 + 100 * Time::from(done),
                done: Some(done),
                to: None,
                kind: None,
            });
        }
        Ended {
            id: 7,
            outcome: Outcome::Completed(kind),
            token: 2,
            ended_by: target,
            ended_at: 1_000 + 100 * Time::from(n),
            kind: Some(kind),
            source: Some(source),
            target: Some(target),
            hooks: Hooks::NONE,
            trail,
        }
    }

    fn names() -> [String; 2] {
        ["east".to_string(), "west".to_string()]
    }

    fn pick(doc: &str, kind: &str, cluster: &str, key: &str) -> Vec<String> {
        elements(doc)
            .into_iter()
            .filter(|e| {
                e["data-kind"] == kind && e.get("data-cluster").map(String::as_str) == Some(cluster)
            })
            .map(|e| e[key].clone())
            .collect()
    }

    /// Two records of one consistency failover, the first at the source's first stage
    /// step, the second at the target's activation: the stages the journal went
    /// through between them are drawn too, with no length.
    #[test]
    fn stages_passed_between_two_records_get_a_span() {
        let kind = PlanKind::Planned(Mode::Consistency);
        let flight = |done: u32| failover_model::InFlight {
            id: 7,
            kind,
            source: Cluster::A,
            target: Cluster::B,
            done,
            stuck: false,
            asked: None,
            hooks: Hooks::NONE,
        };
        let plan = flight(0).plan(failover_model::Variant::Correct).clone();
        let at = |stage: Stage| {
            plan.steps
                .iter()
                .position(|s| s.stage == stage)
                .expect("stage") as u32
        };
        let record = |done: u32| {
            let mut r = Record::new(Cluster::A, [Some(0), Some(0)]);
            r.failover = Some(flight(done));
            r
        };
        let (first, second) = (
            record(at(Stage::SourcePreparation)),
            record(at(Stage::TargetActivation)),
        );
        let mut t = Timeline::new("t");
        t.clusters = vec![ClusterLane::new("A"), ClusterLane::new("B")];
        journal_stages(&mut t.clusters, &[(100, &first), (900, &second)], 2_000);
        t.end = 2_000;
        let doc = svg(&t);
        let stages = |cluster| pick(&doc, "stage", cluster, "data-label");
        assert_eq!(stages("A"), ["source-preparation", "volume-demotion"]);
        assert_eq!(stages("B"), ["volume-promotion", "target-activation"]);
    }

    #[test]
    fn a_consistency_failover_from_its_trail() {
        let doc = svg(&from_trail(&ended(Mode::Consistency), &names()));
        assert_eq!(
            pick(&doc, "stage", "east", "data-label"),
            ["initialization", "source-preparation", "volume-demotion"]
        );
        assert_eq!(
            pick(&doc, "stage", "west", "data-label"),
            ["volume-promotion", "target-activation", "completion"]
        );
        for band in ["volumes-primary", "pods-running", "traffic-open"] {
            assert_eq!(
                pick(&doc, "band", "east", "data-band")
                    .iter()
                    .filter(|b| *b == band)
                    .count(),
                1,
                "{band}"
            );
            assert_eq!(
                pick(&doc, "band", "west", "data-band")
                    .iter()
                    .filter(|b| *b == band)
                    .count(),
                1,
                "{band}"
            );
        }
        let els = elements(&doc);
        assert!(
            !els.iter().any(|e| e["data-kind"] == "overlap"),
            "one primary at a time"
        );
        let record: Vec<&String> = els
            .iter()
            .filter(|e| e["data-kind"] == "record")
            .map(|e| &e["data-label"])
            .collect();
        assert_eq!(record, ["lock east", "lock free (handed off)", "lock west"]);
        assert!(els.iter().any(|e| e["data-kind"] == "record-mark"
            && e["data-label"] == "history: completed-consistency"));
    }

    #[test]
    fn an_uptime_failover_from_its_trail_shows_its_accepted_window() {
        let doc = svg(&from_trail(&ended(Mode::Uptime), &names()));
        let overlaps: Vec<_> = elements(&doc)
            .into_iter()
            .filter(|e| e["data-kind"] == "overlap")
            .collect();
        assert!(
            overlaps
                .iter()
                .any(|e| e["data-overlap"] == "two-primaries"),
            "{overlaps:?}"
        );
        assert!(
            overlaps.iter().all(|e| e["data-accepted"] == "true"),
            "{overlaps:?}"
        );
    }
}
