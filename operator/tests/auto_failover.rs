//! Auto-failover with the real `failover-operator` binary: a whole cluster dies (its
//! operators SIGKILLed, its control plane frozen) and the standby takes over by itself.
//! A test binary of its own, so that no other test's load skews detection-to-serving.

mod common;

use common::*;

/// Run `scripts/kube-control-plane.sh <verb> <plane>`.
fn control_plane(verb: &str, plane: &str) {
    let script = failover_integration::plane::repo_root().join("scripts/kube-control-plane.sh");
    let out = Command::new(script)
        .args([verb, plane])
        .output()
        .expect("run kube-control-plane.sh");
    assert!(
        out.status.success(),
        "kube-control-plane.sh {verb} {plane}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A control plane frozen until this is dropped (also when the test fails, so the
/// plane answers again for the next test).
struct Frozen(&'static str);

impl Frozen {
    fn plane(name: &'static str) -> Frozen {
        control_plane("pause", name);
        Frozen(name)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        control_plane("resume", self.0);
    }
}

/// The auto-failover watch's state in `site`'s group status.
async fn auto_state(site: &Site, ns: &str) -> Option<failover_engine::spec::AutoFailoverStatus> {
    let api: Api<FailoverGroup> = Api::namespaced(site.plane.client.clone(), ns);
    api.get(GROUP).await.ok()?.status?.auto_failover
}

/// The active cluster dies (its operators SIGKILLed, its control plane frozen): the
/// standby's watch sees the heartbeat stop, fires, and its `Failover` (labelled
/// automatic) is forced once the lease ran out; the standby serves. When the old active
/// cluster comes back it stays at rest and stopped, and its status says the group is
/// away and that failing back is done by hand. Runs on control planes of its own
/// (`north`, `south`), since it freezes one. Prints detection-to-serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_failover_forces_when_the_active_cluster_dies_and_never_fails_back() {
    use failover_engine::spec::AutoFailoverSpec;
    const PLANES: [&str; 2] = ["north", "south"];
    let mut spec = app::group_spec(PLANES);
    spec.auto_failover = Some(AutoFailoverSpec {
        enabled: true,
        ..AutoFailoverSpec::default()
    });
    // Default timing but the heartbeat: the lease decides detection-to-serving.
    spec.timing = None;
    let ns = unique_name("auto");
    let north = site_with(PLANES[0], &ns, true, spec.clone()).await;
    let south = site_with(PLANES[1], &ns, false, spec).await;
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let table = unique_name("failover");
    let client = local_client(&endpoint).await;
    create_table(&client, &table).await.expect("table");
    let mut procs = start_operators(&launcher(), [&north, &south], &ns, &table, &endpoint);
    let logs: Vec<PathBuf> = procs.iter().map(|p| p.log.clone()).collect();
    wait_active(&north, &ns, "north", &logs).await;
    wait_active(&south, &ns, "north", &logs).await;
    // South watches (healthy); north, the home, never fails back.
    let armed = wait_for(
        "south's watch to see north healthy",
        Duration::from_secs(60),
        || async {
            auto_state(&south, &ns)
                .await
                .filter(|a| a.state == "Healthy")
        },
    )
    .await;
    assert!(
        armed.is_ok(),
        "south's watch is not Healthy: {:?}; logs {logs:?}",
        auto_state(&south, &ns).await
    );
    // North's watch writes its status on its own pace: wait for it (a cold run found
    // it not written yet when south's already was).
    let home = wait_for("north's watch status", Duration::from_secs(30), || async {
        auto_state(&north, &ns).await
    })
    .await;
    let home = home.expect("north's watch status");
    assert_eq!(home.state, "Disarmed", "{home:?}");
    let south_leader = leader(&procs, 1).await;
    let metrics = procs[south_leader].metrics().await.unwrap_or_default();
    assert!(
        metrics.contains("failover_auto_failover_state{group=\"")
            && metrics
                .lines()
                .any(|l| l.starts_with("failover_auto_failover_state{")
                    && l.contains("state=\"Healthy\"")
                    && l.ends_with(" 1")),
        "the watch's state is exported: {metrics}"
    );

    // North dies: both its operator replicas, and its control plane stops answering.
    for p in procs.iter_mut().take(2) {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    let frozen = Frozen::plane(PLANES[0]);
    let died = std::time::Instant::now();
    let mut seen_failing = false;
    let mut serving_after = None;
    let mut fired_after = None;
    let groups: Api<FailoverGroup> = Api::namespaced(south.plane.client.clone(), &ns);
    let completed_after = loop {
        assert!(
            died.elapsed() < FAILOVER_BOUND,
            "south did not take over within {FAILOVER_BOUND:?} (watch {:?}); logs {logs:?}",
            auto_state(&south, &ns).await
        );
        if let Some(a) = auto_state(&south, &ns).await {
            seen_failing |= a.state == "Failing";
            if fired_after.is_none() && a.last_failover.is_some() {
                fired_after = Some(died.elapsed());
            }
        }
        if serving_after.is_none() {
            let mut started = true;
            for object in &south.objects {
                let changes = south.cluster.preview(object, Desired::Start).await;
                started &= changes.is_ok_and(|c| c.is_empty());
            }
            if started {
                serving_after = Some(died.elapsed());
            }
        }
        let status = groups.get(GROUP).await.ok().and_then(|g| g.status);
        if serving_after.is_some()
            && status.is_some_and(|s| s.active.as_deref() == Some("south") && s.failover.is_none())
        {
            break died.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let serving_after = serving_after.expect("south serves");
    assert!(
        seen_failing,
        "the watch showed its failures before it fired"
    );
    // The automatic Failover: labelled, forced (north's lease ran out), completed.
    let failovers: Api<Failover> = Api::namespaced(south.plane.client.clone(), &ns);
    let automatic = kube::api::ListParams::default().labels("failover.rs/automatic=true");
    let auto = failovers
        .list(&automatic)
        .await
        .expect("list Failovers")
        .items;
    assert_eq!(auto.len(), 1, "one automatic Failover: {auto:?}");
    let name = auto[0].name_any();
    let status = wait_for(
        "the automatic Failover's outcome",
        Duration::from_secs(30),
        || {
            let failovers = failovers.clone();
            let name = name.clone();
            async move {
                let s = failovers.get(&name).await.ok()?.status?;
                s.outcome.is_some().then_some(s)
            }
        },
    )
    .await
    .expect("the automatic Failover ends");
    assert_eq!(
        status.outcome.as_deref(),
        Some("completed-forced"),
        "{status:?}"
    );
    assert_eq!(auto[0].spec.target_cluster, "south");
    assert!(
        auto[0]
            .annotations()
            .get("failover.rs/reason")
            .is_some_and(|r| r.contains("heartbeat")),
        "the reason is recorded: {:?}",
        auto[0].annotations()
    );
    assert_serving(&south, true).await;

    // North comes back (its control plane and a fresh operator): it stays at rest,
    // stopped, and its watch will not fail back.
    drop(frozen);
    procs.push(start_operator(
        &launcher(),
        &north.plane,
        &ns,
        &table,
        &endpoint,
        2,
    ));
    let logs: Vec<PathBuf> = procs.iter().map(|p| p.log.clone()).collect();
    wait_active(&north, &ns, "south", &logs).await;
    wait_for("north to stop everything", FAILOVER_BOUND, || async {
        for object in &north.objects {
            let changes = north.cluster.preview(object, Desired::Stop).await.ok()?;
            if !changes.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; logs {logs:?}"));
    let back = wait_for("north's watch status", Duration::from_secs(30), || async {
        auto_state(&north, &ns).await.filter(|a| {
            a.message
                .as_deref()
                .is_some_and(|m| m.contains("failing back is done by hand"))
        })
    })
    .await
    .expect("north reports that it does not fail back");
    assert_eq!(back.state, "Disarmed");
    let south_now = auto_state(&south, &ns).await.expect("south's watch");
    assert_eq!(
        south_now.state, "Disarmed",
        "south is active now: {south_now:?}"
    );
    assert_serving(&south, true).await;
    let line = format!(
        "auto-failover, default timing (lease 16 s, drift 1 s, heartbeat 1 s): north died; \
         south's watch fired after {:.1} s, south served after {:.1} s, the failover was \
         recorded complete after {:.1} s",
        fired_after.map_or(f64::NAN, |d| d.as_secs_f64()),
        serving_after.as_secs_f64(),
        completed_after.as_secs_f64()
    );
    println!("{line}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| failover_integration::plane::repo_root().join("target"));
    let _ = std::fs::write(target.join("auto-failover.txt"), format!("{line}\n"));
    assert!(
        serving_after <= Duration::from_secs(20),
        "detection-to-serving {serving_after:?} exceeds the 20 s the defaults promise"
    );
}
