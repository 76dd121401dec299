//! The protocol core: pure data and pure functions. No IO, no async, no clock reads, no
//! randomness, no Kubernetes or AWS types (a test scans these files to keep it so).
//! The stateright model, the simulator and the engine all call into this module.

pub mod decide;
pub mod hooks;
pub mod invariants;
pub mod plan;
pub mod store;
pub mod trigger;
pub mod types;
