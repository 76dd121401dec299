//! The protocol's vocabulary: clusters, modes, stages, steps, the fencing token, the
//! global record kept in DynamoDB and what one operator observes of its own cluster.
//!
//! Everything here is plain data. Time is a number in the protocol's time unit (the
//! model counts ticks, the engine counts milliseconds); it is always a *local* clock
//! reading of the cluster that produced it, never a global truth.

use std::fmt;

/// A local clock reading, in the protocol's time unit.
pub type Time = u64;

/// A fencing token: a counter in the global record, incremented by every lock
/// acquisition, so a later holder always has a larger token than an earlier one.
pub type Token = u64;

/// The id of a failover request (and of the failover it starts).
pub type FailoverId = u64;

/// The id of one operator process (one start of one replica): unique, never reused, so
/// a record that names it names that process and no other. Only compared for equality.
pub type Instance = u64;

/// A cluster's identity: a fingerprint of its `kube-system` namespace UID, or of the
/// identity its operator was given explicitly (`--cluster-id`). It comes from the
/// cluster the operator runs in, never from the group's spec, so a spec or a flag
/// that names the wrong slot cannot change it. Only compared for equality.
pub type Identity = u64;

/// A fingerprint of the safety-relevant parts of one cluster's copy of the group's
/// spec, one number per part, so a difference can be named. Both copies must agree
/// before a failover starts ([`Record::specs_agree`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpecPrint {
    /// The clusters, in slot order.
    pub clusters: u64,
    /// The timing (lease, drift bound, fence margin, heartbeat and retry intervals).
    pub timing: u64,
    /// The members: kinds, namespaces, selectors and names.
    pub members: u64,
    /// What the members found in the cluster: how many per kind, and their names.
    /// Both clusters run the same application, so a difference means one
    /// cluster's selection misses something (a VolumeReplication without the group's
    /// label "demotes" nothing while the target promotes its twin).
    pub inventory: u64,
    /// The hooks' places and failure policies (the plan depends on them); not their
    /// actions, which each cluster runs its own way.
    pub hooks: crate::Hooks,
}

impl SpecPrint {
    /// The parts in which two prints differ, by name.
    pub fn differs(&self, other: &SpecPrint) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.clusters != other.clusters {
            out.push("spec.clusters");
        }
        if self.timing != other.timing {
            out.push("spec.timing");
        }
        if self.members != other.members {
            out.push("spec.members");
        }
        if self.inventory != other.inventory {
            out.push("members found (inventory)");
        }
        if self.hooks != other.hooks {
            out.push("spec.hooks");
        }
        out
    }
}

/// One of the two clusters of a group. The engine maps the group's two configured
/// cluster names onto these two slots in the order the group lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cluster {
    /// The first cluster of the group.
    A,
    /// The second cluster of the group.
    B,
}

impl Cluster {
    /// Both clusters, in slot order.
    pub const ALL: [Cluster; 2] = [Cluster::A, Cluster::B];

    /// The other cluster of the pair.
    pub fn peer(self) -> Cluster {
        match self {
            Cluster::A => Cluster::B,
            Cluster::B => Cluster::A,
        }
    }

    /// Slot index, for per-cluster arrays.
    pub fn index(self) -> usize {
        match self {
            Cluster::A => 0,
            Cluster::B => 1,
        }
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cluster::A => "A",
            Cluster::B => "B",
        })
    }
}

/// How a planned failover orders the two clusters' work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Source down first, then target up: never two primaries, never two writers.
    Consistency,
    /// Target up first, then source down: no downtime, but a window with two writers.
    Uptime,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Consistency => "consistency",
            Mode::Uptime => "uptime",
        })
    }
}

/// Which plan an in-flight failover follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlanKind {
    /// A planned failover in the given mode, run by both operators.
    Planned(Mode),
    /// A forced failover run by the target alone, after the source's lease provably expired.
    Forced,
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanKind::Planned(mode) => write!(f, "{mode}"),
            PlanKind::Forced => f.write_str("forced"),
        }
    }
}

