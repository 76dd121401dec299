//! A campaign: many seeds, on several threads, and the summary a user reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use failover_model::{AbortReason, Mode, Outcome, PlanKind, Stage, Time, Variant};

use crate::run::{Hooking, Profile, RunConfig, RunReport, run};
use crate::world::FaultKind;

/// What a campaign runs.
#[derive(Clone, Copy, Debug)]
pub struct Campaign {
    /// First seed.
    pub first_seed: u64,
    /// Number of seeds.
    pub seeds: u64,
    /// Force a mode.
    pub mode: Option<Mode>,
    /// Fault profile.
    pub profile: Profile,
    /// Protocol variant.
    pub variant: Variant,
    /// Worker threads.
    pub jobs: usize,
    /// Fixed shape (workloads, volumes).
    pub shape: Option<(usize, usize)>,
    /// Stop at the first violation.
    pub stop_at_first: bool,
    /// Whether the group has hooks.
    pub hooks: Hooking,
    /// The csi-addons driver's longest time to act, ms (`None`: the deployment rule).
    pub driver_lag: Option<Time>,
    /// How late the watch caches show others' changes, ms.
    pub watch_lag: Time,
}

/// The campaign's result.
#[derive(Debug)]
pub struct Summary {
    /// Reports of the runs, by seed.
    pub reports: Vec<RunReport>,
    /// Wall time, seconds.
    pub wall_secs: f64,
    /// Worker threads used.
    pub jobs: usize,
}

/// Run a campaign.
pub fn campaign(c: &Campaign) -> Summary {
    let next = AtomicU64::new(c.first_seed);
    let end = c.first_seed + c.seeds;
    let found = std::sync::atomic::AtomicBool::new(false);
    let reports = Mutex::new(Vec::new());
    let started = Instant::now();
    let jobs = c.jobs.max(1);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    if c.stop_at_first && found.load(Ordering::Relaxed) {
                        break;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let r = run(RunConfig {
                        seed,
                        mode: c.mode,
                        profile: c.profile,
                        variant: c.variant,
                        shape: c.shape,
                        timeline: false,
                        hooks: c.hooks,
                        driver_lag: c.driver_lag,
                        watch_lag: c.watch_lag,
                    });
                    if r.violation.is_some() {
                        found.store(true, Ordering::Relaxed);
                    }
                    mine.push(r);
                }
                reports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(mine);
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    reports.sort_by_key(|r| r.seed);
    Summary {
        reports,
        wall_secs: started.elapsed().as_secs_f64(),
        jobs,
    }
}

fn percentile(v: &mut [u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    Some(v[i])
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |m| format!("{:.1}s", m as f64 / 1000.0))
}

impl Summary {
    /// Runs with a violation.
    pub fn violations(&self) -> Vec<&RunReport> {
        self.reports
            .iter()
            .filter(|r| r.violation.is_some())
            .collect()
    }

    /// Runs per second of wall time.
    pub fn runs_per_sec(&self) -> f64 {
        self.reports.len() as f64 / self.wall_secs.max(1e-9)
    }

