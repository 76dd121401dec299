//! Whole failovers of a real application between two real control planes, in both
//! modes, coordinated through DynamoDB Local: the engine's real adapters and executor,
//! the real Deployment and StatefulSet controllers, and a monitor judging samples of
//! both clusters with the model's invariants throughout. Each test fails over and back,
//! so the restore path (remembered replica counts, original routes and classes) runs
//! on a real API server too.

use std::time::{Duration, Instant};

use failover_engine::dynamo::{DynamoStore, create_table, local_client};
use failover_engine::executor::{Ended, Operator, process_failover};
use failover_engine::k8s::{
    DISABLED_INGRESS_CLASS, KubeCluster, ORIGINAL_HTTP_ANNOTATION, REQUESTED_AT_ANNOTATION,
};
use failover_engine::ports::{ClusterPort, Desired, Kind, ObjectRef, StorePort, SystemClock};
use failover_engine::recovery::{InterveneRefused, intervene};
use failover_engine::spec::{FailoverGroupSpec, Group, TimingSpec};
use failover_integration::agents::{Agents, JOB_OUTCOME_ANNOTATION, JOB_SECONDS_ANNOTATION};
use failover_integration::app;
use failover_integration::faults::{Fault, Faults, Rule, faulty_client};
use failover_integration::monitor::{Monitor, Report, observer};
use failover_integration::plane::{ControlPlane, dynamodb_endpoint, unique_name};
use failover_model::{
    AbortReason, Cluster, Intervention, Mode, Outcome, Plan, PlanKind, Request, Role, Stage,
    Variant,
};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};

const REPLICAS: i32 = 3;
/// How long the CSI driver agent takes to report a volume's new state.
const VOLUME_DELAY: Duration = Duration::from_millis(500);
const CLUSTERS: [&str; 2] = ["east", "west"];
/// Bound on one failover on these machines (it takes a few seconds).
const FAILOVER_BOUND: Duration = Duration::from_secs(120);

fn spec() -> FailoverGroupSpec {
    app::group_spec(CLUSTERS)
}

struct Site {
    plane: ControlPlane,
    cluster: KubeCluster,
    objects: Vec<ObjectRef>,
    _agents: Agents,
}

async fn site(name: &str, ns: &str, serving: bool, volume_delay: Duration) -> Site {
    let plane = ControlPlane::shared(name).await.expect("control plane");
    plane.create_namespace(ns).await.expect("namespace");
    let agents = Agents::start(&plane.client, ns, Duration::from_millis(200), volume_delay);
    let (objects, cluster) = app::deploy(&plane.client, ns, REPLICAS, serving)
        .await
        .expect("the application deployed and settled");
    Site {
        plane,
        cluster,
        objects,
        _agents: agents,
    }
}

async fn get(site: &Site, kind: Kind) -> DynamicObject {
    let resource = app::resource(&site.plane.client, kind)
        .await
        .expect("resource");
    let ns = &site.objects[0].namespace;
    let api: Api<DynamicObject> = Api::namespaced_with(site.plane.client.clone(), ns, &resource);
    api.get(app::name(kind)).await.expect("get")
}

fn at<'a>(object: &'a DynamicObject, pointer: &str) -> &'a Value {
    object.data.pointer(pointer).unwrap_or(&Value::Null)
}

fn annotation<'a>(object: &'a DynamicObject, key: &str) -> Option<&'a String> {
    object.metadata.annotations.as_ref()?.get(key)
}

/// Every member of `site` reads back stopped (`serving == false`) or started, settled.
async fn assert_serving(site: &Site, serving: bool) {
    let desired = if serving {
        Desired::Start
    } else {
        Desired::Stop
    };
    for object in &site.objects {
        let changes = site.cluster.set(object, desired).await.expect("re-read");
        assert!(
            changes.is_empty(),
            "{} {object} is not {desired:?} after the failover: {changes:?}",
            site.plane.name
        );
    }
    app::wait_settled(&site.cluster, &site.objects, Duration::from_secs(30))
        .await
        .expect("settled");
    let vs = get(site, Kind::VirtualService).await;
    let deploy = get(site, Kind::Deployment).await;
    let volume = get(site, Kind::VolumeReplication).await;
    let ingress = get(site, Kind::Ingress).await;
    if serving {
        let original = app::manifest(Kind::VirtualService, "shop", REPLICAS);
        assert_eq!(
            at(&vs, "/spec/http"),
            &original["spec"]["http"],
            "routes restored exactly"
        );
        assert_eq!(annotation(&vs, ORIGINAL_HTTP_ANNOTATION), None);
        assert_eq!(at(&deploy, "/spec/replicas"), &json!(REPLICAS));
        assert_eq!(at(&deploy, "/status/readyReplicas"), &json!(REPLICAS));
        assert_eq!(at(&volume, "/status/state"), &json!("Primary"));
        assert_eq!(at(&ingress, "/spec/ingressClassName"), &json!("nginx"));
    } else {
        assert_eq!(at(&vs, "/spec/http/0/directResponse/status"), &json!(503));
        assert!(annotation(&vs, ORIGINAL_HTTP_ANNOTATION).is_some());
        assert_eq!(at(&deploy, "/spec/replicas"), &json!(0));
        assert_eq!(at(&volume, "/status/state"), &json!("Secondary"));
        assert_eq!(
            at(&ingress, "/spec/ingressClassName"),
            &json!(DISABLED_INGRESS_CLASS)
        );
        let degraded = at(&volume, "/status/conditions")
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Degraded" && c["status"] == "True");
        assert!(
            degraded,
            "a secondary reports Degraded=True, which is normal"
        );
    }
}

type Op = Operator<KubeCluster, DynamoStore, SystemClock>;

/// New operators (new processes, empty memory) for both clusters of `ops`' group.
fn fresh_operators(ops: &[Op; 2], store: &DynamoStore, sites: &[Site; 2]) -> [Op; 2] {
    [0, 1].map(|i| {
        Operator::new(
            sites[i].cluster.clone(),
            store.clone(),
            SystemClock,
            ops[i].group().clone(),
        )
    })
}

