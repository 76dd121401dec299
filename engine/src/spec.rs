//! A group's spec as users write it (the `FailoverGroup` and `Failover` custom
//! resources), parsed once into a validated [`Group`]. Everything downstream works on
//! the validated type; an invalid spec gives a [`SpecError`] whose message says what to
//! fix, and nothing is changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use failover_model::{
    Cluster, FailoverId, HookSpot, Hooks, Identity, MAX_HOOKS, Mode, OnFailure, Plan, PlanKind,
    Request, Role, START, STOP, SpecPrint, Stage, Step, Time, Timing, Variant,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auto::{AutoPolicy, Probe};
use crate::hooks::{Hook, HookAction, HttpRequest};
use crate::ports::{Kind, LabelQuery, LabelTerm, Selector};
use failover_model::core::trigger::TriggerPolicy;

/// The spec of a `FailoverGroup`: an application that runs in two clusters, one active.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "failover.rs",
    version = "v1alpha1",
    kind = "FailoverGroup",
    namespaced,
    shortname = "fg",
    status = "FailoverGroupStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct FailoverGroupSpec {
    /// The two clusters' names (as each operator's `--cluster-name`); the first is
    /// active when the group is created, unless `initialActive` says otherwise.
    pub clusters: Vec<String>,
    /// The cluster that is active when the group's record is first created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_active: Option<String>,
    /// The group's members in the group's namespace.
    #[serde(default)]
    pub members: MembersSpec,
    /// Lease and heartbeat timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<TimingSpec>,
    /// How many objects of one step are changed at once, at most (1–1000; default: as
    /// many as the operator's Kubernetes client lets through without waiting, its
    /// `--kube-burst`, at most 32). It can only lower that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// How long one step may take before it is retried (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_seconds: Option<u64>,
    /// The storage makes a demoted volume read-only while it is mounted (Ceph RBD
    /// mirroring does), so pods still stopping after the self-fence cannot write. Then
    /// the workloads' `terminationGracePeriodSeconds` need not fit the fence margin
    /// (default false: they must, see README "Timing").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demotion_stops_writes: Option<bool>,
    /// Failing over automatically when the active cluster dies or stops serving (off
    /// unless `enabled`). Only away from the home cluster (`initialActive`): failing
    /// back is done by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_failover: Option<AutoFailoverSpec>,
    /// The application's own steps inside a failover (README, "Hooks"): each runs
    /// before or after a cluster step of the plan, on the side that runs that step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSpec>,
}

/// One hook of `spec.hooks` (README, "Hooks"): one of the application's own steps in a
/// failover. Where it stands (`before` or `after` one cluster step, on the `side` that
/// runs that step), what it runs (exactly one of `job`, `exec` and `http`) and what its
/// failure does. A hook runs at least once per failover, not exactly once: make it
/// idempotent.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookSpec {
    /// Its name: a DNS-1123 label of at most 54 characters, unique in the group (its
    /// Jobs are named `<name>-<failover id, 8 hex digits>`, at most 63 characters).
    pub name: String,
    /// Run it just before this cluster step of the plan (`suspend-flux`,
    /// `disable-network`, `scale-down-workloads`, `suspend-cronjobs`,
    /// `await-workloads-down`, `demote-volumes`, `await-volumes-secondary` on the
    /// source; `promote-volumes`, `await-volumes-primary`, `scale-up-workloads`,
    /// `await-workloads-ready`, `enable-network`, `resume-cronjobs`, `resume-flux` on
    /// the target). Exactly one of `before` and `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Run it just after this cluster step (the names as for `before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The side that runs it: must be the side that runs its step (it holds the lock
    /// then).
    pub side: HookSide,
    /// A run that has not succeeded by then has failed (default 300; at least 1 and at
    /// most the deadline of the stage its step belongs to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// What a failure (an error, or no success within `timeoutSeconds`) does (default
    /// `abort`). `abort` rolls the failover back (the source stays active and restores
    /// what it stopped), which is safe only while the target has promoted nothing: it is
    /// refused for a hook that runs after the target's promotion started in every mode
    /// (a target hook from `promote-volumes` on: use `continue` there). A source `abort`
    /// hook rolls back in a consistency failover; in an uptime failover the source's
    /// steps run after the target promoted, so there a failing `abort` hook is retried
    /// until it succeeds, and its stage's deadline flags the failover `needs-operator`
    /// (so is a target hook in a forced failover). `continue` logs the failure, emits a
    /// Warning Event and goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<HookFailurePolicy>,
    /// Create a Job (once per failover) and wait for its `Complete` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobHookSpec>,
    /// Run a command in every running pod the selector selects; each must exit with 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHookSpec>,
    /// Send an HTTP request and expect a status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHookSpec>,
}

/// The side of a failover a hook runs on (`source` or `target`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum HookSide {
    /// The cluster the group leaves (active until the failover).
    #[default]
    Source,
    /// The cluster the group moves to.
    Target,
}

/// What a hook's failure does (`abort` or `continue`; see [`HookSpec::on_failure`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum HookFailurePolicy {
    /// Roll the failover back where that is still safe (else retry the hook).
    #[default]
    Abort,
    /// Log it, emit a Warning Event and go on.
    Continue,
}

/// `spec.hooks[].job`: a Job created from a template.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobHookSpec {
    /// A `batch/v1` JobTemplateSpec: `metadata` (only `labels` and `annotations`: the
    /// operator names the Job and creates it in the group's namespace) and `spec` (a
    /// JobSpec whose pod template has containers and `restartPolicy` `Never` or
    /// `OnFailure`). `activeDeadlineSeconds` defaults to the hook's timeout.
    #[schemars(schema_with = "job_template_schema")]
    pub template: serde_json::Value,
}

/// `spec.hooks[].exec`: a command run in pods of the group's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecHookSpec {
    /// Selects the pods (every running one runs the command; none is a failure). Must
    /// not be empty.
    pub selector: LabelSelector,
    /// The container (the pod's first when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments (not run in a shell unless it starts one).
    pub command: Vec<String>,
}

/// `spec.hooks[].http`: an HTTP request.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHookSpec {
    /// The method (default `POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The status that means success (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// Headers to send.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body to send, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The schema of a hook's Job template: an object the API server keeps as it is (the
/// full JobTemplateSpec schema would make the CRD several times larger); the operator
/// validates what it needs.
fn job_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A batch/v1 JobTemplateSpec: metadata (labels, annotations) and spec.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `spec.autoFailover`: when the standby cluster's operator asks for a failover by
/// itself (README, "Auto-failover").
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoFailoverSpec {
    /// Turns it on.
    #[serde(default)]
    pub enabled: bool,
    /// The mode of the failover it asks for (default `Consistency`). The protocol forces
    /// it only once the active cluster's lease ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FailoverMode>,
    /// Failed observations in a row needed (default 3, at least 2). One observation a
    /// second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_required: Option<u32>,
    /// The failed observations must span at least this long (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// Never fire again sooner than this after firing (default 600, at least the
    /// window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_seconds: Option<u64>,
    /// The active cluster's heartbeat counts as missed once unchanged this long
    /// (default `2 × heartbeatSeconds + retrySeconds`; at least `heartbeatSeconds +
    /// retrySeconds`, below `leaseSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_seconds: Option<u64>,
    /// An HTTP probe of the application from this cluster's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,
}

