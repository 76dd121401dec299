//! Auto-failover: `spec.autoFailover` validation and the standby's watch of the active
//! cluster (the model's trigger fed with heartbeats, health reports and a probe).

use failover_engine::auto::{State, Symptom, Watch};
use failover_engine::spec::{
    AutoFailoverSpec, FailoverGroupSpec, FailoverMode, Group, MembersSpec, ProbeSpec, SpecError,
};
use failover_model::{Cluster, Health, InFlight, Mode, Pending, PlanKind, Record, SpecPrint, Time};

fn spec(auto: Option<AutoFailoverSpec>) -> FailoverGroupSpec {
    FailoverGroupSpec {
        clusters: vec!["east".into(), "west".into()],
        members: MembersSpec {
            deployments: vec!["web".into()],
            ..MembersSpec::default()
        },
        auto_failover: auto,
        ..FailoverGroupSpec::default()
    }
}

fn on() -> AutoFailoverSpec {
    AutoFailoverSpec {
        enabled: true,
        ..AutoFailoverSpec::default()
    }
}

/// The group as `cluster`'s operator sees it (east is home).
fn group(cluster: &str, auto: AutoFailoverSpec) -> Group {
    Group::parse("shop", "shop", &spec(Some(auto)), cluster).expect("valid")
}

fn rejected(auto: AutoFailoverSpec) -> String {
    match Group::parse("shop", "shop", &spec(Some(auto)), "east") {
        Err(e @ SpecError::BadAutoFailover(_)) => e.to_string(),
        other => panic!("expected a BadAutoFailover error, got {other:?}"),
    }
}

#[test]
fn auto_failover_is_off_unless_enabled_and_has_sound_defaults() {
    for auto in [None, Some(AutoFailoverSpec::default())] {
        let g = Group::parse("shop", "shop", &spec(auto), "west").expect("valid");
        assert_eq!(g.auto, None);
    }
    let g = group("west", on());
    let policy = g.auto.expect("enabled");
    assert_eq!(policy.mode, Mode::Consistency);
    assert_eq!(policy.trigger.failures_required, 3);
    assert_eq!(policy.trigger.window, 4_000);
    assert_eq!(policy.trigger.min_interval, 600_000);
    // Two heartbeat intervals and a retry.
    assert_eq!(
        policy.heartbeat_age,
        2 * g.timing.heartbeat_every + g.timing.retry_after
    );
    assert_eq!(policy.probe, None);
    let uptime = group(
        "west",
        AutoFailoverSpec {
            mode: Some(FailoverMode::Uptime),
            ..on()
        },
    );
    assert_eq!(uptime.auto.expect("enabled").mode, Mode::Uptime);
}

#[test]
fn auto_failover_policies_that_would_fire_on_a_blip_are_rejected_with_the_fix() {
    let msg = rejected(AutoFailoverSpec {
        failures_required: Some(1),
        ..on()
    });
    assert!(msg.contains("failuresRequired must be at least 2"), "{msg}");
    let msg = rejected(AutoFailoverSpec {
        window_seconds: Some(20),
        min_interval_seconds: Some(10),
        ..on()
    });
    assert!(msg.contains("minInterval must be at least"), "{msg}");
    let msg = rejected(AutoFailoverSpec {
        heartbeat_age_seconds: Some(1),
        ..on()
    });
    assert!(
        msg.contains("heartbeatAgeSeconds (1) must be at least heartbeatSeconds + retrySeconds"),
        "{msg}"
    );
    let msg = rejected(AutoFailoverSpec {
        heartbeat_age_seconds: Some(600),
        ..on()
    });
    assert!(msg.contains("below leaseSeconds"), "{msg}");
}