/// A monitor sampling both clusters and the record every 100 ms; `source` is the slot
/// of the failover's source (the monitor's invariants do not depend on it).
fn watch(ops: &[Op; 2], store: &DynamoStore, sites: &[Site; 2], source: usize) -> Monitor {
    let observe = |i: usize| {
        observer(
            sites[i].cluster.clone(),
            store.clone(),
            ops[i].group().clone(),
        )
    };
    Monitor::start(
        observe(source),
        observe(1 - source),
        store.clone(),
        ops[0].group().key.clone(),
        Duration::from_millis(100),
    )
}

/// Both operators process `request` while the monitor samples; returns how each saw it
/// end and the monitor's report.
async fn run_failover(
    ops: &mut [Op; 2],
    store: &DynamoStore,
    sites: &[Site; 2],
    request: Request,
    crashes: [Option<u32>; 2],
) -> ([(Ended, bool); 2], Report) {
    let monitor = watch(ops, store, sites, 1 - request.to.index());
    let started = Instant::now();
    let fresh = fresh_operators(ops, store, sites);
    let [fresh_a, fresh_b] = fresh;
    let [a, b] = ops;
    let [crash_a, crash_b] = crashes;
    let both = async {
        tokio::join!(
            survive(a, request, crash_a, fresh_a, store),
            survive(b, request, crash_b, fresh_b, store)
        )
    };
    let (ea, eb) = tokio::time::timeout(FAILOVER_BOUND, both)
        .await
        .unwrap_or_else(|_| panic!("the failover did not end within {FAILOVER_BOUND:?}"));
    let report = monitor.stop().await;
    eprintln!(
        "failover {} -> {:?} ({:?}): {:.1?}, {} samples ({} skipped), {} violations",
        request.id,
        request.to,
        request.mode,
        started.elapsed(),
        report.samples,
        report.skipped,
        report.violations.len()
    );
    ([ea, eb], report)
}