/// `spec.autoFailover.probe`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeSpec {
    /// `http://` or `https://` URL, fetched with `GET`.
    pub url: String,
    /// The status that means healthy (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// How long one request may take (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// The status of a `FailoverGroup`, as this cluster's operator publishes it (README,
/// "Operating it").
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverGroupStatus {
    /// The active cluster, as the global record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The last fencing token issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// The cluster holding the group's lock (a failover phase runs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<String>,
    /// Each cluster's heartbeat as this operator sees the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterHealth>,
    /// The failover in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverProgress>,
    /// The last ended failovers, newest first (at most `--status-history`, default 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryItem>,
    /// Why the spec is invalid, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// Problems that keep this operator from acting: its identity does not match its
    /// slot, the two clusters' specs differ, an engine assertion stopped it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Serving`, `Fenced`, `FailoverInProgress`, `Degraded`, and
    /// `HooksSucceeded` once this cluster ran hooks for a failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The auto-failover watch of this cluster's operator (written by its own field
    /// manager, `failover-operator-auto`), when `spec.autoFailover` is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_failover: Option<AutoFailoverStatus>,
}

/// What the auto-failover watch sees (README, "Auto-failover").
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoFailoverStatus {
    /// `Disarmed`, `Paused`, `Healthy`, `Failing` or `Fired`.
    pub state: String,
    /// Why, in words (what the last failed observation found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Failed observations in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Seconds since the first of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_for_seconds: Option<u64>,
    /// Seconds until the watch fires if they keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fires_in_seconds: Option<u64>,
    /// The last `Failover` the watch created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<String>,
}

/// One cluster's heartbeat, as the record shows it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// The cluster.
    pub name: String,
    /// Seconds since its last heartbeat, by this operator's wall clock (off by at most
    /// the clocks' drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_seconds: Option<i64>,
    /// For the active cluster: seconds of lease left (negative once it ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_left_seconds: Option<i64>,
}

/// The failover in flight.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverProgress {
    /// Its id (the `Failover` object's, in hex).
    pub id: String,
    /// `consistency`, `uptime` or `forced`.
    pub mode: String,
    /// The cluster it moves the group from.
    pub source: String,
    /// The cluster it moves the group to.
    pub target: String,
    /// The stage of the next step (only moves forward).
    pub stage: String,
    /// The next step.
    pub step: String,
    /// Steps done of the plan's steps, as `done/total`.
    pub progress: String,
    /// Where the next step stands on each kind it works on, when this cluster runs it
    /// (`scaled down 7/12 Deployments`), from this operator's last observation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// The failover passed a stage deadline after the target promoted: a person must act
    /// (README, "Deadlines").
    #[serde(default)]
    pub needs_operator: bool,
}

impl FailoverProgress {
    /// Where failover `f` stands as the record shows it: `names` are the clusters in
    /// slot order, `group` (if known) names the hook steps, `kinds` are the per-kind
    /// counts of the operator running the step. The operator's status and the CLI both
    /// show this.
    pub fn of(
        f: &failover_model::InFlight,
        names: &[String; 2],
        group: Option<&Group>,
        kinds: Vec<String>,
    ) -> FailoverProgress {
        let plan = f.plan(Variant::Correct);
        let next = f.next_step().or(plan.steps.last().copied());
        FailoverProgress {
            id: format!("{:016x}", f.id),
            mode: crate::trail::kind_words(f.kind),
            source: names[f.source.index()].clone(),
            target: names[f.target.index()].clone(),
            stage: next.map(|s| s.stage.to_string()).unwrap_or_default(),
            step: next.map(|s| step_label(group, s.step)).unwrap_or_default(),
            progress: format!("{}/{}", f.done, plan.steps.len()),
            kinds,
            needs_operator: f.stuck,
        }
    }
}

/// The label of a plan step: its name, or `hook <name>` for a hook (`hook #<index>`
/// when the group is not known).
pub fn step_label(group: Option<&Group>, step: Step) -> String {
    match step {
        Step::Hook(i) => group
            .and_then(|g| g.hook(i))
            .map_or_else(|| format!("hook #{i}"), |h| format!("hook {}", h.name)),
        step => step.to_string(),
    }
}

/// One ended failover.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    /// Its id, in hex.
    pub id: String,
    /// How it ended (`completed-consistency`, `aborted-deadline-volume-demotion`, ...).
    pub outcome: String,
}

/// A condition, as Kubernetes conditions go.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// What it means here, and what to do.
    pub message: String,
}

/// The members of a group: selected by labels and/or named, per kind.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MembersSpec {
    /// Selects Deployments, StatefulSets, CronJobs, VirtualServices, Ingresses and
    /// VolumeReplications of the group's namespace by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Deployments by name.
    #[serde(default)]
    pub deployments: Vec<String>,
    /// StatefulSets by name.
    #[serde(default)]
    pub stateful_sets: Vec<String>,
    /// CronJobs by name.
    #[serde(default)]
    pub cron_jobs: Vec<String>,
    /// Istio VirtualServices by name.
    #[serde(default)]
    pub virtual_services: Vec<String>,
    /// Ingresses by name.
    #[serde(default)]
    pub ingresses: Vec<String>,
    /// csi-addons VolumeReplications by name.
    #[serde(default)]
    pub volume_replications: Vec<String>,
    /// Flux Kustomizations (usually in `flux-system`).
    #[serde(default)]
    pub kustomizations: Vec<FluxRef>,
    /// Flux HelmReleases.
    #[serde(default)]
    pub helm_releases: Vec<FluxRef>,
}

/// A Flux object, which may live outside the group's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct FluxRef {
    /// Its name.
    pub name: String,
    /// Its namespace (default: the group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Timing of leases and heartbeats, in seconds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimingSpec {
    /// How long a heartbeat keeps the active cluster's lease (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
    /// How much the two clusters' monotonic clocks may disagree on the length of a
    /// lease (default 1): the peer waits `leaseSeconds` plus this before it forces.
    /// Wall-clock differences do not matter (no decision compares wall clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clock_drift_seconds: Option<u64>,
    /// How long the self-fence's own steps may take (default 6): stopping traffic,
    /// Flux, workloads and CronJobs and writing the volumes' demotion. Every call
    /// deadline is a share of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_margin_seconds: Option<u64>,
    /// How long the csi-addons driver may take to demote a volume once its
    /// VolumeReplication says `secondary` (default 2): a deployment rule, measure it
    /// under load. The active cluster fences itself once less than
    /// `fenceMarginSeconds + driverDemotionSeconds` is left of its lease, so that its
    /// volumes are secondary when the lease ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_demotion_seconds: Option<u64>,
    /// Interval between heartbeats (default 1); also how quickly an operator sees the
    /// other's hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    /// Wait after DynamoDB was unavailable (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_seconds: Option<u64>,
    /// How long a failover may stay in one stage without completing it, by the clock of
    /// the operator whose turn it is (default 600). Before the target has promoted
    /// anything the failover then rolls back (`aborted`, the source restores what it
    /// stopped); after that the group is flagged `needs-operator`, naming the stuck
    /// objects, and the operator keeps trying. At least twice `stepTimeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_deadline_seconds: Option<u64>,
    /// Per-stage deadlines overriding `stageDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_deadlines: Option<StageDeadlines>,
}

