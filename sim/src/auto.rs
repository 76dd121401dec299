//! Auto-failover in the simulator: the standby operator's watch of the active cluster
//! (the engine's [`Watch`], fed once a second of virtual time with the record as that
//! operator last saw it and its own monotonic clock), which, when it fires, asks for a
//! failover to its cluster exactly as a person's `Failover` object would.
//!
//! Two scenarios, each with the real engine executor against the fakes, every turn
//! replayed through the model and the invariants checked after every event:
//!
//! - [`Scenario::Flapping`]: one hour with the home cluster active and no request, while
//!   its health signal flaps with blips shorter than the watch's window (its operator cut
//!   off from DynamoDB for a few seconds, its pods not ready for a moment). Nothing may
//!   fire and no failover may happen.
//! - [`Scenario::Death`]: the active cluster dies for good at a drawn moment; the watch
//!   fires, the protocol forces the failover once the dead cluster's lease provably ran
//!   out, and the standby serves. Measured: death to serving, in simulated time.
//!
//! Only these runs turn `spec.autoFailover` on; every other run is as it was.

use std::sync::Arc;

use failover_engine::auto::{AutoPolicy, State, Symptom, Watch};
use failover_engine::observe::fold_states;
use failover_engine::ports::{Clock, Kind, MemberState};
use failover_engine::spec::{AutoFailoverSpec, FailoverMode, Group};
use failover_model::check::Asked;
use failover_model::{
    Cluster, ClusterState, Mode, Op, Outcome, PlanKind, Request, Time, Timing, Variant,
};

use crate::rng::Rng;
use crate::run::{
    Ctx, Drawn, LineKind, Profile, RunConfig, RunReport, Scheduled, Sim, Violation, at_rest, lock,
    setup_with,
};
use crate::runtime::{SimClock, TaskFuture};
use crate::world::{ClusterWorld, FaultKind};

/// The executor slot of the watch task.
pub(crate) const WATCH_SLOT: usize = 3;
/// The watch observes once a second, as the operator's does.
const EVERY: Time = 1_000;
/// The ids of the watch's requests (the `n`th firing asks with `AUTO_ID + n`).
const AUTO_ID: u64 = 0xa070_0000;
/// The flapping scenario's length.
pub const HOUR: Time = 3_600_000;
/// The death scenario gives up this long after the death.
const GIVE_UP: Time = 120_000;
/// The shortest blip drawn.
const SHORTEST: Time = 500;

/// What the watch saw during a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchLog {
    /// Observations made (applicable or not).
    pub observations: u64,
    /// Observations that found the active cluster failing ([`State::Failing`]).
    pub failing: u64,
    /// Of those, how many saw its heartbeat stale.
    pub stale: u64,
    /// The longest run of failed observations in a row that did not fire.
    pub longest: u32,
    /// Each firing: when (true time, ms) and why.
    pub fired: Vec<(Time, String)>,
}

/// Which scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// An hour of blips shorter than the window: nothing may fire.
    Flapping,
    /// The active cluster dies: the watch fires and the standby takes over.
    Death,
}

impl Scenario {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Flapping => "flapping",
            Scenario::Death => "death",
        }
    }

    /// Parse a CLI name.
    pub fn from_name(s: &str) -> Option<Scenario> {
        match s {
            "flapping" => Some(Scenario::Flapping),
            "death" => Some(Scenario::Death),
            _ => None,
        }
    }
}

/// A blip of the active cluster's health in the flapping hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blip {
    /// Its operator cut off from DynamoDB: its heartbeat stands still.
    CutOff,
    /// Its pods not ready: its heartbeats report it.
    PodsNotReady,
}

/// What decides an auto-failover run.
#[derive(Clone, Copy, Debug)]
pub struct AutoConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// The longest spell of pods not ready the flapping hour draws (ms); default
    /// [`unready_max`]: just under the window.
    pub unready_max: Option<Time>,
    /// Keep a readable timeline.
    pub timeline: bool,
}

impl AutoConfig {
    /// `scenario` on `seed`, the defaults otherwise.
    pub fn new(scenario: Scenario, seed: u64) -> AutoConfig {
        AutoConfig {
            scenario,
            seed,
            unready_max: None,
            timeline: false,
        }
    }
}

