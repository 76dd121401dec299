//! CronJobs: `spec.suspend`, on `batch/v1` or (before Kubernetes 1.21) `batch/v1beta1`.

use kube::Client;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::{Change, Edit, Edits, api_resource, field, flag, render, status_code};
use crate::ports::{ClusterError, Desired, MemberState};

/// Which version serves CronJobs: `batch/v1` if its resource list has `cronjobs`,
/// `batch/v1beta1` if not (or if `batch/v1` answers 404).
pub(super) async fn discover(client: &Client) -> Result<ApiResource, ClusterError> {
    let v1 = || api_resource("batch", "v1", "CronJob", "cronjobs");
    let v1beta1 = || api_resource("batch", "v1beta1", "CronJob", "cronjobs");
    match client.list_api_group_resources("batch/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => Ok(v1()),
        Ok(_) => {
            tracing::info!("batch/v1 does not serve cronjobs; using batch/v1beta1");
            Ok(v1beta1())
        }
        Err(kube::Error::Api(status)) if status_code(&status) == 404 => {
            tracing::info!("batch/v1 is not served; using batch/v1beta1 for cronjobs");
            Ok(v1beta1())
        }
        Err(err) => Err(ClusterError::Unavailable(format!(
            "discovering the CronJob API version: {err}"
        ))),
    }
}

pub(super) fn state(object: &DynamicObject) -> MemberState {
    MemberState::CronJob {
        suspended: flag(object, "/spec/suspend"),
    }
}

pub(super) fn plan(object: &DynamicObject, desired: Desired) -> Edits {
    let suspend = desired == Desired::Stop;
    let mut plan = Edits::default();
    if flag(object, "/spec/suspend") != suspend {
        plan.writes
            .push(Edit::Patch(json!({ "spec": { "suspend": suspend } })));
        plan.changes.push(Change::new(
            "spec.suspend",
            render(field(object, "/spec/suspend")),
            suspend.to_string(),
        ));
    }
    plan
}
