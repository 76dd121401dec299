//! A failover's trail: what the record keeps about it for people, beside the protocol's
//! state. Each protocol write on a failover (its request, the lock taken, every journal
//! entry, a deadline's flag, a person's action) appends a [`Mark`] with the writer and
//! its local time; the item that ends the failover in the history keeps the whole trail
//! with the plan it followed. No decision ever reads it: it is what `kubectl failover
//! history` shows (who asked, when it started, how long each stage took) and what a
//! timeline draws.
//!
//! Times are each writer's local clock in milliseconds since the Unix epoch, so marks of
//! the two clusters can be off from each other by the clocks' difference (at most
//! `maxClockDriftSeconds` where the deployment rule holds).

use failover_model::{Cluster, FailoverId, Hooks, Intervention, Outcome, Plan, PlanKind};
use failover_model::{Stage, Time, Token, Variant};

/// The words of a plan kind in status, Events and the CLI: `consistency`, `uptime`,
/// `forced`.
pub fn kind_words(kind: PlanKind) -> String {
    match kind {
        PlanKind::Planned(mode) => mode.to_string(),
        PlanKind::Forced => "forced".into(),
    }
}

/// The words of an outcome in status, Events and the CLI.
pub fn outcome_words(outcome: Outcome) -> String {
    use failover_model::AbortReason;
    match outcome {
        Outcome::Completed(kind) => format!("completed-{}", kind_words(kind)),
        Outcome::Aborted(AbortReason::TargetSilent) => "aborted-target-silent".into(),
        Outcome::Aborted(AbortReason::Person) => "aborted-by-person".into(),
        Outcome::Aborted(AbortReason::Deadline(stage)) => format!("aborted-deadline-{stage}"),
        // The hook's index in spec.hooks (its failure's Event names it).
        Outcome::Aborted(AbortReason::Hook(i)) => format!("aborted-by-hook-{i}"),
        Outcome::Resolved => "resolved-by-person".into(),
        Outcome::NoOp => "no-op".into(),
        Outcome::Withdrawn => "withdrawn".into(),
    }
}

/// What a mark records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkEvent {
    /// The request was written (`Failover` object → record).
    Requested,
    /// The source took the lock and started the failover.
    Acquired,
    /// The target took the lock without the source (forced).
    Forced,
    /// The target took the lock after the source's hand-off.
    TookOver,
    /// A step was journaled done (`released`: the writer let the lock go with it, a
    /// hand-off to the peer).
    Journaled {
        /// The lock was released with this entry.
        released: bool,
    },
    /// The step at the mark's position missed its stage's deadline after the target
    /// promoted: needs-operator.
    Stuck,
    /// A person's action.
    Asked(Intervention),
}

impl MarkEvent {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            MarkEvent::Requested => "request",
            MarkEvent::Acquired => "acquire",
            MarkEvent::Forced => "force",
            MarkEvent::TookOver => "takeover",
            MarkEvent::Journaled { released: false } => "journal",
            MarkEvent::Journaled { released: true } => "handoff",
            MarkEvent::Stuck => "stuck",
            MarkEvent::Asked(Intervention::Abort) => "abort-asked",
            MarkEvent::Asked(Intervention::Retry) => "retry",
            MarkEvent::Asked(Intervention::Resolve) => "resolve-asked",
        }
    }

    /// The event a stored name stands for.
    pub fn from_name(name: &str) -> Option<MarkEvent> {
        [
            MarkEvent::Requested,
            MarkEvent::Acquired,
            MarkEvent::Forced,
            MarkEvent::TookOver,
            MarkEvent::Journaled { released: false },
            MarkEvent::Journaled { released: true },
            MarkEvent::Stuck,
            MarkEvent::Asked(Intervention::Abort),
            MarkEvent::Asked(Intervention::Retry),
            MarkEvent::Asked(Intervention::Resolve),
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

/// One mark of a trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// What happened.
    pub event: MarkEvent,
    /// The cluster that wrote it (none for a person's action).
    pub by: Option<Cluster>,
    /// The writer's local time (ms since the epoch; 0 when unknown).
    pub at: Time,
    /// The journal position after the write (steps done), for writes that move it.
    pub done: Option<u32>,
    /// For a request: the cluster asked for.
    pub to: Option<Cluster>,
    /// For a request: the plan asked for.
    pub kind: Option<PlanKind>,
}

/// One ended failover with everything the record keeps about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The failover.
    pub id: FailoverId,
    /// How it ended.
    pub outcome: Outcome,
    /// The record's token when it ended.
    pub token: Token,
    /// The cluster that wrote the end (for a person's resolve, the operator that
    /// carried it out).
    pub ended_by: Cluster,
    /// The writer's local time of the end.
    pub ended_at: Time,
    /// The plan it followed (none for a request that never started).
    pub kind: Option<PlanKind>,
    /// The cluster it moved the group from, if it started.
    pub source: Option<Cluster>,
    /// The cluster it moved the group to, if it started.
    pub target: Option<Cluster>,
    /// The hooks its plan ran.
    pub hooks: Hooks,
    /// Its trail, oldest first (empty for items written before trails existed).
    pub trail: Vec<Mark>,
}

impl Ended {
    /// The request's mark, if the trail has one.
    pub fn request(&self) -> Option<&Mark> {
        self.trail.iter().find(|m| m.event == MarkEvent::Requested)
    }

    /// When it started: the lock taken (or the request, for one that never started).
    pub fn started_at(&self) -> Option<Time> {
        self.trail
            .iter()
            .find(|m| matches!(m.event, MarkEvent::Acquired | MarkEvent::Forced))
            .or_else(|| self.request())
            .map(|m| m.at)
    }