/// The longest spell of pods not ready the flapping hour draws: just under the window.
/// The report of readiness travels with the heartbeat, so a spell of `s` stands in the
/// record for the heartbeats made during it (up to `s + heartbeat`), and the standby
/// reads the record once per heartbeat (up to one more); the watch allows for that
/// stretch ([`failover_engine::auto::report_stretch`]), which this simulator found
/// missing (spells of 3.0 to 4.0 s fired a 4 s window in 124 of 200 hours).
pub fn unready_max(_timing: &Timing, policy: &AutoPolicy) -> Time {
    policy.trigger.window - 1
}

/// The longest the standby may take to serve after the death: the dead cluster's last
/// heartbeat (up to one interval before it), the standby's read of it (up to one more),
/// the lease and drift the protocol waits before forcing, and the controllers promoting
/// the volumes and then rolling out the workloads (each up to the fakes' longest delay),
/// with a second to spare for the operator's own turns.
pub fn takeover_bound(timing: &Timing, controller_max: Time) -> Time {
    2 * timing.heartbeat_every
        + timing.lease_ttl
        + timing.clock_drift_max
        + 2 * controller_max
        + 1_000
}

/// What an auto-failover run produced.
#[derive(Clone, Debug)]
pub struct AutoReport {
    /// What decided it.
    pub config: AutoConfig,
    /// The run as any run reports it (its `mode` is the watch's policy mode, its
    /// `outcome` the outcome of the watch's request, if it made one).
    pub run: RunReport,
    /// The group's timing.
    pub timing: Timing,
    /// The watch's policy.
    pub policy: AutoPolicy,
    /// The blips drawn: when each begins (true time, ms), how long it lasts, what it is.
    pub blips: Vec<(Time, Time, Blip)>,
    /// The longest of each kind of blip drawn (ms).
    pub blip_max: (Time, Time),
    /// What the watch saw.
    pub watch: WatchLog,
    /// When the active cluster died (true time, ms).
    pub died_at: Option<Time>,
    /// When the standby's forced takeover (`ForceTakeLock`) applied.
    pub forced_at: Option<Time>,
    /// When the standby cluster first served after it (workloads ready, traffic open,
    /// volumes primary).
    pub serving_at: Option<Time>,
    /// Failovers the record started (entries in its history, one in flight, a request).
    pub failovers: usize,
    /// [`takeover_bound`] for this run.
    pub bound: Time,
}

impl AutoReport {
    /// How many blips of `kind` were drawn.
    pub fn count(&self, kind: Blip) -> usize {
        self.blips.iter().filter(|b| b.2 == kind).count()
    }

    /// The last blip that began before the watch first fired.
    pub fn blip_before_firing(&self) -> Option<(Time, Time, Blip)> {
        let (fired, _) = self.watch.fired.first()?;
        self.blips.iter().rev().find(|b| b.0 < *fired).copied()
    }

    /// From the death to the standby serving (ms).
    pub fn death_to_serving(&self) -> Option<Time> {
        Some(self.serving_at? - self.died_at?)
    }

    /// From the death to the watch's first firing (ms).
    pub fn death_to_fired(&self) -> Option<Time> {
        Some(self.watch.fired.first()?.0 - self.died_at?)
    }

    /// From the death to the forced takeover (ms).
    pub fn death_to_forced(&self) -> Option<Time> {
        Some(self.forced_at? - self.died_at?)
    }

