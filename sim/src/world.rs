//! The simulated world: two clusters' objects with their controllers, the DynamoDB
//! record, the faults in force, and the fakes that give the engine its ports onto them.
//!
//! The fakes implement the engine's ports with the same contracts as the real adapters
//! (they pass the engine's port conformance suite); faults are drawn from the run's seed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use failover_engine::member::set_member;
use failover_engine::member::{is_set, settled};
use failover_engine::observe::fold_states;
use failover_engine::ports::{
    Changes, ClusterError, ClusterPort, Desired, ExecResult, FieldChange, HttpRequest, JobState,
    Kind, LabelQuery, Member, MemberState, ObjectRef, Selector, StorePort, StoreUnavailable,
};
use failover_model::{
    Audit, Cluster, ClusterState, Op, Record, Reply, Resource, Time, Timing, Trace, Variant, Write,
    apply,
};
use k8s_openapi::serde_json;

use crate::rng::Rng;
use crate::runtime::VirtualTime;

/// Every kind of fault the simulator injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A store call refused before it ran (unreachable, 5xx before execution).
    StoreUnavailable,
    /// A store call throttled.
    StoreThrottled,
    /// A write that applied but whose reply was lost (timeout).
    StoreAppliedTimeout,
    /// A write that timed out and never applied.
    StoreLostTimeout,
    /// A write that timed out and applied much later (delayed in transit).
    StoreDelayed,
    /// A Kubernetes call that failed without applying.
    KubeError,
    /// A Kubernetes write that applied but answered an error.
    KubeAppliedError,
    /// A resourceVersion conflict.
    KubeConflict,
    /// A watch event that never arrived.
    WatchDropped,
    /// A watch event that arrived late.
    WatchDelayed,
    /// An operator crash (its future dropped at an await point) and restart.
    Crash,
    /// An operator process paused (GC, CPU starvation), bounded below the fence margin.
    Pause,
    /// An operator cut off from DynamoDB.
    PartitionStore,
    /// An operator cut off from its own API server.
    PartitionApi,
    /// An operator cut off from everything.
    PartitionFull,
    /// The source cluster gone for good.
    Disaster,
    /// Every change to one kind (workloads or CronJobs) of a cluster fails until the
    /// heal (a webhook rejecting every patch): the self-fence must still demote.
    KindStuck,
    /// A Kubernetes write that takes seconds to a minute and a half (an overloaded API
    /// server, a slow admission webhook): longer than the lease, up to past the step
    /// timeout. Lease keeping must go on beside it.
    KubeSlow,
    /// A Kubernetes write that never answers: only the step's deadline or the
    /// self-fence abandons it.
    KubeHung,
    /// A wall clock stepped by up to two hours, forward or back (NTP correction, a VM
    /// restored from a snapshot): far beyond the drift bound.
    ClockStep,
    /// An operator down (not restarted) for up to `leaseSeconds - fenceMarginSeconds -
    /// heartbeatSeconds` while its cluster keeps serving.
    LongOutage,
    /// A leader hand-over: a new process of one cluster's operator starts while the old
    /// one runs on beside it, acting on what it last saw until the record tells it it
    /// was replaced.
    LeaderHandover,
    /// The group's record is deleted (the table re-created, an item deleted by hand);
    /// the explicit re-creation from both clusters' traces follows at the heal.
    RecordDeleted,
    /// An operator restarted configured as the other cluster (its copy of the spec lists
    /// the clusters in the other order); restarted with the right one later.
    Misconfigured,
    /// The active cluster's VolumeReplications lack the group's label until the heal:
    /// its operator finds none of them.
    Unlabelled,
    /// One VolumeReplication never reports its new role (its csi-addons driver stuck),
    /// heal or not, until a person fixes it once the record flags the failover
    /// `needs-operator` (issue 10): before the target's promotion the stage deadline
    /// rolls the failover back instead.
    VolumeRoleStuck,
    /// A hook's run fails (issue 13): its Job fails, its exec exits non-zero, its HTTP
    /// endpoint answers another status.
    HookFailed,
    /// A hook's run never ends (issue 13): its Job runs until its deadline, its exec or
    /// HTTP request never answers; the hook fails at its timeout.
    HookHung,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 28] = [
        FaultKind::StoreUnavailable,
        FaultKind::StoreThrottled,
        FaultKind::StoreAppliedTimeout,
        FaultKind::StoreLostTimeout,
        FaultKind::StoreDelayed,
        FaultKind::KubeError,
        FaultKind::KubeAppliedError,
        FaultKind::KubeConflict,
        FaultKind::WatchDropped,
        FaultKind::WatchDelayed,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::PartitionStore,
        FaultKind::PartitionApi,
        FaultKind::PartitionFull,
        FaultKind::Disaster,
        FaultKind::KindStuck,
        FaultKind::KubeSlow,
        FaultKind::KubeHung,
        FaultKind::ClockStep,
        FaultKind::LongOutage,
        FaultKind::LeaderHandover,
        FaultKind::RecordDeleted,
        FaultKind::Misconfigured,
        FaultKind::Unlabelled,
        FaultKind::VolumeRoleStuck,
        FaultKind::HookFailed,
        FaultKind::HookHung,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StoreUnavailable => "store-unavailable",
            FaultKind::StoreThrottled => "store-throttled",
            FaultKind::StoreAppliedTimeout => "store-applied-timeout",
            FaultKind::StoreLostTimeout => "store-lost-timeout",
            FaultKind::StoreDelayed => "store-delayed-write",
            FaultKind::KubeError => "kube-error",
            FaultKind::KubeAppliedError => "kube-applied-error",
            FaultKind::KubeConflict => "kube-conflict",
            FaultKind::WatchDropped => "watch-dropped",
            FaultKind::WatchDelayed => "watch-delayed",
            FaultKind::Crash => "operator-crash",
            FaultKind::Pause => "process-pause",
            FaultKind::PartitionStore => "partition-store",
            FaultKind::PartitionApi => "partition-apiserver",
            FaultKind::PartitionFull => "partition-full",
            FaultKind::Disaster => "disaster",
            FaultKind::KindStuck => "kube-kind-stuck",
            FaultKind::KubeSlow => "kube-slow-call",
            FaultKind::KubeHung => "kube-hung-call",
            FaultKind::ClockStep => "wall-clock-step",
            FaultKind::LongOutage => "operator-long-outage",
            FaultKind::LeaderHandover => "leader-handover",
            FaultKind::RecordDeleted => "record-deleted",
            FaultKind::Misconfigured => "operator-misconfigured",
            FaultKind::Unlabelled => "volumes-unlabelled",
            FaultKind::VolumeRoleStuck => "volume-role-stuck",
            FaultKind::HookFailed => "hook-failed",
            FaultKind::HookHung => "hook-hung",
        }
    }
}

