//! The decision function: from what an operator observed (its own cluster, its last view
//! of the global record, the pending request) and its local time, what it does next.
//!
//! Effects are data ([`Action`]); exactly one place in each driver executes them and
//! feeds the outcome back through [`Memory::on_read`] and [`Memory::on_write`]. The
//! operator's in-memory state ([`Memory`]) is small and losing it (a crash) is always
//! safe: everything that matters is in the record or in the cluster.

use super::hooks::{HookRun, OnFailure};
use super::plan::{Effect, EffectSet, Plan, START, STOP, Step, StepKind, Variant};
use super::store::{Intervention, Op, Write};
use super::types::{
    AbortReason, Cluster, ClusterState, FailoverId, Health, Identity, InFlight, Instance, PlanKind,
    Record, Request, SpecPrint, Stage, Time, Timing, Token,
};

/// What an operator keeps in memory. [`Memory::started`] is the state after a (re)start.
///
/// Every time in it is a reading of the operator's *monotonic* clock (the model's
/// `Inputs::now`): wall-clock steps, in either direction and of any size, never move a
/// lease, a back-off or an observation of the peer. (`wall-clock-lease` keeps the lease
/// in wall time, as the engine did before issue 9.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Memory {
    /// The global record as last read (or as returned by the last write).
    pub view: Option<Record>,
    /// Time of the last heartbeat attempt with a known outcome.
    pub heartbeat_at: Option<Time>,
    /// This cluster may serve until this time: the send time of the last heartbeat the
    /// store *applied*, plus the lease. Only an applied heartbeat is credited: it is
    /// what the record proves to the peer.
    pub lease_until: Option<Time>,
    /// DynamoDB was unavailable: no store call before this time.
    pub retry_at: Option<Time>,
    /// The last write whose outcome was ambiguous (it may or may not have applied).
    pub unsure: Option<Op>,
    /// A Kubernetes change failed: no change to the cluster before this time (a
    /// step that keeps failing is retried at this pace, never in a busy loop).
    pub kube_retry_at: Option<Time>,
    /// What this operator has seen of the peer's heartbeat, judged by its own monotonic
    /// clock: the peer is silent (its lease provably over) only once the same heartbeat
    /// has stood in the record for `lease_ttl + clock_drift_max` of this clock.
    pub peer: Option<PeerSeen>,
    /// This operator process ([`Memory::started`]): its writes carry it, and the record
    /// accepts them only while it names this instance as the cluster's owner.
    pub instance: Instance,
    /// When this instance first saw the record name it as its cluster's owner (its
    /// [`Op::Claim`] applied). Nothing but the claim, reads, heartbeats and the fence
    /// happens before.
    pub claimed: Option<Time>,
    /// The instance its claim replaced (sent with the claim). If there was one, it may
    /// still run (a paused or partitioned old leader): see [`Memory::hold_until`].
    pub replaced: Option<Instance>,
    /// The record names another instance as the owner: this process was replaced and
    /// stops for good (the engine returns from its loop).
    pub superseded: bool,
    /// The store answered that the group's record does not exist, though this cluster
    /// kept a trace of it: it is not created again (only the explicit re-creation
    /// does that). The lease is dropped at once (nothing the record proved holds any
    /// more), so the cluster fences itself now and starts nothing on its old view;
    /// until the re-creation the store counts as unavailable.
    pub missing: bool,
    /// The record refused this process's claim because its slot is bound to another
    /// cluster's identity (the one here): the operator is configured as the wrong
    /// cluster. It refuses to act for good (until it is restarted with a fixed
    /// configuration): it keeps its own cluster stopped, the safe direction, writes
    /// nothing but a [`Op::Contest`] so the slot's owner sees it too, and reports why.
    pub misbound: Option<Identity>,
    /// When this process first saw the failover in flight in its current stage with the
    /// current token, while it held the lock: the stage's deadline counts from here, on its monotonic clock. A
    /// restart starts the count again (a deadline is never cut short).
    pub progress: Option<Progress>,
    /// The outcome of the last hook this process ran, until the journal moves past its
    /// step. A crash loses it: the hook runs again (at least once).
    pub hook: Option<HookRun>,
}

/// The failover's stage as one operator first saw it ([`Memory::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Progress {
    /// The failover.
    pub id: FailoverId,
    /// The stage of its journal position (in the protocol's plan).
    pub stage: Stage,
    /// The record's token then (a person's retry raises it: a new deadline).
    pub token: Token,
    /// When this operator first saw it.
    pub since: Time,
}

/// The peer's heartbeat as one operator observed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerSeen {
    /// The heartbeat stamp the record held.
    pub heartbeat: Option<Time>,
    /// When this operator first saw that stamp (its monotonic clock). The peer wrote it
    /// earlier, so the peer's lease, counted from its send time, ended before
    /// `since + lease_ttl` by the peer's clock.
    pub since: Time,
    /// The stamp was seen to change (it replaced one observed before): the peer wrote
    /// it after this operator's previous observation, so it is evidence of life.
    pub changed: bool,
}

