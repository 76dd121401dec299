//! The conditional writes an operator sends to the global record, and their exact
//! semantics: the condition DynamoDB evaluates and the update it applies.
//!
//! [`apply`] is the specification of the DynamoDB adapter (the engine encodes each
//! [`Op`] as an `UpdateItem` or `TransactWriteItems` with these conditions) and the
//! implementation of the simulator's and the model's fake store.

use super::plan::Variant;
use super::types::{
    AbortReason, Cluster, FailoverId, Health, HistoryEntry, Identity, InFlight, Instance, Lock,
    Mode, Outcome, Pending, PlanKind, Record, SpecPrint, Time, Timing, Token,
};

/// What a person may do to a failover in flight, through the record (issue 10). Each is
/// conditional on the failover's id, its journal position and the fencing token the
/// person read, so it applies to exactly the state the person saw. An abort or a
/// resolve is carried out by the operator whose turn it is, with its own token
/// ([`Op::Abort`], [`Op::Resolve`]): the lock never moves under a holder that may be in
/// the middle of a step (the model found a person's abort racing the source's
/// demotion, which then landed without the lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Intervention {
    /// Roll back: allowed only while the target has promoted nothing
    /// ([`Plan::abortable`](crate::Plan::abortable)); the lock's holder (the source) ends it `aborted`, or at
    /// the target's hand-off either operator (the hand-off is refused from now on); the
    /// source stays active and restores what it stopped.
    Abort,
    /// Clear the `needs-operator` flag and raise the token: the operator whose turn it
    /// is tries again, with a new deadline.
    Retry,
    /// Complete a `needs-operator` failover as `resolved` when nothing but the target's
    /// work is left ([`Plan::resolvable`](crate::Plan::resolvable)): the target becomes active, and the skipped
    /// steps are left to its state at rest, which keeps converging them (traffic still
    /// opens only to ready workloads on primary volumes).
    Resolve,
}

impl Intervention {
    /// Every intervention.
    pub const ALL: [Intervention; 3] = [
        Intervention::Abort,
        Intervention::Retry,
        Intervention::Resolve,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Intervention::Abort => "abort",
            Intervention::Retry => "retry",
            Intervention::Resolve => "resolve",
        }
    }

    /// The person's write of this action on the failover `record` shows in flight,
    /// conditional on what the record shows (its id, journal position and token), or
    /// `None` if nothing is in flight. No operator process sends it: no instance, and
    /// either slot (`by` is not looked at).
    pub fn write(self, record: &Record, now: Time) -> Option<Write> {
        let f = record.failover?;
        Some(Write {
            by: Cluster::A,
            instance: 0,
            now,
            op: Op::Intervene {
                id: f.id,
                token: record.token,
                at: f.done,
                action: self,
            },
        })
    }

    /// Whether the record allows it now (the store's condition, less the token).
    pub fn allowed(self, record: &Record, variant: Variant) -> bool {
        let Some(f) = record.failover else {
            return false;
        };
        let plan = f.plan(variant);
        match self {
            Intervention::Abort => f.asked.is_none() && plan.abortable(f.kind, f.done),
            Intervention::Retry => f.stuck,
            Intervention::Resolve => f.asked.is_none() && f.stuck && plan.resolvable(f.done),
        }
    }
}

/// A write to the global record, with the local time it was sent at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// The operator that sends it.
    pub by: Cluster,
    /// The operator process that sends it: every op but [`Op::Claim`] applies only if the
    /// record names this instance as `by`'s owner.
    pub instance: Instance,
    /// The sender's local time when it sent the write.
    pub now: Time,
    /// What it asks for.
    pub op: Op,
}

