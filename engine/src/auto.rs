//! Auto-failover: the standby cluster's watch of the active one.
//!
//! The operator of the cluster that would take over feeds a [`Watch`] one observation
//! at a time (about once a second): the active cluster's heartbeat in the record (how
//! long this operator has seen the same stamp, by its own monotonic clock, so no clock
//! offset matters), the active cluster's own report with that heartbeat (workloads
//! ready, traffic open: [`failover_model::Health`]) and, optionally, the result of an
//! HTTP probe of the application from this side. The observations go through the
//! model's hysteresis ([`Trigger`]); when it fires, the operator asks for a failover to
//! its own cluster exactly as a person would (a `Failover` object), so an automatic
//! failover runs the protocol the model checked: planned in the policy's mode while the
//! active cluster still answers, forced only once its lease provably ran out.
//!
//! The watch only ever moves a group away from its home cluster (`spec.initialActive`):
//! it never fails back automatically.

use std::fmt;
use std::time::Duration;

use failover_model::core::trigger::{Trigger, TriggerPolicy};
use failover_model::{Mode, Record, Time};

use crate::spec::Group;

/// A validated `spec.autoFailover`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoPolicy {
    /// The hysteresis.
    pub trigger: TriggerPolicy,
    /// The mode of the failover it asks for (forced by the protocol only once the
    /// active cluster's lease ran out).
    pub mode: Mode,
    /// The active cluster's heartbeat counts as missed once this operator has seen the
    /// same stamp for this long (milliseconds).
    pub heartbeat_age: Time,
    /// An HTTP probe of the application, from this side.
    pub probe: Option<Probe>,
}

impl AutoPolicy {
    /// The trigger as the watch runs it: failures must span the window plus
    /// [`report_stretch`], so that no blip shorter than the window fires it, whichever
    /// signal shows it.
    pub fn effective(&self, group: &Group) -> TriggerPolicy {
        TriggerPolicy {
            window: self.trigger.window + report_stretch(group),
            ..self.trigger
        }
    }
}

/// How much longer a blip of the active cluster's health looks from the standby: its
/// report travels with its next heartbeat and reaches the standby's view with the
/// standby's next read of the record (a heartbeat each), and the watch samples that
/// view once a second. The simulator found a pods-not-ready spell of 3.0–4.0 s firing a
/// 4 s window without this.
pub fn report_stretch(group: &Group) -> Time {
    2 * group.timing.heartbeat_every + 1000
}

/// An HTTP check of the application's public endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The URL (`http://` or `https://`), fetched with `GET`.
    pub url: String,
    /// The status that means healthy.
    pub expected_status: u16,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What one observation found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Symptom {
    /// The active cluster's heartbeat has not changed for this long (milliseconds).
    HeartbeatStale(Time),
    /// The active cluster reports its workloads not ready.
    WorkloadsNotReady,
    /// The active cluster reports its traffic closed.
    TrafficClosed,
    /// The probe failed (why).
    Probe(String),
}

impl fmt::Display for Symptom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Symptom::HeartbeatStale(age) => write!(
                f,
                "the active cluster's heartbeat has not changed for {:.1} s",
                *age as f64 / 1000.0
            ),
            Symptom::WorkloadsNotReady => {
                f.write_str("the active cluster reports its workloads not ready")
            }
            Symptom::TrafficClosed => f.write_str("the active cluster reports its traffic closed"),
            Symptom::Probe(why) => write!(f, "the probe failed: {why}"),
        }
    }
}

/// The watch's state after an observation (the group's status shows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// The watch does not apply here (why): this cluster is active, or it is the
    /// group's home (failing back is done by hand).
    Disarmed(String),
    /// A failover is in flight or a request pending: nothing to watch until it ends.
    Paused(String),
    /// The last observation was healthy.
    Healthy,
    /// Observations fail.
    Failing {
        /// Since when (monotonic milliseconds).
        since: Time,
        /// How many in a row.
        failures: u32,
        /// What the last one found.
        symptom: Symptom,
        /// When the trigger fires if they keep failing.
        fires_at: Time,
    },
    /// The trigger fired: a failover to this cluster is asked for.
    Fired(Symptom),
}

