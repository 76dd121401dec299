//! VirtualServices and Ingresses: disabled reversibly, the original kept in an
//! annotation, each change one merge patch.

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::{
    Change, DISABLED_INGRESS_CLASS, DISABLED_ROUTE_NAME, Edit, Edits,
    LEGACY_INGRESS_CLASS_ANNOTATION, ORIGINAL_CLASS_ANNOTATION, ORIGINAL_HTTP_ANNOTATION,
    annotation, field, render, resource_version,
};
use crate::ports::{Desired, Kind, MemberState};

/// The key of the original `spec.ingressClassName` in [`ORIGINAL_CLASS_ANNOTATION`].
const CLASS_KEY: &str = "ingressClassName";

pub(super) fn state(kind: Kind, object: &DynamicObject) -> MemberState {
    let key = if kind == Kind::Ingress {
        ORIGINAL_CLASS_ANNOTATION
    } else {
        ORIGINAL_HTTP_ANNOTATION
    };
    MemberState::Network {
        disabled: annotation(object, key).is_some(),
    }
}

/// The single route of a disabled VirtualService: every request answered with 503.
fn disabled_routes() -> Value {
    json!([{ "name": DISABLED_ROUTE_NAME, "directResponse": { "status": 503 } }])
}

pub(super) fn plan_virtual_service(
    object: &DynamicObject,
    desired: Desired,
) -> Result<Edits, String> {
    let saved = annotation(object, ORIGINAL_HTTP_ANNOTATION);
    let current = field(object, "/spec/http");
    let mut plan = Edits::default();
    match (desired, saved) {
        (Desired::Stop, None) => {
            let original = current.cloned().unwrap_or(Value::Null).to_string();
            let routes = disabled_routes();
            plan.changes.push(Change::new(
                "spec.http",
                render(current),
                routes.to_string(),
            ));
            plan.changes.push(Change::annotation(
                ORIGINAL_HTTP_ANNOTATION,
                None,
                Some(&original),
            ));
            plan.writes.push(Edit::Patch(json!({
                "metadata": {
                    "annotations": { ORIGINAL_HTTP_ANNOTATION: original },
                    "resourceVersion": resource_version(object),
                },
                "spec": { "http": routes },
            })));
        }
        (Desired::Start, Some(saved)) => {
            let original: Value = serde_json::from_str(saved).map_err(|e| {
                format!("annotation {ORIGINAL_HTTP_ANNOTATION} is not JSON ({e}); restore spec.http by hand")
            })?;
            plan.changes.push(Change::new(
                "spec.http",
                render(current),
                render(Some(&original)),
            ));
            plan.changes.push(Change::annotation(
                ORIGINAL_HTTP_ANNOTATION,
                Some(saved),
                None,
            ));
            plan.writes.push(Edit::Patch(json!({
                "metadata": {
                    "annotations": { ORIGINAL_HTTP_ANNOTATION: null },
                    "resourceVersion": resource_version(object),
                },
                "spec": { "http": original },
            })));
        }
        _ => {}
    }
    Ok(plan)
}

pub(super) fn plan_ingress(object: &DynamicObject, desired: Desired) -> Result<Edits, String> {
    let saved = annotation(object, ORIGINAL_CLASS_ANNOTATION);
    let class = field(object, "/spec/ingressClassName");
    let legacy = annotation(object, LEGACY_INGRESS_CLASS_ANNOTATION);
    let mut plan = Edits::default();
    match (desired, saved) {
        (Desired::Stop, None) => {
            let mut original = Map::new();
            if let Some(class) = class {
                original.insert(CLASS_KEY.into(), class.clone());
            }
            let mut annotations = Map::new();
            if let Some(legacy) = legacy {
                original.insert(LEGACY_INGRESS_CLASS_ANNOTATION.into(), legacy.into());
                annotations.insert(LEGACY_INGRESS_CLASS_ANNOTATION.into(), Value::Null);
            }
            let original = Value::Object(original).to_string();
            annotations.insert(ORIGINAL_CLASS_ANNOTATION.into(), original.clone().into());
            plan.changes.push(Change::new(
                "spec.ingressClassName",
                render(class),
                DISABLED_INGRESS_CLASS,
            ));
            if legacy.is_some() {
                plan.changes.push(Change::annotation(
                    LEGACY_INGRESS_CLASS_ANNOTATION,
                    legacy,
                    None,
                ));
            }
            plan.changes.push(Change::annotation(
                ORIGINAL_CLASS_ANNOTATION,
                None,
                Some(&original),
            ));
            plan.writes.push(Edit::Patch(json!({
                "metadata": {
                    "annotations": annotations,
                    "resourceVersion": resource_version(object),
                },
                "spec": { "ingressClassName": DISABLED_INGRESS_CLASS },
            })));
        }
        (Desired::Start, Some(saved)) => {
            let original: Map<String, Value> = serde_json::from_str(saved).map_err(|e| {
                format!(
                    "annotation {ORIGINAL_CLASS_ANNOTATION} is not a JSON object ({e}); \
                     restore spec.ingressClassName by hand"
                )
            })?;
            let restored_class = original.get(CLASS_KEY).cloned().unwrap_or(Value::Null);
            let mut annotations = Map::new();
            annotations.insert(ORIGINAL_CLASS_ANNOTATION.into(), Value::Null);
            plan.changes.push(Change::new(
                "spec.ingressClassName",
                render(class),
                render(Some(&restored_class)),
            ));
            if let Some(restored) = original.get(LEGACY_INGRESS_CLASS_ANNOTATION) {
                let restored = restored.as_str().ok_or_else(|| {
                    format!("annotation {ORIGINAL_CLASS_ANNOTATION}: {LEGACY_INGRESS_CLASS_ANNOTATION} is not a string")
                })?;
                annotations.insert(LEGACY_INGRESS_CLASS_ANNOTATION.into(), restored.into());
                plan.changes.push(Change::annotation(
                    LEGACY_INGRESS_CLASS_ANNOTATION,
                    legacy,
                    Some(restored),
                ));
            }
            plan.changes.push(Change::annotation(
                ORIGINAL_CLASS_ANNOTATION,
                Some(saved),
                None,
            ));
            plan.writes.push(Edit::Patch(json!({
                "metadata": {
                    "annotations": annotations,
                    "resourceVersion": resource_version(object),
                },
                "spec": { "ingressClassName": restored_class },
            })));
        }
        _ => {}
    }
    Ok(plan)
}