    /// The command that replays this run with its timeline.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "scripts/sim.sh auto --scenario {} --seed {} --timeline",
            self.config.scenario.name(),
            self.config.seed
        );
        if let Some(max) = self.config.unready_max {
            cmd.push_str(&format!(" --unready-max-ms {max}"));
        }
        cmd
    }

    /// What is wrong with this run, if anything: a violation, and what the scenario
    /// requires (flapping: nothing fires, no failover; death: the watch fires, the
    /// failover completes forced, the standby serves within [`AutoReport::bound`]).
    pub fn problem(&self) -> Option<String> {
        if let Some(v) = &self.run.violation {
            return Some(v.to_string());
        }
        let fired = self.watch.fired.first();
        match self.config.scenario {
            Scenario::Flapping => match fired {
                Some((at, why)) => Some(format!("the watch fired at {at} ms: {why}")),
                None if self.failovers > 0 => Some("a failover happened".into()),
                None => None,
            },
            Scenario::Death => {
                if fired.is_none() {
                    return Some("the watch never fired".into());
                }
                if self.run.outcome != Some(Outcome::Completed(PlanKind::Forced)) {
                    return Some(format!(
                        "the failover ended {:?}, not completed-forced",
                        self.run.outcome
                    ));
                }
                match self.death_to_serving() {
                    Some(t) if t <= self.bound => None,
                    Some(t) => Some(format!(
                        "death to serving took {t} ms (bound {} ms)",
                        self.bound
                    )),
                    None => Some("the standby never served".into()),
                }
            }
        }
    }
}

/// Cluster `cw`'s state as if every workload's pods were ready: what the invariants
/// judge while a [`Scheduled::PodsReady`] blip holds (the environment took readiness
/// away, no step of the operator's).
pub(crate) fn as_if_ready(cw: &ClusterWorld) -> ClusterState {
    let readied: Vec<(Kind, MemberState)> = cw
        .objects
        .iter()
        .map(|(r, o)| {
            let mut state = o.state.clone();
            if let MemberState::Workload { ready, .. } = &mut state {
                *ready = true;
            }
            (r.kind, state)
        })
        .collect();
    fold_states(readied.iter().map(|(k, s)| (*k, s)))
}

/// The cluster whose operator runs the watch: not the group's home (the watch only
/// moves a group away from it), where the spec turns auto-failover on.
pub(crate) fn watcher(groups: &[Group; 2]) -> Option<Cluster> {
    groups
        .iter()
        .find(|g| g.auto.is_some() && g.me != g.initial_active)
        .map(|g| g.me)
}

/// The watch task of cluster `c`'s operator: once a second, the record as the operator
/// last saw it and its monotonic clock into the engine's [`Watch`]; when it fires, the
/// request a person's `Failover` object would make (to `c`, in the policy's mode).
pub(crate) fn watch(ctx: Arc<Ctx>, c: Cluster) -> TaskFuture {
    Box::pin(async move {
        let group = ctx.groups[c.index()].clone();
        let Some(policy) = group.auto.clone() else {
            return;
        };
        let mut watch = Watch::new(policy.clone());
        let clock = SimClock::new(ctx.time.clone(), ctx.clocks[c.index()].clone());
        let mut tick = ctx.time.now();
        let mut last = "";
        loop {
            tick += EVERY;
            ctx.time.until(tick).await;
            let Some(record) = lock(&ctx.views)[c.index()].clone() else {
                continue;
            };
            let state = watch.observe(&group, &record, clock.mono(), None);
            let now = ctx.time.now();
            let mut seen = lock(&ctx.watch);
            seen.observations += 1;
            if let State::Failing {
                failures, symptom, ..
            } = &state
            {
                seen.failing += 1;
                seen.stale += u64::from(matches!(symptom, Symptom::HeartbeatStale(_)));
                seen.longest = seen.longest.max(*failures);
            }
            let mut log = lock(&ctx.log);
            if let State::Fired(symptom) = &state {
                seen.fired.push((now, symptom.to_string()));
                let request = Request {
                    id: AUTO_ID + seen.fired.len() as u64,
                    to: c,
                    mode: policy.mode,
                };
                lock(&ctx.asked)[c.index()] = Some(Asked {
                    request,
                    refused: false,
                    withdrawn: false,
                });
                log.mix(0xa070_f1ed ^ (now << 16));
                log.line(now, Some(c), None, LineKind::Note, || {
                    format!(
                        "auto-failover watch FIRED ({symptom}): request {:x} (an automatic \
                         Failover object here): fail over to {c} ({})",
                        request.id, policy.mode
                    )
                });
            } else if state.name() != last {
                log.line(now, Some(c), None, LineKind::Note, || match &state {
                    State::Failing { symptom, .. } => format!("auto-failover watch: {symptom}"),
                    s => format!("auto-failover watch: {}", s.name()),
                });
            }
            last = state.name();
        }
    })
}

