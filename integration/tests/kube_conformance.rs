//! The engine's cluster port conformance suite, run against the real Kubernetes adapter
//! on a real kube-apiserver with the real Deployment, ReplicaSet and StatefulSet
//! controllers (pods made ready by the harness's kubelet agent, volume status moved by
//! its CSI driver agent).

use std::time::{Duration, Instant};

use failover_engine::conformance::{ClusterFixture, cluster_port};
use failover_engine::k8s::limit::{Limiter, Limits, limited};
use failover_engine::k8s::{KubeCluster, REPLICAS_ANNOTATION};
use failover_engine::ports::{ClusterPort, Desired, Kind, LabelQuery, MemberState, Selector};
use failover_integration::agents::Agents;
use failover_integration::app;
use failover_integration::plane::ControlPlane;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

const REPLICAS: i32 = 3;

async fn setup(prefix: &str) -> (ControlPlane, String, Agents) {
    let plane = ControlPlane::shared("east").await.expect("control plane");
    let ns = plane.namespace(prefix).await.expect("namespace");
    let agents = Agents::start(
        &plane.client,
        &ns,
        Duration::from_millis(150),
        Duration::from_millis(300),
    );
    (plane, ns, agents)
}

/// The application's objects in `ns`, by its label.
fn by_label(ns: &str) -> Selector {
    Selector {
        namespace: ns.into(),
        labels: LabelQuery::equals("app", "shop"),
        names: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_cluster_passes_the_conformance_suite() {
    conformance("conformance", KubeCluster::new).await;
}

/// The port conformance suite on the application in a new namespace named after
/// `prefix`, through the adapter `adapter` makes of the plane's client.
async fn conformance(prefix: &str, adapter: impl Fn(kube::Client) -> KubeCluster) {
    let (plane, ns, _agents) = setup(prefix).await;
    let objects = app::create(&plane.client, &ns, "shop", &Kind::ALL, REPLICAS)
        .await
        .expect("create the application");
    let cluster = adapter(plane.client.clone());
    app::wait_settled(&cluster, &objects, Duration::from_secs(60))
        .await
        .expect("the application starts");
    let fixture = ClusterFixture {
        namespace: ns.clone(),
        label: "shop".into(),
        objects,
        replicas: REPLICAS,
    };
    cluster_port(&cluster, &fixture, || {
        tokio::time::sleep(Duration::from_millis(100))
    })
    .await;
}

/// Readiness is the real controllers' verdict: right after a scale-up the workload is
/// not ready; it becomes ready only once the kubelet agent has made the pods ready and
/// the controller has observed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_real_controllers() {
    let (plane, ns, agents) = setup("readiness").await;
    drop(agents); // no kubelet yet: pods stay pending
    let objects = app::create(&plane.client, &ns, "shop", &[Kind::Deployment], REPLICAS)
        .await
        .expect("create");
    let cluster = KubeCluster::new(plane.client.clone());
    let selector = by_label(&ns);
    let read = || async {
        cluster
            .members(Kind::Deployment, &selector)
            .await
            .expect("members")[0]
            .state
            .clone()
    };
    // The Deployment controller creates the pods; nobody makes them ready.
    let pods_created =
        failover_integration::wait_for("pods to be created", Duration::from_secs(30), || async {
            match read().await {
                MemberState::Workload { pods, ready, .. } if pods == REPLICAS => Some(ready),
                _ => None,
            }
        })
        .await
        .expect("the Deployment controller creates the pods");
    assert!(!pods_created, "pending pods are not ready");
    let _agents = Agents::start(
        &plane.client,
        &ns,
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    app::wait_settled(&cluster, &objects, Duration::from_secs(30))
        .await
        .expect("ready once the kubelet reports the pods ready");
}

/// A stop interrupted between its two writes (annotation saved, scale not yet patched)
/// and resumed does not overwrite the remembered count; and a start restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scale_down_resumes_with_the_remembered_count() {
    let (plane, ns, _agents) = setup("resume").await;
    let objects = app::create(&plane.client, &ns, "shop", &[Kind::StatefulSet], REPLICAS)
        .await
        .expect("create");
    let cluster = KubeCluster::new(plane.client.clone());
    app::wait_settled(&cluster, &objects, Duration::from_secs(60))
        .await
        .expect("starts");
    let resource = app::resource(&plane.client, Kind::StatefulSet)
        .await
        .expect("resource");
    let api: Api<DynamicObject> = Api::namespaced_with(plane.client.clone(), &ns, &resource);
    // The first write of a stop, as a killed operator would have left it.
    let note = serde_json::json!({"metadata": {"annotations": {REPLICAS_ANNOTATION: "3"}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&note))
        .await
        .expect("annotate");
    let changes = cluster.set(&objects[0], Desired::Stop).await.expect("stop");
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["spec.replicas"], "only the scale remains to do");
    app::wait_settled(&cluster, &objects, Duration::from_secs(60))
        .await
        .expect("scaled down");
    cluster
        .set(&objects[0], Desired::Start)
        .await
        .expect("start");
    app::wait_settled(&cluster, &objects, Duration::from_secs(60))
        .await
        .expect("scaled up");
    let object = api.get("db").await.expect("get");
    assert_eq!(
        object.data.pointer("/spec/replicas"),
        Some(&serde_json::json!(REPLICAS))
    );
}

/// `changed` wakes soon after a member changes on the server, well before its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_wakes_on_a_watch_event() {
    let (plane, ns, _agents) = setup("watch").await;
    let objects = app::create(&plane.client, &ns, "shop", &[Kind::Kustomization], 1)
        .await
        .expect("create");
    let cluster = KubeCluster::new(plane.client.clone());
    let selector = by_label(&ns);
    cluster
        .members(Kind::Kustomization, &selector)
        .await
        .expect("members");
    // Starts the watcher; wait out its initial listing and any stored wake-up.
    cluster.changed(Duration::from_secs(2)).await;
    cluster.changed(Duration::from_millis(500)).await;
    let other = KubeCluster::new(plane.client.clone());
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.set(&objects[0], Desired::Stop).await.expect("stop");
    });
    let started = Instant::now();
    cluster.changed(Duration::from_secs(30)).await;
    let waited = started.elapsed();
    writer.await.expect("writer");
    assert!(
        waited < Duration::from_secs(15),
        "changed() returned after {waited:?}: the watch event did not wake it"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "changed() returned after {waited:?}, before the change was made"
    );
}

