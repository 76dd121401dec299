//! The operator process itself, as a library function: what the `failover-operator`
//! binary runs, callable from another crate's test binary (which re-executes itself to
//! run the real operator in a child process; see `failover_integration::operators`).
//!
//! Exit status: 0 after a shutdown on SIGTERM or SIGINT; 1 when a leading replica lost
//! its leadership (its Pod restarts as a standby); 2 when it cannot start (no
//! Kubernetes client, no listener, no Lease). Bad arguments exit as clap does.

use std::ffi::OsString;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use failover_engine::k8s::KubeCluster;
use failover_engine::k8s::limit::{Limits, limited};
use futures::FutureExt;
use futures::future::Shared as Shared_;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info, warn};

use crate::config::{Config, LogFormat};
use crate::controllers::{self, Shared};
use crate::http::{bind, serve};
use crate::metrics::Metrics;

/// Run the operator with the command line `args` (the first is the program name, as
/// in [`std::env::args_os`]) until SIGTERM or SIGINT, or until it lost leadership; its
/// exit status. On bad arguments it prints clap's message and exits the process, as
/// clap does.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ExitCode::from(run(args))
}

/// [`main_with`], then exit the process with its status (0, 1 or 2). For a test binary
/// that re-executes itself to run the operator: `exit_with(args)` never returns to the
/// test harness.
pub fn exit_with<I, T>(args: I) -> !
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    std::process::exit(i32::from(run(args)))
}

/// Parse the arguments, start a multi-thread runtime and run the operator on it; the
/// numeric exit status.
fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let config = Config::parse_from(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("Failed building the Runtime")
        .block_on(operate(config))
}

/// Initialise tracing, build the clients, serve probes and metrics, and lead.
async fn operate(config: Config) -> u8 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let client = match kube_client(&config).await {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot build the Kubernetes client");
            return 2;
        }
    };
    let limits = Limits {
        qps: config.kube_qps,
        burst: config.kube_burst,
    };
    let (client, limiter) = limited(client, limits);
    let cluster = KubeCluster::new(client.clone())
        .with_caches()
        .with_write_parallelism(limits.parallelism());
    let dynamo = failover_engine::dynamo::client(
        config.dynamodb_endpoint.as_deref(),
        config.region.as_deref(),
    )
    .await;
    let namespaces = config.namespaces.clone();
    info!(cluster = %config.cluster_name, table = %config.table, ?namespaces, "failover-operator starting");
    let (probe_addr, metrics_addr) = (config.probe_addr, config.metrics_addr);
    let shared = Arc::new(Shared {
        client,
        cluster,
        dynamo,
        config,
        loops: tokio::sync::Mutex::new(Default::default()),
        metrics: Arc::new(Metrics::new(Some(limiter))),
        leading: AtomicBool::new(false),
        synced: std::sync::atomic::AtomicUsize::new(0),
        missing: std::sync::Mutex::new(None),
    });
    let (probe_listener, metrics_listener) = match (
        bind(probe_addr).await,
        bind(metrics_addr).await,
    ) {
        (Ok(p), Ok(m)) => (p, m),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, %probe_addr, %metrics_addr, "cannot listen for probes and metrics");
            return 2;
        }
    };
    let local =
        |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(
        probes = %local(&probe_listener),
        metrics = %local(&metrics_listener),
        "listening"
    );
    let probes = tokio::spawn(serve(probe_listener, shared.clone()));
    let metrics = tokio::spawn(serve(metrics_listener, shared.clone()));
    let shutdown = shutdown_signal().shared();
    let code = if permitted(&shared, shutdown.clone()).await {
        lead(shared, namespaces, shutdown).await
    } else {
        0
    };
    probes.abort();
    metrics.abort();
    info!("failover-operator stopped");
    code
}

