//! One long-lived engine loop per group, and what it tells the rest of the operator.
//!
//! The `FailoverGroup` controller starts a [`GroupLoop`] for every valid group and stops
//! it when the group is deleted, becomes invalid or changes its spec. The loop runs the
//! engine's turns for ever (heartbeats, at-rest upkeep, the failovers the record shows);
//! the `Failover` controller hands it the request of this cluster's `Failover` object
//! ([`Inputs`]), and after every turn the loop publishes what it knows ([`View`]) and
//! the group's status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover_engine::dynamo::DynamoStore;
use failover_engine::executor::Operator;
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::SystemClock;
use failover_engine::spec::{
    ClusterHealth, Condition, FailoverGroup, FailoverGroupStatus, FailoverProgress, Group,
    HistoryItem,
};
use failover_model::{
    Cluster, FailoverId, HistoryEntry, InFlight, Outcome, Record, Request, Stage, Variant,
};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::auto::AutoTask;
use crate::metrics::Metrics;

/// The field manager of every status the operator writes.
pub const MANAGER: &str = "failover-operator";

/// What the `Failover` controller asks of a group's loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The request of this cluster's `Failover` object, written into the record.
    pub request: Option<Request>,
    /// A request to withdraw (its object deleted before the failover started).
    pub withdraw: Option<FailoverId>,
}

/// What a group's loop knows after its last turn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The record, as last read or written.
    pub record: Option<Record>,
    /// The request this loop was asked for was refused: (its id, the id holding the group).
    pub refused: Option<(FailoverId, FailoverId)>,
    /// Problems that keep the operator from acting.
    pub problems: Vec<String>,
    /// The loop stopped (an assertion failed, or another process took the slot).
    pub stopped: Option<String>,
    /// How far the failover's next step got on each kind, when this cluster runs it.
    pub kinds: Vec<String>,
    /// The hooks this cluster's operator ran for the failover in flight (or the last
    /// one), oldest first.
    pub hooks: Vec<failover_engine::executor::HookReport>,
}

/// A running group loop.
pub struct GroupLoop {
    /// The spec generation it runs.
    pub generation: Option<i64>,
    /// What the `Failover` controller asks of it.
    pub inputs: Arc<Mutex<Inputs>>,
    /// What it knows.
    pub view: watch::Receiver<View>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The auto-failover watch, when the group has one.
    auto: Option<JoinHandle<()>>,
}

type KubeOperator = Operator<KubeCluster, DynamoStore, SystemClock>;