/// The side a cluster plays in one failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The cluster the application leaves.
    Source,
    /// The cluster the application moves to.
    Target,
}

/// The six stages of a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Validate and acquire the group's lock.
    Initialization,
    /// Stop traffic, workloads, CronJobs and Flux on the source.
    SourcePreparation,
    /// Demote the source's volumes and mark them ready for promotion.
    VolumeDemotion,
    /// Promote the target's volumes.
    VolumePromotion,
    /// Start workloads, traffic and Flux on the target.
    TargetActivation,
    /// Record the new active cluster and the history, release the lock.
    Completion,
}

impl Stage {
    /// All stages, in protocol order.
    pub const ALL: [Stage; 6] = [
        Stage::Initialization,
        Stage::SourcePreparation,
        Stage::VolumeDemotion,
        Stage::VolumePromotion,
        Stage::TargetActivation,
        Stage::Completion,
    ];

    /// Position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        Stage::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Kebab-case name used in traces, metrics and CLI output.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Initialization => "initialization",
            Stage::SourcePreparation => "source-preparation",
            Stage::VolumeDemotion => "volume-demotion",
            Stage::VolumePromotion => "volume-promotion",
            Stage::TargetActivation => "target-activation",
            Stage::Completion => "completion",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Desired or reported replication role of a cluster's volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeRole {
    /// Writable, replicating to the peer.
    Primary,
    /// Read-only replica of the peer.
    Secondary,
}

/// What one operator observes of its own cluster, aggregated over the group's members
/// (the model keeps one value per resource kind; the engine folds many objects into it:
/// "workloads running" is true if any member runs a pod, "volumes primary" if any
/// VolumeReplication is, and so on, always erring towards "still writing").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterState {
    /// Network objects (VirtualServices, Ingresses) route traffic to the application.
    pub network_open: bool,
    /// Desired scale of the workloads: `true` for the remembered replica counts, `false` for zero.
    pub workloads_up: bool,
    /// Pods exist (for `workloads_up`: all replicas ready, judged like `kubectl rollout status`).
    pub workloads_running: bool,
    /// CronJobs have `spec.suspend: true`.
    pub cronjobs_suspended: bool,
    /// Flux Kustomizations and HelmReleases have `spec.suspend: true`.
    pub flux_suspended: bool,
    /// `spec.replicationState` of the VolumeReplications.
    pub volume_spec: VolumeRole,
    /// `status.state` reported by the csi-addons driver.
    pub volume_status: VolumeRole,
    /// Whether every member agrees with each value above. The model's clusters always
    /// agree (one value per kind); the engine folds many objects into one state and says
    /// here where they disagree, so that a half-applied step is never taken as done.
    pub agreement: Agreements,
}

/// How the group's members of one kind relate to the aggregated value of a field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Agreement {
    /// Every member has the value.
    #[default]
    All,
    /// Members disagree; the value is the one that errs towards "still writing".
    Some,
    /// The group has no member of this kind: every step on it is satisfied.
    NoMembers,
}

impl Agreement {
    /// A step on this field is satisfied if `value_ok` holds for every member.
    pub fn satisfies(self, value_ok: bool) -> bool {
        match self {
            Agreement::All => value_ok,
            Agreement::Some => false,
            Agreement::NoMembers => true,
        }
    }

    /// After an effect set the field on every member.
    pub fn applied(self) -> Agreement {
        match self {
            Agreement::Some => Agreement::All,
            other => other,
        }
    }
}

/// The [`Agreement`] of each field of a [`ClusterState`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Agreements {
    /// VirtualServices and Ingresses.
    pub network: Agreement,
    /// Desired scale of Deployments and StatefulSets.
    pub workloads_up: Agreement,
    /// Pods of Deployments and StatefulSets (`Some`: some run, not all are ready).
    pub workloads_running: Agreement,
    /// CronJobs.
    pub cronjobs: Agreement,
    /// Kustomizations and HelmReleases.
    pub flux: Agreement,
    /// VolumeReplication specs.
    pub volume_spec: Agreement,
    /// VolumeReplication statuses.
    pub volume_status: Agreement,
}

