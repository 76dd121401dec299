//! A run's timeline, as text and as a self-contained SVG chart: both clusters' stages
//! over time, the faults, and the global record's changes.

use std::fmt::Write as _;

use failover_model::{Cluster, Stage};

use crate::run::{LineKind, RunReport};

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

fn colour(stage: Option<Stage>) -> &'static str {
    match stage {
        Some(Stage::Initialization) => "#8da0cb",
        Some(Stage::SourcePreparation) => "#fc8d62",
        Some(Stage::VolumeDemotion) => "#e78ac3",
        Some(Stage::VolumePromotion) => "#a6d854",
        Some(Stage::TargetActivation) => "#66c2a5",
        Some(Stage::Completion) => "#ffd92f",
        None => "#b3b3b3",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained SVG: one lane per cluster with a mark per step (coloured by stage,
/// with the step in a tooltip), red marks for faults, and a lane for the record.
pub fn svg(r: &RunReport) -> String {
    let end = r.sim_ms.max(1);
    let (w, left) = (1400.0, 120.0);
    let x = |t: u64| left + (w - left - 20.0) * t as f64 / end as f64;
    let lanes = [
        ("cluster A", 60.0),
        ("cluster B", 120.0),
        ("record", 180.0),
        ("faults", 240.0),
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"340\" font-family=\"monospace\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\">seed {} mode {} ({} workloads, {} volumes): {}</text>",
        r.seed,
        r.mode,
        r.shape.0,
        r.shape.1,
        esc(&r
            .violation
            .as_ref()
            .map_or("no violation".into(), |v| v.to_string()))
    );
    for (name, y) in lanes {
        let _ = writeln!(s, "<text x=\"10\" y=\"{}\">{name}</text>", y + 14.0);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>",
            y + 10.0,
            w - 20.0,
            y + 10.0
        );
    }
    for l in &r.timeline {
        let lane = match (l.kind, l.cluster) {
            (LineKind::Record, _) => 2,
            (LineKind::Fault, _) => 3,
            (_, Some(Cluster::A)) => 0,
            (_, Some(Cluster::B)) => 1,
            (_, None) => 2,
        };
        let y = lanes[lane].1;
        let fill = if l.kind == LineKind::Fault {
            "#d62728"
        } else {
            colour(l.stage)
        };
        let who = l.cluster.map_or(String::new(), |c| format!("{c}: "));
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{y}\" width=\"3\" height=\"20\" fill=\"{fill}\"><title>{} {who}{}</title></rect>",
            x(l.at),
            ms(l.at).trim(),
            esc(&l.text)
        );
    }
    let mut lx = left;
    for stage in Stage::ALL {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"300\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"310\">{}</text>",
            colour(Some(stage)),
            lx + 16.0,
            stage.name()
        );
        lx += 190.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"330\">0 s</text><text x=\"{}\" y=\"330\">{:.1} s</text>",
        w - 80.0,
        end as f64 / 1000.0
    );
    s.push_str("</svg>\n");
    s
}
