//! The deterministic simulator (not built yet; see the issue "Simulator: deterministic
//! chaos runs of the real engine, checked against the model").
//!
//! It will own the fakes behind the engine's ports, virtual time, seeded fault
//! injection, and the replay of each run's trace through `failover_model::check`.