/// The write operations of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `instance[by] = instance` if the record still names `prev`, and a heartbeat (the
    /// same condition and update as [`Op::Heartbeat`]): a starting operator process
    /// takes its cluster's slot with its first heartbeat. From then on the instance it replaced (a paused
    /// or partitioned old leader that may still run) has every write refused, so it
    /// renews no lease and changes nothing; and the new instance changes nothing either
    /// until that old instance's lease has provably run out (see [`Memory::hold_until`]).
    /// The condition makes a copy delayed in transit harmless: once any newer claim
    /// applied, `prev` is gone for good (instances are never reused).
    ///
    /// [`Memory::hold_until`]: crate::Memory::hold_until
    ///
    /// Since issue 10 the claim also proves which cluster the sender is: the slot must be
    /// unbound or bound to the sender's `identity` (the first claim binds it). An
    /// operator configured as the wrong cluster has its claim refused for good
    /// (`no-identity-check` leaves this out: it takes the other cluster's slot).
    Claim {
        /// The instance the sender read as the slot's owner.
        prev: Option<Instance>,
        /// The identity of the cluster the sender runs in.
        identity: Identity,
    },
    /// Report that the sender's claim of slot `by` was refused because the slot is bound
    /// to another identity: `contested[by] = identity`, so the slot's owner sees it too.
    /// Condition: the slot is bound to an identity other than `identity`. The only
    /// write besides a claim that needs no ownership (the sender owns nothing).
    Contest {
        /// The identity of the cluster the sender runs in.
        identity: Identity,
    },
    /// The operator of `by`, which owns its slot, withdraws its earlier contest of the
    /// peer's slot (it was configured as the wrong cluster and has been fixed):
    /// condition `contested[peer] = identity`; clears it.
    Uncontest {
        /// The identity of the cluster the sender runs in.
        identity: Identity,
    },
    /// `spec[by] = print`: the sender's copy of the group's spec, as a fingerprint. A
    /// failover starts ([`Op::Acquire`]) only while both slots' prints agree.
    Spec {
        /// The fingerprint.
        print: SpecPrint,
    },
    /// Create the group's record with `active` owning the application, as the engine
    /// does for a new group, if no record exists. The protocol never decides it: only
    /// the broken variant `recreate-missing-record` sends it, for a record that went
    /// missing, from the spec (token 0). On an existing record it is refused.
    Create {
        /// The spec's initial active cluster.
        active: Cluster,
    },
    /// `heartbeat[by] = now` if that moves it forward. Renews `by`'s lease. The condition
    /// matters: a heartbeat delayed in transit must never move a newer one back, or the
    /// peer would see the lease as expired while the cluster still serves (the model
    /// found this with a delayed write).
    ///
    /// It carries the sender's report of its application (`health[by] = health`), which
    /// is as fresh as the heartbeat: the standby's auto-failover trigger reads it. No
    /// protocol decision does.
    Heartbeat {
        /// What the sender observes of its application.
        health: Health,
    },
    /// Accept a failover request into the record (either operator writes the request its
    /// cluster has, in either direction): it becomes the pending request. Condition:
    /// nothing pending, nothing in flight, `id` never accepted, and `to` is not active
    /// (a request for the active cluster is [`Op::AlreadyActive`]). A request the
    /// condition refuses because another one holds the group is refused for good
    /// ([`Record::refuses`]); its requester reads the holder in the returned record.
    Request {
        /// The request's id.
        id: FailoverId,
        /// The cluster that should become active.
        to: Cluster,
        /// The mode asked for.
        mode: Mode,
    },
    /// End a request for the cluster that already is active at once, as a no-op in the
    /// history, with a new token (every history item has its own token, which orders the
    /// history in the store; no lock is taken). Condition: `to` is active, nothing pending, nothing in flight, `id` never
    /// accepted.
    AlreadyActive {
        /// The request's id.
        id: FailoverId,
        /// The cluster it asked for.
        to: Cluster,
    },
    /// Withdraw the pending request `id` before it started: history item `withdrawn`,
    /// with a new token (as [`Op::AlreadyActive`]). Condition: `id` is the pending
    /// request.
    Withdraw {
        /// The request's id.
        id: FailoverId,
    },
    /// Start a planned failover from `by` (the active cluster) for the pending request:
    /// new token, lock, journal at step 1. Condition: `by` is active, the pending request
    /// is `id` in `mode`, nothing in flight, lock free, and both clusters' spec prints
    /// agree ([`Record::specs_agree`]; a forced failover does not need that).
    Acquire {
        /// The request.
        id: FailoverId,
        /// Its mode.
        mode: Mode,
    },
    /// Force a failover to `by`: new token, lock, journal of the forced plan at step 1.
    /// Condition: `by` is not active, the active cluster's heartbeat is still `seen`
    /// (the one `by` watched stand for lease + drift of its own monotonic clock), and
    /// either the pending request is `id` (nothing in flight), or the failover in flight
    /// is `id` and not forced yet (a planned failover whose source went silent).
    ///
    /// No clock is compared here: the store checks only that the active cluster has not
    /// heartbeated since `by` began to wait. (Before issue 9 the condition compared the
    /// heartbeat's wall time with `by`'s wall clock, which a clock step of either
    /// cluster beyond the drift bound would defeat.)
    ///
    /// The last part makes the write apply at most once whatever its delay: its own
    /// effect (failover `id` forced) falsifies it until the failover ends, and an ended
    /// id is known to the history. Without it (the simulator found this, 2 seeds in a
    /// million) a copy delayed in transit lands with a lock computed from its sender's
    /// old time, already lapsed, so the sender's retry applies as well and the forced
    /// journal's first step is accepted twice. Every other op is safe from its own
    /// delayed copies: `Acquire` needs the id unknown, `TakeOver`, `Journal`, `Complete`
    /// and `Abort` need a journal position their own effect moves past (and only this op
    /// ever moves it back), `Heartbeat` needs a newer time.
    ForceTakeLock {
        /// The request (or the id of the stuck failover it takes over).
        id: FailoverId,
        /// The active cluster's heartbeat stamp the sender saw unchanged.
        seen: Option<Time>,
    },
    /// Take the lock at a hand-off: new token. Condition: failover `id` is at journal
    /// position `at` and the lock is free.
    TakeOver {
        /// The failover.
        id: FailoverId,
        /// The journal position of the `AwaitHandOff` step.
        at: u32,
    },
    /// Journal step `at` as done (and release the lock if it ends a phase). Condition:
    /// token is `token`, failover `id` at position `at`, and no person's abort asked
    /// (since issue 13: the holder then carries the abort out instead; a hook made it
    /// possible to journal past an abortable target position on a stale view).
    Journal {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The step's journal position.
        at: u32,
        /// The step ends its phase: release the lock (the hand-off mark).
        release: bool,
    },
    /// Complete: `active = target`, history item, release the lock, in one transaction.
    /// Condition: token, failover `id` at position `at`.
    Complete {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The journal position of the `Complete` step.
        at: u32,
    },
    /// Roll back before the target promoted anything: history item `aborted` with the
    /// reason, release the lock; the source stays active. Condition: token, failover
    /// `id` at position `at`, and `at` before the plan's promotion
    /// ([`Plan::abortable`](crate::Plan::abortable); since issue 10 the store checks it, so no writer can roll
    /// back a failover whose target may have promoted).
    Abort {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The journal position of the step that aborts.
        at: u32,
        /// Why.
        reason: AbortReason,
    },
    /// Flag `needs-operator`: the step at `at` missed its stage's deadline where no roll
    /// back is safe. Condition: token, failover `id` at position `at`, not flagged yet.
    Stuck {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The stuck step's journal position.
        at: u32,
    },
    /// Carry out a person's [`Intervention::Resolve`]: complete as `resolved` (the target
    /// active). Condition: token,
    /// failover `id` at position `at`, a resolve asked for, [`Plan::resolvable`](crate::Plan::resolvable).
    Resolve {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The stuck step's journal position.
        at: u32,
    },
    /// A person's action ([`Intervention`]), sent by the CLI: no process owns it, so it
    /// needs no slot ownership. Condition: failover `id` at position `at`, the token is
    /// `token` (the one the person read), and [`Intervention::allowed`]. A retry clears
    /// the flag and raises the token; an abort or a resolve is noted as asked.
    Intervene {
        /// The failover.
        id: FailoverId,
        /// The token the person read.
        token: Token,
        /// The journal position the person read.
        at: u32,
        /// What the person does.
        action: Intervention,
    },
}

