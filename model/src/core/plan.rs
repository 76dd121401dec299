//! Steps and plans: which stages each cluster's operator runs, in which order, and the
//! cross-cluster gates between them.
//!
//! A plan is one linear list of steps, each owned by the source or the target. The
//! journal in the global record counts the steps done. A *phase* is a maximal run of
//! steps with one owner; the journal entry of a phase's last step releases the lock and
//! is the hand-off mark the other operator waits for, and the next phase starts with
//! [`Step::AwaitHandOff`], which takes the lock with a new fencing token.

use std::fmt;
use std::sync::OnceLock;

use super::hooks::{HookSpot, Hooks, OnFailure};
use super::types::{ClusterState, InFlight, Mode, PlanKind, Role, Stage, VolumeRole};

/// One step of a plan. Effect steps are idempotent "ensure" operations on the operator's
/// own cluster; await steps wait for the cluster to report a state; the others are
/// conditional writes to the global record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Take the group's lock with a new fencing token and open the failover journal.
    AcquireLock,
    /// Take the lock although the source never handed over: its lease provably expired.
    ForceTakeLock,
    /// Check the target is healthy (fresh heartbeat); abort cleanly otherwise.
    Validate,
    /// Wait for the other cluster's hand-off mark, then take the lock with a new token.
    AwaitHandOff,
    /// Suspend Flux Kustomizations and HelmReleases so git cannot undo the next steps.
    SuspendFlux,
    /// Disable VirtualServices and Ingresses reversibly (originals kept in annotations).
    DisableNetwork,
    /// Scale Deployments and StatefulSets to zero, remembering their replica counts.
    ScaleDownWorkloads,
    /// Suspend CronJobs.
    SuspendCronJobs,
    /// Wait until no pod of the group runs.
    AwaitWorkloadsDown,
    /// Set every VolumeReplication to `secondary`.
    DemoteVolumes,
    /// Wait until every VolumeReplication reports `secondary`.
    AwaitVolumesSecondary,
    /// Set every VolumeReplication to `primary`.
    PromoteVolumes,
    /// Wait until every VolumeReplication reports `primary` (verifies the promotion).
    AwaitVolumesPrimary,
    /// Scale workloads back to their remembered replica counts.
    ScaleUpWorkloads,
    /// Wait until every workload is ready (observedGeneration, then ready replicas).
    AwaitWorkloadsReady,
    /// Restore VirtualServices and Ingresses from their saved originals.
    EnableNetwork,
    /// Resume CronJobs.
    ResumeCronJobs,
    /// Resume Flux and request a reconcile.
    ResumeFlux,
    /// Set the active cluster, record the history and release the lock, in one transaction.
    Complete,
    /// Run the group's hook with this index ([`Hooks`]): a unit of the application's own
    /// work (a Job, an exec, an HTTP request), at least once.
    Hook(u8),
}

/// What executing a step means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A conditional write to the global record.
    Record,
    /// An idempotent change to the operator's own cluster: which objects, which way.
    Effect(Effect),
    /// Waiting for the operator's own cluster to report a state.
    Await,
    /// Running the group's hook with this index.
    Hook(u8),
}

/// The two reversible changes every class of objects supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Desired {
    /// Stop: scale to zero (remembering the count), suspend, disable routes, demote.
    Stop,
    /// Start: restore the count, resume (and request a reconcile), restore routes, promote.
    Start,
}

/// An effect step: an idempotent change of one class of objects of the operator's own
/// cluster ([`Effect::resource`]) in one direction ([`Effect::desired`]). The engine
/// carries one out with one exhaustive match; an effect without a target cannot be
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// [`Step::SuspendFlux`].
    SuspendFlux,
    /// [`Step::DisableNetwork`].
    DisableNetwork,
    /// [`Step::ScaleDownWorkloads`].
    ScaleDownWorkloads,
    /// [`Step::SuspendCronJobs`].
    SuspendCronJobs,
    /// [`Step::DemoteVolumes`].
    DemoteVolumes,
    /// [`Step::PromoteVolumes`].
    PromoteVolumes,
    /// [`Step::ScaleUpWorkloads`].
    ScaleUpWorkloads,
    /// [`Step::EnableNetwork`].
    EnableNetwork,
    /// [`Step::ResumeCronJobs`].
    ResumeCronJobs,
    /// [`Step::ResumeFlux`].
    ResumeFlux,
}