impl PeerSeen {
    /// The peer's lease provably ended: its heartbeat has not changed for
    /// `lease_ttl + clock_drift_max` of this operator's clock.
    pub fn silent(&self, now: Time, timing: &Timing) -> bool {
        now > self.silent_from(timing) - 1
    }

    /// The first time at which [`PeerSeen::silent`] holds.
    pub fn silent_from(&self, timing: &Timing) -> Time {
        self.since + timing.lease_ttl + timing.clock_drift_max + 1
    }

    /// The peer heartbeated recently: a change was seen within the lease plus drift.
    pub fn fresh(&self, now: Time, timing: &Timing) -> bool {
        self.changed && !self.silent(now, timing)
    }
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
    /// Not applied: the group's record does not exist (deleted, or the table
    /// re-created). Every write needs it, and nothing but the explicit re-creation
    /// makes it again.
    Missing,
}

impl Memory {
    /// The memory of a process that just started, as `instance`.
    pub fn started(instance: Instance) -> Memory {
        Memory {
            instance,
            ..Memory::default()
        }
    }

    /// This process owns slot `me` and its view shows another cluster's operator
    /// contesting it (one configured as the wrong cluster).
    pub fn sees_contest(&self, me: Cluster) -> bool {
        self.claimed.is_some()
            && self
                .view
                .as_ref()
                .is_some_and(|v| v.contested[me.index()].is_some())
    }

    /// Until when this instance changes neither its cluster nor the failover's state
    /// (it claims, reads, heartbeats and fences only). The instance it replaced has had
    /// its writes refused since the claim, so its last lease was counted from a
    /// heartbeat sent before the claim, and it starts nothing once less than the fence
    /// lead of that lease is left ([`lease_ok`]): by `lease_ttl - fence_lead +
    /// clock_drift_max` of any clock after the claim, it can only stop things. Only
    /// then does this instance act on a view the old one can no longer contradict. No
    /// hold if the slot had no owner (the group's first start).
    pub fn hold_until(&self, timing: &Timing) -> Option<Time> {
        let claimed = self.claimed?;
        self.replaced?;
        Some(
            claimed + timing.lease_ttl.saturating_sub(timing.fence_lead()) + timing.clock_drift_max,
        )
    }

    /// Record the outcome of a change to the own cluster made at `now`
    /// (for a self-fence, `ok` only if every one of its steps succeeded).
    pub fn on_kube(&mut self, now: Time, timing: &Timing, ok: bool) {
        self.kube_retry_at = (!ok).then_some(now + timing.retry_after);
    }

    /// Record the outcome of a hook's run that ended at `now`: a failed one is run again
    /// (where its failure does not roll back or go on) no sooner than the back-off.
    pub fn on_hook(&mut self, run: HookRun, now: Time, timing: &Timing) {
        self.on_kube(now, timing, run.ok);
        self.hook = Some(run);
    }

    /// Record the outcome of a consistent read by `me` at `now`.
    pub fn on_read(&mut self, me: Cluster, now: Time, timing: &Timing, read: Option<Record>) {
        match read {
            Some(record) => self.see(me, now, record),
            None => self.retry_at = Some(now + timing.retry_after),
        }
    }

    /// The store answered at `now` that the record does not exist, and this cluster
    /// kept a trace of it ([`crate::Trace`]): like an unavailable store, and noted.
    pub fn on_missing(&mut self, now: Time, timing: &Timing) {
        self.view = None;
        self.missing = true;
        self.lease_until = None;
        self.retry_at = Some(now + timing.retry_after);
    }

    /// A current record arrived at `now`: keep it, and note the peer's heartbeat.
    fn see(&mut self, me: Cluster, now: Time, record: Record) {
        self.missing = false;
        match record.instance[me.index()] {
            Some(owner) if owner == self.instance => {
                self.claimed.get_or_insert(now);
            }
            // A re-created record names no owner: claim the slot again.
            None => {
                self.claimed = None;
                self.replaced = None;
            }
            Some(_) if self.claimed.is_some() => self.superseded = true,
            Some(_) => {}
        }
        // Only the operator a deadline concerns needs the count: the lock's holder (at
        // a hand-off the one that handed over watches the other's heartbeat instead).
        // Not noting it otherwise keeps the model's states few.
        let turn = |_: &InFlight| record.holder() == Some(me);
        self.hook = self.hook.filter(|h| {
            record
                .failover
                .is_some_and(|f| f.id == h.id && f.done == h.at)
        });
        self.progress = record.failover.filter(turn).and_then(|f| {
            let stage = f.next_step()?.stage;
            Some(match self.progress {
                Some(p) if p.id == f.id && p.stage == stage && p.token == record.token => p,
                _ => Progress {
                    id: f.id,
                    stage,
                    token: record.token,
                    since: now,
                },
            })
        });
        let heartbeat = record.heartbeat[me.peer().index()];
        match self.peer {
            Some(p) if p.heartbeat == heartbeat => {}
            seen => {
                self.peer = Some(PeerSeen {
                    heartbeat,
                    since: now,
                    changed: seen.is_some(),
                })
            }
        }
        self.view = Some(record);
    }

