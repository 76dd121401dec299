//! A run's timeline as text: every line, numbered, then the verdict (the picture is
//! [`crate::picture`]).

use std::fmt::Write as _;

use crate::run::RunReport;

fn ms(t: u64) -> String {
    format!("{:>4}.{:03}s", t / 1000, t % 1000)
}

/// The timeline as numbered lines, then the verdict.
pub fn text(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seed {} mode {} shape {} workloads x {} volumes",
        r.seed, r.mode, r.shape.0, r.shape.1
    );
    for (i, l) in r.timeline.iter().enumerate() {
        let who = l.cluster.map_or("-".to_string(), |c| c.to_string());
        let stage = l.stage.map_or("-", |s| s.name());
        let _ = writeln!(
            out,
            "{:>5}. {} {} {:<18} {}",
            i + 1,
            ms(l.at),
            who,
            stage,
            l.text
        );
    }
    let verdict = r
        .violation
        .as_ref()
        .map_or("no violation".to_string(), |v| format!("VIOLATION: {v}"));
    let _ = writeln!(
        out,
        "end at {}: outcome {:?}; {verdict}; trace hash {:016x}",
        ms(r.sim_ms),
        r.outcome,
        r.trace_hash
    );
    out
}