/// Per-stage deadlines, in seconds (each defaults to `stageDeadlineSeconds`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageDeadlines {
    /// Taking the lock and validating the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<u64>,
    /// Stopping traffic, workloads, CronJobs and Flux on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_preparation: Option<u64>,
    /// Demoting the source's volumes until they report secondary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_demotion: Option<u64>,
    /// Promoting the target's volumes until they report primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_promotion: Option<u64>,
    /// Starting workloads (until ready), traffic, CronJobs and Flux on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_activation: Option<u64>,
    /// Recording the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<u64>,
}

impl StageDeadlines {
    /// The values in [`Stage::ALL`] order.
    fn values(&self) -> [Option<u64>; 6] {
        [
            self.initialization,
            self.source_preparation,
            self.volume_demotion,
            self.volume_promotion,
            self.target_activation,
            self.completion,
        ]
    }
}

/// The spec of a `Failover`: move a group to a cluster.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "failover.rs",
    version = "v1alpha1",
    kind = "Failover",
    namespaced,
    status = "FailoverStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// The `FailoverGroup` (same namespace).
    pub group: String,
    /// The cluster that should become active.
    pub target_cluster: String,
    /// `Consistency` (never two writers) or `Uptime` (target up first).
    #[serde(default)]
    pub mode: FailoverMode,
    /// Only print the plan, object by object and field by field.
    #[serde(default)]
    pub dry_run: bool,
}

/// The mode of a planned failover.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum FailoverMode {
    /// Source down first: never two writers.
    #[default]
    Consistency,
    /// Target up first: no downtime, a window with two writers.
    Uptime,
}

/// The status of a `Failover`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// `Pending`, `Running`, `Completed`, `Aborted`, `Refused`, `NeedsOperator`,
    /// `Withdrawn`, `Invalid`, or `DryRun` (`spec.dryRun`: `message` has the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The failover's id in the record (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The stage it is in, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The outcome the record's history gives, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// What happened, in words (the reason of a refusal or an abort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What is wrong with a spec. Each message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `clusters` does not list exactly two clusters.
    #[error("spec.clusters must list exactly two cluster names, found {0}")]
    NotTwoClusters(usize),
    /// Both entries of `clusters` are the same.
    #[error("spec.clusters lists {0:?} twice; name two different clusters")]
    IdenticalClusters(String),
    /// A name is not a valid DNS-1123 label or object name.
    #[error("{field}: {value:?} is not a valid name: {why}")]
    InvalidName {
        /// Where.
        field: String,
        /// The name.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A cluster name used somewhere is not one of the group's two.
    #[error("{field}: cluster {name:?} is not one of the group's clusters {known:?}")]
    UnknownCluster {
        /// Where.
        field: String,
        /// The name.
        name: String,
        /// The group's clusters.
        known: [String; 2],
    },
    /// Neither a selector nor any named member.
    #[error(
        "spec.members selects nothing: give a label selector or name at least one member \
         (deployments, statefulSets, cronJobs, virtualServices, ingresses, \
         volumeReplications, kustomizations, helmReleases)"
    )]
    NoMembers,
    /// The same object is named twice.
    #[error("spec.members.{field} names {name:?} twice")]
    DuplicateMember {
        /// The list.
        field: String,
        /// The repeated name.
        name: String,
    },
    /// The label selector cannot be parsed.
    #[error("spec.members.selector: {0}")]
    MalformedSelector(String),
    /// Timing values that cannot work together.
    #[error("spec.timing: {0}")]
    BadTiming(String),
    /// An auto-failover policy that cannot work.
    #[error("spec.autoFailover: {0}")]
    BadAutoFailover(String),
    /// Parallelism or step timeout out of range.
    #[error("{0}")]
    OutOfRange(String),
    /// A hook that cannot work (which one, what is wrong, what to do).
    #[error("spec.hooks[{index}] ({name}): {why}")]
    BadHook {
        /// Its place in `spec.hooks`.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong and how to fix it.
        why: String,
    },
}

/// A validated group, relative to the operator's own cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `<namespace>/<name>`: the key of its record in the store.
    pub key: String,
    /// The group's namespace.
    pub namespace: String,
    /// The two clusters' names, in slot order ([`Cluster::A`], [`Cluster::B`]).
    pub clusters: [String; 2],
    /// This operator's slot.
    pub me: Cluster,
    /// The slot active when the record is first created.
    pub initial_active: Cluster,
    /// The members, per kind (a kind may need several selectors: Flux objects in other
    /// namespaces). Kinds without members are absent.
    pub members: BTreeMap<Kind, Vec<Selector>>,
    /// Timing in milliseconds.
    pub timing: Timing,
    /// Objects changed at once within one step, at most (`None`: as many as the
    /// adapter's [`ClusterPort::write_parallelism`](crate::ports::ClusterPort::write_parallelism)).
    pub parallelism: Option<usize>,
    /// Time one step may take before it is abandoned and retried.
    pub step_timeout: Duration,
    /// `spec.demotionStopsWrites`: the workloads' grace periods need not fit the margin.
    pub demotion_stops_writes: bool,
    /// `spec.autoFailover`, when enabled.
    pub auto: Option<AutoPolicy>,
    /// `spec.hooks`, validated, in the spec's order (a hook's index is its place here).
    pub hooks: Vec<crate::hooks::Hook>,
}

/// Defaults, in seconds.
const AUTO_FAILURES: u32 = 3;
const AUTO_WINDOW: u64 = 4;
const AUTO_INTERVAL: u64 = 600;
// Sized so that a dead active cluster is replaced within 20 s (lease + drift + the
// forced failover's steps, README "Auto-failover"); so that the fence starts 8 s before
// the lease ends (6 s for its steps, 2 s for the driver's demotion: the simulator found
// the driver's time uncounted, seed 15978) and pods get 4.5 s to stop writing after it
// (margin / 4 + demotion + drift); and so that a crashed leader's replacement (leader
// election, `--leader-lease-seconds` 4 + 2 s grace) claims its slot before the peer may
// force (6 s < lease - margin - demotion - heartbeat = 7 s).
const LEASE: u64 = 16;
const DRIFT: u64 = 1;
const FENCE: u64 = 6;
const DEMOTION: u64 = 2;
const HEARTBEAT: u64 = 1;
const RETRY: u64 = 1;
const STAGE_DEADLINE: u64 = 600;

/// Default hook timeout, in seconds.
const HOOK_TIMEOUT: u64 = 300;
/// The longest hook name: its Jobs are `<name>-<8 hex digits>`, at most 63 characters.
const HOOK_NAME_MAX: usize = 54;

