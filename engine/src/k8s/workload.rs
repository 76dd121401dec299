//! Deployments and StatefulSets: scaled through the `scale` subresource, the count
//! remembered in an annotation, readiness judged like `kubectl rollout status`.

use kube::api::DynamicObject;
use serde_json::json;

use super::{
    ABSENT, Change, Edit, Edits, REPLICAS_ANNOTATION, annotation, field, int, render,
    resource_version,
};
use crate::ports::{Desired, Kind, MemberState};

/// `spec.replicas`, 1 if unset (the API server's default).
fn replicas(object: &DynamicObject) -> i32 {
    field(object, "/spec/replicas")
        .and_then(|v| v.as_i64())
        .map_or(1, |n| n as i32)
}

/// The remembered count, if the annotation holds a positive count.
fn remembered(object: &DynamicObject) -> Option<i32> {
    annotation(object, REPLICAS_ANNOTATION)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|n| *n > 0)
}

pub(super) fn state(kind: Kind, object: &DynamicObject) -> MemberState {
    MemberState::Workload {
        replicas: replicas(object),
        remembered: remembered(object),
        pods: int(object, "/status/replicas") as i32,
        ready: ready(kind, object),
    }
}

/// How long the pods may take to stop: the template's `terminationGracePeriodSeconds`,
/// 30 if unset (the API server's default).
pub(super) fn stop_grace_seconds(object: &DynamicObject) -> u64 {
    field(object, "/spec/template/spec/terminationGracePeriodSeconds")
        .and_then(|v| v.as_u64())
        .unwrap_or(30)
}

/// The rollout is complete, as `kubectl rollout status` judges it.
fn ready(kind: Kind, object: &DynamicObject) -> bool {
    let generation = object.metadata.generation.unwrap_or(0);
    if int(object, "/status/observedGeneration") < generation {
        return false;
    }
    let wanted = i64::from(replicas(object));
    let updated = int(object, "/status/updatedReplicas");
    if kind == Kind::Deployment {
        let replicas = int(object, "/status/replicas");
        let available = int(object, "/status/availableReplicas");
        return updated >= wanted && replicas == updated && available >= updated;
    }
    if int(object, "/status/readyReplicas") < wanted {
        return false;
    }
    let strategy = field(object, "/spec/updateStrategy/type")
        .and_then(|v| v.as_str())
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return true;
    }
    let partition = int(object, "/spec/updateStrategy/rollingUpdate/partition").max(0);
    if updated < wanted - partition {
        return false;
    }
    if partition > 0 {
        return true;
    }
    match (
        field(object, "/status/currentRevision").and_then(|v| v.as_str()),
        field(object, "/status/updateRevision").and_then(|v| v.as_str()),
    ) {
        (Some(current), Some(update)) => current == update,
        _ => true,
    }
}

pub(super) fn plan(object: &DynamicObject, desired: Desired) -> Edits {
    let current = replicas(object);
    let shown = render(field(object, "/spec/replicas"));
    let mut plan = Edits::default();
    match desired {
        Desired::Stop => {
            if current <= 0 {
                return plan;
            }
            let count = current.to_string();
            let saved = annotation(object, REPLICAS_ANNOTATION);
            // One write: the count remembered and the scale-down together, so no stop
            // is ever half done. Saving the count read carries the resourceVersion it
            // was read at: a concurrent change makes it a 409, not a stale count.
            let write = if saved != Some(count.as_str()) {
                plan.changes
                    .push(Change::annotation(REPLICAS_ANNOTATION, saved, Some(&count)));
                json!({
                    "metadata": {
                        "annotations": { REPLICAS_ANNOTATION: count },
                        "resourceVersion": resource_version(object),
                    },
                    "spec": { "replicas": 0 },
                })
            } else {
                json!({ "spec": { "replicas": 0 } })
            };
            plan.writes.push(Edit::Patch(write));
            plan.changes.push(Change::new("spec.replicas", shown, "0"));
        }
        Desired::Start => {
            if current > 0 {
                return plan;
            }
            let target = remembered(object).unwrap_or_else(|| {
                tracing::warn!(
                    name = object.metadata.name.as_deref().unwrap_or(ABSENT),
                    namespace = object.metadata.namespace.as_deref().unwrap_or(ABSENT),
                    annotation = REPLICAS_ANNOTATION,
                    "no remembered replica count; starting with 1 replica"
                );
                1
            });
            plan.writes
                .push(Edit::Patch(json!({ "spec": { "replicas": target } })));
            plan.changes
                .push(Change::new("spec.replicas", shown, target.to_string()));
        }
    }
    plan
}