#[test]
fn auto_failover_probes_are_checked() {
    let probe = |url: &str, status: Option<u16>, timeout: Option<u64>| AutoFailoverSpec {
        probe: Some(ProbeSpec {
            url: url.into(),
            expected_status: status,
            timeout_seconds: timeout,
        }),
        ..on()
    };
    for url in [
        "ftp://shop",
        "https://",
        "shop.example.com/health",
        "http://a b/",
    ] {
        let msg = rejected(probe(url, None, None));
        assert!(msg.contains("is not an http:// or https:// URL"), "{msg}");
    }
    assert!(rejected(probe("http://shop/", Some(42), None)).contains("not an HTTP status"));
    assert!(rejected(probe("http://shop/", None, Some(0))).contains("between 1 and 30"));
    let g = group(
        "west",
        probe("https://shop.example.com/healthz", Some(204), None),
    );
    let p = g.auto.expect("enabled").probe.expect("probe");
    assert_eq!(
        (p.url.as_str(), p.expected_status, p.timeout.as_secs()),
        ("https://shop.example.com/healthz", 204, 2)
    );
}

/// East (home, A) active and serving, both heartbeating at `hb`.
fn record(hb: Time) -> Record {
    let mut r = Record::new(Cluster::A, [Some(hb), Some(hb)]);
    r.spec = [Some(SpecPrint::default()); 2];
    r.health = [Some(serving()), Some(Health::default())];
    r
}

fn serving() -> Health {
    Health {
        workloads_ready: true,
        traffic_open: true,
    }
}

/// Feed the watch one observation a second from `from` to `to` (seconds), the active
/// cluster heartbeating every second (the default) while `alive(t)`; returns the states.
fn run(
    watch: &mut Watch,
    g: &Group,
    (from, to): (u64, u64),
    alive: impl Fn(u64) -> bool,
    mut report: impl FnMut(u64, &mut Record),
) -> Vec<(u64, State)> {
    let mut r = record(0);
    let mut out = Vec::new();
    for t in from..=to {
        if alive(t) {
            r.heartbeat[0] = Some(t * 1000);
        }
        report(t, &mut r);
        out.push((t, watch.observe(g, &r, t * 1000, None)));
    }
    out
}

