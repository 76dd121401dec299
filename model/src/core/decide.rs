//! The decision function: from what an operator observed (its own cluster, its last view
//! of the global record, the pending request) and its local time, what it does next.
//!
//! Effects are data ([`Action`]); exactly one place in each driver executes them and
//! feeds the outcome back through [`Memory::on_read`] and [`Memory::on_write`]. The
//! operator's in-memory state ([`Memory`]) is small and losing it (a crash) is always
//! safe: everything that matters is in the record or in the cluster.

use super::plan::{Plan, START, STOP, Step, StepKind, StepSet, Variant};
use super::store::{Op, Write};
use super::types::{
    Cluster, ClusterState, FailoverId, InFlight, PlanKind, Record, Request, Stage, Time, Timing,
};

/// What an operator keeps in memory. [`Memory::default`] is the state after a (re)start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Memory {
    /// The global record as last read (or as returned by the last write).
    pub view: Option<Record>,
    /// Local time of the last heartbeat attempt with a known outcome.
    pub heartbeat_at: Option<Time>,
    /// This cluster may serve until this local time (last successful heartbeat + lease).
    pub lease_until: Option<Time>,
    /// DynamoDB was unavailable: no store call before this local time.
    pub retry_at: Option<Time>,
    /// The last write whose outcome was ambiguous (it may or may not have applied).
    pub unsure: Option<Op>,
    /// A Kubernetes change failed: no change to the cluster before this local time (a
    /// step that keeps failing is retried at this pace, never in a busy loop).
    pub kube_retry_at: Option<Time>,
}

/// The store's answer to a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Applied; the item after the write (`ReturnValues=ALL_NEW`).
    Applied(Record),
    /// The condition was false; the current item (`ReturnValuesOnConditionCheckFailure`).
    ConditionFailed(Record),
    /// Timed out or failed in a way that may or may not have applied.
    Ambiguous,
    /// Definitely not applied (throttled, unreachable, refused before execution).
    Unavailable,
}

impl Memory {
    /// Record the outcome of a change to the own cluster made at local time `now`
    /// (for a self-fence, `ok` only if every one of its steps succeeded).
    pub fn on_kube(&mut self, now: Time, timing: &Timing, ok: bool) {
        self.kube_retry_at = (!ok).then_some(now + timing.retry_after);
    }

    /// Record the outcome of a consistent read at local time `now`.
    pub fn on_read(&mut self, now: Time, timing: &Timing, read: Option<Record>) {
        match read {
            Some(record) => self.view = Some(record),
            None => self.retry_at = Some(now + timing.retry_after),
        }
    }

    /// Record the outcome of write `w`.
    pub fn on_write(&mut self, w: &Write, timing: &Timing, reply: Reply) {
        let heartbeat = w.op == Op::Heartbeat;
        match reply {
            Reply::Applied(record) | Reply::ConditionFailed(record) => {
                // A heartbeat's condition fails only when the record already holds this
                // heartbeat or a newer one: the lease is renewed either way.
                if heartbeat {
                    self.heartbeat_at = Some(w.now);
                    self.lease_until = Some(w.now + timing.lease_ttl);
                }
                self.view = Some(record);
                self.unsure = None;
            }
            Reply::Ambiguous => {
                // It may have applied: forget the view so the next decision re-reads and
                // sees which. A heartbeat that timed out renews nothing and is retried
                // after the back-off, like an unavailable one: retrying at once would let
                // a partition that only ever times out starve the self-fence (a unit
                // test found this; the model's fault budget hid it).
                self.view = None;
                self.unsure = Some(w.op);
                if heartbeat {
                    self.heartbeat_at = Some(w.now);
                    self.retry_at = Some(w.now + timing.retry_after);
                }
            }
            Reply::Unavailable => {
                if heartbeat {
                    self.heartbeat_at = Some(w.now);
                }
                self.retry_at = Some(w.now + timing.retry_after);
            }
        }
    }
}

/// The inputs of one decision besides the memory.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The deciding operator's cluster.
    pub me: Cluster,
    /// Its local time.
    pub now: Time,
    /// What it observes of its own cluster.
    pub cluster: &'a ClusterState,
    /// The pending failover request, if any.
    pub request: Option<Request>,
    /// Timing parameters.
    pub timing: &'a Timing,
    /// Protocol variant (always [`Variant::Correct`] in production).
    pub variant: Variant,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A consistent read of the global record.
    Read,
    /// A conditional write.
    Write(Op),
    /// An idempotent change to the operator's own cluster.
    Kube(Step),
    /// A self-fence attempt: every one of these stop steps, in the stop order. A step
    /// that fails (or hangs until its deadline) does not keep the later ones from being
    /// applied.
    Fence(StepSet),
    /// Nothing to do now.
    Wait(Wake),
}