/// Validate `spec.hooks` against the group's timing: each hook on its own (name, place,
/// action), then where the planned plans put them all (whether an `abort` hook can
/// still roll back, and the stage whose deadline bounds its timeout).
fn parse_hooks(specs: &[HookSpec], timing: &Timing) -> Result<Vec<Hook>, SpecError> {
    if specs.len() > MAX_HOOKS {
        return Err(SpecError::OutOfRange(format!(
            "spec.hooks lists {} hooks, at most {MAX_HOOKS} are allowed: combine hooks that \
             stand at the same place (one Job or command can do several things)",
            specs.len()
        )));
    }
    let mut hooks: Vec<Hook> = Vec::with_capacity(specs.len());
    for (index, h) in specs.iter().enumerate() {
        let bad = |why: String| bad_hook(index, h, why);
        hook_name(&h.name).map_err(bad)?;
        if let Some(first) = hooks.iter().position(|o| o.name == h.name) {
            return Err(bad(format!(
                "name: another hook has this name (spec.hooks[{first}]); give each hook its \
                 own name (its Jobs are named after it)"
            )));
        }
        let spot = hook_spot(h).map_err(bad)?;
        let timeout = h.timeout_seconds.unwrap_or(HOOK_TIMEOUT);
        if timeout == 0 {
            return Err(bad(
                "timeoutSeconds is 0: a hook needs at least 1 s to run; set it to the time \
                 the hook may take (default 300)"
                    .into(),
            ));
        }
        let action = hook_action(h).map_err(bad)?;
        hooks.push(Hook {
            name: h.name.clone(),
            spot,
            timeout: Duration::from_secs(timeout),
            action,
        });
    }
    // Where the planned plans (the ones a roll back exists in) place the hooks: the
    // stage a hook belongs to is its anchor's, the same in both.
    let spots: Vec<HookSpot> = hooks.iter().map(|h| h.spot).collect();
    let layout = Hooks::of(&spots).unwrap_or_default();
    let plans = [Mode::Consistency, Mode::Uptime].map(|mode| {
        let kind = PlanKind::Planned(mode);
        (kind, Plan::with_hooks(kind, Variant::Correct, layout))
    });
    for (index, (hook, h)) in hooks.iter().zip(specs).enumerate() {
        let bad = |why: String| bad_hook(index, h, why);
        let at = |plan: &Plan| {
            let step = Step::Hook(index as u8);
            plan.steps
                .iter()
                .position(|s| s.step == step)
                .map(|i| i as u32)
        };
        let place = format!(
            "{} hook {} {}",
            side_name(hook.spot.side),
            if hook.spot.after { "after" } else { "before" },
            hook.spot.anchor
        );
        if hook.aborts()
            && !plans
                .iter()
                .any(|(kind, plan)| at(plan).is_some_and(|i| plan.hook_aborts(*kind, i)))
        {
            return Err(bad(format!(
                "onFailure: abort cannot be honoured here: a {place} runs, in every mode, \
                 once the target may have promoted its volumes, and no roll back is safe then \
                 (it could leave two primaries); set onFailure: continue (the failure is \
                 logged and the failover goes on), or place the hook before promote-volumes"
            )));
        }
        let (_, consistency) = plans[0];
        let Some(stage) = at(consistency)
            .and_then(|i| consistency.get(i))
            .map(|s| s.stage)
        else {
            // Every cluster step is in the consistency plan, so every hook is.
            return Err(bad(format!("the plan has no place for a {place}")));
        };
        let deadline = timing.deadline(stage);
        if hook.timeout.as_millis() > u128::from(deadline) {
            return Err(bad(format!(
                "timeoutSeconds ({}{}) is longer than the {stage} stage's deadline ({} s) the \
                 hook counts against, which would fire first: set timeoutSeconds to at most \
                 {}, or raise spec.timing.stageDeadlines.{} (or stageDeadlineSeconds)",
                hook.timeout.as_secs(),
                if h.timeout_seconds.is_none() {
                    ", the default"
                } else {
                    ""
                },
                Secs(deadline),
                deadline / 1000,
                stage_field(stage)
            )));
        }
    }
    Ok(hooks)
}

/// The error for hook `index`.
fn bad_hook(index: usize, h: &HookSpec, why: String) -> SpecError {
    SpecError::BadHook {
        index,
        name: if h.name.is_empty() {
            "unnamed".into()
        } else {
            h.name.clone()
        },
        why,
    }
}

fn side_name(side: Role) -> &'static str {
    match side {
        Role::Source => "source",
        Role::Target => "target",
    }
}

/// A hook's name: a DNS-1123 label short enough for its Jobs' names.
fn hook_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(
            "name is empty: give the hook a name (a DNS-1123 label such as \
                    `quiesce`)"
                .into(),
        );
    }
    if name.len() > HOOK_NAME_MAX {
        return Err(format!(
            "name: {} characters, at most {HOOK_NAME_MAX} characters are allowed (its Jobs are \
             named <name>-<8 hex digits>, at most 63); shorten it",
            name.len()
        ));
    }
    dns_label(name).map_err(|why| {
        format!(
            "name: {name:?} is not a DNS-1123 label: it {why}; use e.g. {:?}",
            name.to_ascii_lowercase().replace(['_', '.', ' '], "-")
        )
    })
}

