//! Tables for people: pure functions from views to text.

use std::fmt::Write as _;

use crate::view::{ClusterView, EndedView, GroupView, StageView};

/// A duration in seconds as people read it: `850ms`, `4.2s`, `2m05s`, `1h02m`.
pub fn duration(seconds: f64) -> String {
    let negative = seconds < 0.0;
    let s = seconds.abs();
    let text = if s < 1.0 {
        format!("{}ms", (s * 1000.0).round() as u64)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let whole = s.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = s.round() as u64;
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    };
    if negative { format!("-{text}") } else { text }
}

/// Rows as aligned columns (two spaces apart), the first row the header.
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; width];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The stages of a failover on one line: `source-preparation 2.1s (east) · ...`.
pub fn stages_line(stages: &[StageView]) -> String {
    stages
        .iter()
        .map(|s| {
            let time = s.seconds.map(duration).unwrap_or_else(|| "-".into());
            let running = if s.done { "" } else { "…" };
            match &s.by {
                Some(by) => format!("{} {time}{running} ({by})", s.stage),
                None => format!("{} {time}{running}", s.stage),
            }
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn yes_no(b: Option<bool>, yes: &str, no: &str) -> Option<String> {
    b.map(|b| if b { yes } else { no }.to_string())
}

/// A cluster's application, from its last health report.
fn app(c: &ClusterView) -> String {
    match (c.workloads_ready, c.traffic_open) {
        (Some(true), Some(true)) => "serving".into(),
        (Some(false), Some(false)) => "stopped".into(),
        (w, t) => {
            let parts: Vec<String> = [
                yes_no(w, "ready", "not ready"),
                yes_no(t, "traffic open", "traffic closed"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        }
    }
}

/// The auto-failover column.
fn auto(c: &ClusterView) -> String {
    match &c.auto_failover {
        None => "-".into(),
        Some(a) => {
            let mut s = a.state.clone();
            if let Some(f) = a.failures.filter(|f| *f > 0) {
                let _ = write!(s, " ({f} failed");
                if let Some(fires) = a.fires_in_seconds {
                    let _ = write!(s, ", fires in {fires}s");
                }
                s.push(')');
            }
            s
        }
    }
}

/// One group's status table.
pub fn status(g: &GroupView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "GROUP {}/{}   active {}   token {}",
        g.namespace,
        g.name,
        g.active.as_deref().unwrap_or("?"),
        g.token.map_or("?".to_string(), |t| t.to_string())
    );
    let mut source = format!("  record     {}", g.record_source);
    if let Some(e) = &g.record_error {
        let _ = write!(source, " (table not read: {e})");
    }
    let _ = writeln!(out, "{source}");
    match (&g.lock_holder, g.lock_left_seconds) {
        (Some(h), Some(left)) => {
            let _ = writeln!(out, "  lock       {h}, {} left", duration(left));
        }
        (Some(h), None) => {
            let _ = writeln!(out, "  lock       {h}");
        }
        _ => {}
    }
    if let Some(p) = &g.pending_request {
        let _ = writeln!(out, "  request    {p} (waiting to start)");
    }
    match &g.failover {
        None => {
            let _ = writeln!(out, "  failover   none in flight");
        }
        Some(f) => {
            let mut head = format!(
                "  failover   {} {} {} → {}",
                f.position.id, f.position.mode, f.position.source, f.position.target
            );
            if let Some(by) = &f.asked_in {
                let _ = write!(head, ", asked in {by}");
            }
            if let Some(s) = f.running_seconds {
                let _ = write!(head, ", running {}", duration(s));
            }
            let _ = writeln!(out, "{head}");
            let _ = writeln!(
                out,
                "             stage {} · step {} ({})",
                f.position.stage, f.position.step, f.position.progress
            );
            if !f.position.kinds.is_empty() {
                let from = f.kinds_from.as_deref().unwrap_or("?");
                let _ = writeln!(out, "             {from}: {}", f.position.kinds.join("; "));
            }
            if !f.stages.is_empty() {
                let _ = writeln!(out, "             {}", stages_line(&f.stages));
            }
            if f.position.needs_operator {
                let _ = writeln!(
                    out,
                    "             NEEDS OPERATOR: fix the objects the problems name, then \
                     `kubectl failover retry {}` or `resolve {}`",
                    g.name, g.name
                );
            }
            if let Some(a) = &f.asked {
                let _ = writeln!(out, "             {a}, not carried out yet");
            }
        }
    }
    let mut rows = vec![
        [
            "CLUSTER",
            "API",
            "HEARTBEAT",
            "LEASE",
            "APPLICATION",
            "OPERATOR",
            "AUTO-FAILOVER",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &g.clusters {
        rows.push(vec![
            c.name.clone(),
            if c.reachable {
                "reachable".into()
            } else {
                "UNREACHABLE".into()
            },
            c.heartbeat_age_seconds
                .map_or("-".into(), |s| format!("{} ago", duration(s))),
            c.lease_left_seconds.map_or("-".into(), |s| {
                if s < 0.0 {
                    format!("ran out {} ago (fenced)", duration(-s))
                } else {
                    format!("{} left", duration(s))
                }
            }),
            app(c),
            c.ready.as_deref().map_or("-".into(), |r| {
                if r == "True" {
                    "ready".to_string()
                } else {
                    "not ready".to_string()
                }
            }),
            auto(c),
        ]);
    }
    for line in columns(&rows).lines() {
        let _ = writeln!(out, "  {line}");
    }
    if g.problems.is_empty() {
        let _ = writeln!(out, "  problems   none");
    } else {
        for (i, p) in g.problems.iter().enumerate() {
            let head = if i == 0 { "problems" } else { "" };
            let _ = writeln!(out, "  {head:<10} {p}");
        }
    }
    if let Some(last) = &g.last {
        let mut line = format!("  last       {} {}", last.id, last.outcome);
        if let Some(e) = &last.ended {
            let _ = write!(line, ", ended {e}");
        }
        if let Some(s) = last.seconds {
            let _ = write!(line, ", took {}", duration(s));
        }
        if let Some(by) = &last.asked_by {
            let _ = write!(line, ", asked by {by}");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The history table, newest first.
pub fn history(rows: &[EndedView]) -> String {
    if rows.is_empty() {
        return "no failover has ended yet\n".into();
    }
    let mut table = vec![
        [
            "ID", "MODE", "OUTCOME", "ASKED BY", "STARTED", "DURATION", "EVENTS", "STAGES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        table.push(vec![
            r.id.clone(),
            r.mode.clone().unwrap_or_else(|| "-".into()),
            r.outcome.clone(),
            r.asked_by.clone().unwrap_or_else(|| "-".into()),
            r.started.clone().unwrap_or_else(|| "-".into()),
            r.seconds.map_or("-".into(), duration),
            if r.events.is_empty() {
                "-".into()
            } else {
                r.events.join("; ")
            },
            if r.stages.is_empty() {
                "-".into()
            } else {
                stages_line(&r.stages)
            },
        ]);
    }
    columns(&table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ClusterView, FailoverView};
    use failover_engine::spec::FailoverProgress;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(4.21), "4.2s");
        assert_eq!(duration(125.0), "2m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(duration(-3.0), "-3.0s");
    }

    #[test]
    fn columns_align_and_trim() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string(), "C".to_string()],
            vec!["long".to_string(), "x".to_string(), String::new()],
        ];
        assert_eq!(columns(&rows), "A     BB  C\nlong  x\n");
    }

    fn cluster(name: &str, reachable: bool) -> ClusterView {
        ClusterView {
            name: name.into(),
            reachable,
            error: (!reachable).then(|| "connection refused".into()),
            heartbeat_age_seconds: Some(0.4),
            lease_left_seconds: None,
            workloads_ready: Some(false),
            traffic_open: Some(false),
            ready: Some("True".into()),
            auto_failover: None,
        }
    }

    fn group() -> GroupView {
        let mut east = cluster("east", true);
        east.lease_left_seconds = Some(15.6);
        east.workloads_ready = Some(true);
        east.traffic_open = Some(true);
        GroupView {
            namespace: "shop".into(),
            name: "web".into(),
            record_source: "DynamoDB table failover".into(),
            record_error: None,
            active: Some("east".into()),
            token: Some(12),
            lock_holder: Some("east".into()),
            lock_left_seconds: Some(14.9),
            pending_request: None,
            failover: Some(FailoverView {
                position: FailoverProgress {
                    id: "00000000000000ab".into(),
                    mode: "consistency".into(),
                    source: "east".into(),
                    target: "west".into(),
                    stage: "source-preparation".into(),
                    step: "scale-down-workloads".into(),
                    progress: "4/15".into(),
                    kinds: vec!["scaled down 1/3 Deployments".into()],
                    needs_operator: false,
                },
                kinds_from: Some("east".into()),
                asked: None,
                asked_in: Some("west".into()),
                started: Some("2026-11-27T04:00:00.000Z".into()),
                running_seconds: Some(2.5),
                stages: vec![
                    StageView {
                        stage: "initialization".into(),
                        by: Some("east".into()),
                        seconds: Some(0.3),
                        done: true,
                    },
                    StageView {
                        stage: "source-preparation".into(),
                        by: Some("east".into()),
                        seconds: Some(2.2),
                        done: false,
                    },
                ],
            }),
            clusters: vec![east, cluster("west", false)],
            problems: vec!["west: unreachable: connection refused".into()],
            last: None,
        }
    }

    #[test]
    fn status_shows_the_failover_its_progress_and_an_unreachable_cluster() {
        let text = status(&group());
        for expected in [
            "GROUP shop/web   active east   token 12",
            "record     DynamoDB table failover",
            "lock       east, 14.9s left",
            "failover   00000000000000ab consistency east → west, asked in west, running 2.5s",
            "stage source-preparation · step scale-down-workloads (4/15)",
            "east: scaled down 1/3 Deployments",
            "initialization 300ms (east) · source-preparation 2.2s… (east)",
            "problems   west: unreachable: connection refused",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        let east = text
            .lines()
            .find(|l| l.trim_start().starts_with("east "))
            .expect("row");
        assert!(
            east.contains("reachable") && east.contains("15.6s left"),
            "{east}"
        );
        assert!(east.contains("serving"), "{east}");
        let west = text
            .lines()
            .find(|l| l.trim_start().starts_with("west "))
            .expect("row");
        assert!(
            west.contains("UNREACHABLE") && west.contains("stopped"),
            "{west}"
        );
    }

    #[test]
    fn a_fenced_cluster_and_needs_operator_are_spelled_out() {
        let mut g = group();
        g.clusters[0].lease_left_seconds = Some(-3.0);
        if let Some(f) = g.failover.as_mut() {
            f.position.needs_operator = true;
        }
        let text = status(&g);
        assert!(text.contains("ran out 3.0s ago (fenced)"), "{text}");
        assert!(text.contains("NEEDS OPERATOR"), "{text}");
        assert!(text.contains("kubectl failover retry web"), "{text}");
    }

    #[test]
    fn history_lists_who_asked_and_the_stages() {
        let rows = vec![EndedView {
            id: "00000000000000ab".into(),
            mode: Some("uptime".into()),
            outcome: "completed-uptime".into(),
            asked_by: Some("west (Failover shop/to-west)".into()),
            started: Some("2026-11-27T04:00:00.000Z".into()),
            ended: Some("2026-11-27T04:00:09.000Z".into()),
            seconds: Some(9.0),
            stages: vec![StageView {
                stage: "initialization".into(),
                by: Some("east".into()),
                seconds: Some(0.5),
                done: true,
            }],
            events: vec![
                "needs-operator at volume-promotion".into(),
                "retry asked".into(),
            ],
        }];
        let text = history(&rows);
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        assert!(
            header.starts_with("ID") && header.contains("ASKED BY"),
            "{header}"
        );
        let row = lines.next().expect("row");
        for cell in [
            "00000000000000ab",
            "uptime",
            "completed-uptime",
            "west (Failover shop/to-west)",
            "2026-11-27T04:00:00.000Z",
            "9.0s",
            "needs-operator at volume-promotion; retry asked",
            "initialization 500ms (east)",
        ] {
            assert!(row.contains(cell), "{cell:?} missing from {row}");
        }
        assert_eq!(history(&[]), "no failover has ended yet\n");
    }
}
