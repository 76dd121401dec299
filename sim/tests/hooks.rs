//! Hooks in the simulator (issue 13): the fake clusters run a hook's Job, exec and HTTP
//! request with the outcomes the model knows (success, failure, a hang until the hook's
//! timeout) and the runs crash an operator between a hook's run and its journal entry,
//! so a hook runs twice. The invariants judge the runs as the model does, and every
//! turn is replayed through the model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use failover_engine::ports::{ClusterPort, HttpRequest, JobState, LabelQuery, MemberState};
use failover_engine::ports::{Kind, ObjectRef};
use failover_model::{AbortReason, Cluster, Outcome, Variant};
use failover_sim::campaign::{Campaign, campaign};
use failover_sim::run::{Hooking, Profile, RunConfig, run};
use failover_sim::runtime::{Executor, VirtualTime};
use failover_sim::world::{
    CallFaults, ClusterWorld, FakeCluster, Fakes, FaultKind, Object, Shared,
};
use k8s_openapi::serde_json::json;

fn hooked(seed: u64) -> RunConfig {
    RunConfig {
        seed,
        mode: None,
        profile: Profile::Swarm,
        variant: Variant::Correct,
        shape: None,
        timeline: true,
        hooks: Hooking::On,
        driver_lag: None,
        watch_lag: 0,
    }
}

/// A fixed set of seeds with hooks: runs of them fail, hang until their timeout and run
/// twice, failures roll failovers back, and nothing violates an invariant or does what
/// the model would not (a replay rejection is a violation).
#[test]
fn hooks_fail_hang_and_run_twice_without_violations() {
    let s = campaign(&Campaign {
        first_seed: 0,
        seeds: 240,
        mode: None,
        profile: Profile::Swarm,
        variant: Variant::Correct,
        jobs: 2,
        shape: None,
        stop_at_first: false,
        hooks: Hooking::On,
        driver_lag: None,
        watch_lag: 0,
    });
    let bad: Vec<_> = s
        .violations()
        .iter()
        .map(|r| format!("seed {}: {:?}", r.seed, r.violation))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let runs = |f: &dyn Fn(&failover_sim::run::RunReport) -> bool| {
        s.reports.iter().filter(|r| f(r)).count()
    };
    let injected = |kind: FaultKind| {
        s.reports
            .iter()
            .flat_map(|r| &r.injected)
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(
        runs(&|r| r.hooks.on) == s.reports.len(),
        "every run has hooks"
    );
    assert!(injected(FaultKind::HookFailed) > 0, "a hook's run failed");
    assert!(injected(FaultKind::HookHung) > 0, "a hook's run hung");
    let aborted = runs(&|r| matches!(r.outcome, Some(Outcome::Aborted(AbortReason::Hook(_)))));
    assert!(aborted > 0, "a hook's failure rolled a failover back");
    assert!(
        runs(&|r| r.hooks.timed_out > 0) > 0,
        "a hung hook failed at its timeout"
    );
    assert!(runs(&|r| r.hooks.ran_twice) > 0, "a hook ran twice");
    assert!(runs(&|r| r.marks.hook_aborted) > 0, "hook-failure-aborted");
    assert!(runs(&|r| r.marks.hook_timed_out) > 0, "hook-timed-out");
    assert!(runs(&|r| r.marks.hook_ran_twice) > 0, "hook-ran-twice");
    let completed = runs(&|r| matches!(r.outcome, Some(Outcome::Completed(_))));
    assert!(
        completed > 120,
        "only {completed} failovers with hooks completed"
    );
    // A Job is created once per hook and failover (a person may delete a failed one,
    // which the operator creates again).
    assert!(s.reports.iter().map(|r| r.hooks.jobs_created).sum::<u32>() > 0);
    for r in &s.reports {
        assert!(
            r.hooks.most_jobs_per_failover <= 1,
            "seed {}: a hook's Job was created {} times for one failover",
            r.seed,
            r.hooks.most_jobs_per_failover
        );
    }
}

/// An operator crashes just after a Job hook succeeded and before the journal recorded
/// it: the new process runs the hook again and finds the same Job complete, which was
/// created once.
#[test]
fn a_hook_job_is_created_once_per_failover_across_a_crash() {
    let mut found = 0;
    for seed in 0..60 {
        let r = run(hooked(seed));
        assert_eq!(r.violation, None, "seed {seed}");
        assert!(r.hooks.most_jobs_per_failover <= 1, "seed {seed}");
        let lines: Vec<&str> = r.timeline.iter().map(|l| l.text.as_str()).collect();
        let Some(crash) = lines
            .iter()
            .position(|l| l.starts_with("aimed: the operator crashes after a hook ran"))
        else {
            continue;
        };
        // The hook that ran just before the crash, and its Job.
        let Some(job) = lines[..crash].iter().rev().find_map(|l| {
            let (_, said) = l.split_once(" succeeded: Job ")?;
            said.strip_suffix(" complete")
        }) else {
            continue;
        };
        let again = lines[crash..]
            .iter()
            .filter(|l| l.ends_with(&format!("succeeded: Job {job} complete")))
            .count();
        if again > 0 {
            assert!(r.hooks.ran_twice, "seed {seed}: the audit saw it run twice");
            assert_eq!(r.hooks.most_jobs_per_failover, 1, "seed {seed}");
            found += 1;
        }
    }
    assert!(found > 0, "no Job hook ran again after a crash");
}

#[test]
fn the_same_seed_gives_the_same_trace_with_hooks() {
    for seed in [1, 23, 44] {
        let (a, b) = (run(hooked(seed)), run(hooked(seed)));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.timeline, b.timeline, "seed {seed}");
        assert_eq!(a.hooks, b.hooks, "seed {seed}");
        assert!(a.hooks.runs > 0, "seed {seed} ran hooks");
    }
}