/// Where a hook stands: `before` or `after` one cluster step, on the side that runs it.
fn hook_spot(h: &HookSpec) -> Result<HookSpot, String> {
    let (field, anchor, after) = match (&h.before, &h.after) {
        (Some(s), None) => ("before", s, false),
        (None, Some(s)) => ("after", s, true),
        (Some(_), Some(_)) => {
            return Err(
                "give exactly one of `before` and `after`, found both: a hook \
                        stands on one side of one step; keep one (two places need two hooks)"
                    .into(),
            );
        }
        (None, None) => {
            return Err(
                "give exactly one of `before` and `after`, found neither: name the \
                        step the hook stands beside (e.g. `before: demote-volumes`)"
                    .into(),
            );
        }
    };
    let list = |steps: &[Step]| {
        steps
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let step = Step::ALL
        .into_iter()
        .find(|s| s.name() == anchor.as_str())
        .ok_or_else(|| {
            format!(
                "{field}: there is no step {anchor:?}; a hook stands beside a cluster step: \
                 on the source {}; on the target {}",
                list(&STOP),
                list(&START)
            )
        })?;
    let spot = HookSpot {
        anchor: step,
        after,
        side: match h.side {
            HookSide::Source => Role::Source,
            HookSide::Target => Role::Target,
        },
        on_failure: match h.on_failure.unwrap_or_default() {
            HookFailurePolicy::Abort => OnFailure::Abort,
            HookFailurePolicy::Continue => OnFailure::Continue,
        },
    };
    if let Some(why) = spot.problem() {
        let owner = if STOP.contains(&step) {
            Some(Role::Source)
        } else if START.contains(&step) {
            Some(Role::Target)
        } else {
            None
        };
        return Err(match owner {
            Some(owner) if owner != spot.side => {
                format!("side: {why}, or set `side: {}`", side_name(owner))
            }
            _ => format!("{field}: {why}"),
        });
    }
    Ok(spot)
}

/// A hook's action: exactly one of `job`, `exec` and `http`, checked.
fn hook_action(h: &HookSpec) -> Result<HookAction, String> {
    match (&h.job, &h.exec, &h.http) {
        (Some(job), None, None) => job_action(job),
        (None, Some(exec), None) => exec_action(exec),
        (None, None, Some(http)) => http_action(http),
        _ => {
            let given: Vec<&str> = [
                ("job", h.job.is_some()),
                ("exec", h.exec.is_some()),
                ("http", h.http.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            Err(format!(
                "a hook has exactly one action, found {}: give one of `job`, `exec` and \
                 `http` (several things to do make several hooks)",
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given.join(" and ")
                }
            ))
        }
    }
}

fn job_action(job: &JobHookSpec) -> Result<HookAction, String> {
    let t = &job.template;
    let Some(fields) = t.as_object() else {
        return Err(
            "job.template must be an object: a batch/v1 JobTemplateSpec with \
                    `metadata` (labels, annotations) and `spec`"
                .into(),
        );
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "metadata" | "spec"))
    {
        return Err(format!(
            "job.template.{other} is not part of a JobTemplateSpec: give only `metadata` \
             (labels, annotations) and `spec`"
        ));
    }
    if let Some(meta) = fields.get("metadata") {
        let Some(meta) = meta.as_object() else {
            return Err("job.template.metadata must be an object (labels, annotations)".into());
        };
        if let Some(other) = meta
            .keys()
            .find(|k| !matches!(k.as_str(), "labels" | "annotations"))
        {
            return Err(format!(
                "job.template.metadata.{other} is not used: the operator names the Job \
                 <hook>-<failover id> and creates it in the group's namespace; keep only \
                 labels and annotations"
            ));
        }
        for field in ["labels", "annotations"] {
            let Some(map) = meta.get(field) else { continue };
            let strings = map
                .as_object()
                .is_some_and(|m| m.values().all(serde_json::Value::is_string));
            if !strings {
                return Err(format!(
                    "job.template.metadata.{field} must map names to strings (quote numbers \
                     and booleans)"
                ));
            }
        }
        for (key, value) in meta
            .get("labels")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
        {
            label_key(key).map_err(|why| format!("job.template.metadata.labels: {why}"))?;
            let value = value.as_str().unwrap_or_default();
            label_value(value).map_err(|why| {
                format!("job.template.metadata.labels[{key}]: value {value:?} {why}")
            })?;
        }
    }
    let pod = t.pointer("/spec/template/spec");
    let containers = pod
        .and_then(|p| p.get("containers"))
        .and_then(serde_json::Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        return Err(
            "job.template.spec.template.spec.containers is empty: give the Job's pod \
                    at least one container (name, image, command) that runs the hook"
                .into(),
        );
    }
    match pod.and_then(|p| p.get("restartPolicy")) {
        Some(serde_json::Value::String(p)) if p == "Never" || p == "OnFailure" => {}
        found => {
            return Err(format!(
                "job.template.spec.template.spec.restartPolicy must be Never or OnFailure (a \
                 Job's pod cannot restart Always), found {}: set `restartPolicy: Never` (the \
                 Job's backoffLimit then retries) or `OnFailure`",
                found.map_or("none".to_string(), |v| v.to_string())
            ));
        }
    }
    Ok(HookAction::Job {
        template: t.clone(),
    })
}

fn exec_action(exec: &ExecHookSpec) -> Result<HookAction, String> {
    let sel = &exec.selector;
    if sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
    {
        return Err(
            "exec.selector: the selector is empty and would run the command in \
                    every pod of the group's namespace; give matchLabels or \
                    matchExpressions that select the pods to run it in"
                .into(),
        );
    }
    let selector = label_query(sel).map_err(|why| format!("exec.selector: {why}"))?;
    if let Some(c) = &exec.container {
        dns_label(c).map_err(|why| {
            format!(
                "exec.container: {c:?} is not a container name: it {why}; name one of the \
                 pods' containers, or leave container out for the first"
            )
        })?;
    }
    match exec.command.first() {
        None => {
            return Err(
                "exec.command is empty: give the program and its arguments, e.g. \
                        [/bin/sh, -c, \"...\"]"
                    .into(),
            );
        }
        Some(program) if program.trim().is_empty() => {
            return Err(
                "exec.command[0] is empty: it is the program to run (give its path \
                        or name)"
                    .into(),
            );
        }
        Some(_) => {}
    }
    Ok(HookAction::Exec {
        selector,
        container: exec.container.clone(),
        command: exec.command.clone(),
    })
}

fn http_action(http: &HttpHookSpec) -> Result<HookAction, String> {
    if !is_http_url(&http.url) {
        return Err(format!(
            "http.url {:?} is not an http:// or https:// URL: give the full URL, e.g. \
             https://hooks.example.com/failover",
            http.url
        ));
    }
    let method = http.method.clone().unwrap_or_else(|| "POST".into());
    if !is_token(&method) {
        return Err(format!(
            "http.method {method:?} is not an HTTP method: use GET, POST, PUT, PATCH or \
             DELETE (default POST)"
        ));
    }
    for (name, value) in &http.headers {
        if !is_token(name) {
            return Err(format!(
                "http.headers: {name:?} is not a header name: use letters, digits and \
                 !#$%&'*+-.^_`|~ (e.g. Content-Type)"
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "http.headers[{name}]: the value contains a line break or another control \
                 character; remove it"
            ));
        }
    }
    let expected_status = http.expected_status.unwrap_or(200);
    if !(100..=599).contains(&expected_status) {
        return Err(format!(
            "http.expectedStatus {expected_status} is not an HTTP status: give one from 100 \
             to 599 (default 200)"
        ));
    }
    Ok(HookAction::Http(HttpRequest {
        method,
        url: http.url.clone(),
        headers: http.headers.clone(),
        body: http.body.clone(),
        expected_status,
    }))
}

/// An `http://` or `https://` URL with a host and no whitespace.
fn is_http_url(url: &str) -> bool {
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    host.is_some_and(|h| !h.is_empty()) && !url.contains(char::is_whitespace)
}

/// An HTTP token (RFC 9110): a method or a header name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// The timing a group gets when its spec says nothing, in milliseconds: lease 16 s,
/// drift 1 s, fence margin 6 s, volume demotion 2 s, heartbeat every second, retry after
/// 1 s, ten minutes per stage.
pub const DEFAULT_TIMING: Timing = Timing {
    lease_ttl: LEASE * 1000,
    clock_drift_max: DRIFT * 1000,
    fence_margin: FENCE * 1000,
    driver_demotion: DEMOTION * 1000,
    heartbeat_every: HEARTBEAT * 1000,
    retry_after: RETRY * 1000,
    stage_deadline: [STAGE_DEADLINE * 1000; 6],
};

impl Group {
    /// Validate `spec` of the group `namespace/name`, for the operator of `this_cluster`.
    pub fn parse(
        namespace: &str,
        name: &str,
        spec: &FailoverGroupSpec,
        this_cluster: &str,
    ) -> Result<Group, SpecError> {
        let clusters = parse_clusters(&spec.clusters)?;
        let slot = |field: &str, name: &str| {
            slot_of(&clusters, name).ok_or_else(|| SpecError::UnknownCluster {
                field: field.to_string(),
                name: name.to_string(),
                known: clusters.clone(),
            })
        };
        let me = slot("--cluster-name", this_cluster)?;
        let initial_active = match &spec.initial_active {
            Some(name) => slot("spec.initialActive", name)?,
            None => Cluster::A,
        };
        let members = parse_members(namespace, &spec.members)?;
        let timing = parse_timing(spec.timing.as_ref().unwrap_or(&TimingSpec::default()))?;
        if let Some(parallelism) = spec.parallelism
            && !(1..=1000).contains(&parallelism)
        {
            return Err(SpecError::OutOfRange(format!(
                "spec.parallelism must be between 1 and 1000, found {parallelism}"
            )));
        }
        let step_timeout = spec.step_timeout_seconds.unwrap_or(60);
        if !(1..=3600).contains(&step_timeout) {
            return Err(SpecError::OutOfRange(format!(
                "spec.stepTimeoutSeconds must be between 1 and 3600, found {step_timeout}"
            )));
        }
        // A stage's deadline leaves room for a step that times out and its retry.
        for (stage, deadline) in Stage::ALL.iter().zip(timing.stage_deadline) {
            let floor = 2 * step_timeout * 1000;
            if deadline < floor || deadline > 7 * 24 * 3600 * 1000 {
                return Err(SpecError::BadTiming(format!(
                    "the {stage} stage's deadline ({} s) must be at least twice \
                     spec.stepTimeoutSeconds ({} s) and at most 7 days: set \
                     spec.timing.stageDeadlines.{} or stageDeadlineSeconds",
                    deadline / 1000,
                    step_timeout * 2,
                    stage_field(*stage)
                )));
            }
        }
        Ok(Group {
            key: format!("{namespace}/{name}"),
            namespace: namespace.to_string(),
            clusters,
            me,
            initial_active,
            members,
            timing,
            parallelism: spec.parallelism.map(|p| p as usize),
            step_timeout: Duration::from_secs(step_timeout),
            demotion_stops_writes: spec.demotion_stops_writes.unwrap_or(false),
            auto: spec
                .auto_failover
                .as_ref()
                .filter(|a| a.enabled)
                .map(|a| parse_auto(a, &timing))
                .transpose()?,
            hooks: parse_hooks(&spec.hooks, &timing)?,
        })
    }

    /// The fingerprint of the safety-relevant parts of this copy of the spec: the
    /// clusters in slot order, the timing, the members. Both clusters' operators write
    /// theirs into the record; a failover starts only while they agree (a copy edited
    /// in one cluster only, or two versions of the operator reading it differently).
    pub fn print(&self) -> SpecPrint {
        let t = &self.timing;
        let timing = format!(
            "lease={};drift={};margin={};demotion={};heartbeat={};retry={};deadlines={:?}",
            t.lease_ttl,
            t.clock_drift_max,
            t.fence_margin,
            t.driver_demotion,
            t.heartbeat_every,
            t.retry_after,
            t.stage_deadline
        );
        let mut members = String::new();
        for (kind, selectors) in &self.members {
            for s in selectors {
                members.push_str(&format!(
                    "{kind}|{}|{}|{}\n",
                    s.namespace,
                    s.labels,
                    s.names.join(",")
                ));
            }
        }
        SpecPrint {
            clusters: fingerprint(&self.clusters.join("\n")),
            timing: fingerprint(&timing),
            members: fingerprint(&members),
            // What the members find in the cluster is the operator's to add.
            inventory: 0,
            hooks: self.hooks_layout(),
        }
    }

    /// The hooks as the plan places them ([`failover_model::Hooks`]).
    pub fn hooks_layout(&self) -> failover_model::Hooks {
        let spots: Vec<failover_model::HookSpot> = self.hooks.iter().map(|h| h.spot).collect();
        // Validation keeps a group's hooks within the model's maximum.
        failover_model::Hooks::of(&spots).unwrap_or_default()
    }

    /// The hook the plan's `Step::Hook(index)` runs.
    pub fn hook(&self, index: u8) -> Option<&crate::hooks::Hook> {
        self.hooks.get(usize::from(index))
    }

    /// The slot of cluster `name`, if it is one of the group's.
    pub fn slot(&self, name: &str) -> Option<Cluster> {
        slot_of(&self.clusters, name)
    }

    /// The name of the cluster in `slot`.
    pub fn name_of(&self, slot: Cluster) -> &str {
        &self.clusters[slot.index()]
    }

    /// The protocol request a `Failover` stands for, after checking its target.
    pub fn request(&self, id: FailoverId, spec: &FailoverSpec) -> Result<Request, SpecError> {
        let to = self
            .slot(&spec.target_cluster)
            .ok_or_else(|| SpecError::UnknownCluster {
                field: "spec.targetCluster".into(),
                name: spec.target_cluster.clone(),
                known: self.clusters.clone(),
            })?;
        let mode = match spec.mode {
            FailoverMode::Consistency => Mode::Consistency,
            FailoverMode::Uptime => Mode::Uptime,
        };
        Ok(Request { id, to, mode })
    }
}

/// A failover's protocol id from its object's uid: stable across restarts and
/// identical in both clusters' operators.
pub fn failover_id(uid: &str) -> FailoverId {
    fingerprint(uid)
}

/// A stable 64-bit fingerprint of `text`: the same in every process and version, so
/// both clusters' operators compute the same one. (A word-at-a-time FNV-style mix with a
/// final avalanche; not cryptographic: it tells apart honest inputs.)
pub fn fingerprint(text: &str) -> u64 {
    let mut h = Fingerprint::default();
    h.write(text.as_bytes());
    h.finish()
}

/// [`fingerprint`] fed piece by piece.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    /// Add `bytes`, eight at a time (the simulator fingerprints every turn's inventory).
    pub fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // In registers (a copy into a zeroed buffer stalls the load that follows);
            // the length in the top bits tells "a" from "a\0".
            let w = rest
                .iter()
                .rev()
                .fold(0u64, |w, b| (w << 8) | u64::from(*b));
            self.mix(w ^ ((rest.len() as u64) << 59));
        }
    }

    fn mix(&mut self, word: u64) {
        // Each step is a bijection of the state, so inputs that differ in one word
        // always end different; the rotation carries high bits down.
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
    }

    /// The fingerprint of everything added.
    pub fn finish(self) -> u64 {
        // MurmurHash3's finaliser: every input bit moves every output bit.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
}

