//! `kubectl-failover`: the kubectl plugin of the two-cluster failover operator.
//!
//! - `status [GROUP]`: one table per group joining both clusters' `FailoverGroup` status
//!   and the record in DynamoDB; works with one cluster (or the table) unreachable and
//!   says so;
//! - `request GROUP --to CLUSTER [--mode] [--wait]`: creates the `Failover` object and,
//!   with `--wait`, follows it to its end (a live view on a terminal, timestamped lines
//!   otherwise);
//! - `abort`, `retry`, `resolve`: a person's actions on the failover in flight, through
//!   the record; each prints what it will do and asks first unless `--yes`;
//! - `history GROUP`: ended failovers from the record (who asked, when, how long each
//!   stage took); `--timeline FILE` draws one of them ([`picture`]);
//! - `dry-run GROUP --to CLUSTER`: what each cluster would change, object by object and
//!   field by field, from the Kubernetes adapter's own patch planning;
//! - `crds`, `create-table`, `recreate-record`: installing and repairing.
//!
//! Exit codes ([`Exit`]): 0 done or completed, 1 aborted or refused, 2 needs an
//! operator, 3 a usage or connection error.
//!
//! The crate is a library so that its rendering is unit tested without a cluster
//! ([`render`], [`view`]); the binary is `src/main.rs`.

pub mod commands;
pub mod context;
pub mod live;
pub mod picture;
pub mod render;
pub mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// How a command ended, as the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; a failover completed.
    Ok,
    /// 1: a failover was aborted, refused, withdrawn or invalid; an action was refused
    /// or not confirmed.
    Failed,
    /// 2: the failover needs an operator (a stage passed its deadline after the target
    /// promoted).
    NeedsOperator,
    /// 3: bad usage, or a cluster or DynamoDB could not be reached.
    Usage,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::NeedsOperator => 2,
            Exit::Usage => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A command's error: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A usage or connection error (exit 3).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// A refusal (exit 1).
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Failed,
            message: message.into(),
        }
    }
}

/// `kubectl failover`: fail applications over between two Kubernetes clusters.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-failover",
    bin_name = "kubectl failover",
    version,
    about = "Fail applications over between two Kubernetes clusters: status, requests, \
             a person's actions, history, dry runs",
    after_help = "Clusters: --cluster NAME=CONTEXT twice (NAME as the FailoverGroup's \
                  spec.clusters names it), or a config file (--config, \
                  $KUBECTL_FAILOVER_CONFIG, ~/.config/kubectl-failover/config.yaml):\n\n  \
                  namespace: shop\n  table: failover\n  region: eu-west-1\n  clusters:\n    \
                  - {name: east, context: east-admin}\n    \
                  - {name: west, context: west-admin, kubeconfig: /path/to/west.yaml}\n\n\
                  Exit codes: 0 done or completed, 1 aborted/refused, 2 needs an operator, \
                  3 usage or connection error."
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// A cluster of the groups as NAME=CONTEXT: NAME as the FailoverGroup's
    /// spec.clusters names it, CONTEXT a context of the kubeconfig (NAME alone: the
    /// context named NAME). Give it once per cluster.
    #[arg(long = "cluster", global = true, value_name = "NAME=CONTEXT")]
    pub clusters: Vec<String>,
    /// The config file naming the clusters, namespace and table.
    #[arg(long, global = true, env = "KUBECTL_FAILOVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the groups (default: the config file's, else the first
    /// cluster's context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// The DynamoDB table holding the records (default: the config file's, else
    /// `failover`).
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// A DynamoDB endpoint (DynamoDB Local); default: the AWS SDK's configuration.
    #[arg(long, global = true, env = "FAILOVER_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// The AWS region of the table (default: the AWS SDK's configuration).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Seconds allowed for each call to a cluster or to DynamoDB.
    #[arg(long, global = true, default_value_t = 5)]
    pub request_timeout: u64,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables for people.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

/// The failover mode asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Source down first: never two writers.
    Consistency,
    /// Target up first: no downtime, a window with two writers.
    Uptime,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Each group across both clusters and the record: active cluster, token, lock,
    /// failover in flight with its progress, heartbeats and leases, problems,
    /// auto-failover, last failover.
    Status {
        /// One group (default: every group of the namespace).
        group: Option<String>,
    },
    /// Ask for a failover: create a `Failover` object (in the target cluster if it
    /// answers, else in the other one).
    Request(RequestArgs),
    /// Roll back the failover in flight: allowed only before its target promoted
    /// anything; the source restores what it stopped.
    Abort(ActionArgs),
    /// A failover flagged needs-operator: clear the flag and start its stage's deadline
    /// again (the operators keep trying).
    Retry(ActionArgs),
    /// A failover flagged needs-operator in its target's phase: skip the rest of that
    /// phase (complete as resolved, or hand over to the source).
    Resolve(ActionArgs),
    /// Ended failovers from the record: id, mode, outcome, who asked, start, duration,
    /// stages.
    History {
        /// The group.
        group: String,
        /// Only the newest N.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Draw one ended failover (the newest, or `--failover`) into this file instead:
        /// a self-contained HTML page with hover details, or an SVG if the name ends in
        /// `.svg`. Stages, state bands as journaled, the lock, every trail entry and the
        /// operators' Events about it.
        #[arg(long, value_name = "FILE")]
        timeline: Option<PathBuf>,
        /// With `--timeline`: the failover to draw (its id, or a prefix of it).
        #[arg(long, value_name = "ID", requires = "timeline")]
        failover: Option<String>,
    },
    /// What each cluster would change in a failover of the group, object by object and
    /// field by field, changing nothing.
    DryRun {
        /// The group.
        group: String,
        /// The cluster that would become active.
        #[arg(long)]
        to: String,
        /// The mode.
        #[arg(long, value_enum, default_value = "consistency")]
        mode: ModeArg,
    },
    /// Print the CustomResourceDefinitions as YAML (`kubectl failover crds | kubectl
    /// apply -f -`).
    Crds,
    /// Create the DynamoDB table (idempotent).
    CreateTable,
    /// Re-create a group's record that went missing from DynamoDB. Refused unless both
    /// clusters' operators found it missing and both clusters are stopped (or one is
    /// declared lost).
    RecreateRecord {
        /// The group.
        group: String,
        /// A cluster gone for good: its trace and state are not required.
        #[arg(long)]
        lost: Option<String>,
    },
}

/// What `request` asks for.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The group.
    pub group: String,
    /// The cluster that should become active.
    #[arg(long)]
    pub to: String,
    /// The mode.
    #[arg(long, value_enum, default_value = "consistency")]
    pub mode: ModeArg,
    /// The cluster to create the `Failover` object in (default: the target if it
    /// answers).
    #[arg(long = "in", value_name = "CLUSTER")]
    pub in_cluster: Option<String>,
    /// Follow it until it ends; the exit code says how it ended.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 3; the failover goes on).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

/// A person's action on a group's failover in flight.
#[derive(Args, Debug)]
pub struct ActionArgs {
    /// The group.
    pub group: String,
    /// Do it without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Parse the arguments and run the command: what `kubectl-failover` does.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => Exit::Usage.into(),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBECTL_FAILOVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Exit::Usage.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => exit.into(),
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.exit.into()
        }
    }
}
