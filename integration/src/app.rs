//! A realistic application to fail over: one object of every kind the operator
//! handles, created through the API server as a user's manifests would create them.

use std::time::Duration;

use failover_engine::k8s::KubeCluster;
use failover_engine::member::settled;
use failover_engine::ports::{ClusterPort, Desired, Kind, LabelQuery, ObjectRef, Selector};
use failover_engine::spec::{FailoverGroupSpec, FluxRef, MembersSpec, TimingSpec};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::{HarnessError, wait_for};

/// The API resource serving `kind` on this server, as the engine's adapter resolves it
/// (CronJobs in `batch/v1` or, before Kubernetes 1.21, `batch/v1beta1`).
pub async fn resource(client: &Client, kind: Kind) -> Result<ApiResource, HarnessError> {
    KubeCluster::new(client.clone())
        .resource(kind)
        .await
        .map_err(|e| HarnessError::Invalid(format!("the API resource of {kind}: {e}")))
}

/// The name the application gives its object of `kind`.
pub fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment => "web",
        Kind::StatefulSet => "db",
        Kind::CronJob => "report",
        Kind::VirtualService | Kind::Ingress | Kind::Kustomization => "shop",
        Kind::VolumeReplication => "db-data",
        Kind::HelmRelease => "shop-db",
    }
}

/// Pods that stop within a second: within the fence margin of every test's timing (a
/// grace period beyond it makes the group invalid, issue 9).
fn pod_template(label: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": label}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image}]
        }
    })
}

/// The manifest of the application's object of `kind`, started: workloads at
/// `replicas`, routes open, jobs and Flux resumed, the volume primary.
pub fn manifest(kind: Kind, label: &str, replicas: i32) -> Value {
    let selector = json!({"matchLabels": {"app": label}});
    match kind {
        Kind::Deployment => json!({"spec": {
            "replicas": replicas, "selector": selector,
            "template": pod_template(label, "registry.invalid/shop/web:1.0"),
        }}),
        Kind::StatefulSet => json!({"spec": {
            "replicas": replicas, "serviceName": "db", "selector": selector,
            "template": pod_template(label, "registry.invalid/shop/db:1.0"),
        }}),
        Kind::CronJob => json!({"spec": {
            "schedule": "0 3 1 1 *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "report", "image": "registry.invalid/shop/report:1.0"}]
            }}}}
        }}),
        Kind::VirtualService => json!({"spec": {
            "hosts": ["shop.example.com"], "gateways": ["istio-system/public"],
            "http": [
                {"name": "api", "match": [{"uri": {"prefix": "/api"}}],
                 "route": [{"destination": {"host": "api", "port": {"number": 8080}}}]},
                {"name": "web", "route": [
                    {"destination": {"host": "web", "subset": "v1"}, "weight": 90},
                    {"destination": {"host": "web", "subset": "v2"}, "weight": 10}
                ]}
            ]
        }}),
        Kind::Ingress => json!({
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": "shop.example.com", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}
                }]}}]
            }
        }),
        Kind::VolumeReplication => json!({"spec": {
            "volumeReplicationClass": "rbd-replication", "replicationState": "primary",
            "dataSource": {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": "data-db-0"},
            "autoResync": false
        }}),
        Kind::Kustomization => json!({"spec": {
            "interval": "10m", "path": "./apps/shop", "prune": true, "suspend": false,
            "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
        }}),
        Kind::HelmRelease => json!({"spec": {
            "interval": "10m", "suspend": false,
            "chart": {"spec": {"chart": "postgresql", "version": "16.x",
                "sourceRef": {"kind": "HelmRepository", "name": "bitnami", "namespace": "flux-system"}}}
        }}),
    }
}

/// Create the application (one object of each of `kinds`, labelled `app=<label>`,
/// started) in `namespace`; returns the objects.
pub async fn create(
    client: &Client,
    namespace: &str,
    label: &str,
    kinds: &[Kind],
    replicas: i32,
) -> Result<Vec<ObjectRef>, HarnessError> {
    let mut objects = Vec::new();
    for &kind in kinds {
        let resource = resource(client, kind).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let mut body = manifest(kind, label, replicas);
        let name = name(kind);
        body["apiVersion"] = json!(resource.api_version);
        body["kind"] = json!(resource.kind);
        body["metadata"]["name"] = json!(name);
        body["metadata"]["namespace"] = json!(namespace);
        body["metadata"]["labels"] = json!({"app": label});
        let object: DynamicObject = serde_json::from_value(body)
            .map_err(|e| HarnessError::Invalid(format!("{kind} manifest: {e}")))?;
        api.create(&PostParams::default(), &object)
            .await
            .map_err(|e| HarnessError::Kube(format!("creating {kind} {namespace}/{name}"), e))?;
        objects.push(ObjectRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    Ok(objects)
}

/// Wait until every object reads back settled through `cluster` (pods follow replicas
/// and are ready, volume status follows spec).
pub async fn wait_settled<C: ClusterPort>(
    cluster: &C,
    objects: &[ObjectRef],
    timeout: Duration,
) -> Result<(), HarnessError> {
    for object in objects {
        let selector = Selector {
            namespace: object.namespace.clone(),
            labels: LabelQuery::default(),
            names: vec![object.name.clone()],
        };
        wait_for(&format!("{object} to settle"), timeout, || {
            let selector = selector.clone();
            async move {
                let members = cluster.members(object.kind, &selector).await.ok()?;
                let state = &members.first()?.state;
                (settled(state) == *state).then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// The application ([`create`], label `shop`, every kind) in namespace `ns`, serving or,
/// for the standby copy, stopped as a previous failover (or the operator's install)
/// leaves it, and settled: its objects and the Kubernetes adapter on the cluster.
pub async fn deploy(
    client: &Client,
    ns: &str,
    replicas: i32,
    serving: bool,
) -> Result<(Vec<ObjectRef>, KubeCluster), HarnessError> {
    let objects = create(client, ns, "shop", &Kind::ALL, replicas).await?;
    let cluster = KubeCluster::new(client.clone());
    if !serving {
        for object in &objects {
            // The controllers update a new workload concurrently: retry conflicts.
            failover_engine::effects::retried(|| cluster.set(object, Desired::Stop))
                .await
                .map_err(|e| HarnessError::Invalid(format!("stopping {object}: {e}")))?;
        }
    }
    wait_settled(&cluster, &objects, Duration::from_secs(90)).await?;
    Ok((objects, cluster))
}

/// The group of the application [`create`] makes, between clusters `clusters`: every
/// member by the `app=shop` label, the Flux objects by name, heartbeats every second.
pub fn group_spec(clusters: [&str; 2]) -> FailoverGroupSpec {
    FailoverGroupSpec {
        clusters: clusters.map(String::from).to_vec(),
        members: MembersSpec {
            selector: Some(
                serde_json::from_value(json!({"matchLabels": {"app": "shop"}})).expect("selector"),
            ),
            kustomizations: vec![FluxRef {
                name: name(Kind::Kustomization).into(),
                namespace: None,
            }],
            helm_releases: vec![FluxRef {
                name: name(Kind::HelmRelease).into(),
                namespace: None,
            }],
            ..MembersSpec::default()
        },
        timing: Some(TimingSpec {
            heartbeat_seconds: Some(1),
            retry_seconds: Some(1),
            ..TimingSpec::default()
        }),
        ..FailoverGroupSpec::default()
    }
}
