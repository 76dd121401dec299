//! The simulator's own guarantees: a seed replays exactly, the correct protocol passes
//! a swarm campaign, every broken variant is caught on a fixed seed range, and the fakes
//! pass the engine's port conformance suite.

use std::sync::{Arc, Mutex};

use failover_engine::conformance::{ClusterFixture, cluster_port, store_port};
use failover_engine::ports::{Kind, MemberState, ObjectRef};
use failover_model::{Cluster, Health, Variant, VolumeRole};
use failover_sim::campaign::{Campaign, campaign};
use failover_sim::run::{Hooking, Profile, RunConfig, Violation, run};
use failover_sim::runtime::{Executor, VirtualTime};
use failover_sim::world::{
    CallFaults, ClusterWorld, FakeCluster, FakeStore, Fakes, Object, Shared,
};

fn config(seed: u64) -> RunConfig {
    RunConfig {
        seed,
        mode: None,
        profile: Profile::Swarm,
        variant: Variant::Correct,
        shape: None,
        timeline: true,
        hooks: Hooking::Drawn,
        driver_lag: None,
        watch_lag: 0,
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [3, 17, 238] {
        let (a, b) = (run(config(seed)), run(config(seed)));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.timeline, b.timeline, "seed {seed}");
        assert!(a.timeline.len() > 20, "seed {seed} did something");
    }
    assert_ne!(run(config(3)).trace_hash, run(config(4)).trace_hash);
}

/// Issue 18: in seeds 630073 and 832243 of a million, B's `ForceTakeLock` timed out
/// while B was cut off, landed much later, and B's retry applied too. The fix passes
/// both. Since issue 9 their schedules differ (new fault streams), so the shape is pinned
/// on seed 842 instead (146 until issue 10's identity reads and spec prints shifted every
/// schedule, 145 until the leader hand-overs' stream, 72 until issue 10's requests at
/// either cluster, 36 until issue 12's timing), where the aimed fault
/// holds the delayed force until just after B's retry: refused on the protocol, applied
/// again (step-at-most-once) before the fix.
#[test]
fn a_delayed_force_applies_once() {
    use failover_sim::run::Violation;
    for seed in [630_073, 832_243, 842] {
        assert_eq!(run(config(seed)).violation, None, "seed {seed}");
    }
    let fixed = run(config(842));
    assert!(
        fixed
            .timeline
            .iter()
            .any(|l| l.text.starts_with("delayed write lands: ForceTakeLock")
                && l.text.ends_with("refused (condition false)")),
        "the delayed force lands after the retry, refused"
    );
    let old = run(RunConfig {
        variant: Variant::RepeatableForce,
        ..config(842)
    });
    assert_eq!(
        old.violation,
        Some(Violation::Invariant("step-at-most-once"))
    );
}

#[test]
fn the_protocol_survives_a_swarm_campaign() {
    let s = campaign(&Campaign {
        first_seed: 0,
        seeds: 400,
        mode: None,
        profile: Profile::Swarm,
        variant: Variant::Correct,
        jobs: 2,
        shape: None,
        stop_at_first: false,
        hooks: Hooking::Drawn,
        driver_lag: None,
        watch_lag: 0,
    });
    let bad: Vec<_> = s
        .violations()
        .iter()
        .map(|r| format!("seed {}: {:?}", r.seed, r.violation))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let completed = s.reports.iter().filter(|r| r.outcome.is_some()).count();
    assert!(completed > 300, "only {completed} failovers ended");
}

/// Issue 17's deployment rule, broken: a csi-addons driver that takes up to 9 s to
/// demote (the rule is the group's `driverDemotionSeconds`, 2 s) leaves a volume primary
/// beside the peer's forced promotion on these seeds, which hold within the rule.
#[test]
fn a_driver_slower_than_its_bound_ends_with_two_primaries() {
    for seed in [420, 3062] {
        let within = run(config(seed));
        assert_eq!(within.violation, None, "seed {seed} within the rule");
        let beyond = run(RunConfig {
            driver_lag: Some(9_000),
            watch_lag: 0,
            ..config(seed)
        });
        assert_eq!(
            beyond.violation,
            Some(Violation::Invariant("no-two-primaries")),
            "seed {seed} beyond the rule"
        );
    }
}

