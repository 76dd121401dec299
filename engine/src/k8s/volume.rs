//! csi-addons VolumeReplications: `spec.replicationState` and `status.state`.
//!
//! A `Degraded=True` condition is normal on a secondary (it is not replicating out) and
//! is not an error; only `status.state` is read.

use failover_model::VolumeRole;
use kube::api::DynamicObject;
use serde_json::json;

use super::{Change, Edit, Edits, field, int, render};
use crate::ports::{Desired, MemberState};

pub(super) fn state(object: &DynamicObject) -> Result<MemberState, String> {
    let spec = match field(object, "/spec/replicationState").and_then(|v| v.as_str()) {
        Some("primary") => VolumeRole::Primary,
        Some("secondary" | "resync") => VolumeRole::Secondary,
        other => {
            return Err(format!(
                "spec.replicationState is {}, expected primary, secondary or resync",
                other.unwrap_or("absent")
            ));
        }
    };
    let observed = field(object, "/status/observedGeneration").is_none()
        || int(object, "/status/observedGeneration") >= object.metadata.generation.unwrap_or(0);
    let status = field(object, "/status/state")
        .and_then(|v| v.as_str())
        .filter(|_| observed)
        .and_then(|s| {
            if s.eq_ignore_ascii_case("primary") {
                Some(VolumeRole::Primary)
            } else if s.eq_ignore_ascii_case("secondary") {
                Some(VolumeRole::Secondary)
            } else {
                None
            }
        });
    Ok(MemberState::Volume { spec, status })
}

pub(super) fn plan(object: &DynamicObject, desired: Desired) -> Edits {
    let target = match desired {
        Desired::Stop => "secondary",
        Desired::Start => "primary",
    };
    let current = field(object, "/spec/replicationState");
    let mut plan = Edits::default();
    if current.and_then(|v| v.as_str()) != Some(target) {
        plan.writes.push(Edit::Patch(
            json!({ "spec": { "replicationState": target } }),
        ));
        plan.changes.push(Change::new(
            "spec.replicationState",
            render(current),
            target,
        ));
    }
    plan
}
