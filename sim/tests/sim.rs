//! The simulator's own guarantees: a seed replays exactly, the correct protocol passes
//! a swarm campaign, every broken variant is caught on a fixed seed range, and the fakes
//! pass the engine's port conformance suite.

use std::sync::{Arc, Mutex};

use failover_engine::conformance::{ClusterFixture, cluster_port, store_port};
use failover_engine::ports::{Kind, MemberState, ObjectRef};
use failover_model::{Cluster, Variant, VolumeRole};
use failover_sim::campaign::{Campaign, campaign};
use failover_sim::run::{Profile, RunConfig, run};
use failover_sim::runtime::{Executor, VirtualTime};
use failover_sim::world::{
    CallFaults, ClusterWorld, FakeCluster, FakeStore, Object, Shared, World,
};

fn config(seed: u64) -> RunConfig {
    RunConfig {
        seed,
        mode: None,
        profile: Profile::Swarm,
        variant: Variant::Correct,
        shape: None,
        timeline: true,
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

#[test]
fn every_broken_variant_is_caught_on_a_fixed_seed_range() {
    // (variant, first seed, seeds): the first three are caught within the first dozen
    // seeds; a stale token needs a journal write delayed past a forced takeover, which
    // one seed in 10,000 produces (4781): the range pins it.
    for (variant, first_seed, seeds) in [
        (Variant::PromoteBeforeDemote, 0, 100),
        (Variant::NoSelfFence, 0, 100),
        (Variant::NoLeaseWait, 0, 100),
        (Variant::NoTokenCheck, 4700, 100),
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
        });
        assert!(
            !s.violations().is_empty(),
            "{} not caught in seeds {first_seed}..{}",
            variant.name(),
            first_seed + seeds
        );
    }
}

fn world() -> Shared {
    Shared(Arc::new(Mutex::new(World::new(
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

#[test]
fn fake_store_passes_the_conformance_suite() {
    let w = world();
    let time = w.lock().time.clone();
    let store = FakeStore {
        world: w,
        me: Cluster::A,
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
