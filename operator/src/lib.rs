//! The operator process that runs in each cluster (`failover-operator`): the
//! `FailoverGroup` and `Failover` controllers ([`controllers`]), one long-lived engine
//! loop per group ([`group`]), the group's and the request's status, and the probes
//! ([`http`]). Configuration in [`config`].

pub mod config;
pub mod controllers;
pub mod group;
pub mod http;