/// Process `request`. With a crash position, the operator's future is dropped (a crash
/// at whatever await point it is in) as soon as the record shows that many plan steps
/// done, and a new operator with empty memory takes over, as a restarted pod would.
/// Returns how it ended and whether the crash happened.
async fn survive(
    op: &mut Op,
    request: Request,
    crash_at: Option<u32>,
    fresh: Op,
    store: &DynamoStore,
) -> (Ended, bool) {
    let Some(at) = crash_at else {
        return (process_failover(op, request).await, false);
    };
    let key = op.group().key.clone();
    let reached = async {
        loop {
            if let Ok(Some(r)) = store.read(&key).await
                && r.failover
                    .is_some_and(|f| f.id == request.id && f.done >= at)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let why = format!("with {at} plan steps done");
    crash_when(op, request, reached, &why, fresh).await
}

/// Process `request`; once `reached` completes, crash (drop the operator's future
/// wherever it is) and let `fresh` take over. Returns how it ended and whether the
/// crash happened.
async fn crash_when(
    op: &mut Op,
    request: Request,
    reached: impl std::future::Future<Output = ()>,
    why: &str,
    fresh: Op,
) -> (Ended, bool) {
    let name = op.group().name_of(op.group().me).to_string();
    let at = why;
    let ended = {
        let run = process_failover(op, request);
        futures::pin_mut!(run, reached);
        match futures::future::select(run, reached).await {
            futures::future::Either::Left((ended, _)) => Some(ended),
            futures::future::Either::Right(((), _)) => None,
        }
    };
    if let Some(ended) = ended {
        return (ended, false);
    }
    eprintln!("operator {name} crashed {at}");
    *op = fresh;
    (process_failover(op, request).await, true)
}

/// A failover that must complete safely: every sample satisfies the invariants and
/// both clusters end in the right state. `crashes`: when each operator crashes, if it
/// does.
async fn fail_over(
    ops: &mut [Op; 2],
    store: &DynamoStore,
    sites: &[Site; 2],
    request: Request,
    crashes: [Option<u32>; 2],
) {
    let (ended, report) = run_failover(ops, store, sites, request, crashes).await;
    let done = Ended::Finished(Outcome::Completed(PlanKind::Planned(request.mode)));
    assert_eq!(
        ended.clone().map(|e| e.0),
        [done.clone(), done],
        "both operators see it completed"
    );
    for (i, (_, crashed)) in ended.iter().enumerate() {
        assert_eq!(
            *crashed,
            crashes[i].is_some(),
            "operator {i} crashed as planned"
        );
    }
    let ns = &sites[0].objects[0].namespace;
    report.assert_clean(&format!("{ns}-{}-to-{:?}", request.mode, request.to));
    assert!(report.samples >= 3, "the monitor sampled: {report:?}");
    let key = &ops[0].group().key;
    let record = store.read(key).await.expect("read").expect("record");
    assert_eq!(record.active, request.to);
    assert_eq!(
        (record.lock, record.failover),
        (None, None),
        "lock released"
    );
    assert!(record.knows(request.id), "history records the failover");
    let (to, from) = (request.to.index(), 1 - request.to.index());
    assert_serving(&sites[to], true).await;
    assert_serving(&sites[from], false).await;
    // Flux was asked to reconcile on the new active cluster.
    let ks = get(&sites[to], Kind::Kustomization).await;
    assert!(annotation(&ks, REQUESTED_AT_ANNOTATION).is_some());
    assert_eq!(at(&ks, "/spec/suspend"), &json!(false));
}

/// Two sites with the application (active in east), a fresh table, and both
/// operators (running `variant`) warmed up.
async fn setup(
    mode: Mode,
    variant: Variant,
    volume_delay: Duration,
) -> ([Site; 2], DynamoStore, [Op; 2]) {
    setup_with(mode, variant, volume_delay, spec()).await
}

/// [`setup`] with the group's spec given.
async fn setup_with(
    mode: Mode,
    variant: Variant,
    volume_delay: Duration,
    spec: FailoverGroupSpec,
) -> ([Site; 2], DynamoStore, [Op; 2]) {
    let ns = unique_name(match (mode, variant) {
        (_, Variant::PromoteBeforeDemote) => "bug",
        (Mode::Consistency, _) => "consistency",
        (Mode::Uptime, _) => "uptime",
    });
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let client = local_client(&endpoint).await;
    let table = unique_name("failover");
    create_table(&client, &table).await.expect("table");
    let store = DynamoStore::new(client, table);
    let (east, west) = tokio::join!(
        site(CLUSTERS[0], &ns, true, volume_delay),
        site(CLUSTERS[1], &ns, false, volume_delay)
    );
    let sites = [east, west];
    let group = |me: &str| Group::parse(&ns, "shop", &spec, me).expect("valid group");
    let mut ops = [0, 1].map(|i| {
        Operator::with_variant(
            sites[i].cluster.clone(),
            store.clone(),
            SystemClock,
            group(CLUSTERS[i]),
            variant,
        )
    });
    for op in &mut ops {
        op.init().await.expect("init the record");
        op.run_until(|op, _| op.memory().lease_until.is_some())
            .await;
    }
    (sites, store, ops)
}

async fn round_trip(mode: Mode) {
    let (sites, store, mut ops) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
    let request = |id, to| Request { id, to, mode };
    fail_over(&mut ops, &store, &sites, request(1, Cluster::B), [None; 2]).await;
    // And back: the restore path on the original cluster.
    fail_over(&mut ops, &store, &sites, request(2, Cluster::A), [None; 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_failover_and_back_between_real_clusters() {
    round_trip(Mode::Consistency).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_failover_and_back_between_real_clusters() {
    round_trip(Mode::Uptime).await;
}

/// The model's broken variant that promotes the target's volumes before the source's
/// are demoted, on real clusters: the monitor sees two primaries, as the model checker
/// and the simulator do. The CSI driver takes 3 s to report a demotion, so the window
/// of two primaries is 30 sampling periods long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_catches_promote_before_demote_on_real_clusters() {
    let mode = Mode::Consistency;
    let (sites, store, mut ops) =
        setup(mode, Variant::PromoteBeforeDemote, Duration::from_secs(3)).await;
    let request = Request {
        id: 1,
        to: Cluster::B,
        mode,
    };
    let (_, report) = run_failover(&mut ops, &store, &sites, request, [None; 2]).await;
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("no-two-primaries")),
        "two primaries were not seen: {report:?}"
    );
    // Issue 17: the picture of the samples marks the first violation over the overlap.
    let path = report
        .write_picture("the_monitor_catches_promote_before_demote")
        .expect("the picture is written");
    let page = std::fs::read_to_string(&path).expect("the picture reads back");
    let els = failover_engine::timeline::elements(&page);
    let of = |kind: &'static str| els.iter().filter(move |e| e["data-kind"] == kind);
    let violation: Vec<_> = of("violation").collect();
    assert_eq!(violation.len(), 1, "{}", path.display());
    assert_eq!(violation[0]["data-invariant"], "no-two-primaries");
    assert!(
        of("overlap")
            .any(|e| e["data-overlap"] == "two-primaries" && e["data-accepted"] == "false"),
        "{}",
        path.display()
    );
    for c in ["A", "B"] {
        assert!(
            of("band").any(|e| e["data-cluster"] == c && e["data-band"] == "volumes-primary"),
            "{c}: {}",
            path.display()
        );
    }
    assert!(of("stage").any(|e| e["data-label"] == "volume-promotion"));
}

/// Both operators crash mid-failover, each as the record shows it about to run its
/// second step of the plan (the source while stopping, the target while promoting or
/// starting), and restart with empty memory: they resume from the journal in DynamoDB
/// and the failover completes, safely, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_operators_resume_from_the_journal_on_real_clusters() {
    for mode in [Mode::Consistency, Mode::Uptime] {
        let plan = Plan::of(PlanKind::Planned(mode), Variant::Correct);
        let second_of = |role| {
            let own: Vec<u32> = (0..plan.steps.len() as u32)
                .filter(|&i| plan.steps[i as usize].owner == role)
                .collect();
            own[1]
        };
        let crashes = [Some(second_of(Role::Source)), Some(second_of(Role::Target))];
        let (sites, store, mut ops) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
        let request = Request {
            id: 1,
            to: Cluster::B,
            mode,
        };
        fail_over(&mut ops, &store, &sites, request, crashes).await;
    }
}

/// Issue 9: a fault-injecting layer in front of the source's API server makes every
/// CronJob PATCH hang (or fail) for 15 s, longer than the 10 s lease, during a
/// consistency failover; a hung call waits for the 20 s step timeout. Returns how each
/// operator saw the failover end and the monitor's report.
async fn failover_through_a_faulty_api(
    fault: Fault,
    variant: Variant,
) -> ([(Ended, bool); 2], Report, usize) {
    let mode = Mode::Consistency;
    let (sites, store, _) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
    let ns = sites[0].objects[0].namespace.clone();
    let spec = FailoverGroupSpec {
        timing: Some(TimingSpec {
            lease_seconds: Some(10),
            fence_margin_seconds: Some(4),
            // The harness's csi-addons agent acts within VOLUME_DELAY (500 ms).
            driver_demotion_seconds: Some(1),
            max_clock_drift_seconds: Some(1),
            heartbeat_seconds: Some(1),
            retry_seconds: Some(1),
            ..TimingSpec::default()
        }),
        step_timeout_seconds: Some(20),
        ..spec()
    };
    let group = |me: &str| Group::parse(&ns, "shop", &spec, me).expect("valid group");
    let faults = Faults::default();
    let client = faulty_client(&sites[0].plane.kubeconfig, &faults)
        .await
        .expect("faulty client");
    let mut ops = [
        Operator::with_variant(
            KubeCluster::new(client),
            store.clone(),
            SystemClock,
            group(CLUSTERS[0]),
            variant,
        ),
        Operator::with_variant(
            sites[1].cluster.clone(),
            store.clone(),
            SystemClock,
            group(CLUSTERS[1]),
            variant,
        ),
    ];
    for op in &mut ops {
        op.run_until(|op, _| op.memory().lease_until.is_some())
            .await;
    }
    faults.set(Some(Rule {
        method: http::Method::PATCH,
        path_contains: "/cronjobs/".into(),
        fault,
    }));
    let lift = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        faults.set(None);
    };
    let request = Request {
        id: 1,
        to: Cluster::B,
        mode,
    };
    let ((ended, report), ()) = tokio::join!(
        run_failover(&mut ops, &store, &sites, request, [None; 2]),
        lift
    );
    (ended, report, faults.hits())
}

/// Lease keeping goes on beside the hung call, so the target never forces: once the API
/// answers again the failover completes as planned, and no sample of the two real
/// clusters shows two primaries or two writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_failing_api_call_does_not_let_the_peer_force() {
    for fault in [Fault::Hang, Fault::Fail] {
        let (ended, report, hits) = failover_through_a_faulty_api(fault, Variant::Correct).await;
        assert!(hits > 0, "{fault:?}: the fault hit no request");
        let done = Ended::Finished(Outcome::Completed(PlanKind::Planned(Mode::Consistency)));
        assert_eq!(
            ended.map(|e| e.0),
            [done.clone(), done],
            "{fault:?}: completed as planned, not forced"
        );
        report.assert_clean(&format!(
            "a_hung_or_failing_api_call_does_not_let_the_peer_force-{fault:?}"
        ));
    }
}