/// Per-call fault probabilities in force (zero once healed).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CallFaults {
    /// Store call refused.
    pub store_unavailable: f64,
    /// Store call throttled.
    pub store_throttled: f64,
    /// Write applied, reply lost.
    pub store_applied_timeout: f64,
    /// Write lost, timeout.
    pub store_lost_timeout: f64,
    /// Write delayed, applied later.
    pub store_delayed: f64,
    /// Kubernetes call failed.
    pub kube_error: f64,
    /// Kubernetes write applied, error answered.
    pub kube_applied_error: f64,
    /// Another writer changes an object between the operator's read and its write.
    pub kube_conflict: f64,
    /// Watch event dropped.
    pub watch_dropped: f64,
    /// Watch event delivered late.
    pub watch_delayed: f64,
    /// Kubernetes write slow (1 to 90 s).
    pub kube_slow: f64,
    /// Kubernetes write that never answers.
    pub kube_hung: f64,
    /// A hook's run fails (a Job created now fails, an exec exits 1, an HTTP request
    /// answers 503).
    pub hook_fail: f64,
    /// A hook's run never ends (a Job created now runs until its deadline, an exec or
    /// HTTP request never answers).
    pub hook_hang: f64,
}

/// Something the world does at a given time, besides the operators.
#[derive(Clone, Debug, PartialEq)]
pub enum WorldEvent {
    /// A controller (kubelet and Deployment controller, CSI driver) converges an object.
    Settle(Cluster, ObjectRef),
    /// Flux reconciles a cluster from git if it is not suspended.
    FluxSync(Cluster),
    /// A delayed write reaches the store.
    Deliver(Write, Timing),
    /// A held write (see [`Fakes::held`]) reaches the store, unless it already did.
    DeliverHeld(u64),
    /// A delayed watch event reaches the watchers of a cluster (with the cluster
    /// version it tells of).
    Notify(Cluster, u64),
}

/// One object in a fake cluster.
#[derive(Clone, Debug)]
pub struct Object {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: MemberState,
    /// resourceVersion.
    pub version: u64,
    /// What the operator's watch cache shows while the latest change by others
    /// (controllers, drivers, Flux) has not reached it: the state before, until the
    /// time it does ([`Fakes::watch_lag`]).
    pub shown: Option<(MemberState, Time)>,
}

impl Object {
    /// The state an operator's read shows: its watch cache's at `cache` (the time),
    /// the object as it is for a read from the API server (`None`).
    pub fn seen(&self, cache: Option<Time>) -> &MemberState {
        match (&self.shown, cache) {
            (Some((before, until)), Some(now)) if now < *until => before,
            _ => &self.state,
        }
    }
}

/// One fake cluster.
#[derive(Default)]
pub struct ClusterWorld {
    /// Objects.
    pub objects: BTreeMap<ObjectRef, Object>,
    /// Bumped on every change.
    pub version: u64,
    /// What the cluster kept of the group's record.
    pub trace: Option<Trace>,
    /// The newest version a watch event has told the watchers about.
    pub seen: u64,
    /// Tasks waiting for a change.
    pub watchers: Vec<Waker>,
    /// The last fold of the objects, with the version it was made at.
    pub folded: std::cell::Cell<Option<(u64, ClusterState)>>,
    /// The last listing per kind, with the version and selector it was made for: most
    /// turns list a cluster that did not change since the last one.
    pub listed: BTreeMap<Kind, (u64, Selector, Vec<Member>)>,
    /// Hooks' Jobs, by `namespace/name`.
    pub jobs: BTreeMap<String, FakeJob>,
    /// Jobs created, per (hook, failover) as their `failover.rs/hook` and
    /// `failover.rs/failover` labels name them: a Job is created once per failover.
    pub job_creations: BTreeMap<(String, String), u32>,
    /// Failed Jobs a person deleted, per (hook, failover): the operator creates them
    /// again.
    pub jobs_deleted: BTreeMap<(String, String), u32>,
}

/// What becomes of a hook's Job, drawn when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFate {
    /// Its `Complete` condition turns true at this time.
    Complete(Time),
    /// Its `Failed` condition turns true at this time (its pod failed, `backoffLimit` 0).
    Fail(Time),
    /// It runs until its `activeDeadlineSeconds`, when Kubernetes fails it.
    Hang,
}

/// A hook's Job in a fake cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeJob {
    /// Its `failover.rs/hook` label.
    pub hook: String,
    /// Its `failover.rs/failover` label.
    pub failover: String,
    /// What becomes of it.
    pub fate: JobFate,
    /// Created at plus its `activeDeadlineSeconds`: Kubernetes fails it then.
    pub deadline_at: Time,
}

impl FakeJob {
    /// Its state at `now`, as its conditions report it.
    pub fn state(&self, now: Time) -> JobState {
        match self.fate {
            JobFate::Complete(at) if now >= at => JobState::Complete,
            JobFate::Fail(at) if now >= at => JobState::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            ),
            _ if now >= self.deadline_at => JobState::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into(),
            ),
            _ => JobState::Running,
        }
    }
}