/// Waits until the cluster serves the operator's CRDs and the process has every
/// permission it needs before any group ([`crate::access::process_needs`]), checking
/// every 30 s and saying what is missing in the log and on `/readyz`; false on
/// shutdown first.
async fn permitted(
    shared: &Shared,
    shutdown: Shared_<Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> bool {
    let needs = crate::access::process_needs(&shared.config);
    loop {
        let problem = match crate::access::crds_served(&shared.client).await {
            Err(problem) => Some(problem),
            Ok(()) => match crate::access::missing(&shared.client, &needs).await {
                Ok(lacking) if lacking.is_empty() => None,
                Ok(lacking) => Some(crate::access::message(&lacking, "the controllers")),
                Err(e) => Some(format!(
                    "cannot check the operator's permissions (SelfSubjectAccessReview): {e}"
                )),
            },
        };
        let Some(problem) = problem else {
            *shared.missing.lock().expect("missing") = None;
            return true;
        };
        error!("{problem}");
        *shared.missing.lock().expect("missing") = Some(problem);
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            () = shutdown.clone() => return false,
        }
    }
}

/// Become the leader (unless leader election is off), run the controllers until
/// shutdown or until leadership is lost, then let the Lease go. A replica that lost
/// leadership exits with status 1 after its loops ended their turns: its Pod restarts
/// as a standby.
async fn lead(
    shared: Arc<Shared>,
    namespaces: Vec<String>,
    shutdown: Shared_<Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> u8 {
    let config = &shared.config;
    if !config.leader_election {
        shared.leading.store(true, Ordering::Relaxed);
        shared.metrics.leader.set(1);
        controllers::run_namespaces(shared.clone(), &namespaces, shutdown).await;
        return 0;
    }
    let identity = config.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
        format!("{host}-{}", std::process::id())
    });
    let manager = LeaseManagerBuilder::new(shared.client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&identity)
        .with_duration(config.leader_lease_seconds)
        .with_grace(crate::auto::LEADER_GRACE.as_secs())
        .build()
        .await;
    let manager = match manager {
        Ok(m) => m,
        Err(e) => {
            error!(error = %e, lease = %config.lease_name, "cannot use the leader election Lease");
            return 2;
        }
    };
    let (mut leading, task) = manager.watch().await;
    info!(%identity, lease = %config.lease_name, "waiting to lead");
    let became = tokio::select! {
        r = leading.wait_for(|l| *l) => r.is_ok(),
        () = shutdown.clone() => false,
    };
    if !became {
        drop(leading);
        let _ = task.await;
        return 0;
    }
    info!(%identity, "leading: starting the controllers");
    shared.leading.store(true, Ordering::Relaxed);
    shared.metrics.leader.set(1);
    let lost = Arc::new(AtomicBool::new(false));
    let stop = {
        let lost = lost.clone();
        let mut watch = leading.clone();
        async move {
            tokio::select! {
                _ = watch.wait_for(|l| !*l) => {
                    error!("leadership lost: stopping every group loop after its turn");
                    lost.store(true, Ordering::Relaxed);
                }
                () = shutdown => {}
            }
        }
    };
    controllers::run_namespaces(shared.clone(), &namespaces, stop).await;
    shared.leading.store(false, Ordering::Relaxed);
    shared.metrics.leader.set(0);
    drop(leading);
    match task.await {
        Ok(Ok(manager)) => {
            if let Err(e) = manager.release().await {
                warn!(error = %e, "cannot release the Lease; the next leader waits for it to expire");
            }
        }
        Ok(Err(e)) => warn!(error = %e, "the Lease manager failed"),
        Err(e) => warn!(error = %e, "the Lease manager task failed"),
    }
    if lost.load(Ordering::Relaxed) { 1 } else { 0 }
}

/// The Kubernetes client: from `--kubeconfig` if given, else inferred (in-cluster
/// configuration or the default kubeconfig).
async fn kube_client(config: &Config) -> Result<kube::Client, String> {
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(kube_config).map_err(|e| e.to_string())
}

/// SIGTERM (a Pod's shutdown) or SIGINT.
fn shutdown_signal() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(signal())
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
