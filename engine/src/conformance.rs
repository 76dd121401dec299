//! The port conformance suite: async checks parameterized by the implementation, which
//! the real adapters, the in-memory adapters and the simulator's fakes must all pass.
//! A failed check panics with a message naming the contract it broke.

use failover_model::{
    AbortReason, Cluster, Health, Intervention, Mode, Op, Record, Reply, Time, Trace, Variant,
    Write, apply,
};

use crate::hooks::{JobState, job_name};
use crate::member::{is_set, settled};
use crate::ports::{
    ClusterError, ClusterPort, Desired, Kind, LabelQuery, MemberState, ObjectRef, Selector,
    StorePort,
};

/// Objects the caller created in the cluster under test before calling
/// [`cluster_port`]: one member of each listed kind in `namespace`, labelled
/// `app=<label>`, started (workloads at `replicas` and ready, routes open, CronJobs and
/// Flux objects resumed, volumes primary), plus no object named `missing`.
#[derive(Clone, Debug)]
pub struct ClusterFixture {
    /// Namespace of the objects.
    pub namespace: String,
    /// Value of their `app` label.
    pub label: String,
    /// The objects, one per kind.
    pub objects: Vec<ObjectRef>,
    /// Replicas of the workloads.
    pub replicas: i32,
}

/// How many times [`cluster_port`] calls `settle` before a member must read back
/// settled.
pub const SETTLE_ATTEMPTS: usize = 600;

/// Check a cluster port against its contract. `settle` lets the cluster's controllers
/// move status a little (a fake settles on demand; a real cluster's controllers work by
/// themselves, so there `settle` sleeps): after each change the suite calls it until
/// the member reads back settled (pods follow replicas and are ready, volume status
/// follows spec), at most [`SETTLE_ATTEMPTS`] times.
pub async fn cluster_port<C: ClusterPort, F: Future<Output = ()>>(
    cluster: &C,
    fx: &ClusterFixture,
    settle: impl Fn() -> F,
) {
    // The cluster's identity: present, and the same every time it is asked.
    let identity = cluster.identity().await.expect("identity");
    assert!(!identity.is_empty(), "an identity");
    assert_eq!(
        cluster.identity().await.expect("identity"),
        identity,
        "the identity never changes"
    );
    // The record's trace: none until kept, then only ever newer.
    let group = format!("{}/conformance-{}", fx.namespace, fx.label);
    assert_eq!(cluster.recall(&group).await.expect("recall"), None);
    let trace = |token, ended, active| Trace {
        token,
        ended,
        active,
        missing: false,
    };
    let missing = |t: Trace| Trace { missing: true, ..t };
    for (kept, expected) in [
        (trace(3, 1, Cluster::B), trace(3, 1, Cluster::B)),
        (trace(2, 5, Cluster::A), trace(3, 1, Cluster::B)),
        (trace(3, 2, Cluster::A), trace(3, 2, Cluster::A)),
        (
            missing(trace(3, 2, Cluster::A)),
            missing(trace(3, 2, Cluster::A)),
        ),
        (trace(7, 0, Cluster::B), trace(7, 0, Cluster::B)),
    ] {
        cluster.remember(&group, kept).await.expect("remember");
        assert_eq!(
            cluster.recall(&group).await.expect("recall"),
            Some(expected),
            "after keeping {kept:?}: the newest trace"
        );
    }
    for object in &fx.objects {
        let kind = object.kind;
        let by_label = Selector {
            namespace: fx.namespace.clone(),
            labels: LabelQuery::equals("app", &fx.label),
            names: Vec::new(),
        };
        let found = cluster
            .members(kind, &by_label)
            .await
            .expect("members by label");
        assert!(
            found.iter().any(|m| &m.object == object),
            "members({kind}) by label must find {object}"
        );
        let by_name = Selector {
            labels: LabelQuery::default(),
            names: vec![object.name.clone()],
            ..by_label.clone()
        };
        let found = cluster
            .members(kind, &by_name)
            .await
            .expect("members by name");
        assert_eq!(
            found.len(),
            1,
            "members({kind}) by name finds exactly the object"
        );
        let missing = Selector {
            names: vec!["missing".into()],
            ..by_name.clone()
        };
        assert!(
            matches!(
                cluster.members(kind, &missing).await,
                Err(ClusterError::NotFound(_))
            ),
            "a named member that does not exist is NotFound"
        );
        let nobody = Selector {
            labels: LabelQuery::equals("app", "nobody-has-this-label"),
            ..by_label.clone()
        };
        assert!(
            cluster
                .members(kind, &nobody)
                .await
                .expect("empty list")
                .is_empty(),
            "a selector matching nothing lists nothing"
        );
        let state = || async {
            cluster.members(kind, &by_name).await.expect("re-read")[0]
                .state
                .clone()
        };
        let started = state().await;
        assert!(
            is_set(&started, Desired::Start),
            "fixture {object} starts started"
        );
        for desired in [Desired::Stop, Desired::Start] {
            let first = cluster.set(object, desired).await.expect("set");
            assert!(
                !first.is_empty(),
                "set({desired:?}) on {object} reports its changes"
            );
            assert!(
                first.iter().all(|c| &c.object == object),
                "changes name the object"
            );
            let second = cluster.set(object, desired).await.expect("set again");
            assert!(
                second.is_empty(),
                "set({desired:?}) twice changes nothing: {second:?}"
            );
            let now = state().await;
            assert!(
                is_set(&now, desired),
                "{object} reads back as {desired:?}: {now:?}"
            );
            let mut now = now;
            for _ in 0..SETTLE_ATTEMPTS {
                if settled(&now) == now {
                    break;
                }
                settle().await;
                now = state().await;
            }
            assert_eq!(
                settled(&now),
                now,
                "{object} settles after set({desired:?})"
            );
            check_settled(&now, desired, fx.replicas);
        }
    }
    let ghost = ObjectRef {
        kind: Kind::Deployment,
        namespace: fx.namespace.clone(),
        name: "missing".into(),
    };
    assert!(
        matches!(
            cluster.set(&ghost, Desired::Stop).await,
            Err(ClusterError::NotFound(_))
        ),
        "set on a missing object is NotFound"
    );
    hook_port(cluster, &fx.namespace).await;
}