    /// Record the outcome of write `w`, sent at `sent` (the monotonic clock's reading
    /// when the write was sent; under `wall-clock-lease` the lease is counted from the
    /// write's wall stamp instead, and a refused heartbeat renews it too).
    pub fn on_write(
        &mut self,
        w: &Write,
        sent: Time,
        timing: &Timing,
        variant: Variant,
        reply: Reply,
    ) {
        // A claim is this process's first heartbeat.
        let heartbeat = matches!(w.op, Op::Heartbeat { .. } | Op::Claim { .. });
        if let Op::Claim { prev, identity } = w.op {
            self.replaced = prev;
            // Refused because the slot belongs to another cluster: for good.
            if let Reply::ConditionFailed(r) = &reply {
                self.misbound = r.bound[w.by.index()].filter(|b| *b != identity);
            }
        }
        let wall = variant == Variant::WallClockLease;
        let applied = matches!(reply, Reply::Applied(_));
        match reply {
            Reply::Applied(record) | Reply::ConditionFailed(record) => {
                // A heartbeat the store refused (the record holds this cluster's stamp
                // or a newer one: a copy of its own delayed in transit, or a restart
                // within the same millisecond, or a wall clock stepped back) proves
                // nothing new to the peer: no credit, and it stays due, so the next
                // decision sends another at once, stamped past the record's.
                if heartbeat && (applied || wall) {
                    self.heartbeat_at = Some(sent);
                    let from = if wall { w.now } else { sent };
                    self.lease_until = Some(from + timing.lease_ttl);
                }
                self.see(w.by, sent, record);
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
                    self.heartbeat_at = Some(sent);
                    self.retry_at = Some(sent + timing.retry_after);
                }
            }
            Reply::Unavailable | Reply::Missing => {
                if heartbeat {
                    self.heartbeat_at = Some(sent);
                }
                if reply == Reply::Missing {
                    self.on_missing(sent, timing);
                } else {
                    self.retry_at = Some(sent + timing.retry_after);
                }
            }
        }
    }
}

/// The wall stamp of a write by `me`: its wall clock, or past the newest heartbeat of
/// `me` the record is known to hold, whichever is later. Stamps only order one
/// cluster's heartbeats (the store refuses one older than the record's, so a copy
/// delayed in transit never moves a newer one back); nobody compares them with a clock,
/// so a wall clock stepped back never makes heartbeats fail and never shortens or
/// extends a lease. (`wall-clock-lease` stamps the wall clock as it is.)
pub fn stamp(me: Cluster, wall: Time, variant: Variant, mem: &Memory) -> Time {
    let known = mem
        .view
        .as_ref()
        .and_then(|v| v.heartbeat[me.index()])
        .map_or(0, |t| t + 1);
    if variant == Variant::WallClockLease {
        wall
    } else {
        wall.max(known)
    }
}

/// The inputs of one decision besides the memory.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The deciding operator's cluster.
    pub me: Cluster,
    /// Its monotonic clock: every lease, back-off and observation is judged by it.
    pub now: Time,
    /// Its wall clock: only the stamps of its writes ([`stamp`]) come from it.
    pub wall: Time,
    /// A call of the operator's work (a Kubernetes change) is still in progress. Lease
    /// keeping does not wait for it: a heartbeat due is written meanwhile, and once the
    /// lease runs low the call is abandoned for the self-fence.
    pub busy: bool,
    /// What it observes of its own cluster.
    pub cluster: &'a ClusterState,
    /// The identity of the cluster it runs in ([`Identity`]): its claim must match the
    /// slot's binding.
    pub identity: Identity,
    /// The fingerprint of its copy of the group's spec and of the members it found
    /// (the inventory), written into the record.
    pub spec: SpecPrint,
    /// The request this operator's cluster has (a `Failover` object) and the record has
    /// not refused: the operator writes it into the record until the record accepted it.
    /// (The driver stops passing a request once a reply shows it refused,
    /// [`Record::refuses`], or once it is withdrawn.)
    pub request: Option<Request>,
    /// A request of this cluster that was withdrawn (its `Failover` object deleted): the
    /// operator withdraws it from the record while it is pending there.
    pub withdraw: Option<FailoverId>,
    /// Timing parameters.
    pub timing: &'a Timing,
    /// Protocol variant (always [`Variant::Correct`] in production).
    pub variant: Variant,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A consistent read of the global record.
    Read,
    /// A conditional write.
    Write(Op),
    /// An idempotent change to the operator's own cluster.
    Effect(Effect),
    /// Run the group's hook with this index (a plan step; the driver feeds its outcome to
    /// [`Memory::on_hook`]).
    Hook(u8),
    /// A self-fence attempt: every one of these stop effects, in the stop order. One
    /// that fails (or hangs until its deadline) does not keep the later ones from being
    /// applied.
    Fence(EffectSet),
    /// Nothing to do now.
    Wait(Wake),
}