/// Run one auto-failover scenario on one seed.
pub fn run_auto(cfg: AutoConfig) -> AutoReport {
    let seed = cfg.seed;
    // The watch's mode and the scenario's faults, from a stream of their own.
    let mut own = Rng::new(seed ^ 0xa070_0000_0000_000a);
    let mode = if own.chance(0.5) {
        Mode::Consistency
    } else {
        Mode::Uptime
    };
    let run_cfg = RunConfig {
        seed,
        mode: Some(mode),
        profile: Profile::None,
        variant: Variant::Correct,
        shape: None,
        timeline: cfg.timeline,
        // The auto-failover figures are measured without hooks.
        hooks: crate::run::Hooking::Off,
        driver_lag: None,
        watch_lag: 0,
    };
    let auto = AutoFailoverSpec {
        enabled: true,
        mode: Some(match mode {
            Mode::Consistency => FailoverMode::Consistency,
            Mode::Uptime => FailoverMode::Uptime,
        }),
        ..AutoFailoverSpec::default()
    };
    let mut rng = Rng::new(seed);
    let setup = setup_with(&run_cfg, &mut rng, Some(auto));
    let timing = setup.timing;
    let home = setup.ctx.groups[0].initial_active;
    let standby = home.peer();
    let policy = setup.ctx.groups[standby.index()]
        .auto
        .clone()
        .expect("auto-failover is on");
    let bound = takeover_bound(&timing, setup.ctx.delays.1);
    let window = policy.trigger.window;
    // Cut off from DynamoDB for up to a second below the window: the heartbeat then
    // stands in the standby's view for up to the cut, a heartbeat before it, a retry
    // after it and one read interval of the standby, which the default `heartbeat_age`
    // (two heartbeats and a retry) covers but for the cut.
    let cut_max = window - EVERY;
    let unready_max = cfg.unready_max.unwrap_or(unready_max(&timing, &policy));
    let mut schedule = Vec::new();
    let mut blips = Vec::new();
    let mut died_at = None;
    match cfg.scenario {
        Scenario::Flapping => {
            // One blip at a time, from the first minute on, 8 to 40 s apart.
            let mut at = own.range(20_000, 60_000);
            while at < HOUR - 30_000 {
                let d = if own.chance(0.5) || unready_max < SHORTEST {
                    let d = own.range(EVERY, cut_max);
                    blips.push((at, d, Blip::CutOff));
                    schedule.push((at, Scheduled::Cut(home, FaultKind::PartitionStore)));
                    schedule.push((at + d, Scheduled::Uncut(home, FaultKind::PartitionStore)));
                    d
                } else {
                    let d = own.range(SHORTEST, unready_max);
                    blips.push((at, d, Blip::PodsNotReady));
                    schedule.push((at, Scheduled::PodsReady(home, false)));
                    schedule.push((at + d, Scheduled::PodsReady(home, true)));
                    d
                };
                at += d + own.range(8_000, 40_000);
            }
        }
        Scenario::Death => {
            let at = own.range(30_000, 90_000);
            died_at = Some(at);
            schedule.push((at, Scheduled::Disaster(home)));
        }
    }
    let drawn = Drawn::only(schedule, Rng::new(seed ^ 0xa070_0000_0000_000b));
    let mut sim = Sim::start(setup, drawn, &mut rng);
    let end = died_at.map_or(HOUR, |d| d + GIVE_UP);
    sim.end_by = end;
    let mut serving_at = None;
    loop {
        if !sim.poll_operators() {
            break;
        }
        let now = sim.setup.time.now();
        if let Some(d) = died_at
            && now >= d
        {
            let ctx = &sim.setup.ctx;
            if serving_at.is_none() && lock(&ctx.world.0).cluster_state(standby).serves() {
                serving_at = Some(now);
                lock(&ctx.log).line(now, Some(standby), None, LineKind::Note, || {
                    format!("{standby} SERVES, {} ms after the death", now - d)
                });
            }
            if serving_at.is_some() && at_rest(ctx) {
                break;
            }
            if now > end {
                lock(&ctx.log).violate(Violation::Liveness(format!(
                    "{standby} did not take over within {} s of the death",
                    GIVE_UP / 1000
                )));
                break;
            }
        }
        let Some(next) = sim.advance(now) else {
            break;
        };
        if next > end {
            break;
        }
        sim.world_events(next);
        sim.scheduled_faults(next);
    }
    let ctx = sim.setup.ctx.clone();
    let watch = lock(&ctx.watch).clone();
    let (record, forced_at) = {
        let w = lock(&ctx.world.0);
        let forced = w.writes.iter().find_map(|(at, _, write, _)| {
            matches!(write.op, Op::ForceTakeLock { .. }).then_some(*at)
        });
        (w.record.clone(), forced)
    };
    let mut run = sim.report(seed);
    run.mode = mode;
    run.total_ms = None;
    run.outcome = record
        .as_ref()
        .and_then(|r| (1..=watch.fired.len() as u64).find_map(|n| r.outcome_of(AUTO_ID + n)));
    let failovers = record.as_ref().map_or(0, |r| {
        r.history.len() + usize::from(r.failover.is_some() || r.request.is_some())
    });
    AutoReport {
        config: cfg,
        run,
        timing,
        policy,
        blips,
        blip_max: (cut_max, unready_max),
        watch,
        died_at,
        forced_at,
        serving_at,
        failovers,
        bound,
    }
}

