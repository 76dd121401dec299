//! Following a failover (`request --wait`): what each poll saw ([`Frame`]), the stage
//! times this process observed ([`Tracker`]), and their rendering: a live view redrawn
//! in place on a terminal, timestamped lines when stdout is not one. Pure: the command
//! polls and prints.

use std::fmt::Write as _;

use failover_model::Stage;

use crate::Exit;
use crate::render::duration;

/// What one poll saw of a failover.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// The `Failover` object's phase.
    pub phase: Option<String>,
    /// Its stage, while it runs.
    pub stage: Option<String>,
    /// The next step (from the group's status).
    pub step: Option<String>,
    /// Steps done of the plan's, `done/total`.
    pub progress: Option<String>,
    /// Per-kind counts from the operator running the step.
    pub kinds: Vec<String>,
    /// The cluster whose operator reported them.
    pub kinds_from: Option<String>,
    /// The object's message.
    pub message: Option<String>,
    /// Its outcome, once it ended.
    pub outcome: Option<String>,
    /// The cluster holding the object could not be read, and why.
    pub unreachable: Option<String>,
    /// The failover's mode (its stages' order).
    pub mode: Option<failover_model::Mode>,
}

/// The stages of a planned failover in `mode`, in the order its plan runs them.
fn stage_order(mode: failover_model::Mode) -> Vec<&'static str> {
    let plan = failover_model::Plan::with_hooks(
        failover_model::PlanKind::Planned(mode),
        failover_model::Variant::Correct,
        failover_model::Hooks::NONE,
    );
    let mut order: Vec<&'static str> = Vec::new();
    for s in &plan.steps {
        if order.last() != Some(&s.stage.name()) {
            order.push(s.stage.name());
        }
    }
    order
}

impl Frame {
    /// How the wait ends, if it does with this frame.
    pub fn end(&self) -> Option<Exit> {
        match self.phase.as_deref()? {
            "Completed" => Some(Exit::Ok),
            "Aborted" | "Refused" | "Withdrawn" | "Invalid" => Some(Exit::Failed),
            "NeedsOperator" => Some(Exit::NeedsOperator),
            _ => None,
        }
    }
}

/// The stages as this process saw them go by: when each was first and last seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tracker {
    /// Stage name, first seen, ended (seconds since the request).
    pub stages: Vec<(String, f64, Option<f64>)>,
}

impl Tracker {
    /// Note `frame`, seen `at` seconds after the request.
    pub fn observe(&mut self, frame: &Frame, at: f64) {
        let ended = frame.end().is_some() && frame.phase.as_deref() != Some("NeedsOperator");
        if let Some(stage) = &frame.stage
            && self.stages.last().is_none_or(|(s, _, _)| s != stage)
        {
            if let Some(last) = self.stages.last_mut() {
                last.2.get_or_insert(at);
            }
            self.stages.push((stage.clone(), at, None));
        }
        if ended && let Some(last) = self.stages.last_mut() {
            last.2.get_or_insert(at);
        }
    }

    fn seen(&self, stage: &str) -> Option<&(String, f64, Option<f64>)> {
        self.stages.iter().find(|(s, _, _)| s == stage)
    }
}

/// Spinner frames.
const SPIN: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The steps done and in all of a `done/total` progress.
pub fn steps(progress: &str) -> Option<(usize, usize)> {
    let (done, total) = progress.split_once('/')?;
    Some((done.parse().ok()?, total.parse().ok()?))
}