/// Everything of a run that the fakes share: the fake clusters, the fake store, the
/// scheduled controller events and the run's randomness (the model checker's `World` is
/// the model's state, not this).
pub struct Fakes {
    /// The run's randomness.
    pub rng: Rng,
    /// Both clusters.
    pub clusters: [ClusterWorld; 2],
    /// The group's record, once created.
    pub record: Option<Record>,
    /// Facts about the past for the invariants.
    pub audit: Audit,
    /// The protocol variant the store runs (`no-token-check` drops the token condition).
    pub variant: Variant,
    /// Fault probabilities in force.
    pub faults: CallFaults,
    /// Cut off from DynamoDB, per cluster.
    pub cut_store: [bool; 2],
    /// Cut off from the own API server, per cluster.
    pub cut_api: [bool; 2],
    /// The cluster exists (a disaster ends it).
    pub alive: [bool; 2],
    /// A kind whose every change fails, per cluster.
    pub stuck: [Option<Resource>; 2],
    /// A VolumeReplication whose csi-addons driver never reports its new role (issue
    /// 10): its status stays as it is until a person fixes it.
    pub role_stuck: Option<(Cluster, ObjectRef)>,
    /// While cut off from DynamoDB, every write of this operator is stuck in transit
    /// and lands later (a targeted fault), rather than mostly refused.
    pub stuck_in_transit: [bool; 2],
    /// Faults injected so far, by kind.
    pub injected: BTreeMap<FaultKind, u64>,
    /// World events due, by (time, sequence).
    pub scheduled: BTreeMap<(Time, u64), WorldEvent>,
    /// Sequence for `scheduled`.
    pub seq: u64,
    /// Something changed since the invariants were last evaluated.
    pub dirty: bool,
    /// Upper bound of a store or API call's latency, ms.
    pub latency_max: Time,
    /// The longest the csi-addons driver takes to act on a VolumeReplication, ms: the
    /// group's `driverDemotionSeconds` (the deployment rule), unless a run breaks it.
    pub driver_lag: Time,
    /// How late the operators' watch caches show a change made by others, ms (0: at
    /// once). An operator's own writes show at once whatever it is (the engine's rule:
    /// a write counts once the cache has seen it).
    pub watch_lag: Time,
    /// Store writes accepted (for the timeline).
    pub writes: Vec<(Time, Cluster, Write, Record)>,
    /// Per operator, the record each of its writes since the last replay found when it
    /// reached the store (`None`: it did not reach the store: refused, lost, or delayed
    /// in transit), in order. The model replay needs them to redo the writes.
    pub writes_found: [Vec<Option<Record>>; 3],
    /// The process slot whose fence attempt the audit is following, per cluster.
    pub fencer: [Option<usize>; 2],
    /// Slow Kubernetes calls in progress, per cluster (a hand-over aims at them).
    pub slow_in_flight: [u32; 2],
    /// The process slot of a leader hand-over's new process until its claim applied: no
    /// random store fault hits it meanwhile (leader election hands over to a process
    /// that is ready, and it claims at once; README, "Timing").
    pub claiming: Option<usize>,
    /// A hook's run just ended with success in this cluster (the run's aimed crash
    /// between a hook's run and its journal entry takes it).
    pub hook_ran: Option<Cluster>,

    /// Writes stuck in transit by a targeted fault, by id: each lands at the first
    /// moment the store refuses it only for its fencing token or for the failover being
    /// forced already (the moment a stale copy does harm if a condition is missing), or
    /// at its scheduled time.
    pub held: Vec<(u64, Write, Timing)>,
    /// The record the last accepted write replaced, and when: what an eventually
    /// consistent read may still return for a while.
    pub superseded: Option<(Time, Record)>,
    /// The record as it was when it was deleted, while it is missing.
    pub deleted: Option<Record>,
    /// Virtual time.
    pub time: VirtualTime,
}

impl Fakes {
    /// A world of two clusters, no record yet, every cluster alive and reachable.
    pub fn new(
        seed: u64,
        clusters: [ClusterWorld; 2],
        variant: Variant,
        faults: CallFaults,
        latency_max: Time,
        time: VirtualTime,
    ) -> Fakes {
        Fakes {
            rng: Rng::new(seed),
            clusters,
            record: None,
            audit: Audit::default(),
            variant,
            faults,
            cut_store: [false; 2],
            cut_api: [false; 2],
            alive: [true; 2],
            stuck: [None; 2],
            role_stuck: None,
            stuck_in_transit: [false; 2],
            injected: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            seq: 0,
            dirty: true,
            latency_max,
            driver_lag: 2_000,
            watch_lag: 0,
            writes: Vec::new(),
            writes_found: [Vec::new(), Vec::new(), Vec::new()],
            fencer: [None, None],
            slow_in_flight: [0, 0],
            claiming: None,
            hook_ran: None,

            held: Vec::new(),
            superseded: None,
            deleted: None,
            time,
        }
    }

    /// Cluster `i`'s API server cannot be reached (cut off, or the cluster lost).
    pub fn api_down(&self, i: usize) -> bool {
        self.cut_api[i] || !self.alive[i]
    }

    /// Draw whether the fault `pick` selects happens now.
    pub fn roll(&mut self, pick: impl Fn(&CallFaults) -> f64) -> bool {
        let p = pick(&self.faults);
        self.rng.chance(p)
    }

    /// Count one injected fault.
    pub fn inject(&mut self, kind: FaultKind) {
        *self.injected.entry(kind).or_default() += 1;
    }

    /// Schedule a world event at true time `at`.
    pub fn schedule(&mut self, at: Time, e: WorldEvent) {
        self.seq += 1;
        self.scheduled.insert((at, self.seq), e);
    }