#[test]
fn every_broken_variant_is_caught_on_a_fixed_seed_range() {
    // (variant, first seed, seeds). `failover-sim hunt --seeds 10000` gives each
    // variant's share and first catching seed (README); all but one are at least 1%,
    // so 200 seeds from 0 catch them, as the first seeds below show
    // (`repeatable-force`, 0.16% since issue 12's timing, needs 1,000).
    for (variant, first_seed, seeds) in [
        (Variant::PromoteBeforeDemote, 0, 200),
        (Variant::NoSelfFence, 0, 200),
        (Variant::NoLeaseWait, 0, 200),
        // The held journal write of a cut-off holder lands after the forced takeover:
        // first seed 3.
        (Variant::NoTokenCheck, 0, 200),
        // A kind stuck during a fence: first seed 93 (15 before issue 17's timing).
        (Variant::FenceStopsAtFailure, 0, 200),
        // A slow call outlasts the lease: first seed 5.
        (Variant::HeartbeatBehindTasks, 0, 200),
        // The active cluster's wall clock steps back: first seed 0.
        (Variant::WallClockLease, 0, 200),
        // The held force lands after its own retry: first seed 44 (842 before issue
        // 17's timing, 36 before issue 12's).
        (Variant::RepeatableForce, 0, 1_000),
        // The old process of a leader hand-over keeps its lease beside a slow call
        // that lands after the new process moved on: first seed 64 (164 before issue
        // 17's timing).
        (Variant::StaleLeader, 0, 400),
        // A record deleted after the failover is created again from the spec, token 0:
        // first seed 6.
        (Variant::RecreateMissingRecord, 0, 200),
        // An operator restarted as the other cluster takes its slot: first seed 7.
        (Variant::NoIdentityCheck, 0, 200),
        // The active cluster's volumes lack the group's label: first seed 46.
        (Variant::EmptySelectionDone, 0, 200),
        // A volume that never reports its new role and no deadline: first seed 3.
        (Variant::NoStageDeadline, 0, 200),
        // Rare within the rule (one seed in 25,000): an old leader paused over a
        // hand-over resumes with between the fence margin and the fence lead left and
        // reopens traffic to the volumes its successor's fence demoted. The model's
        // `ci/demotion-lag` catches it at once (`no-two-primaries`).
        (Variant::FenceIgnoresDemotion, 19_700, 100),
    ] {
        let s = campaign(&Campaign {
            first_seed,
            seeds,
            mode: None,
            profile: Profile::Swarm,
            variant,
            jobs: 2,
            shape: None,
            stop_at_first: true,
            hooks: Hooking::Drawn,
            driver_lag: None,
            watch_lag: 0,
        });
        assert!(
            !s.violations().is_empty(),
            "{} not caught in seeds {first_seed}..{}",
            variant.name(),
            first_seed + seeds
        );
    }
}

/// Issue 15: watch caches that show others' changes 5 s late. The engine holds (it
/// observes afresh for the fence); the fence decided on the stale view (before the fix)
/// leaves running what Flux restarted: seed 707 ends with `traffic-only-when-ready`.
#[test]
fn a_watch_lag_is_survived_and_the_fence_on_a_stale_view_is_caught() {
    let lagged = |variant, seed| {
        run(RunConfig {
            variant,
            timeline: false,
            watch_lag: 5_000,
            ..config(seed)
        })
        .violation
    };
    let caught: Vec<u64> = (700..800)
        .filter(|s| lagged(Variant::Correct, *s).is_some())
        .collect();
    assert_eq!(
        caught,
        Vec::<u64>::new(),
        "seeds 700..800 hold with the lag"
    );
    assert_eq!(
        lagged(Variant::FenceOnStaleView, 707),
        Some(Violation::Invariant("traffic-only-when-ready"))
    );
}

