//! The real `failover-operator` binary, one process per cluster, against the two real
//! control planes and DynamoDB Local: `Failover` objects created in either cluster are
//! carried out, and the objects' status tells the story as it happens.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failover_engine::dynamo::{create_table, local_client};
use failover_engine::effects::retried;
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::{ClusterPort, Desired, Kind};
use failover_engine::spec::{
    Failover, FailoverGroup, FailoverGroupSpec, FailoverMode, FailoverSpec,
};
use failover_integration::agents::Agents;
use failover_integration::app;
use failover_integration::plane::{ControlPlane, dynamodb_endpoint, unique_name};
use failover_integration::wait_for;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};

const CLUSTERS: [&str; 2] = ["east", "west"];
const GROUP: &str = "shop";
/// Bound on one failover through the operators on these machines.
const FAILOVER_BOUND: Duration = Duration::from_secs(120);

fn spec() -> FailoverGroupSpec {
    app::group_spec(CLUSTERS)
}

/// Install (or update) the operator's own CRDs by server-side apply, and wait until
/// they are served.
async fn install_crds(plane: &ControlPlane) {
    let api: Api<CustomResourceDefinition> = Api::all(plane.client.clone());
    for crd in [FailoverGroup::crd(), Failover::crd()] {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("failover-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        wait_for(&format!("CRD {name}"), Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await
        .expect("CRD established");
    }
}

/// One operator process; killed when dropped. Its log goes to a file named in failures.
struct Process {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
    probe_port: u16,
}

impl Process {
    /// Its metrics, if it answers.
    async fn metrics(&self) -> Option<String> {
        http_get(self.metrics_port, "/metrics").await
    }

    /// It leads (its `failover_leader` gauge is 1).
    async fn leads(&self) -> bool {
        self.metrics()
            .await
            .is_some_and(|m| m.lines().any(|l| l == "failover_leader 1"))
    }

    /// Send it SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

/// A plain HTTP/1.1 GET on localhost: the body, if the answer is 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ports a process says it listens on (its JSON log's `listening` line): it binds
/// port 0, so parallel tests never race for a port.
fn listening(log: &std::path::Path) -> Option<(u16, u16)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields")?;
        (fields.get("message")?.as_str()? == "listening").then_some(())?;
        let port = |key: &str| -> Option<u16> {
            fields.get(key)?.as_str()?.rsplit(':').next()?.parse().ok()
        };
        Some((port("metrics")?, port("probes")?))
    })
}