impl Effect {
    /// Every effect, in declaration order.
    pub const ALL: [Effect; 10] = [
        Effect::SuspendFlux,
        Effect::DisableNetwork,
        Effect::ScaleDownWorkloads,
        Effect::SuspendCronJobs,
        Effect::DemoteVolumes,
        Effect::PromoteVolumes,
        Effect::ScaleUpWorkloads,
        Effect::EnableNetwork,
        Effect::ResumeCronJobs,
        Effect::ResumeFlux,
    ];

    /// The plan step this effect is.
    pub fn step(self) -> Step {
        match self {
            Effect::SuspendFlux => Step::SuspendFlux,
            Effect::DisableNetwork => Step::DisableNetwork,
            Effect::ScaleDownWorkloads => Step::ScaleDownWorkloads,
            Effect::SuspendCronJobs => Step::SuspendCronJobs,
            Effect::DemoteVolumes => Step::DemoteVolumes,
            Effect::PromoteVolumes => Step::PromoteVolumes,
            Effect::ScaleUpWorkloads => Step::ScaleUpWorkloads,
            Effect::EnableNetwork => Step::EnableNetwork,
            Effect::ResumeCronJobs => Step::ResumeCronJobs,
            Effect::ResumeFlux => Step::ResumeFlux,
        }
    }

    /// The class of objects it changes.
    pub fn resource(self) -> Resource {
        match self {
            Effect::SuspendFlux | Effect::ResumeFlux => Resource::Flux,
            Effect::DisableNetwork | Effect::EnableNetwork => Resource::Network,
            Effect::ScaleDownWorkloads | Effect::ScaleUpWorkloads => Resource::Workloads,
            Effect::SuspendCronJobs | Effect::ResumeCronJobs => Resource::CronJobs,
            Effect::DemoteVolumes | Effect::PromoteVolumes => Resource::Volumes,
        }
    }

    /// Which way it sets them.
    pub fn desired(self) -> Desired {
        match self {
            Effect::SuspendFlux
            | Effect::DisableNetwork
            | Effect::ScaleDownWorkloads
            | Effect::SuspendCronJobs
            | Effect::DemoteVolumes => Desired::Stop,
            Effect::PromoteVolumes
            | Effect::ScaleUpWorkloads
            | Effect::EnableNetwork
            | Effect::ResumeCronJobs
            | Effect::ResumeFlux => Desired::Start,
        }
    }

    /// It stops something (a fence, a source's preparation): allowed without a lease.
    pub fn stops(self) -> bool {
        self.desired() == Desired::Stop
    }

    /// The cluster already is as the effect wants it.
    pub fn satisfied(self, c: &ClusterState) -> bool {
        self.step().satisfied(c)
    }

    /// Apply the change (the Kubernetes writes the engine performs). Returns whether
    /// anything changed; applying twice changes nothing the second time.
    pub fn apply(self, c: &mut ClusterState) -> bool {
        let before = *c;
        let on = self.desired() == Desired::Start;
        let a = &mut c.agreement;
        match self.resource() {
            Resource::Flux => {
                c.flux_suspended = !on;
                a.flux = a.flux.applied();
            }
            Resource::Network => {
                c.network_open = on;
                a.network = a.network.applied();
            }
            Resource::Workloads => {
                c.workloads_up = on;
                a.workloads_up = a.workloads_up.applied();
            }
            Resource::CronJobs => {
                c.cronjobs_suspended = !on;
                a.cronjobs = a.cronjobs.applied();
            }
            Resource::Volumes => {
                c.volume_spec = if on {
                    VolumeRole::Primary
                } else {
                    VolumeRole::Secondary
                };
                a.volume_spec = a.volume_spec.applied();
            }
        }
        before != *c
    }