/// A bar of `width` cells for `done/total`.
pub fn bar(progress: &str, width: usize) -> String {
    let (done, total) = steps(progress).unwrap_or((0, 1));
    let filled = (done * width).checked_div(total).unwrap_or(0).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The live view: a heading, a line per stage (done, running with a spinner, or to
/// come), the overall bar with the step, the per-kind counts; `at` seconds since the
/// request, `tick` the spinner's frame.
pub fn render_live(
    heading: &str,
    tracker: &Tracker,
    frame: &Frame,
    at: f64,
    tick: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}   {}", clock(at));
    let current = frame
        .stage
        .as_deref()
        .and_then(|s| Stage::ALL.iter().position(|x| x.name() == s));
    let finished = frame.phase.as_deref() == Some("Completed");
    let failed = matches!(
        frame.phase.as_deref(),
        Some("Aborted" | "Refused" | "Withdrawn" | "Invalid")
    );
    for (i, stage) in Stage::ALL.iter().enumerate() {
        let name = stage.name();
        let seen = tracker.seen(name);
        let (mark, time) = match (current, seen) {
            _ if finished => ("✔", seen.map(|(_, from, to)| to.unwrap_or(at) - from)),
            (Some(c), _) if i < c => ("✔", seen.and_then(|(_, from, to)| to.map(|t| t - from))),
            (Some(c), Some((_, from, _))) if i == c => {
                let mark = if failed {
                    "✘"
                } else if frame.phase.as_deref() == Some("NeedsOperator") {
                    "!"
                } else {
                    SPIN[tick % SPIN.len()]
                };
                (mark, Some(at - from))
            }
            (Some(c), None) if i == c => (SPIN[tick % SPIN.len()], None),
            _ => ("·", None),
        };
        let time = time.map(duration).unwrap_or_default();
        let _ = writeln!(out, "  {mark} {name:<20} {time}");
    }
    if let Some(p) = &frame.progress {
        if let (true, Some((_, total))) = (finished, steps(p)) {
            let all = format!("{total}/{total}");
            let _ = writeln!(out, "  {} {all}", bar(&all, 24));
        } else {
            let step = frame.step.as_deref().unwrap_or("");
            let _ = writeln!(out, "  {} {p}  {step}", bar(p, 24));
        }
    }
    if !frame.kinds.is_empty() {
        let from = frame.kinds_from.as_deref().unwrap_or("?");
        let _ = writeln!(out, "  {from}: {}", frame.kinds.join("; "));
    }
    let phase = frame.phase.as_deref().unwrap_or("waiting for the operator");
    let mut last = format!("  {phase}");
    if let Some(o) = &frame.outcome {
        let _ = write!(last, ": {o}");
    } else if let Some(m) = &frame.message {
        let _ = write!(last, ": {m}");
    }
    if let Some(u) = &frame.unreachable {
        let _ = write!(last, " (cannot read it now: {u})");
    }
    let _ = writeln!(out, "{last}");
    out
}

/// `mm:ss.s` since the request.
fn clock(at: f64) -> String {
    let whole = at.max(0.0);
    let minutes = (whole / 60.0).floor() as u64;
    format!("{minutes:02}:{:04.1}", whole - minutes as f64 * 60.0)
}

/// The lines a non-terminal prints for `next` after `prev` (what changed), without
/// their timestamps.
pub fn changes(prev: Option<&Frame>, next: &Frame) -> Vec<String> {
    let mut lines = Vec::new();
    let before = prev.cloned().unwrap_or_default();
    if next.unreachable != before.unreachable {
        match &next.unreachable {
            Some(u) => lines.push(format!("cannot read the Failover now: {u}")),
            None => lines.push("reading the Failover again".into()),
        }
    }
    if next.phase != before.phase
        && let Some(p) = &next.phase
    {
        let mut line = format!("phase {p}");
        if let Some(m) = next.message.as_ref().filter(|_| next.outcome.is_none()) {
            let _ = write!(line, ": {m}");
        }
        lines.push(line);
    }
    if next.stage != before.stage
        && let Some(s) = &next.stage
    {
        // Stages that began and ended between two reads: said too, in the plan's order.
        if let Some(order) = next.mode.map(stage_order) {
            let at = |stage: Option<&str>| stage.and_then(|x| order.iter().position(|o| *o == x));
            if let Some(to) = at(Some(s)) {
                let from = at(before.stage.as_deref()).map_or(0, |i| i + 1);
                for skipped in order.iter().take(to).skip(from) {
                    lines.push(format!(
                        "stage {skipped} (began and ended between two reads)"
                    ));
                }
            }
        }
        lines.push(format!("stage {s}"));
    }
    if (next.step != before.step || next.progress != before.progress)
        && let (Some(step), Some(p)) = (&next.step, &next.progress)
    {
        lines.push(format!("step {step} ({p})"));
    }
    if next.kinds != before.kinds && !next.kinds.is_empty() {
        let from = next.kinds_from.as_deref().unwrap_or("?");
        lines.push(format!("{from}: {}", next.kinds.join("; ")));
    }
    if next.outcome != before.outcome
        && let Some(o) = &next.outcome
    {
        lines.push(format!("outcome {o}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(phase: &str, stage: Option<&str>, progress: Option<&str>) -> Frame {
        Frame {
            phase: Some(phase.into()),
            stage: stage.map(String::from),
            step: progress.map(|_| "scale-down-workloads".into()),
            progress: progress.map(String::from),
            ..Frame::default()
        }
    }

    #[test]
    fn phases_end_the_wait_with_their_exit_codes() {
        assert_eq!(frame("Pending", None, None).end(), None);
        assert_eq!(frame("Running", Some("initialization"), None).end(), None);
        assert_eq!(frame("Completed", None, None).end(), Some(Exit::Ok));
        for failed in ["Aborted", "Refused", "Withdrawn", "Invalid"] {
            assert_eq!(frame(failed, None, None).end(), Some(Exit::Failed));
        }
        assert_eq!(
            frame("NeedsOperator", None, None).end(),
            Some(Exit::NeedsOperator)
        );
    }

    #[test]
    fn bars_fill_with_progress() {
        assert_eq!(bar("0/4", 8), "[--------]");
        assert_eq!(bar("2/4", 8), "[####----]");
        assert_eq!(bar("4/4", 8), "[########]");
        assert_eq!(bar("nonsense", 4), "[----]");
    }

    #[test]
    fn the_live_view_marks_done_running_and_coming_stages() {
        let mut t = Tracker::default();
        t.observe(&frame("Running", Some("initialization"), Some("1/15")), 0.1);
        let now = frame("Running", Some("source-preparation"), Some("4/15"));
        t.observe(&now, 0.6);
        let text = render_live("Failover shop/web → west", &t, &now, 2.0, 1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Failover shop/web → west   00:02.0");
        assert_eq!(lines[1].trim_end(), "  ✔ initialization       500ms");
        assert_eq!(lines[2].trim_end(), "  ⠙ source-preparation   1.4s");
        assert_eq!(lines[3].trim_end(), "  · volume-demotion");
        assert!(lines[7].contains("[######------------------] 4/15  scale-down-workloads"));
        assert_eq!(lines[8], "  Running");
        let done = frame("Completed", None, Some("14/15"));
        t.observe(&done, 9.0);
        let text = render_live("h", &t, &done, 9.0, 2);
        assert!(text.contains("[########################] 15/15"), "{text}");
        assert!(
            text.lines().skip(1).take(6).all(|l| l.contains('✔')),
            "{text}"
        );
    }

    #[test]
    fn stages_passed_between_two_reads_are_said_in_the_plans_order() {
        let mut a = frame("Running", Some("initialization"), Some("1/15"));
        a.mode = Some(failover_model::Mode::Consistency);
        let mut b = frame("Running", Some("volume-demotion"), Some("7/15"));
        b.mode = a.mode;
        let lines = changes(Some(&a), &b);
        assert_eq!(
            lines[..2],
            [
                "stage source-preparation (began and ended between two reads)",
                "stage volume-demotion"
            ]
        );
        // Uptime runs the target's stages first; the first read may be late already.
        let mut c = frame("Running", Some("target-activation"), Some("6/18"));
        c.mode = Some(failover_model::Mode::Uptime);
        let lines = changes(None, &c);
        assert_eq!(
            lines[1..4],
            [
                "stage initialization (began and ended between two reads)",
                "stage volume-promotion (began and ended between two reads)",
                "stage target-activation"
            ]
        );
    }

    #[test]
    fn plain_lines_say_only_what_changed() {
        let a = frame("Pending", None, None);
        assert_eq!(changes(None, &a), ["phase Pending"]);
        let mut b = frame("Running", Some("initialization"), Some("1/15"));
        b.kinds = vec!["scaled down 0/3 Deployments".into()];
        b.kinds_from = Some("east".into());
        assert_eq!(
            changes(Some(&a), &b),
            [
                "phase Running",
                "stage initialization",
                "step scale-down-workloads (1/15)",
                "east: scaled down 0/3 Deployments"
            ]
        );
        assert!(changes(Some(&b), &b).is_empty());
        let mut c = frame("Completed", None, None);
        c.outcome = Some("completed-consistency".into());
        assert_eq!(
            changes(Some(&b), &c),
            ["phase Completed", "outcome completed-consistency"]
        );
    }
}
