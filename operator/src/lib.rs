//! The operator process that runs in each cluster (`failover-operator`): the
//! `FailoverGroup` and `Failover` controllers ([`controllers`]), one long-lived engine
//! loop per group ([`group`]), the group's and the request's status, and the probes
//! and metrics ([`http`], [`metrics`]). Configuration in [`config`]; leader election
//! among a cluster's replicas and the process itself in [`run`], which the binary
//! calls.

pub mod access;
pub mod auto;
pub mod config;
pub mod controllers;
pub mod group;
pub mod http;
pub mod metrics;
/// The operator process: arguments, runtime, tracing, leader election, probes and
/// metrics, shutdown on SIGTERM or SIGINT. The binary's `main` calls [`run::main_with`].
pub mod run;