    /// Kebab-case name (the step's).
    pub fn name(self) -> &'static str {
        self.step().name()
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Step {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Step::AcquireLock => "acquire-lock",
            Step::ForceTakeLock => "force-take-lock",
            Step::Validate => "validate",
            Step::AwaitHandOff => "await-hand-off",
            Step::SuspendFlux => "suspend-flux",
            Step::DisableNetwork => "disable-network",
            Step::ScaleDownWorkloads => "scale-down-workloads",
            Step::SuspendCronJobs => "suspend-cronjobs",
            Step::AwaitWorkloadsDown => "await-workloads-down",
            Step::DemoteVolumes => "demote-volumes",
            Step::AwaitVolumesSecondary => "await-volumes-secondary",
            Step::PromoteVolumes => "promote-volumes",
            Step::AwaitVolumesPrimary => "await-volumes-primary",
            Step::ScaleUpWorkloads => "scale-up-workloads",
            Step::AwaitWorkloadsReady => "await-workloads-ready",
            Step::EnableNetwork => "enable-network",
            Step::ResumeCronJobs => "resume-cronjobs",
            Step::ResumeFlux => "resume-flux",
            Step::Complete => "complete",
            Step::Hook(_) => "hook",
        }
    }

    /// One-line description.
    pub fn description(self) -> &'static str {
        match self {
            Step::AcquireLock => {
                "take the group's lock with a new fencing token and open the journal"
            }
            Step::ForceTakeLock => {
                "take the lock after the source's lease provably expired (lease + drift)"
            }
            Step::Validate => "check the target's heartbeat is fresh; abort cleanly if not",
            Step::AwaitHandOff => "wait for the other cluster's hand-off mark, then take the lock",
            Step::SuspendFlux => "suspend Flux Kustomizations and HelmReleases",
            Step::DisableNetwork => "disable VirtualServices and Ingresses, keeping the originals",
            Step::ScaleDownWorkloads => {
                "scale Deployments and StatefulSets to 0, remembering replicas"
            }
            Step::SuspendCronJobs => "suspend CronJobs",
            Step::AwaitWorkloadsDown => "wait until no pod of the group runs",
            Step::DemoteVolumes => "set VolumeReplications to secondary",
            Step::AwaitVolumesSecondary => "wait until VolumeReplications report secondary",
            Step::PromoteVolumes => "set VolumeReplications to primary",
            Step::AwaitVolumesPrimary => "wait until VolumeReplications report primary",
            Step::ScaleUpWorkloads => "restore the remembered replica counts",
            Step::AwaitWorkloadsReady => "wait until every workload is ready",
            Step::EnableNetwork => "restore VirtualServices and Ingresses",
            Step::ResumeCronJobs => "resume CronJobs",
            Step::ResumeFlux => "resume Flux and request a reconcile",
            Step::Complete => "set the active cluster, record history, release the lock",
            Step::Hook(_) => "run the application's hook (at least once)",
        }
    }

    /// Whether the step writes the record, changes the cluster (and how) or waits.
    pub fn kind(self) -> StepKind {
        let effect = StepKind::Effect;
        match self {
            Step::AcquireLock
            | Step::ForceTakeLock
            | Step::Validate
            | Step::AwaitHandOff
            | Step::Complete => StepKind::Record,
            Step::AwaitWorkloadsDown
            | Step::AwaitVolumesSecondary
            | Step::AwaitVolumesPrimary
            | Step::AwaitWorkloadsReady => StepKind::Await,
            Step::SuspendFlux => effect(Effect::SuspendFlux),
            Step::DisableNetwork => effect(Effect::DisableNetwork),
            Step::ScaleDownWorkloads => effect(Effect::ScaleDownWorkloads),
            Step::SuspendCronJobs => effect(Effect::SuspendCronJobs),
            Step::DemoteVolumes => effect(Effect::DemoteVolumes),
            Step::PromoteVolumes => effect(Effect::PromoteVolumes),
            Step::ScaleUpWorkloads => effect(Effect::ScaleUpWorkloads),
            Step::EnableNetwork => effect(Effect::EnableNetwork),
            Step::ResumeCronJobs => effect(Effect::ResumeCronJobs),
            Step::ResumeFlux => effect(Effect::ResumeFlux),
            Step::Hook(i) => StepKind::Hook(i),
        }
    }

    /// The effect this step is, if it is one.
    pub fn effect(self) -> Option<Effect> {
        match self.kind() {
            StepKind::Effect(e) => Some(e),
            StepKind::Record | StepKind::Await | StepKind::Hook(_) => None,
        }
    }

    /// For effect and await steps: the cluster already is as the step wants it.
    pub fn satisfied(self, c: &ClusterState) -> bool {
        let a = &c.agreement;
        let volumes = |role| {
            a.volume_spec.satisfies(c.volume_spec == role)
                && a.volume_status.satisfies(c.volume_status == role)
        };
        match self {
            Step::SuspendFlux => a.flux.satisfies(c.flux_suspended),
            Step::ResumeFlux => a.flux.satisfies(!c.flux_suspended),
            Step::DisableNetwork => a.network.satisfies(!c.network_open),
            Step::EnableNetwork => a.network.satisfies(c.network_open),
            Step::ScaleDownWorkloads => a.workloads_up.satisfies(!c.workloads_up),
            Step::ScaleUpWorkloads => a.workloads_up.satisfies(c.workloads_up),
            Step::SuspendCronJobs => a.cronjobs.satisfies(c.cronjobs_suspended),
            Step::ResumeCronJobs => a.cronjobs.satisfies(!c.cronjobs_suspended),
            Step::AwaitWorkloadsDown => a.workloads_running.satisfies(!c.workloads_running),
            Step::AwaitWorkloadsReady => {
                a.workloads_up.satisfies(c.workloads_up)
                    && a.workloads_running.satisfies(c.workloads_running)
            }
            Step::DemoteVolumes => a
                .volume_spec
                .satisfies(c.volume_spec == VolumeRole::Secondary),
            Step::PromoteVolumes => a
                .volume_spec
                .satisfies(c.volume_spec == VolumeRole::Primary),
            Step::AwaitVolumesSecondary => volumes(VolumeRole::Secondary),
            Step::AwaitVolumesPrimary => volumes(VolumeRole::Primary),
            Step::AcquireLock
            | Step::ForceTakeLock
            | Step::Validate
            | Step::AwaitHandOff
            | Step::Complete
            | Step::Hook(_) => false,
        }
    }
}