/// Without faults every hook succeeds and every failover completes.
#[test]
fn fault_free_hooks_succeed() {
    for seed in 0..20 {
        let r = run(RunConfig {
            profile: Profile::None,
            ..hooked(seed)
        });
        assert_eq!(r.violation, None, "seed {seed}");
        assert!(
            matches!(r.outcome, Some(Outcome::Completed(_))),
            "seed {seed}: {:?}",
            r.outcome
        );
        assert_eq!(r.hooks.failed, 0, "seed {seed}");
        // Quiesce and verify (Jobs), notify (HTTP): all three ran.
        assert_eq!(r.hooks.runs, 3, "seed {seed}");
        assert_eq!(r.hooks.jobs_created, 2, "seed {seed}");
    }
}

/// Issue 13, found by the simulator with hooks: in an uptime failover, a person's abort
/// accepted while the target holds the lock at a hook before its promotion (an
/// abortable position only hooks create) is not carried out by a target whose view
/// predates it: it journals the hook and promotes, the abort stays asked, and the
/// source's hand-off (`TakeOver`) is refused for ever (retried without back-off). The
/// model shows it (`ci/hooks-person`, variant `journal-past-abort`); the store now
/// refuses a journal entry while an abort is asked, so the holder carries it out.
#[test]
fn an_abort_asked_during_a_target_hook_is_carried_out() {
    for seed in [268, 5749] {
        let r = run(hooked(seed));
        assert_eq!(r.violation, None, "seed {seed}");
    }
}