fn world() -> Shared {
    Shared(Arc::new(Mutex::new(Fakes::new(
        1,
        [ClusterWorld::default(), ClusterWorld::default()],
        Variant::Correct,
        CallFaults::default(),
        5,
        VirtualTime::default(),
    ))))
}

/// Drive a future on the simulator's executor, moving virtual time as it sleeps.
fn block_on(time: &VirtualTime, f: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut exec = Executor::new(1);
    exec.spawn(0, Box::pin(f));
    while exec.alive(0) {
        while exec.poll_one(|_| false).is_some() {}
        if let Some(next) = time.next_timer() {
            time.advance(next);
        } else if exec.alive(0) {
            panic!("the future waits for nothing");
        }
    }
}

/// [`block_on`], with the world's scheduled events (controllers, watch deliveries)
/// happening at their times, as in a run.
fn block_on_world(w: &Shared, f: impl std::future::Future<Output = ()> + Send + 'static) {
    use failover_sim::world::WorldEvent;
    let time = w.lock().time.clone();
    let mut exec = Executor::new(1);
    exec.spawn(0, Box::pin(f));
    while exec.alive(0) {
        while exec.poll_one(|_| false).is_some() {}
        if !exec.alive(0) {
            break;
        }
        let event = w.lock().scheduled.first_key_value().map(|(k, _)| *k);
        match (time.next_timer(), event) {
            (timer, Some(key)) if timer.is_none_or(|t| key.0 <= t) => {
                time.advance(key.0.max(time.now()));
                let mut world = w.lock();
                match world.scheduled.remove(&key) {
                    Some(WorldEvent::Notify(c, v)) => world.notify(c, v),
                    Some(WorldEvent::Settle(c, r)) => world.settle(c, &r),
                    _ => {}
                }
            }
            (Some(t), _) => time.advance(t),
            (None, _) => panic!("the future waits for nothing"),
        }
    }
}

#[test]
fn fake_store_passes_the_conformance_suite() {
    let w = world();
    let time = w.lock().time.clone();
    let store = FakeStore {
        world: w,
        me: Cluster::A,
        slot: 0,
    };
    block_on(&time, async move { store_port(&store, "shop/shop").await });
}

#[test]
fn fake_cluster_passes_the_conformance_suite() {
    let w = world();
    let time = w.lock().time.clone();
    let objects: Vec<ObjectRef> = Kind::ALL
        .into_iter()
        .map(|kind| ObjectRef {
            kind,
            namespace: "shop".into(),
            name: format!("x-{}", kind.name().to_lowercase()),
        })
        .collect();
    for o in &objects {
        let state = match o.kind {
            Kind::Deployment | Kind::StatefulSet => MemberState::Workload {
                replicas: 3,
                remembered: None,
                pods: 3,
                ready: true,
            },
            Kind::CronJob => MemberState::CronJob { suspended: false },
            Kind::VirtualService | Kind::Ingress => MemberState::Network { disabled: false },
            Kind::VolumeReplication => MemberState::Volume {
                spec: VolumeRole::Primary,
                status: Some(VolumeRole::Primary),
            },
            Kind::Kustomization | Kind::HelmRelease => MemberState::Flux { suspended: false },
        };
        w.lock().clusters[0].objects.insert(
            o.clone(),
            Object {
                labels: [("app".to_string(), "shop".to_string())].into(),
                state,
                version: 1,
                shown: None,
            },
        );
    }
    let fixture = ClusterFixture {
        namespace: "shop".into(),
        label: "shop".into(),
        objects,
        replicas: 3,
    };
    let cluster = FakeCluster {
        world: w.clone(),
        me: Cluster::A,
        delays: (10, 20),
    };
    let settle_world = w.clone();
    block_on(&time, async move {
        cluster_port(&cluster, &fixture, || {
            let mut w = settle_world.lock();
            let refs: Vec<ObjectRef> = w.clusters[0].objects.keys().cloned().collect();
            for r in refs {
                w.settle(Cluster::A, &r);
            }
            std::future::ready(())
        })
        .await;
    });
}

