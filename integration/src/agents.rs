//! Agents that play the node-side components a test API server lacks: a kubelet that
//! makes pods Running and Ready (the KWOK idea) or, for a Job's pod that asks for it
//! ([`JOB_OUTCOME_ANNOTATION`]), ends it succeeded or failed, and a csi-addons driver that moves a
//! VolumeReplication's status to the state its spec asks for. The real Deployment,
//! ReplicaSet and StatefulSet controllers do everything else (creating and deleting
//! pods, computing readiness).

use std::time::Duration;

use failover_engine::ports::Kind;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Running agents; they stop when this is dropped.
#[derive(Debug, Default)]
pub struct Agents {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Agents {
    /// Play the Deployment controller and the kubelet at once for `namespace`, for a
    /// control plane without the Deployment controller
    /// ([`crate::plane::ControlPlane::without_deployment_controller`]): every
    /// Deployment's status follows its spec the moment it changes (its replicas all
    /// updated, ready and available), so the cluster takes no time. With a CSI driver
    /// that answers at once. For the scale benchmarks.
    pub fn instant(client: &Client, namespace: &str) -> Agents {
        Agents {
            tasks: vec![
                tokio::spawn(deployment_controller(client.clone(), namespace.to_string())),
                tokio::spawn(csi_driver(
                    client.clone(),
                    namespace.to_string(),
                    Duration::ZERO,
                )),
            ],
        }
    }

    /// Start a kubelet and a CSI driver for `namespace`. The kubelet makes a new pod
    /// ready `pod_delay` after it appears; the driver reports a volume's new state
    /// `volume_delay` after its spec changed.
    pub fn start(
        client: &Client,
        namespace: &str,
        pod_delay: Duration,
        volume_delay: Duration,
    ) -> Agents {
        Agents {
            tasks: vec![
                tokio::spawn(kubelet(client.clone(), namespace.to_string(), pod_delay)),
                tokio::spawn(csi_driver(
                    client.clone(),
                    namespace.to_string(),
                    volume_delay,
                )),
            ],
        }
    }
}

/// A pod (a hook Job's, from its template) with this annotation is ended by the kubelet
/// agent: `succeed` (phase Succeeded, exit code 0) or `fail` (phase Failed, exit code 1),
/// [`JOB_SECONDS_ANNOTATION`] seconds after it appeared. Without it a pod runs for ever
/// (a hook that hangs).
pub const JOB_OUTCOME_ANNOTATION: &str = "test.failover.rs/job-outcome";

/// How long a pod with [`JOB_OUTCOME_ANNOTATION`] runs before it ends, in seconds
/// (default: the agent's pod delay).
pub const JOB_SECONDS_ANNOTATION: &str = "test.failover.rs/job-seconds";

fn now() -> String {
    failover_engine::k8s::rfc3339(std::time::SystemTime::now())
}

fn ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Make every pod of the namespace Running and Ready. The status patch carries the
/// pod's resourceVersion, so a pod that changed meanwhile is left for its next event.
async fn kubelet(client: Client, namespace: String, delay: Duration) {
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let mut events = watcher(pods.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
            Ok(_) => continue,
            Err(err) => {
                tracing::debug!(%err, "kubelet agent: watch error");
                continue;
            }
        };
        if ready(&pod) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        if let Some(outcome) = annotations.get(JOB_OUTCOME_ANNOTATION) {
            let ended = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Succeeded" || p == "Failed");
            if !ended && let Some(name) = pod.metadata.name.clone() {
                let seconds = annotations
                    .get(JOB_SECONDS_ANNOTATION)
                    .and_then(|s| s.parse::<f64>().ok())
                    .map_or(delay, Duration::from_secs_f64);
                let succeed = outcome == "succeed";
                tokio::spawn(end_pod(pods.clone(), name, seconds, succeed));
            }
            continue;
        }
        let (Some(name), Some(version)) = (pod.metadata.name, pod.metadata.resource_version) else {
            continue;
        };
        let pods = pods.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let at = now();
            let condition =
                |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": at});
            let body = json!({
                "metadata": {"resourceVersion": version},
                "status": {
                    "phase": "Running",
                    "startTime": at,
                    "podIP": "10.244.0.10",
                    "conditions": [
                        condition("Initialized"), condition("ContainersReady"),
                        condition("Ready"), condition("PodScheduled")
                    ],
                }
            });
            if let Err(err) = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                tracing::debug!(%err, pod = %name, "kubelet agent: status patch");
            }
        });
    }
}

/// Make every Deployment's status say its spec is rolled out: `observedGeneration` the
/// generation, and `replicas`, `updatedReplicas`, `readyReplicas` and
/// `availableReplicas` all `spec.replicas`.
async fn deployment_controller(client: Client, namespace: String) {
    let Some((api, mut deployments)) =
        applied(client, &namespace, Kind::Deployment, "deployment agent").await
    else {
        return;
    };
    while let Some(deployment) = deployments.next().await {
        let generation = deployment.metadata.generation.unwrap_or(0);
        let replicas = field(&deployment, "/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let status = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        });
        if field(&deployment, "/status") == Some(&status) {
            continue;
        }
        let Some(name) = deployment.metadata.name.clone() else {
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let body = json!({ "status": status });
            if let Err(err) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                tracing::debug!(%err, deployment = %name, "deployment agent: status patch");
            }
        });
    }
}

