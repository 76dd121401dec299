//! Conformance with the model: every operator turn of a run is replayed through the
//! stateright model ([`FailoverModel`]'s `Model::actions` and `Model::next_state`).
//!
//! Before each turn the model's world is set to what the engine worked from: its
//! observation of its cluster, its local time, the request it knew, the model's memory
//! of that operator (kept across turns), and the record as the store had it when the
//! call landed (read back, or captured by the fake store for writes). Then:
//! - the model's decision there must be the engine's;
//! - the model must list the action the turn amounts to, `Act::Operator(c, fault)`,
//!   with the fault the fakes injected (store unavailable, applied-but-ambiguous,
//!   ambiguous and delayed or lost, Kubernetes error), as enabled;
//! - the model's next world must agree with the run: the record a write left, and the
//!   operator's memory after the reply was fed back.
//!
//! A Kubernetes call with lease keeping beside it (the engine's `Turn::during`) is the
//! model's slow call: `Act::Operator(c, Fault::Slow)`, then each lease-keeping turn with
//! the call in progress, then `Act::Finish(c, applied)`, or the self-fence that abandons
//! it.
//!
//! A hook's run (issue 13) is `Act::Operator(c, Fault::None)` if it succeeded and
//! `Fault::HookFails` if it failed (an error, or no success within its timeout) when it
//! took no time; one that took time (lease keeping beside it or not) is a slow call
//! like an effect's, `Fault::Slow` then `Act::Finish(c, ok)`, finished at the time the
//! run ended (the engine records a hook's outcome then, an effect's at its decision).
//!
//! Time passing and the controllers' partial progress are not replayed as model
//! actions: the model abstracts them (a tick happens only when everything is
//! quiescent, and a controller converges a whole kind at once), so the world is re-synced
//! from the run before every turn. A rejected turn is a conformance violation.

use failover_engine::executor::{Turn, TurnResult};
use failover_model::check::{
    Act, Asked, Budget, Busy, Call, Config, FailoverModel, Fault, Marks, World,
};
use failover_model::{
    Action, Audit, Cluster, ClusterState, Hooks, Identity, Memory, Mode, Purpose, Record, Reply,
    SpecPrint, Time, Timing, Variant,
};
use stateright::Model;

/// `others` with cluster `c`'s entry replaced by `mine`.
fn own<T>(c: Cluster, mut others: [T; 2], mine: T) -> [T; 2] {
    others[c.index()] = mine;
    others
}

/// The turn's call was slow: lease keeping ran beside it, or it was abandoned, or (a
/// hook) time passed while it ran.
fn slow(turn: &Turn, around: &Around<'_>) -> bool {
    let took_time = matches!(turn.decision.action, Action::Hook(_))
        && around.ended.is_some_and(|(now, _)| now != turn.now);
    !turn.during.is_empty() || turn.result == TurnResult::Abandoned || took_time
}

/// Where a turn stands with respect to a slow call.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// No slow call: the turn is one model action.
    Plain,
    /// A slow call starts (`Fault::Slow`).
    SlowStart,
    /// Lease keeping while this call is in progress.
    During(Busy),
}

/// The model one run's turns are replayed through.
#[derive(Clone, Debug)]
pub struct Replay {
    model: FailoverModel,
}

/// What the run looked like around one turn, besides the turn itself.
#[derive(Clone, Copy, Debug)]
pub struct Around<'a> {
    /// The operator's cluster's request (its `Failover` object) and its status, as the
    /// turn's inputs were made from it.
    pub asked: Option<Asked>,
    /// The other cluster's state now.
    pub peer: &'a ClusterState,
    /// The record now.
    pub record: Option<&'a Record>,
    /// The record the turn's write found at the store, if it reached it.
    pub write_found: Option<&'a Record>,
    /// Who the operator is.
    pub who: Who,
    /// The operator's monotonic and wall clocks when the turn returned (`None`: at its
    /// decision): when a hook's run ended.
    pub ended: Option<(Time, Time)>,
}

/// Who an operator is, as its decisions were made: the slot it is configured as, the
/// identity of the cluster it runs in (its copy of the spec is in each [`Turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Who {
    /// The slot it is configured as.
    pub slot: Cluster,
    /// Its cluster's identity.
    pub identity: Identity,
}

