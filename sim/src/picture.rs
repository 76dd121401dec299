//! A run as one picture ([`failover_engine::timeline`]): per cluster the stages its
//! operator ran, the state bands the invariants were judged on (volumes primary, pods
//! running, traffic open, Flux suspended, fencing), the record's lock and token with
//! every protocol write, the faults as spans, the uptime window the invariants accept,
//! and the first violation. Hovering shows the timeline's lines and the record after
//! each write.

use std::collections::BTreeMap;

use failover_engine::pictures::{self, cluster_name as name};
use failover_engine::timeline::{
    self, BandKind, ClusterLane, Fault, Mark, Span, Timeline, Violation as Marked,
};
use failover_model::{Cluster, ClusterState, Op, Record, Stage, Time};

use crate::run::{Line, LineKind, RunReport, Violation};

/// A line of an operator's turn (done or failed).
fn turn(l: &Line) -> bool {
    matches!(l.kind, LineKind::Step | LineKind::Failed)
}

/// At most this many of a stage's lines go into its hover text.
const LINES_PER_STAGE: usize = 40;

fn ms(t: Time) -> timeline::Ms {
    t as timeline::Ms
}

fn secs(t: Time) -> String {
    format!("{}.{:03} s", t / 1000, t % 1000)
}

/// The picture of run `r`; `replay` is the command that replays it.
pub fn picture(r: &RunReport, replay: &str) -> Timeline {
    // A little room after the last event (a violation often ends the run).
    let last = r.sim_ms.max(r.violation_at.unwrap_or(0)).max(1);
    let end = ms(last + (last / 25).max(500));
    let verdict = r
        .violation
        .as_ref()
        .map_or("no violation".to_string(), |v| format!("VIOLATION: {v}"));
    let mut t = Timeline::new(format!(
        "seed {}: {} failover, {} workloads, {} volumes",
        r.seed, r.mode, r.shape.0, r.shape.1
    ));
    t.subtitle = vec![
        format!(
            "outcome: {}; {verdict}",
            r.outcome
                .map_or("none (did not end)".to_string(), |o| format!("{o:?}"))
        ),
        format!("replay: {replay}"),
    ];
    t.start = 0;
    t.end = end;
    for c in Cluster::ALL {
        t.clusters.push(lane(r, c, end));
    }
    record_lane(r, &mut t, end);
    t.faults = faults(&r.timeline, end);
    let records: Vec<(timeline::Ms, Option<&Record>)> = r
        .samples
        .iter()
        .map(|s| (ms(s.at), s.record.as_ref()))
        .collect();
    t.accepted = pictures::uptime_windows(&records, end);
    t.violation = r.violation.as_ref().map(|v| {
        let invariant = match v {
            Violation::Invariant(n) => (*n).to_string(),
            Violation::Liveness(_) => "liveness".into(),
            Violation::Conformance(_) => "conformance".into(),
            Violation::Assertion(_) => "assertion".into(),
        };
        Marked::new(
            ms(r.violation_at.unwrap_or(r.sim_ms)),
            invariant,
            v.to_string(),
        )
    });
    t
}