impl GroupLoop {
    /// Start the loop of `group` (spec `generation`), publishing its status through
    /// `api` (the group's namespace) under `name`; and its auto-failover watch, if it
    /// has one. `handover` is the longest a crashed leader takes to be replaced (none
    /// without leader election): a group whose timing it does not fit reports it
    /// ([`crate::auto::handover_problem`]).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        op: KubeOperator,
        api: Api<FailoverGroup>,
        name: String,
        generation: Option<i64>,
        history: usize,
        metrics: Arc<Metrics>,
        events: (kube::Client, Reporter, ObjectReference),
        handover: Option<Duration>,
    ) -> GroupLoop {
        let inputs = Arc::new(Mutex::new(Inputs::default()));
        let (view_tx, view) = watch::channel(View::default());
        let (stop, stop_rx) = watch::channel(false);
        let span = info_span!(parent: None, "group", group = %op.group().key);
        let problem = crate::auto::handover_problem(op.group(), handover);
        let auto = op.group().auto.is_some().then(|| {
            let task = AutoTask {
                group: op.group().clone(),
                name: name.clone(),
                client: events.0.clone(),
                view: view.clone(),
                metrics: metrics.clone(),
                problem: problem.clone(),
                events: (events.1.clone(), events.2.clone()),
            };
            tokio::spawn(task.run(stop_rx.clone()).instrument(span.clone()))
        });
        let publisher = Publisher {
            api,
            name,
            generation,
            history,
            last: None,
            metrics,
            seen: Seen::default(),
            recorder: Recorder::new(events.0.clone(), events.1.clone()),
            client: events.0,
            reporter: events.1,
            regarding: events.2,
        };
        let task = tokio::spawn(
            drive(op, inputs.clone(), view_tx, stop_rx, publisher, problem).instrument(span),
        );
        GroupLoop {
            generation,
            inputs,
            view,
            stop,
            task,
            auto,
        }
    }

    /// Stop the loop after the turn it is in (so the group stays resumable: the
    /// journal has every step it did) and wait for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(auto) = self.auto {
            let _ = auto.await;
        }
    }

    /// Whether the loop ended by itself.
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The loop: a turn, the view and status published, a pause; until asked to stop.
async fn drive(
    mut op: KubeOperator,
    inputs: Arc<Mutex<Inputs>>,
    view: watch::Sender<View>,
    mut stop: watch::Receiver<bool>,
    mut publisher: Publisher,
    handover: Option<String>,
) {
    info!("group loop started");
    loop {
        let asked = *lock(&inputs);
        op.set_request(asked.request);
        op.set_withdraw(asked.withdraw);
        let turn = op.turn().await;
        publisher.metrics.on_turn(&turn);
        let mut problems = Vec::new();
        problems.extend(handover.clone());
        problems.extend(op.identity_problem());
        problems.extend(op.drift().into_iter().map(|d| d.to_string()));
        problems.extend(op.slow_demotion());
        problems.extend(op.observe_problem());
        let stopped = op
            .halted()
            .map(|why| format!("engine assertion failed: {why}"))
            .or_else(|| {
                op.replaced()
                    .then(|| "another operator process took this cluster's slot".to_string())
            });
        if let Some(n) = op.needs_operator() {
            problems.push(format!(
                "needs-operator: stage {} step {} stuck on {}",
                n.stage,
                n.step,
                n.objects.join(", ")
            ));
        }
        let now = View {
            record: op.memory().view.clone(),
            refused: asked
                .request
                .and_then(|r| op.refused(r.id).map(|holder| (r.id, holder))),
            problems,
            stopped: stopped.clone(),
            kinds: step_kinds(&op),
            hooks: op.hook_reports().to_vec(),
        };
        view.send_if_modified(|v| {
            let changed = *v != now;
            *v = now.clone();
            changed
        });
        publisher.report(op.group(), &turn, &now).await;
        if let Some(why) = stopped {
            warn!(%why, "group loop stopped");
            return;
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = op.pause(&turn) => {}
            _ = stop.changed() => break,
        }
    }
    info!("group loop stopped (the journal has every step it did)");
}

/// Per-kind progress of the failover's last done step and of its next one, where this
/// cluster runs them (the last done step's counts are its totals: the observation that
/// found it complete).
fn step_kinds(op: &KubeOperator) -> Vec<String> {
    let (Some(f), Some(members)) = (
        op.memory().view.as_ref().and_then(|r| r.failover),
        op.listed(),
    ) else {
        return Vec::new();
    };
    let me = op.group().me;
    let plan = f.plan(Variant::Correct);
    let mine = |at: u32| {
        plan.get(at).filter(|s| match s.owner {
            failover_model::Role::Source => f.source == me,
            failover_model::Role::Target => f.target == me,
        })
    };
    let done = f
        .done
        .checked_sub(1)
        .and_then(mine)
        .into_iter()
        .flat_map(|s| {
            failover_engine::observe::step_progress(s.step, members)
                .into_iter()
                .map(|line| format!("{line} (done)"))
        });
    let next = mine(f.done)
        .into_iter()
        .flat_map(|s| failover_engine::observe::step_progress(s.step, members));
    done.chain(next).collect()
}

/// Writes a group's status when it changes (server-side apply of the status
/// subresource), at most once per turn.
struct Publisher {
    api: Api<FailoverGroup>,
    name: String,
    generation: Option<i64>,
    history: usize,
    last: Option<FailoverGroupStatus>,
    metrics: Arc<Metrics>,
    seen: Seen,
    /// Publishes the Events; a new one for every failover, so each failover's stage
    /// Events are its own (a recorder folds Events of the same reason and action into
    /// one series).
    recorder: Recorder,
    client: kube::Client,
    reporter: Reporter,
    regarding: ObjectReference,
}