impl Step {
    /// Every step, in declaration order.
    pub const ALL: [Step; 19] = [
        Step::AcquireLock,
        Step::ForceTakeLock,
        Step::Validate,
        Step::AwaitHandOff,
        Step::SuspendFlux,
        Step::DisableNetwork,
        Step::ScaleDownWorkloads,
        Step::SuspendCronJobs,
        Step::AwaitWorkloadsDown,
        Step::DemoteVolumes,
        Step::AwaitVolumesSecondary,
        Step::PromoteVolumes,
        Step::AwaitVolumesPrimary,
        Step::ScaleUpWorkloads,
        Step::AwaitWorkloadsReady,
        Step::EnableNetwork,
        Step::ResumeCronJobs,
        Step::ResumeFlux,
        Step::Complete,
    ];
}

/// The kinds of objects the effect steps change. A kind the operator cannot change (a
/// webhook that rejects every patch, an RBAC rule missing) fails every step on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Flux Kustomizations and HelmReleases.
    Flux,
    /// VirtualServices and Ingresses.
    Network,
    /// Deployments and StatefulSets.
    Workloads,
    /// CronJobs.
    CronJobs,
    /// VolumeReplications.
    Volumes,
}

impl Resource {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Flux => "flux",
            Resource::Network => "network",
            Resource::Workloads => "workloads",
            Resource::CronJobs => "cronjobs",
            Resource::Volumes => "volumes",
        }
    }
}

/// A set of effects: the ones one self-fence attempt applies, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EffectSet(u16);

impl EffectSet {
    /// `effects` as a set.
    pub fn of(effects: impl IntoIterator<Item = Effect>) -> EffectSet {
        let mut set = EffectSet::default();
        for e in effects {
            set.0 |= 1 << (e as u16);
        }
        set
    }

    /// Whether `effect` is in the set.
    pub fn contains(self, effect: Effect) -> bool {
        self.0 & (1 << (effect as u16)) != 0
    }