impl State {
    /// One word for metrics and the status.
    pub fn name(&self) -> &'static str {
        match self {
            State::Disarmed(_) => "Disarmed",
            State::Paused(_) => "Paused",
            State::Healthy => "Healthy",
            State::Failing { .. } => "Failing",
            State::Fired(_) => "Fired",
        }
    }
}

/// The standby's watch of the active cluster.
#[derive(Clone, Debug)]
pub struct Watch {
    policy: AutoPolicy,
    trigger: Trigger,
    /// The active cluster's heartbeat stamp and when this operator first saw it.
    seen: Option<(Option<Time>, Time)>,
}

impl Watch {
    /// A watch with `policy`, nothing observed yet.
    pub fn new(policy: AutoPolicy) -> Watch {
        Watch {
            policy,
            trigger: Trigger::default(),
            seen: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AutoPolicy {
        &self.policy
    }

    /// When the trigger last fired (monotonic milliseconds).
    pub fn fired_at(&self) -> Option<Time> {
        self.trigger.fired_at()
    }

    /// Why the watch does not apply to `record` (this cluster is active or the group's
    /// home: [`State::Disarmed`]; a failover runs or a request waits: [`State::Paused`]),
    /// or `None` when it does: then an observation is worth making.
    pub fn inapplicable(group: &Group, record: &Record) -> Option<State> {
        if record.active == group.me {
            return Some(State::Disarmed("this cluster is active".into()));
        }
        if group.me == group.initial_active {
            return Some(State::Disarmed(format!(
                "automatic failover only moves the group away from its home cluster {} \
                 (spec.initialActive); failing back is done by hand",
                group.name_of(group.me)
            )));
        }
        if let Some(f) = record.failover {
            return Some(State::Paused(format!(
                "failover {:016x} is in flight",
                f.id
            )));
        }
        if let Some(p) = record.request {
            return Some(State::Paused(format!("request {:016x} is pending", p.id)));
        }
        None
    }

    /// Feed one observation made at `now` (this operator's monotonic clock, in
    /// milliseconds) of `record` as last read, with the probe's result if the policy
    /// has a probe. Returns the state; [`State::Fired`] means: ask for a failover to
    /// this cluster now, in the policy's mode.
    pub fn observe(
        &mut self,
        group: &Group,
        record: &Record,
        now: Time,
        probe: Option<Result<(), String>>,
    ) -> State {
        let active = record.active;
        let stamp = record.heartbeat[active.index()];
        match self.seen {
            Some((s, _)) if s == stamp => {}
            _ => self.seen = Some((stamp, now)),
        }
        if let Some(state) = Watch::inapplicable(group, record) {
            self.trigger.reset();
            return state;
        }
        let symptom = self.symptom(record, now, probe);
        let policy = self.policy.effective(group);
        let fired = self.trigger.observe(&policy, now, symptom.is_none());
        match symptom {
            None => State::Healthy,
            Some(s) if fired => State::Fired(s),
            Some(symptom) => {
                let (since, failures) = self.trigger.failing().unwrap_or((now, 1));
                State::Failing {
                    since,
                    failures,
                    symptom,
                    fires_at: self.trigger.fires_at(&policy).unwrap_or(now),
                }
            }
        }
    }

    /// The first thing wrong with the active cluster, if anything is.
    fn symptom(
        &self,
        record: &Record,
        now: Time,
        probe: Option<Result<(), String>>,
    ) -> Option<Symptom> {
        let age = self.seen.map_or(0, |(_, since)| now.saturating_sub(since));
        if age >= self.policy.heartbeat_age {
            return Some(Symptom::HeartbeatStale(age));
        }
        // No report (a process that has not heartbeated since its claim) is no evidence.
        if let Some(h) = record.health[record.active.index()] {
            if !h.workloads_ready {
                return Some(Symptom::WorkloadsNotReady);
            }
            if !h.traffic_open {
                return Some(Symptom::TrafficClosed);
            }
        }
        match probe {
            Some(Err(why)) => Some(Symptom::Probe(why)),
            _ => None,
        }
    }
}