/// The failovers' progress as this loop saw it, turn by turn: what the metrics and the
/// Events both report, worked out once.
#[derive(Default)]
struct Seen {
    /// History items already reported (those before this loop started are not).
    history: Option<usize>,
    /// The failover in flight, as last seen.
    flight: Option<Flight>,
    /// The refusal last reported.
    refused: Option<(FailoverId, FailoverId)>,
}

/// A failover in flight: since when this loop saw it, its stage and since when.
#[derive(Clone, Copy)]
struct Flight {
    failover: InFlight,
    since: Instant,
    stage: Stage,
    stage_since: Instant,
}

/// What changed in the record since the last turn.
#[derive(Default)]
struct Changes {
    /// The stage a failover left (its failover went on to the next or ended), and how
    /// long it stayed.
    stage_ended: Option<(Flight, Duration)>,
    /// The stage a failover entered, and whether the failover is new to this loop.
    stage_started: Option<(InFlight, Stage, bool)>,
    /// Failovers that ended, with their flight if this loop saw them run.
    ended: Vec<(HistoryEntry, Option<Flight>)>,
}

impl Seen {
    fn advance(&mut self, record: &Record, now: Instant) -> Changes {
        let mut changes = Changes::default();
        let reported = *self.history.get_or_insert(record.history.len());
        for h in record.history.iter().skip(reported) {
            let flight = self.flight.filter(|f| f.failover.id == h.id);
            changes.ended.push((*h, flight));
        }
        self.history = Some(record.history.len());
        let current = record
            .failover
            .and_then(|f| Some((f, f.next_step()?.stage)));
        let unchanged = matches!(
            (self.flight, current),
            (Some(old), Some((f, stage))) if old.failover.id == f.id && old.stage == stage
        );
        if !unchanged {
            let old = self.flight;
            changes.stage_ended = old.map(|o| (o, now - o.stage_since));
            self.flight = current.map(|(failover, stage)| {
                let same = old.filter(|o| o.failover.id == failover.id);
                changes.stage_started = Some((failover, stage, same.is_none()));
                Flight {
                    failover,
                    since: same.map_or(now, |o| o.since),
                    stage,
                    stage_since: now,
                }
            });
        }
        changes
    }
}

impl Publisher {
    /// After a turn: the status written if it changed, the metrics, the Events.
    async fn report(&mut self, group: &Group, turn: &failover_engine::executor::Turn, view: &View) {
        let status = group_status(group, view, self.generation, self.history, wall_ms());
        self.gauges(&group.key, &status);
        let changes = view
            .record
            .as_ref()
            .map(|r| self.seen.advance(r, Instant::now()))
            .unwrap_or_default();
        self.count(&group.key, &changes);
        self.write(status).await;
        self.tell(group, turn, view, &changes).await;
    }

    /// The gauges the status shows: heartbeat ages, lease left, fenced.
    fn gauges(&self, key: &str, status: &FailoverGroupStatus) {
        let m = &self.metrics;
        for c in &status.clusters {
            if let Some(age) = c.heartbeat_age_seconds {
                m.heartbeat_age
                    .get_or_create(&vec![
                        ("group", key.to_string()),
                        ("cluster", c.name.clone()),
                    ])
                    .set(age as f64);
            }
            if let Some(left) = c.lease_left_seconds {
                m.lease_left
                    .get_or_create(&vec![("group", key.to_string())])
                    .set(left as f64);
            }
        }
        let fenced = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Fenced" && c.status == "True");
        m.fenced
            .get_or_create(&vec![("group", key.to_string())])
            .set(i64::from(fenced));
    }

    /// Failovers that ended and stages that ended, with their durations.
    fn count(&self, key: &str, changes: &Changes) {
        let m = &self.metrics;
        if let Some((flight, took)) = changes.stage_ended {
            m.stage_seconds
                .get_or_create(&vec![
                    ("mode", plan_name(flight.failover.kind)),
                    ("stage", flight.stage.to_string()),
                ])
                .observe(took.as_secs_f64());
        }
        for (h, flight) in &changes.ended {
            let mode = match (h.outcome, flight) {
                (Outcome::Completed(kind), _) => plan_name(kind),
                (_, Some(f)) => plan_name(f.failover.kind),
                (_, None) => "unknown".into(),
            };
            m.failovers
                .get_or_create(&vec![
                    ("group", key.to_string()),
                    ("mode", mode.clone()),
                    ("outcome", outcome_name(h.outcome)),
                ])
                .inc();
            if let Some(f) = flight {
                m.failover_seconds
                    .get_or_create(&vec![("mode", mode)])
                    .observe(f.since.elapsed().as_secs_f64());
            }
        }
    }