    /// The set as bits, bit `effect as u16` for each effect in it.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The effects, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Effect> {
        Effect::ALL.into_iter().filter(move |e| self.contains(*e))
    }
}

impl fmt::Display for EffectSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Effect::name).collect();
        write!(f, "{{{}}}", names.join(", "))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Stopping a cluster: the source's preparation and demotion, and the self-fence.
/// Flux is suspended first so that git cannot scale workloads back up or reopen routes.
pub const STOP: [Step; 7] = [
    Step::SuspendFlux,
    Step::DisableNetwork,
    Step::ScaleDownWorkloads,
    Step::SuspendCronJobs,
    Step::AwaitWorkloadsDown,
    Step::DemoteVolumes,
    Step::AwaitVolumesSecondary,
];

/// Every stop step holds in `c`: nothing runs, traffic closed, Flux suspended, volumes
/// secondary (a cluster at rest as the standby, or fenced).
pub fn stopped(c: &ClusterState) -> bool {
    STOP.iter().all(|s| s.satisfied(c))
}

/// Starting a cluster: the target's promotion and activation, and recovery after a
/// self-fence. Traffic opens only once workloads are ready on primary volumes; Flux
/// resumes last, when git's desired state and the cluster agree.
pub const START: [Step; 7] = [
    Step::PromoteVolumes,
    Step::AwaitVolumesPrimary,
    Step::ScaleUpWorkloads,
    Step::AwaitWorkloadsReady,
    Step::EnableNetwork,
    Step::ResumeCronJobs,
    Step::ResumeFlux,
];

/// A protocol variant. [`Variant::Correct`] is the protocol; the others are deliberately
/// broken versions that the checker and the simulator must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The protocol as designed.
    Correct,
    /// Consistency mode promotes the target's volumes before the source demotes.
    PromoteBeforeDemote,
    /// Progress writes are not conditional on the fencing token.
    NoTokenCheck,
    /// An operator that cannot renew its lease keeps serving.
    NoSelfFence,
    /// A forced failover does not wait for the source's lease plus drift to run out.
    NoLeaseWait,
    /// The store is a last-writer-wins multi-region table (each operator writes its region).
    LwwStore,
    /// `ForceTakeLock` may apply again to a failover it already forced (the protocol
    /// before issue 18): a copy delayed in transit lands with a lock computed from its
    /// sender's old time, already lapsed, and the sender's retry then applies too.
    RepeatableForce,
    /// The self-fence runs the stop steps one after the other and stops at one that
    /// keeps failing: every later step (volume demotion last) is never tried.
    FenceStopsAtFailure,
    /// Lease keeping waits behind the call in progress (the engine before issue 9): while
    /// a slow or hung Kubernetes call runs, no heartbeat is written and the call is not
    /// abandoned when the lease runs low, so the peer may force while this cluster still
    /// writes.
    HeartbeatBehindTasks,
    /// The local lease is judged by the wall clock, counted from the heartbeat's wall
    /// time, and a heartbeat the store refused still renews it (the engine before issue
    /// 9): a wall clock stepped back extends the local lease past what the record proves
    /// to the peer.
    WallClockLease,
    /// A second instance of one cluster's operator (a paused old leader beside the new
    /// one) is not shut out: its writes are accepted whatever the record's owner, and the
    /// new instance does not wait out the old one's lease before it changes anything. The
    /// old one keeps its lease and acts on a view older than the new one's work.
    StaleLeader,
    /// A missing record (deleted, or the table re-created) is created again from the
    /// spec, as a new group's is (the engine before issue 10): token 0 and the spec's
    /// initial active cluster, whatever either cluster saw.
    RecreateMissingRecord,
    /// Operators trust the slot their configuration gives them (the engine before issue
    /// 10): a claim is not checked against the identity the slot is bound to, so an
    /// operator configured as the wrong cluster takes the other cluster's slot and runs
    /// its cluster as that one.
    NoIdentityCheck,
    /// The clusters' inventories are not compared (the engine before issue 10): a kind
    /// that selects nothing in one cluster satisfies every step there, so a source
    /// whose volumes lack the group's label "demotes" nothing while the target
    /// promotes.
    EmptySelectionDone,
    /// Steps have no deadline (the engine before issue 10): a volume that never reports
    /// its new role, a workload that never becomes ready or a cluster that refuses every
    /// write leaves the group locked for ever, often with both sides down, and nobody is
    /// told.
    NoStageDeadline,
    /// A journal write is accepted while a person's abort is asked (the store before
    /// issue 13's fix): a holder whose view predates the ask journals a step where a
    /// roll back was still possible (a target hook before its promotion is such a
    /// place) and moves past it; the ask stays, and in uptime mode the source's
    /// hand-off is refused for ever (the simulator found it: seeds 268 and 5749).
    JournalPastAbort,
    /// The fence starts once less than the fence margin is left, its steps taking all
    /// of it (the engine before issue 17's fix): a csi-addons driver that takes its time
    /// to demote after the fence wrote the spec keeps the volume primary past the lease,
    /// beside the peer's forced promotion (the simulator found it: seed 15978).
    FenceIgnoresDemotion,
    /// The fence is decided on the turn's observation, from the watch caches (the
    /// engine of issue 15 before its fix): a fence step that failed left Flux running,
    /// Flux started what the fence had stopped, and the next fence attempt, on a cache
    /// that does not show that yet, leaves it running, traffic open to pods that are
    /// not ready (the simulator found it with a 5 s watch lag: seed 707 and 21 more of
    /// 10,000).
    FenceOnStaleView,
}