/// Run `configs` on `jobs` threads; the reports in the configs' order.
pub fn run_many(configs: &[AutoConfig], jobs: usize) -> Vec<AutoReport> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::with_capacity(configs.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(cfg) = configs.get(i) else { break };
                    let r = run_auto(*cfg);
                    lock(&done).push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Minimum, median and maximum of `values` (ms), as seconds.
pub fn spread(values: &[Time]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let s = |t: Time| t as f64 / 1000.0;
    let median = if v.len() % 2 == 1 {
        s(v[v.len() / 2])
    } else {
        (s(v[v.len() / 2 - 1]) + s(v[v.len() / 2])) / 2.0
    };
    Some((s(v[0]), median, s(v[v.len() - 1])))
}

/// The summary of `reports` (any mix of scenarios and settings, grouped as they come),
/// and how many of them have a [`AutoReport::problem`]; each problem names its seed and
/// the command that replays it.
pub fn summary(reports: &[AutoReport]) -> (String, usize) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |t: Time| t as f64 / 1000.0;
    let Some(first) = reports.first() else {
        return ("no runs\n".into(), 0);
    };
    let (t, p) = (&first.timing, &first.policy);
    let _ = writeln!(
        out,
        "timing: lease {} s, drift {} s, fence margin {} s, heartbeat {} s, retry {} s; \
         watch once a second: {} failed observations over {} s, heartbeat stale after {} s",
        secs(t.lease_ttl),
        secs(t.clock_drift_max),
        secs(t.fence_margin),
        secs(t.heartbeat_every),
        secs(t.retry_after),
        p.trigger.failures_required,
        secs(p.trigger.window),
        secs(p.heartbeat_age)
    );
    let mut problems = Vec::new();
    let mut groups: Vec<(Scenario, Option<Time>, Vec<&AutoReport>)> = Vec::new();
    for r in reports {
        let key = (r.config.scenario, r.config.unready_max);
        match groups.iter_mut().find(|g| (g.0, g.1) == key) {
            Some(g) => g.2.push(r),
            None => groups.push((key.0, key.1, vec![r])),
        }
        if let Some(why) = r.problem() {
            problems.push(format!(
                "  seed {} ({}): {why}\n    replay: {}",
                r.config.seed,
                r.config.scenario.name(),
                r.replay_command()
            ));
        }
    }
    for (scenario, _, rs) in &groups {
        let n = rs.len();
        let seeds = format!(
            "{} seed(s) {}..={}",
            n,
            rs.iter().map(|r| r.config.seed).min().unwrap_or(0),
            rs.iter().map(|r| r.config.seed).max().unwrap_or(0)
        );
        let violations = rs.iter().filter(|r| r.run.violation.is_some()).count();
        match scenario {
            Scenario::Flapping => {
                let sum = |f: &dyn Fn(&AutoReport) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
                let (cut_max, unready_max) = rs[0].blip_max;
                let fired_hours = rs.iter().filter(|r| !r.watch.fired.is_empty()).count();
                let _ = writeln!(
                    out,
                    "flapping hour, {seeds}: the home cluster active, no request; one blip at \
                     a time, 8 to 40 s apart: its operator cut off from DynamoDB for 1 to \
                     {:.1} s, or its pods not ready for {:.1} to {:.1} s",
                    secs(cut_max),
                    secs(SHORTEST),
                    secs(unready_max)
                );
                let failing = sum(&|r| r.watch.failing);
                let stale = sum(&|r| r.watch.stale);
                let _ = writeln!(
                    out,
                    "  blips {} ({} cut off, {} pods not ready); observations {}, failing {} \
                     ({} heartbeat stale, {} not ready); longest run of failures {}",
                    sum(&|r| r.blips.len() as u64),
                    sum(&|r| r.count(Blip::CutOff) as u64),
                    sum(&|r| r.count(Blip::PodsNotReady) as u64),
                    sum(&|r| r.watch.observations),
                    failing,
                    stale,
                    failing - stale,
                    rs.iter().map(|r| r.watch.longest).max().unwrap_or(0)
                );
                // What fired the watch: the blip before each first firing.
                let culprits: Vec<(Time, Time, Blip)> =
                    rs.iter().filter_map(|r| r.blip_before_firing()).collect();
                let after = |kind: Blip| {
                    let v: Vec<Time> = culprits
                        .iter()
                        .filter(|b| b.2 == kind)
                        .map(|b| b.1)
                        .collect();
                    let (min, max) = (v.iter().min(), v.iter().max());
                    min.zip(max)
                        .map(|(a, b)| {
                            format!(
                                " ({} after {:?}: {:.3} to {:.3} s)",
                                v.len(),
                                kind,
                                secs(*a),
                                secs(*b)
                            )
                        })
                        .unwrap_or_default()
                };
                let _ = writeln!(
                    out,
                    "  fired {} time(s), in {fired_hours} of {n} hour(s){}{}; failovers {}; \
                     violations {violations}",
                    sum(&|r| r.watch.fired.len() as u64),
                    after(Blip::CutOff),
                    after(Blip::PodsNotReady),
                    rs.iter().map(|r| r.failovers).sum::<usize>()
                );
            }
            Scenario::Death => {
                let _ = writeln!(
                    out,
                    "death, {seeds}: the active cluster gone for good 30 to 90 s in \
                     (its operator and its API with it)"
                );
                let line = |what: &str, v: Vec<Time>| match spread(&v) {
                    Some((min, med, max)) => format!(
                        "  {what:<17} min {min:5.1} s  median {med:5.1} s  max {max:5.1} s  ({} runs)",
                        v.len()
                    ),
                    None => format!("  {what:<17} -"),
                };
                let fired: Vec<Time> = rs.iter().filter_map(|r| r.death_to_fired()).collect();
                let forced: Vec<Time> = rs.iter().filter_map(|r| r.death_to_forced()).collect();
                let serving: Vec<Time> = rs.iter().filter_map(|r| r.death_to_serving()).collect();
                let within_20 = serving.iter().filter(|t| **t <= 20_000).count();
                let _ = writeln!(out, "{}", line("death to fired", fired));
                let _ = writeln!(out, "{}", line("death to forced", forced));
                let _ = writeln!(out, "{}", line("death to serving", serving));
                let forced_done = rs
                    .iter()
                    .filter(|r| r.run.outcome == Some(Outcome::Completed(PlanKind::Forced)))
                    .count();
                let _ = writeln!(
                    out,
                    "  served within 20 s: {within_20} of {n}; within the bound ({} s: 2 \
                     heartbeats + lease + drift + 2 controller delays + 1 s): {}; \
                     completed-forced {forced_done} of {n}; violations {violations}",
                    secs(rs[0].bound),
                    rs.iter()
                        .filter(|r| r.death_to_serving().is_some_and(|t| t <= r.bound))
                        .count()
                );
            }
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "PROBLEMS ({}):", problems.len());
        for p in &problems {
            let _ = writeln!(out, "{p}");
        }
    }
    (out, problems.len())
}