impl Replay {
    /// A replay for a group with `timing` (milliseconds) running `variant`.
    pub fn new(timing: Timing, variant: Variant) -> Replay {
        Replay {
            model: FailoverModel {
                config: Config {
                    name: "replay".into(),
                    variant,
                    modes: vec![Mode::Consistency, Mode::Uptime],
                    timing,
                    max_ticks: u8::MAX,
                    requests: u8::MAX,
                    any_direction: true,
                    withdrawals: u8::MAX,
                    request_at: vec![Cluster::A, Cluster::B],
                    deletions: u8::MAX,
                    crashes: u8::MAX,
                    store_faults: u8::MAX,
                    kube_faults: u8::MAX,
                    partitions: u8::MAX,
                    disasters: u8::MAX,
                    stuck_kinds: 0,
                    progress_ticks: u8::MAX,
                    slow_calls: u8::MAX,
                    call_ticks: u8::MAX,
                    outages: 0,
                    outage_ticks: None,
                    clock_steps: 0,
                    clock_step: 0,
                    skews: 0,
                    handovers: 0,
                    misconfigs: 0,
                    drifts: 0,
                    unlabelled: false,
                    first_start_misconfigured: false,
                    stuck_volumes: 0,
                    demotion_ticks: 0,
                    interventions: 0,
                    health_reports: true,
                    hooks: Hooks::NONE,
                    hook_faults: u8::MAX,
                    stale_views: 0,
                },
            },
        }
    }

    /// The group's hooks (`Group::hooks_layout`): the audit's policy of each.
    pub fn with_hooks(mut self, hooks: Hooks) -> Replay {
        self.model.config.hooks = hooks;
        self
    }

    /// Replay operator `c`'s `turn` and the lease keeping done during its call.
    /// `memory` is the model's memory of the operator before the turn and is left as the
    /// model's memory after it; `actual` is the engine's memory after it. `found` gives,
    /// in order, the record each of the turn's writes found at the store. On a
    /// disagreement, `memory` is re-synced to `actual` and the message says what the
    /// model rejected.
    pub fn turn(
        &self,
        c: Cluster,
        turn: &Turn,
        around: Around<'_>,
        found: &[Option<Record>],
        memory: &mut Memory,
        actual: &Memory,
    ) -> Result<(), String> {
        let result = self.replay_all(c, turn, around, found, memory, actual);
        if result.is_err() || memory != actual {
            *memory = actual.clone();
        }
        result
    }

    fn replay_all(
        &self,
        c: Cluster,
        turn: &Turn,
        around: Around<'_>,
        found: &[Option<Record>],
        memory: &mut Memory,
        actual: &Memory,
    ) -> Result<(), String> {
        let mut found = found.iter();
        let mut next_found = |t: &Turn| match t.decision.action {
            Action::Write(_) => found.next().cloned().flatten(),
            _ => None,
        };
        let call = match (&turn.decision.action, turn.decision.purpose) {
            (Action::Effect(step), _) => Some(Call::Effect(*step)),
            // The hook's step as the model's operator sees it (its view's failover).
            (Action::Hook(index), Purpose::Plan { at }) => memory
                .view
                .as_ref()
                .and_then(|v| v.failover)
                .map(|f| Call::Hook(*index, (f.id, f.kind, at))),
            _ => None,
        };
        let Some(call) = call else {
            let f = next_found(turn);
            let around = Around {
                write_found: f.as_ref(),
                ..around
            };
            return self.check(c, turn, around, Moment::Plain, memory, actual);
        };
        if !slow(turn, &around) {
            return self.check(c, turn, around, Moment::Plain, memory, actual);
        }
        // The call started, slow: nothing in the memory changes yet.
        let before = memory.clone();
        self.check(c, turn, around, Moment::SlowStart, memory, &before)?;
        let busy = Busy {
            call,
            purpose: turn.decision.purpose,
            until: 0,
        };
        for (t, after) in &turn.during {
            let f = next_found(t);
            let around = Around {
                write_found: f.as_ref(),
                ..around
            };
            self.check(c, t, around, Moment::During(busy), memory, after)?;
        }
        if turn.result == TurnResult::Abandoned {
            return Ok(());
        }
        // The call ended: applied (a hook: succeeded) or not.
        let (applied, (now, wall)) = match &turn.result {
            TurnResult::Hooked(r) => (
                r.result.is_ok(),
                around.ended.unwrap_or((turn.now, turn.wall)),
            ),
            r => (matches!(r, TurnResult::Changed(_)), (turn.now, turn.wall)),
        };
        // The record went missing while the call ran: nothing to replay against.
        let Some(record) = around.record else {
            *memory = actual.clone();
            return Ok(());
        };
        let at_end = Turn {
            now,
            wall,
            observed: turn.observed,
            spec: turn.spec,
            decision: turn.decision.clone(),
            result: TurnResult::NotSent,
            during: Vec::new(),
        };
        let mut world = self.world(c, &at_end, around, record, memory);
        world.busy[c.index()] = Some(Busy {
            until: world.tick,
            ..busy
        });
        let act = Act::Finish(c, applied);
        let next = self
            .model
            .next_state(&world, act)
            .ok_or_else(|| format!("the model has no next state for {act:?}"))?;
        *memory = next.memories[c.index()].clone();
        if memory != actual {
            return Err(format!(
                "after the slow call ended ({applied}) the model's memory is {memory:?}, the \
                 engine's {actual:?}"
            ));
        }
        Ok(())
    }