/// A cluster's [`Identity`] from its `kube-system` namespace UID (or the identity its
/// operator was given explicitly).
pub fn identity(uid: &str) -> Identity {
    fingerprint(uid)
}

fn slot_of(clusters: &[String; 2], name: &str) -> Option<Cluster> {
    Cluster::ALL
        .into_iter()
        .find(|c| clusters[c.index()] == name)
}

fn parse_clusters(names: &[String]) -> Result<[String; 2], SpecError> {
    let [a, b] = names else {
        return Err(SpecError::NotTwoClusters(names.len()));
    };
    for (i, n) in [a, b].into_iter().enumerate() {
        dns_label(n).map_err(|why| SpecError::InvalidName {
            field: format!("spec.clusters[{i}]"),
            value: n.clone(),
            why,
        })?;
    }
    if a == b {
        return Err(SpecError::IdenticalClusters(a.clone()));
    }
    Ok([a.clone(), b.clone()])
}

/// A DNS-1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends.
fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.chars().all(|c| ok(c) || c == '-') {
        return Err("may contain only lowercase letters, digits and '-'".into());
    }
    if !s.starts_with(ok) || !s.ends_with(ok) {
        return Err("must start and end with a lowercase letter or digit".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain (object names): at most 253 characters of dot-separated labels.
fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    s.split('.').try_for_each(dns_label)
}

/// One list of named members: kind, field name, (namespace, name) pairs, and whether
/// the label selector applies to the kind.
type MemberList<'a> = (Kind, &'a str, Vec<(String, String)>, bool);

