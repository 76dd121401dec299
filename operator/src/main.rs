//! `failover-operator`: see the crate documentation and `--help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use failover_operator::config::{Config, LogFormat};
use failover_operator::controllers::{self, Shared};
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
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
            return ExitCode::from(2);
        }
    };
    let dynamo = match &config.dynamodb_endpoint {
        Some(url) => failover_engine::dynamo::local_client(url).await,
        None => {
            let mut loader = aws_config::from_env();
            if let Some(region) = &config.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            aws_sdk_dynamodb::Client::new(&loader.load().await)
        }
    };
    let namespace = match config.namespaces.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            error!("watching several namespaces is not supported yet: give one, or none for all");
            return ExitCode::from(2);
        }
    };
    info!(cluster = %config.cluster_name, table = %config.table, ?namespace, "failover-operator starting");
    let probe_addr = config.probe_addr;
    let shared = Arc::new(Shared {
        client,
        dynamo,
        config,
        loops: tokio::sync::Mutex::new(Default::default()),
    });
    let probes = tokio::spawn(failover_operator::http::serve_probes(
        probe_addr,
        shared.clone(),
    ));
    controllers::run(shared, namespace, shutdown_signal()).await;
    probes.abort();
    info!("failover-operator stopped");
    ExitCode::SUCCESS
}

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
async fn shutdown_signal() {
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