    fn check(
        &self,
        c: Cluster,
        turn: &Turn,
        around: Around<'_>,
        moment: Moment,
        memory: &mut Memory,
        actual: &Memory,
    ) -> Result<(), String> {
        let slow = matches!(moment, Moment::SlowStart);
        let busy = match moment {
            Moment::During(b) => Some(b),
            _ => None,
        };
        let action = &turn.decision.action;
        // `recreate-missing-record` creates a record where the model's worlds always
        // have one: nothing to replay against (the memory is re-synced).
        if matches!(action, Action::Write(failover_model::Op::Create { .. })) {
            *memory = actual.clone();
            return Ok(());
        }
        // The fault the turn met, and the record its store call saw.
        let (fault, record) = match (action, &turn.result) {
            (Action::Read, TurnResult::Read(Ok(Some(r)))) => (Fault::None, Some(r)),
            // No record yet: the engine creates it, which the model starts from (its
            // worlds begin with a record); the memory is re-synced to the engine's.
            (Action::Read, TurnResult::Read(Ok(None))) => {
                *memory = actual.clone();
                return Ok(());
            }
            (Action::Read, TurnResult::Read(Err(_))) => (Fault::StoreUnavailable, around.record),
            (Action::Write(_), TurnResult::Wrote(reply)) => match reply {
                Reply::Applied(_) | Reply::ConditionFailed(_) => {
                    let found = around
                        .write_found
                        .ok_or("a write was answered without reaching the store")?;
                    (Fault::None, Some(found))
                }
                Reply::Ambiguous => match around.write_found {
                    Some(found) => (Fault::AmbiguousApplied, Some(found)),
                    None => (Fault::AmbiguousDelayed, around.record),
                },
                Reply::Unavailable => (Fault::StoreUnavailable, around.record),
                // The record went missing: the model's worlds always have one, so
                // there is nothing to replay against (the memory is re-synced).
                Reply::Missing => {
                    *memory = actual.clone();
                    return Ok(());
                }
            },
            (Action::Effect(_), _) if slow => (Fault::Slow, around.record),
            (Action::Effect(_), TurnResult::Changed(_)) => (Fault::None, around.record),
            (Action::Effect(_), TurnResult::Failed(_)) => (Fault::KubeError, around.record),
            (Action::Hook(_), _) if slow => (Fault::Slow, around.record),
            (Action::Hook(_), TurnResult::Hooked(r)) if r.result.is_ok() => {
                (Fault::None, around.record)
            }
            (Action::Hook(_), TurnResult::Hooked(_)) => (Fault::HookFails, around.record),
            // A fence attempt with a failed step: the model's failed attempt (what the
            // others changed is in the cluster, which is re-synced before every turn).
            (Action::Fence(_), TurnResult::Fenced { failed, .. }) if failed.is_empty() => {
                (Fault::None, around.record)
            }
            (Action::Fence(steps), TurnResult::Fenced { .. }) => {
                // The model fails one step per fault; any fails the attempt the same way
                // for the memory, and the cluster is re-synced before the next turn.
                let step = steps.iter().next().ok_or("an empty fence")?;
                (Fault::FenceStepError(step), around.record)
            }
            (Action::Wait(_), TurnResult::Waited(_)) => (Fault::None, around.record),
            (a, r) => return Err(format!("the engine answered {a:?} with {r:?}")),
        };
        // Before the record exists (or while it is missing) there is no protocol
        // state to replay against: the memory is re-synced to the engine's.
        let Some(record) = record else {
            *memory = actual.clone();
            return Ok(());
        };
        let mut world = self.world(c, turn, around, record, memory);
        world.busy[c.index()] = busy.map(|b| Busy {
            until: world.tick,
            ..b
        });
        let decision = self.model.decision(&world, c);
        if decision != turn.decision {
            return Err(format!(
                "the model decides {:?}, the engine did {:?}",
                decision.action, action
            ));
        }
        if let Action::Wait(_) = action {
            // Waiting changes no memory, in the model and in the engine.
            return if memory == actual {
                Ok(())
            } else {
                Err(format!(
                    "after waiting the engine's memory is {actual:?}, the model's {memory:?}"
                ))
            };
        }
        let act = Act::Operator(c, fault);
        let mut enabled = Vec::new();
        self.model.actions(&world, &mut enabled);
        if !enabled.contains(&act) {
            return Err(format!("the model does not allow {act:?} here"));
        }
        let next = self
            .model
            .next_state(&world, act)
            .ok_or_else(|| format!("the model has no next state for {act:?}"))?;
        if let TurnResult::Wrote(Reply::Applied(after)) = &turn.result
            && next.records[0] != *after
        {
            return Err(format!(
                "the store left {after:?}; the model's store leaves {:?}",
                next.records[0]
            ));
        }
        *memory = next.memories[c.index()].clone();
        if memory != actual {
            return Err(format!(
                "after {action:?} ({fault:?}) the model's memory is {memory:?}, the engine's \
                 {actual:?}"
            ));
        }
        Ok(())
    }