fn parse_members(
    namespace: &str,
    spec: &MembersSpec,
) -> Result<BTreeMap<Kind, Vec<Selector>>, SpecError> {
    dns_label(namespace).map_err(|why| SpecError::InvalidName {
        field: "metadata.namespace".into(),
        value: namespace.into(),
        why,
    })?;
    let labels = match &spec.selector {
        Some(sel) => label_query(sel).map_err(SpecError::MalformedSelector)?,
        None => LabelQuery::default(),
    };
    let local = |n: &String| (namespace.to_string(), n.clone());
    let flux = |r: &FluxRef| {
        let ns = r.namespace.clone().unwrap_or_else(|| namespace.to_string());
        (ns, r.name.clone())
    };
    let lists: [MemberList; 8] = [
        (
            Kind::Deployment,
            "deployments",
            spec.deployments.iter().map(local).collect(),
            true,
        ),
        (
            Kind::StatefulSet,
            "statefulSets",
            spec.stateful_sets.iter().map(local).collect(),
            true,
        ),
        (
            Kind::CronJob,
            "cronJobs",
            spec.cron_jobs.iter().map(local).collect(),
            true,
        ),
        (
            Kind::VirtualService,
            "virtualServices",
            spec.virtual_services.iter().map(local).collect(),
            true,
        ),
        (
            Kind::Ingress,
            "ingresses",
            spec.ingresses.iter().map(local).collect(),
            true,
        ),
        (
            Kind::VolumeReplication,
            "volumeReplications",
            spec.volume_replications.iter().map(local).collect(),
            true,
        ),
        (
            Kind::Kustomization,
            "kustomizations",
            spec.kustomizations.iter().map(flux).collect(),
            false,
        ),
        (
            Kind::HelmRelease,
            "helmReleases",
            spec.helm_releases.iter().map(flux).collect(),
            false,
        ),
    ];
    let mut members = BTreeMap::new();
    for (kind, field, refs, by_label) in lists {
        let mut seen = BTreeSet::new();
        let mut per_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, (ns, name)) in refs.into_iter().enumerate() {
            dns_subdomain(&name).map_err(|why| SpecError::InvalidName {
                field: format!("spec.members.{field}[{i}]"),
                value: name.clone(),
                why,
            })?;
            dns_label(&ns).map_err(|why| SpecError::InvalidName {
                field: format!("spec.members.{field}[{i}].namespace"),
                value: ns.clone(),
                why,
            })?;
            if !seen.insert((ns.clone(), name.clone())) {
                return Err(SpecError::DuplicateMember {
                    field: field.into(),
                    name,
                });
            }
            per_ns.entry(ns).or_default().push(name);
        }
        let mut selectors: Vec<Selector> = per_ns
            .into_iter()
            .map(|(ns, names)| Selector {
                labels: if by_label && ns == namespace {
                    labels.clone()
                } else {
                    LabelQuery::default()
                },
                namespace: ns,
                names,
            })
            .collect();
        if by_label && !labels.is_empty() && !selectors.iter().any(|s| s.namespace == namespace) {
            selectors.push(Selector {
                namespace: namespace.to_string(),
                labels: labels.clone(),
                names: Vec::new(),
            });
        }
        if !selectors.is_empty() {
            members.insert(kind, selectors);
        }
    }
    if members.is_empty() {
        return Err(SpecError::NoMembers);
    }
    Ok(members)
}

/// Parse a label selector into the query every adapter reads ([`LabelQuery`]), checking
/// keys, values and operators as the API server would.
pub fn label_query(sel: &LabelSelector) -> Result<LabelQuery, String> {
    let mut terms = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        label_key(k)?;
        label_value(v).map_err(|why| format!("matchLabels[{k}]: value {v:?} {why}"))?;
        terms.push(LabelTerm::Equals(k.clone(), v.clone()));
    }
    for (
        i,
        LabelSelectorRequirement {
            key,
            operator,
            values,
        },
    ) in sel.match_expressions.iter().flatten().enumerate()
    {
        label_key(key)?;
        let values = values.clone().unwrap_or_default();
        for v in &values {
            label_value(v).map_err(|why| format!("matchExpressions[{i}]: value {v:?} {why}"))?;
        }
        let need_values = |yes: bool| {
            if yes == values.is_empty() {
                Err(format!(
                    "matchExpressions[{i}]: operator {operator} {} values",
                    if yes { "needs" } else { "takes no" }
                ))
            } else {
                Ok(())
            }
        };
        let term = match operator.as_str() {
            "In" => {
                need_values(true)?;
                LabelTerm::In(key.clone(), values)
            }
            "NotIn" => {
                need_values(true)?;
                LabelTerm::NotIn(key.clone(), values)
            }
            "Exists" => {
                need_values(false)?;
                LabelTerm::Exists(key.clone())
            }
            "DoesNotExist" => {
                need_values(false)?;
                LabelTerm::DoesNotExist(key.clone())
            }
            other => {
                return Err(format!(
                    "matchExpressions[{i}]: unknown operator {other:?} \
                     (use In, NotIn, Exists or DoesNotExist)"
                ));
            }
        };
        terms.push(term);
    }
    if terms.is_empty() {
        return Err("the selector is empty and would select everything; give \
                    matchLabels or matchExpressions, or leave selector out"
            .into());
    }
    Ok(LabelQuery::new(terms))
}

fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        dns_subdomain(p).map_err(|why| format!("label key {key:?}: prefix {why}"))?;
    }
    if name.is_empty() {
        return Err(format!("label key {key:?}: name is empty"));
    }
    label_value(name).map_err(|why| format!("label key {key:?}: name {why}"))
}

/// A label value: at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !v.chars().all(|c| alnum(c) || "-_.".contains(c)) {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    if !v.starts_with(alnum) || !v.ends_with(alnum) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

fn parse_timing(t: &TimingSpec) -> Result<Timing, SpecError> {
    let ms = |v: Option<u64>, default: u64| -> Time { v.unwrap_or(default).saturating_mul(1000) };
    let timing = Timing {
        lease_ttl: ms(t.lease_seconds, LEASE),
        clock_drift_max: ms(t.max_clock_drift_seconds, DRIFT),
        fence_margin: ms(t.fence_margin_seconds, FENCE),
        driver_demotion: ms(t.driver_demotion_seconds, DEMOTION),
        heartbeat_every: ms(t.heartbeat_seconds, HEARTBEAT),
        retry_after: ms(t.retry_seconds, RETRY),
        stage_deadline: {
            let every = t.stage_deadline_seconds.unwrap_or(STAGE_DEADLINE);
            let per = t.stage_deadlines.clone().unwrap_or_default().values();
            per.map(|v| ms(v, every))
        },
    };
    check_timing(&timing).map_err(SpecError::BadTiming)?;
    Ok(timing)
}