/// Cluster `c`'s block: stages from its operator's lines, bands from the samples, and
/// a mark per protocol step (heartbeats and reads left out).
fn lane(r: &RunReport, c: Cluster, end: timeline::Ms) -> ClusterLane {
    let mut lane = ClusterLane::new(name(c));
    let mine: Vec<&Line> = r.timeline.iter().filter(|l| l.cluster == Some(c)).collect();
    // A stage span runs from the first to the last line of an unbroken run of the
    // stage's lines.
    let mut run: Option<(Stage, Time, Time, Vec<String>)> = None;
    let close = |lane: &mut ClusterLane, run: Option<(Stage, Time, Time, Vec<String>)>| {
        if let Some((stage, from, to, lines)) = run {
            lane.stage(
                ms(from),
                ms(to.max(from + 1)),
                stage.name(),
                lines.join("\n"),
            );
        }
    };
    for l in mine.iter().filter(|l| turn(l)) {
        let Some(stage) = l.stage else { continue };
        match run.as_mut() {
            Some((s, _, to, lines)) if *s == stage => {
                *to = l.at;
                if lines.len() < LINES_PER_STAGE {
                    lines.push(format!("{} {}", secs(l.at), l.text));
                }
            }
            _ => {
                close(&mut lane, run.take());
                run = Some((
                    stage,
                    l.at,
                    l.at,
                    vec![format!("{} {}", secs(l.at), l.text)],
                ));
            }
        }
    }
    close(&mut lane, run.take());
    let i = c.index();
    let samples: Vec<(timeline::Ms, bool, ClusterState)> = r
        .samples
        .iter()
        .map(|s| (ms(s.at), s.alive[i], s.clusters[i]))
        .collect();
    pictures::state_bands(&mut lane, &samples, end);
    // Fenced: from a self-fence (its lease ran low and could not be renewed) until a
    // heartbeat of this cluster applies again; labelled with where the lease ends.
    let mut fenced: Option<(Time, String, String)> = None;
    for l in mine.iter().filter(|l| turn(l)) {
        let fence = l.text.contains("SELF-FENCE") || l.text.contains("for the self-fence");
        let renewed = (l.text.starts_with("heartbeat:") || l.text.starts_with("claim: write"))
            && l.text.ends_with("-> applied");
        if fence && fenced.is_none() {
            // The lease left, running down: where it ends, as the operator saw it.
            let ends = r
                .samples
                .iter()
                .rev()
                .find(|s| s.at <= l.at)
                .and_then(|s| s.lease_end[i]);
            let (label, lease) = ends.map_or((String::new(), String::new()), |e| {
                let left = timeline::duration(ms(e) - ms(l.at));
                (
                    format!("lease ends {}", secs(e)),
                    format!("\nits lease ends at {} ({left} left)", secs(e)),
                )
            });
            fenced = Some((l.at, label, format!("{} {}{lease}", secs(l.at), l.text)));
        } else if renewed && let Some((from, label, first)) = fenced.take() {
            let detail = format!(
                "{first}\nthe lease could not be renewed until\n{} {}",
                secs(l.at),
                l.text
            );
            lane.band_mut(BandKind::Fenced)
                .push(ms(from), ms(l.at), label, detail);
        }
    }
    if let Some((from, label, first)) = fenced {
        let detail = format!("{first}\nthe lease could not be renewed");
        lane.band_mut(BandKind::Fenced)
            .push(ms(from), end, label, detail);
    }
    for l in mine.iter().filter(|l| turn(l)) {
        let quiet = l.text.starts_with("heartbeat:") || l.text.contains(": read record");
        if quiet {
            continue;
        }
        let label = short(&l.text);
        let after = record_after(&r.timeline, l.at);
        lane.mark(
            ms(l.at),
            label,
            format!("{} {}\n{after}", secs(l.at), l.text),
        );
    }
    lane
}

/// The first record line at or after `at`.
fn record_after(lines: &[Line], at: Time) -> String {
    lines
        .iter()
        .find(|l| l.kind == LineKind::Record && l.at >= at)
        .map_or(String::new(), |l| format!("after it, {}", l.text))
}

/// A line's gist: its decision, up to the first `{`, at most 48 characters.
fn short(text: &str) -> String {
    let gist = text.split(" {").next().unwrap_or(text);
    let mut out: String = gist.chars().take(48).collect();
    if gist.chars().count() > 48 {
        out.push('…');
    }
    out
}

