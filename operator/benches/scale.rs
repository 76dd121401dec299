//! The scale benchmarks: the operator as real processes against two local control
//! planes and DynamoDB Local, at hundreds and thousands of objects. Figures measured in
//! one run and printed; nothing is asserted (README, "Scale", reports them).
//!
//! ```text
//! cargo bench -p failover-operator --bench scale -- failover [--workloads 100,500,1000] [--volumes 20] [-- operator flags]
//! cargo bench -p failover-operator --bench scale -- rest [--groups 10] [--objects 100] [--seconds 60]
//! ```
//!
//! Both run on control planes without the Deployment and ReplicaSet controllers
//! (`scale-east`, `scale-west`): the harness's instant agents keep every Deployment's
//! status rolled out and every VolumeReplication's status at its spec the moment they
//! change, so the clusters take no time and what is measured is the operator.
//!
//! - `failover`: for each size, a group of that many Deployments plus the volumes, east
//!   serving; a consistency failover east → west through a `Failover` object. Printed:
//!   the wall time (the record's trail, from the request to the end), the operators'
//!   Kubernetes requests by verb (their own client counts, `/metrics`), the critical
//!   path (the store writes the failover made in sequence, each at the median store
//!   round trip measured here, plus one Kubernetes write round trip for every step that
//!   writes objects) and the ratio, and each operator's resident memory afterwards.
//! - `rest`: `--groups` groups of `--objects` objects each (a tenth of them volumes) in
//!   as many namespaces, both operators watching all of them; after every group is
//!   settled, the requests each operator sends per second at rest over `--seconds`, by
//!   verb, and each operator's resident memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use failover_engine::dynamo::{DynamoStore, create_table, local_client};
use failover_engine::ports::StorePort;
use failover_engine::spec::{
    Failover, FailoverGroup, FailoverGroupSpec, FailoverMode, FailoverSpec,
};
use failover_integration::agents::Agents;
use failover_integration::operators::{Launcher, Process, install_crds, start_operator_with};
use failover_integration::plane::{ControlPlane, dynamodb_endpoint, unique_name};
use failover_model::{Outcome, Plan, Resource, StepKind, Variant};
use futures::{StreamExt, stream};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;