/// When a waiting operator should decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Take this cluster's slot in the record for this process.
    Claim,
    /// Renew this cluster's lease.
    Heartbeat,
    /// Refresh the view of the global record.
    Sync,
    /// Write this cluster's request into the record, or withdraw it.
    Request,
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
        Some(at)
            if input.now < at
                && matches!(
                    d.action,
                    Action::Effect(_) | Action::Fence(_) | Action::Hook(_)
                ) =>
        {
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
    // Before issue 9 nothing ran beside a call: no heartbeat, no abandoning it.
    if input.busy && input.variant == Variant::HeartbeatBehindTasks {
        return Decision::wait(Wake::Change);
    }
    // A replaced process stops for good (the engine leaves its loop); under
    // `stale-leader` nobody tells it.
    if mem.superseded && input.variant != Variant::StaleLeader {
        return Decision::wait(Wake::Change);
    }
    let store_ok = mem.retry_at.is_none_or(|at| now >= at);
    if let Some(bound) = mem.misbound {
        return misbound(input, mem, bound, store_ok);
    }
    // Before issue 10 a missing record was created again from the spec.
    if mem.missing && store_ok && input.variant == Variant::RecreateMissingRecord {
        return Decision::new(
            Action::Write(Op::Create { active: Cluster::A }),
            Purpose::Sync,
        );
    }
    // A process that just started takes its cluster's slot before anything else it
    // writes: from a view read after its start.
    if store_ok && mem.claimed.is_none() {
        return match mem.view.as_ref() {
            None => Decision::new(Action::Read, Purpose::Claim),
            Some(view) => Decision::new(
                Action::Write(Op::Claim {
                    prev: view.instance[input.me.index()],
                    identity: input.identity,
                }),
                Purpose::Claim,
            ),
        };
    }
    let heartbeat_due = mem
        .heartbeat_at
        .is_none_or(|at| now >= at + timing.heartbeat_every);
    if store_ok && heartbeat_due {
        let health = Health::of(input.cluster);
        return Decision::new(Action::Write(Op::Heartbeat { health }), Purpose::Heartbeat);
    }
    let lease_ok = lease_ok(input, mem);
    if input.busy {
        // A call in progress when the lease runs low is abandoned: the fence re-asserts
        // every stop step, whatever the call was doing.
        let abandons = !matches!(
            input.variant,
            Variant::NoSelfFence | Variant::FenceStopsAtFailure
        );
        if !lease_ok && abandons {
            let all = EffectSet::of(STOP.iter().filter_map(|s| s.effect()));
            return Decision::new(Action::Fence(all), Purpose::Fence);
        }
        let next_heartbeat = next_heartbeat(input, mem).max(mem.retry_at.unwrap_or(0));
        let fence_point = mem
            .lease_until
            .map_or(now, |u| u.saturating_sub(fence_lead(input)));
        let wake = if lease_ok {
            next_heartbeat.min(fence_point.max(now + 1))
        } else {
            next_heartbeat
        };
        return Decision::wait(Wake::At(wake));
    }
    if !lease_ok
        && input.variant != Variant::NoSelfFence
        && input.cluster.needs_fencing()
        && let Some(d) = fence(input)
    {
        // Waiting for the cluster to report the fence: a store retry due still wakes it
        // (`deep` found an operator that looked idle for ever behind a volume whose
        // driver never reported the demotion).
        return match (&d.action, mem.retry_at) {
            (Action::Wait(Wake::Change), Some(at)) if !store_ok => Decision {
                action: Action::Wait(Wake::At(at)),
                ..d
            },
            _ => d,
        };
    }
    if !store_ok {
        return Decision::wait(Wake::At(mem.retry_at.unwrap_or(now)));
    }
    let Some(view) = mem.view.as_ref() else {
        return Decision::new(Action::Read, Purpose::Sync);
    };
    let next_heartbeat = next_heartbeat(input, mem);
    if let Some(d) = report(input, view) {
        return d;
    }
    if let Some(d) = ask(input, view) {
        return d;
    }
    let idle = Decision::wait(Wake::Idle(next_heartbeat));
    let d = match view.failover {
        Some(f) => in_flight(input, mem, view, f).unwrap_or(idle),
        None => at_rest(input, mem, view).unwrap_or(idle),
    };
    // Without a lease nothing is started: a start step (or a hook) waits for the next
    // heartbeat.
    let d = match d.action {
        Action::Effect(e) if !lease_ok && !e.stops() => Decision {
            action: Action::Wait(Wake::At(next_heartbeat)),
            ..d
        },
        Action::Hook(_) if !lease_ok => Decision {
            action: Action::Wait(Wake::At(next_heartbeat)),
            ..d
        },
        _ => d,
    };
    // A process that replaced another changes nothing until the other's lease is over.
    match mem.hold_until(timing) {
        Some(until) if now < until && input.variant != Variant::StaleLeader && changes(&d) => {
            Decision {
                action: Action::Wait(Wake::At(until)),
                ..d
            }
        }
        _ => d,
    }
}

