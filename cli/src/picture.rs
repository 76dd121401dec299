//! `history GROUP --timeline FILE`: one ended failover drawn from the record's history
//! ([`failover_engine::pictures::from_trail`]: stages, state bands as journaled, the lock,
//! every trail mark) and the operators' Kubernetes Events about the group in both
//! clusters (stage changes and hooks as marks, self-fences and failed hooks as faults).

use failover_engine::pictures::from_trail;
use failover_engine::timeline::{self, Fault, Ms, Span, Timeline};
use failover_engine::trail::Ended;

/// Events this close before the failover's request or after its end still belong to it
/// (a self-fence that preceded a forced failover, the last stage's Events).
pub const EVENT_SLACK_MS: Ms = 60_000;

/// One Kubernetes Event about the group, as read from a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// The cluster it was read from.
    pub cluster: String,
    /// When it happened (ms since the Unix epoch).
    pub at: Ms,
    /// Its reason (`StageStarted`, `SelfFence`, `HookFailed`...).
    pub reason: String,
    /// Its note.
    pub note: String,
    /// A warning.
    pub warning: bool,
}

/// Which of `events` belong to failover `e`: those naming it, and the id-less ones
/// (self-fences, auto-failover decisions) within [`EVENT_SLACK_MS`] of it.
pub fn belongs(e: &Ended, ev: &EventRow) -> bool {
    let id = format!("{:016x}", e.id);
    let start = e.request().map_or(e.ended_at, |m| m.at) as Ms;
    let near = ev.at >= start - EVENT_SLACK_MS && ev.at <= e.ended_at as Ms + EVENT_SLACK_MS;
    if ev.note.contains("failover ") && !ev.note.contains(&id) {
        return false;
    }
    near
}

/// The picture of failover `e` with the Events that belong to it.
pub fn picture(e: &Ended, names: &[String; 2], events: &[EventRow]) -> Timeline {
    let mut t = from_trail(e, names);
    let mut shown = 0;
    for ev in events.iter().filter(|ev| belongs(e, ev)) {
        shown += 1;
        let detail = format!(
            "{} {}: {}",
            timeline::duration(ev.at - t.start),
            ev.reason,
            ev.note
        );
        let fault = matches!(ev.reason.as_str(), "SelfFence" | "HookFailed");
        if fault {
            t.faults.push(Fault::new(
                Some(&ev.cluster),
                Span::new(ev.at, ev.at, ev.reason.clone(), detail),
            ));
        } else if let Some(lane) = t.clusters.iter_mut().find(|l| l.name == ev.cluster) {
            lane.mark(ev.at, ev.reason.clone(), detail);
        }
        // Events outside the axis widen it.
        t.start = t.start.min(ev.at);
        t.end = t.end.max(ev.at + 1);
    }
    t.subtitle.push(format!(
        "{shown} Kubernetes Events of the operators about it (warnings as faults)"
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::timeline::{elements, svg};
    use failover_engine::trail::{Mark, MarkEvent};
    use failover_model::{Cluster, Hooks, Mode, Outcome, PlanKind};

    fn ended() -> Ended {
        let mark = |event, by, at, done| Mark {
            event,
            by: Some(by),
            at,
            done,
            to: None,
            kind: None,
        };
        Ended {
            id: 0xabc,
            outcome: Outcome::Completed(PlanKind::Planned(Mode::Consistency)),
            token: 1,
            ended_by: Cluster::B,
            ended_at: 100_000,
            kind: Some(PlanKind::Planned(Mode::Consistency)),
            source: Some(Cluster::A),
            target: Some(Cluster::B),
            hooks: Hooks::NONE,
            trail: vec![
                mark(MarkEvent::Requested, Cluster::B, 90_000, None),
                mark(MarkEvent::Acquired, Cluster::A, 91_000, Some(1)),
            ],
        }
    }

    fn event(cluster: &str, at: Ms, reason: &str, note: &str) -> EventRow {
        EventRow {
            cluster: cluster.into(),
            at,
            reason: reason.into(),
            note: note.into(),
            warning: reason == "SelfFence",
        }
    }

    #[test]
    fn events_of_the_failover_and_id_less_ones_nearby_belong_to_it() {
        let e = ended();
        let mine = event(
            "east",
            95_000,
            "StageStarted",
            "failover 0000000000000abc (...)",
        );
        let other = event(
            "east",
            95_000,
            "StageStarted",
            "failover 0000000000000def (...)",
        );
        let fence = event(
            "west",
            40_000,
            "SelfFence",
            "the lease could not be renewed",
        );
        let long_ago = event(
            "west",
            10_000,
            "SelfFence",
            "the lease could not be renewed",
        );
        assert!(belongs(&e, &mine));
        assert!(!belongs(&e, &other));
        assert!(belongs(&e, &fence));
        assert!(!belongs(&e, &long_ago));
    }

    #[test]
    fn events_become_marks_and_warnings_faults() {
        let names = ["east".to_string(), "west".to_string()];
        let events = [
            event(
                "east",
                95_000,
                "StageStarted",
                "failover 0000000000000abc: stage x",
            ),
            event(
                "west",
                96_000,
                "HookFailed",
                "failover 0000000000000abc: hook verify",
            ),
        ];
        let doc = svg(&picture(&ended(), &names, &events));
        let els = elements(&doc);
        assert!(els.iter().any(|e| e["data-kind"] == "mark"
            && e["data-cluster"] == "east"
            && e["data-label"] == "StageStarted"));
        assert!(els.iter().any(|e| e["data-kind"] == "fault"
            && e["data-cluster"] == "west"
            && e["data-label"] == "HookFailed"));
    }
}
