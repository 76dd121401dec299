//! The ports: the narrow traits through which the engine does all its IO, with their
//! failure contracts. The real adapters ([`crate::k8s`], [`crate::dynamo`]) and the
//! simulator's fakes implement them; the `conformance` suite (feature `testkit`) checks that they behave alike.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use failover_model::{Cluster, Record, Reply, Time, Timing, Trace, VolumeRole, Write};

pub use crate::hooks::{ExecResult, HttpRequest, JobState};

/// A resource kind the operator touches; each variant says what stopping and starting
/// it does (README, "The engine").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `apps/v1` Deployment, stopped and started by one merge patch of `spec.replicas`
    /// (the count kept in an annotation).
    Deployment,
    /// `apps/v1` StatefulSet, the same way.
    StatefulSet,
    /// `batch/v1` (or `batch/v1beta1` on old servers) CronJob, `spec.suspend`.
    CronJob,
    /// `networking.istio.io` VirtualService, routes answered by a 503 while disabled.
    VirtualService,
    /// `networking.k8s.io/v1` Ingress, moved to a class no controller serves while disabled.
    Ingress,
    /// csi-addons `replication.storage.openshift.io/v1alpha1` VolumeReplication.
    VolumeReplication,
    /// Flux `kustomize.toolkit.fluxcd.io` Kustomization, `spec.suspend`.
    Kustomization,
    /// Flux `helm.toolkit.fluxcd.io` HelmRelease, `spec.suspend`.
    HelmRelease,
}

impl Kind {
    /// Every kind, in the order the engine observes them.
    pub const ALL: [Kind; 8] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::CronJob,
        Kind::VirtualService,
        Kind::Ingress,
        Kind::VolumeReplication,
        Kind::Kustomization,
        Kind::HelmRelease,
    ];

    /// A workload: a Deployment or a StatefulSet.
    pub fn is_workload(self) -> bool {
        matches!(self, Kind::Deployment | Kind::StatefulSet)
    }

    /// The Kubernetes kind name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::CronJob => "CronJob",
            Kind::VirtualService => "VirtualService",
            Kind::Ingress => "Ingress",
            Kind::VolumeReplication => "VolumeReplication",
            Kind::Kustomization => "Kustomization",
            Kind::HelmRelease => "HelmRelease",
        }
    }

    /// The model's name for what objects of this kind are to the protocol.
    pub fn resource(self) -> failover_model::Resource {
        use failover_model::Resource;
        match self {
            Kind::Deployment | Kind::StatefulSet => Resource::Workloads,
            Kind::CronJob => Resource::CronJobs,
            Kind::VirtualService | Kind::Ingress => Resource::Network,
            Kind::VolumeReplication => Resource::Volumes,
            Kind::Kustomization | Kind::HelmRelease => Resource::Flux,
        }
    }

    /// The kinds of objects of a class the model names: what an effect on it changes.
    pub fn of(resource: failover_model::Resource) -> &'static [Kind] {
        use failover_model::Resource;
        match resource {
            Resource::Workloads => &[Kind::Deployment, Kind::StatefulSet],
            Resource::CronJobs => &[Kind::CronJob],
            Resource::Network => &[Kind::VirtualService, Kind::Ingress],
            Resource::Volumes => &[Kind::VolumeReplication],
            Resource::Flux => &[Kind::Kustomization, Kind::HelmRelease],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One object of a group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the engine reads of one member: exactly the fields its steps look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// A Deployment or StatefulSet.
    Workload {
        /// `spec.replicas` (1 if unset).
        replicas: i32,
        /// The replica count remembered at scale-down (the `failover.rs/replicas` annotation).
        remembered: Option<i32>,
        /// `status.replicas`: pods exist while it is above zero.
        pods: i32,
        /// The rollout is complete, judged like `kubectl rollout status`:
        /// `status.observedGeneration >= metadata.generation`, then updated, ready
        /// (available for Deployments) replicas equal to `spec.replicas`.
        ready: bool,
    },
    /// A CronJob.
    CronJob {
        /// `spec.suspend`.
        suspended: bool,
    },
    /// A VirtualService or Ingress.
    Network {
        /// Disabled by the operator (its original routes or class kept in an annotation).
        disabled: bool,
    },
    /// A VolumeReplication.
    Volume {
        /// `spec.replicationState`.
        spec: VolumeRole,
        /// `status.state`, once the driver reported one.
        status: Option<VolumeRole>,
    },
    /// A Kustomization or HelmRelease.
    Flux {
        /// `spec.suspend`.
        suspended: bool,
    },
}

