//! The real `failover-operator` binary, one process per cluster, against the two real
//! control planes and DynamoDB Local: `Failover` objects created in either cluster are
//! carried out, and the objects' status tells the story as it happens.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_follows_failovers_requested_in_either_cluster_in_both_modes() {
    let Lab {
        ns,
        sites: [east, west],
        procs,
        logs,
        ..
    } = lab(&launcher(), "operator").await;
    // Every replica is ready: the leaders once their caches synced and their loops read
    // the record, the standbys at once.
    for p in &procs {
        let ready = wait_for("a replica to be ready", Duration::from_secs(30), || async {
            http_get(p.probe_port, "/readyz").await
        })
        .await;
        assert!(ready.is_ok(), "{:?} not ready", p.log);
        assert!(http_get(p.probe_port, "/livez").await.is_some());
    }

    // A dry run first: the plan in status, nothing requested.
    let failovers: Api<Failover> = Api::namespaced(west.plane.client.clone(), &ns);
    failovers
        .create(
            &PostParams::default(),
            &Failover::new(
                "dry",
                FailoverSpec {
                    group: GROUP.into(),
                    target_cluster: "west".into(),
                    mode: FailoverMode::Consistency,
                    dry_run: true,
                },
            ),
        )
        .await
        .expect("create the dry run");
    let plan = wait_for("the dry run's plan", Duration::from_secs(30), || {
        let failovers = failovers.clone();
        async move {
            let s = failovers.get("dry").await.ok()?.status?;
            (s.phase.as_deref() == Some("DryRun")).then_some(s.message.unwrap_or_default())
        }
    })
    .await
    .expect("a DryRun phase");
    assert!(
        plan.contains("promote-volumes")
            && plan.contains("spec.replicationState: secondary -> primary"),
        "the target's plan with its fields:\n{plan}"
    );
    wait_active(&west, &ns, "east", &logs).await;

    // A consistency failover asked in the standby cluster (west): the record carries the
    // request to east's operator, which starts it. Both groups' statuses are sampled
    // for their per-kind progress meanwhile.
    let kinds = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let sampler = {
        let apis: Vec<Api<FailoverGroup>> = [&east, &west]
            .iter()
            .map(|s| Api::namespaced(s.plane.client.clone(), &ns))
            .collect();
        let kinds = kinds.clone();
        tokio::spawn(async move {
            loop {
                for api in &apis {
                    if let Some(f) = api.get(GROUP).await.ok().and_then(|g| g.status?.failover) {
                        kinds.lock().expect("kinds").extend(f.kinds);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (phases, stages, outcome) =
        fail_over(&west, &ns, "west", FailoverMode::Consistency, &logs).await;
    sampler.abort();
    // Per-kind progress was shown for the workloads and the volumes, and steps reached
    // their totals (the application has one object of each kind).
    let kinds = kinds.lock().expect("kinds").clone();
    assert!(
        kinds.iter().any(
            |l| l.ends_with("1/1 Deployments (done)") || l.ends_with("1/1 StatefulSets (done)")
        ) && kinds.iter().any(|l| l.contains("VolumeReplications"))
            && kinds
                .iter()
                .all(|l| l.contains(" 0/1 ") || l.contains(" 1/1 ")),
        "per-kind progress shown: {kinds:?}"
    );
    assert_eq!(outcome, "completed-consistency", "phases {phases:?}");
    assert_eq!(phases.last().map(String::as_str), Some("Completed"));
    let order: Vec<usize> = stages.iter().map(|s| stage_index(s)).collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "the stage shown went back: {stages:?}"
    );
    wait_active(&east, &ns, "west", &logs).await;
    wait_active(&west, &ns, "west", &logs).await;
    // The source's leader counted it (`failover_failovers_total`), with its stages.
    let east_leader = leader(&procs, 0).await;
    let metrics = procs[east_leader].metrics().await.expect("metrics");
    let counted = metrics.lines().any(|l| {
        l.starts_with("failover_failovers_total{")
            && l.contains("outcome=\"completed-consistency\"")
            && l.ends_with(" 1")
    });
    assert!(counted, "no completed failover counted in:\n{metrics}");
    assert!(
        metrics.contains("failover_stage_duration_seconds_count{mode=\"consistency\""),
        "no stage durations in:\n{metrics}"
    );
    assert_serving(&west, true).await;
    assert_serving(&east, false).await;
    // The Events tell the same story: the stages the source saw started (the target's
    // come in its own cluster), and the failover ended.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(east.plane.client.clone(), &ns);
    let told: Vec<(String, String)> = wait_for("the Events", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            let told: Vec<(String, String)> = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(GROUP))
                .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
                .collect();
            told.iter()
                .any(|(reason, _)| reason == "FailoverEnded")
                .then_some(told)
        }
    })
    .await
    .expect("a FailoverEnded Event");
    for stage in ["initialization", "source-preparation", "volume-demotion"] {
        assert!(
            told.iter()
                .any(|(r, n)| r == "StageStarted" && n.ends_with(&format!("stage {stage} started"))),
            "no StageStarted Event for {stage}: {told:?}"
        );
    }
    let status = Api::<FailoverGroup>::namespaced(west.plane.client.clone(), &ns)
        .get(GROUP)
        .await
        .expect("group")
        .status
        .expect("status");
    assert_eq!(
        status.history.first().map(|h| h.outcome.as_str()),
        Some("completed-consistency")
    );
    let condition = |name: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == name)
            .map(|c| c.status.clone())
    };
    assert_eq!(condition("Serving").as_deref(), Some("True"), "{status:?}");
    assert_eq!(condition("FailoverInProgress").as_deref(), Some("False"));

    // And back in uptime mode, asked in the cluster that is now standby (east).
    let (phases, stages, outcome) =
        fail_over(&east, &ns, "east", FailoverMode::Uptime, &logs).await;
    assert_eq!(
        outcome, "completed-uptime",
        "phases {phases:?} stages {stages:?}"
    );
    wait_active(&east, &ns, "east", &logs).await;
    assert_serving(&east, true).await;
    assert_serving(&west, false).await;
    println!("consistency and uptime failovers through the operators: stages {stages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_terminated_mid_failover_hands_over_cleanly() {
    let Lab {
        ns,
        sites: [east, west],
        mut procs,
        logs,
        ..
    } = lab(&launcher(), "handover").await;
    let old = leader(&procs, 0).await;
    let name = request(&west, &ns, "west", FailoverMode::Consistency).await;
    // The source (east) is at work: its leader gets SIGTERM.
    let groups: Api<FailoverGroup> = Api::namespaced(east.plane.client.clone(), &ns);
    let stage = wait_for("the failover under way in east", FAILOVER_BOUND, || {
        let groups = groups.clone();
        async move {
            let f = groups.get(GROUP).await.ok()?.status?.failover?;
            Some(f.stage)
        }
    })
    .await
    .expect("the failover starts");
    procs[old].terminate();
    let exited = wait_for("the old leader to exit", Duration::from_secs(30), || {
        let status = procs[old].child.try_wait().expect("wait");
        async move { status }
    })
    .await
    .expect("the terminated leader exits");
    assert!(
        exited.success(),
        "SIGTERM: exit {exited:?} (log {:?})",
        logs[old]
    );
    let new = leader(&procs, 0).await;
    assert_ne!(new, old, "the other replica of east leads");
    let (phases, stages, outcome) = follow(&west, &ns, &name, &logs).await;
    assert_eq!(
        outcome, "completed-consistency",
        "phases {phases:?} stages {stages:?}; logs {logs:?}"
    );
    wait_active(&east, &ns, "west", &logs).await;
    wait_active(&west, &ns, "west", &logs).await;
    assert_serving(&west, true).await;
    assert_serving(&east, false).await;
    println!(
        "SIGTERM of east's leader at stage {stage}: replica {new} took over; the failover \
         completed (stages seen {stages:?})"
    );
}