/// The hook Job the suite creates: one container that would run for a while, with a
/// deadline (and no `backoffLimit` surprise) long enough that no Job controller fails
/// it while the suite runs. Its pods, if a controller makes any, never run where there
/// is no kubelet.
pub fn conformance_job_template() -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "labels": {"app": "conformance-hook"},
            "annotations": {"failover.rs/conformance": "true"}
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "conformance-hook"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "hook",
                        "image": "registry.k8s.io/pause:3.10"
                    }]
                }
            }
        }
    })
}

/// The hooks' part of the cluster port's contract, as far as every adapter can show it
/// without a kubelet (no pod ever runs, so no Job completes and no exec runs): `ensure_job`
/// creates a Job that reports `Running` at first, a second call for the same name finds
/// that Job (an answer, not an error, and never a second Job), another name is another
/// Job; `exec` with a selector that selects no pod (or an empty one) lists nothing.
/// Called by [`cluster_port`]; `namespace` must exist and hold no Job named
/// `conformance-0000c0f0` or `conformance-0000c0f1` yet.
pub async fn hook_port<C: ClusterPort>(cluster: &C, namespace: &str) {
    let template = conformance_job_template();
    let labels = std::collections::BTreeMap::from([
        ("failover.rs/hook".to_owned(), "conformance".to_owned()),
        (
            "failover.rs/failover".to_owned(),
            format!("{:016x}", 0xc0f0),
        ),
    ]);
    let name = job_name("conformance", 0xc0f0);
    let first = cluster
        .ensure_job(namespace, &name, &labels, &template, 3600)
        .await
        .expect("ensure_job creates the Job");
    assert_eq!(
        first,
        JobState::Running,
        "a Job just created reports Running (it has not finished)"
    );
    for _ in 0..2 {
        let again = cluster
            .ensure_job(namespace, &name, &labels, &template, 3600)
            .await;
        assert!(
            matches!(
                again,
                Ok(JobState::Running | JobState::Complete | JobState::Failed(_))
            ),
            "ensure_job again finds Job {namespace}/{name} and reports it, not an error: {again:?}"
        );
    }
    let other = job_name("conformance", 0xc0f1);
    assert_eq!(
        cluster
            .ensure_job(namespace, &other, &labels, &template, 3600)
            .await
            .expect("ensure_job of another name"),
        JobState::Running,
        "another name is another Job, created and running"
    );
    let command = vec!["true".to_owned()];
    let nobody = LabelQuery::equals("app", "nobody-has-this-label");
    let none = cluster
        .exec(namespace, &nobody, None, &command)
        .await
        .expect("exec in no pod");
    assert!(
        none.is_empty(),
        "exec with a selector that selects no pod lists nothing: {none:?}"
    );
    let none = cluster
        .exec(namespace, &LabelQuery::default(), None, &command)
        .await
        .expect("exec with an empty selector");
    assert!(
        none.is_empty(),
        "an empty selector selects no pod: {none:?}"
    );
}

