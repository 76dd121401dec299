//! The production side of the failover framework: it executes the protocol that
//! `failover_model` checks, against real clusters and a real DynamoDB table.
//!
//! - [`ports`]: the narrow traits through which the engine does all IO (a cluster's
//!   API, the global store, the clock), with their failure contracts;
//! - `k8s` and `dynamo`: the real adapters (kube-rs, aws-sdk-dynamodb), behind the
//!   features `kube-client` and `dynamodb` (on by default; the simulator builds the
//!   engine without them);
//! - [`member`]: what a stop or a start does to one member (one home for every adapter
//!   that keeps members in memory);
//! - `memory`: in-memory adapters with exact semantics, for tests (feature `testkit`);
//! - [`spec`]: a group's spec, parsed once into a validated [`spec::Group`];
//! - [`observe`]: folds a group's members into the model's `ClusterState`;
//! - [`effects`]: how the model's effects are carried out: every member of the
//!   effect's class set one way, with bounded parallelism;
//! - [`executor`]: the loop that asks [`failover_model::decide`] what to do next and
//!   does exactly that, journaling progress in the store so a restart resumes;
//! - [`auto`]: auto-failover, the standby's watch of the active cluster (the model's
//!   trigger fed with heartbeats, health reports and a probe);
//! - [`dryrun`]: the plan, object by object and field by field, changing nothing;
//! - [`pictures`]: the protocol's states as timeline pieces (bands, the record lane,
//!   stages from the journal), shared by every picture;
//! - [`timeline`]: one picture of a failover over time (stage spans, state bands, the
//!   record, faults, the first violation), as SVG or self-contained HTML; pure;
//! - [`trail`]: what the record keeps about each failover for people (who asked, when
//!   each stage ran), never read by a decision;
//! - `conformance`: the port conformance suite every adapter and fake must pass
//!   (feature `testkit`).
//!
//! The engine never makes a protocol decision of its own: every choice comes from
//! `failover_model::core`.

pub mod auto;
#[cfg(feature = "testkit")]
pub mod conformance;
pub mod dryrun;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod effects;
pub mod executor;
pub mod hooks;
#[cfg(feature = "kube-client")]
pub mod k8s;
pub mod member;
#[cfg(feature = "testkit")]
pub mod memory;
pub mod observe;
pub mod pictures;
pub mod ports;
pub mod recovery;
pub mod spec;
pub mod timeline;
pub mod trail;
