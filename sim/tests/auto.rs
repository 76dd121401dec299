//! Auto-failover in the simulator, with the real executor against the fakes: an hour
//! of a flapping health signal fires nothing; when the active cluster dies, the
//! standby's watch fires, the failover completes forced and the standby serves in time.
//! A failure names the seed and the command that replays it.

use failover_sim::auto::{AutoConfig, AutoReport, Blip, Scenario, run_auto, run_many, summary};

fn runs(scenario: Scenario, seeds: std::ops::Range<u64>) -> Vec<AutoReport> {
    let configs: Vec<AutoConfig> = seeds.map(|s| AutoConfig::new(scenario, s)).collect();
    run_many(&configs, 4)
}

fn no_problems(reports: &[AutoReport]) {
    let (text, problems) = summary(reports);
    println!("{text}");
    assert_eq!(problems, 0, "{text}");
}

#[test]
fn a_flapping_hour_fires_nothing() {
    let reports = runs(Scenario::Flapping, 0..8);
    no_problems(&reports);
    for r in &reports {
        let replay = r.replay_command();
        // The signal did flap, both ways, and the watch saw it fail.
        let (cut, unready) = (r.count(Blip::CutOff), r.count(Blip::PodsNotReady));
        assert!(cut > 30 && unready > 30, "{cut} {unready}: {replay}");
        assert!(
            r.watch.failing > 0 && r.watch.stale > 0,
            "{:?}: {replay}",
            r.watch
        );
        assert!(r.watch.longest >= 2, "{:?}: {replay}", r.watch);
        assert_eq!(r.watch.observations, 3_600, "{replay}");
        assert!(r.watch.fired.is_empty() && r.failovers == 0, "{replay}");
    }
}

#[test]
fn the_standby_takes_over_when_the_active_cluster_dies() {
    let reports = runs(Scenario::Death, 0..40);
    no_problems(&reports);
    for r in &reports {
        let replay = r.replay_command();
        let fired = r.death_to_fired().expect("fired");
        let forced = r.death_to_forced().expect("forced");
        let serving = r.death_to_serving().expect("serving");
        // Fired on the stale heartbeat, before the protocol could force; forced only
        // once the dead cluster's lease provably ran out (its last heartbeat came at
        // most one interval before the death).
        assert!(r.watch.fired[0].1.contains("heartbeat"), "{replay}");
        assert!(fired < forced && forced <= serving, "{replay}");
        let lease = r.timing.lease_ttl + r.timing.clock_drift_max;
        assert!(forced + r.timing.heartbeat_every >= lease, "{replay}");
        assert_eq!(r.watch.fired.len(), 1, "{replay}");
    }
}

#[test]
fn auto_runs_replay_exactly() {
    for scenario in [Scenario::Flapping, Scenario::Death] {
        let cfg = AutoConfig {
            timeline: true,
            ..AutoConfig::new(scenario, 5)
        };
        let (a, b) = (run_auto(cfg), run_auto(cfg));
        assert_eq!(a.run.trace_hash, b.run.trace_hash, "{}", a.replay_command());
        assert_eq!(a.run.timeline, b.run.timeline, "{}", a.replay_command());
        assert_eq!(a.watch, b.watch, "{}", a.replay_command());
        assert_eq!(a.serving_at, b.serving_at, "{}", a.replay_command());
    }
}