const GROUP: &str = "shop";
const PLANES: [&str; 2] = ["scale-east", "scale-west"];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (ours, operator_flags) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let what = ours.first().cloned().unwrap_or_default();
    let flag = |name: &str, default: &str| -> String {
        ours.iter()
            .position(|a| a == name)
            .and_then(|i| ours.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match what.as_str() {
        "failover" => {
            let sizes: Vec<usize> = flag("--workloads", "100,500,1000")
                .split(',')
                .map(|s| s.trim().parse().expect("--workloads: numbers"))
                .collect();
            let volumes: usize = flag("--volumes", "20").parse().expect("--volumes");
            runtime.block_on(failovers(&sizes, volumes, &operator_flags));
        }
        "rest" => {
            let groups: usize = flag("--groups", "10").parse().expect("--groups");
            let objects: usize = flag("--objects", "100").parse().expect("--objects");
            let seconds: u64 = flag("--seconds", "60").parse().expect("--seconds");
            runtime.block_on(rest(groups, objects, seconds, &operator_flags));
        }
        _ => {
            eprintln!(
                "usage: cargo bench -p failover-operator --bench scale -- failover|rest [options] [-- operator flags]"
            );
            std::process::exit(2);
        }
    }
}

/// The two planes, DynamoDB Local and a fresh table.
struct Bench {
    planes: [ControlPlane; 2],
    endpoint: String,
    table: String,
    store: DynamoStore,
    dynamo: aws_sdk_dynamodb::Client,
}

async fn bench() -> Bench {
    let east = ControlPlane::without_deployment_controller(PLANES[0])
        .await
        .expect("control plane scale-east");
    let west = ControlPlane::without_deployment_controller(PLANES[1])
        .await
        .expect("control plane scale-west");
    for plane in [&east, &west] {
        install_crds(plane).await;
    }
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let table = unique_name("scale");
    let dynamo = local_client(&endpoint).await;
    create_table(&dynamo, &table).await.expect("table");
    let store = DynamoStore::new(dynamo.clone(), table.clone());
    Bench {
        planes: [east, west],
        endpoint,
        table,
        store,
        dynamo,
    }
}

async fn resource(plane: &ControlPlane, kind: failover_engine::ports::Kind) -> ApiResource {
    failover_integration::app::resource(&plane.client, kind)
        .await
        .expect("resource")
}

/// Create `workloads` Deployments and `volumes` VolumeReplications labelled
/// `app=shop` in `ns`: running and primary where `serving`, else stopped (the count
/// remembered, as a stop leaves it) and secondary.
async fn application(
    plane: &ControlPlane,
    ns: &str,
    workloads: usize,
    volumes: usize,
    serving: bool,
) {
    let deployments = resource(plane, failover_engine::ports::Kind::Deployment).await;
    let replications = resource(plane, failover_engine::ports::Kind::VolumeReplication).await;
    let deployment = |i: usize| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": format!("web-{i:04}"), "labels": {"app": "shop"},
                "annotations": if serving { json!({}) } else { json!({"failover.rs/replicas": "1"}) },
            },
            "spec": {
                "replicas": if serving { 1 } else { 0 },
                "selector": {"matchLabels": {"app": "shop", "i": i.to_string()}},
                "template": {
                    "metadata": {"labels": {"app": "shop", "i": i.to_string()}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "web", "image": "registry.invalid/web:1"}],
                    },
                },
            },
        })
    };
    let volume = |i: usize| {
        json!({
            "apiVersion": "replication.storage.openshift.io/v1alpha1", "kind": "VolumeReplication",
            "metadata": {"name": format!("data-{i:02}"), "labels": {"app": "shop"}},
            "spec": {
                "volumeReplicationClass": "rbd",
                "replicationState": if serving { "primary" } else { "secondary" },
                "dataSource": {"kind": "PersistentVolumeClaim", "name": format!("data-{i:02}")},
            },
        })
    };
    let objects = (0..workloads)
        .map(|i| (deployments.clone(), deployment(i)))
        .chain((0..volumes).map(|i| (replications.clone(), volume(i))));
    stream::iter(objects)
        .map(|(resource, body)| {
            let api: Api<DynamicObject> = Api::namespaced_with(plane.client.clone(), ns, &resource);
            async move {
                let object: DynamicObject = serde_json::from_value(body).expect("object");
                api.create(&PostParams::default(), &object)
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// Delete the application's objects in `ns` (the planes run no namespace controller).
async fn clean(plane: &ControlPlane, ns: &str) {
    for kind in [
        failover_engine::ports::Kind::Deployment,
        failover_engine::ports::Kind::VolumeReplication,
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(plane.client.clone(), ns, &resource(plane, kind).await);
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
}

async fn group(plane: &ControlPlane, ns: &str) {
    let spec: FailoverGroupSpec = serde_json::from_value(json!({
        "clusters": PLANES,
        "members": {"selector": {"matchLabels": {"app": "shop"}}},
        "timing": {"heartbeatSeconds": 1, "retrySeconds": 1},
    }))
    .expect("spec");
    let api: Api<FailoverGroup> = Api::namespaced(plane.client.clone(), ns);
    api.create(&PostParams::default(), &FailoverGroup::new(GROUP, spec))
        .await
        .expect("create the FailoverGroup");
}

/// Both operators claimed `ns`'s group and heartbeat.
async fn settled(store: &DynamoStore, ns: &str) {
    let key = format!("{ns}/{GROUP}");
    let started = Instant::now();
    loop {
        if let Ok(Some(record)) = store.read(&key).await
            && record.instance.iter().all(Option::is_some)
            && record.heartbeat.iter().all(Option::is_some)
            && record.spec[0].is_some()
            && record.specs_agree()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "group {key} never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn operators(bench: &Bench, namespaces: &[&str], flags: &[String]) -> Vec<Process> {
    let launcher = Launcher::Binary(env!("CARGO_BIN_EXE_failover-operator").into());
    bench
        .planes
        .iter()
        .map(|plane| {
            start_operator_with(
                &launcher,
                plane,
                namespaces,
                &bench.table,
                &bench.endpoint,
                0,
                flags,
            )
        })
        .collect()
}

/// An operator's Kubernetes requests by verb (`failover_kube_requests_total`).
async fn requests(process: &Process) -> BTreeMap<String, u64> {
    let text = process.metrics().await.expect("metrics");
    text.lines()
        .filter_map(|l| l.strip_prefix("failover_kube_requests_total{verb=\""))
        .filter_map(|l| {
            let (verb, n) = l.split_once("\"} ")?;
            Some((verb.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn since(now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(v, n)| (v.clone(), n - then.get(v).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn show(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(v, n)| format!("{v} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `/proc/<pid>/status` field of a process given in kB, in MiB.
fn status_mib(process: &Process, field: &str) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", process.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resident memory of a process, in MiB.
fn rss_mib(process: &Process) -> f64 {
    status_mib(process, "VmRSS:")
}

/// The most resident memory a process had, in MiB.
fn peak_mib(process: &Process) -> f64 {
    status_mib(process, "VmHWM:")
}

/// The operator's writes at once: its `--kube-burst` (default 100), as
/// `Limits::parallelism` sizes them.
fn parallelism(flags: &[String]) -> usize {
    let burst = flags
        .iter()
        .position(|f| f == "--kube-burst")
        .and_then(|i| flags.get(i + 1))
        .map_or(failover_engine::k8s::limit::Limits::default().burst, |b| {
            b.parse().expect("--kube-burst")
        });
    failover_engine::k8s::limit::Limits { qps: 0.0, burst }.parallelism()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median round trip of a conditional store write (a heartbeat-sized update).
async fn store_round_trip(bench: &Bench) -> Duration {
    use aws_sdk_dynamodb::types::AttributeValue;
    let key = unique_name("rtt");
    let mut samples = Vec::new();
    for i in 0..41 {
        let started = Instant::now();
        bench
            .dynamo
            .update_item()
            .table_name(&bench.table)
            .key("pk", AttributeValue::S(key.clone()))
            .key("sk", AttributeValue::S("rtt".into()))
            .update_expression("SET v = :v")
            .condition_expression("attribute_not_exists(v) OR v < :v")
            .expression_attribute_values(":v", AttributeValue::N(i.to_string()))
            .send()
            .await
            .expect("store write");
        samples.push(started.elapsed());
    }
    median(samples)
}

/// One write round over `objects` of `kind` in `ns` in east: a merge patch of an
/// annotation on each, `parallelism` at a time, from a plain client (the least time a
/// step that writes them can take on this API server); the median of `rounds` rounds.
async fn write_round(
    bench: &Bench,
    ns: &str,
    kind: failover_engine::ports::Kind,
    names: &[String],
    parallelism: usize,
    rounds: usize,
) -> Duration {
    let plane = &bench.planes[0];
    let api: Api<DynamicObject> =
        Api::namespaced_with(plane.client.clone(), ns, &resource(plane, kind).await);
    let mut samples = Vec::new();
    for round in 0..rounds {
        let body =
            json!({"metadata": {"annotations": {"bench.failover.rs/round": round.to_string()}}});
        let started = Instant::now();
        stream::iter(names)
            .map(|name| {
                let (api, body) = (api.clone(), body.clone());
                async move {
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                        .expect("patch");
                }
            })
            .buffer_unordered(parallelism)
            .collect::<Vec<()>>()
            .await;
        samples.push(started.elapsed());
    }
    median(samples)
}

async fn failovers(sizes: &[usize], volumes: usize, flags: &[String]) {
    let bench = bench().await;
    println!(
        "scale: consistency failover east -> west, {volumes} volumes, operator flags {:?}",
        flags
    );
    for &workloads in sizes {
        let ns = unique_name("scale");
        let mut agents = Vec::new();
        for (i, plane) in bench.planes.iter().enumerate() {
            plane.create_namespace(&ns).await.expect("namespace");
            agents.push(Agents::instant(&plane.client, &ns));
            application(plane, &ns, workloads, volumes, i == 0).await;
            group(plane, &ns).await;
        }
        let procs = operators(&bench, &[&ns], flags);
        settled(&bench.store, &ns).await;
        // Let the first turns' caches fill and the status settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = [requests(&procs[0]).await, requests(&procs[1]).await];
        let rss_before = [rss_mib(&procs[0]), rss_mib(&procs[1])];
        let api: Api<Failover> = Api::namespaced(bench.planes[0].client.clone(), &ns);
        let spec = FailoverSpec {
            group: GROUP.into(),
            target_cluster: PLANES[1].into(),
            mode: FailoverMode::Consistency,
            dry_run: false,
        };
        api.create(&PostParams::default(), &Failover::new("to-west", spec))
            .await
            .expect("create the Failover");
        let key = format!("{ns}/{GROUP}");
        let started = Instant::now();
        let ended = loop {
            if let Ok(ended) = bench.store.ended(&key).await
                && let Some(e) = ended.into_iter().next()
            {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the failover never ended"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            matches!(ended.outcome, Outcome::Completed(_)),
            "the failover ended {:?}",
            ended.outcome
        );
        let after = [requests(&procs[0]).await, requests(&procs[1]).await];
        let rss = [rss_mib(&procs[0]), rss_mib(&procs[1])];
        let peak = [peak_mib(&procs[0]), peak_mib(&procs[1])];
        let first = ended.trail.first().map_or(ended.ended_at, |m| m.at);
        let wall = Duration::from_millis(ended.ended_at.saturating_sub(first));
        let store_writes = ended.trail.len();
        let plan = Plan::with_hooks(ended.kind.expect("started"), Variant::Correct, ended.hooks);
        let writing_steps = plan
            .steps
            .iter()
            .filter(|s| {
                matches!(s.step.kind(), StepKind::Effect(e)
                    if matches!(e.resource(), Resource::Workloads | Resource::Volumes))
            })
            .count();
        // Measured with the operators stopped, so they do not compete.
        drop(procs);
        let store_rtt = store_round_trip(&bench).await;
        let web: Vec<String> = (0..workloads).map(|i| format!("web-{i:04}")).collect();
        let data: Vec<String> = (0..volumes).map(|i| format!("data-{i:02}")).collect();
        let (kinds, parallelism) = (failover_engine::ports::Kind::Deployment, parallelism(flags));
        let web_round = write_round(&bench, &ns, kinds, &web, parallelism, 5).await;
        let volume_kind = failover_engine::ports::Kind::VolumeReplication;
        let data_round = write_round(&bench, &ns, volume_kind, &data, parallelism, 5).await;
        // The plan's writing steps: workloads stopped and started, volumes demoted and
        // promoted.
        assert_eq!(writing_steps, 4, "the consistency plan's writing steps");
        let one_write = write_round(&bench, &ns, volume_kind, &data[..1], 1, 41).await;
        let critical = store_rtt * store_writes as u32 + one_write * writing_steps as u32;
        let floor = store_rtt * store_writes as u32 + (web_round + data_round) * 2;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let s = |d: Duration| d.as_secs_f64();
        println!("  {workloads:>5} Deployments: wall {:.3} s", s(wall));
        println!(
            "         critical path {:.3} s ({store_writes} store writes x {:.1} ms + \
             {writing_steps} write round trips x {:.1} ms): ratio {:.1}",
            s(critical),
            ms(store_rtt),
            ms(one_write),
            s(wall) / s(critical),
        );
        println!(
            "         with the API server's throughput {:.3} s (the store writes + 2 rounds \
             of {workloads} Deployment patches x {:.0} ms + 2 rounds of {volumes} volume \
             patches x {:.0} ms, {parallelism} at a time, from a plain client): ratio {:.2}",
            s(floor),
            ms(web_round),
            ms(data_round),
            s(wall) / s(floor),
        );
        for (i, name) in ["east", "west"].iter().enumerate() {
            println!(
                "         {name} operator: requests {}; RSS {:.1} MiB before, {:.1} MiB after (peak {:.1} MiB)",
                show(&since(&after[i], &before[i])),
                rss_before[i],
                rss[i],
                peak[i]
            );
        }
        let marks: Vec<String> = ended
            .trail
            .iter()
            .map(|m| format!("{:?}@{}", m.event, m.at.saturating_sub(first)))
            .collect();
        println!("         trail (ms after the request): {}", marks.join(" "));
        drop(agents);
        for plane in &bench.planes {
            clean(plane, &ns).await;
        }
    }
}

async fn rest(groups: usize, objects: usize, seconds: u64, flags: &[String]) {
    let bench = bench().await;
    let namespaces: Vec<String> = (0..groups).map(|_| unique_name("rest")).collect();
    let volumes = (objects / 10).max(1);
    let workloads = objects - volumes;
    let mut agents = Vec::new();
    for (i, plane) in bench.planes.iter().enumerate() {
        for ns in &namespaces {
            plane.create_namespace(ns).await.expect("namespace");
            agents.push(Agents::instant(&plane.client, ns));
            application(plane, ns, workloads, volumes, i == 0).await;
            group(plane, ns).await;
        }
    }
    let names: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let procs = operators(&bench, &names, flags);
    for ns in &namespaces {
        settled(&bench.store, ns).await;
    }
    // Past the start: every group's first turns, status writes and caches.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = [requests(&procs[0]).await, requests(&procs[1]).await];
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = [requests(&procs[0]).await, requests(&procs[1]).await];
    println!(
        "scale: at rest, {groups} groups x {objects} objects ({workloads} Deployments, {volumes} volumes each), {seconds} s, operator flags {flags:?}"
    );
    for (i, name) in ["east (serving)", "west"].iter().enumerate() {
        let counts = since(&after[i], &before[i]);
        let total: u64 = counts.values().sum();
        println!(
            "  {name} operator: {:.2} requests/s ({}); RSS {:.1} MiB (peak {:.1} MiB)",
            total as f64 / seconds as f64,
            show(&counts),
            rss_mib(&procs[i]),
            peak_mib(&procs[i])
        );
    }
    drop(procs);
    drop(agents);
    for plane in &bench.planes {
        for ns in &namespaces {
            clean(plane, ns).await;
        }
    }
}
