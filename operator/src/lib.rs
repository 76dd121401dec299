//! The operator process that runs in each cluster (`failover-operator`): the
//! `FailoverGroup` and `Failover` controllers ([`controllers`]), one long-lived engine
//! loop per group ([`group`]), the group's and the request's status, and the probes
//! and metrics ([`http`], [`metrics`]). Configuration in [`config`]; leader election
//! among a cluster's replicas in the binary.

pub mod auto;
pub mod config;
pub mod controllers;
pub mod group;
pub mod http;
pub mod metrics;