/// Validate `spec.autoFailover` against the group's timing.
fn parse_auto(a: &AutoFailoverSpec, timing: &Timing) -> Result<AutoPolicy, SpecError> {
    let bad = |why: String| SpecError::BadAutoFailover(why);
    let window = a.window_seconds.unwrap_or(AUTO_WINDOW) * 1000;
    let trigger = TriggerPolicy {
        failures_required: a.failures_required.unwrap_or(AUTO_FAILURES),
        window,
        min_interval: a.min_interval_seconds.unwrap_or(AUTO_INTERVAL) * 1000,
    }
    .validate()
    .map_err(|e| bad(e.to_string()))?;
    let floor = timing.heartbeat_every + timing.retry_after;
    let heartbeat_age = a
        .heartbeat_age_seconds
        .map_or(2 * timing.heartbeat_every + timing.retry_after, |s| {
            s * 1000
        });
    if heartbeat_age < floor || heartbeat_age >= timing.lease_ttl {
        return Err(bad(format!(
            "heartbeatAgeSeconds ({}) must be at least heartbeatSeconds + retrySeconds ({}), \
             or one missed heartbeat would count, and below leaseSeconds ({})",
            Secs(heartbeat_age),
            Secs(floor),
            Secs(timing.lease_ttl)
        )));
    }
    let probe = match &a.probe {
        None => None,
        Some(p) => {
            if !is_http_url(&p.url) {
                return Err(bad(format!(
                    "probe.url {:?} is not an http:// or https:// URL",
                    p.url
                )));
            }
            let expected_status = p.expected_status.unwrap_or(200);
            if !(100..=599).contains(&expected_status) {
                return Err(bad(format!(
                    "probe.expectedStatus {expected_status} is not an HTTP status"
                )));
            }
            let timeout = p.timeout_seconds.unwrap_or(2);
            if !(1..=30).contains(&timeout) {
                return Err(bad(format!(
                    "probe.timeoutSeconds must be between 1 and 30, found {timeout}"
                )));
            }
            Some(Probe {
                url: p.url.clone(),
                expected_status,
                timeout: Duration::from_secs(timeout),
            })
        }
    };
    Ok(AutoPolicy {
        trigger,
        mode: match a.mode.unwrap_or_default() {
            FailoverMode::Consistency => Mode::Consistency,
            FailoverMode::Uptime => Mode::Uptime,
        },
        heartbeat_age,
        probe,
    })
}

/// The field of `spec.timing.stageDeadlines` for `stage`.
fn stage_field(stage: Stage) -> &'static str {
    match stage {
        Stage::Initialization => "initialization",
        Stage::SourcePreparation => "sourcePreparation",
        Stage::VolumeDemotion => "volumeDemotion",
        Stage::VolumePromotion => "volumePromotion",
        Stage::TargetActivation => "targetActivation",
        Stage::Completion => "completion",
    }
}

/// The relations between timing values the protocol's safety and liveness rest on.
pub fn check_timing(t: &Timing) -> Result<(), String> {
    let s = |v: Time| Secs(v);
    if t.lease_ttl == 0 || t.heartbeat_every == 0 || t.retry_after == 0 {
        return Err("leaseSeconds, heartbeatSeconds and retrySeconds must be positive".into());
    }
    if t.fence_margin == 0 || t.fence_lead() >= t.lease_ttl {
        return Err(format!(
            "fenceMarginSeconds ({}) must be positive, and fenceMarginSeconds + \
             driverDemotionSeconds ({}) below leaseSeconds ({})",
            s(t.fence_margin),
            s(t.fence_lead()),
            s(t.lease_ttl)
        ));
    }
    // The fence's worst case, from the moment the lease runs low: a DynamoDB call or
    // a pause of the loop already under way (a quarter of the margin: the store call
    // deadline, and the loop's poll of 1 s), the observation (an eighth) and the five
    // fence steps (an eighth each). The deadlines are those shares, so the margin must
    // leave a pause its quarter.
    let poll = crate::executor::POLL.as_millis() as Time;
    if t.fence_margin < 4 * poll {
        return Err(format!(
            "fenceMarginSeconds ({}) must be at least {}: a quarter of it covers a pause of \
             the operator's loop ({} s), the rest the observation and the five fence steps",
            s(t.fence_margin),
            s(4 * poll),
            s(poll)
        ));
    }
    // A healthy operator never fences: between two heartbeats the loop may spend the
    // interval, one observation (margin/8) and one store call (margin/4); one heartbeat
    // may fail (retry after retrySeconds, another call).
    let eighth = t.fence_margin / 8;
    let gap = t.heartbeat_every + t.retry_after + eighth + 4 * eighth;
    let lead = t.fence_lead();
    if gap >= t.lease_ttl - lead {
        let room = (t.lease_ttl - lead).saturating_sub(eighth * 5 + 1);
        return Err(format!(
            "heartbeatSeconds ({}) + retrySeconds ({}) + the call deadlines ({}: an \
             observation and two DynamoDB calls, shares of fenceMarginSeconds) must be below \
             leaseSeconds - fenceMarginSeconds - driverDemotionSeconds ({}), so that a missed \
             heartbeat is retried before the cluster fences itself: raise leaseSeconds to at \
             least {}, or make heartbeatSeconds + retrySeconds at most {}",
            s(t.heartbeat_every),
            s(t.retry_after),
            s(eighth * 5),
            s(t.lease_ttl - lead),
            s((gap + lead + 1000).div_ceil(1000) * 1000),
            s(room)
        ));
    }
    if t.clock_drift_max >= t.lease_ttl {
        return Err(format!(
            "maxClockDriftSeconds ({}) must be below leaseSeconds ({})",
            s(t.clock_drift_max),
            s(t.lease_ttl)
        ));
    }
    Ok(())
}

struct Secs(Time);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{:.3}", self.0 as f64 / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hook_names_fit_their_jobs_names() {
        assert_eq!(hook_name("quiesce"), Ok(()));
        assert_eq!(hook_name(&"q".repeat(HOOK_NAME_MAX)), Ok(()));
        let longest = crate::hooks::job_name(&"q".repeat(HOOK_NAME_MAX), u64::MAX);
        assert_eq!(longest.len(), 63, "nothing of the name is cut");
        assert!(hook_name(&"q".repeat(HOOK_NAME_MAX + 1)).is_err());
        assert!(hook_name("-q").is_err());
        assert!(hook_name("").is_err());
    }

    #[test]
    fn spec_http_urls_and_tokens() {
        for ok in ["http://a", "https://a.b:8443/x?y#z", "http://[::1]:80/"] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "a.b",
            "https://",
            "http:///x",
            "ftp://a",
            "https://a b",
            "HTTP://a",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
        for ok in ["GET", "POST", "M-SEARCH", "Content-Type", "X_A"] {
            assert!(is_token(ok), "{ok}");
        }
        for bad in ["", "PO ST", "GET\r\n", "a:b", "(x)"] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