    /// The Events of a turn: each stage started and finished, each self-fence, each
    /// refusal, each failover ended (`events.k8s.io/v1`, regarding the group).
    async fn tell(
        &mut self,
        group: &Group,
        turn: &failover_engine::executor::Turn,
        view: &View,
        changes: &Changes,
    ) {
        let mut events = Vec::new();
        let event = |warning: bool, reason: &str, action: &str, note: String| Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let failover_engine::executor::TurnResult::Hooked(h) = &turn.result {
            let hook = group.hook(h.index);
            let place = hook.map(|h| h.place()).unwrap_or_default();
            events.push(match &h.result {
                Ok(said) => event(
                    false,
                    "HookSucceeded",
                    "Hook",
                    format!(
                        "failover {:016x}: hook {} ({place}) succeeded: {said}",
                        h.id, h.name
                    ),
                ),
                Err(why) => {
                    let then = if h.continues {
                        "the failover goes on (onFailure: continue)"
                    } else {
                        "the failover is rolled back if the target promoted nothing yet, \
                         else the hook is retried until the stage deadline"
                    };
                    event(
                        true,
                        "HookFailed",
                        "Hook",
                        format!(
                            "failover {:016x}: hook {} ({place}) failed: {why}; {then}",
                            h.id, h.name
                        ),
                    )
                }
            });
        }
        for t in std::iter::once(turn).chain(turn.during.iter().map(|(t, _)| t)) {
            if let failover_engine::executor::TurnResult::Fenced { changes, failed } = &t.result
                && (!changes.is_empty() || !failed.is_empty())
            {
                events.push(event(
                    true,
                    "SelfFence",
                    "Fence",
                    format!(
                        "the lease could not be renewed: {} fields stopped, {} steps failed \
                         (retried)",
                        changes.len(),
                        failed.len()
                    ),
                ));
            }
        }
        if view.refused.is_some() && view.refused != self.seen.refused {
            if let Some((id, holder)) = view.refused {
                events.push(event(
                    true,
                    "RequestRefused",
                    "Request",
                    format!("request {id:016x} refused: {holder:016x} holds the group"),
                ));
            }
            self.seen.refused = view.refused;
        }
        let name = |c: Cluster| group.name_of(c).to_string();
        if let Some((flight, _)) = changes.stage_ended {
            let old = flight.stage.to_string();
            events.push(event(
                false,
                "StageFinished",
                &pascal(&old),
                format!("failover {:016x}: stage {old} finished", flight.failover.id),
            ));
        }
        if let Some((f, stage, new)) = changes.stage_started {
            if new {
                self.recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            }
            let stage = stage.to_string();
            events.push(event(
                false,
                "StageStarted",
                &pascal(&stage),
                format!(
                    "failover {:016x} ({}, {} → {}): stage {stage} started",
                    f.id,
                    plan_name(f.kind),
                    name(f.source),
                    name(f.target)
                ),
            ));
        }
        if let Some(r) = view.record.as_ref() {
            for (h, _) in &changes.ended {
                let aborted = matches!(h.outcome, Outcome::Aborted(_));
                events.push(event(
                    aborted,
                    if aborted {
                        "FailoverAborted"
                    } else {
                        "FailoverEnded"
                    },
                    "Failover",
                    format!(
                        "failover {:016x} ended: {}; {} is active",
                        h.id,
                        outcome_name(h.outcome),
                        name(r.active)
                    ),
                ));
            }
        }
        for e in events {
            if let Err(err) = self.recorder.publish(&e, &self.regarding).await {
                warn!(error = %err, reason = %e.reason, "cannot publish an Event");
            }
        }
    }

