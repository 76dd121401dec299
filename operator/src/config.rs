//! The operator's configuration: flags, each also read from an environment variable
//! (the chart sets those).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// `failover-operator`: the two-cluster failover operator for one cluster.
#[derive(Clone, Debug, Parser)]
#[command(
    version,
    about = "The two-cluster failover operator: runs in each cluster, watches FailoverGroup \
             and Failover objects, keeps each group's lease in DynamoDB and carries out \
             failovers"
)]
pub struct Config {
    /// This cluster's name, as the groups' `spec.clusters` list it.
    #[arg(long, env = "FAILOVER_CLUSTER_NAME")]
    pub cluster_name: String,

    /// This cluster's identity, if not the UID of its `kube-system` namespace (read
    /// from the API server by default). The record binds each cluster slot to it.
    #[arg(long, env = "FAILOVER_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// The DynamoDB table holding every group's record (`failover-admin create-table`).
    #[arg(long, env = "FAILOVER_TABLE", default_value = "failover")]
    pub table: String,

    /// The AWS region (default: the AWS SDK's configuration).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// A DynamoDB endpoint to use instead of AWS's (DynamoDB Local); static local
    /// credentials are used with it.
    #[arg(long, env = "FAILOVER_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// Namespaces to watch (repeat the flag, or comma-separate); all when none is given.
    #[arg(long = "namespace", env = "FAILOVER_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Address of the metrics endpoint (`/metrics`).
    #[arg(long, env = "FAILOVER_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of the probes (`/livez`, `/readyz`).
    #[arg(long, env = "FAILOVER_PROBE_ADDR", default_value = "0.0.0.0:8081")]
    pub probe_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "FAILOVER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// A kubeconfig to use instead of the in-cluster configuration (or `KUBECONFIG`).
    #[arg(long, env = "FAILOVER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// How many ended failovers a group's status lists.
    #[arg(long, env = "FAILOVER_STATUS_HISTORY", default_value_t = 10)]
    pub status_history: usize,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}
