//! The auto-failover trigger with hysteresis: a pure state machine fed with health
//! observations of the active cluster, which fires only after `failures_required`
//! consecutive failed observations spanning at least `window`, and never sooner than
//! `min_interval` after it last fired. A single blip never fires it.
//!
//! The stateright model does not run this trigger: it lets a request arrive at any
//! moment, which covers every timing the trigger could produce, so safety never depends
//! on the trigger's tuning.

use super::types::Time;

/// Tuning of the trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriggerPolicy {
    /// Consecutive failed observations needed (at least 2, so one blip never fires).
    pub failures_required: u32,
    /// The failed observations must span at least this long.
    pub window: Time,
    /// Minimum time between two firings.
    pub min_interval: Time,
}

/// Why a policy is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// `failures_required` below 2 would fire on a single blip.
    TooFewFailures,
    /// `min_interval` shorter than `window` would let failovers chase each other.
    IntervalShorterThanWindow,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyError::TooFewFailures => {
                "failuresRequired must be at least 2: a single failed health check must never trigger a failover"
            }
            PolicyError::IntervalShorterThanWindow => {
                "minInterval must be at least the observation window"
            }
        })
    }
}

impl TriggerPolicy {
    /// Check the policy once, when it is parsed.
    pub fn validate(self) -> Result<TriggerPolicy, PolicyError> {
        if self.failures_required < 2 {
            return Err(PolicyError::TooFewFailures);
        }
        if self.min_interval < self.window {
            return Err(PolicyError::IntervalShorterThanWindow);
        }
        Ok(self)
    }
}

/// The trigger's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Trigger {
    /// Start of the current run of failed observations and its length.
    failing_since: Option<(Time, u32)>,
    /// When the trigger last fired.
    fired_at: Option<Time>,
}

impl Trigger {
    /// The current run of failed observations: since when, and how many.
    pub fn failing(&self) -> Option<(Time, u32)> {
        self.failing_since
    }

    /// When the trigger last fired.
    pub fn fired_at(&self) -> Option<Time> {
        self.fired_at
    }

    /// The earliest time at which the current run of failures fires the trigger, if
    /// every observation from now on fails too (none while nothing fails).
    pub fn fires_at(&self, policy: &TriggerPolicy) -> Option<Time> {
        let (since, _) = self.failing_since?;
        let rested = self.fired_at.map_or(0, |at| at + policy.min_interval);
        Some((since + policy.window).max(rested))
    }

    /// Forget the current run of failures (the trigger does not apply now: a failover
    /// runs, or the cluster is not the one that would take over).
    pub fn reset(&mut self) {
        self.failing_since = None;
    }

    /// Feed one observation made at local time `now`; returns whether to request a failover.
    pub fn observe(&mut self, policy: &TriggerPolicy, now: Time, healthy: bool) -> bool {
        if healthy {
            self.failing_since = None;
            return false;
        }
        let (since, count) = match self.failing_since {
            Some((since, count)) => (since, count.saturating_add(1)),
            None => (now, 1),
        };
        self.failing_since = Some((since, count));
        let sustained = count >= policy.failures_required && now >= since + policy.window;
        let rested = self
            .fired_at
            .is_none_or(|at| now >= at + policy.min_interval);
        if sustained && rested {
            self.fired_at = Some(now);
            self.failing_since = None;
            return true;
        }
        false
    }
}