/// The replay through the stateright model accepts a turn the model would take and
/// rejects a different decision, a memory the model would not reach, and a store that
/// answers differently from the model's.
#[test]
fn the_model_replay_rejects_what_the_model_would_not_do() {
    use failover_engine::executor::{Turn, TurnResult};
    use failover_model::{
        Action, ClusterState, Inputs, Memory, Mode, Op, Reply, Request, Wake, apply,
        core::decide::write, decide,
    };
    use failover_sim::replay::{Around, Replay};

    let timing = failover_engine::spec::DEFAULT_TIMING;
    let replay = Replay::new(timing, Variant::Correct);
    let record = failover_model::Record {
        instance: [Some(1), Some(2)],
        ..failover_model::Record::new(Cluster::A, [Some(0), Some(0)])
    };
    let request = Some(Request {
        id: 1,
        to: Cluster::B,
        mode: Mode::Consistency,
    });
    let now = 1_000;
    let observed = ClusterState::SERVING;
    let decided = |memory: &Memory| {
        decide(
            &Inputs {
                me: Cluster::A,
                now,
                wall: now,
                busy: false,
                cluster: &observed,
                identity: 1,
                spec: failover_model::SpecPrint::default(),
                request,
                withdraw: None,
                timing: &timing,
                variant: Variant::Correct,
            },
            memory,
        )
    };
    let around = Around {
        asked: request.map(|request| failover_model::check::Asked {
            request,
            refused: false,
            withdrawn: false,
        }),
        peer: &ClusterState::STANDBY,
        record: Some(&record),
        write_found: None,
        who: failover_sim::replay::Who {
            slot: Cluster::A,
            identity: 1,
        },
        ended: None,
    };
    // An operator that claimed its slot (and has no lease yet) heartbeats first; the
    // store applies it.
    let fresh = Memory {
        claimed: Some(0),
        ..Memory::started(1)
    };
    let decision = decided(&fresh);
    // The heartbeat carries the cluster's report.
    let hb = Op::Heartbeat {
        health: Health::of(&observed),
    };
    assert_eq!(decision.action, Action::Write(hb));
    let w = write(Cluster::A, &fresh, now, hb);
    let after = apply(&record, &w, &timing, Variant::Correct).expect("heartbeat applies");
    let turn = |reply: Reply| Turn {
        now,
        wall: now,
        during: Vec::new(),
        observed,
        spec: failover_model::SpecPrint::default(),
        decision: decision.clone(),
        result: TurnResult::Wrote(reply),
    };
    let heartbeat = turn(Reply::Applied(after.clone()));
    let mut engine = fresh.clone();
    engine.on_write(
        &w,
        now,
        &timing,
        Variant::Correct,
        Reply::Applied(after.clone()),
    );
    let found = [Some(record.clone())];
    let mut mirror = fresh.clone();
    assert_eq!(
        replay.turn(Cluster::A, &heartbeat, around, &found, &mut mirror, &engine),
        Ok(())
    );
    assert_eq!(mirror, engine, "the model's memory follows the turn");

    // A decision the model would not make.
    let mut mirror = fresh.clone();
    let waited = Turn {
        decision: failover_model::Decision {
            action: Action::Wait(Wake::Change),
            ..decision.clone()
        },
        result: TurnResult::Waited(Wake::Change),
        ..heartbeat.clone()
    };
    let err = replay
        .turn(Cluster::A, &waited, around, &[None], &mut mirror, &fresh)
        .expect_err("a different decision");
    assert!(err.contains("the model decides"), "{err}");

    // The engine's memory ends elsewhere than the model's.
    let mut mirror = fresh.clone();
    let err = replay
        .turn(Cluster::A, &heartbeat, around, &found, &mut mirror, &fresh)
        .expect_err("a memory the model would not reach");
    assert!(err.contains("memory"), "{err}");
    assert_eq!(mirror, fresh, "re-synced to the engine's memory");

    // A store that says it applied the write but left the record unchanged.
    let mut mirror = fresh.clone();
    let err = replay
        .turn(
            Cluster::A,
            &turn(Reply::Applied(record.clone())),
            around,
            &found,
            &mut mirror,
            &engine,
        )
        .expect_err("a store that differs from the model's");
    assert!(err.contains("the store left"), "{err}");

    // An answer without the write reaching the store.
    let mut mirror = fresh.clone();
    let err = replay
        .turn(
            Cluster::A,
            &heartbeat,
            around,
            &[None],
            &mut mirror,
            &engine,
        )
        .expect_err("an answer from nowhere");
    assert!(err.contains("without reaching the store"), "{err}");
}