/// The same hung call under `heartbeat-behind-tasks` (the engine before issue 9): the
/// source writes no heartbeat while the call hangs, the target forces after the lease
/// and promotes while the source's volumes are still primary, and the monitor sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_catches_heartbeats_behind_a_hung_call_on_real_clusters() {
    let (ended, report, _) =
        failover_through_a_faulty_api(Fault::Hang, Variant::HeartbeatBehindTasks).await;
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("no-two-primaries") || v.starts_with("no-two-writers")),
        "two primaries were not seen: {report:?} ({ended:?})"
    );
}

/// Issue 10: each operator is given only its own cluster's request (a `Failover` object
/// exists in one cluster), and both run until the group is at rest again with a failover
/// of one of the requests ended. Returns how each operator's request ended (`None`
/// without one), the record and the monitor's report.
async fn run_requests(
    ops: &mut [Op; 2],
    store: &DynamoStore,
    sites: &[Site; 2],
    asks: [Option<Request>; 2],
) -> ([Option<Ended>; 2], failover_model::Record, Report) {
    let key = ops[0].group().key.clone();
    let monitor = watch(ops, store, sites, 0);
    let ids: Vec<u64> = asks.iter().flatten().map(|r| r.id).collect();
    let [a, b] = ops;
    let both = async { tokio::join!(drive(a, asks[0], &ids), drive(b, asks[1], &ids)) };
    let (ea, eb) = tokio::time::timeout(FAILOVER_BOUND, both)
        .await
        .unwrap_or_else(|_| panic!("the requests did not end within {FAILOVER_BOUND:?}"));
    let report = monitor.stop().await;
    let record = store.read(&key).await.expect("read").expect("record");
    ([ea, eb], record, report)
}

/// One operator with its cluster's request, if any: after the request ended or was
/// refused, it keeps doing its part of the failover the record holds, until the group is
/// at rest with a failover of one of `ids` ended.
async fn drive(op: &mut Op, ask: Option<Request>, ids: &[u64]) -> Option<Ended> {
    let ended = match ask {
        Some(r) => Some(process_failover(op, r).await),
        None => None,
    };
    op.run_until(|op, _| {
        op.memory().view.as_ref().is_some_and(|v| {
            v.failover.is_none()
                && v.request.is_none()
                && v.history.iter().any(|h| {
                    ids.contains(&h.id)
                        && matches!(
                            h.outcome,
                            Outcome::Completed(_) | Outcome::Aborted(_) | Outcome::Resolved
                        )
                })
        })
    })
    .await;
    ended
}

/// Issue 10: a request created in the standby cluster only is written into the record by
/// the standby's operator and started by the active cluster's: a planned failover, not a
/// forced one after the active cluster's lease (as before the record carried requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_in_the_standby_cluster_is_a_planned_failover() {
    for mode in [Mode::Consistency, Mode::Uptime] {
        let (sites, store, mut ops) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
        let request = Request {
            id: 41,
            to: Cluster::B,
            mode,
        };
        let started = Instant::now();
        let (ended, record, report) =
            run_requests(&mut ops, &store, &sites, [None, Some(request)]).await;
        eprintln!(
            "{mode}: request in the standby carried out in {:.1?}",
            started.elapsed()
        );
        let done = Outcome::Completed(PlanKind::Planned(mode));
        assert_eq!(ended, [None, Some(Ended::Finished(done))], "{mode}");
        assert_eq!(record.outcome_of(41), Some(done), "{mode}");
        assert_eq!(record.active, Cluster::B);
        report.assert_clean(&format!(
            "a_request_made_in_the_standby_cluster_is_a_planned_failover-{mode}"
        ));
        assert_serving(&sites[1], true).await;
        assert_serving(&sites[0], false).await;
    }
}

