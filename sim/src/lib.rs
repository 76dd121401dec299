//! `failover-sim`: deterministic chaos runs of the real engine, checked against the model.
//!
//! - [`runtime`]: a single-threaded executor on virtual time (FIFO polling, time moves
//!   only when nothing can run), so one seed gives one run;
//! - [`world`]: the fake clusters (objects, resourceVersions, controllers that move
//!   status after random delays, Flux reverting unsuspended clusters to git, hooks'
//!   Jobs, execs and HTTP endpoints that succeed, fail or hang) and the
//!   fake DynamoDB (exact conditional writes, throttling, unavailability, writes that
//!   apply but time out, writes delayed in transit), with partitions and disasters;
//! - [`run`]: one seed: shape, mode, swarm faults, the engine's operators, invariants
//!   after every event, every turn replayed through the stateright model ([`replay`]),
//!   a fault phase then a healed phase with a liveness bound;
//! - [`campaign`]: many seeds on several threads, and the summary;
//! - [`timeline`] and [`picture`]: a run as numbered lines, and as one picture (SVG or
//!   HTML) of stages, state bands, the record, faults and the first violation;
//! - [`auto`]: the standby's auto-failover watch in the simulated operator, an hour of a
//!   flapping health signal (nothing may fire) and the active cluster's death (measured:
//!   death to the standby serving).

/// The simulator allocates many small objects per event (object references, member
/// lists); mimalloc roughly halves the time the system allocator spends on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod auto;
pub mod campaign;
pub mod picture;
pub mod replay;
pub mod rng;
pub mod run;
pub mod runtime;
pub mod timeline;
pub mod world;