/// One member of a group: an object and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The object.
    pub object: ObjectRef,
    /// Its state.
    pub state: MemberState,
    /// How long its pods may take to stop, in seconds: the pod template's
    /// `terminationGracePeriodSeconds` (30 if unset) for Deployments and StatefulSets;
    /// `None` for other kinds, and where the adapter does not know (the fakes).
    pub stop_grace_seconds: Option<u64>,
}

/// What a [`ClusterPort::set`] or [`ClusterPort::preview`] answers: the fields
/// changed (or that would be), or why not.
pub type Changes = Result<Vec<FieldChange>, ClusterError>;

/// The two reversible changes every kind supports (the model's word).
pub use failover_model::Desired;

/// Which objects belong to a group, in one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The namespace.
    pub namespace: String,
    /// The label query, parsed once from the spec; empty selects nothing by label.
    pub labels: LabelQuery,
    /// Objects named explicitly, in addition to those the labels select.
    pub names: Vec<String>,
}

/// A label selector, parsed and checked once (from the spec's `LabelSelector`): the API
/// server gets its [`fmt::Display`] (`app=shop,tier in (web,api)`), the fakes match with
/// [`LabelQuery::matches`], so every adapter reads it the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelQuery {
    terms: Vec<LabelTerm>,
}

/// One requirement of a [`LabelQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelTerm {
    /// `key=value` (`matchLabels`).
    Equals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`: also true without the label.
    NotIn(String, Vec<String>),
    /// `key`: the label exists.
    Exists(String),
    /// `!key`: the label does not exist.
    DoesNotExist(String),
}

impl LabelTerm {
    fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            LabelTerm::Equals(k, v) => labels.get(k) == Some(v),
            LabelTerm::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelTerm::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelTerm::Exists(k) => labels.contains_key(k),
            LabelTerm::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl fmt::Display for LabelTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelTerm::Equals(k, v) => write!(f, "{k}={v}"),
            LabelTerm::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            LabelTerm::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            LabelTerm::Exists(k) => write!(f, "{k}"),
            LabelTerm::DoesNotExist(k) => write!(f, "!{k}"),
        }
    }
}

impl LabelQuery {
    /// A query of these requirements (all must hold).
    pub fn new(terms: Vec<LabelTerm>) -> LabelQuery {
        LabelQuery { terms }
    }

    /// `key=value`.
    pub fn equals(key: &str, value: &str) -> LabelQuery {
        LabelQuery::new(vec![LabelTerm::Equals(key.into(), value.into())])
    }

    /// No requirement: selects nothing by label.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The requirements.
    pub fn terms(&self) -> &[LabelTerm] {
        &self.terms
    }

    /// An object with these labels is selected: every requirement holds (an empty query
    /// selects nothing).
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        !self.terms.is_empty() && self.terms.iter().all(|t| t.matches(labels))
    }
}

impl fmt::Display for LabelQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// One field an effect changed (or, in a dry run, would change).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldChange {
    /// The object.
    pub object: ObjectRef,
    /// The field path (`spec.replicas`, `metadata.annotations[failover.rs/replicas]`).
    pub field: String,
    /// The value before, rendered (`-` if absent).
    pub from: String,
    /// The value after, rendered (`-` if removed).
    pub to: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} -> {}",
            self.object, self.field, self.from, self.to
        )
    }
}

/// Why a call to the cluster failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The object does not exist (any more).
    #[error("{0} not found")]
    NotFound(ObjectRef),
    /// The object changed between read and write (a resourceVersion conflict); retry.
    #[error("{0} changed concurrently; retry")]
    Conflict(ObjectRef),
    /// The object cannot be handled as asked (a malformed field, a missing CRD);
    /// retrying does not help. The message says what to fix.
    #[error("{0}: {1}")]
    Invalid(ObjectRef, String),
    /// The API server failed, timed out or could not be reached. The call may or may
    /// not have applied; every change is an idempotent "ensure", so retrying is safe.
    #[error("kubernetes API unavailable: {0}")]
    Unavailable(String),
}

tokio::task_local! {
    static URGENT: ();
}

/// Run `work` as urgent: an adapter's client-side rate limit lets its calls through at
/// once instead of queueing them behind routine ones (they still count against the
/// rate), and an adapter with watch caches reads the API server instead (a cache may
/// not show yet what others changed). The self-fence runs this way: its writes must
/// land within the fence margin whatever else the process is doing, and be judged
/// against the cluster as it is.
pub async fn urgent<F: Future>(work: F) -> F::Output {
    URGENT.scope((), work).await
}

/// Whether the running task is inside [`urgent`].
pub fn is_urgent() -> bool {
    URGENT.try_with(|_| ()).is_ok()
}

/// Objects of one step written at once by an adapter with no rate limit to size it from.
pub const DEFAULT_PARALLELISM: usize = 8;

/// One cluster's API, as the engine sees it.
///
/// Failure contract: every method either succeeds or returns a [`ClusterError`];
/// [`ClusterError::Unavailable`] may hide an applied change, so callers only ever ask
/// for idempotent changes and re-read before deciding. `set` reads the object and
/// changes only what differs: calling it twice changes nothing the second time and
/// returns no field changes.
pub trait ClusterPort: Send + Sync {
    /// The group's members of `kind`: the objects the selector's labels select plus the
    /// named ones. A named object that does not exist is [`ClusterError::NotFound`].
    fn members(
        &self,
        kind: Kind,
        selector: &Selector,
    ) -> impl Future<Output = Result<Vec<Member>, ClusterError>> + Send;

    /// Make `object` stopped or started, returning the fields it changed (empty if it
    /// already was).
    fn set(&self, object: &ObjectRef, desired: Desired) -> impl Future<Output = Changes> + Send;

    /// The fields [`ClusterPort::set`] would change on `object` as it is now, changing
    /// nothing: the dry run's answer, computed the way `set` computes its writes (the
    /// Kubernetes adapter reads the object and plans its patches without sending them).
    fn preview(&self, object: &ObjectRef, desired: Desired)
    -> impl Future<Output = Changes> + Send;

    /// Resolves when one of the group's objects may have changed (a watch event), or
    /// after `timeout`. Spurious wake-ups are allowed.
    fn changed(&self, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// How many objects of one step this adapter writes at once when the group does not
    /// say (`spec.parallelism`): the Kubernetes adapter sizes it from its client's rate
    /// limit; [`DEFAULT_PARALLELISM`] otherwise.
    fn write_parallelism(&self) -> usize {
        DEFAULT_PARALLELISM
    }

    /// The identity of this cluster: the UID of its `kube-system` namespace, which every
    /// cluster has and which stays the same for the cluster's life. An operator proves
    /// with it which slot of a group it owns (the record binds each slot to the first
    /// identity that claims it), so a wrong `--cluster-name` or a copy of the spec that
    /// lists the clusters in another order cannot make it act as the other cluster.
    fn identity(&self) -> impl Future<Output = Result<String, ClusterError>> + Send;

    /// What this cluster kept of the record of `group` (its key, `namespace/name`):
    /// `None` if it never saw one. Kept in the cluster, beside the group, so that every
    /// later process of the operator finds it: a group with a trace had a record, and
    /// a missing record is never created again silently.
    fn recall(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<Trace>, ClusterError>> + Send;

    /// Keep `trace` for `group` unless the cluster keeps a newer one already
    /// ([`Trace::newest`]): the trace never goes back, whoever writes it.
    fn remember(
        &self,
        group: &str,
        trace: Trace,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// A hook's Job: create Job `name` in `namespace` from `template` (a `batch/v1`
    /// JobTemplateSpec as JSON: its metadata's labels and annotations, and its spec),
    /// with `labels` added and `spec.activeDeadlineSeconds` set to `deadline_seconds`
    /// unless the template sets it, *unless a Job of that name exists*; then report the
    /// Job's state. Calling it again (a restart, a retry) never creates a second Job.
    fn ensure_job(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        template: &serde_json::Value,
        deadline_seconds: i64,
    ) -> impl Future<Output = Result<JobState, ClusterError>> + Send;

    /// A hook's exec: run `command` in `container` (the pod's first when `None`) of
    /// every running pod `selector` selects in `namespace`, and report each pod's exit
    /// code and the end of its output. No pod selected: an empty list.
    fn exec(
        &self,
        namespace: &str,
        selector: &LabelQuery,
        container: Option<&str>,
        command: &[String],
    ) -> impl Future<Output = Result<Vec<ExecResult>, ClusterError>> + Send;

    /// A hook's HTTP request, sent from this cluster's operator: the status it got.
    /// No answer (refused, unreachable, TLS) is [`ClusterError::Unavailable`].
    fn http(&self, request: &HttpRequest)
    -> impl Future<Output = Result<u16, ClusterError>> + Send;
}

/// Why a read of the global record failed. Reads change nothing, so every failure is
/// simply "not now".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("global store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// The global record of every group, in DynamoDB.
///
/// Failure contract: `read` is strongly consistent and returns the record as some write
/// left it. `write` evaluates exactly the condition of [`failover_model::apply`] and
/// answers [`Reply::Applied`] with the record after the write, [`Reply::ConditionFailed`]
/// with the current record, [`Reply::Ambiguous`] if it may or may not have applied
/// (timeouts, lost responses), or [`Reply::Unavailable`] if it certainly did not
/// (throttled, refused, unreachable before sending).
pub trait StorePort: Send + Sync {
    /// Create the group's record with `active` owning the application, unless it exists.
    /// Returns the record as it is afterwards.
    ///
    /// A new record counts both clusters as having sent a heartbeat at `now` (the
    /// creator's local time): a cluster that never manages to send one loses its lease a
    /// lease after the record exists, not at once. Otherwise an active cluster whose
    /// operator is cut off from DynamoDB before its first heartbeat would look expired
    /// at once, and a forced failover could promote the target while the source still
    /// serves (the simulator found this: seed 2670).
    fn init(
        &self,
        group: &str,
        active: Cluster,
        now: Time,
    ) -> impl Future<Output = Result<Record, StoreUnavailable>> + Send;

    /// A strongly consistent read of the group's record (`None`: not created yet).
    fn read(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<Record>, StoreUnavailable>> + Send;

    /// A conditional write to the group's record, with the group's timing (the lease
    /// length and clock drift bound enter the conditions and the lock's expiry).
    fn write(
        &self,
        group: &str,
        timing: &Timing,
        write: &Write,
    ) -> impl Future<Output = Reply> + Send;

    /// The explicit re-creation of a missing record as `record`
    /// ([`Record::recreated`] from both clusters' traces): [`Reply::Applied`] if it was
    /// missing, [`Reply::ConditionFailed`] with the record if one exists.
    fn recreate(&self, group: &str, record: &Record) -> impl Future<Output = Reply> + Send;
}

/// Local time and sleeping, so the simulator can run the engine on virtual time.
pub trait Clock: Send + Sync {
    /// The wall clock in milliseconds (since the UNIX epoch for the system clock). Only
    /// write stamps and what people read come from it: it may step in either direction
    /// by any amount without moving a lease.
    fn now(&self) -> Time;

    /// A monotonic clock in milliseconds from an arbitrary origin (fixed for the
    /// process): leases, back-offs, deadlines and observations of the peer are judged
    /// by it. It never steps; its rate may err (the group's `maxClockDriftSeconds`).
    fn mono(&self) -> Time;

    /// Sleep for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The system clock with tokio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Time)
    }

    fn mono(&self) -> Time {
        // `Instant` is CLOCK_MONOTONIC on Linux; 1 ms after the first reading so a
        // reading is never 0 (the model's "never").
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        origin.elapsed().as_millis() as Time + 1
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}