/// When a waiting operator should decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Nothing to do but heartbeats; decide again at this local time.
    Idle(Time),
    /// Waiting for time to pass (a lease to run out, a retry back-off).
    At(Time),
    /// Waiting for the cluster or the other operator to change something.
    Change,
}

/// Why an action is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Renew this cluster's lease.
    Heartbeat,
    /// Refresh the view of the global record.
    Sync,
    /// Stop this cluster because it cannot prove its lease.
    Fence,
    /// Keep the cluster in its state at rest (active serves, standby stopped).
    Steady,
    /// A step of the failover plan (`at` is its journal position).
    Plan {
        /// Journal position.
        at: u32,
    },
    /// Re-ensure an already journaled step that a self-fence undid.
    Restore {
        /// Journal position.
        at: u32,
    },
}

/// One decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why.
    pub purpose: Purpose,
    /// The stage the action belongs to, for failover work.
    pub stage: Option<Stage>,
    /// The plan or fence step the action serves, if any.
    pub step: Option<Step>,
}

impl Decision {
    fn new(action: Action, purpose: Purpose) -> Decision {
        Decision {
            action,
            purpose,
            stage: None,
            step: None,
        }
    }

    fn wait(wake: Wake) -> Decision {
        Decision::new(Action::Wait(wake), Purpose::Steady)
    }

    fn at(mut self, stage: Stage, step: Step) -> Decision {
        self.stage = Some(stage);
        self.step = Some(step);
        self
    }

    /// The operator has something to do now (not waiting).
    pub fn is_urgent(&self) -> bool {
        !matches!(self.action, Action::Wait(_))
    }
}

/// Decide what the operator does next.
pub fn decide(input: &Inputs<'_>, mem: &Memory) -> Decision {
    let d = choose(input, mem);
    // A change to the cluster waits out the back-off of a failed one.
    match mem.kube_retry_at {
        Some(at) if input.now < at && matches!(d.action, Action::Kube(_) | Action::Fence(_)) => {
            Decision {
                action: Action::Wait(Wake::At(at)),
                ..d
            }
        }
        _ => d,
    }
}

fn choose(input: &Inputs<'_>, mem: &Memory) -> Decision {
    let now = input.now;
    let timing = input.timing;
    let store_ok = mem.retry_at.is_none_or(|at| now >= at);
    let heartbeat_due = mem
        .heartbeat_at
        .is_none_or(|at| now >= at + timing.heartbeat_every);
    if store_ok && heartbeat_due {
        return Decision::new(Action::Write(Op::Heartbeat), Purpose::Heartbeat);
    }
    let lease_ok = mem
        .lease_until
        .is_some_and(|until| now + timing.fence_margin < until);
    if !lease_ok
        && input.variant != Variant::NoSelfFence
        && input.cluster.needs_fencing()
        && let Some(d) = fence(input)
    {
        return d;
    }
    if !store_ok {
        return Decision::wait(Wake::At(mem.retry_at.unwrap_or(now)));
    }
    let Some(view) = mem.view.as_ref() else {
        return Decision::new(Action::Read, Purpose::Sync);
    };
    let idle = Decision::wait(Wake::Idle(
        mem.heartbeat_at.unwrap_or(now) + timing.heartbeat_every,
    ));
    match view.failover {
        Some(f) => in_flight(input, view, f).unwrap_or(idle),
        None => at_rest(input, view).unwrap_or(idle),
    }
}

/// A self-fence attempt: every stop step the cluster does not satisfy yet, in one
/// action, so one that keeps failing (a webhook rejecting a kind, an API call that hangs) never
/// keeps the volumes primary; once every change is made, wait for the cluster to report
/// it. (`fence-stops-at-failure`: one step after the other, stuck at a failing one.)
fn fence(input: &Inputs<'_>) -> Option<Decision> {
    if input.variant == Variant::FenceStopsAtFailure {
        return ensure(&STOP, input.cluster, Purpose::Fence);
    }
    let steps = StepSet::of(
        STOP.iter()
            .copied()
            .filter(|s| s.kind() == StepKind::Effect && !s.satisfied(input.cluster)),
    );
    if steps.is_empty() {
        return ensure(&STOP, input.cluster, Purpose::Fence);
    }
    Some(Decision::new(Action::Fence(steps), Purpose::Fence))
}

/// The first step of `steps` the cluster does not satisfy: apply it, or wait for it.
fn ensure(steps: &[Step], cluster: &ClusterState, purpose: Purpose) -> Option<Decision> {
    let step = steps.iter().copied().find(|s| !s.satisfied(cluster))?;
    let action = match step.kind() {
        StepKind::Effect => Action::Kube(step),
        _ => Action::Wait(Wake::Change),
    };
    let mut d = Decision::new(action, purpose);
    d.step = Some(step);
    Some(d)
}

