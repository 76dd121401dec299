//! Hooks (issue 13) run by [`run_hook`] against the in-memory cluster, on tokio's paused
//! (virtual) time: a Job hook waits for its Job's condition and is found again, not
//! created twice, for the same failover; an exec hook names the pod that failed and its
//! exit code; an HTTP hook checks the status it gets.

use std::collections::BTreeMap;
use std::time::Duration;

use failover_engine::hooks::{
    Hook, HookAction, HookError, HttpRequest, JobState, job_labels, job_name, run_hook,
};
use failover_engine::memory::{MemoryCluster, Settle, TokioClock};
use failover_engine::ports::{ClusterError, ClusterPort, LabelQuery};
use failover_engine::spec::{FailoverGroupSpec, Group, MembersSpec};
use failover_model::{FailoverId, HookSpot, OnFailure, Role, Step};
use tokio::time::Instant;

const NS: &str = "shop";
const ID: FailoverId = 0x00c0_ffee_0000_0001;

fn group() -> Group {
    let spec = FailoverGroupSpec {
        clusters: vec!["east".into(), "west".into()],
        members: MembersSpec {
            deployments: vec!["orders".into()],
            ..MembersSpec::default()
        },
        ..FailoverGroupSpec::default()
    };
    Group::parse(NS, "orders", &spec, "east").expect("valid spec")
}

fn hook(name: &str, timeout: u64, action: HookAction) -> Hook {
    Hook {
        name: name.into(),
        spot: HookSpot {
            anchor: Step::DemoteVolumes,
            after: false,
            side: Role::Source,
            on_failure: OnFailure::Abort,
        },
        timeout: Duration::from_secs(timeout),
        action,
    }
}

fn job_hook(timeout: u64) -> Hook {
    hook(
        "quiesce",
        timeout,
        HookAction::Job {
            template: serde_json::json!({
                "metadata": {"labels": {"app": "quiesce"}},
                "spec": {"backoffLimit": 1, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "q", "image": "tools", "args": ["quiesce"]}]}}}
            }),
        },
    )
}

fn exec_hook() -> Hook {
    hook(
        "verify",
        30,
        HookAction::Exec {
            selector: LabelQuery::equals("app", "db"),
            container: Some("db".into()),
            command: vec!["verify".into(), "--strict".into()],
        },
    )
}

fn http_hook(expected_status: u16) -> Hook {
    hook(
        "notify",
        5,
        HookAction::Http(HttpRequest {
            method: "POST".into(),
            url: "https://hooks.example.com/failover".into(),
            headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
            body: Some(r#"{"group":"orders"}"#.into()),
            expected_status,
        }),
    )
}

/// After `after` of virtual time, end Job `name` as `state`.
fn finish_later(cluster: &MemoryCluster, name: String, after: Duration, state: JobState) {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        assert!(
            cluster.finish_job(NS, &name, state),
            "Job {name} exists by then"
        );
    });
}

