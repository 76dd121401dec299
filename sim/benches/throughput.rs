//! Throughput benchmark (not a timed test): simulated failovers per second per core for
//! a group of 20 workloads and 5 volumes, without faults and with the swarm profile (hooks
//! as the seeds draw them), and without faults with hooks in every run, and the ratio of
//! simulated to wall time. Prints figures measured in this run only.
//!
//! `cargo bench -p failover-sim --bench throughput`

use std::time::Instant;

use failover_model::Variant;
use failover_sim::run::{Hooking, Profile, RunConfig, run};

fn measure(profile: Profile, hooks: Hooking, seeds: u64) -> (f64, f64, usize) {
    let started = Instant::now();
    let mut sim_ms = 0u64;
    let mut done = 0;
    for seed in 0..seeds {
        let r = run(RunConfig {
            seed,
            mode: None,
            profile,
            variant: Variant::Correct,
            shape: Some((20, 5)),
            timeline: false,
            hooks,
            driver_lag: None,
            watch_lag: 0,
        });
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
        sim_ms += r.sim_ms;
        done += usize::from(r.outcome.is_some());
    }
    let wall = started.elapsed().as_secs_f64();
    (seeds as f64 / wall, sim_ms as f64 / 1000.0 / wall, done)
}

fn main() {
    // One thread: the figures are per core.
    // The first two as before hooks (the seeds draw them: none without faults, half
    // of the swarm seeds); the third gives every fault-free run the three hooks.
    for (name, profile, hooks, seeds) in [
        ("no faults", Profile::None, Hooking::Drawn, 3000),
        ("swarm faults", Profile::Swarm, Hooking::Drawn, 1000),
        ("hooks, no faults", Profile::None, Hooking::On, 3000),
    ] {
        let (per_sec, ratio, done) = measure(profile, hooks, seeds);
        println!(
            "{name:<16} 20 workloads x 5 volumes: {per_sec:.0} failovers/s per core, \
             simulated/wall time {ratio:.0}x ({done}/{seeds} failovers ended)"
        );
    }
}