impl Variant {
    /// Every broken variant.
    pub const BROKEN: [Variant; 17] = [
        Variant::PromoteBeforeDemote,
        Variant::NoTokenCheck,
        Variant::NoSelfFence,
        Variant::NoLeaseWait,
        Variant::LwwStore,
        Variant::RepeatableForce,
        Variant::FenceStopsAtFailure,
        Variant::HeartbeatBehindTasks,
        Variant::WallClockLease,
        Variant::StaleLeader,
        Variant::RecreateMissingRecord,
        Variant::NoIdentityCheck,
        Variant::EmptySelectionDone,
        Variant::NoStageDeadline,
        Variant::JournalPastAbort,
        Variant::FenceIgnoresDemotion,
        Variant::FenceOnStaleView,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Correct => "correct",
            Variant::PromoteBeforeDemote => "promote-before-demote",
            Variant::NoTokenCheck => "no-token-check",
            Variant::NoSelfFence => "no-self-fence",
            Variant::NoLeaseWait => "no-lease-wait",
            Variant::LwwStore => "lww-store",
            Variant::RepeatableForce => "repeatable-force",
            Variant::FenceStopsAtFailure => "fence-stops-at-failure",
            Variant::HeartbeatBehindTasks => "heartbeat-behind-tasks",
            Variant::WallClockLease => "wall-clock-lease",
            Variant::StaleLeader => "stale-leader",
            Variant::RecreateMissingRecord => "recreate-missing-record",
            Variant::NoIdentityCheck => "no-identity-check",
            Variant::EmptySelectionDone => "empty-selection-done",
            Variant::NoStageDeadline => "no-stage-deadline",
            Variant::JournalPastAbort => "journal-past-abort",
            Variant::FenceIgnoresDemotion => "fence-ignores-demotion",
            Variant::FenceOnStaleView => "fence-on-stale-view",
        }
    }

    /// Parse a CLI name.
    pub fn from_name(name: &str) -> Option<Variant> {
        std::iter::once(Variant::Correct)
            .chain(Variant::BROKEN)
            .find(|v| v.name() == name)
    }
}

/// A plan: the ordered steps with their owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// The hooks its [`Step::Hook`] steps run.
    pub hooks: Hooks,
}

/// One step of a plan, with the role that runs it and the stage it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanStep {
    /// The stage.
    pub stage: Stage,
    /// The role whose operator runs it.
    pub owner: Role,
    /// The step.
    pub step: Step,
}

impl InFlight {
    /// The step of the protocol's plan the journal stands at: the next one to do
    /// (`None` once every step is journaled).
    pub fn next_step(&self) -> Option<PlanStep> {
        self.plan(Variant::Correct).get(self.done)
    }