#[tokio::test(start_paused = true)]
async fn a_job_hook_succeeds_when_its_job_completes() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let (group, hook) = (group(), job_hook(60));
    let name = job_name("quiesce", ID);
    finish_later(
        &cluster,
        name.clone(),
        Duration::from_secs(7),
        JobState::Complete,
    );
    let start = Instant::now();
    let said = run_hook(&cluster, &TokioClock::new(0), &group, &hook, ID)
        .await
        .expect("the hook succeeds");
    assert!(said.contains(&name) && said.contains("complete"), "{said}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
        "the hook waited for the Job, polling: {waited:?}"
    );
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[&(NS.to_owned(), name)];
    assert_eq!(job.created, 1);
    assert_eq!(job.state, JobState::Complete);
    assert_eq!(
        job.deadline_seconds, 60,
        "the hook's timeout is the Job's deadline"
    );
    for (k, v) in job_labels(&group, "quiesce", ID) {
        assert_eq!(job.labels.get(&k), Some(&v), "label {k}");
    }
    assert_eq!(
        job.labels.get("app").map(String::as_str),
        Some("quiesce"),
        "the template's labels are kept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_hook_fails_with_the_jobs_reason() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let name = job_name("quiesce", ID);
    let why = "BackoffLimitExceeded: Job has reached the specified backoff limit";
    finish_later(
        &cluster,
        name.clone(),
        Duration::from_secs(2),
        JobState::Failed(why.into()),
    );
    let error = run_hook(&cluster, &TokioClock::new(0), &group(), &job_hook(60), ID)
        .await
        .expect_err("the hook fails");
    match &error {
        HookError::Failed(message) => {
            assert!(
                message.contains(&name) && message.contains(why),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // The same failover's next run finds the failed Job: it fails again at once, and
    // no second Job is created to try again.
    let start = Instant::now();
    let again = run_hook(&cluster, &TokioClock::new(0), &group(), &job_hook(60), ID).await;
    assert_eq!(again, Err(error));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(cluster.jobs()[&(NS.to_owned(), name)].created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_job_hook_whose_job_never_finishes_times_out() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let start = Instant::now();
    let result = run_hook(&cluster, &TokioClock::new(0), &group(), &job_hook(10), ID).await;
    assert_eq!(result, Err(HookError::TimedOut(10)));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(
        jobs.values().all(|j| j.state == JobState::Running),
        "the Job itself still runs (Kubernetes ends it at its deadline)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_run_for_the_same_failover_finds_its_job_and_another_failover_creates_its_own() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let clock = TokioClock::new(0);
    let (group, hook) = (group(), job_hook(5));
    let name = job_name("quiesce", ID);
    // The first run (a process that restarts, a retry) gives up while its Job runs.
    assert_eq!(
        run_hook(&cluster, &clock, &group, &hook, ID).await,
        Err(HookError::TimedOut(5))
    );
    // The second run for the same failover waits for that Job.
    finish_later(
        &cluster,
        name.clone(),
        Duration::from_secs(2),
        JobState::Complete,
    );
    run_hook(&cluster, &clock, &group, &hook, ID)
        .await
        .expect("the second run sees the Job complete");
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 1, "not created twice: {jobs:?}");
    assert_eq!(jobs[&(NS.to_owned(), name.clone())].created, 1);
    // And once more after it completed: success at once, nothing created.
    run_hook(&cluster, &clock, &group, &hook, ID)
        .await
        .expect("found complete");
    assert_eq!(cluster.jobs().len(), 1);
    // Another failover has its own Job.
    let next = ID + 1;
    let other = job_name("quiesce", next);
    assert_ne!(other, name);
    finish_later(
        &cluster,
        other.clone(),
        Duration::from_secs(1),
        JobState::Complete,
    );
    run_hook(&cluster, &clock, &group, &hook, next)
        .await
        .expect("the next failover's Job completes");
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let job = &jobs[&(NS.to_owned(), other)];
    assert_eq!(job.created, 1);
    assert_eq!(
        job.labels.get("failover.rs/failover"),
        Some(&format!("{next:016x}"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_job_is_created_again() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let clock = TokioClock::new(0);
    let name = job_name("quiesce", ID);
    assert_eq!(
        run_hook(&cluster, &clock, &group(), &job_hook(2), ID).await,
        Err(HookError::TimedOut(2))
    );
    assert!(cluster.delete_job(NS, &name));
    assert!(!cluster.delete_job(NS, &name), "gone");
    assert!(cluster.jobs().is_empty());
    finish_later(
        &cluster,
        name.clone(),
        Duration::from_secs(1),
        JobState::Complete,
    );
    run_hook(&cluster, &clock, &group(), &job_hook(5), ID)
        .await
        .expect("created again, completes");
    assert_eq!(cluster.jobs()[&(NS.to_owned(), name)].created, 2);
}

#[tokio::test(start_paused = true)]
async fn the_memory_jobs_controls_end_a_job() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let labels = BTreeMap::new();
    let template = serde_json::json!({"spec": {"activeDeadlineSeconds": 30}});
    for name in ["a", "b"] {
        assert_eq!(
            cluster.ensure_job(NS, name, &labels, &template, 99).await,
            Ok(JobState::Running)
        );
    }
    assert!(cluster.complete_job(NS, "a"));
    assert!(cluster.fail_job(NS, "b", "DeadlineExceeded: too long"));
    assert!(!cluster.complete_job(NS, "c"), "no such Job");
    assert!(!cluster.complete_job("elsewhere", "a"), "another namespace");
    assert_eq!(
        cluster.ensure_job(NS, "a", &labels, &template, 99).await,
        Ok(JobState::Complete)
    );
    assert_eq!(
        cluster.ensure_job(NS, "b", &labels, &template, 99).await,
        Ok(JobState::Failed("DeadlineExceeded: too long".into()))
    );
    let jobs = cluster.jobs();
    assert_eq!(
        jobs[&(NS.to_owned(), "a".to_owned())].deadline_seconds,
        30,
        "the template's deadline wins"
    );
    assert!(jobs.values().all(|j| j.created == 1));
}

#[tokio::test(start_paused = true)]
async fn an_exec_hook_fails_naming_the_pod_and_its_exit_code() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    cluster.add_pod(NS, "db-0", &[("app", "db")], 0);
    cluster.add_pod(NS, "db-1", &[("app", "db")], 0);
    cluster.add_pod(NS, "db-2", &[("app", "db")], 0);
    cluster.add_pod(NS, "web-0", &[("app", "web")], 7);
    cluster.add_pod("elsewhere", "db-9", &[("app", "db")], 7);
    assert!(cluster.set_pod_running(NS, "db-2", false));
    let clock = TokioClock::new(0);
    let said = run_hook(&cluster, &clock, &group(), &exec_hook(), ID)
        .await
        .expect("every selected running pod exits 0");
    assert_eq!(said, "exec succeeded in 2 pods");
    assert!(cluster.set_exec(NS, "db-1", 3, "replica lag 12 s\n"));
    assert!(!cluster.set_exec(NS, "db-7", 3, ""), "no such pod");
    let error = run_hook(&cluster, &clock, &group(), &exec_hook(), ID)
        .await
        .expect_err("db-1 fails");
    let HookError::Failed(message) = error else {
        panic!("{error:?}")
    };
    assert_eq!(message, "db-1 exited 3: replica lag 12 s");
    let ran: BTreeMap<String, usize> = cluster
        .pods()
        .into_iter()
        .map(|p| (format!("{}/{}", p.namespace, p.name), p.ran.len()))
        .collect();
    assert_eq!(
        ran,
        BTreeMap::from([
            ("shop/db-0".to_owned(), 2),
            ("shop/db-1".to_owned(), 2),
            ("shop/db-2".to_owned(), 0),
            ("shop/web-0".to_owned(), 0),
            ("elsewhere/db-9".to_owned(), 0),
        ]),
        "only the selected running pods of the namespace ran the command"
    );
    assert_eq!(
        cluster.pods()[0].ran[0],
        ["verify".to_owned(), "--strict".into()]
    );
}

#[tokio::test(start_paused = true)]
async fn an_exec_hook_without_a_running_pod_fails() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let clock = TokioClock::new(0);
    let error = run_hook(&cluster, &clock, &group(), &exec_hook(), ID)
        .await
        .expect_err("no pod");
    assert!(
        matches!(&error, HookError::Failed(m) if m.contains("no running pod matches app=db in shop")),
        "{error:?}"
    );
    cluster.add_pod(NS, "db-0", &[("app", "db")], 0);
    cluster.set_pod_running(NS, "db-0", false);
    assert_eq!(
        cluster
            .exec(NS, &LabelQuery::equals("app", "db"), None, &[])
            .await,
        Ok(Vec::new()),
        "a pod that does not run is not selected"
    );
    assert!(
        run_hook(&cluster, &clock, &group(), &exec_hook(), ID)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn an_http_hook_checks_the_status() {
    let cluster = MemoryCluster::new(Settle::Instantly);
    let clock = TokioClock::new(0);
    let url = "https://hooks.example.com/failover";
    cluster.set_http(url, Ok(202));
    let said = run_hook(&cluster, &clock, &group(), &http_hook(202), ID)
        .await
        .expect("the expected status");
    assert_eq!(said, format!("POST {url} answered 202"));
    let error = run_hook(&cluster, &clock, &group(), &http_hook(200), ID)
        .await
        .expect_err("another status");
    assert_eq!(
        error,
        HookError::Failed(format!("POST {url} answered 202, expected 200"))
    );
    cluster.set_http(url, Err("connection refused".into()));
    let error = run_hook(&cluster, &clock, &group(), &http_hook(202), ID)
        .await
        .expect_err("unreachable");
    assert!(
        matches!(&error, HookError::Cluster(ClusterError::Unavailable(m)) if m.contains("connection refused")),
        "{error:?}"
    );
    let requests = cluster.requests();
    assert_eq!(requests.len(), 3, "every run sent its request");
    assert_eq!(requests[0].body.as_deref(), Some(r#"{"group":"orders"}"#));
    assert_eq!(
        requests[0].headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    // A URL nobody answers is unreachable too.
    let mut other = http_hook(200);
    if let HookAction::Http(r) = &mut other.action {
        r.url = "http://nobody.example.com/".into();
    }
    assert!(matches!(
        run_hook(&cluster, &clock, &group(), &other, ID).await,
        Err(HookError::Cluster(ClusterError::Unavailable(_)))
    ));
}
