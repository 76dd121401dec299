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

/// Check every scenario exhaustively (BFS) and merge the results.
pub fn check(configs: &[Config], opts: Options) -> Summary {
    let start = Instant::now();
    let mut sum = Summary::default();
    let mut expected_somewhere: Vec<&'static str> = Vec::new();
    for config in configs {
        let model = FailoverModel {
            config: config.clone(),
        };
        let props = model.properties();
        let t0 = Instant::now();
        let mut builder = model.clone().checker().threads(opts.threads.max(1));
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
        sum.states += checker.state_count();
        sum.unique += checker.unique_state_count();
        sum.depth = sum.depth.max(checker.max_depth());
        sum.scenarios.push((
            config.name.clone(),
            checker.state_count(),
            checker.unique_state_count(),
            checker.max_depth(),
            secs,
        ));
        let discoveries = checker.discoveries();
        for p in &props {
            let always = !matches!(p.expectation, stateright::Expectation::Sometimes);
            if !always && expected(config, p.name) && !expected_somewhere.contains(&p.name) {
                expected_somewhere.push(p.name);
            }
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
            let map = if always {
                &mut sum.violations
            } else {
                &mut sum.examples
            };
            let shorter = map.get(p.name).is_none_or(|f| finding.len < f.len);
            if shorter {
                map.insert(p.name, finding);
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
