//! The operator as real processes against the harness's control planes and DynamoDB
//! Local, for the tests of the crates that run it (the operator's own, the CLI's): two
//! sites (a control plane with the application and its group), operator replicas
//! electing leaders, following a `Failover` through its status.
//!
//! The only thing that differs between those crates is how the operator process is
//! started: a [`Launcher`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failover_engine::dynamo::{create_table, local_client};
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::{ClusterPort, Desired};
use failover_engine::spec::{
    Failover, FailoverGroup, FailoverGroupSpec, FailoverMode, FailoverSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};

use crate::agents::Agents;
use crate::app;
use crate::plane::{ControlPlane, dynamodb_endpoint, unique_name};
use crate::wait_for;

/// The environment variable that carries the operator's arguments (one a line, without
/// the program name) to a test binary re-executed by [`Launcher::Reexec`].
pub const OPERATOR_ARGS_ENV: &str = "FAILOVER_OPERATOR_ARGS";

/// How a test starts the operator as a process.
#[derive(Clone, Debug)]
pub enum Launcher {
    /// A built `failover-operator` binary (`env!("CARGO_BIN_EXE_failover-operator")` in
    /// the operator's own tests).
    Binary(PathBuf),
    /// The running test binary re-executed to run only the test named here, which calls
    /// `failover_operator::run::main_with` (or `exit_with`) with the arguments it finds
    /// in the environment variable [`OPERATOR_ARGS_ENV`] (one argument per line; see
    /// [`operator_args_from_env`]). For test binaries of crates that cannot name the
    /// operator's binary. The named test (marked `#[ignore]`, so an ordinary run skips
    /// it; the re-executed one passes `--include-ignored`), first thing:
    ///
    /// ```ignore
    /// if let Some(args) = operator_args_from_env() {
    ///     failover_operator::run::exit_with(std::iter::once("failover-operator".to_string()).chain(args));
    /// }
    /// ```
    Reexec(String),
}

impl Launcher {
    /// The command that runs the operator with `args` (without the program name).
    pub fn command(&self, args: &[String]) -> Command {
        match self {
            Launcher::Binary(path) => {
                let mut command = Command::new(path);
                command.args(args);
                command
            }
            Launcher::Reexec(test) => {
                let exe = std::env::current_exe().expect("the running test binary");
                let mut command = Command::new(exe);
                command
                    .args([
                        test.as_str(),
                        "--exact",
                        // The entry point is `#[ignore]`d in ordinary runs.
                        "--include-ignored",
                        "--nocapture",
                        "--test-threads",
                        "1",
                    ])
                    .env(OPERATOR_ARGS_ENV, args.join("\n"));
                command
            }
        }
    }
}

/// In a test binary re-executed by [`Launcher::Reexec`]: the operator's arguments
/// (without the program name); `None` in an ordinary test run.
pub fn operator_args_from_env() -> Option<Vec<String>> {
    let args = std::env::var(OPERATOR_ARGS_ENV).ok()?;
    Some(args.split('\n').map(str::to_string).collect())
}

/// The two clusters, east then west.
pub const CLUSTERS: [&str; 2] = ["east", "west"];
/// The name of the `FailoverGroup` each site holds.
pub const GROUP: &str = "shop";

/// Bound on one failover through the operators on these machines.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(120);

/// The group spec of the application over [`CLUSTERS`].
pub fn spec() -> FailoverGroupSpec {
    app::group_spec(CLUSTERS)
}

/// Install (or update) the operator's own CRDs by server-side apply, and wait until
/// they are served.
pub async fn install_crds(plane: &ControlPlane) {
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
        crate::plane::established(&plane.client, &name)
            .await
            .expect("CRD established");
    }
}

/// One operator process; killed when dropped. Its log goes to a file named in failures.
pub struct Process {
    /// The process.
    pub child: Child,
    /// Its log (stdout and stderr, JSON lines).
    pub log: PathBuf,
    /// The port it serves metrics on.
    pub metrics_port: u16,
    /// The port it serves probes on.
    pub probe_port: u16,
}

impl Process {
    /// Its metrics, if it answers.
    pub async fn metrics(&self) -> Option<String> {
        http_get(self.metrics_port, "/metrics").await
    }

    /// It leads (its `failover_leader` gauge is 1).
    pub async fn leads(&self) -> bool {
        self.metrics()
            .await
            .is_some_and(|m| m.lines().any(|l| l == "failover_leader 1"))
    }