/// The objects of `kind` in `namespace` as a watch brings them (listed, then each
/// change), for agent `who`, with the API to write them; `None` (logged) if the API
/// server does not serve the kind.
async fn applied(
    client: Client,
    namespace: &str,
    kind: Kind,
    who: &'static str,
) -> Option<(Api<DynamicObject>, BoxStream<'static, DynamicObject>)> {
    let resource = match crate::app::resource(&client, kind).await {
        Ok(resource) => resource,
        Err(err) => {
            tracing::error!(%err, %kind, "{who}: the kind is not served");
            return None;
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let objects = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| async move {
            match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => Some(o),
                Ok(_) => None,
                Err(err) => {
                    tracing::debug!(%err, "{who}: watch error");
                    None
                }
            }
        })
        .boxed();
    Some((api, objects))
}

/// End a Job's pod after `after`: Succeeded (exit code 0) or Failed (exit code 1), with
/// a terminated container status, as a kubelet reports it; the Job controller then
/// counts it.
async fn end_pod(pods: Api<Pod>, name: String, after: Duration, succeed: bool) {
    tokio::time::sleep(after).await;
    let Ok(pod) = pods.get(&name).await else {
        return;
    };
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map_or("main".to_owned(), |c| c.name.clone());
    let at = now();
    let code = if succeed { 0 } else { 1 };
    let body = json!({
        "status": {
            "phase": if succeed { "Succeeded" } else { "Failed" },
            "startTime": at,
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": at},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
            ],
            "containerStatuses": [{
                "name": container,
                "image": "busybox",
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": code,
                    "reason": if succeed { "Completed" } else { "Error" },
                    "startedAt": at,
                    "finishedAt": at,
                }},
            }],
        }
    });
    if let Err(err) = pods
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::debug!(%err, pod = %name, "kubelet agent: job pod status patch");
    }
}

fn field<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a Value> {
    object.data.pointer(pointer)
}

/// A VolumeReplication with this annotation (`"true"`) is left alone by the CSI driver
/// agent: it never reports its new role, as with a stuck csi-addons driver (issue 10).
pub const STUCK_ANNOTATION: &str = "test.failover.rs/csi-stuck";

/// Make the application's VolumeReplication in `namespace` keep its reported role (a
/// stuck driver: [`STUCK_ANNOTATION`]), or let the driver agent move it again.
pub async fn stick_volume(client: &Client, namespace: &str, stuck: bool) {
    let resource = crate::app::resource(client, Kind::VolumeReplication)
        .await
        .expect("the VolumeReplication resource");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let value = if stuck { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"annotations": {STUCK_ANNOTATION: value}}});
    api.patch(
        crate::app::name(Kind::VolumeReplication),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("the annotation patch");
}

/// Report every VolumeReplication's requested state in its status, with the generation
/// observed and the conditions a csi-addons driver sets (`Degraded=True` on a secondary,
/// as a real driver reports it); except for one annotated [`STUCK_ANNOTATION`].
async fn csi_driver(client: Client, namespace: String, delay: Duration) {
    let Some((api, mut volumes)) =
        applied(client, &namespace, Kind::VolumeReplication, "csi agent").await
    else {
        return;
    };
    while let Some(volume) = volumes.next().await {
        let stuck = volume
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(STUCK_ANNOTATION).is_some_and(|v| v == "true"));
        if stuck {
            continue;
        }
        let state = match field(&volume, "/spec/replicationState").and_then(Value::as_str) {
            Some("primary") => "Primary",
            Some("secondary" | "resync") => "Secondary",
            _ => continue,
        };
        let generation = volume.metadata.generation.unwrap_or(0);
        let current = field(&volume, "/status/state").and_then(Value::as_str);
        let observed = field(&volume, "/status/observedGeneration").and_then(Value::as_i64);
        if current == Some(state) && observed == Some(generation) {
            continue;
        }
        let (Some(name), Some(version)) = (
            volume.metadata.name.clone(),
            volume.metadata.resource_version.clone(),
        ) else {
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let at = now();
            let secondary = state == "Secondary";
            let condition = |t: &str, status: bool, reason: &str| {
                json!({
                    "type": t, "status": if status { "True" } else { "False" },
                    "reason": reason, "lastTransitionTime": at,
                    "observedGeneration": generation, "message": ""
                })
            };
            let body = json!({
                "metadata": {"resourceVersion": version},
                "status": {
                    "state": state,
                    "observedGeneration": generation,
                    "lastStartTime": at,
                    "conditions": [
                        condition("Completed", true, if secondary { "Demoted" } else { "Promoted" }),
                        condition("Degraded", secondary, if secondary { "VolumeDegraded" } else { "Healthy" }),
                        condition("Resyncing", false, "NotResyncing"),
                    ],
                }
            });
            if let Err(err) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                tracing::debug!(%err, volume = %name, "csi agent: status patch");
            }
        });
    }
}
