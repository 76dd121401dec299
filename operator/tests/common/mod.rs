//! What the operator tests share: the harness of [`failover_integration::operators`]
//! (the operator as real processes, the two sites, following a `Failover`), with the
//! operator started from its built binary.
// Each test binary uses a part of what is here.
#![allow(dead_code, unused_imports)]
pub use std::path::PathBuf;
pub use std::process::{Child, Command, Stdio};
pub use std::time::Duration;

pub use failover_engine::dynamo::{create_table, local_client};
pub use failover_engine::k8s::KubeCluster;
pub use failover_engine::ports::{ClusterPort, Desired};
pub use failover_engine::spec::{
    Failover, FailoverGroup, FailoverGroupSpec, FailoverMode, FailoverSpec,
};
pub use failover_integration::agents::Agents;
pub use failover_integration::app;
pub use failover_integration::plane::{ControlPlane, dynamodb_endpoint, unique_name};
pub use failover_integration::wait_for;
pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::{CustomResourceExt, ResourceExt};

pub use failover_integration::operators::*;

/// The operator's own binary.
pub fn launcher() -> Launcher {
    Launcher::Binary(env!("CARGO_BIN_EXE_failover-operator").into())
}