impl Agreements {
    /// Every member of every kind agrees.
    pub const ALL: Agreements = Agreements {
        network: Agreement::All,
        workloads_up: Agreement::All,
        workloads_running: Agreement::All,
        cronjobs: Agreement::All,
        flux: Agreement::All,
        volume_spec: Agreement::All,
        volume_status: Agreement::All,
    };
}

/// What an operator reports of its own cluster's application with each heartbeat
/// ([`Record::health`]): the active cluster's report is one of the auto-failover
/// trigger's health signals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Health {
    /// Every workload is scaled up with all its replicas ready.
    pub workloads_ready: bool,
    /// Every network object routes traffic to the application.
    pub traffic_open: bool,
}

impl Health {
    /// The report of a cluster in `state`.
    pub fn of(state: &ClusterState) -> Health {
        let a = &state.agreement;
        Health {
            workloads_ready: a.workloads_up.satisfies(state.workloads_up)
                && a.workloads_running.satisfies(state.workloads_running),
            traffic_open: a.network.satisfies(state.network_open),
        }
    }

    /// The application serves: workloads ready and traffic open.
    pub fn serving(self) -> bool {
        self.workloads_ready && self.traffic_open
    }
}

impl ClusterState {
    /// The active cluster at rest: everything up, Flux reconciling, volumes primary.
    pub const SERVING: ClusterState = ClusterState {
        network_open: true,
        workloads_up: true,
        workloads_running: true,
        cronjobs_suspended: false,
        flux_suspended: false,
        volume_spec: VolumeRole::Primary,
        volume_status: VolumeRole::Primary,
        agreement: Agreements::ALL,
    };

    /// The standby cluster at rest: everything stopped, Flux suspended, volumes secondary.
    pub const STANDBY: ClusterState = ClusterState {
        network_open: false,
        workloads_up: false,
        workloads_running: false,
        cronjobs_suspended: true,
        flux_suspended: true,
        volume_spec: VolumeRole::Secondary,
        volume_status: VolumeRole::Secondary,
        agreement: Agreements::ALL,
    };

    /// The model's inventory of this cluster ([`SpecPrint::inventory`]): one bit per
    /// field whose kind selects nothing here.
    pub fn inventory(&self) -> u64 {
        let a = &self.agreement;
        [
            a.network,
            a.workloads_up,
            a.workloads_running,
            a.cronjobs,
            a.flux,
            a.volume_spec,
            a.volume_status,
        ]
        .iter()
        .enumerate()
        .filter(|(_, x)| **x == Agreement::NoMembers)
        .fold(0, |bits, (i, _)| bits | 1 << i)
    }

    /// Volumes are (or may still be) writable: desired or reported primary.
    pub fn volumes_primary(&self) -> bool {
        self.volume_spec == VolumeRole::Primary || self.volume_status == VolumeRole::Primary
    }

    /// Something in the cluster can write: pods, CronJobs or traffic.
    pub fn has_writers(&self) -> bool {
        self.workloads_running || self.workloads_up || !self.cronjobs_suspended || self.network_open
    }

    /// A writer: primary volumes with pods, CronJobs or open traffic.
    pub fn is_writer(&self) -> bool {
        self.volumes_primary() && self.has_writers()
    }

    /// Anything that a self-fence would have to stop is still on.
    pub fn needs_fencing(&self) -> bool {
        self.has_writers() || !self.flux_suspended || self.volumes_primary()
    }

    /// Workloads are all up and ready on volumes that are all primary (a kind without
    /// members counts as ready): what open traffic needs.
    pub fn ready_for_traffic(&self) -> bool {
        let a = &self.agreement;
        a.workloads_up.satisfies(self.workloads_up)
            && a.workloads_running.satisfies(self.workloads_running)
            && a.volume_spec
                .satisfies(self.volume_spec == VolumeRole::Primary)
            && a.volume_status
                .satisfies(self.volume_status == VolumeRole::Primary)
    }