impl Op {
    /// The fencing token the write claims, if it is a progress write.
    pub fn token(&self) -> Option<Token> {
        match self {
            Op::Journal { token, .. }
            | Op::Complete { token, .. }
            | Op::Abort { token, .. }
            | Op::Stuck { token, .. }
            | Op::Resolve { token, .. }
            | Op::Intervene { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// The (failover, journal position) this write completes, for the at-most-once audit.
    pub fn journal_key(&self) -> Option<(FailoverId, u32)> {
        match self {
            Op::Acquire { id, .. } | Op::ForceTakeLock { id, .. } => Some((*id, 0)),
            Op::TakeOver { id, at } | Op::Journal { id, at, .. } | Op::Complete { id, at, .. } => {
                Some((*id, *at))
            }
            Op::Abort { .. }
            | Op::Stuck { .. }
            | Op::Resolve { .. }
            | Op::Intervene { .. }
            | Op::Heartbeat { .. }
            | Op::Claim { .. }
            | Op::Contest { .. }
            | Op::Uncontest { .. }
            | Op::Spec { .. }
            | Op::Request { .. }
            | Op::AlreadyActive { .. }
            | Op::Withdraw { .. }
            | Op::Create { .. } => None,
        }
    }
}

/// Why the store refused a write (its condition was false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionFailed;

/// Apply `w` to `record` with the store's exact conditional semantics. On success,
/// returns the new record; on a false condition the record is unchanged.
pub fn apply(
    record: &Record,
    w: &Write,
    timing: &Timing,
    variant: Variant,
) -> Result<Record, ConditionFailed> {
    let check = |ok: bool| if ok { Ok(()) } else { Err(ConditionFailed) };
    let token_ok = |token: Token| variant == Variant::NoTokenCheck || record.token == token;
    let mut next = record.clone();
    let lock = |until_from: Time| {
        Some(Lock {
            holder: w.by,
            until: until_from + timing.lease_ttl,
        })
    };
    // Only the slot's owner writes (`stale-leader`: any instance of the cluster does).
    let owner = record.instance[w.by.index()] == Some(w.instance);
    // The record exists: a create is refused.
    check(!matches!(w.op, Op::Create { .. }))?;
    if !matches!(
        w.op,
        Op::Claim { .. } | Op::Contest { .. } | Op::Intervene { .. }
    ) {
        check(owner || variant == Variant::StaleLeader)?;
    }
    let bound = record.bound[w.by.index()];
    match w.op {
        Op::Create { .. } => return Err(ConditionFailed),
        Op::Claim { prev, identity } => {
            let identity_ok =
                variant == Variant::NoIdentityCheck || bound.is_none_or(|b| b == identity);
            check(identity_ok && record.instance[w.by.index()] == prev)?;
            next.bound[w.by.index()] = Some(identity);
            check(record.heartbeat[w.by.index()].is_none_or(|at| at < w.now))?;
            next.instance[w.by.index()] = Some(w.instance);
            next.heartbeat[w.by.index()] = Some(w.now);
            // A new process has not observed its cluster yet: no report until its
            // first heartbeat.
            next.health[w.by.index()] = None;
        }
        Op::Heartbeat { health } => {
            check(record.heartbeat[w.by.index()].is_none_or(|at| at < w.now))?;
            next.heartbeat[w.by.index()] = Some(w.now);
            next.health[w.by.index()] = Some(health);
        }
        Op::Contest { identity } => {
            check(bound.is_some_and(|b| b != identity))?;
            next.contested[w.by.index()] = Some(identity);
        }
        Op::Uncontest { identity } => {
            check(record.contested[w.by.peer().index()] == Some(identity))?;
            next.contested[w.by.peer().index()] = None;
        }
        Op::Spec { print } => {
            next.spec[w.by.index()] = Some(print);
        }
        Op::Request { id, to, mode } => {
            let free = record.held_by().is_none() && !record.accepted(id);
            check(free && record.active != to)?;
            next.request = Some(Pending {
                id,
                to,
                mode,
                by: w.by,
            });
        }
        Op::AlreadyActive { id, to } => {
            let free = record.held_by().is_none() && !record.accepted(id);
            check(free && record.active == to)?;
            next.token += 1;
            next.history.push(HistoryEntry {
                id,
                outcome: Outcome::NoOp,
            });
        }
        Op::Withdraw { id } => {
            check(record.request.is_some_and(|p| p.id == id))?;
            next.request = None;
            next.token += 1;
            next.history.push(HistoryEntry {
                id,
                outcome: Outcome::Withdrawn,
            });
        }
        Op::Acquire { id, mode } => {
            let asked = record
                .request
                .is_some_and(|p| p.id == id && p.mode == mode && p.to == w.by.peer());
            check(
                record.active == w.by
                    && record.failover.is_none()
                    && record.lock.is_none()
                    && asked
                    && record.specs_agree()
                    && !record.knows(id),
            )?;
            next.request = None;
            next.token += 1;
            next.lock = lock(w.now);
            next.failover = Some(InFlight {
                id,
                kind: PlanKind::Planned(mode),
                source: w.by,
                target: w.by.peer(),
                done: 1,
                stuck: false,
                asked: None,
                hooks: record.spec[w.by.index()]
                    .map(|p| p.hooks)
                    .unwrap_or_default(),
            });
        }
        Op::ForceTakeLock { id, seen } => {
            let active = record.active;
            let lease_over =
                variant == Variant::NoLeaseWait || record.heartbeat[active.index()] == seen;
            let repeatable = variant == Variant::RepeatableForce;
            let same_failover = record
                .failover
                .is_none_or(|f| f.id == id && (f.kind != PlanKind::Forced || repeatable));
            check(active != w.by && lease_over && same_failover)?;
            let asked = record.request.is_some_and(|p| p.id == id && p.to == w.by);
            check(record.failover.is_some() || asked)?;
            next.request = None;
            next.token += 1;
            next.lock = lock(w.now);
            next.failover = Some(InFlight {
                id,
                kind: PlanKind::Forced,
                source: active,
                target: w.by,
                done: 1,
                stuck: false,
                asked: None,
                hooks: record.spec[w.by.index()]
                    .map(|p| p.hooks)
                    .unwrap_or_default(),
            });
        }
        Op::TakeOver { id, at } => {
            let f = in_flight(record, id, at)?;
            let abort = f.asked == Some(Intervention::Abort);
            check(record.lock.is_none() && f.done == at && !abort)?;
            next.token += 1;
            next.lock = lock(w.now);
            set_done(&mut next, at + 1);
        }
        Op::Journal {
            id,
            token,
            at,
            release,
        } => {
            let f = in_flight(record, id, at)?;
            // While a person's abort is asked the failover does not move on: the
            // holder, re-reading, carries the abort out (an ask is only accepted
            // where a roll back is possible, and stays possible until then).
            let abort = f.asked == Some(Intervention::Abort);
            check(token_ok(token) && (!abort || variant == Variant::JournalPastAbort))?;
            next.lock = if release { None } else { lock(w.now) };
            set_done(&mut next, at + 1);
            // A phase that ended by itself needs no resolve any more.
            if let Some(f) = next.failover.as_mut().filter(|_| release) {
                f.asked = f.asked.filter(|a| *a == Intervention::Abort);
            }
        }
        Op::Complete { id, token, at } => {
            let f = in_flight(record, id, at)?;
            check(token_ok(token))?;
            next.active = f.target;
            next.lock = None;
            next.failover = None;
            next.history.push(HistoryEntry {
                id,
                outcome: Outcome::Completed(f.kind),
            });
        }
        Op::Abort {
            id,
            token,
            at,
            reason,
        } => {
            let f = in_flight(record, id, at)?;
            check(token_ok(token) && f.plan(variant).abortable(f.kind, at))?;
            next.lock = None;
            next.failover = None;
            next.history.push(HistoryEntry {
                id,
                outcome: Outcome::Aborted(reason),
            });
        }
        Op::Stuck { id, token, at } => {
            let f = in_flight(record, id, at)?;
            check(token_ok(token) && !f.stuck)?;
            if let Some(f) = next.failover.as_mut() {
                f.stuck = true;
            }
        }
        Op::Resolve { id, token, at } => {
            let f = in_flight(record, id, at)?;
            let plan = f.plan(variant);
            let asked = f.asked == Some(Intervention::Resolve);
            check(token_ok(token) && asked && plan.resolvable(at))?;
            // Nothing but the target's work was left: it is active.
            next.active = f.target;
            next.lock = None;
            next.failover = None;
            next.history.push(HistoryEntry {
                id,
                outcome: Outcome::Resolved,
            });
        }
        Op::Intervene {
            id,
            token,
            at,
            action,
        } => {
            in_flight(record, id, at)?;
            check(record.token == token && action.allowed(record, variant))?;
            if let Some(f) = next.failover.as_mut() {
                match action {
                    Intervention::Retry => {
                        f.stuck = false;
                        next.token += 1;
                    }
                    Intervention::Abort | Intervention::Resolve => f.asked = Some(action),
                }
            }
        }
    }
    Ok(next)
}

fn in_flight(record: &Record, id: FailoverId, at: u32) -> Result<InFlight, ConditionFailed> {
    match record.failover {
        Some(f) if f.id == id && f.done == at => Ok(f),
        _ => Err(ConditionFailed),
    }
}

/// Move the journal to `done`; a `needs-operator` flag clears with it (the stuck step is
/// behind). What a person asked for stays: an abort until the source carries it out, a
/// resolve until the target does (it skips the rest of the phase, wherever the phase
/// is by then) or the phase ends by itself.
fn set_done(record: &mut Record, done: u32) {
    if let Some(f) = record.failover.as_mut() {
        f.done = done;
        f.stuck = false;
    }
}