    /// The model's view of cluster `c`, folded from its objects as the engine folds them.
    pub fn cluster_state(&self, c: Cluster) -> ClusterState {
        let cw = &self.clusters[c.index()];
        if let Some((version, state)) = cw.folded.get()
            && version == cw.version
        {
            return state;
        }
        let state = fold_states(
            self.clusters[c.index()]
                .objects
                .iter()
                .map(|(r, o)| (r.kind, &o.state)),
        );
        cw.folded.set(Some((cw.version, state)));
        state
    }

    /// Cluster `c` changed: tell its watchers now, later (a delayed watch event) or
    /// never (a dropped one; the next event, or the watcher's timeout, covers it).
    pub fn touch(&mut self, c: Cluster) {
        self.dirty = true;
        let cw = &mut self.clusters[c.index()];
        cw.version += 1;
        let version = cw.version;
        if self.rng.chance(self.faults.watch_dropped) {
            self.inject(FaultKind::WatchDropped);
            return;
        }
        if self.rng.chance(self.faults.watch_delayed) {
            self.inject(FaultKind::WatchDelayed);
            let at = self.time.now() + self.rng.range(50, 2_000);
            self.schedule(at, WorldEvent::Notify(c, version));
            return;
        }
        self.notify(c, version);
    }

    /// A watch event about version `version` of cluster `c` reaches its watchers.
    pub fn notify(&mut self, c: Cluster, version: u64) {
        let cw = &mut self.clusters[c.index()];
        if version > cw.seen {
            cw.seen = version;
            for w in cw.watchers.drain(..) {
                w.wake();
            }
        }
    }

    /// Delete the group's record (the table re-created, an item deleted by hand).
    pub fn delete_record(&mut self) {
        if let Some(r) = self.record.take() {
            self.deleted = Some(r);
            self.dirty = true;
        }
    }

    /// A hook's Job of failover `id` failed, in either cluster.
    pub fn has_failed_jobs(&self, id: u64) -> bool {
        let now = self.time.now();
        let label = format!("{id:016x}");
        self.clusters.iter().any(|cw| {
            cw.jobs
                .values()
                .any(|j| j.failover == label && matches!(j.state(now), JobState::Failed(_)))
        })
    }

    /// A person deletes every failed Job of a hook of failover `id` (its
    /// `failover.rs/failover` label) in both clusters, having fixed its cause: the
    /// operator creates it again. The Jobs deleted, as `cluster namespace/name`.
    pub fn delete_failed_jobs(&mut self, id: u64) -> Vec<String> {
        let now = self.time.now();
        let label = format!("{id:016x}");
        let mut deleted = Vec::new();
        for c in Cluster::ALL {
            let cw = &mut self.clusters[c.index()];
            let failed: Vec<String> = cw
                .jobs
                .iter()
                .filter(|(_, j)| j.failover == label && matches!(j.state(now), JobState::Failed(_)))
                .map(|(k, _)| k.clone())
                .collect();
            for k in failed {
                if let Some(j) = cw.jobs.remove(&k) {
                    *cw.jobs_deleted.entry((j.hook, j.failover)).or_default() += 1;
                    deleted.push(format!("{c} {k}"));
                }
            }
        }
        deleted
    }

    /// The explicit re-creation of the missing record as `record`.
    pub fn recreate(&mut self, record: &Record) -> Reply {
        if let Some(r) = &self.record {
            return Reply::ConditionFailed(r.clone());
        }
        if let Some(before) = self.deleted.take() {
            self.audit.on_recreated(&before, record);
        }
        self.record = Some(record.clone());
        self.dirty = true;
        Reply::Applied(record.clone())
    }

    /// Apply a write to the record with the store's semantics, keeping the audit.
    pub fn store_apply(&mut self, timing: &Timing, w: &Write) -> Reply {
        let Some(before) = self.record.clone() else {
            return Reply::Missing;
        };
        match apply(&before, w, timing, self.variant) {
            Ok(after) => {
                self.audit.on_write_accepted(&before, &after, w);
                let now = self.time.now();
                self.writes.push((now, w.by, *w, after.clone()));
                self.record = Some(after.clone());
                self.superseded = Some((now, before));
                self.dirty = true;
                self.release_held(&after);
                Reply::Applied(after)
            }
            Err(_) => Reply::ConditionFailed(before),
        }
    }