fn check_settled(state: &MemberState, desired: Desired, replicas: i32) {
    match (state, desired) {
        (
            MemberState::Workload {
                replicas: r,
                remembered,
                ..
            },
            Desired::Stop,
        ) => {
            assert_eq!(
                (*r, *remembered),
                (0, Some(replicas)),
                "scale-down remembers the count"
            );
        }
        (MemberState::Workload { replicas: r, .. }, Desired::Start) => {
            assert_eq!(*r, replicas, "scale-up restores the remembered count");
        }
        _ => {}
    }
}

/// Check a store port against [`failover_model::apply`]: a fixed walk of writes by both
/// clusters covering every operation, stale tokens, races and timing conditions, each
/// compared with the model's answer. `group` must not exist yet.
pub async fn store_port<S: StorePort>(store: &S, group: &str) {
    let timing = crate::spec::DEFAULT_TIMING;
    assert_eq!(
        store.read(group).await.expect("read"),
        None,
        "a new group has no record"
    );
    let t0: Time = 1_000_000;
    let created = t0 - 40_000;
    let mut model = store.init(group, Cluster::A, created).await.expect("init");
    assert_eq!(
        model,
        Record::new(Cluster::A, [Some(created); 2]),
        "init creates the record, both clusters counted as heartbeating at its creation"
    );
    let again = store
        .init(group, Cluster::B, created + 5)
        .await
        .expect("init again");
    assert_eq!(again, model, "init does not overwrite an existing record");

    use Cluster::{A, B};
    // Processes: A is 1; B is 2, replaced by 3 near the end.
    let wi = |by, instance, now, op| Write {
        by,
        instance,
        now,
        op,
    };
    let w = |by, now, op| {
        let instance = if by == A { 1 } else { 2 };
        wi(by, instance, now, op)
    };
    // Cluster A's identity is 1, B's 2.
    let claim = |prev| Op::Claim { prev, identity: 1 };
    let claim_b = |prev| Op::Claim { prev, identity: 2 };
    let contest = |identity| Op::Contest { identity };
    let uncontest = |identity| Op::Uncontest { identity };
    let drifted = failover_model::SpecPrint {
        members: 1,
        ..Default::default()
    };
    let spec = |print| Op::Spec { print };
    let acquire = |id, mode| Op::Acquire { id, mode };
    let ask = |id, to, mode| Op::Request { id, to, mode };
    let no_op = |id, to| Op::AlreadyActive { id, to };
    let withdraw = |id| Op::Withdraw { id };
    let force = |id, seen| Op::ForceTakeLock { id, seen };
    let take = |id, at| Op::TakeOver { id, at };
    let journal = |id, token, at, release| Op::Journal {
        id,
        token,
        at,
        release,
    };
    let complete = |id, token, at| Op::Complete { id, token, at };
    let abort = |id, token, at| Op::Abort {
        id,
        token,
        at,
        reason: AbortReason::Person,
    };
    let stuck = |id, token, at| Op::Stuck { id, token, at };
    let resolve = |id, token, at| Op::Resolve { id, token, at };
    // A person's action: no process sends it (instance 0, either slot).
    let person = |now, id, token, at, action| {
        wi(
            A,
            0,
            now,
            Op::Intervene {
                id,
                token,
                at,
                action,
            },
        )
    };
    let (retry, resolved, abort_asked) = (
        Intervention::Retry,
        Intervention::Resolve,
        Intervention::Abort,
    );
    // A report the store must carry as it is (both bits differ).
    let health = Health {
        workloads_ready: true,
        traffic_open: false,
    };
    let (cons, up, hb) = (Mode::Consistency, Mode::Uptime, Op::Heartbeat { health });
    let later = t0 + 40_000; // any time: the store compares no clock
    // Each line: who, when, what; a comment where the store must refuse.
    let steps: Vec<Write> = vec![
        w(A, t0 - 1, hb),                   // A has not claimed its slot: refused
        w(A, t0 - 1, claim(None)),          // first claim, a heartbeat too
        w(B, t0 + 1, claim_b(Some(9))),     // wrong owner: refused
        w(B, t0 + 1, claim(None)),          // A's identity: refused
        w(B, t0 + 1, claim_b(None)),        // binds B to 2
        wi(A, 4, t0 + 2, claim_b(Some(1))), // B configured as A: refused
        wi(A, 4, t0 + 2, contest(1)),       // A's own identity: refused
        wi(A, 4, t0 + 2, contest(2)),       // contested by 2 (no owner needed)
        w(A, t0 + 2, uncontest(2)),         // A's slot is not B's peer: refused
        w(B, t0 + 2, uncontest(1)),         // not that identity: refused
        w(B, t0 + 2, uncontest(2)),         // fixed, B withdraws the contest
        w(A, t0 + 3, spec(drifted)),        // A's copy differs from B's (none)
        wi(B, 4, t0 + 3, spec(drifted)),    // not B's owner: refused
        w(A, t0, hb),
        w(B, t0 + 5, hb),
        w(A, t0 - 10, hb),                      // older heartbeat: refused
        w(A, t0 + 6, acquire(7, cons)),         // no request pending: refused
        w(B, t0 + 6, no_op(5, B)),              // B is not active: refused
        w(B, t0 + 7, no_op(5, A)),              // a no-op, token 1
        w(A, t0 + 7, ask(5, B, cons)),          // id ended: refused
        w(B, t0 + 7, ask(6, A, cons)),          // A is active: refused
        w(B, t0 + 8, ask(6, B, up)),            // pending
        w(A, t0 + 8, ask(7, B, cons)),          // 6 holds the group: refused
        w(A, t0 + 9, acquire(6, cons)),         // not the mode asked: refused
        w(B, t0 + 9, withdraw(6)),              // withdrawn, token 2
        w(B, t0 + 9, withdraw(6)),              // not pending: refused
        w(B, t0 + 9, ask(7, B, cons)),          // pending
        w(B, t0, acquire(7, cons)),             // not active: refused
        w(A, t0 + 10, acquire(7, cons)),        // the copies differ: refused
        w(B, t0 + 10, spec(drifted)),           // now they agree
        w(A, t0 + 10, acquire(7, cons)),        // token 3
        w(A, t0 + 11, ask(8, B, up)),           // in flight: refused
        w(A, t0 + 11, acquire(8, up)),          // in flight: refused
        w(B, t0 + 12, force(7, Some(created))), // A heartbeated since: refused
        w(A, t0 + 20, journal(7, 3, 1, false)),
        w(A, t0 + 21, journal(7, 3, 1, false)), // repeat: refused
        w(A, t0 + 22, journal(7, 2, 2, false)), // stale token: refused
        w(A, t0 + 30, journal(7, 3, 2, true)),  // hand-off: lock released
        w(B, t0 + 31, take(7, 2)),              // wrong position: refused
        w(B, t0 + 32, take(7, 3)),              // token 4
        w(A, t0 + 33, take(7, 4)),              // lock taken: refused
        w(B, t0 + 34, take(9, 4)),              // wrong failover: refused
        w(B, t0 + 40, journal(7, 4, 4, false)),
        w(A, t0 + 41, journal(7, 3, 5, false)), // stale holder: refused
        w(B, t0 + 50, complete(7, 4, 5)),
        w(B, t0 + 51, complete(7, 4, 5)),       // repeat: refused
        w(A, t0 + 60, acquire(7, cons)),        // not active, id in history: refused
        w(A, t0 + 61, ask(10, A, up)),          // A's operator asks to fail back
        w(B, t0 + 61, acquire(10, up)),         // token 5
        person(t0 + 62, 10, 5, 1, retry),       // nothing flagged: refused
        person(t0 + 62, 10, 4, 1, abort_asked), // stale token: refused
        person(t0 + 62, 10, 5, 1, abort_asked), // asked, for the source
        person(t0 + 62, 10, 5, 1, abort_asked), // asked already: refused
        w(B, t0 + 62, abort(10, 5, 1)),
        w(B, t0 + 63, hb),
        w(A, later, ask(11, A, cons)),
        w(A, later, force(11, Some(t0 + 5))), // B heartbeated since: refused
        w(A, later + 1, force(11, None)),     // B has a heartbeat: refused
        w(A, later + 2, force(11, Some(t0 + 63))), // the one A saw stand: token 6
        w(A, later + 3, force(11, Some(t0 + 63))), // forced already: refused
        w(A, later + 9, journal(11, 6, 1, false)),
        w(A, later + 9, abort(11, 6, 2)), // forced: no roll back, refused
        person(later + 9, 11, 6, 2, resolved), // not flagged: refused
        w(A, later + 9, stuck(11, 6, 2)), // needs-operator
        w(A, later + 9, stuck(11, 6, 2)), // flagged already: refused
        person(later + 9, 11, 6, 2, retry), // cleared, token 7
        w(A, later + 9, stuck(11, 6, 2)), // stale token: refused
        w(A, later + 9, stuck(11, 7, 2)), // flagged again
        w(B, later + 10, hb),             // B is back: its heartbeat still lands
        wi(B, 3, later + 11, hb),         // not B's owner: refused
        wi(B, 3, later + 11, claim_b(Some(2))), // a new process of B takes over
        w(B, later + 12, hb),             // the old one is shut out: refused
        wi(B, 2, later + 12, claim_b(Some(2))), // and cannot claim back: refused
        wi(B, 3, later + 12, hb),
        person(later + 13, 11, 7, 2, abort_asked), // promoted: refused
        w(A, later + 13, resolve(11, 7, 2)),       // not asked: refused
        person(later + 13, 11, 7, 2, resolved),    // asked
        w(A, later + 14, journal(11, 7, 2, false)), // the step done after all
        w(A, later + 15, resolve(11, 7, 2)),       // moved on: refused
        w(A, later + 15, resolve(11, 7, 3)),       // the rest skipped: resolved
        w(A, later + 19, complete(11, 7, 3)),      // ended: refused
    ];
    for (i, write) in steps.iter().enumerate() {
        let expected = apply(&model, write, &timing, Variant::Correct);
        let reply = store.write(group, &timing, write).await;
        match (&expected, &reply) {
            (Ok(next), Reply::Applied(got)) => {
                assert_eq!(got, next, "write {i} ({write:?}): record after the write");
                model = next.clone();
            }
            (Err(_), Reply::ConditionFailed(got)) => {
                assert_eq!(
                    got, &model,
                    "write {i} ({write:?}): current record on refusal"
                );
            }
            _ => panic!(
                "write {i} ({write:?}): the model says {}, the store answered {reply:?}",
                if expected.is_ok() {
                    "applied"
                } else {
                    "condition failed"
                }
            ),
        }
        let read = store.read(group).await.expect("read").expect("record");
        assert_eq!(read, model, "write {i} ({write:?}): read back");
    }
    assert_eq!(
        model.active,
        Cluster::A,
        "the walk ends with A active again"
    );
    assert_eq!(
        model.history.len(),
        5,
        "a no-op, a withdrawal, a completion, a resolve and one abort recorded"
    );
    // The explicit re-creation never overwrites a record that exists.
    let recreated = Record {
        token: model.token + 1,
        ..Record::new(Cluster::B, [None, None])
    };
    assert_eq!(
        store.recreate(group, &recreated).await,
        Reply::ConditionFailed(model.clone()),
        "an existing record is never overwritten"
    );
}