    /// The model's world as operator `c` worked from it.
    fn world(
        &self,
        c: Cluster,
        turn: &Turn,
        around: Around<'_>,
        record: &Record,
        memory: &Memory,
    ) -> World {
        let clusters = own(c, [*around.peer; 2], turn.observed);
        let memories = own(c, [Memory::default(), Memory::default()], memory.clone());
        // Monotonic and wall time as offsets from a common tick (both non-negative).
        let tick = turn.now.min(turn.wall);
        let offset = own(c, [0, 0], turn.now - tick);
        let wall = own(c, [0, 0], turn.wall - tick);
        World {
            tick,
            offset,
            wall,
            busy: [None, None],
            down: [None, None],
            clusters,
            alive: [true, true],
            cut_off: [false, false],
            stuck: [None, None],
            csi_stuck: [false, false],
            demoting: [None, None],
            cached: [None, None],
            memories,
            ghost: None,
            instances: 0,
            records: vec![record.clone()],
            gone: false,
            traces: [None, None],
            slot: own(c, Cluster::ALL, around.who.slot),
            identity: own(
                c,
                Cluster::ALL.map(failover_model::check::identity),
                around.who.identity,
            ),
            specs: own(c, [SpecPrint::default(); 2], turn.spec),
            asked: own(c, [None, None], around.asked),
            in_transit: None,
            audit: Audit::default(),
            budget: Budget {
                requests: u8::MAX,
                withdrawals: u8::MAX,
                deletions: u8::MAX,
                crashes: u8::MAX,
                store_faults: u8::MAX,
                kube_faults: u8::MAX,
                partitions: u8::MAX,
                disasters: u8::MAX,
                stuck_kinds: 0,
                stuck_volumes: 0,
                interventions: 0,
                slow_calls: u8::MAX,
                outages: 0,
                clock_steps: 0,
                skews: 0,
                handovers: 0,
                misconfigs: 0,
                drifts: 0,
                hook_faults: u8::MAX,
                stale_views: 0,
            },
            calm_since: 0,
            marks: Marks::default(),
        }
    }
}