    /// Schedule, a millisecond from now, every held write that the store refuses only
    /// for its fencing token or for a failover forced already: the moment a stale copy
    /// does harm where a condition is missing.
    fn release_held(&mut self, record: &Record) {
        let due: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, w, t)| {
                apply(record, w, t, Variant::Correct).is_err()
                    && (apply(record, w, t, Variant::NoTokenCheck).is_ok()
                        || apply(record, w, t, Variant::RepeatableForce).is_ok())
            })
            .map(|(id, _, _)| *id)
            .collect();
        let at = self.time.now() + 1;
        for id in due {
            self.schedule(at, WorldEvent::DeliverHeld(id));
        }
    }

    /// A controller moves an object's status to where its spec points.
    pub fn settle(&mut self, c: Cluster, r: &ObjectRef) {
        if !self.alive[c.index()] || self.role_stuck.as_ref() == Some(&(c, r.clone())) {
            return;
        }
        let Some(o) = self.clusters[c.index()].objects.get_mut(r) else {
            return;
        };
        let next = settled(&o.state);
        if next != o.state {
            let before = std::mem::replace(&mut o.state, next);
            o.version += 1;
            self.by_others(c, r, before);
            self.touch(c);
        }
    }

    /// The time an operator's read sees its watch caches at; `None` for urgent work
    /// (the self-fence), which reads the API server instead.
    pub fn cache_time(&self) -> Option<Time> {
        (!failover_engine::ports::is_urgent()).then(|| self.time.now())
    }

    /// Object `r` of cluster `c` changed by someone other than its operator from
    /// `before`: with a watch lag, the operator's cache shows the change that late
    /// (the state it showed until then, if an earlier change is still on its way), and
    /// its watchers hear of it then.
    fn by_others(&mut self, c: Cluster, r: &ObjectRef, before: MemberState) {
        if self.watch_lag == 0 {
            return;
        }
        let now = self.time.now();
        let until = now + self.watch_lag;
        let Some(o) = self.clusters[c.index()].objects.get_mut(r) else {
            return;
        };
        let shown = match o.shown.take() {
            Some((earlier, t)) if now < t => earlier,
            _ => before,
        };
        o.shown = Some((shown, until));
        let version = self.clusters[c.index()].version + 1;
        self.schedule(until, WorldEvent::Notify(c, version));
    }

    /// Flux re-applies git if any Flux object of the cluster is not suspended: git says
    /// workloads at their counts, CronJobs and routes on (volumes are not in git).
    pub fn flux_sync(&mut self, c: Cluster, delays: (Time, Time)) {
        if !self.alive[c.index()] {
            return;
        }
        let objects = &self.clusters[c.index()].objects;
        let reconciling = objects
            .values()
            .any(|o| matches!(o.state, MemberState::Flux { suspended: false }));
        if !reconciling {
            return;
        }
        let targets: Vec<ObjectRef> = objects
            .iter()
            .filter(|(r, o)| {
                matches!(
                    r.kind,
                    Kind::Deployment
                        | Kind::StatefulSet
                        | Kind::CronJob
                        | Kind::VirtualService
                        | Kind::Ingress
                ) && !is_set(&o.state, Desired::Start)
            })
            .map(|(r, _)| r.clone())
            .collect();
        for r in targets {
            self.set_object(c, &r, Desired::Start, delays, false);
        }
    }

    /// Change an object's spec (by its operator, or by Flux) and schedule its
    /// controller. The operator's own write shows in its cache at once, with every
    /// change before it.
    pub fn set_object(
        &mut self,
        c: Cluster,
        r: &ObjectRef,
        desired: Desired,
        delays: (Time, Time),
        by_operator: bool,
    ) -> Vec<FieldChange> {
        let Some(o) = self.clusters[c.index()].objects.get_mut(r) else {
            return Vec::new();
        };
        let Some((after, changes)) = set_member(r, &o.state, desired) else {
            return Vec::new();
        };
        let before = std::mem::replace(&mut o.state, after);
        o.version += 1;
        if by_operator {
            o.shown = None;
        } else {
            self.by_others(c, r, before);
        }
        if matches!(
            r.kind,
            Kind::Deployment | Kind::StatefulSet | Kind::VolumeReplication
        ) {
            let max = if r.kind == Kind::VolumeReplication {
                self.driver_lag.max(delays.0)
            } else {
                delays.1
            };
            let at = self.time.now() + self.rng.range(delays.0, max);
            self.schedule(at, WorldEvent::Settle(c, r.clone()));
        }
        self.touch(c);
        changes
    }
}

/// The shared world behind a lock (the run is single-threaded; the lock is never
/// contended and never held across an await).
#[derive(Clone)]
pub struct Shared(pub Arc<Mutex<Fakes>>);

impl Shared {
    /// Lock the world.
    pub fn lock(&self) -> MutexGuard<'_, Fakes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn latency(&self) {
        let (time, at) = {
            let mut w = self.lock();
            let max = w.latency_max;
            let d = w.rng.range(1, max.max(1));
            (w.time.clone(), w.time.now() + d)
        };
        time.until(at).await;
    }
}

/// Cluster `c`'s API, as its operator sees it.
#[derive(Clone)]
pub struct FakeCluster {
    /// The world.
    pub world: Shared,
    /// Whose API.
    pub me: Cluster,
    /// Controller delays (min, max) in ms.
    pub delays: (Time, Time),
}

/// Whether setting `state` to `desired` saves a value read from the object, so the
/// real adapter sends its resourceVersion (see `failover_engine::k8s`).
fn saves_original(state: &MemberState, desired: Desired) -> bool {
    desired == Desired::Stop
        && match state {
            MemberState::Workload { replicas, .. } => *replicas > 0,
            MemberState::Network { disabled } => !disabled,
            _ => false,
        }
}

/// A parsed label selector (`k=v` and `k` terms, all required); empty selects nothing.
impl ClusterPort for FakeCluster {
    async fn members(&self, kind: Kind, selector: &Selector) -> Result<Vec<Member>, ClusterError> {
        let mut w = self.world.lock();
        let i = self.me.index();
        if w.cut_api[i] {
            return Err(ClusterError::Unavailable("API server unreachable".into()));
        }
        if w.roll(|f| f.kube_error) {
            w.inject(FaultKind::KubeError);
            return Err(ClusterError::Unavailable("injected list error".into()));
        }
        let (cache, lagging) = (w.cache_time(), w.watch_lag > 0);
        let cw = &mut w.clusters[i];
        if let Some((version, listed_for, members)) = cw.listed.get(&kind)
            && *version == cw.version
            && listed_for == selector
            && !lagging
        {
            return Ok(members.clone());
        }
        let objects = &cw.objects;
        let from = ObjectRef {
            kind,
            namespace: selector.namespace.clone(),
            name: String::new(),
        };
        let mut out = Vec::with_capacity(selector.names.len());
        let mut named = 0;
        for (r, o) in objects
            .range(from..)
            .take_while(|(r, _)| r.kind == kind && r.namespace == selector.namespace)
        {
            let by_name = selector.names.contains(&r.name);
            named += usize::from(by_name);
            if by_name || selector.labels.matches(&o.labels) {
                out.push(Member {
                    object: r.clone(),
                    state: o.seen(cache).clone(),
                    stop_grace_seconds: None,
                });
            }
        }
        if named < selector.names.len() {
            let missing = selector
                .names
                .iter()
                .find(|n| !out.iter().any(|m| &m.object.name == *n))
                .cloned()
                .unwrap_or_default();
            return Err(ClusterError::NotFound(ObjectRef {
                kind,
                namespace: selector.namespace.clone(),
                name: missing,
            }));
        }
        cw.listed
            .insert(kind, (cw.version, selector.clone(), out.clone()));
        Ok(out)
    }

