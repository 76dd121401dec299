//! Flux Kustomizations and HelmReleases: `spec.suspend`, and a reconcile request on
//! resume.

use std::time::SystemTime;

use kube::api::DynamicObject;
use serde_json::json;

use super::{
    Change, Edit, Edits, REQUESTED_AT_ANNOTATION, annotation, field, flag, render, rfc3339,
};
use crate::ports::{Desired, MemberState};

pub(super) fn state(object: &DynamicObject) -> MemberState {
    MemberState::Flux {
        suspended: flag(object, "/spec/suspend"),
    }
}

pub(super) fn plan(object: &DynamicObject, desired: Desired, now: SystemTime) -> Edits {
    let suspended = flag(object, "/spec/suspend");
    let shown = render(field(object, "/spec/suspend"));
    let mut plan = Edits::default();
    match desired {
        Desired::Stop if !suspended => {
            plan.writes
                .push(Edit::Patch(json!({ "spec": { "suspend": true } })));
            plan.changes
                .push(Change::new("spec.suspend", shown, "true"));
        }
        Desired::Start if suspended => {
            let requested = rfc3339(now);
            plan.writes.push(Edit::Patch(json!({
                "metadata": { "annotations": { REQUESTED_AT_ANNOTATION: requested } },
                "spec": { "suspend": false },
            })));
            plan.changes
                .push(Change::new("spec.suspend", shown, "false"));
            plan.changes.push(Change::annotation(
                REQUESTED_AT_ANNOTATION,
                annotation(object, REQUESTED_AT_ANNOTATION),
                Some(&requested),
            ));
        }
        _ => {}
    }
    plan
}
