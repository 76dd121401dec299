//! A group checked against a real API server before any failover (issue 9): a kind the
//! cluster does not serve, because its CRD is not installed, is reported with the fix,
//! and a failover request is refused before anything changes, instead of the missing
//! kind being found in the middle of a self-fence.

use failover_engine::dynamo::{DynamoStore, create_table, local_client};
use failover_engine::executor::{Ended, Operator, process_failover};
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::{ClusterPort, Kind, StorePort, SystemClock};
use failover_engine::spec::{FailoverGroupSpec, Group, MembersSpec};
use failover_integration::app;
use failover_integration::plane::{ControlPlane, dynamodb_endpoint, unique_name};

use failover_model::{Cluster, Mode, Request};
use kube::api::{Api, DynamicObject};
use serde_json::json;

/// A control plane of its own: the others serve every CRD.
const PLANE: &str = "nocrd";
const MISSING: &str = "virtualservices.networking.istio.io";

/// What the operator would change of each object: its spec and annotations (the
/// controllers keep writing status, so resourceVersions move on their own).
async fn versions(
    plane: &ControlPlane,
    ns: &str,
    kinds: &[Kind],
) -> Vec<(
    Kind,
    serde_json::Value,
    Option<std::collections::BTreeMap<String, String>>,
)> {
    let mut out = Vec::new();
    for &kind in kinds {
        let resource = app::resource(&plane.client, kind).await.expect("resource");
        let api: Api<DynamicObject> = Api::namespaced_with(plane.client.clone(), ns, &resource);
        let object = api.get(app::name(kind)).await.expect("get");
        out.push((
            kind,
            object.data["spec"].clone(),
            object.metadata.annotations.clone(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_whose_crd_is_missing_makes_the_group_invalid_before_anything_changes() {
    let plane = ControlPlane::without_crd(PLANE, MISSING)
        .await
        .expect("control plane without the VirtualService CRD");
    let ns = plane.namespace("nocrd").await.expect("namespace");
    let served: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::VirtualService)
        .collect();
    app::create(&plane.client, &ns, "shop", &served, 1)
        .await
        .expect("create the application without its VirtualService");
    let spec = FailoverGroupSpec {
        clusters: vec![PLANE.into(), "peer".into()],
        members: MembersSpec {
            selector: Some(
                serde_json::from_value(json!({"matchLabels": {"app": "shop"}})).expect("selector"),
            ),
            ..MembersSpec::default()
        },
        ..FailoverGroupSpec::default()
    };
    let group = Group::parse(&ns, "shop", &spec, PLANE).expect("a valid spec");
    let cluster = KubeCluster::new(plane.client.clone());
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let client = local_client(&endpoint).await;
    let table = unique_name("nocrd");
    create_table(&client, &table).await.expect("table");
    let store = DynamoStore::new(client, table);
    let before = versions(&plane, &ns, &served).await;
    let mut op = Operator::new(cluster.clone(), store.clone(), SystemClock, group);

    let invalid = op
        .validate()
        .await
        .expect_err("VirtualService is not served");
    assert_eq!(invalid.problems.len(), 1, "{invalid}");
    let problem = &invalid.problems[0];
    assert!(
        problem.contains("VirtualService")
            && problem.contains("CRD installed?")
            && problem.contains("install its CRD in this cluster")
            && problem.contains("or remove VirtualService from spec.members"),
        "the problem names the kind and the fix: {problem}"
    );

    let request = Request {
        id: 1,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    assert_eq!(
        process_failover(&mut op, request).await,
        Ended::Refused(invalid)
    );
    assert_eq!(
        versions(&plane, &ns, &served).await,
        before,
        "no object was written"
    );
    assert_eq!(
        store.read(&op.group().key).await.expect("read"),
        None,
        "no record was created"
    );
    // Every other kind reads fine through the adapter: only the missing one is refused.
    let selector = op.group().members[&Kind::Deployment][0].clone();
    assert_eq!(
        cluster
            .members(Kind::Deployment, &selector)
            .await
            .expect("deployments")
            .len(),
        1
    );
}

/// Issue 9: a Deployment whose pods take 30 s to stop (the Kubernetes default) makes the
/// group invalid under the default timing, with the fix; a group that declares its
/// storage fences writes on demotion accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_period_beyond_the_margin_makes_the_group_invalid() {
    let plane = ControlPlane::shared("east").await.expect("control plane");
    let ns = plane.namespace("grace").await.expect("namespace");
    app::create(&plane.client, &ns, "shop", &[Kind::Deployment], 1)
        .await
        .expect("create the Deployment");
    let resource = app::resource(&plane.client, Kind::Deployment)
        .await
        .expect("resource");
    let api: Api<DynamicObject> = Api::namespaced_with(plane.client.clone(), &ns, &resource);
    let patch = json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 30}}}});
    api.patch(
        app::name(Kind::Deployment),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("a 30 s grace period");
    let spec = |demotion_stops_writes| FailoverGroupSpec {
        clusters: vec!["east".into(), "peer".into()],
        members: MembersSpec {
            deployments: vec![app::name(Kind::Deployment).into()],
            ..MembersSpec::default()
        },
        demotion_stops_writes,
        ..FailoverGroupSpec::default()
    };
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let store = DynamoStore::new(local_client(&endpoint).await, unique_name("grace"));
    let cluster = KubeCluster::new(plane.client.clone());
    let operator = |s| {
        let group = Group::parse(&ns, "shop", &s, "east").expect("a valid spec");
        Operator::new(cluster.clone(), store.clone(), SystemClock, group)
    };
    let invalid = operator(spec(None))
        .validate()
        .await
        .expect_err("30 s does not fit the default margin");
    assert_eq!(invalid.problems.len(), 1, "{invalid}");
    let problem = &invalid.problems[0];
    assert!(
        problem.contains("terminationGracePeriodSeconds 30")
            && problem.contains("lower it to at most 4")
            && problem.contains("spec.demotionStopsWrites: true"),
        "{problem}"
    );
    operator(spec(Some(true)))
        .validate()
        .await
        .expect("storage that fences writes on demotion accepts it");
}
