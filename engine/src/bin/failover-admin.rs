//! `failover-admin`: the operator's administrative commands.
//!
//! - `create-table`: create the DynamoDB table (idempotent);
//! - `crds`: print the `FailoverGroup` and `Failover` CustomResourceDefinitions as JSON
//!   (`failover-admin crds | kubectl apply -f -`);
//! - `dry-run`: print what this cluster's operator would change in a failover of a
//!   group, object by object and field by field, changing nothing;
//! - `recreate-record`: re-create a group's record that went missing from DynamoDB,
//!   from what both clusters kept of it, once that is safe
//!   ([`failover_engine::recovery`]);
//! - `abort`, `retry`, `resolve`: a person's actions on a failover in flight, through
//!   the record ([`failover_engine::recovery::intervene`]); each prints what it does, or
//!   why the record does not allow it.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use failover_engine::dryrun::{dry_run, render};
use failover_engine::dynamo::DynamoStore;
use failover_engine::dynamo::{create_table, local_client};
use failover_engine::executor::Operator;
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::SystemClock;
use failover_engine::recovery::{explain, intervene, recreate_record};
use failover_engine::spec::{Failover, FailoverGroup, Group};
use failover_model::{Intervention, Mode, PlanKind, Role};
use kube::config::{KubeConfigOptions, Kubeconfig};
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
    /// Re-create a group's record that went missing from DynamoDB (deleted, or the table
    /// re-created). Refused unless both clusters' operators found it missing and both
    /// clusters are stopped (or one is declared lost); starts above every token either
    /// cluster saw, with the active cluster of the newest trace.
    RecreateRecord {
        /// The group's namespace.
        #[arg(long)]
        namespace: String,
        /// The FailoverGroup's name.
        #[arg(long)]
        group: String,
        /// The kubeconfig context of each cluster of the group, as `name=context`
        /// (twice, one per cluster named in the group).
        #[arg(long = "context", value_name = "NAME=CONTEXT", required = true)]
        contexts: Vec<String>,
        /// A cluster gone for good: its trace and state are not required.
        #[arg(long)]
        lost: Option<String>,
        /// Table name.
        #[arg(long, default_value = "failover")]
        table: String,
        /// DynamoDB endpoint (DynamoDB Local); default: the AWS SDK's configuration.
        #[arg(long)]
        endpoint_url: Option<String>,
    },
    /// Roll back a failover in flight: allowed only before its target promoted anything;
    /// the operator whose turn it is carries it out and the source restores what it
    /// stopped.
    Abort(ActionArgs),
    /// A failover flagged needs-operator: clear the flag and start its stage's deadline
    /// again (the operator keeps trying).
    Retry(ActionArgs),
    /// A failover flagged needs-operator in its target's phase: skip the rest of that
    /// phase (complete as `resolved`, or hand over to the source).
    Resolve(ActionArgs),
}

/// The group a person's action is for.
#[derive(clap::Args)]
struct ActionArgs {
    /// The group's namespace.
    #[arg(long)]
    namespace: String,
    /// The FailoverGroup's name.
    #[arg(long)]
    group: String,
    /// Only print what the action would do.
    #[arg(long)]
    dry_run: bool,
    /// Table name.
    #[arg(long, default_value = "failover")]
    table: String,
    /// DynamoDB endpoint (DynamoDB Local); default: the AWS SDK's configuration.
    #[arg(long)]
    endpoint_url: Option<String>,
}

/// A kube client for `context` of the default kubeconfig.
async fn client_for(context: &str) -> Result<kube::Client, String> {
    let kubeconfig = Kubeconfig::read().map_err(|e| format!("cannot read the kubeconfig: {e}"))?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("context {context}: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("context {context}: {e}"))
}

/// A person's `action` on the group's failover in flight: print what it does, then do it
/// (unless `--dry-run`).
async fn act(args: ActionArgs, action: Intervention) -> Result<(), String> {
    use failover_engine::ports::StorePort;
    let store = DynamoStore::new(dynamodb(args.endpoint_url).await, args.table);
    let key = format!("{}/{}", args.namespace, args.group);
    let record = store
        .read(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("group {key} has no record"))?;
    let what = explain(&record, action).map_err(|e| e.to_string())?;
    println!("{what}");
    if args.dry_run {
        return Ok(());
    }
    // The timing matters for no person's write (no lock is taken).
    let timing = failover_engine::spec::DEFAULT_TIMING;
    let after = intervene(&store, &key, &timing, action)
        .await
        .map_err(|e| format!("not done: {e}"))?;
    println!("done: token {}", after.token);
    Ok(())
}

/// A DynamoDB client for `endpoint_url`, or from the AWS SDK's configuration.
async fn dynamodb(endpoint_url: Option<String>) -> aws_sdk_dynamodb::Client {
    match endpoint_url {
        Some(url) => local_client(&url).await,
        None => aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await),
    }
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
            let client = dynamodb(endpoint_url).await;
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
        Command::RecreateRecord {
            namespace,
            group,
            contexts,
            lost,
            table,
            endpoint_url,
        } => {
            let mut named = Vec::new();
            for c in &contexts {
                let (name, context) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--context {c:?} is not NAME=CONTEXT"))?;
                named.push((name.to_string(), client_for(context).await?));
            }
            let store = DynamoStore::new(dynamodb(endpoint_url).await, table);
            // Each cluster's own copy of the group, in the group's slot order.
            let mut ops = Vec::new();
            for (name, client) in &named {
                let api: Api<FailoverGroup> = Api::namespaced(client.clone(), &namespace);
                let fg = api.get(&group).await.map_err(|e| {
                    format!("cannot read FailoverGroup {namespace}/{group} in {name}: {e}")
                })?;
                let g = Group::parse(&namespace, &group, &fg.spec, name)
                    .map_err(|e| format!("FailoverGroup {namespace}/{group} in {name}: {e}"))?;
                let cluster = KubeCluster::new(client.clone());
                ops.push(Operator::new(cluster, store.clone(), SystemClock, g));
            }
            ops.sort_by_key(|op| op.group().me);
            let [a, b] = ops.as_slice() else {
                return Err("give --context for each of the group's two clusters".into());
            };
            if a.group().me == b.group().me {
                return Err("both --context values name the same cluster".into());
            }
            let lost = match lost {
                Some(name) => Some(
                    a.group()
                        .slot(&name)
                        .ok_or_else(|| format!("--lost {name:?} is not a cluster of the group"))?,
                ),
                None => None,
            };
            let record = recreate_record([a, b], &store, lost)
                .await
                .map_err(|e| format!("not re-created: {e}"))?;
            println!(
                "re-created the record of {namespace}/{group}: active {}, token {}; each \
                 operator claims its slot again",
                a.group().name_of(record.active),
                record.token
            );
        }
        Command::Abort(args) => act(args, Intervention::Abort).await?,
        Command::Retry(args) => act(args, Intervention::Retry).await?,
        Command::Resolve(args) => act(args, Intervention::Resolve).await?,
    }
    Ok(())
}