    /// The plan it follows under `variant`: its kind's, with the hooks it started with.
    pub fn plan(&self, variant: Variant) -> &'static Plan {
        Plan::with_hooks(self.kind, variant, self.hooks)
    }
}

impl Plan {
    /// The plan for a failover of the given kind under the given protocol variant, with
    /// `hooks` placed ([`Plan::of`] without hooks). Built once per combination and kept
    /// for the life of the process (a group has one set of hooks, rarely changed).
    pub fn with_hooks(kind: PlanKind, variant: Variant, hooks: Hooks) -> &'static Plan {
        use std::cell::RefCell;
        type Key = (PlanKind, Variant, Hooks);
        // A few entries per thread: a linear scan beats hashing (the model checker asks
        // for a plan several times per state).
        thread_local! {
            static PLANS: RefCell<Vec<(Key, &'static Plan)>> = const { RefCell::new(Vec::new()) };
        }
        if hooks.is_empty() {
            return Plan::of(kind, variant);
        }
        let key = (kind, variant, hooks);
        PLANS.with(|plans| {
            if let Some((_, plan)) = plans.borrow().iter().find(|(k, _)| *k == key) {
                return *plan;
            }
            let plan: &'static Plan = Box::leak(Box::new(Plan::build(kind, variant, hooks)));
            plans.borrow_mut().push((key, plan));
            plan
        })
    }

