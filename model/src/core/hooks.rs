//! Hooks: the application's own steps inside a failover (quiesce a database before its
//! volumes are demoted, verify the data before the target promotes, tell someone when
//! it is over), as steps of the plan.
//!
//! The model knows of each hook only what the protocol needs: where it stands (before or
//! after a cluster step of the plan), which side runs it, and what its failure does. What
//! it runs (a Job, an exec, an HTTP request) is the engine's business. A hook is a plan
//! step like any other: run by the lock's holder, journaled when done, bounded by its
//! stage's deadline. It runs *at least once*: an operator that crashes after the hook
//! ran but before the journal recorded it runs it again, so a hook must be idempotent.

use std::fmt;

use super::plan::{Step, StepKind};
use super::types::Role;

/// The most hooks a group may have.
pub const MAX_HOOKS: usize = 8;

/// What a hook's failure (an error, or no success within its timeout) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnFailure {
    /// Roll the failover back (the source stays active and restores what it stopped).
    /// Only where a roll back is still safe: before the target promoted anything
    /// ([`crate::Plan::abortable`]). Where a plan reaches the hook later (a source hook in
    /// an uptime failover, a target hook of a forced one) the hook is retried like a
    /// failing step, and the stage's deadline flags the failover `needs-operator`.
    Abort,
    /// Go on: the engine logs it, emits an Event and shows a warning in the status.
    Continue,
}

impl OnFailure {
    /// Kebab-case name (the spec's `onFailure`).
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Abort => "abort",
            OnFailure::Continue => "continue",
        }
    }
}

/// Where one hook stands in the plan and what its failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HookSpot {
    /// The cluster step it stands beside (an effect or await step; record steps take
    /// or release the lock and cannot hold a hook).
    pub anchor: Step,
    /// After the anchor (`true`) or before it.
    pub after: bool,
    /// The side that runs it: always the anchor's owner, so the lock's holder runs it.
    pub side: Role,
    /// What its failure does.
    pub on_failure: OnFailure,
}

impl HookSpot {
    /// The problem with this spot, if any: its anchor must be a cluster step, and the
    /// hook must run on the side that runs the anchor.
    pub fn problem(&self) -> Option<String> {
        let owner = anchor_owner(self.anchor);
        if !matches!(self.anchor.kind(), StepKind::Effect(_) | StepKind::Await) {
            return Some(format!(
                "{} writes the record (it takes or releases the lock): a hook stands \
                 before or after a cluster step (suspend-flux ... resume-flux)",
                self.anchor
            ));
        }
        if owner != self.side {
            let side = |r: Role| match r {
                Role::Source => "source",
                Role::Target => "target",
            };
            return Some(format!(
                "{} runs on the {}, which holds the lock then: a {} hook there would run \
                 without it (anchor it at a {} step instead)",
                self.anchor,
                side(owner),
                side(self.side),
                side(self.side),
            ));
        }
        None
    }

    fn pack(self) -> u8 {
        let anchor = Step::ALL
            .iter()
            .position(|s| *s == self.anchor)
            .unwrap_or(0) as u8
            + 1;
        anchor
            | (self.after as u8) << 5
            | ((self.side == Role::Target) as u8) << 6
            | ((self.on_failure == OnFailure::Abort) as u8) << 7
    }

    fn unpack(b: u8) -> Option<HookSpot> {
        let anchor = *Step::ALL.get(usize::from(b & 0x1f).checked_sub(1)?)?;
        Some(HookSpot {
            anchor,
            after: b & 1 << 5 != 0,
            side: if b & 1 << 6 != 0 {
                Role::Target
            } else {
                Role::Source
            },
            on_failure: if b & 1 << 7 != 0 {
                OnFailure::Abort
            } else {
                OnFailure::Continue
            },
        })
    }
}

/// The role that runs a step in every plan that has it (the hand-off, whose owner
/// depends on the plan, is no anchor anyway).
fn anchor_owner(step: Step) -> Role {
    match step {
        Step::ForceTakeLock
        | Step::PromoteVolumes
        | Step::AwaitVolumesPrimary
        | Step::ScaleUpWorkloads
        | Step::AwaitWorkloadsReady
        | Step::EnableNetwork
        | Step::ResumeCronJobs
        | Step::ResumeFlux
        | Step::Complete => Role::Target,
        _ => Role::Source,
    }
}

/// A group's hooks as the plan sees them, in the spec's order (at most [`MAX_HOOKS`]),
/// packed into one number: it is part of the spec's fingerprint ([`crate::SpecPrint`])
/// and of the failover in flight ([`crate::InFlight::hooks`]), so a failover runs the
/// hooks it started with even if a copy of the spec changes meanwhile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hooks(u64);

impl Hooks {
    /// No hooks.
    pub const NONE: Hooks = Hooks(0);

    /// The hooks at these spots, in order (`None` beyond [`MAX_HOOKS`]).
    pub fn of(spots: &[HookSpot]) -> Option<Hooks> {
        if spots.len() > MAX_HOOKS {
            return None;
        }
        Some(Hooks(spots.iter().enumerate().fold(0, |bits, (i, s)| {
            bits | u64::from(s.pack()) << (8 * i)
        })))
    }

    /// The hook with this index.
    pub fn get(self, index: u8) -> Option<HookSpot> {
        if usize::from(index) >= MAX_HOOKS {
            return None;
        }
        HookSpot::unpack((self.0 >> (8 * u32::from(index))) as u8)
    }

    /// The hooks with their indices, in order.
    pub fn iter(self) -> impl Iterator<Item = (u8, HookSpot)> {
        (0..MAX_HOOKS as u8).map_while(move |i| self.get(i).map(|s| (i, s)))
    }

    /// How many hooks.
    pub fn len(self) -> usize {
        self.iter().count()
    }

    /// No hooks.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The packed form (stored in DynamoDB).
    pub fn bits(self) -> u64 {
        self.0
    }

    /// From the packed form; `None` if it names a spot that does not exist.
    pub fn from_bits(bits: u64) -> Option<Hooks> {
        let h = Hooks(bits);
        let n = h.len();
        let rest = if n >= MAX_HOOKS { 0 } else { bits >> (8 * n) };
        (rest == 0).then_some(h)
    }
}

impl fmt::Display for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spots: Vec<String> = self
            .iter()
            .map(|(i, s)| {
                format!(
                    "#{i} {} {} ({})",
                    if s.after { "after" } else { "before" },
                    s.anchor,
                    s.on_failure.name()
                )
            })
            .collect();
        write!(f, "[{}]", spots.join(", "))
    }
}

/// What a hook's run did, as the operator that ran it remembers it
/// ([`crate::Memory::hook`]) until the journal records the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HookRun {
    /// The failover.
    pub id: u64,
    /// The hook step's journal position.
    pub at: u32,
    /// It succeeded (`false`: it failed, or did not succeed within its timeout).
    pub ok: bool,
}