/// The operator's adapter reads from watch caches; with a watch that brings every
/// change a second late it still passes the whole suite (each `set` twice, each state
/// read back at once after the write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_cluster_with_slow_watch_caches_passes_the_conformance_suite() {
    conformance("cached", |client| {
        KubeCluster::new(client).caches_with_lag(Duration::from_secs(1))
    })
    .await;
}

/// Observing `selector` until a read makes no request: the caches are in sync.
async fn until_cached(
    cluster: &KubeCluster,
    limiter: &Limiter,
    kinds: &[Kind],
    selector: &Selector,
) {
    failover_integration::wait_for("the watch caches", Duration::from_secs(30), || async {
        let before = limiter.counts();
        for kind in kinds {
            cluster.members(*kind, selector).await.expect("members");
        }
        (limiter.counts().since(&before).calls() == 0).then_some(())
    })
    .await
    .expect("the caches come in sync");
}

/// The rule that makes caches safe for the protocol: a step's write counts only once
/// the cache has seen it. With a watch 3 s late, a read right after a write waits for
/// the cache ([`failover_engine::k8s::cache::CATCH_UP`]), then reads that one object
/// afresh, so it shows the write; once the watch brings it, reads are from memory
/// again. At rest, reads make no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_counts_once_the_watch_cache_has_seen_it() {
    let (plane, ns, _agents) = setup("rule").await;
    let kinds = [Kind::Deployment, Kind::VolumeReplication];
    let objects = app::create(&plane.client, &ns, "shop", &kinds, REPLICAS)
        .await
        .expect("create");
    let (client, limiter) = limited(plane.client.clone(), Limits::default());
    let cluster = KubeCluster::new(client).caches_with_lag(Duration::from_secs(3));
    app::wait_settled(&cluster, &objects, Duration::from_secs(60))
        .await
        .expect("starts");
    let selector = by_label(&ns);
    until_cached(&cluster, &limiter, &kinds, &selector).await;

    // At rest: a hundred observations, not one request.
    let before = limiter.counts();
    for _ in 0..100 {
        for kind in kinds {
            cluster.members(kind, &selector).await.expect("members");
        }
    }
    assert_eq!(
        limiter.counts().since(&before).calls(),
        0,
        "reads at rest come from memory"
    );

    // The write: planned from the cache (no read), then read back at once.
    let web = objects
        .iter()
        .find(|o| o.kind == Kind::Deployment)
        .expect("a deployment");
    let before = limiter.counts();
    let changes = cluster.set(web, Desired::Stop).await.expect("stop");
    assert!(!changes.is_empty());
    let wrote = limiter.counts().since(&before);
    assert_eq!(
        wrote.of("get"),
        0,
        "the write was planned from the cache: {wrote:?}"
    );
    let started = Instant::now();
    let read = cluster
        .members(Kind::Deployment, &selector)
        .await
        .expect("members");
    let waited = started.elapsed();
    match &read[0].state {
        MemberState::Workload { replicas, .. } => assert_eq!(*replicas, 0, "the write shows"),
        other => panic!("{other:?}"),
    }
    let after = limiter.counts().since(&before);
    assert_eq!(
        after.of("get"),
        1,
        "the object behind the write was read afresh: {after:?}"
    );
    assert_eq!(after.of("list"), 0, "{after:?}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "the read waited for the watch, then read afresh: {waited:?}"
    );

    // Once the watch brings the write, reads come from memory and still show it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = limiter.counts();
    let read = cluster
        .members(Kind::Deployment, &selector)
        .await
        .expect("members");
    assert!(matches!(
        read[0].state,
        MemberState::Workload { replicas: 0, .. }
    ));
    assert_eq!(limiter.counts().since(&before).calls(), 0);
}