/// Issue 10: a request in each cluster at once, both for the standby (two people, one
/// per cluster): the record accepts one, which is carried out; the other is refused,
/// naming the one that holds the group, and never starts. A request for the cluster
/// that is already active then ends at once as a no-op in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_at_once_one_carried_out_one_refused() {
    let mode = Mode::Consistency;
    let (sites, store, mut ops) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
    let asks = [
        Request {
            id: 51,
            to: Cluster::B,
            mode,
        },
        Request {
            id: 52,
            to: Cluster::B,
            mode: Mode::Uptime,
        },
    ];
    let (ended, record, report) = run_requests(&mut ops, &store, &sites, asks.map(Some)).await;
    eprintln!("two requests at once: {ended:?}");
    let winner = match ended {
        [Some(Ended::Finished(_)), Some(Ended::Held(holder))] => {
            assert_eq!(
                holder, 51,
                "the refusal names the request that holds the group"
            );
            0
        }
        [Some(Ended::Held(holder)), Some(Ended::Finished(_))] => {
            assert_eq!(
                holder, 52,
                "the refusal names the request that holds the group"
            );
            1
        }
        other => panic!("one request carried out, one refused: {other:?}"),
    };
    let (accepted, refused) = (asks[winner], asks[1 - winner]);
    assert_eq!(
        record.outcome_of(accepted.id),
        Some(Outcome::Completed(PlanKind::Planned(accepted.mode)))
    );
    assert!(
        !record.accepted(refused.id),
        "the refused request never entered the record"
    );
    assert_eq!(record.active, Cluster::B);
    report.assert_clean("two_requests_at_once_one_carried_out_one_refused");
    // West is active now: a request for west, made in east, is a no-op.
    let again = Request {
        id: 53,
        to: Cluster::B,
        mode,
    };
    let ended = tokio::time::timeout(FAILOVER_BOUND, process_failover(&mut ops[0], again))
        .await
        .expect("the no-op ends at once");
    assert_eq!(ended, Ended::AlreadyActive);
    let record = store.read(&ops[0].group().key).await.expect("read");
    assert_eq!(
        record.and_then(|r| r.outcome_of(53)),
        Some(Outcome::NoOp),
        "the no-op has its own history item"
    );
}

