//! Unit tests of the protocol core through the crate's public API: the decision
//! function, the operator's memory, the store's conditional writes, the plans, the
//! effect steps and the auto-failover trigger. Every test asserts whole values.

use failover_model::core::trigger::{PolicyError, Trigger, TriggerPolicy};
use failover_model::{
    AbortReason, Action, Agreement, Agreements, Audit, Cluster, ClusterState, ConditionFailed,
    Decision, Effect, EffectSet, FailoverId, Health, HistoryEntry, HookRun, HookSpot, Hooks,
    InFlight, Inputs, Instance, Intervention, Lock, Memory, Mode, OnFailure, Op, Outcome, PeerSeen,
    Pending, Plan, PlanKind, PlanStep, Progress, Purpose, Record, Reply, Request, Role, START,
    STOP, SpecPrint, Stage, Step, StepKind, Time, Timing, Token, Trace, Variant, VolumeRole, Wake,
    Write, apply, decide,
};

use Cluster::{A, B};

const TIMING: Timing = Timing {
    lease_ttl: 3,
    clock_drift_max: 1,
    fence_margin: 1,
    driver_demotion: 0,
    heartbeat_every: 1,
    retry_after: 1,
    stage_deadline: [1_000; 6],
};

const SERVING: ClusterState = ClusterState::SERVING;
const STANDBY: ClusterState = ClusterState::STANDBY;

const CONSISTENCY: PlanKind = PlanKind::Planned(Mode::Consistency);
const UPTIME: PlanKind = PlanKind::Planned(Mode::Uptime);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn inputs(me: Cluster, now: Time, cluster: &ClusterState, request: Option<Request>) -> Inputs<'_> {
    Inputs {
        me,
        now,
        cluster,
        wall: now,
        busy: false,
        identity: 1,
        spec: SpecPrint::default(),
        request,
        withdraw: None,
        timing: &TIMING,
        variant: Variant::Correct,
    }
}

/// Feed the reply to `w` (sent at its stamp's time) into `mem`.
fn feed(mem: &mut Memory, w: &Write, reply: Reply) {
    mem.on_write(w, w.now, &TIMING, Variant::Correct, reply);
}

/// An operator that heartbeated successfully at `now` and holds `view`.
fn settled(now: Time, view: Option<Record>) -> Memory {
    Memory {
        missing: false,
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        view,
        heartbeat_at: Some(now),
        lease_until: Some(now + TIMING.lease_ttl),
        retry_at: None,
        unsure: None,
        kube_retry_at: None,
        // The peer's heartbeat of the helpers' records (10), seen to change at 10.
        peer: Some(PeerSeen {
            heartbeat: Some(10),
            since: 10,
            changed: true,
        }),
    }
}

fn lock(holder: Cluster, until: Time) -> Option<Lock> {
    Some(Lock { holder, until })
}

/// Failover 1 from A to B in flight at journal position `done`.
fn in_flight(kind: PlanKind, done: u32, token: Token, lock: Option<Lock>) -> Record {
    Record {
        request: None,
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        active: A,
        token,
        lock,
        failover: Some(InFlight {
            id: 1,
            kind,
            source: A,
            target: B,
            done,
            stuck: false,
            asked: None,
            hooks: Hooks::NONE,
        }),
        heartbeat: [Some(10), Some(10)],
        history: Vec::new(),
    }
}

fn at_rest() -> Record {
    rec(A, [Some(10), Some(10)])
}

/// The heartbeat of an operator whose cluster is in `state`.
fn hb(state: &ClusterState) -> Op {
    Op::Heartbeat {
        health: Health::of(state),
    }
}

fn heartbeat(state: &ClusterState) -> Decision {
    Decision {
        action: Action::Write(hb(state)),
        purpose: Purpose::Heartbeat,
        stage: None,
        step: None,
    }
}

fn waiting(wake: Wake) -> Decision {
    Decision {
        action: Action::Wait(wake),
        purpose: Purpose::Steady,
        stage: None,
        step: None,
    }
}

/// A self-fence attempt applying `effects` side by side.
fn fence(effects: &[Effect]) -> Decision {
    Decision {
        action: Action::Fence(EffectSet::of(effects.iter().copied())),
        purpose: Purpose::Fence,
        stage: None,
        step: None,
    }
}

/// The fence steps of a serving cluster: every effect step of `STOP`.
const FENCE_ALL: [Effect; 5] = [
    Effect::SuspendFlux,
    Effect::DisableNetwork,
    Effect::ScaleDownWorkloads,
    Effect::SuspendCronJobs,
    Effect::DemoteVolumes,
];

fn planned(action: Action, at: u32, stage: Stage, step: Step) -> Decision {
    Decision {
        action,
        purpose: Purpose::Plan { at },
        stage: Some(stage),
        step: Some(step),
    }
}

fn restore(action: Action, at: u32, stage: Stage, step: Step) -> Decision {
    Decision {
        action,
        purpose: Purpose::Restore { at },
        stage: Some(stage),
        step: Some(step),
    }
}

fn write(by: Cluster, now: Time, op: Op) -> Write {
    Write {
        by,
        instance: OWNER,
        now,
        op,
    }
}

/// The operator process that owns both slots of the helpers' records.
const OWNER: Instance = 7;

/// A record at rest whose slots `OWNER` owns.
fn rec(active: Cluster, heartbeat: [Option<Time>; 2]) -> Record {
    Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        ..Record::new(active, heartbeat)
    }
}

/// `record` with request `id` to `to` in `mode` pending (written by `to`'s operator).
fn pending(record: Record, id: FailoverId, to: Cluster, mode: Mode) -> Record {
    Record {
        request: Some(Pending {
            id,
            to,
            mode,
            by: to,
        }),
        ..record
    }
}

/// The memory of a process that started and claimed its slot (no process before it).
fn fresh() -> Memory {
    Memory {
        claimed: Some(0),
        ..Memory::started(OWNER)
    }
}

fn store(record: &Record, by: Cluster, now: Time, op: Op) -> Result<Record, ConditionFailed> {
    apply(record, &write(by, now, op), &TIMING, Variant::Correct)
}

fn plan(steps: &[(Stage, Role, Step)]) -> Plan {
    Plan {
        steps: steps
            .iter()
            .map(|&(stage, owner, step)| PlanStep { stage, owner, step })
            .collect(),
        hooks: Hooks::NONE,
    }
}

fn phase_ends(plan: &Plan) -> Vec<u32> {
    (0..=plan.len() as u32)
        .filter(|&i| plan.ends_phase(i))
        .collect()
}

// ---------------------------------------------------------------------------------------
// decide: heartbeats, reads, self-fence
// ---------------------------------------------------------------------------------------

#[test]
fn restarted_operator_heartbeats_first() {
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &fresh()),
        heartbeat(&SERVING)
    );
}

#[test]
fn due_heartbeat_comes_before_plan_work() {
    // The owner would otherwise apply SuspendFlux.
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 13));
    let mem = settled(9, Some(view));
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        heartbeat(&SERVING)
    );
}

#[test]
fn heartbeat_is_not_due_before_heartbeat_every() {
    let mem = settled(10, Some(at_rest()));
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        waiting(Wake::Idle(11))
    );
}

#[test]
fn operator_without_a_view_reads_the_record() {
    let mem = settled(10, None);
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        Decision {
            action: Action::Read,
            purpose: Purpose::Sync,
            stage: None,
            step: None,
        }
    );
}

#[test]
fn store_back_off_postpones_heartbeat_and_read() {
    let mem = Memory {
        missing: false,
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        view: None,
        heartbeat_at: Some(5),
        lease_until: Some(14),
        retry_at: Some(12),
        unsure: None,
        kube_retry_at: None,
        peer: None,
    };
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        waiting(Wake::At(12))
    );
}

#[test]
fn unknown_lease_fences_even_while_store_backs_off() {
    let mem = Memory {
        missing: false,
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        view: None,
        heartbeat_at: Some(10),
        lease_until: None,
        retry_at: Some(12),
        unsure: None,
        kube_retry_at: None,
        peer: None,
    };
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        fence(&FENCE_ALL)
    );
}

#[test]
fn lease_about_to_expire_fences() {
    // 10 + fence_margin < 11 is false: less than the margin is left.
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: Some(11),
        ..settled(10, Some(at_rest()))
    };
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        fence(&FENCE_ALL)
    );
}

#[test]
fn lease_with_more_than_the_margin_left_does_not_fence() {
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: Some(12),
        ..settled(10, Some(at_rest()))
    };
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        waiting(Wake::Idle(11))
    );
}

#[test]
fn fence_applies_every_unsatisfied_stop_step_at_once() {
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: None,
        ..settled(10, Some(at_rest()))
    };
    let partly = ClusterState {
        flux_suspended: true,
        network_open: false,
        ..SERVING
    };
    assert_eq!(
        decide(&inputs(A, 10, &partly, None), &mem),
        fence(&[
            Effect::ScaleDownWorkloads,
            Effect::SuspendCronJobs,
            Effect::DemoteVolumes
        ])
    );
    // Every change made, pods still stopping: wait for the cluster to report it.
    let pods_left = ClusterState {
        workloads_up: false,
        cronjobs_suspended: true,
        volume_spec: VolumeRole::Secondary,
        ..partly
    };
    assert_eq!(
        decide(&inputs(A, 10, &pods_left, None), &mem),
        Decision {
            action: Action::Wait(Wake::Change),
            purpose: Purpose::Fence,
            stage: None,
            step: Some(Step::AwaitWorkloadsDown),
        }
    );
}

#[test]
fn fenced_cluster_with_unknown_lease_waits_for_the_back_off() {
    let mem = Memory {
        missing: false,
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        view: None,
        heartbeat_at: Some(10),
        lease_until: None,
        retry_at: Some(12),
        unsure: None,
        kube_retry_at: None,
        peer: None,
    };
    assert_eq!(
        decide(&inputs(B, 10, &STANDBY, None), &mem),
        waiting(Wake::At(12))
    );
}

#[test]
fn no_self_fence_variant_keeps_serving_without_a_lease() {
    let mem = Memory {
        missing: false,
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        view: None,
        heartbeat_at: Some(10),
        lease_until: None,
        retry_at: Some(12),
        unsure: None,
        kube_retry_at: None,
        peer: None,
    };
    let input = Inputs {
        variant: Variant::NoSelfFence,
        ..inputs(A, 10, &SERVING, None)
    };
    assert_eq!(decide(&input, &mem), waiting(Wake::At(12)));
}

#[test]
fn unavailable_heartbeat_lets_the_fence_run_before_the_retry() {
    let mut mem = settled(10, Some(at_rest()));
    let hb = write(A, 12, hb(&SERVING));
    assert_eq!(
        decide(&inputs(A, 12, &SERVING, None), &mem),
        heartbeat(&SERVING)
    );
    feed(&mut mem, &hb, Reply::Unavailable);
    assert_eq!(
        decide(&inputs(A, 12, &SERVING, None), &mem),
        fence(&FENCE_ALL)
    );
}

/// Issue 9: a step that keeps failing (here scaling: a webhook rejects it) must not keep
/// the fence from demoting the volumes. The failed attempt is retried after the
/// back-off with what is still left, never in a busy loop.
#[test]
fn a_failing_fence_step_does_not_stop_the_others() {
    let mut mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: None,
        ..settled(10, Some(at_rest()))
    };
    let mut cluster = SERVING;
    let d = decide(&inputs(A, 10, &cluster, None), &mem);
    assert_eq!(d, fence(&FENCE_ALL));
    for step in FENCE_ALL
        .into_iter()
        .filter(|s| *s != Effect::ScaleDownWorkloads)
    {
        step.apply(&mut cluster);
    }
    mem.on_kube(10, &TIMING, false);
    cluster.volume_status = cluster.volume_spec; // the CSI driver reports it
    assert_eq!(cluster.volume_spec, VolumeRole::Secondary);
    assert!(!cluster.is_writer());
    assert_eq!(
        decide(&inputs(A, 10, &cluster, None), &mem),
        Decision {
            action: Action::Wait(Wake::At(11)),
            ..fence(&[Effect::ScaleDownWorkloads])
        }
    );
    mem.heartbeat_at = Some(11); // (a heartbeat attempt at 11, unavailable)
    assert_eq!(
        decide(&inputs(A, 11, &cluster, None), &mem),
        fence(&[Effect::ScaleDownWorkloads])
    );
}

#[test]
fn fence_stops_at_failure_variant_keeps_trying_the_first_step() {
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: None,
        ..settled(10, Some(at_rest()))
    };
    let input = Inputs {
        variant: Variant::FenceStopsAtFailure,
        ..inputs(A, 10, &SERVING, None)
    };
    assert_eq!(
        decide(&input, &mem).action,
        Action::Effect(Effect::SuspendFlux)
    );
}

#[test]
fn a_failed_plan_step_is_retried_after_the_back_off() {
    let mut mem = settled(10, Some(in_flight(CONSISTENCY, 2, 1, lock(A, 13))));
    let first = decide(&inputs(A, 10, &SERVING, None), &mem);
    assert!(matches!(first.action, Action::Effect(_)), "{first:?}");
    mem.on_kube(10, &TIMING, false);
    let again = decide(&inputs(A, 10, &SERVING, None), &mem);
    assert_eq!(again.action, Action::Wait(Wake::At(11)));
    // (Heartbeated at 11, so the heartbeat is not what comes first.)
    mem.heartbeat_at = Some(11);
    mem.lease_until = Some(14);
    assert_eq!(decide(&inputs(A, 11, &SERVING, None), &mem), first);
    mem.on_kube(11, &TIMING, true);
    assert_eq!(mem.kube_retry_at, None);
}