fn insert(w: &Shared, kind: Kind, name: &str, state: MemberState) -> ObjectRef {
    let r = ObjectRef {
        kind,
        namespace: "shop".into(),
        name: name.into(),
    };
    w.lock().clusters[0].objects.insert(
        r.clone(),
        Object {
            labels: [("app".to_string(), "shop".to_string())].into(),
            state,
            version: 1,
            shown: None,
        },
    );
    r
}

/// Conflicts come from resourceVersions: a write that saves a value it read (the
/// replica count before a scale-down) fails if the object changed after the read; a
/// plain merge patch (a CronJob's suspend flag) does not carry the version and applies.
#[test]
fn conflicts_follow_resource_versions() {
    use failover_engine::ports::{ClusterError, ClusterPort, Desired};
    let w = world();
    let time = w.lock().time.clone();
    let web = insert(
        &w,
        Kind::Deployment,
        "web",
        MemberState::Workload {
            replicas: 3,
            remembered: None,
            pods: 3,
            ready: true,
        },
    );
    let cron = insert(
        &w,
        Kind::CronJob,
        "report",
        MemberState::CronJob { suspended: false },
    );
    // Another writer changes every object between a read and the write.
    w.lock().faults.kube_conflict = 1.0;
    let cluster = FakeCluster {
        world: w.clone(),
        me: Cluster::A,
        delays: (10, 20),
    };
    let world = w.clone();
    block_on(&time, async move {
        assert_eq!(
            cluster.set(&web, Desired::Stop).await,
            Err(ClusterError::Conflict(web.clone()))
        );
        let state = world.lock().clusters[0].objects[&web].state.clone();
        assert!(
            matches!(state, MemberState::Workload { replicas: 3, .. }),
            "a conflict changes nothing: {state:?}"
        );
        let changes = cluster.set(&cron, Desired::Stop).await.expect("no version");
        assert_eq!(changes.len(), 1);
        world.lock().faults.kube_conflict = 0.0;
        let changes = cluster.set(&web, Desired::Stop).await.expect("retried");
        assert!(!changes.is_empty());
    });
}