    /// Write the status unless only the ages in it changed (they change every second:
    /// an idle group is not written on every turn).
    async fn write(&mut self, status: FailoverGroupStatus) {
        let key = |s: &FailoverGroupStatus| FailoverGroupStatus {
            clusters: Vec::new(),
            ..s.clone()
        };
        if self.last.as_ref().map(key) == Some(key(&status)) {
            return;
        }
        match apply_status(&self.api, &self.name, &status).await {
            Ok(_) => self.last = Some(status),
            Err(e) => warn!(error = %e, "cannot write the group's status"),
        }
    }
}

/// `source-preparation` as `SourcePreparation` (an Event's action).
fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Write `status` as the status of object `name` by server-side apply (the operator's
/// field manager, forced: it owns every status field).
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply_status_as(api, name, status, MANAGER).await
}

/// [`apply_status`] under field manager `manager`, which owns exactly the fields of
/// `status` (the auto-failover watch owns `status.autoFailover`).
pub async fn apply_status_as<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
    manager: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Wall-clock milliseconds since the epoch (the record's heartbeats are stamped so).
pub fn wall_ms() -> u64 {
    failover_engine::ports::Clock::now(&failover_engine::ports::SystemClock)
}

/// The words of an outcome in status and Events (the CLI's too).
pub use failover_engine::trail::outcome_words as outcome_name;

/// The words of a plan kind.
use failover_engine::trail::kind_words as plan_name;

fn condition(type_: &str, on: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// The status of `group` from what its loop knows, at wall time `now` (ms).
pub fn group_status(
    group: &Group,
    view: &View,
    generation: Option<i64>,
    history: usize,
    now: u64,
) -> FailoverGroupStatus {
    let name = |c: Cluster| group.name_of(c).to_string();
    let mut problems = view.problems.clone();
    problems.extend(view.stopped.clone());
    let Some(r) = view.record.as_ref() else {
        return FailoverGroupStatus {
            problems,
            observed_generation: generation,
            conditions: vec![condition(
                "Ready",
                false,
                "NoRecord",
                "the group's record has not been read from DynamoDB yet",
            )],
            ..FailoverGroupStatus::default()
        };
    };
    let lease = group.timing.lease_ttl;
    let clusters = Cluster::ALL
        .into_iter()
        .map(|c| {
            let beat = r.heartbeat[c.index()];
            ClusterHealth {
                name: name(c),
                heartbeat_age_seconds: beat.map(|b| (now as i64 - b as i64) / 1000),
                lease_left_seconds: (c == r.active)
                    .then_some(beat)
                    .flatten()
                    .map(|b| (b as i64 + lease as i64 - now as i64) / 1000),
            }
        })
        .collect();
    let failover = r
        .failover
        .map(|f| FailoverProgress::of(&f, &group.clusters, Some(group), view.kinds.clone()));
    let me = group.me;
    let serving = r.active == me && r.failover.is_none();
    let active_lease_left = r.heartbeat[r.active.index()].map(|b| b + lease > now);
    let fenced = r.active == me && active_lease_left == Some(false);
    let mut conditions = vec![
        condition(
            "Ready",
            view.stopped.is_none() && problems.is_empty(),
            if problems.is_empty() {
                "Running"
            } else {
                "Problems"
            },
            if problems.is_empty() {
                "the group's engine loop runs".to_string()
            } else {
                problems.join("; ")
            },
        ),
        condition(
            "Serving",
            serving,
            if serving { "Active" } else { "Standby" },
            format!("the record names {} active", name(r.active)),
        ),
        condition(
            "Fenced",
            fenced,
            if fenced { "LeaseExpired" } else { "LeaseHeld" },
            if fenced {
                "this cluster is active but its lease ran out: it has stopped itself \
                 (self-fence) until it can heartbeat again"
            } else {
                "no self-fence in force"
            },
        ),
        condition(
            "FailoverInProgress",
            r.failover.is_some(),
            if r.failover.is_some() {
                "InFlight"
            } else {
                "Idle"
            },
            failover
                .as_ref()
                .map(|f| format!("{} → {} at {}/{}", f.source, f.target, f.stage, f.step))
                .unwrap_or_else(|| "no failover in flight".into()),
        ),
    ];
    let degraded = r.failover.is_some_and(|f| f.stuck) || !problems.is_empty();
    conditions.push(condition(
        "Degraded",
        degraded,
        if degraded {
            "NeedsAttention"
        } else {
            "Healthy"
        },
        if r.failover.is_some_and(|f| f.stuck) {
            "a failover needs an operator: fix the stuck objects named in problems, or \
             `kubectl failover retry|resolve` (README, \"Deadlines\")"
                .to_string()
        } else if degraded {
            problems.join("; ")
        } else {
            "nothing needs attention".into()
        },
    ));
    // The latest run of each hook this cluster ran for the failover (a failure that only
    // warns, `onFailure: continue`, is shown here, with its Event).
    let mut latest: Vec<&failover_engine::executor::HookReport> = Vec::new();
    for h in view.hooks.iter().rev() {
        if !latest.iter().any(|l| l.index == h.index) {
            latest.push(h);
        }
    }
    latest.reverse();
    let failed: Vec<String> = latest
        .iter()
        .filter_map(|h| {
            let why = h.result.as_ref().err()?;
            let then = if h.continues {
                "the failover went on (onFailure: continue)"
            } else {
                "rolled back, or retried where no roll back is safe"
            };
            Some(format!(
                "failover {:016x}: hook {} failed: {why}; {then}",
                h.id, h.name
            ))
        })
        .collect();
    if !latest.is_empty() {
        let ran = latest
            .iter()
            .map(|h| {
                format!(
                    "{} {}",
                    h.name,
                    if h.result.is_ok() {
                        "succeeded"
                    } else {
                        "failed"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        conditions.push(condition(
            "HooksSucceeded",
            failed.is_empty(),
            if failed.is_empty() {
                "Succeeded"
            } else {
                "HookFailed"
            },
            if failed.is_empty() {
                format!("failover {:016x}: {ran}", latest[0].id)
            } else {
                failed.join("; ")
            },
        ));
    }
    FailoverGroupStatus {
        active: Some(name(r.active)),
        token: Some(r.token),
        lock_holder: r.lock.map(|l| name(l.holder)),
        clusters,
        failover,
        history: r
            .history
            .iter()
            .rev()
            .take(history)
            .map(|h| HistoryItem {
                id: format!("{:016x}", h.id),
                outcome: outcome_name(h.outcome),
            })
            .collect(),
        invalid: None,
        problems,
        observed_generation: generation,
        conditions,
        // Written by the auto-failover watch under its own field manager.
        auto_failover: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::spec::{FailoverGroupSpec, MembersSpec};
    use failover_model::{AbortReason, HistoryEntry, InFlight, Lock, Mode, PlanKind};

    fn group(me: &str) -> Group {
        let spec = FailoverGroupSpec {
            clusters: vec!["east".into(), "west".into()],
            members: MembersSpec {
                deployments: vec!["web".into()],
                ..MembersSpec::default()
            },
            ..FailoverGroupSpec::default()
        };
        Group::parse("shop", "shop", &spec, me).expect("group")
    }

    fn condition<'a>(s: &'a FailoverGroupStatus, name: &str) -> &'a str {
        s.conditions
            .iter()
            .find(|c| c.type_ == name)
            .map_or("missing", |c| c.status.as_str())
    }

    #[test]
    fn status_of_a_serving_group_at_rest() {
        let now = 1_000_000;
        let record = Record::new(Cluster::A, [Some(now - 2_000), Some(now - 1_000)]);
        let view = View {
            record: Some(record),
            ..View::default()
        };
        let s = group_status(&group("east"), &view, Some(3), 10, now);
        assert_eq!(s.active.as_deref(), Some("east"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.clusters[0].heartbeat_age_seconds, Some(2));
        assert_eq!(s.clusters[0].lease_left_seconds, Some(14));
        assert_eq!(s.clusters[1].lease_left_seconds, None);
        assert_eq!(condition(&s, "Ready"), "True");
        assert_eq!(condition(&s, "Serving"), "True");
        assert_eq!(condition(&s, "Fenced"), "False");
        assert_eq!(condition(&s, "FailoverInProgress"), "False");
        assert_eq!(condition(&s, "Degraded"), "False");
        // The standby's copy: not serving.
        let s = group_status(&group("west"), &view, Some(3), 10, now);
        assert_eq!(condition(&s, "Serving"), "False");
    }

    #[test]
    fn status_of_a_failover_in_flight_and_of_a_fenced_cluster() {
        let now = 1_000_000;
        let mut record = Record::new(Cluster::A, [Some(now - 40_000), Some(now)]);
        record.token = 7;
        record.lock = Some(Lock {
            holder: Cluster::A,
            until: now + 30_000,
        });
        record.failover = Some(InFlight {
            id: 0xfa11,
            kind: PlanKind::Planned(Mode::Consistency),
            source: Cluster::A,
            target: Cluster::B,
            done: 3,
            stuck: true,
            asked: None,
            hooks: failover_model::Hooks::NONE,
        });
        record.history.push(HistoryEntry {
            id: 0xbeef,
            outcome: Outcome::Aborted(AbortReason::TargetSilent),
        });
        let view = View {
            record: Some(record),
            ..View::default()
        };
        let s = group_status(&group("east"), &view, None, 10, now);
        let f = s.failover.clone().expect("in flight");
        assert_eq!(f.id, "000000000000fa11");
        assert_eq!((f.source.as_str(), f.target.as_str()), ("east", "west"));
        assert_eq!(f.mode, "consistency");
        assert!(f.needs_operator);
        assert_eq!(s.lock_holder.as_deref(), Some("east"));
        assert_eq!(s.token, Some(7));
        assert_eq!(s.history[0].outcome, "aborted-target-silent");
        assert_eq!(condition(&s, "FailoverInProgress"), "True");
        assert_eq!(condition(&s, "Degraded"), "True");
        // East's lease (16 s) ran out 24 s ago: it is fenced.
        assert_eq!(s.clusters[0].lease_left_seconds, Some(-24));
        assert_eq!(condition(&s, "Fenced"), "True");
    }

    #[test]
    fn hook_runs_show_in_a_condition() {
        use failover_engine::executor::HookReport;
        let report = |index, name: &str, result: Result<&str, &str>, continues| HookReport {
            id: 0x42,
            index,
            name: name.into(),
            result: result.map(String::from).map_err(String::from),
            continues,
        };
        let record = Record::new(Cluster::A, [Some(1), Some(1)]);
        let mut view = View {
            record: Some(record),
            hooks: vec![
                report(
                    0,
                    "quiesce",
                    Err("Job quiesce-00000042 failed: BackoffLimitExceeded"),
                    false,
                ),
                report(0, "quiesce", Ok("Job quiesce-00000042 complete"), false),
                report(
                    2,
                    "notify",
                    Err("POST https://x answered 500, expected 200"),
                    true,
                ),
            ],
            ..View::default()
        };
        let s = group_status(&group("east"), &view, Some(1), 10, 0);
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "HooksSucceeded")
            .expect("condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "HookFailed")
        );
        assert!(
            c.message
                .contains("hook notify failed: POST https://x answered 500"),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("went on (onFailure: continue)"),
            "{}",
            c.message
        );
        assert!(
            !c.message.contains("quiesce"),
            "the latest quiesce run succeeded: {}",
            c.message
        );
        view.hooks.pop();
        let s = group_status(&group("east"), &view, Some(1), 10, 0);
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "HooksSucceeded")
            .expect("condition");
        assert_eq!(c.status, "True");
        assert_eq!(c.message, "failover 0000000000000042: quiesce succeeded");
    }

    #[test]
    fn status_before_the_record_is_read_and_with_problems() {
        let view = View {
            problems: vec!["identity mismatch".into()],
            ..View::default()
        };
        let s = group_status(&group("east"), &view, Some(1), 10, 0);
        assert_eq!(condition(&s, "Ready"), "False");
        assert_eq!(s.conditions[0].reason, "NoRecord");
        assert_eq!(s.problems, vec!["identity mismatch".to_string()]);
    }

    #[test]
    fn outcomes_and_actions_have_their_words() {
        assert_eq!(
            outcome_name(Outcome::Aborted(AbortReason::Deadline(
                failover_model::Stage::VolumeDemotion
            ))),
            "aborted-deadline-volume-demotion"
        );
        assert_eq!(
            outcome_name(Outcome::Completed(PlanKind::Forced)),
            "completed-forced"
        );
        assert_eq!(pascal("source-preparation"), "SourcePreparation");
    }
}