/// Suspected bug: a heartbeat whose reply is `Ambiguous` leaves `heartbeat_at`
/// unchanged, so the heartbeat stays due and `decide` returns it again before looking
/// at the lease. A partition that makes every store call time out (the usual symptom)
/// yields an endless run of ambiguous heartbeats, and the self-fence never starts,
/// while the peer may force a failover once `heartbeat + lease_ttl + drift < now`.
#[test]
fn ambiguous_heartbeats_do_not_starve_the_self_fence() {
    let record = at_rest();
    let mut mem = settled(10, Some(record.clone()));
    let mut cluster = SERVING;
    let mut decisions = Vec::new();
    // The operator loops on urgent decisions; every store call times out.
    for now in 11..=14 {
        for _ in 0..3 {
            let d = decide(&inputs(A, now, &cluster, None), &mem);
            match d.action {
                Action::Write(op) => feed(&mut mem, &write(A, now, op), Reply::Ambiguous),
                Action::Read => mem.on_read(A, now, &TIMING, None),
                Action::Effect(step) => {
                    step.apply(&mut cluster);
                }
                Action::Fence(steps) => {
                    for step in steps.iter() {
                        step.apply(&mut cluster);
                    }
                }
                Action::Wait(_) | Action::Hook(_) => {}
            }
            decisions.push(d);
        }
    }
    // At B's time 15 the store accepts B's forced takeover of B's request: A must have
    // started fencing.
    assert!(
        store(
            &pending(record, 1, B, Mode::Consistency),
            B,
            15,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        )
        .is_ok()
    );
    assert_eq!(
        (
            decisions.iter().any(|d| d.purpose == Purpose::Fence),
            cluster.flux_suspended
        ),
        (true, true),
        "decisions: {decisions:?}"
    );
}

// ---------------------------------------------------------------------------------------
// decide: at rest, requests
// ---------------------------------------------------------------------------------------

#[test]
fn active_with_request_to_peer_acquires_the_lock() {
    let mem = settled(10, Some(pending(at_rest(), 1, B, Mode::Consistency)));
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &mem),
        Decision {
            action: Action::Write(Op::Acquire {
                id: 1,
                mode: Mode::Consistency,
            }),
            purpose: Purpose::Plan { at: 0 },
            stage: Some(Stage::Initialization),
            step: Some(Step::AcquireLock),
        }
    );
}

#[test]
fn request_already_in_history_is_ignored() {
    let view = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        history: vec![HistoryEntry {
            id: 1,
            outcome: Outcome::Aborted(AbortReason::TargetSilent),
        }],
        ..at_rest()
    };
    let request = Request {
        id: 1,
        to: B,
        mode: Mode::Consistency,
    };
    assert_eq!(
        decide(
            &inputs(A, 10, &SERVING, Some(request)),
            &settled(10, Some(view))
        ),
        waiting(Wake::Idle(11))
    );
}

#[test]
fn standby_with_request_to_itself_waits_while_active_heartbeat_is_fresh() {
    let view = pending(at_rest(), 1, B, Mode::Uptime);
    // A heartbeated at 10: its lease provably ended once 10 + 3 + 1 < now, i.e. at 15.
    for now in [10, 14] {
        assert_eq!(
            decide(
                &inputs(B, now, &STANDBY, None),
                &settled(now, Some(view.clone()))
            ),
            waiting(Wake::At(15)),
            "now = {now}"
        );
    }
}

#[test]
fn standby_with_request_to_itself_forces_once_lease_plus_drift_ran_out() {
    let view = pending(at_rest(), 1, B, Mode::Uptime);
    assert_eq!(
        decide(&inputs(B, 15, &STANDBY, None), &settled(15, Some(view))),
        Decision {
            action: Action::Write(Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }),
            purpose: Purpose::Plan { at: 0 },
            stage: Some(Stage::Initialization),
            step: Some(Step::ForceTakeLock),
        }
    );
}

#[test]
fn no_lease_wait_variant_forces_at_once() {
    let input = Inputs {
        variant: Variant::NoLeaseWait,
        ..inputs(B, 10, &STANDBY, None)
    };
    let view = pending(at_rest(), 1, B, Mode::Consistency);
    assert_eq!(
        decide(&input, &settled(10, Some(view))),
        planned(
            Action::Write(Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }),
            0,
            Stage::Initialization,
            Step::ForceTakeLock
        )
    );
}

#[test]
fn active_at_rest_restores_what_it_serves_with() {
    let closed = ClusterState {
        network_open: false,
        ..SERVING
    };
    assert_eq!(
        decide(&inputs(A, 10, &closed, None), &settled(10, Some(at_rest()))),
        Decision {
            action: Action::Effect(Effect::EnableNetwork),
            purpose: Purpose::Steady,
            stage: None,
            step: Some(Step::EnableNetwork),
        }
    );
}

// ---------------------------------------------------------------------------------------
// decide: in flight
// ---------------------------------------------------------------------------------------

#[test]
fn owner_applies_its_unsatisfied_effect_step() {
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 13));
    assert_eq!(
        decide(&inputs(A, 11, &SERVING, None), &settled(11, Some(view))),
        Decision {
            action: Action::Effect(Effect::SuspendFlux),
            purpose: Purpose::Plan { at: 2 },
            stage: Some(Stage::SourcePreparation),
            step: Some(Step::SuspendFlux),
        }
    );
}

#[test]
fn owner_journals_a_satisfied_effect_step_with_the_views_token() {
    let view = in_flight(CONSISTENCY, 2, 4, lock(A, 13));
    let cluster = ClusterState {
        flux_suspended: true,
        ..SERVING
    };
    assert_eq!(
        decide(&inputs(A, 11, &cluster, None), &settled(11, Some(view))),
        planned(
            Action::Write(Op::Journal {
                id: 1,
                token: 4,
                at: 2,
                release: false,
            }),
            2,
            Stage::SourcePreparation,
            Step::SuspendFlux
        )
    );
}

#[test]
fn owner_journals_the_last_step_of_its_phase_with_release() {
    let view = in_flight(CONSISTENCY, 8, 1, lock(A, 13));
    assert_eq!(
        decide(&inputs(A, 11, &STANDBY, None), &settled(11, Some(view))),
        planned(
            Action::Write(Op::Journal {
                id: 1,
                token: 1,
                at: 8,
                release: true,
            }),
            8,
            Stage::VolumeDemotion,
            Step::AwaitVolumesSecondary
        )
    );
}

#[test]
fn owner_waits_on_an_unsatisfied_await_step() {
    let view = in_flight(CONSISTENCY, 6, 1, lock(A, 13));
    let pods_left = ClusterState {
        network_open: false,
        workloads_up: false,
        cronjobs_suspended: true,
        flux_suspended: true,
        ..SERVING
    };
    assert_eq!(
        decide(&inputs(A, 11, &pods_left, None), &settled(11, Some(view))),
        planned(
            // It wakes at the stage's deadline (counted from now: it never saw it).
            Action::Wait(Wake::At(11 + TIMING.deadline(Stage::SourcePreparation))),
            6,
            Stage::SourcePreparation,
            Step::AwaitWorkloadsDown
        )
    );
}

#[test]
fn source_waits_while_target_runs_its_phase() {
    let view = in_flight(CONSISTENCY, 12, 2, lock(B, 20));
    assert_eq!(
        decide(&inputs(A, 11, &STANDBY, None), &settled(11, Some(view))),
        waiting(Wake::Change)
    );
}

#[test]
fn target_waits_until_the_source_heartbeat_stood_for_lease_plus_drift() {
    // Seen at 10: silent once 10 + 3 + 1 < now, at 15. The lock plays no part.
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 14));
    assert_eq!(
        decide(&inputs(B, 11, &STANDBY, None), &settled(11, Some(view))),
        waiting(Wake::At(15))
    );
}

#[test]
fn target_without_an_observation_of_the_source_waits_for_its_next_heartbeat() {
    // A view whose source heartbeat (12) is not the one observed (10): the next
    // heartbeat's reply refreshes both.
    let view = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        heartbeat: [Some(12), Some(10)],
        ..in_flight(CONSISTENCY, 2, 1, lock(A, 14))
    };
    assert_eq!(
        decide(&inputs(B, 20, &STANDBY, None), &settled(20, Some(view))),
        waiting(Wake::At(21))
    );
}

#[test]
fn wall_clock_steps_do_not_move_the_force() {
    // The wall clock is an hour ahead or behind: the force still waits for 15.
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 14));
    for wall in [0, 3_600_011] {
        let input = Inputs {
            wall,
            ..inputs(B, 14, &STANDBY, None)
        };
        assert_eq!(
            decide(&input, &settled(14, Some(view.clone()))),
            waiting(Wake::At(15))
        );
    }
}

#[test]
fn target_forces_over_a_silent_source() {
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 14));
    assert_eq!(
        decide(&inputs(B, 16, &STANDBY, None), &settled(16, Some(view))),
        planned(
            Action::Write(Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }),
            0,
            Stage::Initialization,
            Step::ForceTakeLock
        )
    );
}

#[test]
fn target_takes_over_at_the_hand_off_mark() {
    let view = in_flight(CONSISTENCY, 9, 1, None);
    assert_eq!(
        decide(&inputs(B, 11, &STANDBY, None), &settled(11, Some(view))),
        planned(
            Action::Write(Op::TakeOver { id: 1, at: 9 }),
            9,
            Stage::VolumePromotion,
            Step::AwaitHandOff
        )
    );
}

#[test]
fn hand_off_waits_while_the_lock_is_held() {
    let view = in_flight(CONSISTENCY, 9, 1, lock(A, 13));
    assert_eq!(
        decide(&inputs(B, 11, &STANDBY, None), &settled(11, Some(view))),
        waiting(Wake::Change)
    );
}

#[test]
fn validate_journals_when_target_heartbeat_is_fresh() {
    // B's heartbeat was seen to change at 10: fresh until 14.
    let view = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        heartbeat: [Some(10), Some(10)],
        ..in_flight(CONSISTENCY, 1, 1, lock(A, 13))
    };
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &settled(10, Some(view))),
        planned(
            Action::Write(Op::Journal {
                id: 1,
                token: 1,
                at: 1,
                release: false,
            }),
            1,
            Stage::Initialization,
            Step::Validate
        )
    );
}

#[test]
fn validate_hands_off_in_uptime_mode() {
    let view = in_flight(UPTIME, 1, 1, lock(A, 13));
    assert_eq!(
        decide(&inputs(A, 10, &SERVING, None), &settled(10, Some(view))),
        planned(
            Action::Write(Op::Journal {
                id: 1,
                token: 1,
                at: 1,
                release: true,
            }),
            1,
            Stage::Initialization,
            Step::Validate
        )
    );
}

#[test]
fn validate_aborts_when_target_heartbeat_is_stale() {
    // B's heartbeat unchanged since 10: silent at 15.
    let view = in_flight(CONSISTENCY, 1, 1, lock(A, 13));
    assert_eq!(
        decide(&inputs(A, 15, &SERVING, None), &settled(15, Some(view))),
        planned(
            Action::Write(Op::Abort {
                id: 1,
                token: 1,
                at: 1,
                reason: AbortReason::TargetSilent,
            }),
            1,
            Stage::Initialization,
            Step::Validate
        )
    );
}

#[test]
fn validate_waits_for_a_verdict_after_a_restart() {
    // Just restarted: B's heartbeat seen once (at 12), never seen to change.
    let view = in_flight(CONSISTENCY, 1, 1, lock(A, 13));
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        peer: Some(PeerSeen {
            heartbeat: Some(10),
            since: 12,
            changed: false,
        }),
        ..settled(12, Some(view))
    };
    assert_eq!(
        decide(&inputs(A, 12, &SERVING, None), &mem),
        planned(
            Action::Wait(Wake::At(17)),
            1,
            Stage::Initialization,
            Step::Validate
        )
    );
}

#[test]
fn target_completes_with_the_views_token() {
    let view = in_flight(CONSISTENCY, 17, 2, lock(B, 20));
    assert_eq!(
        decide(&inputs(B, 11, &SERVING, None), &settled(11, Some(view))),
        planned(
            Action::Write(Op::Complete {
                id: 1,
                token: 2,
                at: 17,
            }),
            17,
            Stage::Completion,
            Step::Complete
        )
    );
}

#[test]
fn source_of_a_forced_failover_stops_itself() {
    let view = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        lock: lock(B, 20),
        failover: Some(InFlight {
            id: 1,
            kind: PlanKind::Forced,
            source: A,
            target: B,
            done: 3,
            stuck: false,
            asked: None,
            hooks: Hooks::NONE,
        }),
        ..at_rest()
    };
    assert_eq!(
        decide(&inputs(A, 11, &SERVING, None), &settled(11, Some(view))),
        Decision {
            action: Action::Effect(Effect::SuspendFlux),
            purpose: Purpose::Steady,
            stage: None,
            step: Some(Step::SuspendFlux),
        }
    );
}

#[test]
fn restarted_target_restores_fenced_activation_before_its_next_step() {
    // Consistency, target's phase: 9..=13 journaled (hand-off, promotion, scale-up,
    // readiness); a self-fence then stopped the whole cluster and the operator restarted.
    let record = in_flight(CONSISTENCY, 14, 2, lock(B, 22));
    let mut cluster = STANDBY;
    let mut mem = fresh();
    assert_eq!(
        decide(&inputs(B, 20, &cluster, None), &mem),
        heartbeat(&cluster)
    );
    let hb = write(B, 20, hb(&cluster));
    let after = apply(&record, &hb, &TIMING, Variant::Correct).expect("heartbeat moves on");
    feed(&mut mem, &hb, Reply::Applied(after));

    let due = 20 + TIMING.deadline(Stage::TargetActivation);
    let mut steps = Vec::new();
    for _ in 0..4 {
        let d = decide(&inputs(B, 20, &cluster, None), &mem);
        match d.action {
            Action::Effect(step) => {
                step.apply(&mut cluster);
            }
            // The csi driver and the kubelet converge (the holder waits at most until
            // its stage's deadline).
            Action::Wait(_) => {
                cluster.volume_status = cluster.volume_spec;
                cluster.workloads_running = cluster.workloads_up;
            }
            _ => {}
        }
        steps.push(d);
    }
    assert_eq!(
        steps,
        vec![
            restore(
                Action::Effect(Effect::PromoteVolumes),
                10,
                Stage::VolumePromotion,
                Step::PromoteVolumes
            ),
            restore(
                Action::Wait(Wake::At(due)),
                11,
                Stage::VolumePromotion,
                Step::AwaitVolumesPrimary
            ),
            restore(
                Action::Effect(Effect::ScaleUpWorkloads),
                12,
                Stage::TargetActivation,
                Step::ScaleUpWorkloads
            ),
            restore(
                Action::Wait(Wake::At(due)),
                13,
                Stage::TargetActivation,
                Step::AwaitWorkloadsReady
            ),
        ]
    );
    assert_eq!(
        decide(&inputs(B, 20, &cluster, None), &mem),
        planned(
            Action::Effect(Effect::EnableNetwork),
            14,
            Stage::TargetActivation,
            Step::EnableNetwork
        )
    );
}

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