/// Issue 10: the group's record deleted from DynamoDB after a failover moved the
/// application to west. Neither operator creates it again (before issue 10 the next read
/// created it from the spec, naming east active with token 0): each finds it missing,
/// drops its lease and fences its cluster. The operator action refuses to re-create it
/// until both operators noticed and both clusters are stopped, then re-creates it above
/// every token either cluster saw with west active; both operators claim their slots
/// again and west serves, on the real control planes and DynamoDB Local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_not_created_again_and_comes_back_by_the_operator_action() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use failover_engine::recovery::{RecreateRefused, recreate_record};
    let mode = Mode::Consistency;
    let (sites, store, mut ops) = setup(mode, Variant::Correct, VOLUME_DELAY).await;
    let request = Request {
        id: 61,
        to: Cluster::B,
        mode,
    };
    fail_over(&mut ops, &store, &sites, request, [None; 2]).await;
    let key = ops[0].group().key.clone();
    let before = store.read(&key).await.expect("read").expect("record");
    for op in &mut ops {
        op.turn().await;
    }
    let client = local_client(&dynamodb_endpoint().await.expect("DynamoDB Local")).await;
    client
        .delete_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(key.clone()))
        .key("sk", AttributeValue::S("record".into()))
        .send()
        .await
        .expect("delete the record");
    let observers = fresh_operators(&ops, &store, &sites);
    let refused = recreate_record([&observers[0], &observers[1]], &store, None).await;
    assert!(
        matches!(refused, Err(RecreateRefused::NotNoticed(_))),
        "refused until both operators noticed: {refused:?}"
    );
    // Both operators run; the operator action is tried every half second.
    let started = Instant::now();
    let action = async {
        loop {
            match recreate_record([&observers[0], &observers[1]], &store, None).await {
                Ok(record) => return record,
                Err(RecreateRefused::NotNoticed(_) | RecreateRefused::NotStopped(_)) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the operator action failed: {e}"),
            }
        }
    };
    let claimed = |op: &Op| {
        op.memory().view.as_ref().is_some_and(|v| {
            v.token > before.token
                && v.instance[op.group().me.index()] == Some(op.memory().instance)
        })
    };
    let [a, b] = &mut ops;
    let (recreated, (), ()) = tokio::time::timeout(FAILOVER_BOUND, async {
        tokio::join!(
            action,
            a.run_until(|op, _| claimed(op)),
            b.run_until(|op, _| claimed(op))
        )
    })
    .await
    .expect("re-created and claimed again");
    eprintln!(
        "record re-created after {:.1?}: token {} (was {})",
        started.elapsed(),
        recreated.token,
        before.token
    );
    assert_eq!(
        recreated.active,
        Cluster::B,
        "the newest trace's active cluster"
    );
    assert!(recreated.token > before.token, "above every token seen");
    // West serves again; east stays stopped.
    let west_serves = async {
        loop {
            a.turn().await;
            b.turn().await;
            let observed = b.observe().await;
            if failover_model::START.iter().all(|s| s.satisfied(&observed)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(FAILOVER_BOUND, west_serves)
        .await
        .expect("west serves again");
    assert_serving(&sites[1], true).await;
    assert_serving(&sites[0], false).await;
}

/// Issue 10: west's operator restarted with a copy of the spec that lists the clusters
/// in the other order (so it takes itself for east). Its claim proves its identity, the
/// UID of west's real `kube-system` namespace, which the record's east slot is not bound
/// to: refused, it keeps west stopped and contests the slot; east's operator keeps its
/// slot, sees the contest, and east serves on. Fixed, west's operator claims its own
/// slot and withdraws the contest. The monitor sees no unsafe sample throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_configured_as_the_other_cluster_refuses_to_act_on_real_clusters() {
    let (sites, store, mut ops) = setup(Mode::Consistency, Variant::Correct, VOLUME_DELAY).await;
    let monitor = watch(&ops, &store, &sites, 0);
    let key = ops[0].group().key.clone();
    let swapped = FailoverGroupSpec {
        clusters: vec![CLUSTERS[1].into(), CLUSTERS[0].into()],
        ..spec()
    };
    let ns = ops[0].group().namespace.clone();
    let wrong_group = Group::parse(&ns, "shop", &swapped, CLUSTERS[1]).expect("valid group");
    assert_eq!(
        wrong_group.me,
        Cluster::A,
        "west takes itself for the first cluster"
    );
    let mut wrong = Operator::new(
        sites[1].cluster.clone(),
        store.clone(),
        SystemClock,
        wrong_group,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let [a, _] = &mut ops;
        tokio::join!(async { a.turn().await }, async { wrong.turn().await });
        let contested = a.identity_problem().is_some();
        if wrong.memory().misbound.is_some() && contested {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let problem = wrong
        .identity_problem()
        .expect("the misconfigured operator reports");
    assert!(
        problem.contains("binds that slot to another cluster"),
        "{problem}"
    );
    let seen = ops[0]
        .identity_problem()
        .expect("east's operator sees the contest");
    assert!(seen.contains("tried to claim slot A"), "{seen}");
    let record = store.read(&key).await.expect("read").expect("record");
    assert_eq!(record.active, Cluster::A);
    assert_eq!(
        record.instance[0],
        Some(ops[0].memory().instance),
        "east's operator keeps its slot"
    );
    assert_ne!(
        record.bound[0], record.bound[1],
        "two clusters, two identities"
    );
    assert_serving(&sites[0], true).await;
    assert_serving(&sites[1], false).await;
    // Fixed: a new process of west's operator, with the right copy.
    let mut fixed = Operator::new(
        sites[1].cluster.clone(),
        store.clone(),
        SystemClock,
        ops[1].group().clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let [a, _] = &mut ops;
        tokio::join!(async { a.turn().await }, async { fixed.turn().await });
        if fixed.memory().claimed.is_some() && a.identity_problem().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fixed.memory().claimed.is_some(), "west claims its own slot");
    assert!(
        ops[0].identity_problem().is_none(),
        "the contest is withdrawn"
    );
    let report = monitor.stop().await;
    report.assert_clean(
        "an_operator_configured_as_the_other_cluster_refuses_to_act_on_real_clusters",
    );
}

/// Label (`true`) or unlabel the VolumeReplication of `site` with the group's label.
async fn label_volume(site: &Site, labelled: bool) {
    let resource = app::resource(&site.plane.client, Kind::VolumeReplication)
        .await
        .expect("resource");
    let ns = &site.objects[0].namespace;
    let api: Api<DynamicObject> = Api::namespaced_with(site.plane.client.clone(), ns, &resource);
    let value = if labelled { json!("shop") } else { Value::Null };
    let patch = json!({"metadata": {"labels": {"app": value}}});
    api.patch(
        app::name(Kind::VolumeReplication),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("label patch");
}

/// Issue 10: east's VolumeReplication loses the group's label, so east's operator finds
/// no volume while west's finds one. A request made in west waits (no failover starts,
/// none is forced), both operators name the difference, and east keeps serving; once the
/// label is back the request is carried out as a planned failover. The monitor sees no
/// unsafe sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_waits_while_a_cluster_misses_a_member_on_real_clusters() {
    let (sites, store, mut ops) = setup(Mode::Consistency, Variant::Correct, VOLUME_DELAY).await;
    let key = ops[0].group().key.clone();
    label_volume(&sites[0], false).await;
    let monitor = watch(&ops, &store, &sites, 0);
    let request = Request {
        id: 43,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    ops[1].set_request(Some(request));
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let [a, b] = &mut ops;
        tokio::join!(async { a.turn().await }, async { b.turn().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = store.read(&key).await.expect("read").expect("record");
    assert_eq!(record.request.map(|p| p.id), Some(43), "accepted, pending");
    assert_eq!(record.failover, None, "not started");
    assert_eq!(ops[0].drift(), vec!["members found (inventory)"]);
    assert_eq!(ops[1].drift(), vec!["members found (inventory)"]);
    assert_serving(&sites[0], true).await;
    // Labelled again: carried out.
    label_volume(&sites[0], true).await;
    ops[1].set_request(None);
    let started = Instant::now();
    let (ended, record, report) =
        run_requests(&mut ops, &store, &sites, [None, Some(request)]).await;
    eprintln!(
        "carried out {:.1?} after the label came back",
        started.elapsed()
    );
    let done = Outcome::Completed(PlanKind::Planned(Mode::Consistency));
    assert_eq!(ended, [None, Some(Ended::Finished(done))]);
    assert_eq!(record.active, Cluster::B);
    let early = monitor.stop().await;
    for r in [&early, &report] {
        r.assert_clean("a_failover_waits_while_a_cluster_misses_a_member_on_real_clusters");
    }
    assert_serving(&sites[1], true).await;
    assert_serving(&sites[0], false).await;
}

/// Make `site`'s VolumeReplication stuck (`true`: the CSI driver agent no longer reports
/// its role, as with a stuck csi-addons driver) or fix it.
async fn stick_volume(site: &Site, stuck: bool) {
    let ns = &site.objects[0].namespace;
    failover_integration::agents::stick_volume(&site.plane.client, ns, stuck).await;
}

/// New operators (replacing `ops`) for the group with stage deadlines of 6 s (step
/// timeout 2 s), warmed up.
async fn with_deadlines(ops: [Op; 2], store: &DynamoStore, sites: &[Site; 2]) -> [Op; 2] {
    let ns = &sites[0].objects[0].namespace;
    let mut spec = spec();
    spec.step_timeout_seconds = Some(2);
    if let Some(t) = spec.timing.as_mut() {
        t.stage_deadline_seconds = Some(6);
    }
    let mut fresh = [0, 1].map(|i| {
        let group = Group::parse(ns, "shop", &spec, CLUSTERS[i]).expect("valid group");
        assert_eq!(group.timing.stage_deadline, [6_000; 6]);
        Operator::new(sites[i].cluster.clone(), store.clone(), SystemClock, group)
    });
    for op in &mut fresh {
        op.run_until(|op, _| op.memory().lease_until.is_some())
            .await;
    }
    drop(ops);
    fresh
}

/// Both operators take turns (as their loops would, 50 ms apart) until `done` holds for
/// the record, or `bound` passes.
async fn turns_until(
    ops: &mut [Op; 2],
    store: &DynamoStore,
    bound: Duration,
    mut done: impl FnMut(&failover_model::Record) -> bool,
) -> failover_model::Record {
    let key = ops[0].group().key.clone();
    let deadline = Instant::now() + bound;
    loop {
        let [a, b] = &mut *ops;
        tokio::join!(async { a.turn().await }, async { b.turn().await });
        let record = store.read(&key).await.expect("read").expect("record");
        if done(&record) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {bound:?}: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 10: west's VolumeReplication never reports `primary` after west promoted it.
/// Past the volume-promotion stage's deadline no roll back is safe (the target may
/// have promoted): the record flags the failover `needs-operator`, west's operator
/// names the volume, a person's abort is refused and a retry starts the deadline
/// again; once the volume is fixed the failover completes by itself. The monitor sees
/// no unsafe sample throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_that_never_reports_its_new_role_is_flagged_needs_operator_on_real_clusters() {
    let (sites, store, ops) = setup(Mode::Consistency, Variant::Correct, VOLUME_DELAY).await;
    let mut ops = with_deadlines(ops, &store, &sites).await;
    let key = ops[0].group().key.clone();
    let timing = ops[0].group().timing;
    stick_volume(&sites[1], true).await;
    let monitor = watch(&ops, &store, &sites, 0);
    let request = Request {
        id: 51,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    ops[1].set_request(Some(request));
    let started = Instant::now();
    let flagged = |r: &failover_model::Record| r.failover.is_some_and(|f| f.stuck);
    let record = turns_until(&mut ops, &store, Duration::from_secs(60), flagged).await;
    eprintln!("flagged needs-operator after {:.1?}", started.elapsed());
    let plan = Plan::of(PlanKind::Planned(Mode::Consistency), Variant::Correct);
    let f = record.failover.expect("in flight");
    assert_eq!(
        plan.get(f.done).map(|s| s.step),
        Some(failover_model::Step::AwaitVolumesPrimary)
    );
    let named = ops[1].needs_operator().expect("west names what is stuck");
    let volume = app::name(Kind::VolumeReplication);
    assert!(
        named.objects.iter().any(|o| o.ends_with(volume)),
        "{named:?}"
    );
    assert_serving(&sites[0], false).await;
    // The person: no roll back after the promotion; a retry clears the flag.
    let refused = intervene(&store, &key, &timing, Intervention::Abort).await;
    assert!(
        matches!(&refused, Err(InterveneRefused::NotAllowed(m)) if m.contains("two primaries")),
        "{refused:?}"
    );
    let retried = intervene(&store, &key, &timing, Intervention::Retry)
        .await
        .expect("retry");
    assert!(retried.failover.is_some_and(|f| !f.stuck));
    assert_eq!(retried.token, record.token + 1);
    // Fixed: the failover goes on by itself.
    stick_volume(&sites[1], false).await;
    let ended = |r: &failover_model::Record| r.outcome_of(51).is_some();
    let record = turns_until(&mut ops, &store, Duration::from_secs(60), ended).await;
    assert_eq!(
        record.outcome_of(51),
        Some(Outcome::Completed(PlanKind::Planned(Mode::Consistency)))
    );
    assert_eq!(record.active, Cluster::B);
    let report = monitor.stop().await;
    report.assert_clean(
        "a_volume_that_never_reports_its_new_role_is_flagged_needs_operator_on_real_clusters",
    );
    assert!(report.samples >= 10, "{report:?}");
    assert_serving(&sites[1], true).await;
    assert_serving(&sites[0], false).await;
}

/// Issue 10: east's VolumeReplication never reports `secondary` after east demoted it.
/// Nothing was promoted yet: past the volume-demotion stage's deadline the failover
/// rolls back (`aborted`, with the stage); west never promoted; east restores what it
/// stopped once its volume reports primary again (after a person fixed the driver).
/// The monitor sees no unsafe sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_that_never_reports_its_demotion_rolls_the_failover_back_on_real_clusters() {
    let (sites, store, ops) = setup(Mode::Consistency, Variant::Correct, VOLUME_DELAY).await;
    let mut ops = with_deadlines(ops, &store, &sites).await;
    stick_volume(&sites[0], true).await;
    let monitor = watch(&ops, &store, &sites, 0);
    let request = Request {
        id: 52,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    ops[1].set_request(Some(request));
    let started = Instant::now();
    let ended = |r: &failover_model::Record| r.outcome_of(52).is_some();
    let record = turns_until(&mut ops, &store, Duration::from_secs(60), ended).await;
    eprintln!("rolled back after {:.1?}", started.elapsed());
    assert_eq!(
        record.outcome_of(52),
        Some(Outcome::Aborted(AbortReason::Deadline(
            Stage::VolumeDemotion
        )))
    );
    assert_eq!(record.active, Cluster::A);
    // East, still active, restores what it stopped from its state at rest: volumes
    // first, and a volume whose driver never reports holds the rest back (its role is
    // unknown: the status is for an older generation). West never promoted.
    let one_round = |_: &failover_model::Record| true;
    turns_until(&mut ops, &store, Duration::from_secs(5), one_round).await;
    assert!(!ops[0].observe().await.serves());
    assert_serving(&sites[1], false).await;
    // The person fixes the driver: east serves again.
    stick_volume(&sites[0], false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let started =
        |c: &failover_model::ClusterState| failover_model::START.iter().all(|s| s.satisfied(c));
    while !started(&ops[0].observe().await) {
        assert!(Instant::now() < deadline, "east serves again");
        turns_until(&mut ops, &store, Duration::from_secs(5), one_round).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = monitor.stop().await;
    report.assert_clean(
        "a_volume_that_never_reports_its_demotion_rolls_the_failover_back_on_real_clusters",
    );
    assert_serving(&sites[0], true).await;
    assert_serving(&sites[1], false).await;
}

// ---------------------------------------------------------------------------------------
// Hooks (issue 13): Jobs on the real control planes, completed or failed by the kubelet
// agent as the pod template's annotations ask.
// ---------------------------------------------------------------------------------------

/// A hook Job whose pod the kubelet agent ends with `outcome` (`succeed` or `fail`)
/// after `seconds`.
fn job_hook(name: &str, place: (&str, &str), side: &str, outcome: &str, seconds: u32) -> Value {
    json!({
        "name": name,
        place.0: place.1,
        "side": side,
        "timeoutSeconds": 60,
        "onFailure": "abort",
        "job": {"template": {
            "metadata": {"labels": {"app": "shop-hooks"}},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": {
                        JOB_OUTCOME_ANNOTATION: outcome,
                        JOB_SECONDS_ANNOTATION: seconds.to_string(),
                    }},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": name, "image": "busybox", "command": ["true"]}],
                    },
                },
            },
        }},
    })
}

/// The test group's spec with `hooks`.
fn hooked_spec(hooks: Vec<Value>) -> FailoverGroupSpec {
    let mut spec = serde_json::to_value(spec()).expect("spec as JSON");
    spec["hooks"] = Value::Array(hooks);
    serde_json::from_value(spec).expect("a valid spec with hooks")
}

/// The Jobs of hook `hook` in `site`'s namespace.
async fn hook_jobs(site: &Site, hook: &str) -> Vec<Job> {
    let ns = &site.objects[0].namespace;
    let jobs: Api<Job> = Api::namespaced(site.plane.client.clone(), ns);
    let params = ListParams::default().labels(&format!("failover.rs/hook={hook}"));
    jobs.list(&params).await.expect("list Jobs").items
}

fn complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// A quiesce Job before the source's demotion and a verify Job before the target's
/// promotion each run once, and the failover completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesce_and_verify_jobs_run_once_and_the_failover_completes_on_real_clusters() {
    let spec = hooked_spec(vec![
        job_hook(
            "quiesce",
            ("before", "demote-volumes"),
            "source",
            "succeed",
            1,
        ),
        job_hook(
            "verify",
            ("before", "promote-volumes"),
            "target",
            "succeed",
            1,
        ),
    ]);
    let (sites, store, mut ops) =
        setup_with(Mode::Consistency, Variant::Correct, VOLUME_DELAY, spec).await;
    let request = Request {
        id: 0x1313_0001,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    fail_over(&mut ops, &store, &sites, request, [None; 2]).await;
    let [east, west] = &sites;
    for (site, hook, other) in [(east, "quiesce", west), (west, "verify", east)] {
        let jobs = hook_jobs(site, hook).await;
        assert_eq!(jobs.len(), 1, "one {hook} Job in {}", site.plane.name);
        assert!(complete(&jobs[0]), "the {hook} Job completed");
        assert_eq!(
            jobs[0].metadata.name.as_deref(),
            Some(format!("{hook}-13130001").as_str()),
            "named after the hook and the failover"
        );
        assert!(
            hook_jobs(other, hook).await.is_empty(),
            "{hook} runs on its side only"
        );
    }
}

/// A verify hook that fails rolls a consistency failover back before the target
/// promoted anything: the source serves again exactly as before, the target is still
/// the standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verify_hook_aborts_a_consistency_failover_on_real_clusters() {
    let spec = hooked_spec(vec![
        job_hook(
            "quiesce",
            ("before", "demote-volumes"),
            "source",
            "succeed",
            1,
        ),
        job_hook("verify", ("before", "promote-volumes"), "target", "fail", 1),
    ]);
    let (sites, store, mut ops) =
        setup_with(Mode::Consistency, Variant::Correct, VOLUME_DELAY, spec).await;
    let request = Request {
        id: 0x1313_0002,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    let (ended, report) = run_failover(&mut ops, &store, &sites, request, [None; 2]).await;
    let aborted = Ended::Finished(Outcome::Aborted(AbortReason::Hook(1)));
    assert_eq!(
        ended.map(|e| e.0),
        [aborted.clone(), aborted],
        "rolled back by the hook"
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let record = store
        .read(&ops[0].group().key)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(
        (record.active, record.lock, record.failover),
        (Cluster::A, None, None)
    );
    // The source restores what it stopped (its state at rest), exactly.
    let source = ops[0].group().clone();
    let restored = async {
        loop {
            let s = observer(sites[0].cluster.clone(), store.clone(), source.clone());
            let state = s.observe().await;
            if failover_model::START
                .iter()
                .all(|step| step.satisfied(&state))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        let [a, b] = &mut ops;
        let keep = async {
            loop {
                a.turn().await;
                b.turn().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = restored => {}
            () = keep => {}
        }
    })
    .await
    .expect("the source serves again");
    assert_serving(&sites[0], true).await;
    assert_serving(&sites[1], false).await;
    let verify = hook_jobs(&sites[1], "verify").await;
    assert_eq!(verify.len(), 1, "the verify Job ran once");
}

/// The source's operator is killed while its quiesce Job runs: the operator that
/// replaces it finds the Job, waits for it, and the failover completes with one Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_while_a_hook_job_runs_resumes_without_a_second_job() {
    let spec = hooked_spec(vec![job_hook(
        "quiesce",
        ("before", "demote-volumes"),
        "source",
        "succeed",
        6,
    )]);
    let (sites, store, mut ops) =
        setup_with(Mode::Consistency, Variant::Correct, VOLUME_DELAY, spec).await;
    let request = Request {
        id: 0x1313_0003,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    let monitor = watch(&ops, &store, &sites, 0);
    let [fresh_a, _] = fresh_operators(&ops, &store, &sites);
    let [a, b] = &mut ops;
    let job_running = async {
        loop {
            if hook_jobs(&sites[0], "quiesce")
                .await
                .iter()
                .any(|j| !complete(j))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (ea, eb) = tokio::time::timeout(FAILOVER_BOUND, async {
        tokio::join!(
            crash_when(
                a,
                request,
                job_running,
                "while its quiesce Job runs",
                fresh_a
            ),
            process_failover(b, request)
        )
    })
    .await
    .expect("the failover ends");
    let report = monitor.stop().await;
    let done = Ended::Finished(Outcome::Completed(PlanKind::Planned(Mode::Consistency)));
    assert_eq!(
        (ea, eb),
        ((done.clone(), true), done),
        "crashed, resumed, completed"
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let jobs = hook_jobs(&sites[0], "quiesce").await;
    assert_eq!(jobs.len(), 1, "no second Job after the restart");
    assert!(complete(&jobs[0]));
    assert_serving(&sites[1], true).await;
    assert_serving(&sites[0], false).await;
}