    /// Serves the application: traffic open to ready workloads on primary volumes.
    pub fn serves(&self) -> bool {
        self.agreement.network.satisfies(self.network_open) && self.ready_for_traffic()
    }
}

/// The group's lock: who runs the current phase of the in-flight failover, until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lock {
    /// The operator holding the lock.
    pub holder: Cluster,
    /// The holder's local time at which the lock lapses unless renewed by a progress write.
    pub until: Time,
}

/// The failover in flight, with its journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InFlight {
    /// The request that started it.
    pub id: FailoverId,
    /// The plan it follows.
    pub kind: PlanKind,
    /// The cluster the application leaves.
    pub source: Cluster,
    /// The cluster the application moves to.
    pub target: Cluster,
    /// Number of plan steps journaled as done: the journal and the hand-off marks in one
    /// number (a phase's hand-off mark is the journal entry of its last step).
    pub done: u32,
    /// `needs-operator`: the step at `done` missed its stage's deadline after the target
    /// promoted (no roll back is safe any more). The operator whose turn it is keeps
    /// trying (the flag clears with the next journal entry); a person may retry (a new
    /// deadline) or resolve ([`crate::Intervention`]).
    pub stuck: bool,
    /// A person asked to abort or resolve it ([`crate::Intervention`]). The operator
    /// whose turn it is carries it out with its own token (the lock never moves under
    /// a holder that may be in the middle of a step).
    pub asked: Option<crate::Intervention>,
    /// The hooks its plan runs: the ones the spec had when it started (the acquirer's
    /// print, which the peer's agreed with), whatever a copy of the spec says later.
    pub hooks: crate::Hooks,
}

impl InFlight {
    /// The role `cluster` plays in this failover.
    pub fn role_of(&self, cluster: Cluster) -> Role {
        if cluster == self.source {
            Role::Source
        } else {
            Role::Target
        }
    }
}

/// How a failover ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The target became active.
    Completed(PlanKind),
    /// Rolled back before the target promoted anything; the source stays active (and
    /// restores what it stopped, from its state at rest).
    Aborted(AbortReason),
    /// A person resolved a `needs-operator` failover ([`crate::Intervention::Resolve`]):
    /// the target became active with the stuck steps left to its state at rest.
    Resolved,
    /// The request asked for the cluster that already was active: nothing to do.
    NoOp,
    /// The request was withdrawn before it started.
    Withdrawn,
}

/// Why a failover was rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortReason {
    /// The target's heartbeat was not fresh when the source validated it.
    TargetSilent,
    /// The stage's deadline passed before the target promoted anything.
    Deadline(Stage),
    /// A person aborted it ([`crate::Intervention::Abort`]).
    Person,
    /// The hook with this index failed, and its policy is to abort ([`crate::OnFailure`]).
    Hook(u8),
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::TargetSilent => f.write_str("target-silent"),
            AbortReason::Deadline(stage) => write!(f, "deadline-{stage}"),
            AbortReason::Person => f.write_str("person"),
            AbortReason::Hook(i) => write!(f, "hook-{i}"),
        }
    }
}

/// A request the record accepted and no failover has taken up yet. At most one is
/// pending; it always points at the cluster that is not active (a request for the active
/// one ends at once as [`Outcome::NoOp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    /// The request's id: the failover it starts has the same.
    pub id: FailoverId,
    /// The cluster that should become active.
    pub to: Cluster,
    /// The mode asked for.
    pub mode: Mode,
    /// The cluster whose operator wrote it (where the `Failover` object lives).
    pub by: Cluster,
}

/// One history item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HistoryEntry {
    /// The failover.
    pub id: FailoverId,
    /// Its end.
    pub outcome: Outcome,
}