#[test]
fn applied_heartbeat_renews_the_lease() {
    let mut mem = fresh();
    let after = rec(A, [Some(10), Some(9)]);
    feed(
        &mut mem,
        &write(A, 10, hb(&SERVING)),
        Reply::Applied(after.clone()),
    );
    assert_eq!(
        mem,
        Memory {
            missing: false,
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            view: Some(after),
            heartbeat_at: Some(10),
            lease_until: Some(13),
            retry_at: None,
            unsure: None,
            kube_retry_at: None,
            // B's heartbeat seen for the first time.
            peer: Some(PeerSeen {
                heartbeat: Some(9),
                since: 10,
                changed: false,
            }),
        }
    );
}

#[test]
fn refused_heartbeat_renews_nothing() {
    let mut mem = fresh();
    let current = rec(A, [Some(11), Some(9)]);
    feed(
        &mut mem,
        &write(A, 10, hb(&SERVING)),
        Reply::ConditionFailed(current.clone()),
    );
    assert_eq!(
        mem,
        Memory {
            missing: false,
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            view: Some(current),
            // Still due: the next heartbeat goes out at once, stamped 12.
            heartbeat_at: None,
            // Refused: the record does not prove it to B.
            lease_until: None,
            retry_at: None,
            unsure: None,
            kube_retry_at: None,
            peer: Some(PeerSeen {
                heartbeat: Some(9),
                since: 10,
                changed: false,
            }),
        }
    );
}

#[test]
fn ambiguous_write_forgets_the_view_and_records_unsure() {
    let op = Op::Journal {
        id: 1,
        token: 1,
        at: 2,
        release: false,
    };
    let mut mem = settled(10, Some(at_rest()));
    feed(&mut mem, &write(A, 10, op), Reply::Ambiguous);
    assert_eq!(
        mem,
        Memory {
            missing: false,
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            view: None,
            heartbeat_at: Some(10),
            lease_until: Some(13),
            retry_at: None,
            unsure: Some(op),
            kube_retry_at: None,
            peer: settled(0, None).peer,
        }
    );
}

#[test]
fn ambiguous_heartbeat_leaves_the_lease_alone_and_backs_off() {
    let mut mem = settled(10, Some(at_rest()));
    feed(&mut mem, &write(A, 11, hb(&SERVING)), Reply::Ambiguous);
    assert_eq!(
        mem,
        Memory {
            missing: false,
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            view: None,
            heartbeat_at: Some(11),
            lease_until: Some(13),
            retry_at: Some(12),
            unsure: Some(hb(&SERVING)),
            kube_retry_at: None,
            peer: settled(0, None).peer,
        }
    );
}

#[test]
fn later_reply_clears_unsure() {
    let mut mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        unsure: Some(Op::TakeOver { id: 1, at: 9 }),
        kube_retry_at: None,
        ..settled(10, None)
    };
    let current = in_flight(CONSISTENCY, 10, 2, lock(B, 14));
    feed(
        &mut mem,
        &write(B, 11, Op::TakeOver { id: 1, at: 9 }),
        Reply::ConditionFailed(current.clone()),
    );
    assert_eq!(
        mem,
        Memory {
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            // The lock's holder notes when it first saw the stage (its deadline).
            progress: Some(Progress {
                id: 1,
                stage: Stage::VolumePromotion,
                token: 2,
                since: 11,
            }),
            view: Some(current),
            unsure: None,
            kube_retry_at: None,
            ..settled(10, None)
        }
    );
}

#[test]
fn unavailable_heartbeat_sets_retry_and_heartbeat_time_but_not_the_lease() {
    let mut mem = settled(10, Some(at_rest()));
    feed(&mut mem, &write(A, 11, hb(&SERVING)), Reply::Unavailable);
    assert_eq!(
        mem,
        Memory {
            missing: false,
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            view: Some(at_rest()),
            heartbeat_at: Some(11),
            lease_until: Some(13),
            retry_at: Some(12),
            unsure: None,
            kube_retry_at: None,
            peer: settled(0, None).peer,
        }
    );
}

#[test]
fn unavailable_write_sets_retry_only() {
    let mut mem = settled(10, Some(at_rest()));
    let op = Op::Acquire {
        id: 1,
        mode: Mode::Uptime,
    };
    feed(&mut mem, &write(A, 11, op), Reply::Unavailable);
    assert_eq!(
        mem,
        Memory {
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            retry_at: Some(12),
            ..settled(10, Some(at_rest()))
        }
    );
}

#[test]
fn failed_read_sets_retry_and_successful_read_sets_view() {
    let mut mem = settled(10, None);
    mem.on_read(A, 11, &TIMING, None);
    assert_eq!(
        mem,
        Memory {
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            retry_at: Some(12),
            ..settled(10, None)
        }
    );
    mem.on_read(A, 12, &TIMING, Some(at_rest()));
    assert_eq!(
        mem,
        Memory {
            instance: OWNER,
            claimed: Some(0),
            replaced: None,
            superseded: false,
            misbound: None,
            progress: None,
            hook: None,
            retry_at: Some(12),
            ..settled(10, Some(at_rest()))
        }
    );
}

// ---------------------------------------------------------------------------------------
// store::apply
// ---------------------------------------------------------------------------------------

#[test]
fn acquire_opens_the_journal_with_a_new_token() {
    assert_eq!(
        store(
            &pending(at_rest(), 1, B, Mode::Consistency),
            A,
            10,
            Op::Acquire {
                id: 1,
                mode: Mode::Consistency,
            }
        ),
        Ok(Record {
            request: None,
            instance: [Some(OWNER); 2],
            bound: [None; 2],
            contested: [None; 2],
            health: [None; 2],
            spec: [Some(SpecPrint::default()); 2],
            active: A,
            token: 1,
            lock: lock(A, 13),
            failover: Some(InFlight {
                id: 1,
                kind: CONSISTENCY,
                source: A,
                target: B,
                done: 1,
                stuck: false,
                asked: None,
                hooks: Hooks::NONE,
            }),
            heartbeat: [Some(10), Some(10)],
            history: Vec::new(),
        })
    );
}

#[test]
fn acquire_by_the_standby_is_refused() {
    let op = Op::Acquire {
        id: 1,
        mode: Mode::Uptime,
    };
    let record = pending(at_rest(), 1, B, Mode::Uptime);
    assert_eq!(store(&record, B, 10, op), Err(ConditionFailed));
}

#[test]
fn acquire_while_in_flight_is_refused() {
    let record = in_flight(CONSISTENCY, 3, 1, lock(A, 13));
    let op = Op::Acquire {
        id: 2,
        mode: Mode::Uptime,
    };
    assert_eq!(store(&record, A, 10, op), Err(ConditionFailed));
}

#[test]
fn acquire_of_an_ended_failover_is_refused() {
    let record = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        history: vec![HistoryEntry {
            id: 1,
            outcome: Outcome::Aborted(AbortReason::TargetSilent),
        }],
        ..at_rest()
    };
    let op = Op::Acquire {
        id: 1,
        mode: Mode::Uptime,
    };
    assert_eq!(store(&record, A, 10, op), Err(ConditionFailed));
}

#[test]
fn journal_moves_the_position_and_renews_the_lock() {
    let record = in_flight(CONSISTENCY, 3, 1, lock(A, 13));
    let op = Op::Journal {
        id: 1,
        token: 1,
        at: 3,
        release: false,
    };
    assert_eq!(
        store(&record, A, 12, op),
        Ok(in_flight(CONSISTENCY, 4, 1, lock(A, 15)))
    );
}

#[test]
fn journal_with_release_frees_the_lock() {
    let record = in_flight(CONSISTENCY, 8, 1, lock(A, 13));
    let op = Op::Journal {
        id: 1,
        token: 1,
        at: 8,
        release: true,
    };
    assert_eq!(
        store(&record, A, 12, op),
        Ok(in_flight(CONSISTENCY, 9, 1, None))
    );
}

#[test]
fn stale_token_journal_write_is_refused() {
    let record = in_flight(CONSISTENCY, 3, 2, lock(B, 16));
    let op = Op::Journal {
        id: 1,
        token: 1,
        at: 3,
        release: false,
    };
    assert_eq!(store(&record, A, 12, op), Err(ConditionFailed));
}

#[test]
fn no_token_check_variant_accepts_a_stale_journal_write() {
    let record = in_flight(CONSISTENCY, 3, 2, lock(B, 16));
    let op = Op::Journal {
        id: 1,
        token: 1,
        at: 3,
        release: false,
    };
    assert_eq!(
        apply(&record, &write(A, 12, op), &TIMING, Variant::NoTokenCheck),
        Ok(in_flight(CONSISTENCY, 4, 2, lock(A, 15)))
    );
}

#[test]
fn journal_at_the_wrong_position_is_refused() {
    let record = in_flight(CONSISTENCY, 3, 1, lock(A, 13));
    let at = |at| Op::Journal {
        id: 1,
        token: 1,
        at,
        release: false,
    };
    assert_eq!(
        [store(&record, A, 12, at(2)), store(&record, A, 12, at(4))],
        [Err(ConditionFailed), Err(ConditionFailed)]
    );
}

#[test]
fn journal_of_another_failover_is_refused() {
    let record = in_flight(CONSISTENCY, 3, 1, lock(A, 13));
    let op = Op::Journal {
        id: 2,
        token: 1,
        at: 3,
        release: false,
    };
    assert_eq!(store(&record, A, 12, op), Err(ConditionFailed));
}

#[test]
fn take_over_increments_the_token_and_takes_the_free_lock() {
    let record = in_flight(CONSISTENCY, 9, 1, None);
    assert_eq!(
        store(&record, B, 20, Op::TakeOver { id: 1, at: 9 }),
        Ok(in_flight(CONSISTENCY, 10, 2, lock(B, 23)))
    );
}

#[test]
fn take_over_needs_a_free_lock() {
    let record = in_flight(CONSISTENCY, 9, 1, lock(A, 13));
    assert_eq!(
        store(&record, B, 20, Op::TakeOver { id: 1, at: 9 }),
        Err(ConditionFailed)
    );
}

#[test]
fn take_over_at_the_wrong_position_is_refused() {
    let record = in_flight(CONSISTENCY, 9, 1, None);
    assert_eq!(
        store(&record, B, 20, Op::TakeOver { id: 1, at: 8 }),
        Err(ConditionFailed)
    );
}

#[test]
fn force_take_lock_is_refused_once_the_active_heartbeated_again() {
    // B saw A's heartbeat 10 stand; A wrote 11 meanwhile: it is alive.
    let record = rec(A, [Some(11), Some(10)]);
    assert_eq!(
        store(
            &record,
            B,
            20,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        ),
        Err(ConditionFailed)
    );
}

#[test]
fn force_take_lock_is_accepted_once_lease_plus_drift_ran_out() {
    assert_eq!(
        store(
            &pending(at_rest(), 1, B, Mode::Consistency),
            B,
            15,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        ),
        Ok(Record {
            request: None,
            instance: [Some(OWNER); 2],
            bound: [None; 2],
            contested: [None; 2],
            health: [None; 2],
            spec: [Some(SpecPrint::default()); 2],
            active: A,
            token: 1,
            lock: lock(B, 18),
            failover: Some(InFlight {
                id: 1,
                kind: PlanKind::Forced,
                source: A,
                target: B,
                done: 1,
                stuck: false,
                asked: None,
                hooks: Hooks::NONE,
            }),
            heartbeat: [Some(10), Some(10)],
            history: Vec::new(),
        })
    );
}

#[test]
fn no_lease_wait_store_accepts_force_at_once() {
    let w = write(
        B,
        10,
        Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        },
    );
    assert_eq!(
        apply(
            &pending(at_rest(), 1, B, Mode::Consistency),
            &w,
            &TIMING,
            Variant::NoLeaseWait
        )
        .map(|r| r.failover),
        Ok(Some(InFlight {
            id: 1,
            kind: PlanKind::Forced,
            source: A,
            target: B,
            done: 1,
            stuck: false,
            asked: None,
            hooks: Hooks::NONE,
        }))
    );
}

/// Issue 18 (seeds 630073 and 832243): B's `ForceTakeLock` sent at 15 timed out and
/// stayed in transit; it lands while B, cut off, could not retry, and its lock (until
/// 18) has lapsed by the time B's retry at 20 arrives. The retry must not force again.
#[test]
fn force_take_lock_applies_once_even_after_its_delayed_copy_landed() {
    let delayed = store(
        &pending(at_rest(), 1, B, Mode::Consistency),
        B,
        15,
        Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        },
    )
    .expect("first copy");
    assert_eq!(
        store(
            &delayed,
            B,
            20,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        ),
        Err(ConditionFailed)
    );
    // A planned failover with the same id may still be forced, once.
    let planned = in_flight(UPTIME, 4, 1, lock(A, 11));
    let forced = store(
        &planned,
        B,
        20,
        Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        },
    )
    .expect("forced");
    assert_eq!(forced.failover.map(|f| f.kind), Some(PlanKind::Forced));
    assert_eq!(
        store(
            &forced,
            B,
            30,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        ),
        Err(ConditionFailed)
    );
}

#[test]
fn repeatable_force_variant_forces_a_forced_failover_again() {
    let delayed = store(
        &pending(at_rest(), 1, B, Mode::Consistency),
        B,
        15,
        Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        },
    )
    .expect("first copy");
    let retry = write(
        B,
        20,
        Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        },
    );
    let again = apply(&delayed, &retry, &TIMING, Variant::RepeatableForce).expect("applies");
    assert_eq!(again.token, delayed.token + 1);
}