    /// Like the real adapter: read the object, then write. A write that saves a value
    /// read from the object (the replica count before a scale-down, the original routes
    /// or class) carries the resourceVersion it read, and fails with a conflict if the
    /// object changed in between (a controller's status update, another writer).
    async fn set(&self, object: &ObjectRef, desired: Desired) -> Changes {
        self.world.latency().await;
        let i = self.me.index();
        let slow = {
            let mut w = self.world.lock();
            if w.roll(|f| f.kube_hung) {
                w.inject(FaultKind::KubeHung);
                None
            } else if w.roll(|f| f.kube_slow) {
                w.inject(FaultKind::KubeSlow);
                let at = w.time.now() + w.rng.range(1_000, 90_000);
                Some(Some((w.time.clone(), at)))
            } else {
                Some(None)
            }
        };
        match slow {
            // Never answers: the caller's deadline (or the self-fence) drops this
            // future, and with it the write, which never lands.
            None => std::future::pending::<()>().await,
            Some(Some((time, at))) => {
                // Counted while it runs (a future dropped meanwhile leaves the count
                // up, which only makes a later hand-over less aimed).
                self.world.lock().slow_in_flight[i] += 1;
                time.until(at).await;
                let mut w = self.world.lock();
                w.slow_in_flight[i] = w.slow_in_flight[i].saturating_sub(1);
            }
            Some(None) => {}
        }
        let read = {
            let mut w = self.world.lock();
            if w.cut_api[i] || !w.alive[i] {
                return Err(ClusterError::Unavailable("API server unreachable".into()));
            }
            let Some(o) = w.clusters[i].objects.get(object) else {
                return Err(ClusterError::NotFound(object.clone()));
            };
            let read = saves_original(&o.state, desired).then_some(o.version);
            if w.stuck[i] == Some(object.kind.resource()) {
                return Err(ClusterError::Invalid(
                    object.clone(),
                    "admission webhook denied the request".into(),
                ));
            }
            if w.roll(|f| f.kube_error) {
                w.inject(FaultKind::KubeError);
                return Err(ClusterError::Unavailable("injected API error".into()));
            }
            if read.is_some() && w.roll(|f| f.kube_conflict) {
                // Another writer (a user, an autoscaler) changes the object meanwhile.
                if let Some(o) = w.clusters[i].objects.get_mut(object) {
                    o.version += 1;
                }
                w.touch(self.me);
            }
            read
        };
        if read.is_some() {
            // The saving write is a second request.
            self.world.latency().await;
        }
        let mut w = self.world.lock();
        if w.cut_api[i] || !w.alive[i] {
            return Err(ClusterError::Unavailable("API server unreachable".into()));
        }
        let Some(o) = w.clusters[i].objects.get(object) else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        if read.is_some_and(|v| v != o.version) {
            w.inject(FaultKind::KubeConflict);
            return Err(ClusterError::Conflict(object.clone()));
        }
        // The real adapter plans from its cache: an object it shows as already set is
        // not written.
        let cache = w.cache_time();
        if w.clusters[i]
            .objects
            .get(object)
            .is_some_and(|o| is_set(o.seen(cache), desired))
        {
            return Ok(Vec::new());
        }
        let changes = w.set_object(self.me, object, desired, self.delays, true);
        if !changes.is_empty() && w.roll(|f| f.kube_applied_error) {
            w.inject(FaultKind::KubeAppliedError);
            return Err(ClusterError::Unavailable(
                "injected timeout after apply".into(),
            ));
        }
        Ok(changes)
    }

    /// What a set would change now (no faults: the simulator runs no dry run).
    async fn preview(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let w = self.world.lock();
        let Some(o) = w.clusters[self.me.index()].objects.get(object) else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        Ok(set_member(object, &o.state, desired).map_or_else(Vec::new, |(_, changes)| changes))
    }

    fn changed(&self, timeout: Duration) -> impl Future<Output = ()> + Send {
        let (version, deadline) = {
            let w = self.world.lock();
            (
                w.clusters[self.me.index()].seen,
                w.time.now() + timeout.as_millis() as Time,
            )
        };
        Changed {
            world: self.world.clone(),
            me: self.me,
            version,
            deadline,
            timer: false,
        }
    }

    async fn identity(&self) -> Result<String, ClusterError> {
        if self.world.lock().cut_api[self.me.index()] {
            return Err(ClusterError::Unavailable("API server unreachable".into()));
        }
        Ok(format!("fake-cluster-{}", self.me))
    }

    async fn recall(&self, _group: &str) -> Result<Option<Trace>, ClusterError> {
        let w = self.world.lock();
        if w.cut_api[self.me.index()] {
            return Err(ClusterError::Unavailable("API server unreachable".into()));
        }
        Ok(w.clusters[self.me.index()].trace)
    }

    async fn remember(&self, _group: &str, trace: Trace) -> Result<(), ClusterError> {
        let mut w = self.world.lock();
        let i = self.me.index();
        if w.cut_api[i] {
            return Err(ClusterError::Unavailable("API server unreachable".into()));
        }
        w.clusters[i].trace = Some(Trace::newest(w.clusters[i].trace, trace));
        Ok(())
    }

