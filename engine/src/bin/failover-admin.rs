//! `failover-admin`: the operator's administrative commands.
//!
//! - `create-table`: create the DynamoDB table (idempotent);
//! - `crds`: print the `FailoverGroup` and `Failover` CustomResourceDefinitions as JSON
//!   (`failover-admin crds | kubectl apply -f -`);
//! - `dry-run`: print what this cluster's operator would change in a failover of a
//!   group, object by object and field by field, changing nothing.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use failover_engine::dryrun::{dry_run, render};
use failover_engine::dynamo::{create_table, local_client};
use failover_engine::k8s::KubeCluster;
use failover_engine::spec::{Failover, FailoverGroup, Group};
use failover_model::{Mode, PlanKind, Role};
use kube::{Api, CustomResourceExt};

#[derive(Parser)]
#[command(
    version,
    about = "Administrative commands of the two-cluster failover operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the DynamoDB table that holds every group's record (idempotent).
    CreateTable {
        /// Table name.
        #[arg(long, default_value = "failover")]
        table: String,
        /// DynamoDB endpoint (DynamoDB Local); default: the AWS SDK's configuration.
        #[arg(long)]
        endpoint_url: Option<String>,
    },
    /// Print the CustomResourceDefinitions as JSON.
    Crds,
    /// Print the plan this cluster would run for a failover of a group, changing nothing.
    DryRun {
        /// The group's namespace.
        #[arg(long)]
        namespace: String,
        /// The FailoverGroup's name.
        #[arg(long)]
        group: String,
        /// This cluster's name, as listed in the group.
        #[arg(long)]
        cluster_name: String,
        /// The cluster that would become active.
        #[arg(long)]
        to: String,
        /// Failover mode.
        #[arg(long, value_enum, default_value = "consistency")]
        mode: CliMode,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliMode {
    Consistency,
    Uptime,
    Forced,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::CreateTable {
            table,
            endpoint_url,
        } => {
            let client = match endpoint_url {
                Some(url) => local_client(&url).await,
                None => aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
            };
            create_table(&client, &table)
                .await
                .map_err(|e| e.to_string())?;
            println!("table {table} ready");
        }
        Command::Crds => {
            for crd in [FailoverGroup::crd(), Failover::crd()] {
                let json = serde_json::to_string_pretty(&crd).map_err(|e| e.to_string())?;
                println!("{json}");
            }
        }
        Command::DryRun {
            namespace,
            group,
            cluster_name,
            to,
            mode,
        } => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
            let api: Api<FailoverGroup> = Api::namespaced(client.clone(), &namespace);
            let fg = api
                .get(&group)
                .await
                .map_err(|e| format!("cannot read FailoverGroup {namespace}/{group}: {e}"))?;
            let g = Group::parse(&namespace, &group, &fg.spec, &cluster_name)
                .map_err(|e| format!("FailoverGroup {namespace}/{group} is invalid: {e}"))?;
            let target = g
                .slot(&to)
                .ok_or_else(|| format!("--to {to:?} is not one of {:?}", g.clusters))?;
            let role = if target == g.me {
                Role::Target
            } else {
                Role::Source
            };
            let kind = match mode {
                CliMode::Consistency => PlanKind::Planned(Mode::Consistency),
                CliMode::Uptime => PlanKind::Planned(Mode::Uptime),
                CliMode::Forced => PlanKind::Forced,
            };
            let cluster = KubeCluster::new(client);
            let steps = dry_run(&cluster, &g, kind, role)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "# {kind} failover of {} to {to}: {cluster_name} is the {role:?}",
                g.key
            );
            print!("{}", render(&steps));
        }
    }
    Ok(())
}