/// The group's global record in DynamoDB.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The cluster that owns the application.
    pub active: Cluster,
    /// The last fencing token issued.
    pub token: Token,
    /// The lock, while a phase of a failover runs.
    pub lock: Option<Lock>,
    /// The failover in flight.
    pub failover: Option<InFlight>,
    /// Each cluster's last heartbeat (its own local time). The active cluster's lease
    /// ends `lease_ttl` after its last heartbeat.
    pub heartbeat: [Option<Time>; 2],
    /// Ended failovers, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The operator process that owns each cluster's slot (its last [`Op::Claim`]):
    /// every other write of that cluster must come from it, so an instance that a newer
    /// one replaced (a paused old leader) can no longer change the record.
    ///
    /// [`Op::Claim`]: crate::Op::Claim
    pub instance: [Option<Instance>; 2],
    /// The request waiting to start, if any.
    pub request: Option<Pending>,
    /// The identity each slot is bound to: the first [`Op::Claim`] of a slot binds it to
    /// the claimer's cluster, and a claim from any other identity is refused for good.
    ///
    /// [`Op::Claim`]: crate::Op::Claim
    pub bound: [Option<Identity>; 2],
    /// An identity whose claim of the slot was refused (an operator configured as the
    /// wrong cluster), so the slot's owner reports it too.
    pub contested: [Option<Identity>; 2],
    /// Each slot's spec fingerprint as its operator last wrote it ([`Op::Spec`]).
    ///
    /// [`Op::Spec`]: crate::Op::Spec
    pub spec: [Option<SpecPrint>; 2],
    /// Each cluster's report of its application with its last heartbeat
    /// ([`Op::Heartbeat`]); none before a process's first heartbeat. Advisory: only the
    /// auto-failover trigger reads it, never a protocol decision.
    ///
    /// [`Op::Heartbeat`]: crate::Op::Heartbeat
    pub health: [Option<Health>; 2],
}

impl Record {
    /// A fresh group with `active` owning the application and both clusters' heartbeats
    /// at the given local times.
    pub fn new(active: Cluster, heartbeat: [Option<Time>; 2]) -> Record {
        Record {
            active,
            token: 0,
            lock: None,
            failover: None,
            heartbeat,
            history: Vec::new(),
            instance: [None, None],
            request: None,
            bound: [None, None],
            contested: [None, None],
            spec: [None, None],
            health: [None, None],
        }
    }

    /// Both clusters' copies of the spec agree, as their operators last wrote them (or
    /// neither wrote one): a failover may start.
    pub fn specs_agree(&self) -> bool {
        self.spec[0] == self.spec[1]
    }

    /// The request `id` has started (in flight) or ended (in the history).
    pub fn knows(&self, id: FailoverId) -> bool {
        self.failover.is_some_and(|f| f.id == id) || self.history.iter().any(|h| h.id == id)
    }

    /// The record accepted request `id`: pending, in flight or ended.
    pub fn accepted(&self, id: FailoverId) -> bool {
        self.request.is_some_and(|p| p.id == id) || self.knows(id)
    }

    /// What a cluster keeps of this record ([`Trace`]).
    pub fn trace(&self) -> Trace {
        Trace {
            token: self.token,
            ended: self.history.len() as u32,
            active: self.active,
            missing: false,
        }
    }

    /// The record re-created by the explicit operator action after it went missing,
    /// from what the clusters kept of it: the active cluster of the newest trace, a
    /// token above every token either cluster saw, no lock, no failover, no pending
    /// request, no heartbeat and no owner (each cluster's operator claims its slot
    /// again). `None` if neither cluster kept a trace (nothing to re-create from).
    ///
    /// The action is allowed only once both clusters' operators found the record
    /// missing (each dropped its lease then, so neither starts anything on what the
    /// old record said) and both clusters are stopped, or gone. A failover in flight
    /// when the record went missing may have started the target, and the record comes
    /// back naming the source active, which starts at once: the model found two
    /// primaries when the action came before the target's operator noticed.
    pub fn recreated(traces: [Option<Trace>; 2]) -> Option<Record> {
        let newest = traces
            .into_iter()
            .flatten()
            .max_by_key(|t| (t.token, t.ended))?;
        Some(Record {
            token: newest.token + 1,
            ..Record::new(newest.active, [None, None])
        })
    }