fn fired(states: &[(u64, State)]) -> Vec<u64> {
    states
        .iter()
        .filter(|(_, s)| matches!(s, State::Fired(_)))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn the_watch_fires_once_the_active_clusters_heartbeat_stays_stale_for_the_window() {
    let g = group("west", on());
    let mut watch = Watch::new(g.auto.clone().expect("enabled"));
    // The active cluster dies after its heartbeat at 30 s.
    let states = run(&mut watch, &g, (0, 60), |t| t <= 30, |_, _| {});
    // Stale from 30 + 3 (2 × 1 + 1) = 33; failures spanning the 4 s window plus the
    // 3 s a report may be stretched by (two heartbeats and a sample): fires at 40.
    assert_eq!(fired(&states), vec![40]);
    let (_, at_35) = &states[35];
    match at_35 {
        State::Failing {
            since,
            failures,
            symptom,
            fires_at,
        } => {
            assert_eq!((*since, *failures, *fires_at), (33_000, 3, 40_000));
            assert_eq!(*symptom, Symptom::HeartbeatStale(5_000));
        }
        other => panic!("expected Failing at 35 s, got {other:?}"),
    }
    // Once fired it waits out minInterval (600 s) before it could fire again.
    assert_eq!(watch.fired_at(), Some(40_000));
}

#[test]
fn blips_shorter_than_the_window_never_fire() {
    let g = group("west", on());
    let mut watch = Watch::new(g.auto.clone().expect("enabled"));
    // An hour in which the active cluster misses its heartbeats for 7 s of every 30
    // (a heartbeat 8 s old: stale for 5 observations spanning 4 s), and reports its
    // workloads not ready for 3.9 s of every 30 (as one-second reports: 4 of them),
    // half-way between (a run of failures mixing both would be one longer blip): both
    // shorter than the window plus the stretch of a report.
    let states = run(
        &mut watch,
        &g,
        (0, 3600),
        |t| t % 30 >= 7,
        |t, r| {
            r.health[0] = Some(Health {
                workloads_ready: !(15..19).contains(&(t % 30)),
                traffic_open: true,
            })
        },
    );
    assert!(fired(&states).is_empty(), "fired at {:?}", fired(&states));
    assert!(
        states
            .iter()
            .any(|(_, s)| matches!(s, State::Failing { .. })),
        "the blips were seen"
    );
}

#[test]
fn a_live_active_cluster_that_reports_it_does_not_serve_fires_the_watch() {
    let g = group("west", on());
    let mut watch = Watch::new(g.auto.clone().expect("enabled"));
    let states = run(
        &mut watch,
        &g,
        (0, 30),
        |_| true,
        |t, r| {
            r.health[0] = Some(Health {
                workloads_ready: true,
                traffic_open: t < 10,
            })
        },
    );
    assert_eq!(fired(&states), vec![17]);
    assert!(matches!(
        &states[17].1,
        State::Fired(Symptom::TrafficClosed)
    ));
}

#[test]
fn a_failing_probe_fires_the_watch_and_a_missing_report_is_no_evidence() {
    let g = group("west", on());
    let mut watch = Watch::new(g.auto.clone().expect("enabled"));
    let mut r = record(0);
    r.health[0] = None;
    let mut states = Vec::new();
    for t in 0..=10u64 {
        r.heartbeat[0] = Some(t * 1000);
        let probe = (t >= 2).then(|| Err::<(), _>("503 Service Unavailable".to_string()));
        states.push((
            t,
            watch.observe(&g, &r, t * 1000, Some(probe.unwrap_or(Ok(())))),
        ));
    }
    assert!(matches!(states[1].1, State::Healthy));
    assert_eq!(fired(&states), vec![9]);
}

#[test]
fn the_watch_is_disarmed_where_it_must_not_fire_and_paused_while_a_failover_runs() {
    // East is home: its operator never fails the group back, whatever it sees.
    let home = group("east", on());
    let mut watch = Watch::new(home.auto.clone().expect("enabled"));
    let mut away = record(0);
    away.active = Cluster::B;
    for t in 0..100 {
        let s = watch.observe(&home, &away, t * 1000, None);
        assert!(
            matches!(&s, State::Disarmed(why) if why.contains("failing back")),
            "{s:?}"
        );
    }
    // West while west is active.
    let west = group("west", on());
    let mut watch = Watch::new(west.auto.clone().expect("enabled"));
    let s = watch.observe(&west, &away, 100_000, None);
    assert!(
        matches!(&s, State::Disarmed(why) if why == "this cluster is active"),
        "{s:?}"
    );
    // West while a failover is in flight or a request pending: paused, and the run of
    // failures starts again after it.
    let mut watch = Watch::new(west.auto.clone().expect("enabled"));
    let mut r = record(0);
    for t in 0..20 {
        watch.observe(&west, &r, t * 1000, None);
    }
    r.failover = Some(InFlight {
        id: 7,
        kind: PlanKind::Planned(Mode::Consistency),
        source: Cluster::A,
        target: Cluster::B,
        done: 1,
        stuck: false,
        asked: None,
        hooks: failover_model::Hooks::NONE,
    });
    assert!(matches!(
        watch.observe(&west, &r, 20_000, None),
        State::Paused(_)
    ));
    r.failover = None;
    r.request = Some(Pending {
        id: 8,
        to: Cluster::B,
        mode: Mode::Consistency,
        by: Cluster::B,
    });
    assert!(matches!(
        watch.observe(&west, &r, 21_000, None),
        State::Paused(_)
    ));
    r.request = None;
    match watch.observe(&west, &r, 22_000, None) {
        State::Failing {
            since, failures, ..
        } => assert_eq!((since, failures), (22_000, 1)),
        other => panic!("expected a new run of failures, got {other:?}"),
    }
}
