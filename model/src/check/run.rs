//! Running the checker over a named configuration and summarizing the result.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model};

use super::{Config, FailoverModel, expected, trace};

/// A property's finding: a counterexample for `always`, an example for `sometimes`.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The scenario it was found in.
    pub scenario: String,
    /// The readable trace.
    pub trace: String,
    /// Number of actions in the trace.
    pub len: usize,
}

/// The result of checking one or more scenarios.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// States generated, with repeats.
    pub states: usize,
    /// Unique states.
    pub unique: usize,
    /// Maximum depth.
    pub depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Per scenario: (name, states, unique, depth, seconds).
    pub scenarios: Vec<(String, usize, usize, usize, f64)>,
    /// Counterexamples of `always` properties.
    pub violations: BTreeMap<&'static str, Finding>,
    /// Examples of `sometimes` properties.
    pub examples: BTreeMap<&'static str, Finding>,
    /// `sometimes` properties expected somewhere but found nowhere.
    pub missing: Vec<&'static str>,
}

impl Summary {
    /// Violated properties plus missing examples.
    pub fn violation_count(&self) -> usize {
        self.violations.len() + self.missing.len()
    }

    /// The summary line: `states=<N> unique=<N> depth=<N> secs=<S> violations=<N>`.
    pub fn last_line(&self) -> String {
        format!(
            "states={} unique={} depth={} secs={:.1} violations={}",
            self.states,
            self.unique,
            self.depth,
            self.elapsed.as_secs_f64(),
            self.violation_count()
        )
    }
}

/// How to run the checker.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Worker threads.
    pub threads: usize,
    /// Stop at the first violated `always` property (for broken variants).
    pub stop_at_violation: bool,
}

/// One scenario's result.
struct Checked {
    /// (name, states, unique, depth, seconds).
    counts: (String, usize, usize, usize, f64),
    /// (property, is `always`, finding).
    findings: Vec<(&'static str, bool, Finding)>,
}

/// Check every scenario exhaustively (BFS) and merge the results (in the configurations'
/// order, whatever order they finished in).
///
/// With several scenarios, `opts.threads` of them run at once, one checker thread each:
/// on this project's 2-core machine a checker with two threads was no faster than with
/// one (29.0 s and 28.7 s for `ci/planned`), so two scenarios side by side use the cores.
pub fn check(configs: &[Config], opts: Options) -> Summary {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let start = Instant::now();
    let workers = opts.threads.max(1).min(configs.len().max(1));
    let per_checker = (opts.threads.max(1) / workers).max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Checked>>> = Mutex::new(
        std::iter::repeat_with(|| None)
            .take(configs.len())
            .collect(),
    );
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= configs.len()
                        || (opts.stop_at_violation && failed.load(Ordering::SeqCst))
                    {
                        return;
                    }
                    let checked = check_one(&configs[i], opts, per_checker);
                    if checked.findings.iter().any(|(_, always, _)| *always) {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(checked);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut sum = Summary::default();
    let mut expected_somewhere: Vec<&'static str> = Vec::new();
    for (config, checked) in configs.iter().zip(results) {
        let Some(checked) = checked else {
            break;
        };
        let (_, states, unique, depth, _) = checked.counts;
        sum.states += states;
        sum.unique += unique;
        sum.depth = sum.depth.max(depth);
        sum.scenarios.push(checked.counts.clone());
        let model = FailoverModel {
            config: config.clone(),
        };
        for p in &model.properties() {
            let always = !matches!(p.expectation, stateright::Expectation::Sometimes);
            if !always && expected(config, p.name) && !expected_somewhere.contains(&p.name) {
                expected_somewhere.push(p.name);
            }
        }
        for (name, always, finding) in checked.findings {
            let map = if always {
                &mut sum.violations
            } else {
                &mut sum.examples
            };
            let shorter = map.get(name).is_none_or(|f| finding.len < f.len);
            if shorter {
                map.insert(name, finding);
            }
        }
        if opts.stop_at_violation && !sum.violations.is_empty() {
            break;
        }
    }
    if !opts.stop_at_violation {
        sum.missing = expected_somewhere
            .into_iter()
            .filter(|n| !sum.examples.contains_key(n))
            .collect();
    }
    sum.elapsed = start.elapsed();
    sum
}

/// Check one scenario with `threads` checker threads.
fn check_one(config: &Config, opts: Options, threads: usize) -> Checked {
    {
        let model = FailoverModel {
            config: config.clone(),
        };
        let props = model.properties();
        let t0 = Instant::now();
        let mut builder = model.clone().checker().threads(threads);
        if opts.stop_at_violation {
            builder = builder.finish_when(HasDiscoveries::AnyFailures);
        }
        if let Some(n) = std::env::var("FAILOVER_MAX_STATES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            builder = builder.target_state_count(n);
        }
        let checker = builder.spawn_bfs().join();
        let secs = t0.elapsed().as_secs_f64();
        let counts = (
            config.name.clone(),
            checker.state_count(),
            checker.unique_state_count(),
            checker.max_depth(),
            secs,
        );
        let discoveries = checker.discoveries();
        let mut findings = Vec::new();
        for p in &props {
            let always = !matches!(p.expectation, stateright::Expectation::Sometimes);
            let Some(path) = discoveries.get(p.name) else {
                continue;
            };
            let states = path.clone().into_states();
            let actions = path.clone().into_actions();
            let finding = Finding {
                scenario: config.name.clone(),
                trace: trace::render(&model, &states[0], &actions),
                len: actions.len(),
            };
            findings.push((p.name, always, finding));
        }
        Checked { counts, findings }
    }
}