/// The record lane: a span per (active, lock, token), a mark per protocol write (not
/// heartbeats, claims and spec prints) with the record after it.
fn record_lane(r: &RunReport, t: &mut Timeline, end: timeline::Ms) {
    let records: Vec<(timeline::Ms, &Record)> = r
        .samples
        .iter()
        .filter_map(|s| Some((ms(s.at), s.record.as_ref()?)))
        .collect();
    t.record = pictures::record_spans(&records, end);
    for (at, by, w, after) in &r.writes {
        let label = match &w.op {
            Op::Heartbeat { .. } | Op::Claim { .. } | Op::Spec { .. } => continue,
            Op::Journal { at: pos, .. } => format!("{}: journal #{pos}", name(*by)),
            op => {
                let words = format!("{op:?}");
                format!("{}: {}", name(*by), short(&words))
            }
        };
        let history = match &w.op {
            Op::Complete { .. } | Op::Abort { .. } => after
                .history
                .last()
                .map(|h| format!("\nhistory item: {h:?}"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        t.record_marks.push(Mark::new(
            ms(*at),
            label,
            format!("{} {w:?}\nrecord after it: {after:?}{history}", secs(*at)),
        ));
    }
}

/// The fault lines as spans: what begins and ends, an operator down until it restarts,
/// what lasts until the heal, a pause for its length; the rest, and the operators' failed
/// steps (API or store errors, heartbeats left out), as instants.
fn faults(lines: &[Line], end: timeline::Ms) -> Vec<Fault> {
    let mut out = Vec::new();
    let mut open: BTreeMap<(Option<Cluster>, String), (Time, String)> = BTreeMap::new();
    let mut push = |c: Option<Cluster>,
                    from: timeline::Ms,
                    to: timeline::Ms,
                    label: String,
                    detail: String| {
        out.push(Fault::new(c.map(name), Span::new(from, to, label, detail)));
    };
    for l in lines {
        let text = l.text.as_str();
        let at = l.at;
        let line = format!("{} {text}", secs(at));
        if text.starts_with("heal:") {
            let healed: Vec<_> = open
                .keys()
                .filter(|(_, what)| what.ends_with("(until the heal)"))
                .cloned()
                .collect();
            for key in healed {
                if let Some((from, detail)) = open.remove(&key) {
                    push(key.0, ms(from), ms(at), key.1, format!("{detail}\n{line}"));
                }
            }
        } else if let Some(what) = text.strip_suffix(" begins") {
            open.insert((l.cluster, what.to_string()), (at, line));
        } else if let Some(what) = text.strip_suffix(" ends") {
            if let Some((from, detail)) = open.remove(&(l.cluster, what.to_string())) {
                push(
                    l.cluster,
                    ms(from),
                    ms(at),
                    what.to_string(),
                    format!("{detail}\n{line}"),
                );
            } else if let Some((from, detail)) =
                open.remove(&(l.cluster, "partition-full".to_string()))
            {
                // A full partition ends in two parts: what is left is the other one.
                let rest = if what == "partition-apiserver" {
                    "partition-store"
                } else {
                    "partition-apiserver"
                };
                let both = format!("{detail}\n{line}");
                push(l.cluster, ms(from), ms(at), "partition-full".into(), both);
                open.insert((l.cluster, rest.to_string()), (at, line));
            }
        } else if text == "operator crashed" || text.starts_with("operator down") {
            open.insert((l.cluster, "operator down".into()), (at, line));
        } else if text.starts_with("operator restarted") {
            if let Some((from, detail)) = open.remove(&(l.cluster, "operator down".into())) {
                push(
                    l.cluster,
                    ms(from),
                    ms(at),
                    "operator down".into(),
                    format!("{detail}\n{line}"),
                );
            }
        } else if text.contains("cut off from DynamoDB") {
            open.insert(
                (l.cluster, "cut off from DynamoDB (until the heal)".into()),
                (at, line),
            );
        } else if text.contains("never reports its new role") {
            push(
                l.cluster,
                ms(at),
                end,
                "volume role never reported".into(),
                line,
            );
        } else if l.kind == LineKind::Fault && text.contains("until the heal") {
            let what = format!(
                "{} (until the heal)",
                short(text.split(" until").next().unwrap_or(text))
            );
            open.insert((l.cluster, what), (at, line));
        } else if let Some(d) = text
            .strip_prefix("process paused ")
            .and_then(|r| r.strip_suffix(" ms"))
            .and_then(|d| d.parse::<Time>().ok())
        {
            push(l.cluster, ms(at), ms(at + d), "paused".into(), line);
        } else if text.starts_with("disaster") {
            push(l.cluster, ms(at), end, "cluster gone".into(), line);
        } else if l.kind == LineKind::Fault {
            push(l.cluster, ms(at), ms(at), short(text), line);
        } else if l.kind == LineKind::Failed && !text.starts_with("heartbeat:") {
            // What the injected error rates did to an operator's step (a heartbeat
            // failing every second while cut off says nothing new).
            let what = if text.contains("kubernetes API") || text.contains("FAILED") {
                "API error"
            } else {
                "store error"
            };
            push(l.cluster, ms(at), ms(at), what.into(), line);
        }
    }
    for ((c, what), (from, detail)) in open {
        push(c, ms(from), end, what, detail);
    }
    out.sort_by_key(|f| (f.span.from, f.span.to));
    out
}