    /// The plan for a failover of the given kind under the given protocol variant, without
    /// hooks (built once per kind and variant: every decision looks it up).
    pub fn of(kind: PlanKind, variant: Variant) -> &'static Plan {
        static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
        const KINDS: [PlanKind; 3] = [
            PlanKind::Planned(Mode::Consistency),
            PlanKind::Planned(Mode::Uptime),
            PlanKind::Forced,
        ];
        let variants = || std::iter::once(Variant::Correct).chain(Variant::BROKEN);
        let plans = PLANS.get_or_init(|| {
            KINDS
                .iter()
                .flat_map(|k| variants().map(|v| Plan::build(*k, v, Hooks::NONE)))
                .collect()
        });
        let k = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        let v = variants().position(|v| v == variant).unwrap_or(0);
        &plans[k * (Variant::BROKEN.len() + 1) + v]
    }

    fn build(kind: PlanKind, variant: Variant, hooks: Hooks) -> Plan {
        use Role::{Source as S, Target as T};
        use Stage::*;
        let init = [
            (Initialization, S, Step::AcquireLock),
            (Initialization, S, Step::Validate),
        ];
        let prep = STOP[..5].iter().map(|s| (SourcePreparation, S, *s));
        let demote = STOP[5..].iter().map(|s| (VolumeDemotion, S, *s));
        let promote = START[..2].iter().map(|s| (VolumePromotion, T, *s));
        let activate = START[2..].iter().map(|s| (TargetActivation, T, *s));
        let complete = (Completion, T, Step::Complete);
        let hand_off = |stage, owner| (stage, owner, Step::AwaitHandOff);
        let mut steps: Vec<(Stage, Role, Step)> = Vec::new();
        match (kind, variant) {
            (PlanKind::Planned(Mode::Consistency), Variant::PromoteBeforeDemote) => {
                steps.extend(init);
                steps.push(hand_off(VolumePromotion, T));
                steps.extend(promote);
                steps.push(hand_off(SourcePreparation, S));
                steps.extend(prep.chain(demote));
                steps.push(hand_off(TargetActivation, T));
                steps.extend(activate);
                steps.push(complete);
            }
            (PlanKind::Planned(Mode::Consistency), _) => {
                steps.extend(init);
                steps.extend(prep.chain(demote));
                steps.push(hand_off(VolumePromotion, T));
                steps.extend(promote.chain(activate));
                steps.push(complete);
            }
            (PlanKind::Planned(Mode::Uptime), _) => {
                steps.extend(init);
                steps.push(hand_off(VolumePromotion, T));
                steps.extend(promote.chain(activate));
                steps.push(hand_off(SourcePreparation, S));
                steps.extend(prep.chain(demote));
                steps.push(hand_off(Completion, T));
                steps.push(complete);
            }
            (PlanKind::Forced, _) => {
                steps.push((Initialization, T, Step::ForceTakeLock));
                steps.extend(promote.chain(activate));
                steps.push(complete);
            }
        }
        // Each hook beside its anchor, where the plan has the anchor on the hook's side
        // (a forced plan has no source steps: the source's hooks are not run), in the
        // spec's order; the hook belongs to its anchor's stage.
        let spots: Vec<(u8, HookSpot)> = hooks.iter().collect();
        let beside = |stage: Stage, owner: Role, step: Step, after: bool| {
            spots
                .iter()
                .filter(move |(_, h)| h.anchor == step && h.after == after && h.side == owner)
                .map(move |(i, _)| (stage, owner, Step::Hook(*i)))
        };
        let steps: Vec<(Stage, Role, Step)> = steps
            .into_iter()
            .flat_map(|(stage, owner, step)| {
                beside(stage, owner, step, false)
                    .chain(std::iter::once((stage, owner, step)))
                    .chain(beside(stage, owner, step, true))
            })
            .collect();
        Plan {
            steps: steps
                .into_iter()
                .map(|(stage, owner, step)| PlanStep { stage, owner, step })
                .collect(),
            hooks,
        }
    }

    /// The hook the step at `at` runs, if it is a hook step.
    pub fn hook_at(&self, at: u32) -> Option<(u8, HookSpot)> {
        match self.get(at)?.step {
            Step::Hook(i) => Some((i, self.hooks.get(i)?)),
            _ => None,
        }
    }

    /// A failure of the hook at `at` rolls the failover back: its policy says so and
    /// the target has promoted nothing yet ([`Plan::abortable`]).
    pub fn hook_aborts(&self, kind: PlanKind, at: u32) -> bool {
        self.hook_at(at)
            .is_some_and(|(_, h)| h.on_failure == OnFailure::Abort)
            && self.abortable(kind, at)
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// A plan always has steps; provided for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step at `index`, if any.
    pub fn get(&self, index: u32) -> Option<PlanStep> {
        self.steps.get(index as usize).copied()
    }

    /// The journal position of the target's promotion (every plan has one).
    pub fn promote_at(&self) -> u32 {
        self.steps
            .iter()
            .position(|s| s.step == Step::PromoteVolumes)
            .unwrap_or(self.steps.len()) as u32
    }

    /// A failover of this plan at journal position `at` may be rolled back: it is a
    /// planned one and its target has promoted nothing yet (every step before the
    /// promotion is the source's, or the target's hand-off that takes the lock for it).
    /// The source then stays active and restores what it stopped. After that point a
    /// roll back could leave two primaries: a deadline flags `needs-operator` instead.
    pub fn abortable(&self, kind: PlanKind, at: u32) -> bool {
        kind != PlanKind::Forced && at < self.promote_at()
    }

    /// A `needs-operator` failover at `at` may be resolved (completed with the rest of
    /// the target's steps left to its state at rest): the target promoted, and nothing
    /// but the target's work is left. The source's steps are never skipped (its volumes
    /// might stay primary beside the target's), and neither is an uptime target phase
    /// the source's would follow: the source would stop while the target does not
    /// serve yet (the model found it: `uptime-keeps-serving`).
    pub fn resolvable(&self, at: u32) -> bool {
        at >= self.promote_at()
            && self.get(at).is_some_and(|s| s.owner == Role::Target)
            && self.phase_end(at).is_none()
    }

    /// Where the phase of step `at` hands over: the position of the next phase's first
    /// step (its `AwaitHandOff`), or `None` if the phase runs to the plan's end.
    pub fn phase_end(&self, at: u32) -> Option<u32> {
        let owner = self.get(at)?.owner;
        (at..self.len() as u32).find(|i| self.get(*i).is_some_and(|s| s.owner != owner))
    }

    /// The step at `index` is the last of its phase: its journal entry hands over.
    pub fn ends_phase(&self, index: u32) -> bool {
        match (self.get(index), self.get(index + 1)) {
            (Some(this), Some(next)) => this.owner != next.owner,
            _ => false,
        }
    }
}
