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

    /// The DynamoDB table holding every group's record (`kubectl failover create-table`).
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

    /// Elect a leader among the replicas of this cluster's operator through a Lease:
    /// only the leader runs the controllers and group loops (`false`: this process
    /// leads alone, for a single replica).
    #[arg(long, env = "FAILOVER_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// The Lease the replicas compete for.
    #[arg(long, env = "FAILOVER_LEASE_NAME", default_value = "failover-operator")]
    pub lease_name: String,

    /// The namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// This replica's name in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long a leader's Lease lasts without renewal, in seconds. A replica that
    /// cannot renew it stops its loops and exits; the protocol's instance claim in the
    /// record keeps a paused old leader from changing anything after the new one
    /// started (README, "Timing"). A crashed leader is replaced within this plus 2 s,
    /// which must be below each group's `leaseSeconds - fenceMarginSeconds -
    /// driverDemotionSeconds - heartbeatSeconds` (checked: a group where it is not reports the problem and
    /// its auto-failover stays disarmed).
    #[arg(long, env = "FAILOVER_LEADER_LEASE_SECONDS", default_value_t = 4)]
    pub leader_lease_seconds: u64,

    /// Kubernetes API requests per second this process keeps to on average (its
    /// controllers, watches and every group together; 0: unlimited). A 429 from the API
    /// server's priority and fairness is waited out as its `Retry-After` says.
    #[arg(long, env = "FAILOVER_KUBE_QPS", default_value_t = 50.0)]
    pub kube_qps: f64,

    /// Kubernetes API requests sent at once after a quiet spell; also how many objects
    /// of one step are written at once (at most 32, and fewer if a group's
    /// `spec.parallelism` asks for fewer).
    #[arg(long, env = "FAILOVER_KUBE_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub kube_burst: u32,

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
