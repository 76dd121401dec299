//! The integration harness: real Kubernetes control planes (etcd, kube-apiserver and
//! kube-controller-manager built from source by `scripts/kube-control-plane.sh`), the
//! third-party CRDs the operator changes, agents that play kubelet and the csi-addons
//! driver (there is no kubelet here), and a realistic application to fail over.
//!
//! The tests in `tests/` run the engine's real adapters against these servers. Control
//! planes are shared by the tests of a run: [`plane::ControlPlane::shared`] starts one on first
//! use (or reuses the one `FAILOVER_KUBECONFIG_<NAME>` points at) and every test works in
//! its own namespace. `scripts/test.sh` stops them at the end.

pub mod agents;
pub mod app;
pub mod dynamodb_container;
pub mod faults;
pub mod monitor;
pub mod operators;
pub mod plane;

use std::time::Duration;

/// Why the harness could not provide what a test needs.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Starting a control plane failed.
    #[error("control plane {0}: {1}")]
    Plane(String, String),
    /// The API server refused or failed a call the harness made.
    #[error("{0}: {1}")]
    Kube(String, #[source] kube::Error),
    /// A condition did not hold within its deadline.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// A malformed harness file.
    #[error("{0}")]
    Invalid(String),
}

/// Poll `check` every 100 ms until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> Result<T, HarnessError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout(timeout, what.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