    /// Like the API server: an unreachable server refuses at once; a Job of that name
    /// is found again (never created twice) and reports its conditions; a new one's
    /// fate is drawn when it is created (complete or failed 0.2 to 5 s later, or
    /// running until Kubernetes fails it at its `activeDeadlineSeconds`).
    async fn ensure_job(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        template: &serde_json::Value,
        deadline_seconds: i64,
    ) -> Result<JobState, ClusterError> {
        let i = self.me.index();
        let unreachable = || Err(ClusterError::Unavailable("API server unreachable".into()));
        if self.world.lock().api_down(i) {
            return unreachable();
        }
        self.world.latency().await;
        let mut w = self.world.lock();
        if w.api_down(i) {
            return unreachable();
        }
        if w.roll(|f| f.kube_error) {
            w.inject(FaultKind::KubeError);
            return Err(ClusterError::Unavailable("injected API error".into()));
        }
        let now = w.time.now();
        let key = format!("{namespace}/{name}");
        if let Some(job) = w.clusters[i].jobs.get(&key) {
            return Ok(job.state(now));
        }
        let fate = if w.roll(|f| f.hook_hang) {
            w.inject(FaultKind::HookHung);
            JobFate::Hang
        } else if w.roll(|f| f.hook_fail) {
            w.inject(FaultKind::HookFailed);
            JobFate::Fail(now + w.rng.range(200, 5_000))
        } else {
            JobFate::Complete(now + w.rng.range(200, 5_000))
        };
        let deadline = template
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(deadline_seconds)
            .max(1) as Time;
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let job = FakeJob {
            hook: label("failover.rs/hook"),
            failover: label("failover.rs/failover"),
            fate,
            deadline_at: now + deadline * 1000,
        };
        let cw = &mut w.clusters[i];
        *cw.job_creations
            .entry((job.hook.clone(), job.failover.clone()))
            .or_default() += 1;
        let state = job.state(now);
        cw.jobs.insert(key, job);
        Ok(state)
    }

    /// Every running pod of the workloads `selector` selects in `namespace` answers
    /// (named `<workload>-<n>`); an injected failure makes the first exit with 1, an
    /// injected hang never answers.
    async fn exec(
        &self,
        namespace: &str,
        selector: &LabelQuery,
        _container: Option<&str>,
        command: &[String],
    ) -> Result<Vec<ExecResult>, ClusterError> {
        let i = self.me.index();
        let unreachable = || Err(ClusterError::Unavailable("API server unreachable".into()));
        if self.world.lock().api_down(i) {
            return unreachable();
        }
        self.world.latency().await;
        let (hang, fail, pods) = {
            let mut w = self.world.lock();
            if w.api_down(i) {
                return unreachable();
            }
            if w.roll(|f| f.kube_error) {
                w.inject(FaultKind::KubeError);
                return Err(ClusterError::Unavailable("injected API error".into()));
            }
            let hang = w.roll(|f| f.hook_hang);
            let fail = !hang && w.roll(|f| f.hook_fail);
            if hang {
                w.inject(FaultKind::HookHung);
            } else if fail {
                w.inject(FaultKind::HookFailed);
            }
            let pods: Vec<String> = w.clusters[i]
                .objects
                .iter()
                .filter(|(r, o)| {
                    matches!(r.kind, Kind::Deployment | Kind::StatefulSet)
                        && r.namespace == namespace
                        && selector.matches(&o.labels)
                })
                .flat_map(|(r, o)| {
                    let running = match o.state {
                        MemberState::Workload { pods, .. } => pods.max(0),
                        _ => 0,
                    };
                    (0..running).map(move |n| format!("{}-{n}", r.name))
                })
                .collect();
            (hang, fail, pods)
        };
        if hang {
            // The caller's timeout drops this future.
            return std::future::pending().await;
        }
        Ok(pods
            .into_iter()
            .enumerate()
            .map(|(n, pod)| {
                let failed = fail && n == 0;
                ExecResult {
                    pod,
                    exit_code: i32::from(failed),
                    output: if failed {
                        format!("{}: injected failure", command.join(" "))
                    } else {
                        String::new()
                    },
                }
            })
            .collect())
    }

    /// The endpoint answers after the network's latency: the expected status, 503 for
    /// an injected failure, or never (an injected hang). A lost cluster's operator
    /// reaches nothing.
    async fn http(&self, request: &HttpRequest) -> Result<u16, ClusterError> {
        self.world.latency().await;
        let (hang, fail) = {
            let mut w = self.world.lock();
            if !w.alive[self.me.index()] {
                return Err(ClusterError::Unavailable("network unreachable".into()));
            }
            let hang = w.roll(|f| f.hook_hang);
            let fail = !hang && w.roll(|f| f.hook_fail);
            if hang {
                w.inject(FaultKind::HookHung);
            } else if fail {
                w.inject(FaultKind::HookFailed);
            }
            (hang, fail)
        };
        if hang {
            return std::future::pending().await;
        }
        Ok(if fail { 503 } else { request.expected_status })
    }
}

struct Changed {
    world: Shared,
    me: Cluster,
    version: u64,
    deadline: Time,
    timer: bool,
}

impl Future for Changed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let time = {
            let mut w = self.world.lock();
            if w.clusters[self.me.index()].seen != self.version || w.time.now() >= self.deadline {
                return Poll::Ready(());
            }
            // Registered once: watchers are only drained by a change, after which the
            // version differs and the next poll is ready.
            if !self.timer {
                w.clusters[self.me.index()]
                    .watchers
                    .push(cx.waker().clone());
            }
            w.time.clone()
        };
        if !self.timer {
            self.timer = true;
            time.wake_at(self.deadline, cx.waker().clone());
        }
        Poll::Pending
    }
}

/// DynamoDB as operator `me` reaches it.
#[derive(Clone)]
pub struct FakeStore {
    /// The world.
    pub world: Shared,
    /// Whose connection.
    pub me: Cluster,
    /// The process slot it belongs to (0 to 2): its writes are found in that slot of
    /// `Fakes::writes_found`.
    pub slot: usize,
}