    /// The stages it went through, with when each began and ended.
    pub fn stages(&self) -> Vec<StageSpan> {
        match self.kind {
            Some(kind) => stage_spans(kind, self.hooks, &self.trail, Some(self.ended_at)),
            None => Vec::new(),
        }
    }
}

/// The time one stage of a failover took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpan {
    /// The stage.
    pub stage: Stage,
    /// When its first step began (the journal entry before it, or the lock taken).
    pub from: Time,
    /// When its last step was journaled (or the failover ended); none while it runs.
    pub to: Option<Time>,
    /// The cluster that ran it (the writer of its journal entries).
    pub by: Option<Cluster>,
}

impl StageSpan {
    /// Its duration in milliseconds, once it ended.
    pub fn millis(&self) -> Option<u64> {
        self.to.map(|to| to.saturating_sub(self.from))
    }
}

/// The stages of a failover of `kind` with `hooks` as its trail shows them: a mark at
/// journal position `n` ends the step before it and begins step `n`, so a stage runs
/// from the mark that reached its first step to the mark that reached the next stage's
/// (or `end`, the failover's end, for the last one). Stages the plan passes through
/// without a step of their own are left out.
pub fn stage_spans(
    kind: PlanKind,
    hooks: Hooks,
    trail: &[Mark],
    end: Option<Time>,
) -> Vec<StageSpan> {
    let plan = Plan::with_hooks(kind, Variant::Correct, hooks);
    let stage_at = |done: u32| plan.get(done).map(|s| s.stage);
    let mut spans: Vec<StageSpan> = Vec::new();
    for mark in trail {
        let Some(done) = mark.done else { continue };
        // The step `done` is next: its stage runs from here.
        let next = stage_at(done);
        if let Some(last) = spans.last_mut() {
            if Some(last.stage) == next {
                last.by = last.by.or(mark.by);
                continue;
            }
            if last.to.is_none() {
                last.to = Some(mark.at);
            }
        }
        if let Some(stage) = next {
            let by = trail
                .iter()
                .filter(|m| {
                    m.done
                        .is_some_and(|d| d > done && stage_at(d - 1) == Some(stage))
                })
                .find_map(|m| m.by)
                .or(mark.by);
            spans.push(StageSpan {
                stage,
                from: mark.at,
                to: None,
                by,
            });
        }
    }
    if let (Some(last), Some(end)) = (spans.last_mut(), end)
        && last.to.is_none()
    {
        last.to = Some(end);
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_model::Mode;

    fn journal(done: u32, at: Time, by: Cluster) -> Mark {
        Mark {
            event: MarkEvent::Journaled { released: false },
            by: Some(by),
            at,
            done: Some(done),
            to: None,
            kind: None,
        }
    }

    #[test]
    fn event_names_round_trip() {
        for name in [
            "request",
            "acquire",
            "force",
            "takeover",
            "journal",
            "handoff",
            "stuck",
            "abort-asked",
            "retry",
            "resolve-asked",
        ] {
            assert_eq!(MarkEvent::from_name(name).map(MarkEvent::name), Some(name));
        }
        assert_eq!(MarkEvent::from_name("nonsense"), None);
    }

    #[test]
    fn every_step_journaled_gives_every_stage_in_order_with_its_time() {
        let kind = PlanKind::Planned(Mode::Consistency);
        let plan = Plan::with_hooks(kind, Variant::Correct, Hooks::default());
        let len = plan.len() as u32;
        let mut trail = vec![Mark {
            event: MarkEvent::Acquired,
            by: Some(Cluster::A),
            at: 1_000,
            done: Some(1),
            to: None,
            kind: None,
        }];
        // The last step (the completion) is not journaled: its write ends the failover.
        for done in 2..len {
            let by = if plan.get(done - 1).expect("step").owner == failover_model::Role::Source {
                Cluster::A
            } else {
                Cluster::B
            };
            trail.push(journal(done, 1_000 + u64::from(done) * 100, by));
        }
        let spans = stage_spans(kind, Hooks::default(), &trail, Some(9_000));
        let stages: Vec<Stage> = spans.iter().map(|s| s.stage).collect();
        let mut expected: Vec<Stage> = Vec::new();
        for i in 1..len {
            let stage = plan.get(i).expect("step").stage;
            if expected.last() != Some(&stage) {
                expected.push(stage);
            }
        }
        assert_eq!(stages, expected);
        // Contiguous: each stage ends where the next begins; the last at the end.
        for pair in spans.windows(2) {
            assert_eq!(pair[0].to, Some(pair[1].from));
        }
        assert_eq!(spans.last().and_then(|s| s.to), Some(9_000));
        assert!(spans.iter().all(|s| s.millis().is_some()));
        // The volume promotion ran on the target.
        let promotion = spans
            .iter()
            .find(|s| s.stage == Stage::VolumePromotion)
            .expect("promotion");
        assert_eq!(promotion.by, Some(Cluster::B));
    }

    #[test]
    fn a_running_failover_has_its_last_stage_open() {
        let kind = PlanKind::Planned(Mode::Uptime);
        let trail = [Mark {
            event: MarkEvent::Acquired,
            by: Some(Cluster::B),
            at: 5,
            done: Some(1),
            to: None,
            kind: None,
        }];
        let spans = stage_spans(kind, Hooks::default(), &trail, None);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].from, 5);
        assert_eq!(spans[0].to, None);
    }
}