fn world(faults: CallFaults) -> Shared {
    Shared(Arc::new(Mutex::new(Fakes::new(
        1,
        [ClusterWorld::default(), ClusterWorld::default()],
        Variant::Correct,
        faults,
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

fn labels(hook: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("failover.rs/hook".to_string(), hook.to_string()),
        ("failover.rs/failover".to_string(), format!("{:016x}", 7)),
    ])
}

/// The fake's Jobs: found again by name (created once), complete or failed after a
/// while, or running until Kubernetes fails them at their deadline.
#[test]
fn fake_jobs_are_created_once_and_follow_their_fate() {
    for (faults, end) in [
        (CallFaults::default(), JobState::Complete),
        (
            CallFaults {
                hook_fail: 1.0,
                ..CallFaults::default()
            },
            JobState::Failed(String::new()),
        ),
        (
            CallFaults {
                hook_hang: 1.0,
                ..CallFaults::default()
            },
            JobState::Failed(String::new()),
        ),
    ] {
        let w = world(faults);
        let time = w.lock().time.clone();
        let cluster = FakeCluster {
            world: w.clone(),
            me: Cluster::A,
            delays: (10, 20),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let clock = time.clone();
        block_on(&time, async move {
            let template = json!({"spec": {"template": {}}});
            loop {
                let state = cluster
                    .ensure_job(
                        "shop",
                        "quiesce-00000007",
                        &labels("quiesce"),
                        &template,
                        20,
                    )
                    .await
                    .expect("reachable");
                out.lock().unwrap().push((clock.now(), state.clone()));
                if state != JobState::Running {
                    break;
                }
                clock.until(clock.now() + 500).await;
            }
        });
        let seen = seen.lock().unwrap();
        let (at, last) = seen.last().cloned().expect("a state");
        assert_eq!(
            std::mem::discriminant(&last),
            std::mem::discriminant(&end),
            "{faults:?}: {last:?}"
        );
        if faults.hook_hang > 0.0 {
            assert!(
                at >= 20_000,
                "a hung Job fails at its deadline, not at {at}"
            );
            assert!(matches!(last, JobState::Failed(why) if why.starts_with("DeadlineExceeded")));
        } else {
            assert!(at < 6_000, "done within 5 s of its creation, not {at}");
        }
        let w = w.lock();
        let created: u32 = w.clusters[0].job_creations.values().sum();
        assert_eq!(created, 1, "polled {} times, created once", seen.len());
        assert_eq!(
            w.clusters[0]
                .job_creations
                .get(&("quiesce".to_string(), format!("{:016x}", 7))),
            Some(&1)
        );
    }
}

/// The fake's exec answers for every running pod the selector selects; its HTTP
/// endpoint answers the expected status or 503; an unreachable API server refuses at
/// once.
#[test]
fn fake_exec_and_http_answer_as_injected() {
    let w = world(CallFaults::default());
    w.lock().clusters[0].objects.insert(
        ObjectRef {
            kind: Kind::StatefulSet,
            namespace: "shop".into(),
            name: "db".into(),
        },
        Object {
            labels: [("app".to_string(), "shop-db".to_string())].into(),
            state: MemberState::Workload {
                replicas: 2,
                remembered: None,
                pods: 2,
                ready: true,
            },
            version: 1,
            shown: None,
        },
    );
    let time = w.lock().time.clone();
    let cluster = FakeCluster {
        world: w.clone(),
        me: Cluster::A,
        delays: (10, 20),
    };
    let request = HttpRequest {
        method: "POST".into(),
        url: "https://hooks.example.com/x".into(),
        headers: BTreeMap::new(),
        body: None,
        expected_status: 204,
    };
    let shared = w.clone();
    block_on(&time, async move {
        let selector = LabelQuery::equals("app", "shop-db");
        let command = vec!["check".to_string()];
        let results = cluster
            .exec("shop", &selector, None, &command)
            .await
            .expect("reachable");
        let pods: Vec<&str> = results.iter().map(|r| r.pod.as_str()).collect();
        assert_eq!(pods, ["db-0", "db-1"]);
        assert!(results.iter().all(|r| r.exit_code == 0));
        assert_eq!(cluster.http(&request).await, Ok(204));
        shared.lock().faults.hook_fail = 1.0;
        let results = cluster
            .exec("shop", &selector, None, &command)
            .await
            .expect("reachable");
        assert_eq!(results[0].exit_code, 1);
        assert_eq!(cluster.http(&request).await, Ok(503));
        shared.lock().cut_api[0] = true;
        assert!(
            cluster
                .exec("shop", &selector, None, &command)
                .await
                .is_err()
        );
        let template = json!({});
        assert!(
            cluster
                .ensure_job("shop", "x", &labels("x"), &template, 10)
                .await
                .is_err()
        );
    });
    let injected = w.lock().injected.get(&FaultKind::HookFailed).copied();
    assert_eq!(injected, Some(2));
}