/// A delayed watch event wakes `changed` late; a dropped one only at its timeout.
#[test]
fn watch_events_arrive_late_or_never() {
    use failover_engine::ports::{ClusterPort, Desired};
    use std::time::Duration;
    for (delayed, dropped) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
        let w = world();
        let time = w.lock().time.clone();
        let cron = insert(
            &w,
            Kind::CronJob,
            "report",
            MemberState::CronJob { suspended: false },
        );
        let cluster = FakeCluster {
            world: w.clone(),
            me: Cluster::A,
            delays: (10, 20),
        };
        let (t, out) = (time.clone(), Arc::new(Mutex::new(None)));
        let waited = out.clone();
        block_on_world(&w, async move {
            let watch = cluster.changed(Duration::from_secs(10));
            {
                let mut w = cluster.world.lock();
                w.faults.watch_delayed = delayed;
                w.faults.watch_dropped = dropped;
                w.set_object(Cluster::A, &cron, Desired::Stop, (10, 20), true);
            }
            let start = t.now();
            watch.await;
            *waited.lock().unwrap() = Some(t.now() - start);
        });
        let waited = out.lock().unwrap().expect("waited");
        match (delayed > 0.0, dropped > 0.0) {
            (false, false) => assert_eq!(waited, 0, "an event wakes at once"),
            (true, _) => assert!((50..=2_000).contains(&waited), "late: {waited} ms"),
            (_, true) => assert_eq!(waited, 10_000, "never: the timeout wakes"),
        }
    }
}

/// An eventually consistent read may return the record a write replaced, for a while.
#[test]
fn eventually_consistent_reads_may_be_stale() {
    use failover_engine::ports::StorePort;
    use failover_model::{Op, Write};
    use failover_sim::world::EVENTUAL_LAG;
    let w = world();
    let time = w.lock().time.clone();
    let store = FakeStore {
        world: w,
        me: Cluster::A,
        slot: 0,
    };
    let t = time.clone();
    block_on(&time, async move {
        let timing = failover_engine::spec::DEFAULT_TIMING;
        let before = store.init("g", Cluster::A, 0).await.expect("init");
        let write = Write {
            by: Cluster::A,
            instance: 1,
            now: 1_000,
            op: Op::Claim {
                prev: None,
                identity: 1,
            },
        };
        store.write("g", &timing, &write).await;
        let after = store.read("g").await.expect("read").expect("record");
        assert_ne!(before, after);
        let mut stale = 0;
        for _ in 0..20 {
            let r = store
                .read_eventually("g")
                .await
                .expect("read")
                .expect("record");
            assert!(r == before || r == after);
            stale += usize::from(r == before);
            assert_eq!(store.read("g").await.expect("read"), Some(after.clone()));
        }
        assert!(stale > 0, "some reads within the lag are stale");
        t.until(t.now() + EVENTUAL_LAG).await;
        for _ in 0..20 {
            let r = store.read_eventually("g").await.expect("read");
            assert_eq!(r, Some(after.clone()), "after the lag, reads are current");
        }
    });
}

/// Issue 9, part 4: a leader hand-over aimed at a slow call of the old process. The old
/// process's heartbeat beside its call is refused (the new one claimed the slot), so it
/// drops the call and stops; the run has no violation. Under `stale-leader` its lease
/// survives and the call lands after the new process moved on.
#[test]
fn a_replaced_process_drops_its_call_and_stops() {
    use failover_sim::world::FaultKind;
    // Seed 80 without hooks (with the hooks its seed draws, the hand-over meets another
    // moment); 164 before issue 17's timing.
    let config = |seed| RunConfig {
        hooks: Hooking::Off,
        ..config(seed)
    };
    let fixed = run(config(80));
    assert!(
        fixed
            .injected
            .iter()
            .any(|(k, n)| *k == FaultKind::LeaderHandover && *n > 0),
        "seed 80 has a hand-over"
    );
    assert_eq!(fixed.violation, None);
    assert!(
        fixed
            .timeline
            .iter()
            .any(|l| l.text.contains("write Claim") && l.text.ends_with("applied")),
        "the new process claims the slot"
    );
    assert!(
        fixed.timeline.iter().any(|l| l.text.contains("ABANDONED")),
        "the old process drops its call"
    );
    let old = run(RunConfig {
        variant: Variant::StaleLeader,
        ..config(80)
    });
    assert!(
        old.violation.is_some(),
        "stale-leader is caught on seed 80 (164 before issue 17, 225 before issue 12)"
    );
}