    /// The request or failover that holds the group (so a new request is refused), if
    /// any.
    pub fn held_by(&self) -> Option<FailoverId> {
        self.request.map(|p| p.id).or(self.failover.map(|f| f.id))
    }

    /// Request `id` was refused, judged from the record a refused write returned: it
    /// was never accepted, and another request holds the group. (A request refused
    /// because its target became or stopped being active is not refused: it is sent
    /// again as the other kind of request.)
    pub fn refuses(&self, id: FailoverId) -> Option<FailoverId> {
        if self.accepted(id) {
            return None;
        }
        self.held_by()
    }

    /// How request `id` ended, if it did (its history item).
    pub fn outcome_of(&self, id: FailoverId) -> Option<Outcome> {
        self.history.iter().find(|h| h.id == id).map(|h| h.outcome)
    }

    /// The lock's holder, if any.
    pub fn holder(&self) -> Option<Cluster> {
        self.lock.map(|l| l.holder)
    }
}

/// What a cluster keeps of its group's record, beside the group in the cluster (so it
/// survives every restart of the operator), updated from every record the operator
/// sees: enough to know that the group's record existed, so a missing one is never
/// silently created again, and to re-create it above everything either cluster saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Trace {
    /// The record's fencing token.
    pub token: Token,
    /// How many history items it had (a completion does not raise the token).
    pub ended: u32,
    /// Its active cluster.
    pub active: Cluster,
    /// The operator found the record missing since (it dropped its lease then): the
    /// explicit re-creation needs this from both clusters' operators.
    pub missing: bool,
}

impl Trace {
    /// The newer of two traces (by token, then history; `b` on a tie, so a trace
    /// marked missing replaces the same one unmarked).
    pub fn newest(a: Option<Trace>, b: Trace) -> Trace {
        match a {
            Some(a) if (a.token, a.ended) > (b.token, b.ended) => a,
            _ => b,
        }
    }
}

/// A failover request as one cluster has it (a `Failover` custom resource, or the
/// auto-failover trigger): its operator writes it into the record ([`crate::Op::Request`]),
/// which accepts at most one pending request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Unique id.
    pub id: FailoverId,
    /// The cluster that should become active.
    pub to: Cluster,
    /// The mode of a planned failover (a forced one has no source to order against).
    pub mode: Mode,
}

/// Timing parameters, all in the protocol's time unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    /// A heartbeat keeps its cluster's lease for this long (by the writer's clock).
    pub lease_ttl: Time,
    /// How much the two operators' monotonic clocks may disagree about the length of
    /// one lease (rate error; wall-clock offsets and steps do not matter, nothing
    /// compares wall clocks).
    pub clock_drift_max: Time,
    /// How long the fence's own steps may take, from the moment it starts (the engine's
    /// call deadlines are shares of it).
    pub fence_margin: Time,
    /// How long the csi-addons driver may take to demote a volume once its
    /// VolumeReplication says `secondary` (a deployment rule: the driver's bound). The
    /// fence starts early enough for both ([`Timing::fence_lead`]).
    pub driver_demotion: Time,
    /// Interval between heartbeats.
    pub heartbeat_every: Time,
    /// Wait after DynamoDB was unavailable before trying again.
    pub retry_after: Time,
    /// Per stage ([`Stage::index`]): how long the failover may stay at one journal
    /// position of that stage without progress, by the monotonic clock of the operator
    /// whose turn it is, before the deadline's outcome ([`Plan::abortable`]): a roll
    /// back while the target has promoted nothing, else the `needs-operator` flag.
    ///
    /// [`Plan::abortable`]: crate::Plan::abortable
    pub stage_deadline: [Time; 6],
}

impl Timing {
    /// An operator fences itself once less than this much of its lease is left: the
    /// fence margin (its own steps) plus the driver's demotion time, so that the volumes
    /// are secondary by the time the lease ends.
    pub fn fence_lead(&self) -> Time {
        self.fence_margin + self.driver_demotion
    }

    /// The deadline of `stage`.
    pub fn deadline(&self, stage: Stage) -> Time {
        self.stage_deadline[stage.index()]
    }
}