    /// The readable summary; `replay` renders the command that replays a seed.
    pub fn render(&self, replay: impl Fn(u64) -> String) -> String {
        let mut out = String::new();
        let runs = self.reports.len();
        let _ = writeln!(
            out,
            "runs: {runs} on {} thread(s) in {:.2} s",
            self.jobs, self.wall_secs
        );
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.reports {
            let k = match r.outcome {
                Some(Outcome::Completed(k)) => format!("completed {k}"),
                Some(Outcome::Aborted(why)) => format!("aborted ({why})"),
                Some(Outcome::Resolved) => "resolved by a person (needs-operator)".into(),
                Some(Outcome::NoOp) => "no-op (the request asked for the active cluster)".into(),
                Some(Outcome::Withdrawn) => "withdrawn before it started".into(),
                None => "no failover (source gone before the request, or violation)".into(),
            };
            *outcomes.entry(k).or_default() += 1;
        }
        let _ = writeln!(out, "outcomes:");
        for (k, n) in &outcomes {
            let _ = writeln!(out, "  {k:<60} {n}");
        }
        let mut injected: BTreeMap<FaultKind, u64> = BTreeMap::new();
        // Per kind: how many times, and in how many runs (a kind on in few runs is
        // tested little however often it fires there).
        let mut runs_with: std::collections::BTreeMap<FaultKind, u64> = Default::default();
        for r in &self.reports {
            for (k, n) in &r.injected {
                *injected.entry(*k).or_default() += n;
                if *n > 0 {
                    *runs_with.entry(*k).or_default() += 1;
                }
            }
        }
        let _ = writeln!(out, "faults injected (times, runs with it):");
        for k in FaultKind::ALL {
            let _ = writeln!(
                out,
                "  {:<24} {:>10} {:>8}",
                k.name(),
                injected.get(&k).copied().unwrap_or(0),
                runs_with.get(&k).copied().unwrap_or(0)
            );
        }
        // Hooks (issue 13): what their runs did, in the runs that had them.
        let hooked: Vec<_> = self.reports.iter().filter(|r| r.hooks.on).collect();
        let sum = |f: fn(&RunReport) -> u32| hooked.iter().map(|r| f(r)).sum::<u32>();
        let _ = writeln!(
            out,
            "hooks: in {} runs; {} hook runs (retries included), {} failed ({} at their \
             timeout); a hook ran twice in {} runs; {} failovers aborted by a hook; {} Jobs \
             created, at most {} per hook and failover",
            hooked.len(),
            sum(|r| r.hooks.runs),
            sum(|r| r.hooks.failed),
            sum(|r| r.hooks.timed_out),
            hooked.iter().filter(|r| r.hooks.ran_twice).count(),
            hooked
                .iter()
                .filter(|r| matches!(r.outcome, Some(Outcome::Aborted(AbortReason::Hook(_)))))
                .count(),
            sum(|r| r.hooks.jobs_created),
            hooked
                .iter()
                .map(|r| r.hooks.most_jobs_per_failover)
                .max()
                .unwrap_or(0),
        );
        let _ = writeln!(
            out,
            "simulated failover duration (request to end), p50 / p99:"
        );
        for mode in [Mode::Consistency, Mode::Uptime] {
            let mut v: Vec<u64> = self
                .reports
                .iter()
                .filter(|r| r.mode == mode)
                .filter_map(|r| r.total_ms)
                .collect();
            let (p50, p99) = (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
            let _ = writeln!(
                out,
                "  {:<24} {} / {}  ({} runs)",
                mode.to_string(),
                secs(p50),
                secs(p99),
                v.len()
            );
        }
        let _ = writeln!(out, "simulated stage duration, p50 / p99:");
        for mode in [Mode::Consistency, Mode::Uptime] {
            for stage in Stage::ALL {
                let mut v: Vec<u64> = self
                    .reports
                    .iter()
                    .filter(|r| r.mode == mode)
                    .filter_map(|r| r.stage_ms[stage.index()])
                    .collect();
                let (p50, p99) = (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
                let _ = writeln!(
                    out,
                    "  {:<12} {:<20} {} / {}",
                    mode.to_string(),
                    stage.name(),
                    secs(p50),
                    secs(p99)
                );
            }
        }
        let mut never: Vec<String> = Vec::new();
        for k in FaultKind::ALL {
            if !injected.contains_key(&k) {
                never.push(format!("fault {}", k.name()));
            }
        }
        for stage in Stage::ALL {
            if !self.reports.iter().any(|r| r.crash_stages[stage.index()]) {
                never.push(format!("crash-in-{}", stage.name()));
            }
        }
        let names = self
            .reports
            .first()
            .map(|r| r.marks.named())
            .unwrap_or_default();
        for (i, (name, _)) in names.iter().enumerate() {
            if !self.reports.iter().any(|r| r.marks.named()[i].1) {
                never.push((*name).to_string());
            }
        }
        for (mode, kind) in [
            (
                "consistency-failover-done",
                PlanKind::Planned(Mode::Consistency),
            ),
            ("uptime-failover-done", PlanKind::Planned(Mode::Uptime)),
        ] {
            if !self
                .reports
                .iter()
                .any(|r| r.outcome == Some(Outcome::Completed(kind)))
            {
                never.push(mode.to_string());
            }
        }
        let _ = writeln!(
            out,
            "coverage marks never hit: {}",
            if never.is_empty() {
                "none".to_string()
            } else {
                never.join(", ")
            }
        );
        let sim_ms: u64 = self.reports.iter().map(|r| r.sim_ms).sum();
        let _ = writeln!(
            out,
            "speed: {:.0} runs/s, {:.0} runs/s per thread, simulated/wall time {:.0}x",
            self.runs_per_sec(),
            self.runs_per_sec() / self.jobs as f64,
            sim_ms as f64 / 1000.0 / self.wall_secs.max(1e-9)
        );
        let bad = self.violations();
        for r in bad.iter().take(
            std::env::var("SIM_SHOW")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10),
        ) {
            let v = r
                .violation
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "VIOLATION seed={} mode={}: {v}\n  replay: {}",
                r.seed,
                r.mode,
                replay(r.seed)
            );
        }
        let _ = write!(
            out,
            "runs={runs} violations={} runs_per_sec={:.1}",
            bad.len(),
            self.runs_per_sec()
        );
        out
    }
}