/// Replica `replica` of `plane`'s operator, electing its leader through a Lease in the
/// test's namespace.
fn start_operator(
    plane: &ControlPlane,
    ns: &str,
    table: &str,
    endpoint: &str,
    replica: usize,
) -> Process {
    let log = std::env::temp_dir().join(format!("{ns}-{}-{replica}-operator.log", plane.name));
    let file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_failover-operator"))
        .args(["--cluster-name", &plane.name])
        .args(["--table", table])
        .args(["--dynamodb-endpoint", endpoint])
        .args(["--namespace", ns])
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["--probe-addr", "127.0.0.1:0"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .args(["--lease-namespace", ns])
        // A new identity per process, as a replacement Pod has: a restarted process
        // does not find the Lease its predecessor held as its own.
        .args([
            "--identity",
            &format!("{}-{replica}-{}", plane.name, unique_name("p")),
        ])
        .args(["--leader-lease-seconds", "4"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(file.try_clone().expect("log file")))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start failover-operator");
    let started = std::time::Instant::now();
    let (metrics_port, probe_port) = loop {
        if let Some(ports) = listening(&log) {
            break ports;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the operator never said where it listens: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Process {
        child,
        log,
        metrics_port,
        probe_port,
    }
}

/// Two replicas of each cluster's operator.
fn start_operators(sites: [&Site; 2], ns: &str, table: &str, endpoint: &str) -> Vec<Process> {
    sites
        .iter()
        .flat_map(|s| (0..2).map(move |r| start_operator(&s.plane, ns, table, endpoint, r)))
        .collect()
}

/// The replica of `cluster` (0 east, 1 west) that leads, once one does.
async fn leader(procs: &[Process], cluster: usize) -> usize {
    wait_for("a leader", Duration::from_secs(60), || async move {
        for i in [2 * cluster, 2 * cluster + 1] {
            if procs[i].leads().await {
                return Some(i);
            }
        }
        None
    })
    .await
    .expect("a replica leads")
}

struct Site {
    plane: ControlPlane,
    cluster: KubeCluster,
    objects: Vec<failover_engine::ports::ObjectRef>,
    _agents: Agents,
}

async fn site(name: &str, ns: &str, serving: bool) -> Site {
    site_with(name, ns, serving, spec()).await
}

/// [`site`] with the group spec `spec`.
async fn site_with(name: &str, ns: &str, serving: bool, spec: FailoverGroupSpec) -> Site {
    let plane = ControlPlane::shared(name).await.expect("control plane");
    install_crds(&plane).await;
    plane.create_namespace(ns).await.expect("namespace");
    let agents = Agents::start(
        &plane.client,
        ns,
        Duration::from_millis(200),
        Duration::from_millis(500),
    );
    let objects = app::create(&plane.client, ns, "shop", &Kind::ALL, 3)
        .await
        .expect("create the application");
    let cluster = KubeCluster::new(plane.client.clone());
    if !serving {
        for object in &objects {
            retried(|| cluster.set(object, Desired::Stop))
                .await
                .expect("stop");
        }
    }
    app::wait_settled(&cluster, &objects, Duration::from_secs(90))
        .await
        .expect("the application settles");
    let groups: Api<FailoverGroup> = Api::namespaced(plane.client.clone(), ns);
    groups
        .create(&PostParams::default(), &FailoverGroup::new(GROUP, spec))
        .await
        .expect("create the FailoverGroup");
    Site {
        plane,
        cluster,
        objects,
        _agents: agents,
    }
}

/// Every member of `site` reads back started (`serving`) or stopped, settled.
async fn assert_serving(site: &Site, serving: bool) {
    let desired = if serving {
        Desired::Start
    } else {
        Desired::Stop
    };
    for object in &site.objects {
        let changes = site
            .cluster
            .preview(object, desired)
            .await
            .expect("preview");
        assert!(
            changes.is_empty(),
            "{} {object} is not {desired:?}: {changes:?}",
            site.plane.name
        );
    }
}

/// Wait until `site`'s group status names `active` with no failover in flight.
async fn wait_active(site: &Site, ns: &str, active: &str, logs: &[PathBuf]) {
    let api: Api<FailoverGroup> = Api::namespaced(site.plane.client.clone(), ns);
    let found = wait_for(
        &format!("{} to report {active} active", site.plane.name),
        FAILOVER_BOUND,
        || {
            let api = api.clone();
            async move {
                let g = api.get(GROUP).await.ok()?;
                let s = g.status?;
                (s.active.as_deref() == Some(active) && s.failover.is_none()).then_some(s)
            }
        },
    )
    .await;
    if let Err(e) = found {
        panic!("{e}; operator logs: {:?}", logs);
    }
}

/// Create a `Failover` in `site` and follow its status until it ends: the phases it
/// went through, the stages it showed (in order, never going back), its outcome.
async fn fail_over(
    site: &Site,
    ns: &str,
    to: &str,
    mode: FailoverMode,
    logs: &[PathBuf],
) -> (Vec<String>, Vec<String>, String) {
    let name = request(site, ns, to, mode).await;
    follow(site, ns, &name, logs).await
}

/// Create a `Failover` in `site`; its name.
async fn request(site: &Site, ns: &str, to: &str, mode: FailoverMode) -> String {
    let api: Api<Failover> = Api::namespaced(site.plane.client.clone(), ns);
    let name = unique_name("to");
    let failover = Failover::new(
        &name,
        FailoverSpec {
            group: GROUP.into(),
            target_cluster: to.into(),
            mode,
            dry_run: false,
        },
    );
    api.create(&PostParams::default(), &failover)
        .await
        .expect("create the Failover");
    name
}

/// Follow the status of `Failover` `name` until it ends.
async fn follow(
    site: &Site,
    ns: &str,
    name: &str,
    logs: &[PathBuf],
) -> (Vec<String>, Vec<String>, String) {
    let api: Api<Failover> = Api::namespaced(site.plane.client.clone(), ns);
    let mut phases: Vec<String> = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < FAILOVER_BOUND,
            "the Failover did not end within {FAILOVER_BOUND:?} (phases {phases:?}, stages \
             {stages:?}); operator logs: {:?}",
            logs
        );
        let status = api.get(name).await.expect("get").status.unwrap_or_default();
        if let Some(p) = status.phase.clone()
            && phases.last() != Some(&p)
        {
            phases.push(p);
        }
        if let Some(s) = status.stage.clone()
            && stages.last() != Some(&s)
        {
            stages.push(s);
        }
        if let Some(outcome) = status.outcome {
            return (phases, stages, outcome);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The order the stages come in.
fn stage_index(stage: &str) -> usize {
    failover_model::Stage::ALL
        .iter()
        .position(|s| s.to_string() == stage)
        .unwrap_or_else(|| panic!("unknown stage {stage}"))
}

/// Two sites in a namespace of their own (the application serving in east, stopped in
/// west), a fresh table, two operator replicas per cluster, both clusters' group status
/// naming east active.
struct Lab {
    ns: String,
    sites: [Site; 2],
    endpoint: String,
    table: String,
    store: failover_engine::dynamo::DynamoStore,
    procs: Vec<Process>,
    logs: Vec<PathBuf>,
}

async fn lab(prefix: &str) -> Lab {
    let ns = unique_name(prefix);
    let sites = [
        site(CLUSTERS[0], &ns, true).await,
        site(CLUSTERS[1], &ns, false).await,
    ];
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let table = unique_name("failover");
    let client = local_client(&endpoint).await;
    create_table(&client, &table).await.expect("table");
    let store = failover_engine::dynamo::DynamoStore::new(client, table.clone());
    let procs = start_operators([&sites[0], &sites[1]], &ns, &table, &endpoint);
    let logs: Vec<PathBuf> = procs.iter().map(|p| p.log.clone()).collect();
    for site in &sites {
        wait_active(site, &ns, "east", &logs).await;
    }
    Lab {
        ns,
        sites,
        endpoint,
        table,
        store,
        procs,
        logs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_follows_failovers_requested_in_either_cluster_in_both_modes() {
    let Lab {
        ns,
        sites: [east, west],
        procs,
        logs,
        ..
    } = lab("operator").await;
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
    } = lab("handover").await;
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
    } = lab("kill").await;
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
    let mut procs = start_operators([&north, &south], &ns, &table, &endpoint);
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
    let home = auto_state(&north, &ns).await.expect("north's watch status");
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
    procs.push(start_operator(&north.plane, &ns, &table, &endpoint, 2));
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
