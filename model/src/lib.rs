//! The two-cluster failover protocol, written once as pure code, and the stateright
//! model that checks it.
//!
//! - [`core`] owns the protocol: vocabulary, plans per mode, the decision function, the
//!   store's conditional-write semantics, the invariants and the auto-failover trigger.
//!   It performs no IO, reads no clock and draws no random numbers: time and
//!   observations are arguments, effects are returned as data.
//! - [`check`] drives two operators running [`core::decide::decide`] against a model of
//!   DynamoDB and both clusters, with crashes, ambiguous writes, API errors, partitions,
//!   a disaster and bounded clock drift, and checks the invariants over every
//!   interleaving.
//!
//! The engine executes the same decisions against real clusters; the simulator runs the
//! engine against fakes and replays its traces through [`check`].

pub mod check;
pub mod core;

pub use core::decide::{
    Action, Decision, Inputs, Memory, PeerSeen, Progress, Purpose, Reply, Wake, decide, lease_ok,
    refusal, stamp,
};
pub use core::hooks::{HookRun, HookSpot, Hooks, MAX_HOOKS, OnFailure};
pub use core::invariants::{Audit, Invariant, Snapshot};
pub use core::plan::{
    Desired, Effect, EffectSet, Plan, PlanStep, Resource, START, STOP, Step, StepKind, Variant,
    stopped,
};
pub use core::store::{ConditionFailed, Intervention, Op, Write, apply};
pub use core::types::*;