#[test]
fn force_take_lock_by_the_active_is_refused() {
    let record = rec(A, [Some(0), Some(10)]);
    assert_eq!(
        store(
            &record,
            A,
            20,
            Op::ForceTakeLock {
                id: 1,
                seen: Some(10)
            }
        ),
        Err(ConditionFailed)
    );
}

#[test]
fn complete_switches_active_and_appends_one_history_entry() {
    let record = Record {
        instance: [Some(OWNER); 2],
        bound: [None; 2],
        contested: [None; 2],
        health: [None; 2],
        spec: [Some(SpecPrint::default()); 2],
        history: vec![HistoryEntry {
            id: 0,
            outcome: Outcome::Aborted(AbortReason::TargetSilent),
        }],
        ..in_flight(CONSISTENCY, 17, 2, lock(B, 20))
    };
    let op = Op::Complete {
        id: 1,
        token: 2,
        at: 17,
    };
    assert_eq!(
        store(&record, B, 19, op),
        Ok(Record {
            request: None,
            instance: [Some(OWNER); 2],
            bound: [None; 2],
            contested: [None; 2],
            health: [None; 2],
            spec: [Some(SpecPrint::default()); 2],
            active: B,
            token: 2,
            lock: None,
            failover: None,
            heartbeat: [Some(10), Some(10)],
            history: vec![
                HistoryEntry {
                    id: 0,
                    outcome: Outcome::Aborted(AbortReason::TargetSilent),
                },
                HistoryEntry {
                    id: 1,
                    outcome: Outcome::Completed(CONSISTENCY),
                },
            ],
        })
    );
}

#[test]
fn complete_with_a_stale_token_is_refused() {
    let record = in_flight(CONSISTENCY, 17, 3, lock(B, 20));
    let op = Op::Complete {
        id: 1,
        token: 2,
        at: 17,
    };
    assert_eq!(store(&record, B, 19, op), Err(ConditionFailed));
}

#[test]
fn heartbeat_moves_forward() {
    let with_report = |mut r: Record, health: Health| {
        r.health[B.index()] = Some(health);
        r
    };
    assert_eq!(
        store(&at_rest(), B, 11, hb(&STANDBY)),
        Ok(with_report(rec(A, [Some(10), Some(11)]), Health::default()))
    );
    assert_eq!(
        store(&rec(A, [Some(10), None]), B, 0, hb(&SERVING)),
        Ok(with_report(
            rec(A, [Some(10), Some(0)]),
            Health {
                workloads_ready: true,
                traffic_open: true
            }
        ))
    );
}

/// A heartbeat carries its sender's report of its application; a claim (a new process,
/// which has not observed its cluster yet) clears it.
#[test]
fn the_health_report_travels_with_the_heartbeat_and_a_claim_clears_it() {
    let mut half = SERVING;
    half.workloads_running = false;
    half.agreement.workloads_running = Agreement::Some;
    let report = store(&at_rest(), A, 11, hb(&half)).expect("a heartbeat moves on");
    let health = report.health[A.index()].expect("reported");
    assert!(!health.workloads_ready && health.traffic_open && !health.serving());
    let claim = Op::Claim {
        prev: Some(7),
        identity: 0,
    };
    let after = store(&report, A, 12, claim).expect("the claim applies");
    assert_eq!(after.health[A.index()], None);
}

/// No protocol decision reads the health report: the same memory and inputs give the
/// same decision whatever the record's reports say (the auto-failover trigger is the
/// only reader, and the model lets a request arrive at any moment anyway).
#[test]
fn no_decision_depends_on_the_health_report() {
    let reports = [
        None,
        Some(Health::default()),
        Some(Health {
            workloads_ready: true,
            traffic_open: true,
        }),
    ];
    let views = [
        at_rest(),
        in_flight(CONSISTENCY, 2, 1, lock(A, 13)),
        in_flight(CONSISTENCY, 9, 2, lock(B, 22)),
    ];
    for view in views {
        for me in [A, B] {
            for (now, state) in [(11, &SERVING), (30, &STANDBY)] {
                let decisions: Vec<Decision> = reports
                    .iter()
                    .flat_map(|a| reports.iter().map(move |b| [*a, *b]))
                    .map(|health| {
                        let mut view = view.clone();
                        view.health = health;
                        decide(&inputs(me, now, state, None), &settled(10, Some(view)))
                    })
                    .collect();
                assert!(
                    decisions.windows(2).all(|w| w[0] == w[1]),
                    "{me:?} at {now} decided differently by the reports: {decisions:?}"
                );
            }
        }
    }
}

#[test]
fn delayed_heartbeat_never_moves_heartbeat_back() {
    assert_eq!(
        [
            store(&at_rest(), A, 9, hb(&SERVING)),
            store(&at_rest(), A, 10, hb(&SERVING)),
        ],
        [Err(ConditionFailed), Err(ConditionFailed)]
    );
}

#[test]
fn abort_ends_the_failover_without_changing_active() {
    let record = in_flight(CONSISTENCY, 1, 1, lock(A, 13));
    let op = Op::Abort {
        id: 1,
        token: 1,
        at: 1,
        reason: AbortReason::TargetSilent,
    };
    assert_eq!(
        store(&record, A, 11, op),
        Ok(Record {
            request: None,
            instance: [Some(OWNER); 2],
            bound: [None; 2],
            contested: [None; 2],
            health: [None; 2],
            spec: [Some(SpecPrint::default()); 2],
            active: A,
            token: 1,
            lock: None,
            failover: None,
            heartbeat: [Some(10), Some(10)],
            history: vec![HistoryEntry {
                id: 1,
                outcome: Outcome::Aborted(AbortReason::TargetSilent),
            }],
        })
    );
}