/// No failover in flight: start one if asked, else keep the cluster at rest.
fn at_rest(input: &Inputs<'_>, view: &Record) -> Option<Decision> {
    let me = input.me;
    if let Some(r) = input
        .request
        .filter(|r| !view.knows(r.id) && r.to != view.active)
    {
        if view.active == me {
            let op = Op::Acquire {
                id: r.id,
                mode: r.mode,
            };
            return Some(
                Decision::new(Action::Write(op), Purpose::Plan { at: 0 })
                    .at(Stage::Initialization, Step::AcquireLock),
            );
        }
        if r.to == me {
            return Some(force_or_wait(input, view, r.id));
        }
    }
    let steps = if view.active == me { &START } else { &STOP };
    ensure(steps, input.cluster, Purpose::Steady)
}

/// The source's lease must run out before a forced failover: take the lock once it has,
/// else wait until it provably has.
fn force_or_wait(input: &Inputs<'_>, view: &Record, id: FailoverId) -> Decision {
    let timing = input.timing;
    let heartbeat = view.heartbeat[view.active.index()];
    let lease_over = input.variant == Variant::NoLeaseWait
        || timing.lease_provably_expired(heartbeat, input.now);
    let lock_over = view
        .lock
        .is_none_or(|l| l.until + timing.clock_drift_max < input.now);
    if lease_over && lock_over {
        return Decision::new(
            Action::Write(Op::ForceTakeLock { id }),
            Purpose::Plan { at: 0 },
        )
        .at(Stage::Initialization, Step::ForceTakeLock);
    }
    let lease_end = heartbeat.unwrap_or(0) + timing.lease_ttl + timing.clock_drift_max + 1;
    let lock_end = view
        .lock
        .map_or(0, |l| l.until + timing.clock_drift_max + 1);
    Decision::wait(Wake::At(lease_end.max(lock_end)))
}

/// A failover is in flight: restore what a fence undid, then run my next step.
fn in_flight(input: &Inputs<'_>, view: &Record, f: InFlight) -> Option<Decision> {
    let me = input.me;
    let plan = Plan::of(f.kind, input.variant);
    let role = f.role_of(me);
    for (at, ps) in plan.steps.iter().enumerate().take(f.done as usize) {
        if ps.owner == role
            && ps.step.kind() != StepKind::Record
            && !ps.step.satisfied(input.cluster)
        {
            let at = at as u32;
            let d = ensure(&[ps.step], input.cluster, Purpose::Restore { at })?;
            return Some(d.at(ps.stage, ps.step));
        }
    }
    if f.kind == PlanKind::Forced && me == f.source {
        return ensure(&STOP, input.cluster, Purpose::Steady);
    }
    let at = f.done;
    let ps = plan.get(at)?;
    let stuck = me == f.target && view.holder() != Some(me) && f.kind != PlanKind::Forced;
    if ps.owner != role {
        // The other cluster's turn. A target whose source goes silent takes over once
        // the source's lease provably ran out (the source fenced itself by then).
        if stuck {
            return Some(force_or_wait(input, view, f.id));
        }
        return Some(Decision::wait(Wake::Change));
    }
    let plan_decision = |action| Decision::new(action, Purpose::Plan { at }).at(ps.stage, ps.step);
    if ps.step == Step::AwaitHandOff {
        if view.lock.is_some() {
            return Some(Decision::wait(Wake::Change));
        }
        return Some(plan_decision(Action::Write(Op::TakeOver { id: f.id, at })));
    }
    if view.holder() != Some(me) {
        return Some(Decision::wait(Wake::Change));
    }
    let token = view.token;
    let journal = Action::Write(Op::Journal {
        id: f.id,
        token,
        at,
        release: plan.ends_phase(at),
    });
    let action = match ps.step.kind() {
        StepKind::Effect if !ps.step.satisfied(input.cluster) => Action::Kube(ps.step),
        StepKind::Await if !ps.step.satisfied(input.cluster) => Action::Wait(Wake::Change),
        StepKind::Effect | StepKind::Await => journal,
        StepKind::Record => match ps.step {
            Step::Validate => {
                let target_hb = view.heartbeat[f.target.index()];
                if input.timing.heartbeat_fresh(target_hb, input.now) {
                    journal
                } else {
                    Action::Write(Op::Abort {
                        id: f.id,
                        token,
                        at,
                    })
                }
            }
            Step::Complete => Action::Write(Op::Complete {
                id: f.id,
                token,
                at,
            }),
            _ => return Some(Decision::wait(Wake::Change)),
        },
    };
    Some(plan_decision(action))
}

/// A write built from a decision, stamped with the sender's time.
pub fn write(me: Cluster, now: Time, op: Op) -> Write {
    Write { by: me, now, op }
}
