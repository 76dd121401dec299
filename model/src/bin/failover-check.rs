//! `failover-check`: exhaustively model-check the failover protocol.
//!
//! ```text
//! failover-check [--config smoke|ci|handback|deep|outage-beyond-lease|first-start|demotion-beyond-bound]
//!                [--bug <variant>] [--scenario NAME] [--threads N]
//!                [--example <property>|operator-outage-beyond-lease|misconfigured-first-start|driver-slower-than-bound]
//!                [--explore [ADDR]]
//! ```
//! `--scenario` keeps the configuration's scenarios whose name ends with `/NAME` (one
//! scenario of `deep` at a time fits a smaller machine).
//! The last line is always `states=<N> unique=<N> depth=<N> secs=<S> violations=<N>`;
//! the exit status is 0 iff no property was violated (with `--bug`, 1 is expected).

use std::process::ExitCode;

use failover_model::Variant;
use failover_model::check::run::{Options, check};
use failover_model::check::{Config, FailoverModel};
use stateright::Model;

struct Args {
    config: String,
    bug: Option<Variant>,
    threads: usize,
    examples: Vec<String>,
    explore: Option<String>,
    scenario: Option<String>,
}

const USAGE: &str = "usage: failover-check [--config smoke|ci|handback|deep|outage-beyond-lease|first-start|demotion-beyond-bound] [--bug <variant>] [--scenario NAME] [--threads N] [--example <property>|all|operator-outage-beyond-lease|misconfigured-first-start|driver-slower-than-bound] [--explore [ADDR]]
variants: promote-before-demote no-token-check no-self-fence no-lease-wait lww-store repeatable-force fence-stops-at-failure heartbeat-behind-tasks wall-clock-lease stale-leader recreate-missing-record no-identity-check empty-selection-done no-stage-deadline journal-past-abort fence-ignores-demotion";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        config: "ci".to_string(),
        bug: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        examples: Vec::new(),
        explore: None,
        scenario: None,
    };
    let mut it = std::env::args().skip(1).peekable();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--config" => args.config = value("--config")?,
            "--bug" => {
                let name = value("--bug")?;
                let v = Variant::from_name(&name)
                    .filter(|v| *v != Variant::Correct)
                    .ok_or(format!("unknown variant {name:?}"))?;
                args.bug = Some(v);
            }
            "--threads" => {
                args.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?;
            }
            "--example" => args.examples.push(value("--example")?),
            "--scenario" => args.scenario = Some(value("--scenario")?),
            "--explore" => {
                let addr = match it.peek() {
                    Some(a) if !a.starts_with("--") => it.next().unwrap_or_default(),
                    _ => "127.0.0.1:3000".to_string(),
                };
                args.explore = Some(addr);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(limit) = args
        .examples
        .iter()
        .find_map(|e| failover_model::check::LIMITS.iter().find(|l| l.name == e))
    {
        return show_limit(limit, args.threads);
    }
    let configs = match (args.bug, Config::named(&args.config)) {
        (Some(v), _) => Config::for_bug(v),
        (None, Some(c)) => c,
        (None, None) => {
            eprintln!(
                "error: unknown configuration {:?} (smoke, ci, handback, deep, outage-beyond-lease, first-start, demotion-beyond-bound)\n{USAGE}",
                args.config
            );
            return ExitCode::from(2);
        }
    };
    let configs: Vec<Config> = match &args.scenario {
        None => configs,
        Some(name) => {
            let kept: Vec<Config> = configs
                .into_iter()
                .filter(|c| {
                    let base = c.name.split('+').next().unwrap_or_default();
                    base.ends_with(&format!("/{name}"))
                })
                .collect();
            if kept.is_empty() {
                eprintln!("error: no scenario {name:?} in this configuration\n{USAGE}");
                return ExitCode::from(2);
            }
            kept
        }
    };
    if let Some(addr) = args.explore {
        let model = FailoverModel {
            config: configs[0].clone(),
        };
        println!(
            "serving stateright Explorer for {} on http://{addr}",
            model.config.name
        );
        let _ = model.checker().threads(args.threads).serve(addr.as_str());
        return ExitCode::SUCCESS;
    }
    let opts = Options {
        threads: args.threads,
        stop_at_violation: args.bug.is_some(),
    };
    let sum = check(&configs, opts);
    for (name, states, unique, depth, secs) in &sum.scenarios {
        let rate = *states as f64 / secs.max(1e-9);
        println!(
            "scenario {name}: states={states} unique={unique} depth={depth} secs={secs:.1} states/s={rate:.0}"
        );
    }
    for p in failover_model::check::properties() {
        let always = !matches!(p.expectation, stateright::Expectation::Sometimes);
        let status = match (
            always,
            sum.violations.contains_key(p.name),
            sum.examples.contains_key(p.name),
        ) {
            (true, true, _) => "VIOLATED",
            (true, false, _) => "holds",
            (false, _, true) => "example found",
            (false, _, false) if sum.missing.contains(&p.name) => "MISSING EXAMPLE",
            (false, _, false) => "not checked",
        };
        println!(
            "  {:<8} {:<30} {status}",
            if always { "always" } else { "sometimes" },
            p.name
        );
    }
    for (name, f) in &sum.violations {
        println!(
            "\ncounterexample to {name} (scenario {}, {} steps):\n{}",
            f.scenario, f.len, f.trace
        );
    }
    for want in &args.examples {
        for (name, f) in &sum.examples {
            if want == "all" || want == name {
                println!(
                    "\nexample of {name} (scenario {}, {} steps):\n{}",
                    f.scenario, f.len, f.trace
                );
            }
        }
    }
    println!("{}", sum.last_line());
    if sum.violation_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--example` of a fault no lease survives: check its configuration, expecting the
/// counterexample, and print it. Exits 0 iff the model shows it.
fn show_limit(limit: &failover_model::check::Limit, threads: usize) -> ExitCode {
    let configs = Config::named(limit.config).unwrap_or_default();
    let sum = check(
        &configs,
        Options {
            threads,
            stop_at_violation: true,
        },
    );
    println!("{}: {}", limit.name, limit.why);
    let shown = sum.violations.get(limit.violates).map(|f| {
        println!(
            "\nexample of {} = counterexample to {} (scenario {}, {} steps):\n{}",
            limit.name, limit.violates, f.scenario, f.len, f.trace
        );
    });
    for name in sum.violations.keys().filter(|n| **n != limit.violates) {
        println!("(also violated: {name})");
    }
    println!("{}", sum.last_line());
    if shown.is_some() {
        ExitCode::SUCCESS
    } else {
        eprintln!("the model did not show {}", limit.name);
        ExitCode::from(1)
    }
}