#[test]
fn abort_needs_the_right_position_and_token() {
    let record = in_flight(CONSISTENCY, 1, 1, lock(A, 13));
    let abort = |token, at| Op::Abort {
        id: 1,
        token,
        at,
        reason: AbortReason::TargetSilent,
    };
    assert_eq!(
        [
            store(&record, A, 11, abort(1, 2)),
            store(&record, A, 11, abort(1, 0)),
            store(&record, A, 11, abort(0, 1)),
        ],
        [
            Err(ConditionFailed),
            Err(ConditionFailed),
            Err(ConditionFailed)
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------

#[test]
fn consistency_plan_stops_the_source_before_the_target_starts() {
    use Role::{Source as S, Target as T};
    use Stage::*;
    let p = Plan::of(CONSISTENCY, Variant::Correct);
    assert_eq!(
        *p,
        plan(&[
            (Initialization, S, Step::AcquireLock),
            (Initialization, S, Step::Validate),
            (SourcePreparation, S, Step::SuspendFlux),
            (SourcePreparation, S, Step::DisableNetwork),
            (SourcePreparation, S, Step::ScaleDownWorkloads),
            (SourcePreparation, S, Step::SuspendCronJobs),
            (SourcePreparation, S, Step::AwaitWorkloadsDown),
            (VolumeDemotion, S, Step::DemoteVolumes),
            (VolumeDemotion, S, Step::AwaitVolumesSecondary),
            (VolumePromotion, T, Step::AwaitHandOff),
            (VolumePromotion, T, Step::PromoteVolumes),
            (VolumePromotion, T, Step::AwaitVolumesPrimary),
            (TargetActivation, T, Step::ScaleUpWorkloads),
            (TargetActivation, T, Step::AwaitWorkloadsReady),
            (TargetActivation, T, Step::EnableNetwork),
            (TargetActivation, T, Step::ResumeCronJobs),
            (TargetActivation, T, Step::ResumeFlux),
            (Completion, T, Step::Complete),
        ])
    );
    let last_source = p.steps.iter().rposition(|s| s.owner == S);
    let first_target = p.steps.iter().position(|s| s.owner == T);
    assert_eq!((last_source, first_target), (Some(8), Some(9)));
    assert_eq!(phase_ends(p), vec![8]);
}

#[test]
fn uptime_plan_starts_the_target_before_the_source_stops() {
    use Role::{Source as S, Target as T};
    use Stage::*;
    let p = Plan::of(UPTIME, Variant::Correct);
    assert_eq!(
        *p,
        plan(&[
            (Initialization, S, Step::AcquireLock),
            (Initialization, S, Step::Validate),
            (VolumePromotion, T, Step::AwaitHandOff),
            (VolumePromotion, T, Step::PromoteVolumes),
            (VolumePromotion, T, Step::AwaitVolumesPrimary),
            (TargetActivation, T, Step::ScaleUpWorkloads),
            (TargetActivation, T, Step::AwaitWorkloadsReady),
            (TargetActivation, T, Step::EnableNetwork),
            (TargetActivation, T, Step::ResumeCronJobs),
            (TargetActivation, T, Step::ResumeFlux),
            (SourcePreparation, S, Step::AwaitHandOff),
            (SourcePreparation, S, Step::SuspendFlux),
            (SourcePreparation, S, Step::DisableNetwork),
            (SourcePreparation, S, Step::ScaleDownWorkloads),
            (SourcePreparation, S, Step::SuspendCronJobs),
            (SourcePreparation, S, Step::AwaitWorkloadsDown),
            (VolumeDemotion, S, Step::DemoteVolumes),
            (VolumeDemotion, S, Step::AwaitVolumesSecondary),
            (Completion, T, Step::AwaitHandOff),
            (Completion, T, Step::Complete),
        ])
    );
    assert_eq!(phase_ends(p), vec![1, 9, 17]);
}

#[test]
fn forced_plan_is_run_by_the_target_alone() {
    use Role::Target as T;
    use Stage::*;
    let p = Plan::of(PlanKind::Forced, Variant::Correct);
    assert_eq!(
        *p,
        plan(&[
            (Initialization, T, Step::ForceTakeLock),
            (VolumePromotion, T, Step::PromoteVolumes),
            (VolumePromotion, T, Step::AwaitVolumesPrimary),
            (TargetActivation, T, Step::ScaleUpWorkloads),
            (TargetActivation, T, Step::AwaitWorkloadsReady),
            (TargetActivation, T, Step::EnableNetwork),
            (TargetActivation, T, Step::ResumeCronJobs),
            (TargetActivation, T, Step::ResumeFlux),
            (Completion, T, Step::Complete),
        ])
    );
    assert_eq!(phase_ends(p), Vec::<u32>::new());
}

#[test]
fn promote_before_demote_variant_promotes_the_target_first() {
    use Role::{Source as S, Target as T};
    use Stage::*;
    let p = Plan::of(CONSISTENCY, Variant::PromoteBeforeDemote);
    assert_eq!(
        *p,
        plan(&[
            (Initialization, S, Step::AcquireLock),
            (Initialization, S, Step::Validate),
            (VolumePromotion, T, Step::AwaitHandOff),
            (VolumePromotion, T, Step::PromoteVolumes),
            (VolumePromotion, T, Step::AwaitVolumesPrimary),
            (SourcePreparation, S, Step::AwaitHandOff),
            (SourcePreparation, S, Step::SuspendFlux),
            (SourcePreparation, S, Step::DisableNetwork),
            (SourcePreparation, S, Step::ScaleDownWorkloads),
            (SourcePreparation, S, Step::SuspendCronJobs),
            (SourcePreparation, S, Step::AwaitWorkloadsDown),
            (VolumeDemotion, S, Step::DemoteVolumes),
            (VolumeDemotion, S, Step::AwaitVolumesSecondary),
            (TargetActivation, T, Step::AwaitHandOff),
            (TargetActivation, T, Step::ScaleUpWorkloads),
            (TargetActivation, T, Step::AwaitWorkloadsReady),
            (TargetActivation, T, Step::EnableNetwork),
            (TargetActivation, T, Step::ResumeCronJobs),
            (TargetActivation, T, Step::ResumeFlux),
            (Completion, T, Step::Complete),
        ])
    );
    assert_eq!(phase_ends(p), vec![1, 4, 12]);
}

#[test]
fn other_variants_keep_the_correct_plans() {
    for variant in [
        Variant::NoTokenCheck,
        Variant::NoSelfFence,
        Variant::NoLeaseWait,
        Variant::LwwStore,
        Variant::RepeatableForce,
        Variant::FenceStopsAtFailure,
    ] {
        for kind in [CONSISTENCY, UPTIME, PlanKind::Forced] {
            assert_eq!(
                Plan::of(kind, variant),
                Plan::of(kind, Variant::Correct),
                "{variant:?} {kind:?}"
            );
        }
    }
}

#[test]
fn every_phase_after_the_first_starts_with_a_hand_off() {
    for (kind, variant) in [
        (CONSISTENCY, Variant::Correct),
        (UPTIME, Variant::Correct),
        (PlanKind::Forced, Variant::Correct),
        (CONSISTENCY, Variant::PromoteBeforeDemote),
    ] {
        let p = Plan::of(kind, variant);
        let starts: Vec<Step> = phase_ends(p)
            .into_iter()
            .map(|i| p.get(i + 1).expect("a phase follows").step)
            .collect();
        assert_eq!(
            starts,
            vec![Step::AwaitHandOff; starts.len()],
            "{kind:?} {variant:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------

#[test]
fn effect_steps_change_one_field_of_a_serving_cluster() {
    let effects: Vec<(Step, bool, ClusterState)> = Effect::ALL
        .into_iter()
        .map(|e| {
            let mut c = SERVING;
            (e.step(), e.apply(&mut c), c)
        })
        .collect();
    assert_eq!(
        effects,
        vec![
            (
                Step::SuspendFlux,
                true,
                ClusterState {
                    flux_suspended: true,
                    ..SERVING
                }
            ),
            (
                Step::DisableNetwork,
                true,
                ClusterState {
                    network_open: false,
                    ..SERVING
                }
            ),
            (
                Step::ScaleDownWorkloads,
                true,
                ClusterState {
                    workloads_up: false,
                    ..SERVING
                }
            ),
            (
                Step::SuspendCronJobs,
                true,
                ClusterState {
                    cronjobs_suspended: true,
                    ..SERVING
                }
            ),
            (
                Step::DemoteVolumes,
                true,
                ClusterState {
                    volume_spec: VolumeRole::Secondary,
                    ..SERVING
                }
            ),
            (Step::PromoteVolumes, false, SERVING),
            (Step::ScaleUpWorkloads, false, SERVING),
            (Step::EnableNetwork, false, SERVING),
            (Step::ResumeCronJobs, false, SERVING),
            (Step::ResumeFlux, false, SERVING),
        ]
    );
}

#[test]
fn effect_steps_are_idempotent_and_satisfied_after_apply() {
    let mixed = ClusterState {
        network_open: false,
        workloads_up: true,
        workloads_running: false,
        cronjobs_suspended: true,
        flux_suspended: false,
        volume_spec: VolumeRole::Primary,
        volume_status: VolumeRole::Secondary,
        agreement: Agreements::ALL,
    };
    let disagreeing = ClusterState {
        agreement: disagree(),
        ..SERVING
    };
    for start in [SERVING, STANDBY, mixed, disagreeing] {
        for step in Effect::ALL {
            let mut c = start;
            let first = step.apply(&mut c);
            let once = c;
            let second = step.apply(&mut c);
            assert_eq!(
                (first, step.satisfied(&once), second, c),
                (!step.satisfied(&start), true, false, once),
                "{step} from {start:?}"
            );
        }
    }
}

fn disagree() -> Agreements {
    Agreements {
        network: Agreement::Some,
        workloads_up: Agreement::Some,
        workloads_running: Agreement::Some,
        cronjobs: Agreement::Some,
        flux: Agreement::Some,
        volume_spec: Agreement::Some,
        volume_status: Agreement::Some,
    }
}

#[test]
fn a_half_applied_step_is_never_satisfied_in_either_direction() {
    // The engine folds many objects into one state: when members disagree, neither the
    // stop nor the start step of that kind may count as done.
    for base in [SERVING, STANDBY] {
        let c = ClusterState {
            agreement: disagree(),
            ..base
        };
        for step in STOP.iter().chain(START.iter()) {
            assert!(
                !step.satisfied(&c),
                "{step} satisfied on disagreeing members"
            );
        }
    }
}

#[test]
fn a_kind_without_members_satisfies_every_step_on_it() {
    let none = Agreements {
        network: Agreement::NoMembers,
        workloads_up: Agreement::NoMembers,
        workloads_running: Agreement::NoMembers,
        cronjobs: Agreement::NoMembers,
        flux: Agreement::NoMembers,
        volume_spec: Agreement::NoMembers,
        volume_status: Agreement::NoMembers,
    };
    for base in [SERVING, STANDBY] {
        let c = ClusterState {
            agreement: none,
            ..base
        };
        for step in STOP.iter().chain(START.iter()) {
            assert!(step.satisfied(&c), "{step} unsatisfied without members");
        }
    }
}

#[test]
fn the_ten_effect_steps_are_the_effects() {
    // Only effect steps can be applied (record and await steps have no `apply`); every
    // effect is the step whose kind names it, and the other way round.
    let effect_steps: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|s| s.effect().is_some())
        .collect();
    assert_eq!(effect_steps, Effect::ALL.map(Effect::step).to_vec());
    for e in Effect::ALL {
        assert_eq!(e.step().kind(), StepKind::Effect(e), "{e}");
        assert_eq!(e.stops(), STOP.contains(&e.step()), "{e}");
    }
}

#[test]
fn stop_and_start_reach_standby_and_serving() {
    let mut c = SERVING;
    for step in failover_model::STOP.iter().filter_map(|s| s.effect()) {
        step.apply(&mut c);
        // The kubelet and the csi driver converge.
        c.workloads_running = c.workloads_up;
        c.volume_status = c.volume_spec;
    }
    assert_eq!(c, STANDBY);
    for step in failover_model::START.iter().filter_map(|s| s.effect()) {
        step.apply(&mut c);
        c.workloads_running = c.workloads_up;
        c.volume_status = c.volume_spec;
    }
    assert_eq!(c, SERVING);
}

// ---------------------------------------------------------------------------------------
// Trigger
// ---------------------------------------------------------------------------------------

const POLICY: TriggerPolicy = TriggerPolicy {
    failures_required: 3,
    window: 10,
    min_interval: 30,
};

fn observe(trigger: &mut Trigger, policy: &TriggerPolicy, seen: &[(Time, bool)]) -> Vec<bool> {
    seen.iter()
        .map(|&(now, healthy)| trigger.observe(policy, now, healthy))
        .collect()
}

#[test]
fn single_failed_observation_never_fires() {
    let eager = TriggerPolicy {
        failures_required: 2,
        window: 0,
        min_interval: 0,
    };
    let mut t = Trigger::default();
    assert_eq!(
        observe(
            &mut t,
            &eager,
            &[(0, false), (1, true), (2, false), (3, true)]
        ),
        vec![false, false, false, false]
    );
    assert_eq!(t, Trigger::default());
}

#[test]
fn sustained_failures_fire_once() {
    let mut t = Trigger::default();
    assert_eq!(
        observe(
            &mut t,
            &POLICY,
            &[
                (0, false),
                (5, false),
                (10, false),
                (15, false),
                (20, false)
            ]
        ),
        vec![false, false, true, false, false]
    );
}

#[test]
fn enough_failures_within_less_than_the_window_do_not_fire() {
    let mut t = Trigger::default();
    assert_eq!(
        observe(
            &mut t,
            &POLICY,
            &[(0, false), (1, false), (2, false), (9, false), (10, false)]
        ),
        vec![false, false, false, false, true]
    );
}

#[test]
fn too_few_failures_over_the_window_do_not_fire() {
    let mut t = Trigger::default();
    assert_eq!(
        observe(&mut t, &POLICY, &[(0, false), (20, false), (21, false)]),
        vec![false, false, true]
    );
}

#[test]
fn healthy_observation_resets_the_run() {
    let mut t = Trigger::default();
    assert_eq!(
        observe(
            &mut t,
            &POLICY,
            &[
                (0, false),
                (5, false),
                (9, true),
                (10, false),
                (15, false),
                (19, false),
                (20, false),
            ]
        ),
        vec![false, false, false, false, false, false, true]
    );
}

#[test]
fn min_interval_suppresses_a_second_firing() {
    let mut t = Trigger::default();
    assert_eq!(
        observe(
            &mut t,
            &POLICY,
            &[
                (0, false),
                (5, false),
                (10, false), // fires
                (15, false),
                (20, false),
                (25, false), // sustained again, but 25 < 10 + 30
                (39, false),
                (40, false), // rested
            ]
        ),
        vec![false, false, true, false, false, false, false, true]
    );
}

#[test]
fn policy_validation_rejects_blips_and_chasing_failovers() {
    let policy = |failures_required, window, min_interval| TriggerPolicy {
        failures_required,
        window,
        min_interval,
    };
    assert_eq!(
        [
            policy(0, 10, 30).validate(),
            policy(1, 10, 30).validate(),
            policy(1, 10, 5).validate(),
            policy(2, 10, 9).validate(),
            policy(2, 10, 10).validate(),
            POLICY.validate(),
        ],
        [
            Err(PolicyError::TooFewFailures),
            Err(PolicyError::TooFewFailures),
            Err(PolicyError::TooFewFailures),
            Err(PolicyError::IntervalShorterThanWindow),
            Ok(policy(2, 10, 10)),
            Ok(POLICY),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Issue 9: real time
// ---------------------------------------------------------------------------------------

/// While a call runs, a heartbeat due is written beside it.
#[test]
fn a_busy_operator_still_heartbeats() {
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 13));
    let input = Inputs {
        busy: true,
        ..inputs(A, 11, &SERVING, None)
    };
    assert_eq!(
        decide(&input, &settled(10, Some(view))).action,
        Action::Write(hb(&SERVING))
    );
}

/// While a call runs and the lease is fine, the operator waits for the next heartbeat
/// or the moment the lease runs low, whichever comes first.
#[test]
fn a_busy_operator_waits_for_its_next_heartbeat() {
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 13));
    let input = Inputs {
        busy: true,
        ..inputs(A, 10, &SERVING, None)
    };
    assert_eq!(
        decide(&input, &settled(10, Some(view))),
        waiting(Wake::At(11))
    );
}

/// Once the lease runs low the call is abandoned for a fence of every stop step.
#[test]
fn a_busy_operator_abandons_the_call_when_the_lease_runs_low() {
    let view = in_flight(CONSISTENCY, 2, 1, lock(A, 13));
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        retry_at: Some(20),
        ..settled(10, Some(view))
    };
    let input = Inputs {
        busy: true,
        ..inputs(A, 12, &SERVING, None)
    };
    let all = EffectSet::of(STOP.iter().filter_map(|s| s.effect()));
    assert_eq!(
        decide(&input, &mem),
        Decision {
            action: Action::Fence(all),
            purpose: Purpose::Fence,
            stage: None,
            step: None,
        }
    );
    // Before issue 9 nothing ran beside the call.
    let old = Inputs {
        variant: Variant::HeartbeatBehindTasks,
        ..input
    };
    assert_eq!(decide(&old, &mem), waiting(Wake::Change));
}

/// Without a lease nothing is started: the active cluster, fenced, waits for the next
/// heartbeat before it promotes its volumes again.
#[test]
fn no_start_step_without_a_lease() {
    let mem = Memory {
        instance: OWNER,
        claimed: Some(0),
        replaced: None,
        superseded: false,
        misbound: None,
        progress: None,
        hook: None,
        lease_until: None,
        ..settled(10, Some(at_rest()))
    };
    assert_eq!(
        decide(&inputs(A, 10, &STANDBY, None), &mem).action,
        Action::Wait(Wake::At(11))
    );
    // With the lease, it does.
    assert_eq!(
        decide(
            &inputs(A, 10, &STANDBY, None),
            &settled(10, Some(at_rest()))
        )
        .action,
        Action::Effect(Effect::PromoteVolumes)
    );
}

/// A stamp is the wall clock, or past the newest heartbeat of this cluster the record is
/// known to hold: a wall clock stepped back never makes heartbeats fail.
#[test]
fn stamps_pass_the_records_heartbeat() {
    use failover_model::stamp;
    let mem = settled(10, Some(rec(A, [Some(5_000), Some(10)])));
    assert_eq!(stamp(A, 20, Variant::Correct, &mem), 5_001);
    assert_eq!(stamp(A, 9_000, Variant::Correct, &mem), 9_000);
    assert_eq!(stamp(B, 20, Variant::Correct, &mem), 20);
    assert_eq!(stamp(A, 20, Variant::WallClockLease, &mem), 20);
}

/// Under `wall-clock-lease` a refused heartbeat still renews the lease, counted from its
/// wall stamp: what a wall clock stepped back turns into a lease the record never proved.
#[test]
fn wall_clock_lease_variant_credits_refused_heartbeats() {
    let mut mem = fresh();
    let current = rec(A, [Some(11), Some(9)]);
    mem.on_write(
        &write(A, 10, hb(&SERVING)),
        500,
        &TIMING,
        Variant::WallClockLease,
        Reply::ConditionFailed(current),
    );
    assert_eq!(
        (mem.heartbeat_at, mem.lease_until),
        (Some(500), Some(10 + TIMING.lease_ttl))
    );
}

/// The lease is counted from the monotonic send time, whatever the stamp.
#[test]
fn the_lease_counts_from_the_monotonic_send_time() {
    let mut mem = fresh();
    let after = rec(A, [Some(7_200_000), Some(9)]);
    mem.on_write(
        &write(A, 7_200_000, hb(&SERVING)),
        40,
        &TIMING,
        Variant::Correct,
        Reply::Applied(after),
    );
    assert_eq!(mem.lease_until, Some(40 + TIMING.lease_ttl));
}

// ---- Issue 9, part 4: a second process of one operator (leader hand-over) ----

/// A process that just started reads the record, then claims its slot from the owner it
/// read; the claim is its first heartbeat (the lease is credited from it).
#[test]
fn a_started_process_claims_its_slot_from_the_owner_it_read() {
    let mut mem = Memory::started(8);
    let d = decide(&inputs(A, 20, &SERVING, None), &mem);
    assert_eq!(d.action, Action::Read);
    assert_eq!(d.purpose, Purpose::Claim);
    mem.on_read(A, 20, &TIMING, Some(at_rest()));
    let d = decide(&inputs(A, 20, &SERVING, None), &mem);
    let claim = Op::Claim {
        prev: Some(OWNER),
        identity: 1,
    };
    assert_eq!(d.action, Action::Write(claim));
    let w = Write {
        by: A,
        instance: 8,
        now: 20,
        op: claim,
    };
    let after = apply(&at_rest(), &w, &TIMING, Variant::Correct).expect("claim applies");
    assert_eq!(after.instance, [Some(8), Some(OWNER)]);
    assert_eq!(after.heartbeat[A.index()], Some(20));
    feed(&mut mem, &w, Reply::Applied(after));
    assert_eq!(mem.claimed, Some(20));
    assert_eq!(mem.replaced, Some(OWNER));
    assert_eq!(mem.lease_until, Some(20 + TIMING.lease_ttl));
    assert!(!mem.superseded);
}

/// Every write but a claim needs the record to name its sender's process; a claim
/// needs the owner its sender read, so a copy of an old claim delayed in transit never
/// takes the slot back.
#[test]
fn only_the_owner_writes_and_an_old_claim_never_lands() {
    let record = pending(at_rest(), 1, B, Mode::Consistency);
    let stranger = |op| Write {
        by: A,
        instance: 9,
        now: 20,
        op,
    };
    for op in [
        hb(&SERVING),
        Op::Acquire {
            id: 1,
            mode: Mode::Consistency,
        },
    ] {
        assert_eq!(
            apply(&record, &stranger(op), &TIMING, Variant::Correct),
            Err(ConditionFailed),
            "{op:?}"
        );
        assert!(apply(&record, &stranger(op), &TIMING, Variant::StaleLeader).is_ok());
    }
    let late = stranger(Op::Claim {
        prev: Some(3),
        identity: 1,
    });
    assert_eq!(
        apply(&record, &late, &TIMING, Variant::Correct),
        Err(ConditionFailed)
    );
}

/// A process that replaced another changes nothing for `lease - margin + drift` after
/// its claim: it heartbeats and would fence, but neither starts a failover nor keeps its
/// cluster at rest until the old process's lease is over; the first start has no hold.
#[test]
fn a_process_that_replaced_another_holds_back_until_the_old_lease_is_over() {
    let request = Some(Request {
        id: 1,
        to: B,
        mode: Mode::Consistency,
    });
    let mut mem = settled(20, Some(pending(at_rest(), 1, B, Mode::Consistency)));
    mem.claimed = Some(20);
    mem.replaced = Some(3);
    let until = 20 + TIMING.lease_ttl - TIMING.fence_margin + TIMING.clock_drift_max;
    assert_eq!(mem.hold_until(&TIMING), Some(until));
    let held = decide(&inputs(A, 20, &SERVING, request), &mem);
    assert_eq!(held.action, Action::Wait(Wake::At(until)));
    let mut later = mem.clone();
    later.heartbeat_at = Some(until);
    later.lease_until = Some(until + TIMING.lease_ttl);
    let d = decide(&inputs(A, until, &SERVING, request), &later);
    assert!(
        matches!(d.action, Action::Write(Op::Acquire { .. })),
        "{d:?}"
    );
    // Held, it still fences once its own lease is low.
    let mut fencing = mem.clone();
    fencing.lease_until = Some(21);
    fencing.retry_at = Some(30);
    assert_eq!(
        decide(&inputs(A, 20, &SERVING, request), &fencing),
        fence(&FENCE_ALL)
    );
    // `stale-leader` does not hold back.
    let mut input = inputs(A, 20, &SERVING, request);
    input.variant = Variant::StaleLeader;
    assert!(matches!(
        decide(&input, &mem).action,
        Action::Write(Op::Acquire { .. })
    ));
    mem.replaced = None;
    assert_eq!(mem.hold_until(&TIMING), None);
}

/// A process that sees the record name another process as its cluster's owner was
/// replaced: it stops for good (the engine leaves its loop).
#[test]
fn a_replaced_process_stops_for_good() {
    let mut mem = settled(20, Some(at_rest()));
    assert!(!mem.superseded);
    let mut taken = at_rest();
    taken.instance[A.index()] = Some(9);
    mem.on_read(A, 21, &TIMING, Some(taken));
    assert!(mem.superseded);
    let d = decide(&inputs(A, 21, &SERVING, None), &mem);
    assert_eq!(d.action, Action::Wait(Wake::Change));
    let mut input = inputs(A, 21, &SERVING, None);
    input.variant = Variant::StaleLeader;
    assert!(decide(&input, &mem).is_urgent());
}

// ---------------------------------------------------------------------------------------
// Requests travel through the record (issue 10)
// ---------------------------------------------------------------------------------------

fn ask(id: FailoverId, to: Cluster, mode: Mode) -> Option<Request> {
    Some(Request { id, to, mode })
}

/// Either operator writes the request its cluster has, in either direction: the record
/// accepts one pending request; a request for the active cluster ends at once as a no-op.
#[test]
fn a_cluster_writes_its_own_request_into_the_record() {
    // The standby has the request: it writes it, it does not wait for A's lease.
    let d = decide(
        &inputs(B, 10, &STANDBY, ask(1, B, Mode::Uptime)),
        &settled(10, Some(at_rest())),
    );
    assert_eq!(
        d,
        Decision {
            action: Action::Write(Op::Request {
                id: 1,
                to: B,
                mode: Mode::Uptime
            }),
            purpose: Purpose::Request,
            stage: None,
            step: None,
        }
    );
    // A request for the active cluster is a no-op, whoever has it.
    for me in [A, B] {
        let state = if me == A { &SERVING } else { &STANDBY };
        let d = decide(
            &inputs(me, 10, state, ask(2, A, Mode::Consistency)),
            &settled(10, Some(at_rest())),
        );
        assert_eq!(
            d.action,
            Action::Write(Op::AlreadyActive { id: 2, to: A }),
            "{me}"
        );
    }
    // Once the record has it, the pending request drives both operators.
    let view = pending(at_rest(), 1, B, Mode::Uptime);
    let d = decide(
        &inputs(B, 10, &STANDBY, ask(1, B, Mode::Uptime)),
        &settled(10, Some(view.clone())),
    );
    assert_eq!(d.action, Action::Wait(Wake::At(15)));
    let d = decide(&inputs(A, 10, &SERVING, None), &settled(10, Some(view)));
    assert_eq!(
        d.action,
        Action::Write(Op::Acquire {
            id: 1,
            mode: Mode::Uptime
        })
    );
}

#[test]
fn the_record_holds_one_pending_request_and_refuses_a_second() {
    let first = Op::Request {
        id: 1,
        to: B,
        mode: Mode::Consistency,
    };
    let accepted = store(&at_rest(), B, 10, first).expect("accepted");
    assert_eq!(
        accepted.request,
        Some(Pending {
            id: 1,
            to: B,
            mode: Mode::Consistency,
            by: B
        })
    );
    assert_eq!(accepted.refuses(1), None);
    // Its own copy again (a retry after a timeout) is refused without refusing it.
    assert_eq!(store(&accepted, B, 11, first), Err(ConditionFailed));
    // A second request, either way, is refused; the record names the holder.
    for op in [
        Op::Request {
            id: 2,
            to: B,
            mode: Mode::Uptime,
        },
        Op::AlreadyActive { id: 2, to: A },
    ] {
        assert_eq!(store(&accepted, A, 11, op), Err(ConditionFailed), "{op:?}");
    }
    assert_eq!(accepted.refuses(2), Some(1));
    // While a failover is in flight, too.
    let running = store(
        &accepted,
        A,
        11,
        Op::Acquire {
            id: 1,
            mode: Mode::Consistency,
        },
    )
    .expect("acquired");
    assert_eq!(running.request, None);
    assert_eq!(running.refuses(2), Some(1));
    let second = Op::Request {
        id: 2,
        to: B,
        mode: Mode::Uptime,
    };
    assert_eq!(store(&running, B, 12, second), Err(ConditionFailed));
}

#[test]
fn a_request_for_the_active_cluster_ends_as_a_no_op() {
    let done = store(&at_rest(), B, 10, Op::AlreadyActive { id: 4, to: A }).expect("no-op");
    assert_eq!(done.outcome_of(4), Some(Outcome::NoOp));
    assert_eq!(done.request, None);
    // Not for the standby, and never twice.
    assert_eq!(
        store(&at_rest(), B, 10, Op::AlreadyActive { id: 4, to: B }),
        Err(ConditionFailed)
    );
    assert_eq!(
        store(&done, B, 11, Op::AlreadyActive { id: 4, to: A }),
        Err(ConditionFailed)
    );
    // A request for the standby is not refused when it would be a no-op, and the
    // reverse: a false condition on the target alone refuses nothing.
    assert_eq!(at_rest().refuses(4), None);
}

#[test]
fn a_pending_request_can_be_withdrawn_until_it_started() {
    let view = pending(at_rest(), 1, B, Mode::Consistency);
    let d = decide(
        &Inputs {
            withdraw: Some(1),
            ..inputs(B, 10, &STANDBY, None)
        },
        &settled(10, Some(view.clone())),
    );
    assert_eq!(d.action, Action::Write(Op::Withdraw { id: 1 }));
    let gone = store(&view, B, 10, Op::Withdraw { id: 1 }).expect("withdrawn");
    assert_eq!(gone.request, None);
    assert_eq!(gone.outcome_of(1), Some(Outcome::Withdrawn));
    // Started: too late to withdraw (the failover runs on).
    let running = store(
        &view,
        A,
        10,
        Op::Acquire {
            id: 1,
            mode: Mode::Consistency,
        },
    )
    .expect("acquired");
    assert_eq!(
        store(&running, B, 11, Op::Withdraw { id: 1 }),
        Err(ConditionFailed)
    );
    let d = decide(
        &Inputs {
            withdraw: Some(1),
            ..inputs(B, 11, &STANDBY, None)
        },
        &settled(11, Some(running)),
    );
    assert!(
        !matches!(d.action, Action::Write(Op::Withdraw { .. })),
        "{d:?}"
    );
}

#[test]
fn only_the_pending_request_starts_a_failover() {
    // No pending request: neither a planned nor a forced start.
    let acquire = Op::Acquire {
        id: 1,
        mode: Mode::Consistency,
    };
    assert_eq!(store(&at_rest(), A, 10, acquire), Err(ConditionFailed));
    let force = Op::ForceTakeLock {
        id: 1,
        seen: Some(10),
    };
    assert_eq!(store(&at_rest(), B, 15, force), Err(ConditionFailed));
    // The pending request's mode, not another.
    let view = pending(at_rest(), 1, B, Mode::Uptime);
    assert_eq!(store(&view, A, 10, acquire), Err(ConditionFailed));
}

// ---------------------------------------------------------------------------------------
// A missing record (issue 10)
// ---------------------------------------------------------------------------------------

/// A record that went missing is never created again by the protocol: the operator
/// drops its lease (nothing the record proved holds any more), fences its cluster at
/// once, and keeps retrying the store. Before issue 10 (`recreate-missing-record`) it
/// created the record again from the spec.
#[test]
fn a_missing_record_drops_the_lease_and_is_not_created_again() {
    let mut mem = settled(20, Some(at_rest()));
    feed(&mut mem, &write(A, 21, hb(&SERVING)), Reply::Missing);
    assert!(mem.missing);
    assert_eq!(mem.lease_until, None, "the lease is dropped");
    assert_eq!(mem.view, None);
    let d = decide(&inputs(A, 21, &SERVING, None), &mem);
    assert_eq!(d, fence(&FENCE_ALL), "the serving cluster fences at once");
    // Once stopped, it waits for the store; it never writes a create.
    let later = decide(&inputs(A, 30, &STANDBY, None), &mem);
    assert!(
        !matches!(later.action, Action::Write(Op::Create { .. })),
        "{later:?}"
    );
    let old = Inputs {
        variant: Variant::RecreateMissingRecord,
        ..inputs(A, 30, &STANDBY, None)
    };
    assert_eq!(
        decide(&old, &mem).action,
        Action::Write(Op::Create { active: A })
    );
    // A create on an existing record is refused.
    assert_eq!(
        store(&at_rest(), A, 30, Op::Create { active: A }),
        Err(ConditionFailed)
    );
}

/// The explicit re-creation starts from the newest trace either cluster kept: its
/// active cluster and a token above it; nobody owns a slot, and each operator claims
/// its slot again (without a hold: no process of it was replaced).
#[test]
fn the_recreated_record_starts_above_every_token_seen() {
    let trace = |token, ended, active| {
        Some(Trace {
            token,
            ended,
            active,
            missing: true,
        })
    };
    // B completed the failover (history 1) that A saw only started (token 2 both).
    let r = Record::recreated([trace(2, 0, A), trace(2, 1, B)]).expect("traces");
    assert_eq!((r.active, r.token), (B, 3));
    assert_eq!(r.instance, [None, None]);
    assert_eq!((r.lock, r.failover, r.request), (None, None, None));
    assert_eq!(
        Record::recreated([None, trace(5, 0, A)]).map(|r| r.token),
        Some(6)
    );
    assert_eq!(Record::recreated([None, None]), None);
    // An operator that had claimed its slot claims it again.
    let mut mem = settled(20, Some(at_rest()));
    mem.on_read(A, 30, &TIMING, Some(r.clone()));
    assert!(!mem.superseded);
    assert_eq!(mem.claimed, None);
    assert_eq!(
        decide(&inputs(A, 30, &STANDBY, None), &mem).action,
        Action::Write(Op::Claim {
            prev: None,
            identity: 1
        })
    );
    assert_eq!(mem.hold_until(&TIMING), None);
}

// ---- Issue 10, part 2: which cluster an operator is, proven by the record ----

/// A record whose slots are bound to identities 1 (A) and 2 (B).
fn bound_rec() -> Record {
    Record {
        bound: [Some(1), Some(2)],
        ..at_rest()
    }
}

/// The first claim of a slot binds it to the claimer's identity; a claim from another
/// identity is refused for good (whatever owner it names), and under
/// `no-identity-check` it takes the slot.
#[test]
fn a_claim_binds_the_slot_and_another_identity_is_refused() {
    let claim = |identity| Write {
        by: A,
        instance: 8,
        now: 20,
        op: Op::Claim {
            prev: Some(OWNER),
            identity,
        },
    };
    let first = apply(&at_rest(), &claim(7), &TIMING, Variant::Correct).expect("binds");
    assert_eq!(first.bound[A.index()], Some(7));
    assert_eq!(
        apply(&bound_rec(), &claim(2), &TIMING, Variant::Correct),
        Err(ConditionFailed)
    );
    let same = apply(&bound_rec(), &claim(1), &TIMING, Variant::Correct).expect("same cluster");
    assert_eq!(same.instance[A.index()], Some(8));
    let taken = apply(&bound_rec(), &claim(2), &TIMING, Variant::NoIdentityCheck)
        .expect("the broken variant trusts the configuration");
    assert_eq!(taken.instance[A.index()], Some(8));
}

/// An operator configured as the wrong cluster (cluster B's, configured as A): its claim
/// is refused, it fences its own cluster, writes the contest into the record once, and
/// then waits; it never heartbeats the slot it does not own.
#[test]
fn a_misconfigured_operator_fences_reports_and_waits() {
    let mut mem = Memory::started(8);
    let input = |cluster| Inputs {
        identity: 2,
        ..inputs(A, 20, cluster, None)
    };
    mem.on_read(A, 20, &TIMING, Some(bound_rec()));
    let d = decide(&input(&SERVING), &mem);
    let op = Op::Claim {
        prev: Some(OWNER),
        identity: 2,
    };
    assert_eq!(d.action, Action::Write(op));
    let w = Write {
        by: A,
        instance: 8,
        now: 20,
        op,
    };
    feed(&mut mem, &w, Reply::ConditionFailed(bound_rec()));
    assert_eq!(mem.misbound, Some(1));
    assert_eq!(mem.claimed, None);
    let d = decide(&input(&SERVING), &mem);
    assert_eq!(d.purpose, Purpose::Fence);
    let d = decide(&input(&STANDBY), &mem);
    let contest = Op::Contest { identity: 2 };
    assert_eq!(d.action, Action::Write(contest));
    let w = Write { op: contest, ..w };
    let after = apply(&bound_rec(), &w, &TIMING, Variant::Correct).expect("no owner needed");
    assert_eq!(after.contested, [Some(2), None]);
    feed(&mut mem, &w, Reply::Applied(after));
    assert_eq!(
        decide(&input(&STANDBY), &mem).action,
        Action::Wait(Wake::Change)
    );
    // Nobody else may write the contest of an identity the slot is bound to.
    let own = Write {
        op: Op::Contest { identity: 1 },
        ..w
    };
    assert_eq!(
        apply(&bound_rec(), &own, &TIMING, Variant::Correct),
        Err(ConditionFailed)
    );
}

/// Once fixed, the operator (now owning its own slot) withdraws its old contest of the
/// peer's slot.
#[test]
fn a_fixed_operator_withdraws_its_contest() {
    let record = Record {
        contested: [Some(2), None],
        health: [None; 2],
        ..bound_rec()
    };
    let mem = settled(20, Some(record.clone()));
    let input = Inputs {
        identity: 2,
        ..inputs(B, 20, &STANDBY, None)
    };
    let d = decide(&input, &mem);
    let op = Op::Uncontest { identity: 2 };
    assert_eq!(d.action, Action::Write(op));
    let w = Write {
        by: B,
        instance: OWNER,
        now: 20,
        op,
    };
    let after = apply(&record, &w, &TIMING, Variant::Correct).expect("applies");
    assert_eq!(after.contested, [None, None]);
}

/// Each operator writes its copy's fingerprint; while the two differ the active cluster
/// does not start the pending request (and the store refuses it), but a forced failover
/// stays possible.
#[test]
fn drift_holds_a_planned_failover_but_not_a_forced_one() {
    let drifted = SpecPrint {
        members: 9,
        ..SpecPrint::default()
    };
    let record = pending(at_rest(), 1, B, Mode::Consistency);
    let mem = settled(20, Some(record.clone()));
    let input = Inputs {
        spec: drifted,
        ..inputs(A, 20, &SERVING, None)
    };
    assert_eq!(
        decide(&input, &mem).action,
        Action::Write(Op::Spec { print: drifted })
    );
    let w = |op| Write {
        by: A,
        instance: OWNER,
        now: 20,
        op,
    };
    let after = apply(
        &record,
        &w(Op::Spec { print: drifted }),
        &TIMING,
        Variant::Correct,
    )
    .expect("applies");
    assert!(!after.specs_agree());
    assert_eq!(
        after.spec[A.index()]
            .expect("written")
            .differs(&SpecPrint::default()),
        vec!["spec.members"]
    );
    let mem = settled(20, Some(after.clone()));
    let d = decide(&input, &mem);
    assert!(
        !matches!(d.action, Action::Write(Op::Acquire { .. })),
        "{d:?}"
    );
    let acquire = Op::Acquire {
        id: 1,
        mode: Mode::Consistency,
    };
    assert_eq!(
        apply(&after, &w(acquire), &TIMING, Variant::Correct),
        Err(ConditionFailed)
    );
    let force = Write {
        by: B,
        ..w(Op::ForceTakeLock {
            id: 1,
            seen: Some(10),
        })
    };
    assert!(apply(&after, &force, &TIMING, Variant::Correct).is_ok());
}

// ---- Issue 10, part 4: empty selections ----

/// The record holds each cluster's inventory; a source whose operator found other
/// members (its volumes without the group's label) is never forced over, and the
/// target promotes only while it finds what the source found. `empty-selection-done`
/// compares nothing.
#[test]
fn a_different_inventory_stops_a_force_and_a_promotion() {
    let mut view = pending(at_rest(), 1, B, Mode::Consistency);
    view.spec[A.index()] = Some(SpecPrint {
        inventory: 0b110_0000,
        ..SpecPrint::default()
    });
    // B has seen A's heartbeat stand for lease + drift: it would force.
    let mut mem = settled(30, Some(view.clone()));
    mem.heartbeat_at = Some(30);
    let now = 10 + TIMING.lease_ttl + TIMING.clock_drift_max + 1;
    mem.lease_until = Some(now + TIMING.lease_ttl);
    let request = Some(Request {
        id: 1,
        to: B,
        mode: Mode::Consistency,
    });
    let d = decide(&inputs(B, now, &STANDBY, request), &mem);
    assert!(
        !matches!(d.action, Action::Write(Op::ForceTakeLock { .. })),
        "{d:?}"
    );
    let broken = Inputs {
        variant: Variant::EmptySelectionDone,
        ..inputs(B, now, &STANDBY, request)
    };
    // (The broken variant writes its print without an inventory first.)
    let mut same = view.clone();
    same.spec[B.index()] = Some(SpecPrint::default());
    let d = decide(&broken, &settled(30, Some(same)));
    assert!(
        matches!(d.action, Action::Write(Op::ForceTakeLock { .. })),
        "{d:?}"
    );
    // Agreement on the inventory is part of the prints Acquire compares.
    let w = Write {
        by: A,
        instance: OWNER,
        now: 20,
        op: Op::Acquire {
            id: 1,
            mode: Mode::Consistency,
        },
    };
    assert_eq!(
        apply(&view, &w, &TIMING, Variant::Correct),
        Err(ConditionFailed)
    );
}

/// The model's inventory: one bit per field whose kind selects nothing.
#[test]
fn a_cluster_without_volumes_has_another_inventory() {
    let mut s = SERVING;
    assert_eq!(s.inventory(), 0);
    s.agreement.volume_spec = Agreement::NoMembers;
    s.agreement.volume_status = Agreement::NoMembers;
    assert_ne!(s.inventory(), 0);
}

// ---------------------------------------------------------------------------------------
// Issue 10, part 3: stage deadlines and a person's actions
// ---------------------------------------------------------------------------------------

/// `mem` noted the failover's `stage` at `token` since `since`.
fn noted(mut mem: Memory, stage: Stage, token: Token, since: Time) -> Memory {
    mem.progress = Some(Progress {
        id: 1,
        stage,
        token,
        since,
    });
    mem
}

#[test]
fn a_stage_past_its_deadline_before_the_promotion_rolls_back() {
    // The source waits for its pods to stop (position 6), for the whole deadline.
    let view = in_flight(CONSISTENCY, 6, 1, lock(A, 13));
    let pods_left = ClusterState {
        network_open: false,
        workloads_up: false,
        cronjobs_suspended: true,
        flux_suspended: true,
        ..SERVING
    };
    let due = 11 + TIMING.deadline(Stage::SourcePreparation);
    let mem = noted(settled(due, Some(view)), Stage::SourcePreparation, 1, 11);
    assert_eq!(
        decide(&inputs(A, due - 1, &pods_left, None), &mem).action,
        Action::Wait(Wake::At(due))
    );
    assert_eq!(
        decide(&inputs(A, due, &pods_left, None), &mem),
        planned(
            Action::Write(Op::Abort {
                id: 1,
                token: 1,
                at: 6,
                reason: AbortReason::Deadline(Stage::SourcePreparation),
            }),
            6,
            Stage::SourcePreparation,
            Step::AwaitWorkloadsDown
        )
    );
}

#[test]
fn a_stage_past_its_deadline_after_the_promotion_flags_needs_operator_and_keeps_waiting() {
    // The target's volumes were set primary and never report it (position 11).
    let view = in_flight(CONSISTENCY, 11, 2, lock(B, 30));
    let unreported = ClusterState {
        volume_spec: VolumeRole::Primary,
        ..STANDBY
    };
    let due = 20 + TIMING.deadline(Stage::VolumePromotion);
    let mem = noted(
        settled(due, Some(view.clone())),
        Stage::VolumePromotion,
        2,
        20,
    );
    let stuck = Op::Stuck {
        id: 1,
        token: 2,
        at: 11,
    };
    assert_eq!(
        decide(&inputs(B, due, &unreported, None), &mem).action,
        Action::Write(stuck)
    );
    let flagged = store(&view, B, due, stuck).expect("the holder flags it");
    assert!(flagged.failover.is_some_and(|f| f.stuck));
    // Flagged once: it goes on waiting for the volumes (or a person).
    let mem = noted(
        settled(due, Some(flagged.clone())),
        Stage::VolumePromotion,
        2,
        20,
    );
    assert_eq!(
        decide(&inputs(B, due, &unreported, None), &mem).action,
        Action::Wait(Wake::Change)
    );
    // The step done after all: the journal moves on and the flag clears.
    let journal = Op::Journal {
        id: 1,
        token: 2,
        at: 11,
        release: false,
    };
    let next = store(&flagged, B, due + 1, journal).expect("journaled");
    assert!(next.failover.is_some_and(|f| !f.stuck && f.done == 12));
}

#[test]
fn no_roll_back_once_the_target_may_have_promoted() {
    let abort = |at| Op::Abort {
        id: 1,
        token: 2,
        at,
        reason: AbortReason::Person,
    };
    // Position 9: the target's hand-off, nothing promoted: allowed.
    let handing_over = in_flight(CONSISTENCY, 9, 2, None);
    assert!(store(&handing_over, A, 20, abort(9)).is_ok());
    // Position 10: the target took the lock to promote: refused, whoever sends it.
    let promoting = in_flight(CONSISTENCY, 10, 2, lock(B, 30));
    assert_eq!(store(&promoting, B, 20, abort(10)), Err(ConditionFailed));
    // A forced failover has no roll back at all.
    let forced = in_flight(PlanKind::Forced, 1, 2, lock(B, 30));
    assert_eq!(store(&forced, B, 20, abort(1)), Err(ConditionFailed));
}

#[test]
fn the_source_rolls_back_when_the_target_never_takes_over() {
    // The source handed over (position 9) and the target's heartbeat stands still.
    let view = in_flight(CONSISTENCY, 9, 1, None);
    let silent = 10 + TIMING.lease_ttl + TIMING.clock_drift_max + 1;
    assert_eq!(
        decide(
            &inputs(A, silent - 1, &STANDBY, None),
            &settled(silent - 1, Some(view.clone()))
        )
        .action,
        Action::Wait(Wake::At(silent))
    );
    assert_eq!(
        decide(
            &inputs(A, silent, &STANDBY, None),
            &settled(silent, Some(view))
        )
        .action,
        Action::Write(Op::Abort {
            id: 1,
            token: 1,
            at: 9,
            reason: AbortReason::TargetSilent,
        })
    );
}

fn intervene(record: &Record, action: Intervention) -> Result<Record, ConditionFailed> {
    let f = record.failover.expect("in flight");
    let op = Op::Intervene {
        id: f.id,
        token: record.token,
        at: f.done,
        action,
    };
    // No process sends it: any instance, no slot owned.
    apply(
        record,
        &Write {
            by: A,
            instance: 0,
            now: 0,
            op,
        },
        &TIMING,
        Variant::Correct,
    )
}

#[test]
fn a_person_aborts_through_the_source_and_the_target_no_longer_takes_over() {
    let handing_over = in_flight(CONSISTENCY, 9, 1, None);
    let asked = intervene(&handing_over, Intervention::Abort).expect("abortable");
    assert_eq!(
        asked.failover.and_then(|f| f.asked),
        Some(Intervention::Abort)
    );
    // The target's hand-off is refused from now on.
    assert_eq!(
        store(&asked, B, 20, Op::TakeOver { id: 1, at: 9 }),
        Err(ConditionFailed)
    );
    // The source carries it out with its own token.
    let d = decide(
        &inputs(A, 12, &STANDBY, None),
        &settled(12, Some(asked.clone())),
    );
    let abort = Op::Abort {
        id: 1,
        token: 1,
        at: 9,
        reason: AbortReason::Person,
    };
    assert_eq!(d.action, Action::Write(abort));
    let ended = store(&asked, A, 12, abort).expect("aborted");
    assert_eq!(ended.active, A);
    assert_eq!(
        ended.outcome_of(1),
        Some(Outcome::Aborted(AbortReason::Person))
    );
    // After the promotion a person cannot abort.
    let promoting = in_flight(CONSISTENCY, 10, 2, lock(B, 30));
    assert_eq!(
        intervene(&promoting, Intervention::Abort),
        Err(ConditionFailed)
    );
}

#[test]
fn a_person_retries_or_resolves_a_needs_operator_failover() {
    let mut flagged = in_flight(CONSISTENCY, 11, 2, lock(B, 30));
    if let Some(f) = flagged.failover.as_mut() {
        f.stuck = true;
    }
    // Nothing to retry or resolve before the flag.
    let quiet = in_flight(CONSISTENCY, 11, 2, lock(B, 30));
    assert_eq!(intervene(&quiet, Intervention::Retry), Err(ConditionFailed));
    assert_eq!(
        intervene(&quiet, Intervention::Resolve),
        Err(ConditionFailed)
    );
    // Retry: the flag clears and the token rises (a new deadline for the holder).
    let retried = intervene(&flagged, Intervention::Retry).expect("retry");
    assert_eq!(retried.token, 3);
    assert!(retried.failover.is_some_and(|f| !f.stuck));
    // Resolve: the holder completes it as resolved (only the target's work was left).
    let asked = intervene(&flagged, Intervention::Resolve).expect("resolve");
    let unreported = ClusterState {
        volume_spec: VolumeRole::Primary,
        ..STANDBY
    };
    let resolve = Op::Resolve {
        id: 1,
        token: 2,
        at: 11,
    };
    assert_eq!(
        decide(
            &inputs(B, 40, &unreported, None),
            &settled(40, Some(asked.clone()))
        )
        .action,
        Action::Write(resolve)
    );
    let done = store(&asked, B, 40, resolve).expect("resolved");
    assert_eq!(done.active, B);
    assert_eq!(done.outcome_of(1), Some(Outcome::Resolved));
    assert_eq!(done.lock, None);
}

#[test]
fn a_resolve_never_skips_the_source_nor_an_uptime_target_phase_the_source_follows() {
    let plan = Plan::of(UPTIME, Variant::Correct);
    // Target activation (positions 3 to 9) hands over to the source at 10: resolving it
    // would stop the source while the target does not serve yet.
    assert_eq!(plan.phase_end(6), Some(10));
    assert!(!plan.resolvable(6));
    // The source's demotion after the promotion is never resolvable either.
    let demoting = plan
        .steps
        .iter()
        .position(|s| s.step == Step::AwaitVolumesSecondary)
        .expect("uptime demotes") as u32;
    assert!(!plan.resolvable(demoting));
    // The completion's hand-off and the completion are: only the target's work is left.
    let last = plan.len() as u32 - 1;
    assert!(plan.resolvable(last - 1) && plan.resolvable(last));
    let mut flagged = in_flight(UPTIME, 6, 2, lock(B, 30));
    if let Some(f) = flagged.failover.as_mut() {
        f.stuck = true;
    }
    assert_eq!(
        intervene(&flagged, Intervention::Resolve),
        Err(ConditionFailed)
    );
    // Consistency: every target step after the promotion is resolvable.
    let consistency = Plan::of(CONSISTENCY, Variant::Correct);
    let promote = consistency.promote_at();
    assert!((promote..consistency.len() as u32).all(|at| consistency.resolvable(at)));
    assert!(!consistency.resolvable(promote - 1));
}

// ---------------------------------------------------------------------------------------
// Hooks (issue 13)
// ---------------------------------------------------------------------------------------

fn spot(anchor: Step, after: bool, side: Role, on_failure: OnFailure) -> HookSpot {
    HookSpot {
        anchor,
        after,
        side,
        on_failure,
    }
}

/// A quiesce before the demotion (abort), a verify before the promotion (abort) and a
/// notification after Flux resumes (continue).
fn database_hooks() -> Hooks {
    Hooks::of(&[
        spot(Step::DemoteVolumes, false, Role::Source, OnFailure::Abort),
        spot(Step::PromoteVolumes, false, Role::Target, OnFailure::Abort),
        spot(Step::ResumeFlux, true, Role::Target, OnFailure::Continue),
    ])
    .unwrap()
}

/// Failover 1 from A to B with the database hooks, at `done`, the lock with `holder`.
fn hooked(kind: PlanKind, done: u32, holder: Cluster) -> Record {
    let mut r = in_flight(kind, done, 2, lock(holder, 100));
    let hooks = database_hooks();
    if let Some(f) = r.failover.as_mut() {
        f.hooks = hooks;
    }
    r.spec = [Some(hooked_print()); 2];
    r
}

/// The print of a copy of the spec with the database hooks.
fn hooked_print() -> SpecPrint {
    SpecPrint {
        hooks: database_hooks(),
        ..SpecPrint::default()
    }
}

/// A source whose preparation is done: nothing runs, volumes still primary.
const PREPARED_SOURCE: ClusterState = ClusterState {
    network_open: false,
    workloads_up: false,
    workloads_running: false,
    cronjobs_suspended: true,
    flux_suspended: true,
    ..SERVING
};

fn position(plan: &Plan, step: Step) -> u32 {
    plan.steps.iter().position(|s| s.step == step).unwrap() as u32
}

#[test]
fn hooks_pack_and_unpack() {
    let hooks = database_hooks();
    assert_eq!(hooks.len(), 3);
    assert_eq!(Hooks::from_bits(hooks.bits()), Some(hooks));
    assert_eq!(
        hooks.get(1),
        Some(spot(
            Step::PromoteVolumes,
            false,
            Role::Target,
            OnFailure::Abort
        ))
    );
    assert_eq!(hooks.get(3), None);
    assert!(
        Hooks::of(&[spot(Step::DemoteVolumes, false, Role::Source, OnFailure::Abort); 9]).is_none()
    );
    // A hole in the packed form is no valid set of hooks.
    assert_eq!(Hooks::from_bits(0xff00), None);
    assert_eq!(
        hooks.to_string(),
        "[#0 before demote-volumes (abort), #1 before promote-volumes (abort), \
         #2 after resume-flux (continue)]"
    );
}

#[test]
fn hook_spots_must_be_cluster_steps_of_their_side() {
    let ok = spot(Step::DemoteVolumes, false, Role::Source, OnFailure::Abort);
    assert_eq!(ok.problem(), None);
    let record = spot(Step::Complete, true, Role::Target, OnFailure::Continue);
    assert!(record.problem().unwrap().contains("writes the record"));
    let wrong_side = spot(Step::DemoteVolumes, false, Role::Target, OnFailure::Abort);
    let why = wrong_side.problem().unwrap();
    assert!(
        why.contains("runs on the source") && why.contains("without it"),
        "{why}"
    );
}

#[test]
fn hooks_stand_beside_their_anchors_on_their_side() {
    let hooks = database_hooks();
    let consistency = Plan::with_hooks(CONSISTENCY, Variant::Correct, hooks);
    let names: Vec<Step> = consistency.steps.iter().map(|s| s.step).collect();
    let before = |a: Step, b: Step| {
        names.iter().position(|s| *s == a).unwrap() + 1
            == names.iter().position(|s| *s == b).unwrap()
    };
    assert!(before(Step::Hook(0), Step::DemoteVolumes));
    assert!(before(Step::Hook(1), Step::PromoteVolumes));
    assert!(before(Step::ResumeFlux, Step::Hook(2)));
    assert_eq!(
        consistency.len(),
        Plan::of(CONSISTENCY, Variant::Correct).len() + 3
    );
    // The hooks belong to their anchor's stage and side.
    let at = position(consistency, Step::Hook(1));
    let ps = consistency.get(at).unwrap();
    assert_eq!((ps.stage, ps.owner), (Stage::VolumePromotion, Role::Target));
    // Both abort hooks stand where a roll back is safe in consistency mode.
    assert!(consistency.hook_aborts(CONSISTENCY, position(consistency, Step::Hook(0))));
    assert!(consistency.hook_aborts(CONSISTENCY, at));
    assert!(!consistency.hook_aborts(CONSISTENCY, position(consistency, Step::Hook(2))));
    // In uptime mode the source's quiesce comes after the target promoted: no roll back.
    let uptime = Plan::with_hooks(UPTIME, Variant::Correct, hooks);
    assert!(!uptime.hook_aborts(UPTIME, position(uptime, Step::Hook(0))));
    assert!(uptime.hook_aborts(UPTIME, position(uptime, Step::Hook(1))));
    // A forced plan has no source steps: the quiesce is not run.
    let forced = Plan::with_hooks(PlanKind::Forced, Variant::Correct, hooks);
    assert!(!forced.steps.iter().any(|s| s.step == Step::Hook(0)));
    assert!(forced.steps.iter().any(|s| s.step == Step::Hook(1)));
    // The same plan every time (built once).
    assert!(std::ptr::eq(
        consistency,
        Plan::with_hooks(CONSISTENCY, Variant::Correct, hooks)
    ));
}

#[test]
fn a_failover_keeps_the_hooks_it_started_with() {
    let hooks = database_hooks();
    let mut r = pending(at_rest(), 1, B, Mode::Consistency);
    r.spec = [Some(hooked_print()); 2];
    let acquired = store(
        &r,
        A,
        11,
        Op::Acquire {
            id: 1,
            mode: Mode::Consistency,
        },
    )
    .unwrap();
    assert_eq!(acquired.failover.unwrap().hooks, hooks);
    // A spec that changes later changes the prints, not the failover in flight.
    let changed = store(
        &acquired,
        A,
        12,
        Op::Spec {
            print: SpecPrint::default(),
        },
    )
    .unwrap();
    assert_eq!(changed.failover.unwrap().hooks, hooks);
    assert_eq!(
        changed.spec[0].unwrap().differs(&changed.spec[1].unwrap()),
        vec!["spec.hooks"]
    );
}

/// The source at the quiesce hook: run it; then, by its outcome, journal it or roll back.
#[test]
fn an_abort_hook_that_fails_rolls_back_and_one_that_succeeds_is_journaled() {
    let plan = Plan::with_hooks(CONSISTENCY, Variant::Correct, database_hooks());
    let at = position(plan, Step::Hook(0));
    let record = hooked(CONSISTENCY, at, A);
    let spec = hooked_print();
    let source = PREPARED_SOURCE;
    let input = Inputs {
        spec,
        ..inputs(A, 11, &source, None)
    };
    let mut mem = settled(11, Some(record.clone()));
    let d = decide(&input, &mem);
    assert_eq!(d.action, Action::Hook(0));
    assert_eq!(
        (d.purpose, d.step),
        (Purpose::Plan { at }, Some(Step::Hook(0)))
    );
    // It succeeded: journal it.
    mem.on_hook(
        HookRun {
            id: 1,
            at,
            ok: true,
        },
        11,
        &TIMING,
    );
    let d = decide(&input, &mem);
    assert!(matches!(d.action, Action::Write(Op::Journal { at: a, .. }) if a == at));
    // It failed: roll back, naming the hook.
    mem.on_hook(
        HookRun {
            id: 1,
            at,
            ok: false,
        },
        11,
        &TIMING,
    );
    let d = decide(&input, &mem);
    let Action::Write(op @ Op::Abort { reason, .. }) = d.action else {
        panic!("{d:?}");
    };
    assert_eq!(reason, AbortReason::Hook(0));
    let after = store(&record, A, 11, op).unwrap();
    assert_eq!(
        after.history.last().unwrap().outcome,
        Outcome::Aborted(AbortReason::Hook(0))
    );
    assert_eq!(after.active, A);
    // A run of another step (an older position) does not count.
    mem.hook = Some(HookRun {
        id: 1,
        at: at - 1,
        ok: true,
    });
    mem.kube_retry_at = None;
    assert_eq!(decide(&input, &mem).action, Action::Hook(0));
}

#[test]
fn a_continue_hook_that_fails_is_journaled_and_hooks_need_the_lease() {
    let plan = Plan::with_hooks(CONSISTENCY, Variant::Correct, database_hooks());
    let at = position(plan, Step::Hook(2));
    let record = hooked(CONSISTENCY, at, B);
    let spec = hooked_print();
    let input = Inputs {
        spec,
        ..inputs(B, 11, &SERVING, None)
    };
    let mut mem = settled(11, Some(record));
    mem.on_hook(
        HookRun {
            id: 1,
            at,
            ok: false,
        },
        11,
        &TIMING,
    );
    assert!(matches!(
        decide(&input, &mem).action,
        Action::Write(Op::Journal { at: a, .. }) if a == at
    ));
    // Without a run yet and with the lease running low, the hook waits.
    mem.hook = None;
    mem.lease_until = Some(12);
    assert!(matches!(decide(&input, &mem).action, Action::Wait(_)));
}

/// Where a roll back is no longer safe (the uptime source's quiesce, after the target
/// promoted), a failed abort hook is run again after the back-off, never passed.
#[test]
fn an_abort_hook_that_fails_after_the_promotion_is_retried_not_passed() {
    let plan = Plan::with_hooks(UPTIME, Variant::Correct, database_hooks());
    let at = position(plan, Step::Hook(0));
    let record = hooked(UPTIME, at, A);
    let spec = hooked_print();
    let source = PREPARED_SOURCE;
    let mut mem = settled(11, Some(record));
    mem.on_hook(
        HookRun {
            id: 1,
            at,
            ok: false,
        },
        11,
        &TIMING,
    );
    let now = |t| Inputs {
        spec,
        ..inputs(A, t, &source, None)
    };
    // During the back-off it waits; after it, the hook runs again.
    assert!(matches!(
        decide(&now(11), &mem).action,
        Action::Wait(Wake::At(12))
    ));
    mem.heartbeat_at = Some(12);
    mem.lease_until = Some(12 + TIMING.lease_ttl);
    assert_eq!(decide(&now(12), &mem).action, Action::Hook(0));
}

#[test]
fn hooks_are_not_restored_like_cluster_steps() {
    // The target at the notification hook after activation: the journaled verify hook
    // before the promotion is never "restored".
    let plan = Plan::with_hooks(CONSISTENCY, Variant::Correct, database_hooks());
    let at = position(plan, Step::Hook(2));
    let record = hooked(CONSISTENCY, at, B);
    let input = Inputs {
        spec: hooked_print(),
        ..inputs(B, 11, &SERVING, None)
    };
    let mem = settled(11, Some(record));
    let d = decide(&input, &mem);
    assert_eq!(
        (d.action, d.purpose),
        (Action::Hook(2), Purpose::Plan { at })
    );
}

#[test]
fn the_audit_flags_a_hook_without_the_lock_and_a_failed_abort_hook_passed() {
    let plan = Plan::with_hooks(CONSISTENCY, Variant::Correct, database_hooks());
    let at = position(plan, Step::Hook(0));
    let record = hooked(CONSISTENCY, at, A);
    let mut audit = Audit::default();
    audit.on_hook_start(&record, A, (1, CONSISTENCY, at));
    assert!(!audit.hook_without_lock && !audit.hook_ran_twice);
    audit.on_hook_end((1, CONSISTENCY, at), false, true);
    // B is not the holder.
    audit.on_hook_start(&record, B, (1, CONSISTENCY, at));
    assert!(audit.hook_without_lock && audit.hook_ran_twice);
    // Journaling the failed abort hook is a violation; after a successful rerun it is not.
    let journal = Op::Journal {
        id: 1,
        token: 2,
        at,
        release: false,
    };
    let after = store(&record, A, 11, journal).unwrap();
    let mut failed = audit.clone();
    failed.on_write_accepted(&record, &after, &write(A, 11, journal));
    assert!(failed.failed_hook_passed);
    audit.on_hook_end((1, CONSISTENCY, at), true, true);
    audit.on_write_accepted(&record, &after, &write(A, 11, journal));
    assert!(!audit.failed_hook_passed);
}