/// SIGKILL of a cluster's leading operator replica in each of the six stages, on the
/// source's side and on the target's (12 runs, failing over back and forth): the other
/// replica takes over, the failover completes, and a monitor sampling both clusters and
/// the record every 100 ms sees no unsafe sample. Prints the matrix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_matrix() {
    use failover_engine::ports::StorePort;
    use failover_engine::spec::Group;
    use failover_integration::monitor::{Monitor, observer};
    use failover_model::{Role, Stage};

    let Lab {
        ns,
        sites,
        endpoint,
        table,
        store,
        mut procs,
        logs,
    } = lab(&launcher(), "kill").await;
    let key = format!("{ns}/{GROUP}");
    let groups = CLUSTERS.map(|c| Group::parse(&ns, GROUP, &spec(), c).expect("group"));
    let mut rows = Vec::new();
    let mut active = 0;
    for stage in Stage::ALL {
        for side in [Role::Source, Role::Target] {
            let (source, target) = (active, 1 - active);
            let victim_cluster = if side == Role::Source { source } else { target };
            let victim = leader(&procs, victim_cluster).await;
            let observe =
                |i: usize| observer(sites[i].cluster.clone(), store.clone(), groups[i].clone());
            let monitor = Monitor::start(
                observe(source),
                observe(target),
                store.clone(),
                key.clone(),
                Duration::from_millis(100),
            );
            let name = request(
                &sites[target],
                &ns,
                CLUSTERS[target],
                FailoverMode::Consistency,
            )
            .await;
            // Poll the record until the failover is in `stage` (or past it: then the kill
            // lands in the stage it reached, and the row says so).
            let started = std::time::Instant::now();
            let hit = loop {
                assert!(
                    started.elapsed() < FAILOVER_BOUND,
                    "the failover never started"
                );
                if let Ok(Some(r)) = store.read(&key).await {
                    if let Some(f) = r.failover {
                        let now = f.next_step().map_or(Stage::Completion, |s| s.stage);
                        if now.index() >= stage.index() {
                            break Some(now);
                        }
                    } else if r.active.index() == target {
                        // Ended before the poll saw the stage.
                        break None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let killed_at = std::time::Instant::now();
            let _ = procs[victim].child.kill();
            let _ = procs[victim].child.wait();
            // The cluster gets its second replica back, as a Deployment would.
            procs[victim] = start_operator(
                &launcher(),
                &sites[victim_cluster].plane,
                &ns,
                &table,
                &endpoint,
                victim % 2,
            );
            // A replica leads again (the standby, once the killed one's Lease expired).
            let taken_over = leader(&procs, victim_cluster).await;
            let takeover = killed_at.elapsed();
            let (_, _, outcome) = follow(&sites[target], &ns, &name, &logs).await;
            let done = killed_at.elapsed();
            let report = monitor.stop().await;
            wait_active(&sites[source], &ns, CLUSTERS[target], &logs).await;
            rows.push((
                stage,
                side,
                hit,
                taken_over != victim,
                takeover,
                done,
                outcome,
                report,
            ));
            active = target;
        }
    }
    use std::fmt::Write as _;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "kill matrix (SIGKILL of a cluster's leading replica; `leader`: until the other \
         replica leads; `completed`: until the failover's outcome):"
    );
    let _ = writeln!(
        table,
        "{:<20} {:<7} {:<20} {:>9} {:>10} {:<24} {:>8} {:>10}",
        "stage", "side", "killed in", "leader", "completed", "outcome", "samples", "violations"
    );
    for (stage, side, hit, _, takeover, done, outcome, report) in &rows {
        let _ = writeln!(
            table,
            "{:<20} {:<7} {:<20} {:>8.1}s {:>9.1}s {:<24} {:>8} {:>10}",
            stage.to_string(),
            format!("{side:?}").to_lowercase(),
            hit.map_or("(already ended)".to_string(), |s| s.to_string()),
            takeover.as_secs_f64(),
            done.as_secs_f64(),
            outcome,
            report.samples,
            report.violations.len()
        );
    }
    let completed = rows
        .iter()
        .filter(|r| r.6 == "completed-consistency" && r.7.violations.is_empty())
        .count();
    let _ = writeln!(
        table,
        "{completed}/{} completed with no unsafe sample",
        rows.len()
    );
    println!("\n{table}");
    // Also beside the build, where `scripts/test.sh` prints it (a passing test's output
    // is captured).
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let _ = std::fs::write(PathBuf::from(dir).join("kill-matrix.txt"), &table);
    for r in &rows {
        assert!(
            r.7.violations.is_empty(),
            "unsafe samples: {:?}",
            r.7.violations
        );
        assert_eq!(r.6, "completed-consistency", "kill at {} {:?}", r.0, r.1);
    }
    assert_eq!(completed, 12);
}