impl FakeStore {
    fn cut(&self, w: &Fakes) -> bool {
        w.cut_store[self.me.index()]
    }
}

/// How long an eventually consistent read may lag behind a write (DynamoDB: usually
/// within a second).
pub const EVENTUAL_LAG: Time = 1_000;

impl FakeStore {
    /// An eventually consistent read, as DynamoDB serves one by default: within
    /// [`EVENTUAL_LAG`] of a write it may still return the record the write replaced.
    /// The engine's [`StorePort::read`] is strongly consistent by contract (a stale view
    /// could let an operator act on a lock it lost), so the engine never calls this;
    /// it is here for tests of code that must tolerate stale reads.
    pub async fn read_eventually(&self, _group: &str) -> Result<Option<Record>, StoreUnavailable> {
        self.world.latency().await;
        let mut w = self.world.lock();
        if self.cut(&w) {
            return Err(StoreUnavailable("unreachable".into()));
        }
        let now = w.time.now();
        let stale = match &w.superseded {
            Some((at, before)) if now < at + EVENTUAL_LAG => Some(before.clone()),
            _ => None,
        };
        match stale {
            Some(before) if w.rng.chance(0.5) => Ok(Some(before)),
            _ => Ok(w.record.clone()),
        }
    }
}

impl StorePort for FakeStore {
    async fn init(
        &self,
        _group: &str,
        active: Cluster,
        now: Time,
    ) -> Result<Record, StoreUnavailable> {
        self.world.latency().await;
        let mut w = self.world.lock();
        if self.cut(&w) {
            return Err(StoreUnavailable("unreachable".into()));
        }
        if w.record.is_none() {
            let created = Record::new(active, [Some(now); 2]);
            // A record created where one was deleted (`recreate-missing-record`).
            if let Some(before) = w.deleted.take() {
                w.audit.on_recreated(&before, &created);
            }
            w.record = Some(created);
            w.dirty = true;
        }
        Ok(w.record
            .clone()
            .unwrap_or_else(|| Record::new(active, [Some(now); 2])))
    }

    async fn recreate(&self, _group: &str, record: &Record) -> Reply {
        self.world.latency().await;
        let mut w = self.world.lock();
        if self.cut(&w) {
            return Reply::Unavailable;
        }
        w.recreate(record)
    }

    async fn read(&self, _group: &str) -> Result<Option<Record>, StoreUnavailable> {
        self.world.latency().await;
        let mut w = self.world.lock();
        if self.cut(&w) {
            return Err(StoreUnavailable("unreachable".into()));
        }
        if w.claiming != Some(self.slot) && w.roll(|f| f.store_unavailable) {
            w.inject(FaultKind::StoreUnavailable);
            return Err(StoreUnavailable("injected".into()));
        }
        Ok(w.record.clone())
    }

    async fn write(&self, _group: &str, timing: &Timing, write: &Write) -> Reply {
        self.world.latency().await;
        let mut w = self.world.lock();
        let slot = self.slot;
        w.writes_found[slot].push(None);
        if self.cut(&w) {
            // A partition mostly refuses connections; where delayed writes are on, some
            // writes already on their way are stuck and arrive much later.
            if w.stuck_in_transit[self.me.index()]
                || (w.faults.store_delayed > 0.0 && w.rng.chance(0.5))
            {
                w.inject(FaultKind::StoreDelayed);
                // Half of them surface after the sender's lease ran out, when another
                // operator may have taken over: what fencing tokens are for.
                let after_lease = timing.lease_ttl + timing.clock_drift_max;
                let delay = if w.rng.chance(0.5) {
                    w.rng.range(1_000, 60_000)
                } else {
                    w.rng.range(after_lease, after_lease + 30_000)
                };
                let at = w.time.now() + delay;
                if w.stuck_in_transit[self.me.index()] {
                    // Held until it can do harm, or long after the lease.
                    let at = at.max(w.time.now() + after_lease + 60_000);
                    w.seq += 1;
                    let id = w.seq;
                    w.held.push((id, *write, *timing));
                    w.schedule(at, WorldEvent::DeliverHeld(id));
                } else {
                    w.schedule(at, WorldEvent::Deliver(*write, *timing));
                }
                return Reply::Ambiguous;
            }
            return Reply::Unavailable;
        }
        let f = if w.claiming == Some(slot) {
            if matches!(write.op, Op::Claim { .. }) {
                w.claiming = None;
            }
            CallFaults::default()
        } else {
            w.faults
        };
        if w.rng.chance(f.store_unavailable) {
            w.inject(FaultKind::StoreUnavailable);
            return Reply::Unavailable;
        }
        if w.rng.chance(f.store_throttled) {
            w.inject(FaultKind::StoreThrottled);
            return Reply::Unavailable;
        }
        if w.rng.chance(f.store_lost_timeout) {
            w.inject(FaultKind::StoreLostTimeout);
            return Reply::Ambiguous;
        }
        if w.rng.chance(f.store_delayed) {
            w.inject(FaultKind::StoreDelayed);
            // Mostly short delays; sometimes a write surfaces after a lease has run out
            // (stuck in a proxy or a client's retry queue), the case fencing tokens exist for.
            let delay = if w.rng.chance(0.5) {
                w.rng.range(100, 8_000)
            } else {
                w.rng.range(8_000, 60_000)
            };
            let at = w.time.now() + delay;
            w.schedule(at, WorldEvent::Deliver(*write, *timing));
            return Reply::Ambiguous;
        }
        let found = w.record.clone();
        if let Some(last) = w.writes_found[slot].last_mut() {
            *last = found;
        }
        let reply = w.store_apply(timing, write);
        if w.rng.chance(f.store_applied_timeout) {
            w.inject(FaultKind::StoreAppliedTimeout);
            return Reply::Ambiguous;
        }
        reply
    }
}