/// This operator may still serve, and start things: its lease, as the record proves it
/// to the peer, has more than the fence lead left ([`Timing::fence_lead`]). A decided start step is sent only
/// if this still holds when it is sent (a process paused between deciding and sending
/// drops it).
pub fn lease_ok(input: &Inputs<'_>, mem: &Memory) -> bool {
    let lease_clock = if input.variant == Variant::WallClockLease {
        input.wall
    } else {
        input.now
    };
    mem.lease_until
        .is_some_and(|until| lease_clock + fence_lead(input) < until)
}

/// How much lease is left when the fence starts: its steps and the driver's demotion
/// (`fence-ignores-demotion`: its steps only, the engine before issue 17).
fn fence_lead(input: &Inputs<'_>) -> Time {
    if input.variant == Variant::FenceIgnoresDemotion {
        input.timing.fence_margin
    } else {
        input.timing.fence_lead()
    }
}

/// The decision changes the cluster or the failover's state (anything but reads,
/// heartbeats, claims, requests, the fence and waiting).
fn changes(d: &Decision) -> bool {
    match &d.action {
        Action::Effect(_) => d.purpose != Purpose::Fence,
        Action::Hook(_) => true,
        Action::Write(op) => !matches!(
            op,
            Op::Heartbeat { .. }
                | Op::Claim { .. }
                | Op::Contest { .. }
                | Op::Uncontest { .. }
                | Op::Spec { .. }
                | Op::Create { .. }
                | Op::Request { .. }
                | Op::AlreadyActive { .. }
                | Op::Withdraw { .. }
        ),
        Action::Read | Action::Fence(_) | Action::Wait(_) => false,
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
    let steps = EffectSet::of(
        STOP.iter()
            .filter_map(|s| s.effect())
            .filter(|e| !e.satisfied(input.cluster)),
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
        StepKind::Effect(e) => Action::Effect(e),
        StepKind::Record | StepKind::Await | StepKind::Hook(_) => Action::Wait(Wake::Change),
    };
    let mut d = Decision::new(action, purpose);
    d.step = Some(step);
    Some(d)
}

/// An operator configured as the wrong cluster (its claim refused: the slot is bound to
/// `bound`): it keeps its own cluster stopped (the fence, whatever the record says: it
/// cannot tell which cluster it runs as), makes sure the record shows the contest, and
/// otherwise waits to be restarted with a fixed configuration.
fn misbound(input: &Inputs<'_>, mem: &Memory, bound: Identity, store_ok: bool) -> Decision {
    if input.cluster.needs_fencing()
        && let Some(d) = fence(input)
    {
        return d;
    }
    let me = input.me.index();
    let shown = mem
        .view
        .as_ref()
        .is_some_and(|v| v.contested[me] == Some(input.identity) || v.bound[me] != Some(bound));
    match (shown, store_ok) {
        (true, _) => Decision::wait(Wake::Change),
        (false, true) => Decision::new(
            Action::Write(Op::Contest {
                identity: input.identity,
            }),
            Purpose::Sync,
        ),
        (false, false) => Decision::wait(Wake::At(mem.retry_at.unwrap_or(input.now))),
    }
}

/// Keep the record's view of this cluster current: its spec's fingerprint, and no
/// contest of the peer's slot left from a time this cluster's operator was configured
/// as the wrong cluster.
fn report(input: &Inputs<'_>, view: &Record) -> Option<Decision> {
    let me = input.me;
    let print = own_print(input);
    let op = if view.spec[me.index()] != Some(print) {
        Op::Spec { print }
    } else if view.contested[me.peer().index()] == Some(input.identity) {
        Op::Uncontest {
            identity: input.identity,
        }
    } else {
        return None;
    };
    Some(Decision::new(Action::Write(op), Purpose::Sync))
}

/// The print this operator writes: its spec's and its inventory (none under
/// `empty-selection-done`, which compares no inventories).
fn own_print(input: &Inputs<'_>) -> SpecPrint {
    if input.variant == Variant::EmptySelectionDone {
        SpecPrint {
            inventory: 0,
            ..input.spec
        }
    } else {
        input.spec
    }
}

/// The members `cluster`'s operator last reported finding (its inventory in the record)
/// are the ones this operator finds: a promotion or a forced takeover covers exactly
/// what the other cluster has (a cluster that never reported one passes).
fn same_inventory(input: &Inputs<'_>, view: &Record, cluster: Cluster) -> bool {
    input.variant == Variant::EmptySelectionDone
        || view.spec[cluster.index()].is_none_or(|p| p.inventory == own_print(input).inventory)
}

/// This cluster's own request: write it into the record until the record has it (the
/// store decides, so a view that may be stale only chooses which write: a request for
/// the active cluster ends at once as a no-op); withdraw a withdrawn one while it is
/// pending.
fn ask(input: &Inputs<'_>, view: &Record) -> Option<Decision> {
    if let Some(id) = input.withdraw
        && view.request.is_some_and(|p| p.id == id)
    {
        return Some(Decision::new(
            Action::Write(Op::Withdraw { id }),
            Purpose::Request,
        ));
    }
    let r = input.request.filter(|r| !view.accepted(r.id))?;
    let op = if view.active == r.to {
        Op::AlreadyActive { id: r.id, to: r.to }
    } else {
        Op::Request {
            id: r.id,
            to: r.to,
            mode: r.mode,
        }
    };
    Some(Decision::new(Action::Write(op), Purpose::Request))
}

/// No failover in flight: start the pending request's (the active cluster acquires the
/// lock; the target waits for that, or forces once the active cluster's lease provably
/// ran out), else keep the cluster at rest.
fn at_rest(input: &Inputs<'_>, mem: &Memory, view: &Record) -> Option<Decision> {
    let me = input.me;
    if let Some(p) = view.request.filter(|p| p.to != view.active) {
        // While the copies of the spec differ the request waits until they agree (each
        // operator reports its own; a forced failover stays possible).
        if view.active == me && view.specs_agree() {
            let op = Op::Acquire {
                id: p.id,
                mode: p.mode,
            };
            return Some(
                Decision::new(Action::Write(op), Purpose::Plan { at: 0 })
                    .at(Stage::Initialization, Step::AcquireLock),
            );
        }
        if p.to == me {
            return Some(force_or_wait(input, mem, view, p.id));
        }
    }
    let steps = if view.active == me { &START } else { &STOP };
    ensure(steps, input.cluster, Purpose::Steady)
}

/// The source's lease must run out before a forced failover: take the lock once it
/// provably has (its heartbeat unchanged for lease + drift of this operator's monotonic
/// clock), else wait until it has. The write is conditional on the heartbeat still being
/// the one seen, so a heartbeat landing meanwhile (the source alive after all) stops it.
fn force_or_wait(input: &Inputs<'_>, mem: &Memory, view: &Record, id: FailoverId) -> Decision {
    let timing = input.timing;
    let seen = view.heartbeat[view.active.index()];
    let observed = mem.peer.filter(|p| p.heartbeat == seen);
    let lease_over = input.variant == Variant::NoLeaseWait
        || observed.is_some_and(|p| p.silent(input.now, timing));
    // A source that found other members than this cluster finds (its volumes not
    // selected, say) cannot be trusted to have fenced them: no forced takeover.
    if lease_over && !same_inventory(input, view, view.active) {
        return Decision::wait(Wake::Idle(next_heartbeat(input, mem)));
    }
    if lease_over {
        return Decision::new(
            Action::Write(Op::ForceTakeLock { id, seen }),
            Purpose::Plan { at: 0 },
        )
        .at(Stage::Initialization, Step::ForceTakeLock);
    }
    match observed {
        Some(p) => Decision::wait(Wake::At(p.silent_from(timing))),
        // The next heartbeat's reply brings the record and with it an observation.
        None => Decision::wait(Wake::At(next_heartbeat(input, mem))),
    }
}

/// When the next heartbeat is due.
fn next_heartbeat(input: &Inputs<'_>, mem: &Memory) -> Time {
    mem.heartbeat_at.unwrap_or(input.now) + input.timing.heartbeat_every
}

/// A failover is in flight: restore what a fence undid, then run my next step.
fn in_flight(input: &Inputs<'_>, mem: &Memory, view: &Record, f: InFlight) -> Option<Decision> {
    let me = input.me;
    let plan = f.plan(input.variant);
    if let Some(d) = restore(input, mem, view, f, plan) {
        return Some(d);
    }
    if f.kind == PlanKind::Forced && me == f.source {
        return ensure(&STOP, input.cluster, Purpose::Steady);
    }
    let at = f.done;
    let ps = plan.get(at)?;
    if let Some(op) = asked(me, view, f, plan) {
        return Some(Decision::new(Action::Write(op), Purpose::Plan { at }).at(ps.stage, ps.step));
    }
    own_step(input, mem, view, f, plan)
}

/// Restore what a fence undid: the first journaled step of this cluster's that its
/// cluster no longer satisfies.
fn restore(
    input: &Inputs<'_>,
    mem: &Memory,
    view: &Record,
    f: InFlight,
    plan: &Plan,
) -> Option<Decision> {
    let me = input.me;
    let role = f.role_of(me);
    let (at, ps) = plan
        .steps
        .iter()
        .enumerate()
        .take(f.done as usize)
        .find(|(_, ps)| {
            ps.owner == role
                && matches!(ps.step.kind(), StepKind::Effect(_) | StepKind::Await)
                && !ps.step.satisfied(input.cluster)
        })?;
    let at = at as u32;
    let d = ensure(&[ps.step], input.cluster, Purpose::Restore { at })?;
    let d = d.at(ps.stage, ps.step);
    // A restore is the holder's work at its position too: bounded by the current
    // stage's deadline (`deep` found a target restoring a promotion its stuck driver
    // never confirmed, unflagged for ever).
    Some(match plan.get(f.done) {
        Some(now) if view.holder() == Some(me) => {
            on_deadline(input, mem, view, f, (plan, now.stage), d)
        }
        _ => d,
    })
}

/// A person's abort or resolve, carried out by the operator whose turn it is: the
/// lock's holder, or at a hand-off (the lock free) either side, so an abort does not
/// wait for a source that is gone (the target has promoted nothing yet, and its
/// hand-off is refused from now on: the simulator found it retrying that for ever).
fn asked(me: Cluster, view: &Record, f: InFlight, plan: &Plan) -> Option<Op> {
    let (at, token) = (f.done, view.token);
    let turn = view.holder() == Some(me) || view.lock.is_none();
    match f.asked? {
        Intervention::Abort if turn && plan.abortable(f.kind, at) => Some(Op::Abort {
            id: f.id,
            token,
            at,
            reason: AbortReason::Person,
        }),
        Intervention::Resolve if view.holder() == Some(me) && plan.resolvable(at) => {
            Some(Op::Resolve {
                id: f.id,
                token,
                at,
            })
        }
        _ => None,
    }
}

/// The step at the journal position: this operator's to run (or its hand-off to take),
/// or the other's to wait for.
fn own_step(
    input: &Inputs<'_>,
    mem: &Memory,
    view: &Record,
    f: InFlight,
    plan: &Plan,
) -> Option<Decision> {
    let me = input.me;
    let role = f.role_of(me);
    let (at, token) = (f.done, view.token);
    let ps = plan.get(at)?;
    let stuck = me == f.target && view.holder() != Some(me) && f.kind != PlanKind::Forced;
    if ps.owner != role {
        // The other cluster's turn. A target whose source goes silent takes over once
        // the source's lease provably ran out (the source fenced itself by then).
        if stuck {
            return Some(force_or_wait(input, mem, view, f.id));
        }
        if ps.step == Step::AwaitHandOff {
            return Some(hand_off_wait(input, mem, view, f, (plan, ps.stage)));
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
    // The target promotes only what the source demoted: the same volumes (its
    // inventory as the source last reported it).
    if ps.step == Step::PromoteVolumes && !same_inventory(input, view, f.source) {
        return Some(Decision::wait(Wake::Idle(next_heartbeat(input, mem))));
    }
    let journal = Action::Write(Op::Journal {
        id: f.id,
        token,
        at,
        release: plan.ends_phase(at),
    });
    let action = match ps.step.kind() {
        StepKind::Hook(i) => {
            let run = mem.hook.filter(|h| h.id == f.id && h.at == at);
            let continues = plan
                .hook_at(at)
                .is_some_and(|(_, h)| h.on_failure == OnFailure::Continue);
            match run {
                Some(r) if r.ok || continues => journal,
                Some(_) if plan.hook_aborts(f.kind, at) => Action::Write(Op::Abort {
                    id: f.id,
                    token,
                    at,
                    reason: AbortReason::Hook(i),
                }),
                // Not run yet, or failed where no roll back is safe any more: (again,
                // after the back-off) until the stage's deadline flags it.
                _ => Action::Hook(i),
            }
        }
        StepKind::Effect(e) if !e.satisfied(input.cluster) => Action::Effect(e),
        StepKind::Await if !ps.step.satisfied(input.cluster) => Action::Wait(Wake::Change),
        StepKind::Effect(_) | StepKind::Await => journal,
        StepKind::Record => match ps.step {
            Step::Validate => {
                // The target is healthy if its heartbeat was seen to change within the
                // lease; silent if unchanged for longer; else wait for a verdict (an
                // operator that just restarted has seen no change yet).
                let seen = view.heartbeat[f.target.index()];
                match mem.peer.filter(|p| p.heartbeat == seen) {
                    Some(p) if p.fresh(input.now, input.timing) => journal,
                    Some(p) if p.silent(input.now, input.timing) => Action::Write(Op::Abort {
                        id: f.id,
                        token,
                        at,
                        reason: AbortReason::TargetSilent,
                    }),
                    Some(p) => Action::Wait(Wake::At(p.silent_from(input.timing))),
                    None => Action::Wait(Wake::At(next_heartbeat(input, mem))),
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
    let d = plan_decision(action);
    Some(match d.action {
        // Work on the own cluster, or waiting for it: bounded by the stage's deadline.
        Action::Effect(_) | Action::Hook(_) | Action::Wait(_) => {
            on_deadline(input, mem, view, f, (plan, ps.stage), d)
        }
        _ => d,
    })
}

/// The source handed over and waits for the target to take over. A target whose
/// heartbeat stops (lease plus drift of this operator's clock, as a forced takeover
/// judges a source) never will: while it has promoted nothing the source rolls back
/// (its cluster restores what it stopped), else the record flags `needs-operator`.
fn hand_off_wait(
    input: &Inputs<'_>,
    mem: &Memory,
    view: &Record,
    f: InFlight,
    (plan, stage): (&Plan, Stage),
) -> Decision {
    let seen = view.heartbeat[input.me.peer().index()];
    let observed = mem.peer.filter(|p| p.heartbeat == seen);
    if input.variant == Variant::NoStageDeadline || f.stuck {
        return Decision::wait(Wake::Change);
    }
    match observed {
        Some(p) if p.silent(input.now, input.timing) => {
            overdue(view, f, (plan, stage), AbortReason::TargetSilent)
        }
        Some(p) => Decision::wait(Wake::At(p.silent_from(input.timing))),
        None => Decision::wait(Wake::At(next_heartbeat(input, mem))),
    }
}

/// The failover waited too long at its journal position: roll it back (`why`) while the
/// target has promoted nothing ([`Plan::abortable`]), else flag it `needs-operator`.
fn overdue(
    view: &Record,
    f: InFlight,
    (plan, stage): (&Plan, Stage),
    why: AbortReason,
) -> Decision {
    let (id, token, at) = (f.id, view.token, f.done);
    let op = if plan.abortable(f.kind, at) {
        Op::Abort {
            id,
            token,
            at,
            reason: why,
        }
    } else {
        Op::Stuck { id, token, at }
    };
    Decision::new(Action::Write(op), Purpose::Plan { at }).at(stage, plan.steps[at as usize].step)
}

/// Decision `d` of the operator whose turn it is at the failover's journal position
/// (its work on the position's step, or its wait for the other cluster to take over),
/// bounded by the stage's deadline: once the failover has stood there for the deadline
/// (by this operator's clock, since it first saw the position), it rolls back while the
/// target has promoted nothing ([`Plan::abortable`]: the source stays active and
/// restores what it stopped), else flags `needs-operator` once and keeps trying (the
/// flag clears with the next journal entry; a person may retry or resolve). A wait
/// wakes at the deadline.
fn on_deadline(
    input: &Inputs<'_>,
    mem: &Memory,
    view: &Record,
    f: InFlight,
    (plan, stage): (&Plan, Stage),
    d: Decision,
) -> Decision {
    if input.variant == Variant::NoStageDeadline {
        return d;
    }
    // A stage not seen before (the view is newer than the memory's note) counts from
    // now.
    let since = mem
        .progress
        .filter(|p| p.id == f.id && p.stage == stage && p.token == view.token)
        .map_or(input.now, |p| p.since);
    let due = since + input.timing.deadline(stage);
    if input.now >= due && (plan.abortable(f.kind, f.done) || !f.stuck) {
        return overdue(view, f, (plan, stage), AbortReason::Deadline(stage));
    }
    match d.action {
        Action::Wait(Wake::Change) if !f.stuck => Decision {
            action: Action::Wait(Wake::At(due)),
            ..d
        },
        _ => d,
    }
}

/// The request a reply refused, and the request that held the group then: the reply
/// to `op` (a request or a no-op) found its condition false because another request
/// held the group ([`Record::refuses`]). The requester's status says so for good.
pub fn refusal(op: &Op, reply: &Reply) -> Option<(FailoverId, FailoverId)> {
    let (Op::Request { id, .. } | Op::AlreadyActive { id, .. }, Reply::ConditionFailed(r)) =
        (op, reply)
    else {
        return None;
    };
    r.refuses(*id).map(|holder| (*id, holder))
}

/// A write built from a decision by the process `mem` describes, with the sender's
/// stamp (see [`stamp`]).
pub fn write(me: Cluster, mem: &Memory, now: Time, op: Op) -> Write {
    Write {
        by: me,
        instance: mem.instance,
        now,
        op,
    }
}