    /// Send it SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

/// A plain HTTP/1.1 GET on localhost: the body, if the answer is 200.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
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
pub fn listening(log: &std::path::Path) -> Option<(u16, u16)> {
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
pub fn start_operator(
    launcher: &Launcher,
    plane: &ControlPlane,
    ns: &str,
    table: &str,
    endpoint: &str,
    replica: usize,
) -> Process {
    start_operator_with(launcher, plane, &[ns], table, endpoint, replica, &[])
}

/// Replica `replica` of `plane`'s operator watching `namespaces` (its Lease in the
/// first), with `extra` arguments after the usual ones.
pub fn start_operator_with(
    launcher: &Launcher,
    plane: &ControlPlane,
    namespaces: &[&str],
    table: &str,
    endpoint: &str,
    replica: usize,
    extra: &[String],
) -> Process {
    let ns = namespaces[0];
    let watched = namespaces.join(",");
    let log = std::env::temp_dir().join(format!("{ns}-{}-{replica}-operator.log", plane.name));
    let file = std::fs::File::create(&log).expect("log file");
    let kubeconfig = plane.kubeconfig.to_string_lossy();
    let identity = format!("{}-{replica}-{}", plane.name, unique_name("p"));
    let args: Vec<String> = [
        "--cluster-name",
        &plane.name,
        "--table",
        table,
        "--dynamodb-endpoint",
        endpoint,
        "--namespace",
        &watched,
        "--kubeconfig",
        &kubeconfig,
        "--probe-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--lease-namespace",
        ns,
        // A new identity per process, as a replacement Pod has: a restarted process
        // does not find the Lease its predecessor held as its own.
        "--identity",
        &identity,
        "--leader-lease-seconds",
        "4",
    ]
    .map(str::to_string)
    .into();
    let args: Vec<String> = args.into_iter().chain(extra.iter().cloned()).collect();
    let child = launcher
        .command(&args)
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
pub fn start_operators(
    launcher: &Launcher,
    sites: [&Site; 2],
    ns: &str,
    table: &str,
    endpoint: &str,
) -> Vec<Process> {
    sites
        .iter()
        .flat_map(|s| {
            (0..2).map(move |r| start_operator(launcher, &s.plane, ns, table, endpoint, r))
        })
        .collect()
}

/// The replica of `cluster` (0 east, 1 west) that leads, once one does.
pub async fn leader(procs: &[Process], cluster: usize) -> usize {
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

/// One cluster of a test: its control plane with the operator's CRDs, the application
/// deployed in the test's namespace, its `FailoverGroup`, and the agents that play
/// kubelet and the csi-addons driver.
pub struct Site {
    /// The control plane.
    pub plane: ControlPlane,
    /// The engine's adapter to it.
    pub cluster: KubeCluster,
    /// The application's objects, the group's members.
    pub objects: Vec<failover_engine::ports::ObjectRef>,
    /// The agents, stopped when the site is dropped.
    pub _agents: Agents,
}

/// The site of cluster `name` in namespace `ns`, the application started (`serving`)
/// or stopped, its group with [`spec`].
pub async fn site(name: &str, ns: &str, serving: bool) -> Site {
    site_with(name, ns, serving, spec()).await
}

/// [`site`] with the group spec `spec`.
pub async fn site_with(name: &str, ns: &str, serving: bool, spec: FailoverGroupSpec) -> Site {
    let plane = ControlPlane::shared(name).await.expect("control plane");
    install_crds(&plane).await;
    plane.create_namespace(ns).await.expect("namespace");
    let agents = Agents::start(
        &plane.client,
        ns,
        Duration::from_millis(200),
        Duration::from_millis(500),
    );
    let (objects, cluster) = app::deploy(&plane.client, ns, 3, serving)
        .await
        .expect("the application deployed and settled");
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
pub async fn assert_serving(site: &Site, serving: bool) {
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
pub async fn wait_active(site: &Site, ns: &str, active: &str, logs: &[PathBuf]) {
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
pub async fn fail_over(
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
pub async fn request(site: &Site, ns: &str, to: &str, mode: FailoverMode) -> String {
    create_failover(&site.plane.client, ns, GROUP, to, mode).await
}

/// Create a `Failover` of `group` to `to` with `client` in namespace `ns`; its name.
pub async fn create_failover(
    client: &kube::Client,
    ns: &str,
    group: &str,
    to: &str,
    mode: FailoverMode,
) -> String {
    let api: Api<Failover> = Api::namespaced(client.clone(), ns);
    let name = unique_name("to");
    let failover = Failover::new(
        &name,
        FailoverSpec {
            group: group.into(),
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
pub async fn follow(
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
pub fn stage_index(stage: &str) -> usize {
    failover_model::Stage::ALL
        .iter()
        .position(|s| s.to_string() == stage)
        .unwrap_or_else(|| panic!("unknown stage {stage}"))
}

/// Two sites in a namespace of their own (the application serving in east, stopped in
/// west), a fresh table, two operator replicas per cluster, both clusters' group status
/// naming east active.
pub struct Lab {
    /// The test's namespace (in both clusters).
    pub ns: String,
    /// East, then west.
    pub sites: [Site; 2],
    /// DynamoDB Local's endpoint.
    pub endpoint: String,
    /// The test's table.
    pub table: String,
    /// The engine's store on that table.
    pub store: failover_engine::dynamo::DynamoStore,
    /// The operator replicas: east 0 and 1, west 0 and 1.
    pub procs: Vec<Process>,
    /// Their logs, in the same order.
    pub logs: Vec<PathBuf>,
}

/// A [`Lab`] in a new namespace named after `prefix`, its operators started by
/// `launcher`.
pub async fn lab(launcher: &Launcher, prefix: &str) -> Lab {
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
    let procs = start_operators(launcher, [&sites[0], &sites[1]], &ns, &table, &endpoint);
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
