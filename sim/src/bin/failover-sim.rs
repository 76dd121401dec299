//! `failover-sim`: chaos campaigns of the real engine against fake clusters and a fake
//! DynamoDB, and the replay of one seed as a timeline.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use failover_model::{Mode, Variant};
use failover_sim::auto::{AutoConfig, Scenario, run_many, summary};
use failover_sim::campaign::{Campaign, campaign};
use failover_sim::picture::picture;
use failover_sim::run::{Hooking, Profile, RunConfig, run};
use failover_sim::timeline;

#[derive(Parser)]
#[command(
    version,
    about = "Deterministic chaos simulation of the failover engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Fail over in this mode (default: the seed picks).
    #[arg(long)]
    mode: Option<String>,
    /// Fault profile: none, swarm (each fault kind on or off per seed) or heavy.
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// Run a deliberately broken protocol variant (promote-before-demote, no-token-check,
    /// no-self-fence, no-lease-wait, repeatable-force, fence-stops-at-failure,
    /// heartbeat-behind-tasks, wall-clock-lease, stale-leader, recreate-missing-record,
    /// no-identity-check, empty-selection-done, no-stage-deadline, journal-past-abort,
    /// fence-ignores-demotion).
    #[arg(long)]
    bug: Option<String>,
    /// Fixed shape: workloads and volumes, as `20x5` (default: the seed picks).
    #[arg(long)]
    shape: Option<String>,
    /// The group's hooks (a quiesce Job, a verify Job, an HTTP notification): drawn
    /// (half of the swarm seeds, every heavy one, none without faults), on or off.
    #[arg(long, default_value = "drawn")]
    hooks: String,
    /// The csi-addons driver's longest time to act on a VolumeReplication, in ms
    /// (default: the group's driverDemotionSeconds, the deployment rule). Longer breaks
    /// the rule, to show what happens.
    #[arg(long)]
    driver_lag_ms: Option<u64>,
    /// How late the operators' watch caches show changes made by others (controllers,
    /// the csi-addons driver, Flux), in ms; an operator's own writes show at once (the
    /// engine's rule). Default 0.
    #[arg(long)]
    watch_lag_ms: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a campaign of seeds and print the summary.
    Run {
        /// Number of seeds.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Run every broken protocol variant over the same seeds and print, per variant, the
    /// share of seeds that catch it and the first one (exit 1 if a variant is never
    /// caught).
    Hunt {
        /// Number of seeds.
        #[arg(long, default_value_t = 10_000)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Auto-failover: an hour of a flapping health signal (nothing may fire) and the
    /// active cluster's death (death to the standby serving, measured), over many seeds.
    Auto {
        /// Number of seeds per scenario.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run this one seed only.
        #[arg(long)]
        seed: Option<u64>,
        /// Only this scenario: flapping or death (default: both).
        #[arg(long)]
        scenario: Option<String>,
        /// The flapping hour's longest spell of pods not ready, ms (default: the longest
        /// the watch provably sees as shorter than its window). Without it, the summary
        /// also shows what spells up to the window itself do.
        #[arg(long)]
        unready_max_ms: Option<u64>,
        /// Print each run's timeline (with --seed).
        #[arg(long)]
        timeline: bool,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Replay one seed: print its timeline and draw it (SVG, and HTML with hover details).
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Where to write the picture as SVG.
        #[arg(long, default_value = "failover-sim-replay.svg")]
        svg: String,
        /// Also write it as a self-contained HTML page: hover any bar or mark for its
        /// lines, the decision and the record after it.
        #[arg(long)]
        html: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

struct Parsed {
    mode: Option<Mode>,
    profile: Profile,
    variant: Variant,
    shape: Option<(usize, usize)>,
    hooks: Hooking,
    driver_lag: Option<u64>,
    watch_lag: u64,
}

fn parse(c: &Common) -> Result<Parsed, String> {
    let mode = match c.mode.as_deref() {
        None => None,
        Some("consistency") => Some(Mode::Consistency),
        Some("uptime") => Some(Mode::Uptime),
        Some(m) => return Err(format!("unknown mode {m:?} (consistency or uptime)")),
    };
    let profile = Profile::from_name(&c.faults)
        .ok_or_else(|| format!("unknown fault profile {:?} (none, swarm, heavy)", c.faults))?;
    let variant = match c.bug.as_deref() {
        None => Variant::Correct,
        Some(b) => match Variant::from_name(b) {
            Some(Variant::LwwStore) | None => {
                let known: Vec<&str> = Variant::BROKEN
                    .iter()
                    .filter(|v| **v != Variant::LwwStore)
                    .map(|v| v.name())
                    .collect();
                return Err(format!("unknown bug {b:?} ({})", known.join(", ")));
            }
            Some(v) => v,
        },
    };
    let shape = match c.shape.as_deref() {
        None => None,
        Some(s) => {
            let (w, v) = s
                .split_once('x')
                .ok_or("shape is WORKLOADSxVOLUMES, e.g. 20x5")?;
            let n = |x: &str| x.parse::<usize>().map_err(|e| format!("shape {s:?}: {e}"));
            let (w, v) = (n(w)?, n(v)?);
            if w == 0 {
                return Err("a shape needs at least one workload".into());
            }
            Some((w, v))
        }
    };
    let hooks = Hooking::from_name(&c.hooks)
        .ok_or_else(|| format!("unknown hooks {:?} (drawn, on, off)", c.hooks))?;
    Ok(Parsed {
        mode,
        profile,
        variant,
        shape,
        hooks,
        driver_lag: c.driver_lag_ms,
        watch_lag: c.watch_lag_ms.unwrap_or(0),
    })
}

fn replay_command(seed: u64, c: &Common) -> String {
    let mut cmd = format!("scripts/sim.sh replay --seed {seed} --faults {}", c.faults);
    if let Some(m) = &c.mode {
        cmd.push_str(&format!(" --mode {m}"));
    }
    if let Some(b) = &c.bug {
        cmd.push_str(&format!(" --bug {b}"));
    }
    if let Some(s) = &c.shape {
        cmd.push_str(&format!(" --shape {s}"));
    }
    if c.hooks != Hooking::Drawn.name() {
        cmd.push_str(&format!(" --hooks {}", c.hooks));
    }
    if let Some(ms) = c.driver_lag_ms {
        cmd.push_str(&format!(" --driver-lag-ms {ms}"));
    }
    if let Some(ms) = c.watch_lag_ms {
        cmd.push_str(&format!(" --watch-lag-ms {ms}"));
    }
    cmd
}

/// Every variant the simulator can run (a last-writer-wins table needs two regions,
/// which the fake store does not have): the share of seeds that catch it.
fn hunt(first_seed: u64, seeds: u64, jobs: usize) -> bool {
    let mut all_caught = true;
    println!("variant                  caught     share  first seed");
    for variant in Variant::BROKEN
        .into_iter()
        .filter(|v| *v != Variant::LwwStore)
    {
        let summary = campaign(&Campaign {
            first_seed,
            seeds,
            mode: None,
            profile: Profile::Swarm,
            variant,
            jobs,
            shape: None,
            stop_at_first: false,
            // A journal entry past a person's abort needs a hook step to happen at
            // (seeds 268 and 5749 with every run hooked).
            hooks: if variant == Variant::JournalPastAbort {
                Hooking::On
            } else {
                Hooking::Drawn
            },
            driver_lag: None,
            // A fence on a stale view needs caches that lag behind the fence's retry.
            watch_lag: if variant == Variant::FenceOnStaleView {
                5_000
            } else {
                0
            },
        });
        let caught = summary.violations();
        let first = caught
            .iter()
            .map(|r| r.seed)
            .min()
            .map_or("-".to_string(), |s| s.to_string());
        all_caught &= !caught.is_empty();
        println!(
            "{:<24} {:>6} {:>8.2}%  {first}",
            variant.name(),
            caught.len(),
            100.0 * caught.len() as f64 / seeds.max(1) as f64
        );
    }
    all_caught
}

struct AutoArgs {
    seeds: std::ops::Range<u64>,
    scenario: Option<String>,
    unready_max_ms: Option<u64>,
    timeline: bool,
    jobs: usize,
}

/// `failover-sim auto`: the scenarios over the seeds, the summary (true: no problem).
fn auto(a: AutoArgs) -> Result<bool, String> {
    let scenarios = match a.scenario.as_deref() {
        None => vec![Scenario::Flapping, Scenario::Death],
        Some(name) => vec![
            Scenario::from_name(name)
                .ok_or_else(|| format!("unknown scenario {name:?} (flapping or death)"))?,
        ],
    };
    let configs: Vec<AutoConfig> = scenarios
        .iter()
        .flat_map(|s| {
            a.seeds.clone().map(|seed| AutoConfig {
                unready_max: a.unready_max_ms,
                timeline: a.timeline,
                ..AutoConfig::new(*s, seed)
            })
        })
        .collect();
    let reports = run_many(&configs, a.jobs);
    if a.timeline {
        for r in &reports {
            println!("== {} ==", r.config.scenario.name());
            print!("{}", timeline::text(&r.run));
        }
    }
    let (text, problems) = summary(&reports);
    print!("{text}");
    Ok(problems == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            seeds,
            first_seed,
            jobs,
            common,
        } => parse(&common).map(|p| {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let summary = campaign(&Campaign {
                first_seed,
                seeds,
                mode: p.mode,
                profile: p.profile,
                variant: p.variant,
                jobs,
                shape: p.shape,
                stop_at_first: false,
                hooks: p.hooks,
                driver_lag: p.driver_lag,
                watch_lag: p.watch_lag,
            });
            println!("{}", summary.render(|s| replay_command(s, &common)));
            summary.violations().is_empty()
        }),
        Command::Hunt {
            seeds,
            first_seed,
            jobs,
        } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            Ok(hunt(first_seed, seeds, jobs))
        }
        Command::Auto {
            seeds,
            first_seed,
            seed,
            scenario,
            unready_max_ms,
            timeline,
            jobs,
        } => auto(AutoArgs {
            seeds: seed.map_or(first_seed..first_seed + seeds, |s| s..s + 1),
            scenario,
            unready_max_ms,
            timeline: timeline && seed.is_some(),
            jobs: jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        }),
        Command::Replay {
            seed,
            svg,
            html,
            common,
        } => parse(&common).map(|p| {
            let r = run(RunConfig {
                seed,
                mode: p.mode,
                profile: p.profile,
                variant: p.variant,
                shape: p.shape,
                timeline: true,
                hooks: p.hooks,
                driver_lag: p.driver_lag,
                watch_lag: p.watch_lag,
            });
            print!("{}", timeline::text(&r));
            let drawn = picture(&r, &replay_command(seed, &common));
            let mut files = vec![(svg, failover_engine::timeline::svg(&drawn))];
            if let Some(html) = html {
                files.push((html, failover_engine::timeline::html(&drawn)));
            }
            for (path, content) in files {
                match std::fs::write(&path, content) {
                    Ok(()) => println!("picture written to {path}"),
                    Err(e) => eprintln!("cannot write {path}: {e}"),
                }
            }
            r.violation.is_none()
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
