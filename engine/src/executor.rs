//! The executor: one operator's loop. Each turn it observes its cluster, asks
//! [`failover_model::decide`] what to do next, and does exactly that: a consistent read,
//! a conditional write, one task, or a wait. Progress is journaled in the store by the
//! writes the model decides, so an operator restarted with empty memory (a crash, a
//! dropped future, a new pod) resumes from the journal: effects already made are seen
//! in the cluster and not made again.
//!
//! The executor makes no protocol decision of its own. What it adds is mechanics the
//! model abstracts: how long to wait (the model says "until this time" or "until
//! something changes"), per-step timeouts, retry pacing after a Kubernetes error, and
//! tracing.

use std::time::Duration;

use failover_model::{
    Action, ClusterState, Decision, Effect, EffectSet, FailoverId, Identity, Inputs, Instance,
    Memory, Op, Outcome, PlanKind, Record, Reply, Request, Stage, Step, StepKind, Time, Token,
    Trace, Variant, VolumeRole, Wake, Write, core::decide::write, decide, lease_ok, refusal, stamp,
};
use futures::FutureExt;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::effects::{EffectError, StageName, carry_out, retried};
use crate::hooks::{Done, EffectTask, HookTask, Task, TaskError};
use crate::observe::{Members, fold, unknown};
use crate::ports::{Clock, ClusterError, ClusterPort, FieldChange, StorePort, StoreUnavailable};
use crate::spec::Group;

/// How often a waiting operator looks at its cluster again even without a watch event.
pub const POLL: Duration = Duration::from_millis(1000);

/// After a watch event, how long the executor waits for more before it looks at the
/// cluster (at most until its next wake-up time).
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// How often an operator reads the record while a failover in flight waits for the
/// other cluster's step (the store has no watch: without this, the hand-off would be
/// seen only at the next heartbeat, up to `heartbeatSeconds` later).
pub const PEER_POLL: Duration = Duration::from_millis(100);

/// What one turn did.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// Monotonic time when the decision was made.
    pub now: Time,
    /// Wall time then.
    pub wall: Time,
    /// What the operator observed of its cluster.
    pub observed: ClusterState,
    /// The fingerprint of the spec and inventory the decision was made with
    /// ([`Operator::print`] then: a write later in the turn may change it).
    pub spec: failover_model::SpecPrint,
    /// The decision.
    pub decision: Decision,
    /// What came of it.
    pub result: TurnResult,
    /// Lease keeping done while this turn's Kubernetes call was in progress: each
    /// turn (decided with `busy`) with the operator's memory after it. The last one may
    /// be the self-fence that abandoned the call ([`TurnResult::Abandoned`]).
    pub during: Vec<(Turn, Memory)>,
}

/// The outcome of executing a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnResult {
    /// A read: the record, or the store was unavailable.
    Read(Result<Option<Record>, StoreUnavailable>),
    /// A write and the store's reply.
    Wrote(Reply),
    /// A task ran and changed these fields.
    Changed(Vec<FieldChange>),
    /// A task failed or timed out; it is retried when the model asks again.
    Failed(EffectError),
    /// A self-fence attempt ran every one of its steps, in order, past failures: what they changed,
    /// and the steps that failed or timed out (retried on the next attempt).
    Fenced {
        /// Changes made by the steps that succeeded.
        changes: Vec<FieldChange>,
        /// The steps that failed.
        failed: Vec<EffectError>,
    },
    /// Nothing to do now.
    Waited(Wake),
    /// The call was abandoned for the self-fence once the lease ran low (the fence is
    /// the last of [`Turn::during`]), or because another process took this cluster's
    /// slot (no fence: this process stops).
    Abandoned,
    /// A start step was not sent: the lease ran low between the decision and the call
    /// (the process was paused). The model decides again.
    NotSent,
    /// A hook ran: what it reported, or why it failed (the model hears which).
    Hooked(HookReport),
}

/// One run of a hook, as the operator that ran it reports it (logs, status, Events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookReport {
    /// The failover it ran for.
    pub id: FailoverId,
    /// The hook's index in the group's hooks.
    pub index: u8,
    /// The hook's name.
    pub name: String,
    /// What it reported (success), or why it failed.
    pub result: Result<String, String>,
    /// Its failure only warns (`onFailure: continue`).
    pub continues: bool,
}

/// How a failover request ended, as this operator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It ran to the end: completed or aborted (the history item).
    Finished(Outcome),
    /// The target already was the active cluster: the request ended at once, as a no-op
    /// in the history.
    AlreadyActive,
    /// The record refused the request: another request (this id) held the group,
    /// pending or in flight. Nothing changed; the requester may ask again once it ended.
    Held(FailoverId),
    /// It never started: the group is invalid in this cluster ([`Operator::validate`]).
    /// This operator changed nothing. (A failover the record shows under way is resumed
    /// even so; the peer's operator validates its own cluster.)
    Refused(GroupInvalid),
    /// Another process of this cluster's operator took the cluster's slot in the record
    /// (a new leader): this one stopped and changes nothing any more.
    Replaced,
}

/// Why a group cannot be failed over from or to this cluster, found by
/// [`Operator::validate`] before any failover: each problem says what is wrong and how
/// to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("group {group} is invalid in this cluster: {}", problems.join("; "))]
pub struct GroupInvalid {
    /// The group's key.
    pub group: String,
    /// What is wrong, one entry per kind or object.
    pub problems: Vec<String>,
}

/// The inventory of `members`: per kind the group selects, how many objects it found and
/// their names, as one fingerprint ([`failover_model::SpecPrint::inventory`]).
/// Both clusters run the same application, so their inventories agree unless one
/// cluster's selection misses something (a VolumeReplication without the group's label
/// "demotes" nothing while the target promotes its twin).
pub fn inventory(members: &Members) -> u64 {
    // (No text formatting, no sorting: the simulator computes one on every turn.)
    use crate::spec::Fingerprint;
    let mut h = Fingerprint::default();
    for (kind, found) in members {
        h.write(kind.name().as_bytes());
        h.write(&(found.len() as u64).to_le_bytes());
        // The names as a set, whatever order the cluster listed them in: the sum of
        // each name's own fingerprint.
        let names = found.iter().fold(0u64, |sum, m| {
            let mut one = Fingerprint::default();
            one.write(m.object.namespace.as_bytes());
            one.write(&[0]);
            one.write(m.object.name.as_bytes());
            sum.wrapping_add(one.finish())
        });
        h.write(&names.to_le_bytes());
    }
    h.finish()
}

/// The problems an operator logged, so each is logged once.
#[derive(Debug, Default)]
struct Reported {
    identity: Option<String>,
    drift: Vec<&'static str>,
}

/// What [`Operator::init`] found when it was to create the group's record.
enum Created {
    /// Created now, or found existing: the record.
    Record(Box<Record>),
    /// Not created: the cluster kept a trace of a record, so the group had one.
    Not(Trace),
}

/// A callback given every decision before it is carried out.
pub type DecisionHook = Box<dyn FnMut(&Decision) + Send + Sync>;

/// One cluster's operator for one group.
pub struct Operator<C: ClusterPort, S, K> {
    cluster: C,
    store: S,
    clock: K,
    group: Group,
    variant: Variant,
    memory: Memory,
    request: Option<Request>,
    withdraw: Option<FailoverId>,
    refused: Option<(FailoverId, FailoverId)>,
    /// The trace this process last kept in its cluster.
    traced: Option<Trace>,
    /// The identity of the cluster this operator runs in: given (`--cluster-id`), or
    /// read from the cluster before the first decision.
    identity: Option<Identity>,
    /// The identity and spec problems already reported (each is logged once).
    reported: Reported,
    /// The fingerprint of this operator's copy of the spec ([`Group::print`]).
    print: failover_model::SpecPrint,
    /// The inventory of the members this operator found last ([`inventory`]).
    inventory: Option<u64>,
    /// The members this turn's observation found (`None` if the cluster could not be
    /// read): an effect of the same turn changes those not yet set, without listing
    /// them again.
    listed: Option<Members>,
    initialized: bool,
    hook: Option<DecisionHook>,
    /// The failover this operator flagged `needs-operator`, while the record shows it so.
    needs_operator: Option<NeedsOperator>,
    /// The highest fencing token this process saw in the record.
    max_token: Token,
    /// An assertion failed ([`Operator::halted`]): the loop stops for this group.
    halted: Option<String>,
    /// The hook runs of this process for the failover in flight, oldest first
    /// ([`Operator::hook_reports`]).
    hook_reports: Vec<HookReport>,
    /// When (monotonic) this process last wrote its volumes' demotion, until the
    /// cluster reports them secondary.
    demoted_at: Option<Time>,
    /// The csi-addons driver's last demotion took longer than `driverDemotionSeconds`:
    /// how long, as this operator saw it ([`Operator::slow_demotion`]).
    slow_demotion: Option<Time>,
    /// Why the last observation of this cluster failed, if it did
    /// ([`Operator::observe_problem`]).
    observe_error: Option<String>,
}

/// A failover this operator flagged `needs-operator` (its stage's deadline passed after
/// the target may have promoted): what is stuck, for the person who must act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedsOperator {
    /// The failover.
    pub id: FailoverId,
    /// The stage whose deadline passed.
    pub stage: Stage,
    /// The step that did not complete.
    pub step: Step,
    /// The members that do not satisfy the step, as `Kind namespace/name` (empty if the
    /// cluster could not be read, or the step waits for the record, not the cluster).
    pub objects: Vec<String>,
}

impl<C: ClusterPort, S: StorePort, K: Clock> Operator<C, S, K> {
    /// An operator with empty memory (as after a start), as a new process with a random
    /// instance id.
    pub fn new(cluster: C, store: S, clock: K, group: Group) -> Self {
        Self::with_variant(cluster, store, clock, group, Variant::Correct)
    }

    /// An operator running a protocol variant (the simulator's broken ones).
    pub fn with_variant(cluster: C, store: S, clock: K, group: Group, variant: Variant) -> Self {
        let print = group.print();
        let halted = plan_problem(variant, group.hooks_layout());
        Operator {
            cluster,
            store,
            clock,
            group,
            variant,
            memory: Memory::started(random_instance()),
            request: None,
            withdraw: None,
            refused: None,
            traced: None,
            identity: None,
            reported: Reported::default(),
            print,
            inventory: None,
            listed: None,
            initialized: false,
            needs_operator: None,
            max_token: 0,
            halted,
            hook: None,
            hook_reports: Vec::new(),
            demoted_at: None,
            slow_demotion: None,
            observe_error: None,
        }
    }

    /// The hooks this process ran for the failover in flight (or the last one), oldest
    /// first: for the status and Events.
    pub fn hook_reports(&self) -> &[HookReport] {
        &self.hook_reports
    }

    /// Call `hook` with every decision just before it is carried out, including the
    /// lease keeping done while a call is in progress (the simulator's audit).
    pub fn on_decision(&mut self, hook: impl FnMut(&Decision) + Send + Sync + 'static) {
        self.hook = Some(Box::new(hook));
    }

    /// The same operator as process `instance` (the simulator's ids are deterministic).
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.memory = Memory::started(instance);
        self
    }

    /// The same operator for a cluster whose identity is given explicitly (the
    /// operator's `--cluster-id`) instead of read from its `kube-system` namespace.
    pub fn with_cluster_id(mut self, cluster_id: &str) -> Self {
        self.identity = Some(crate::spec::identity(cluster_id));
        self
    }

    /// The fingerprint of this operator's copy of the spec and of the members it found
    /// last (its inventory; until its first observation, the one the record holds from
    /// an earlier process), as it writes it into the record.
    pub fn print(&self) -> failover_model::SpecPrint {
        let recorded = || {
            let view = self.memory.view.as_ref()?;
            Some(view.spec[self.group.me.index()]?.inventory)
        };
        failover_model::SpecPrint {
            inventory: self.inventory.or_else(recorded).unwrap_or_default(),
            ..self.print
        }
    }

    /// The identity this operator proves its slot with, once known.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    /// Why this operator does not act as its configured cluster, if it does not: the
    /// record binds its slot to another cluster's identity (it is configured as the wrong
    /// cluster: `--cluster-name`, or this cluster's copy of `spec.clusters` in another
    /// order), or another cluster's operator claimed this operator's slot.
    pub fn identity_problem(&self) -> Option<String> {
        let me = self.group.me;
        let name = self.group.name_of(me);
        if let Some(bound) = self.memory.misbound {
            return Some(format!(
                "this operator is configured as cluster {name} (slot {me} of group {}), but the \
                 group's record binds that slot to another cluster (identity {bound:016x}; this \
                 cluster's is {:016x}). It changes nothing but keeping this cluster stopped. Fix \
                 --cluster-name, or the order of spec.clusters in this cluster's copy of the \
                 group, and restart the operator",
                self.group.key,
                self.identity.unwrap_or_default()
            ));
        }
        let view = self.memory.view.as_ref()?;
        let other = view.contested[me.index()]?;
        Some(format!(
            "an operator in another cluster (identity {other:016x}) tried to claim slot {me} \
             ({name}) of group {}, which is bound to this cluster: that operator is \
             configured as the wrong cluster (its --cluster-name, or the order of \
             spec.clusters in its copy of the group) and keeps its own cluster stopped",
            self.group.key
        ))
    }

    /// The parts of the spec in which the two clusters' copies differ, as the record
    /// shows them (empty if they agree): no planned failover starts until they do.
    pub fn drift(&self) -> Vec<&'static str> {
        let Some(view) = self.memory.view.as_ref() else {
            return Vec::new();
        };
        match view.spec {
            [Some(a), Some(b)] => a.differs(&b),
            _ => Vec::new(),
        }
    }

    /// Log each identity or drift problem once, when it appears.
    fn report_problems(&mut self) {
        let identity = self.identity_problem();
        if identity.is_some() && identity != self.reported.identity {
            tracing::error!(group = %self.group.key, "{}", identity.as_deref().unwrap_or(""));
        }
        self.reported.identity = identity;
        let drift = self.drift();
        if !drift.is_empty() && drift != self.reported.drift {
            tracing::error!(
                group = %self.group.key,
                differs = %drift.join(", "),
                "the two clusters' copies of the group's spec differ in {}: no planned \
                 failover starts until they agree (apply the same spec in both clusters; a \
                 forced failover and the self-fence stay available)",
                drift.join(", ")
            );
        }
        self.reported.drift = drift;
    }

    /// Time the csi-addons driver's demotion, a deployment rule the engine cannot
    /// enforce: from this process's demotion write to the first observation of every
    /// volume secondary (an upper bound: observations come at least every poll). Longer
    /// than `driverDemotionSeconds` is kept as a problem until a demotion within it.
    fn time_demotion(&mut self, now: Time, observed: &ClusterState) {
        let Some(at) = self.demoted_at else { return };
        if observed.volume_spec == VolumeRole::Primary {
            // Promoted again before the driver reported (a roll back): nothing measured.
            self.demoted_at = None;
            return;
        }
        let secondary = observed.volume_status == VolumeRole::Secondary
            && observed.agreement.volume_status == failover_model::Agreement::All;
        if !secondary {
            return;
        }
        self.demoted_at = None;
        let took = now.saturating_sub(at);
        let bound = self.group.timing.driver_demotion;
        if took > bound {
            warn!(
                group = %self.group.key,
                took_ms = took,
                bound_ms = bound,
                "the csi-addons driver took longer to demote than driverDemotionSeconds"
            );
            self.slow_demotion = Some(took);
        } else {
            self.slow_demotion = None;
        }
    }

    /// Why the last observation of this cluster failed (a kind whose CRD is not
    /// served, an API server that does not answer...), while it fails: the status
    /// says so, since nothing can finish meanwhile.
    pub fn observe_problem(&self) -> Option<String> {
        let error = self.observe_error.as_ref()?;
        Some(format!(
            "cannot read this cluster's members, so the operator assumes the worst (they may \
             run; no step can finish): {error}"
        ))
    }

    /// The deployment rule on the driver's demotion time, broken the last time this
    /// process watched a demotion: what it saw and what to do.
    pub fn slow_demotion(&self) -> Option<String> {
        let took = self.slow_demotion?;
        let bound = self.group.timing.driver_demotion;
        Some(format!(
            "the csi-addons driver took up to {:.1} s to demote this cluster's volumes, more \
             than driverDemotionSeconds ({:.1} s): a self-fence's demotion could end after \
             the peer may force; raise spec.timing.driverDemotionSeconds to at least {} (and \
             leaseSeconds with it), or find why the storage is slow",
            took as f64 / 1000.0,
            bound as f64 / 1000.0,
            took.div_ceil(1000)
        ))
    }

    /// The operator's memory (lost on restart).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The members this operator's last observation found (`None` if the cluster could
    /// not be read): what [`crate::observe::step_progress`] counts.
    pub fn listed(&self) -> Option<&Members> {
        self.listed.as_ref()
    }

    /// Another process took this cluster's slot: this one stopped for good
    /// ([`Operator::run`] returns).
    pub fn replaced(&self) -> bool {
        self.memory.superseded && self.variant != Variant::StaleLeader
    }

    /// The group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// What this cluster kept of the group's record ([`Trace`]).
    pub async fn recall_trace(&self) -> Result<Option<Trace>, ClusterError> {
        self.cluster.recall(&self.group.key).await
    }

    /// The request this cluster has (its `Failover` object): the operator writes it into
    /// the record, which accepts it, ends it at once as a no-op, or refuses it
    /// ([`Operator::refused`]).
    pub fn set_request(&mut self, request: Option<Request>) {
        self.request = request;
    }

    /// A request of this cluster that was withdrawn (its object deleted): withdrawn from
    /// the record while it is pending there.
    pub fn set_withdraw(&mut self, id: Option<FailoverId>) {
        self.withdraw = id;
    }

    /// The record refused request `id`: the request that held the group then. A refused
    /// request is written no more (its object's status says so for good).
    pub fn refused(&self, id: FailoverId) -> Option<FailoverId> {
        self.refused
            .filter(|(refused, _)| *refused == id)
            .map(|(_, holder)| holder)
    }

    /// Create the group's record if it does not exist yet and this cluster kept no
    /// trace of one (done once, before the first turn; a store that is unavailable then
    /// is retried by the protocol's own reads). A group whose cluster kept a trace had
    /// a record: a missing one is never created again here ([`Operator::record_missing`]).
    pub async fn init(&mut self) -> Result<Record, StoreUnavailable> {
        let trace = match self.create_unless_traced().await? {
            Created::Record(record) => return Ok(*record),
            Created::Not(trace) => trace,
        };
        self.initialized = true;
        match self.store_call(self.store.read(&self.group.key)).await? {
            Some(record) => Ok(record),
            None => {
                self.report_missing(trace);
                Err(StoreUnavailable(format!(
                    "the record of group {} is missing; not created again",
                    self.group.key
                )))
            }
        }
    }

    /// Create the group's record (unless it exists) if this cluster kept no trace of
    /// one; the trace otherwise. A trace that cannot be read creates nothing.
    async fn create_unless_traced(&mut self) -> Result<Created, StoreUnavailable> {
        match self.cluster.recall(&self.group.key).await {
            Ok(Some(trace)) => Ok(Created::Not(trace)),
            Ok(None) => {
                let active = self.group.initial_active;
                let record = self.create_record(active, self.clock.now()).await?;
                self.initialized = true;
                Ok(Created::Record(Box::new(record)))
            }
            Err(e) => Err(StoreUnavailable(format!(
                "cannot tell whether group {} had a record (its trace in the cluster: {e}); \
                 not creating one",
                self.group.key
            ))),
        }
    }

    /// The one place a record is created: the group's, with `active` serving, unless
    /// one exists (then that one), within the store call deadline.
    async fn create_record(
        &self,
        active: failover_model::Cluster,
        at: Time,
    ) -> Result<Record, StoreUnavailable> {
        self.store_call(self.store.init(&self.group.key, active, at))
            .await
    }

    /// The store has no record of this group although this cluster kept a trace of one
    /// (the last token and active cluster it saw): the record was deleted or the table
    /// re-created. It is never created again silently; until the explicit re-creation
    /// (`kubectl failover recreate-record`, which starts above every token either cluster
    /// saw), the store counts as unavailable, so the lease runs out and the cluster
    /// fences itself.
    pub fn record_missing(&self) -> bool {
        self.memory.missing
    }

    fn report_missing(&self, trace: Trace) {
        tracing::error!(
            group = %self.group.key,
            last_token = trace.token,
            last_active = %self.group.name_of(trace.active),
            "the group's record is missing from DynamoDB (deleted, or the table re-created); \
             it is not created again silently. This cluster fences itself once its lease \
             runs out. Re-create the record with `kubectl failover recreate-record`, which \
             starts above the highest token either cluster saw"
        );
    }

    /// Keep a trace of the record this process sees in its cluster (the newest wins
    /// there); a failure is retried after the next change.
    async fn keep_trace(&mut self) {
        let trace = match (self.memory.view.as_ref(), self.memory.missing) {
            (Some(v), _) => v.trace(),
            // Found missing: the last trace, marked (the re-creation needs the mark from
            // both clusters).
            (None, true) => {
                let last = match self.traced {
                    Some(t) => Some(t),
                    None => self.cluster.recall(&self.group.key).await.ok().flatten(),
                };
                let Some(last) = last else {
                    return;
                };
                Trace {
                    missing: true,
                    ..last
                }
            }
            (None, false) => return,
        };
        if self.traced == Some(trace) {
            return;
        }
        match self.cluster.remember(&self.group.key, trace).await {
            Ok(()) => self.traced = Some(trace),
            Err(e) => warn!(error = %e, "cannot keep the record's trace in the cluster"),
        }
    }

    /// Every member of the group in this cluster, by kind.
    pub async fn members(&self) -> Result<Members, ClusterError> {
        let mut out = Members::new();
        for (kind, selectors) in &self.group.members {
            let mut all = Vec::new();
            for s in selectors {
                all.extend(retried(|| self.cluster.members(*kind, s)).await?);
            }
            if selectors.len() > 1 {
                all.sort_by(|a, b| a.object.cmp(&b.object));
                all.dedup_by(|a, b| a.object == b.object);
            }
            out.insert(*kind, all);
        }
        Ok(out)
    }

    /// Check the group against this cluster before any failover: every kind the group
    /// selects is served (its CRD installed) and every object the spec names exists.
    /// A kind found missing only during a self-fence would leave that fence blind, so
    /// it is reported here, with the fix. An API server that cannot be reached now is
    /// no verdict: the check passes and the protocol's own observation copes.
    pub async fn validate(&self) -> Result<(), GroupInvalid> {
        let mut problems = Vec::new();
        let mut workloads = 0;
        let mut unknown = false;
        for (kind, selectors) in &self.group.members {
            for s in selectors {
                match retried(|| self.cluster.members(*kind, s)).await {
                    Err(ClusterError::Invalid(_, why)) => problems.push(format!(
                        "{kind} in namespace {}: {why}; fix that (a kind not served: install \
                         its CRD in this cluster; access denied: grant the operator's role \
                         access to it) or remove {kind} from spec.members",
                        s.namespace
                    )),
                    Err(ClusterError::NotFound(o)) => problems.push(format!(
                        "{o} is named in spec.members but does not exist in this cluster; \
                         create it or remove it from spec.members"
                    )),
                    Ok(members) => {
                        if kind.is_workload() {
                            workloads += members.len();
                        }
                        if !self.group.demotion_stops_writes {
                            problems.extend(grace_problems(&self.group, &members));
                        }
                    }
                    Err(e) => {
                        unknown = true;
                        warn!(error = %e, %kind, "cannot validate the group now");
                    }
                }
            }
        }
        // A group that selects no workload here would "fail over" moving nothing.
        if workloads == 0 && !unknown {
            problems.push(
                "spec.members selects no Deployment or StatefulSet in this cluster: a \
                 failover would move nothing; give the application's workloads the group's \
                 label (spec.members.selector) or name them in spec.members"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GroupInvalid {
                group: self.group.key.clone(),
                problems,
            })
        }
    }

    /// The model's view of this cluster; when the cluster cannot be read, the
    /// conservative [`unknown`] state (everything may run, nothing is done).
    pub async fn observe(&self) -> ClusterState {
        self.observe_listed().await.0
    }

    /// [`Self::observe`], and what it found, or why the cluster could not be read.
    async fn observe_listed(&self) -> (ClusterState, Result<Members, ClusterError>) {
        let deadline = observe_deadline(&self.group);
        let members = bounded(&self.clock, deadline, self.members())
            .await
            .unwrap_or_else(|| {
                Err(ClusterError::Unavailable(format!(
                    "no observation within {} ms",
                    deadline.as_millis()
                )))
            });
        match members {
            Ok(m) => (fold(&m), Ok(m)),
            Err(e) => {
                warn!(error = %e, "cannot observe the cluster; assuming the worst");
                (self.unknown(), Err(e))
            }
        }
    }

    /// Keep what an observation of the turn found: the members and their inventory, or
    /// why the cluster could not be read.
    fn keep_listed(&mut self, listed: Result<Members, ClusterError>) {
        match listed {
            Ok(found) => {
                self.inventory = Some(inventory(&found));
                self.listed = Some(found);
                self.observe_error = None;
            }
            Err(e) => {
                self.listed = None;
                self.observe_error = Some(e.to_string());
            }
        }
    }

    /// The conservative [`unknown`] state of the group's kinds in this cluster.
    fn unknown(&self) -> ClusterState {
        unknown(&self.group.members.keys().copied().collect::<Vec<_>>())
    }

    /// The decision the model makes now (monotonic `now`, `wall` time), with a call of
    /// the operator's work in progress or not.
    pub fn decide(&self, now: Time, wall: Time, cluster: &ClusterState, busy: bool) -> Decision {
        decide(&self.inputs(now, wall, cluster, busy), &self.memory)
    }

    fn inputs<'a>(
        &'a self,
        now: Time,
        wall: Time,
        cluster: &'a ClusterState,
        busy: bool,
    ) -> Inputs<'a> {
        Inputs {
            me: self.group.me,
            identity: self.identity.unwrap_or_default(),
            spec: self.print(),
            now,
            wall,
            busy,
            cluster,
            request: self
                .request
                .filter(|r| self.refused(r.id).is_none() && self.withdraw != Some(r.id)),
            withdraw: self.withdraw,
            timing: &self.group.timing,
            variant: self.variant,
        }
    }

    /// One turn: observe, decide, execute. Never waits for time to pass (see [`Self::pause`]).
    pub async fn turn(&mut self) -> Turn {
        // Nothing is decided before this cluster's identity is known: the claim proves it.
        if self.identity.is_none() {
            match self.cluster.identity().await {
                Ok(uid) => self.identity = Some(crate::spec::identity(&uid)),
                Err(e) => {
                    warn!(error = %e, "cannot read this cluster's identity yet");
                    let (now, wall) = self.clocks();
                    let wake = Wake::At(now + self.group.timing.retry_after);
                    return Turn {
                        now,
                        wall,
                        observed: self.unknown(),
                        spec: self.print(),
                        decision: Decision {
                            action: Action::Wait(wake),
                            purpose: failover_model::Purpose::Claim,
                            stage: None,
                            step: None,
                        },
                        result: TurnResult::Waited(wake),
                        during: Vec::new(),
                    };
                }
            }
        }
        if !self.initialized
            && let Err(e) = self.init().await
        {
            warn!(error = %e, "cannot create the group's record yet");
        }
        let (observed, listed) = self.observe_listed().await;
        self.keep_listed(listed);
        let (now, wall) = self.clocks();
        self.time_demotion(now, &observed);
        let spec = self.print();
        let mut observed = observed;
        let mut decision = self.decide(now, wall, &observed, false);
        if matches!(decision.action, Action::Fence(_)) && self.variant != Variant::FenceOnStaleView
        {
            let (fresh, again) = self.fence_afresh(now, wall, false).await;
            (observed, decision) = (fresh, again);
        }
        let span = self.span(&decision);
        let mut during = Vec::new();
        let result = self
            .execute(now, wall, &observed, &decision, &mut during)
            .instrument(span)
            .await;
        self.keep_trace().await;
        for t in std::iter::once((&decision.action, &result, now)).chain(
            during
                .iter()
                .map(|(t, _)| (&t.decision.action, &t.result, t.now)),
        ) {
            if demoted(t.0, t.1) {
                self.demoted_at.get_or_insert(t.2);
            }
        }
        self.report_problems();
        // Assertion: the fencing token never goes down (a re-created record starts
        // above every token either cluster saw).
        if let Some(token) = self.memory.view.as_ref().map(|v| v.token) {
            if token < self.max_token {
                let why = format!(
                    "the record's fencing token went down from {} to {token}",
                    self.max_token
                );
                self.halt(why);
            }
            self.max_token = self.max_token.max(token);
        }
        let flagged = |v: &Record| v.failover.is_some_and(|f| f.stuck);
        if !self.memory.view.as_ref().is_none_or(flagged) {
            self.needs_operator = None;
        }
        Turn {
            now,
            wall,
            observed,
            spec,
            decision,
            result,
            during,
        }
    }

    /// Why this operator stopped acting for its group, if it did: an assertion that guards
    /// against a catastrophic bug failed (the fencing token went down, a plan effect was
    /// about to run without the lock, a plan is malformed, the store applied a progress
    /// write with a lower token than it carried). The loop returns; nothing more is
    /// changed by this process, and the error is logged.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Stop for good with `why` (logged once).
    fn halt(&mut self, why: String) {
        if self.halted.is_none() {
            error!(why = %why, "assertion failed: this operator stops acting for the group");
            self.halted = Some(why);
        }
    }

    /// The failover this operator flagged `needs-operator`, while the record shows it so:
    /// the stuck step and the objects that do not satisfy it.
    pub fn needs_operator(&self) -> Option<&NeedsOperator> {
        self.needs_operator.as_ref()
    }

    /// The members that do not satisfy `step` (each judged alone), as `Kind ns/name`.
    pub async fn unsatisfied(&self, step: Step) -> Result<Vec<String>, ClusterError> {
        let members = self.members().await?;
        let mut out = Vec::new();
        for (kind, list) in &members {
            for m in list {
                let alone = crate::observe::fold_states(std::iter::once((*kind, &m.state)));
                if !step.satisfied(&alone) {
                    out.push(format!("{kind:?} {}/{}", m.object.namespace, m.object.name));
                }
            }
        }
        Ok(out)
    }

    /// This operator's `Stuck` write applied: name what is stuck, once, loudly.
    async fn flag_needs_operator(&mut self, id: FailoverId, stage: Stage, step: Step) {
        let objects = match step.kind() {
            StepKind::Effect(_) | StepKind::Await => {
                self.unsatisfied(step).await.unwrap_or_else(|e| {
                    warn!(error = %e, "cannot list the stuck objects");
                    Vec::new()
                })
            }
            StepKind::Hook(i) => {
                let last = self.hook_reports.iter().rev().find(|r| r.index == i);
                vec![format!(
                    "hook {}: {}",
                    self.group.hook(i).map_or("?", |h| h.name.as_str()),
                    last.and_then(|r| r.result.as_ref().err())
                        .map_or("has not succeeded", String::as_str)
                )]
            }
            StepKind::Record => Vec::new(),
        };
        error!(
            id = format!("{id:016x}"),
            stage = %stage,
            step = %step,
            objects = objects.join(", "),
            "needs-operator: the {stage} stage passed its deadline after the target may have \
             promoted, so no roll back is safe; fix the objects named (the failover goes on by \
             itself), or `kubectl failover retry` (a new deadline) or `kubectl failover resolve` \
             (skip the rest of the target's phase)"
        );
        self.needs_operator = Some(NeedsOperator {
            id,
            stage,
            step,
            objects,
        });
    }

    /// The clocks: monotonic, wall.
    fn clocks(&self) -> (Time, Time) {
        (self.clock.mono(), self.clock.now())
    }

    fn span(&self, d: &Decision) -> tracing::Span {
        let view = self.memory.view.as_ref();
        let id = view
            .and_then(|v| v.failover.map(|f| f.id))
            .or(self.request.map(|r| r.id));
        let token = view.map(|v| v.token);
        match (d.stage, d.step) {
            (Some(stage), Some(step)) => info_span!(
                "failover",
                group = %self.group.key,
                cluster = %self.group.name_of(self.group.me),
                id = id.map(|i| format!("{i:016x}")),
                token,
                stage = %stage,
                step = %step,
            ),
            _ => info_span!(
                "operator",
                group = %self.group.key,
                cluster = %self.group.name_of(self.group.me),
                purpose = ?d.purpose,
            ),
        }
    }

    async fn execute(
        &mut self,
        now: Time,
        wall: Time,
        observed: &ClusterState,
        d: &Decision,
        during: &mut Vec<(Turn, Memory)>,
    ) -> TurnResult {
        if let Some(hook) = self.hook.as_mut() {
            hook(d);
        }
        match &d.action {
            Action::Read => self.read(now).await,
            Action::Write(Op::Create { active }) => self.create(now, wall, *active).await,
            Action::Write(op) => self.write_op(now, wall, d, *op).await,
            Action::Effect(effect) => self.effect(d, *effect, observed, during).await,
            Action::Hook(index) => self.hook_step(d, *index, observed, during).await,
            Action::Fence(effects) => self.fence(now, *effects).await,
            Action::Wait(wake) => TurnResult::Waited(*wake),
        }
    }

    /// A consistent read of the record, fed to the memory. No record: a new group's is
    /// created; one this cluster kept a trace of went missing and is not created again.
    async fn read(&mut self, now: Time) -> TurnResult {
        let timing = self.group.timing;
        let me = self.group.me;
        let read = self.store_call(self.store.read(&self.group.key)).await;
        match &read {
            Ok(Some(r)) => self.memory.on_read(me, now, &timing, Some(r.clone())),
            Ok(None) => match self.create_unless_traced().await {
                Ok(Created::Not(trace)) => {
                    self.report_missing(trace);
                    self.memory.on_missing(now, &timing);
                }
                Ok(Created::Record(record)) => {
                    self.memory.on_read(me, now, &timing, Some(*record));
                }
                Err(e) => {
                    warn!(error = %e, "no record, and none created");
                    self.memory.on_read(me, now, &timing, None);
                }
            },
            Err(_) => self.memory.on_read(me, now, &timing, None),
        }
        TurnResult::Read(read)
    }

    /// Only `recreate-missing-record` decides this: the engine before issue 10, which
    /// created a missing record again from the spec.
    async fn create(
        &mut self,
        now: Time,
        wall: Time,
        active: failover_model::Cluster,
    ) -> TurnResult {
        let timing = self.group.timing;
        let w = self.stamped(wall, Op::Create { active });
        let reply = match self.create_record(active, w.now).await {
            Ok(r) if r == Record::new(active, [Some(w.now); 2]) => Reply::Applied(r),
            Ok(r) => Reply::ConditionFailed(r),
            Err(_) => Reply::Unavailable,
        };
        self.memory
            .on_write(&w, now, &timing, self.variant, reply.clone());
        TurnResult::Wrote(reply)
    }

    /// A conditional write of the record, its reply fed to the memory, and what it tells
    /// people: a refused request, a missing record, a `needs-operator` flag.
    async fn write_op(&mut self, now: Time, wall: Time, d: &Decision, op: Op) -> TurnResult {
        let timing = self.group.timing;
        let w = self.stamped(wall, op);
        let reply = self.send(&w).await;
        self.check_reply(&w, &reply);
        if let (Op::Stuck { id, .. }, Reply::Applied(_), Some(stage), Some(step)) =
            (op, &reply, d.stage, d.step)
        {
            self.flag_needs_operator(id, stage, step).await;
        }
        if let Some((id, holder)) = refusal(&op, &reply) {
            warn!(
                id = format!("{id:016x}"),
                held_by = format!("{holder:016x}"),
                "request refused: another request holds the group"
            );
            self.refused = Some((id, holder));
        }
        if reply == Reply::Missing {
            let seen = self.memory.view.as_ref().map(Record::trace);
            match self.traced.or(seen) {
                Some(trace) => self.report_missing(trace),
                None => warn!("the group's record is missing"),
            }
        }
        self.memory
            .on_write(&w, now, &timing, self.variant, reply.clone());
        TurnResult::Wrote(reply)
    }

    /// A hook step on this cluster, with lease keeping beside it: its outcome goes to
    /// the model ([`Memory::on_hook`]), which journals it, rolls back, or runs it again.
    async fn hook_step(
        &mut self,
        d: &Decision,
        index: u8,
        observed: &ClusterState,
        during: &mut Vec<(Turn, Memory)>,
    ) -> TurnResult {
        let view = self.memory.view.as_ref();
        let holder = view.and_then(Record::holder);
        let (Some(f), failover_model::Purpose::Plan { at }) =
            (view.and_then(|v| v.failover), d.purpose)
        else {
            return TurnResult::NotSent;
        };
        // Assertion, as for effects: a hook runs only while this cluster holds the lock.
        if holder != Some(self.group.me) {
            self.halt(format!(
                "hook #{index} decided without holding the lock (holder {holder:?})"
            ));
            return TurnResult::NotSent;
        }
        let (now, wall) = self.clocks();
        if !lease_ok(&self.inputs(now, wall, observed, false), &self.memory) {
            warn!(
                hook = index,
                "the lease ran low since the decision: hook not run"
            );
            return TurnResult::NotSent;
        }
        if !self.hook_reports.iter().all(|r| r.id == f.id) {
            self.hook_reports.clear();
        }
        // The failover runs the hooks it started with: a copy of the spec whose hooks
        // changed since cannot say what this one is.
        let hook = self
            .group
            .hook(index)
            .filter(|_| f.hooks == self.group.hooks_layout())
            .cloned();
        let result = match &hook {
            None => Err(format!(
                "spec.hooks changed since failover {:016x} started ({} then): hook #{index} \
                 cannot be run; restore the hooks it started with, or abort it",
                f.id, f.hooks
            )),
            Some(hook) => {
                let task = HookTask {
                    index,
                    hook,
                    id: f.id,
                };
                info!(hook = %hook.name, place = %hook.place(), "running hook");
                match self.run_keeping_lease(&task, observed, during).await {
                    None => {
                        warn!(hook = %hook.name, "hook abandoned: the lease ran low or this process was replaced");
                        return TurnResult::Abandoned;
                    }
                    Some(Ok(done)) => Ok(match done {
                        Done::Hook(said) => said,
                        Done::Changed(_) => String::new(),
                    }),
                    Some(Err(e)) => Err(e.to_string()),
                }
            }
        };
        let (end, _) = self.clocks();
        let ok = result.is_ok();
        let continues = hook
            .as_ref()
            .is_some_and(|h| h.spot.on_failure == failover_model::OnFailure::Continue);
        let name = hook
            .as_ref()
            .map_or_else(|| format!("#{index}"), |h| h.name.clone());
        match &result {
            Ok(said) => info!(hook = %name, result = %said, "hook succeeded"),
            Err(why) if continues => {
                warn!(hook = %name, error = %why, "hook failed; its policy is to continue")
            }
            Err(why) => warn!(hook = %name, error = %why, "hook failed; its policy is to abort"),
        }
        self.memory.on_hook(
            failover_model::HookRun { id: f.id, at, ok },
            end,
            &self.group.timing,
        );
        let report = HookReport {
            id: f.id,
            index,
            name,
            result,
            continues,
        };
        self.hook_reports.push(report.clone());
        TurnResult::Hooked(report)
    }

    /// An effect step on this cluster, with lease keeping beside it.
    async fn effect(
        &mut self,
        d: &Decision,
        step: Effect,
        observed: &ClusterState,
        during: &mut Vec<(Turn, Memory)>,
    ) -> TurnResult {
        // Assertion: a plan step's effect runs only while this cluster holds the lock
        // (the model's decision guarantees it; a bug here is two writers).
        let holder = self.memory.view.as_ref().and_then(Record::holder);
        if matches!(d.purpose, failover_model::Purpose::Plan { .. })
            && holder != Some(self.group.me)
        {
            self.halt(format!(
                "plan step {step} decided without holding the lock (holder {holder:?})"
            ));
            return TurnResult::NotSent;
        }
        // The model's rule for a process paused between deciding and sending: a start
        // step goes out only while the lease still allows it.
        let (now, wall) = self.clocks();
        if !step.stops() && !lease_ok(&self.inputs(now, wall, observed, false), &self.memory) {
            warn!(step = %step, "the lease ran low since the decision: not sent");
            return TurnResult::NotSent;
        }
        let stage = d.stage.map_or(StageName::Outside, StageName::Stage);
        let task = EffectTask {
            effect: step,
            stage,
        };
        let result = self
            .run_keeping_lease(&task, observed, during)
            .await
            .map(|r| match r {
                Ok(Done::Changed(changes)) => Ok(changes),
                Ok(Done::Hook(_)) => Ok(Vec::new()),
                Err(TaskError::Effect(e)) => Err(e),
                Err(TaskError::Hook { hook, error }) => Err(EffectError {
                    stage,
                    effect: step,
                    source: ClusterError::Unavailable(format!("hook {hook}: {error}")),
                }),
            });
        let Some(result) = result else {
            if self.replaced() {
                warn!(step = %step, "call abandoned: this process was replaced");
            } else {
                warn!(step = %step, "call abandoned: the lease ran low, self-fencing");
            }
            return TurnResult::Abandoned;
        };
        self.memory.on_kube(now, &self.group.timing, result.is_ok());
        match result {
            Ok(changes) => {
                for c in &changes {
                    info!(change = %c, "changed");
                }
                TurnResult::Changed(changes)
            }
            Err(e) => {
                warn!(error = %e, "step failed; it is retried");
                TurnResult::Failed(e)
            }
        }
    }

    /// A store call within the store call deadline; no answer counts as unavailable.
    async fn store_call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreUnavailable>>,
    ) -> Result<T, StoreUnavailable> {
        bounded(&self.clock, store_deadline(&self.group), call)
            .await
            .unwrap_or_else(|| {
                Err(StoreUnavailable(
                    "no answer within the call deadline".into(),
                ))
            })
    }

    /// Write `op` of this operator, stamped from the wall clock reading `wall`.
    fn stamped(&self, wall: Time, op: Op) -> Write {
        let at = stamp(self.group.me, wall, self.variant, &self.memory);
        write(self.group.me, &self.memory, at, op)
    }

    /// Send `w` within the store call deadline: no answer means it may or may not have
    /// applied. (The caller feeds the reply into the memory.)
    async fn send(&self, w: &Write) -> Reply {
        let send = self.store.write(&self.group.key, &self.group.timing, w);
        let reply = bounded(&self.clock, store_deadline(&self.group), send)
            .await
            .unwrap_or(Reply::Ambiguous);
        debug!(op = ?w.op, reply = reply_name(&reply), "write");
        reply
    }

    /// Assertion: a progress write the store applied leaves a token at least the one it
    /// carried (an adapter that lost the condition would let a stale holder in).
    fn check_reply(&mut self, w: &Write, reply: &Reply) {
        if let (Reply::Applied(r), Some(t)) = (reply, w.op.token())
            && r.token < t
        {
            self.halt(format!(
                "the store applied {:?} carrying token {t} and answered token {}",
                w.op, r.token
            ));
        }
    }

    /// A self-fence attempt. The stop steps run in the stop order (traffic off before
    /// the pods stop, pods before CronJobs), each with its own deadline: one that fails
    /// or hangs never keeps the later ones from running. (Side by side, traffic would
    /// briefly reach stopping pods.) The volumes' demotion runs beside them from the
    /// start, tried again whenever it fails or hangs, within the five steps' share of
    /// the margin: a slow API server costs it tries, not the attempt (the simulator's
    /// seed 15978 had it wait behind four hung steps, then a second attempt, and the
    /// driver's demotion ended after the peer forced).
    async fn fence(&mut self, now: Time, steps: EffectSet) -> TurnResult {
        let deadline = fence_step_deadline(&self.group);
        let (cluster, group, clock) = (&self.cluster, &self.group, &self.clock);
        // Listed afresh: a fence may come long after the turn's observation.
        let step = |effect: Effect| async move {
            run_step(cluster, group, clock, effect, deadline, None)
                .await
                .map_err(|source| EffectError {
                    stage: StageName::Outside,
                    effect,
                    source,
                })
        };
        // `fence-ignores-demotion`: the fence before issue 17, the demotion last in
        // the sequence, tried once per attempt.
        let beside = self.variant != Variant::FenceIgnoresDemotion;
        let stops = async {
            let mut done = Vec::new();
            for effect in steps
                .iter()
                .filter(|e| !beside || *e != Effect::DemoteVolumes)
            {
                done.push(step(effect).await);
            }
            done
        };
        let demotion = async {
            if !beside || !steps.contains(Effect::DemoteVolumes) {
                return Vec::new();
            }
            let until = clock.mono() + 5 * deadline.as_millis() as Time;
            loop {
                let r = step(Effect::DemoteVolumes).await;
                let last = r.is_ok() || clock.mono() + deadline.as_millis() as Time > until;
                if last {
                    return vec![r];
                }
                if let Err(e) = &r {
                    warn!(error = %e, "self-fence: the volumes' demotion failed; it is tried again");
                }
                clock.sleep(deadline / 4).await;
            }
        };
        // Urgent: a client-side rate limit must not queue the fence behind routine
        // writes (the margin is all it has).
        let (stopped, demoted) =
            crate::ports::urgent(async { futures::join!(stops, demotion) }).await;
        let mut changes = Vec::new();
        let mut failed = Vec::new();
        for r in stopped.into_iter().chain(demoted) {
            match r {
                Ok(c) => changes.extend(c),
                Err(e) => failed.push(e),
            }
        }
        warn!(
            steps = %steps,
            changed = changes.len(),
            failed = failed.len(),
            "self-fence: lease cannot be renewed"
        );
        for e in &failed {
            warn!(error = %e, "self-fence step failed; it is retried");
        }
        self.memory
            .on_kube(now, &self.group.timing, failed.is_empty());
        TurnResult::Fenced { changes, failed }
    }

    /// Run `task` (an effect within the step timeout, a hook within its own) while
    /// keeping the lease: whenever the model, told a call is in progress, asks for a
    /// heartbeat, it is written beside the call; when it asks for the self-fence (the
    /// lease ran low), the call is abandoned (`None`) and the fence carried out. Every
    /// such turn goes to `during`.
    async fn run_keeping_lease<T: Task>(
        &mut self,
        task: &T,
        observed: &ClusterState,
        during: &mut Vec<(Turn, Memory)>,
    ) -> Option<Result<Done, TaskError>> {
        let listed = self.listed.take();
        let abandon = {
            let run = task
                .execute(&self.cluster, &self.clock, &self.group, listed.as_ref())
                .fuse();
            futures::pin_mut!(run);
            loop {
                let (now, wall) = self.clocks();
                let decision = self.decide(now, wall, observed, true);
                match decision.action {
                    Action::Write(op @ Op::Heartbeat { .. }) => {
                        if let Some(hook) = self.hook.as_mut() {
                            hook(&decision);
                        }
                        let spec = self.print();
                        let w = self.stamped(wall, op);
                        let mut finished = None;
                        let reply = {
                            let send = self.send(&w).fuse();
                            futures::pin_mut!(send);
                            loop {
                                futures::select_biased! {
                                    reply = send => break reply,
                                    r = run => finished = Some(r),
                                }
                            }
                        };
                        let timing = self.group.timing;
                        self.memory
                            .on_write(&w, now, &timing, self.variant, reply.clone());
                        let turn = Turn {
                            now,
                            wall,
                            observed: *observed,
                            spec,
                            decision,
                            result: TurnResult::Wrote(reply),
                            during: Vec::new(),
                        };
                        during.push((turn, self.memory.clone()));
                        if finished.is_some() {
                            return finished;
                        }
                        // Another process took this cluster's slot: this one stops, and
                        // drops its call (leaving this block drops the call's future).
                        if self.replaced() {
                            return None;
                        }
                    }
                    // Leaving this block drops the call's future: it is abandoned.
                    Action::Fence(steps) => break (now, wall, self.print(), decision, steps),
                    Action::Wait(Wake::At(t)) => {
                        let nap = self
                            .clock
                            .sleep(Duration::from_millis(t.saturating_sub(now).max(1)));
                        let nap = nap.fuse();
                        futures::pin_mut!(nap);
                        futures::select_biased! {
                            r = run => return Some(r),
                            () = nap => {}
                        }
                    }
                    // Waiting for the call (`heartbeat-behind-tasks`), or anything else the
                    // model never asks while busy.
                    _ => return Some(run.await),
                }
            }
        };
        let (now, wall, spec, decision, steps) = abandon;
        // Judged again on the cluster as it is (see `fence_afresh`), unless that no
        // longer asks for the fence.
        let (observed, decision, steps) = if self.variant == Variant::FenceOnStaleView {
            (*observed, decision, steps)
        } else {
            let (fresh, again) = self.fence_afresh(now, wall, true).await;
            match again.action {
                Action::Fence(fresh_steps) => (fresh, again, fresh_steps),
                _ => (*observed, decision, steps),
            }
        };
        if let Some(hook) = self.hook.as_mut() {
            hook(&decision);
        }
        let result = self.fence(now, steps).await;
        let turn = Turn {
            now,
            wall,
            observed,
            spec,
            decision,
            result,
            during: Vec::new(),
        };
        during.push((turn, self.memory.clone()));
        None
    }

    /// The model asked for the self-fence: observe the cluster again as urgent work
    /// (from the API server, not a watch cache, which may not show yet what others
    /// changed since: Flux starting what an earlier fence attempt stopped, seen as
    /// still stopped, would be left running) and decide again on that, at the same
    /// times. Returns the observation and the decision.
    async fn fence_afresh(
        &mut self,
        now: Time,
        wall: Time,
        busy: bool,
    ) -> (ClusterState, Decision) {
        let (fresh, listed) = crate::ports::urgent(self.observe_listed()).await;
        self.keep_listed(listed);
        let decision = self.decide(now, wall, &fresh, busy);
        (fresh, decision)
    }

    /// Wait as long as the last turn asks: until the time the model named, a change in
    /// the cluster, or the next heartbeat, whichever comes first (at most [`POLL`]).
    pub async fn pause(&self, turn: &Turn) {
        let now = self.clock.mono();
        let timing = &self.group.timing;
        // The next heartbeat, unless the store is backing off (then the back-off's end).
        // (An operator that never heartbeats, one configured as the wrong cluster, looks
        // again at the heartbeat pace.)
        let heartbeat_due = self
            .memory
            .heartbeat_at
            .unwrap_or(now)
            .saturating_add(timing.heartbeat_every)
            .max(self.memory.retry_at.unwrap_or(0));
        // The target of a failover in flight while the source's steps run: look at the
        // record again soon, so the hand-off is taken up at once (never sooner than a
        // store back-off allows). The source, once it handed off, has nothing to hurry.
        let peer_step = self
            .memory
            .view
            .as_ref()
            .and_then(|v| v.failover)
            .is_some_and(|f| {
                !f.stuck
                    && f.role_of(self.group.me) == failover_model::Role::Target
                    && f.next_step()
                        .is_some_and(|s| s.owner == failover_model::Role::Source)
            });
        let until = match &turn.result {
            // The model's wake-up time already counts heartbeats and back-offs.
            TurnResult::Waited(Wake::Idle(t) | Wake::At(t)) => *t,
            TurnResult::Waited(Wake::Change) if peer_step => heartbeat_due
                .min(now + PEER_POLL.as_millis() as Time)
                .max(self.memory.retry_at.unwrap_or(0)),
            TurnResult::Waited(Wake::Change) => heartbeat_due,
            // Never retry a failed step at once: a call that fails fast (an unreachable
            // API server) would otherwise spin.
            TurnResult::Failed(_) => now + timing.retry_after,
            TurnResult::Fenced { changes, failed } if !failed.is_empty() || changes.is_empty() => {
                now + timing.retry_after
            }
            // A step that found nothing to change although the model expected a change
            // (the observation failed, or the cluster converged meanwhile): look again
            // after a short wait rather than at once.
            TurnResult::Changed(changes) if changes.is_empty() => now + timing.retry_after,
            _ => return,
        };
        // At least a millisecond: a wait the model asked for always lets time pass.
        let wait = Duration::from_millis(until.saturating_sub(now).max(1)).min(POLL);
        if matches!(
            turn.result,
            TurnResult::Failed(_) | TurnResult::Changed(_) | TurnResult::Fenced { .. }
        ) {
            self.clock.sleep(wait).await;
        } else {
            let changed = self.cluster.changed(wait).fuse();
            let slept = self.clock.sleep(wait).fuse();
            futures::pin_mut!(changed, slept);
            let woken = futures::select_biased! {
                () = changed => true,
                () = slept => false,
            };
            // Watch events come in bursts (a rollout moves many objects one after the
            // other): look at the cluster once per burst, not once per event, as
            // kube-runtime's controller debounce does. Never past the wake-up time.
            let left = until.saturating_sub(self.clock.mono());
            if woken && left > 0 {
                let debounce = Duration::from_millis(left).min(DEBOUNCE);
                self.clock.sleep(debounce).await;
            }
        }
    }

    /// Run turns until `stop` says so after a turn, until another process took this
    /// cluster's slot ([`Operator::replaced`]), or until an assertion failed
    /// ([`Operator::halted`]).
    pub async fn run_until(&mut self, mut stop: impl FnMut(&Self, &Turn) -> bool) {
        loop {
            if self.halted.is_some() {
                return;
            }
            let turn = self.turn().await;
            if stop(self, &turn) || self.halted.is_some() {
                return;
            }
            if self.replaced() {
                let owner = self
                    .memory
                    .view
                    .as_ref()
                    .and_then(|v| v.instance[self.group.me.index()]);
                tracing::error!(
                    instance = self.memory.instance,
                    owner,
                    "another operator process took this cluster's slot in the record: stopping"
                );
                return;
            }
            self.pause(&turn).await;
        }
    }

    /// Run forever: heartbeats, at-rest upkeep, and the failovers the record shows.
    pub async fn run(&mut self) {
        self.run_until(|_, _| false).await;
    }
}

/// Carry out `effect` within `timeout` ([`carry_out`]).
pub(crate) async fn run_step<C: ClusterPort, K: Clock>(
    cluster: &C,
    group: &Group,
    clock: &K,
    effect: Effect,
    timeout: Duration,
    listed: Option<&Members>,
) -> Result<Vec<FieldChange>, ClusterError> {
    bounded(clock, timeout, carry_out(cluster, group, effect, listed))
        .await
        .unwrap_or_else(|| {
            Err(ClusterError::Unavailable(format!(
                "step did not finish within {} ms",
                timeout.as_millis()
            )))
        })
}

/// `call`, unless `deadline` passes first (`None`; the call's future is dropped).
pub async fn bounded<K: Clock, F: std::future::Future>(
    clock: &K,
    deadline: Duration,
    call: F,
) -> Option<F::Output> {
    let call = call.fuse();
    let expire = clock.sleep(deadline).fuse();
    futures::pin_mut!(call, expire);
    futures::select_biased! {
        r = call => Some(r),
        () = expire => None,
    }
}

/// The fence margin in eighths: the deadlines below are shares of it, so that
/// the worst case from the moment the lease runs low to the last fence step fits in the
/// margin: a store call or a pause already under way (≤ 2/8), the observation (≤ 1/8),
/// and the five fence steps one after the other (≤ 5/8). [`crate::spec::check_timing`]
/// requires `fenceMarginSeconds` ≥ 4 × [`POLL`] so that a pause fits its share.
fn eighth(group: &Group) -> Duration {
    Duration::from_millis(group.timing.fence_margin / 8)
}

/// Whether a turn's action and result wrote the volumes' demotion: a plan step's, or a
/// self-fence attempt's whose demotion did not fail.
fn demoted(action: &Action, result: &TurnResult) -> bool {
    match (action, result) {
        (Action::Effect(Effect::DemoteVolumes), TurnResult::Changed(_)) => true,
        (Action::Fence(steps), TurnResult::Fenced { failed, .. }) => {
            steps.contains(Effect::DemoteVolumes)
                && !failed.iter().any(|e| e.effect == Effect::DemoteVolumes)
        }
        _ => false,
    }
}

/// How long one step of a self-fence attempt may take: one eighth of the fence
/// margin (750 ms by default), never more than the group's `stepTimeout`.
pub fn fence_step_deadline(group: &Group) -> Duration {
    eighth(group).min(group.step_timeout)
}

/// How long observing the cluster may take before the turn goes on with the
/// conservative "unknown" state: one eighth of the fence margin.
pub fn observe_deadline(group: &Group) -> Duration {
    eighth(group)
}

/// The longest `terminationGracePeriodSeconds` a workload may have unless
/// `spec.demotionStopsWrites`: a quarter of the fence margin plus the driver's demotion
/// time plus the drift bound (4.5 s by default). The fence starts `margin + demotion`
/// before the lease ends and scales the pods down at most three quarters of the margin
/// after that (the budget above); the peer may promote `drift` after the lease ends at
/// the earliest; so pods that take longer to stop could still write to volumes that are
/// primary on both sides.
pub fn stop_grace_limit(group: &Group) -> Duration {
    Duration::from_millis(
        group.timing.fence_margin / 4 + group.timing.driver_demotion + group.timing.clock_drift_max,
    )
}

/// One problem per workload whose pods may take longer to stop than
/// [`stop_grace_limit`], with the three ways to fix it.
pub fn grace_problems(group: &Group, members: &[crate::ports::Member]) -> Vec<String> {
    let limit = stop_grace_limit(group).as_secs();
    let drift = group.timing.clock_drift_max / 1000;
    let demotion = group.timing.driver_demotion / 1000;
    members
        .iter()
        .filter_map(|m| Some((m, m.stop_grace_seconds?)))
        .filter(|(_, grace)| *grace > limit)
        .map(|(m, grace)| {
            format!(
                "{} has terminationGracePeriodSeconds {grace}: its pods may write for {grace} s \
                 after the self-fence stops them, but the peer may promote {limit} s after \
                 that; lower it to at most {limit}, raise fenceMarginSeconds to at least {} \
                 (and leaseSeconds with it), or set spec.demotionStopsWrites: true if the \
                 storage makes a demoted volume read-only while mounted",
                m.object,
                4 * grace.saturating_sub(drift + demotion)
            )
        })
        .collect()
}

/// How long a DynamoDB call may take before it counts as unanswered (a write then is
/// ambiguous, a read unavailable): a quarter of the fence margin (1.5 s by default).
pub fn store_deadline(group: &Group) -> Duration {
    eighth(group) * 2
}

/// The manager's entry point: drive this operator until failover `request` ended.
///
/// The group is validated first ([`Operator::validate`]); an invalid group is refused
/// before anything changes.
///
/// The other cluster's operator runs its own loop ([`Operator::run`]) and does its
/// part of the plan when the journal hands over to it. Returns how the failover ended.
/// Dropping the future at any point is safe: a new call (or a new operator) resumes
/// from the journal.
pub async fn process_failover<C, S, K>(op: &mut Operator<C, S, K>, request: Request) -> Ended
where
    C: ClusterPort,
    S: StorePort,
    K: Clock,
{
    if let Err(invalid) = op.validate().await {
        // A failover already under way is driven on (resumed after a restart): refusing
        // it would leave it half done. Only one that has not started is refused.
        let started = matches!(
            op.store.read(&op.group.key).await,
            Ok(Some(r)) if r.knows(request.id)
        );
        if !started {
            warn!(error = %invalid, "failover refused");
            return Ended::Refused(invalid);
        }
        warn!(error = %invalid, "group invalid, but its failover is under way: resuming");
    }
    op.set_request(Some(request));
    let mut ended = None;
    let span = info_span!("process_failover", id = format!("{:016x}", request.id));
    op.run_until(|op, _| {
        ended = match op.refused(request.id) {
            Some(holder) => Some(Ended::Held(holder)),
            None => ended_of(op.memory().view.as_ref(), request.id),
        };
        ended.is_some()
    })
    .instrument(span)
    .await;
    op.set_request(None);
    // `run_until` returns without an end only when this process was replaced.
    ended.unwrap_or(Ended::Replaced)
}

/// Why the plans of `variant` cannot be run, if they cannot: every phase after the first
/// must start by taking the lock (a hand-off await, or the forced take), and every plan
/// must end with the completion. Checked once per operator (assertion).
fn plan_problem(variant: Variant, hooks: failover_model::Hooks) -> Option<String> {
    let kinds = [
        PlanKind::Planned(failover_model::Mode::Consistency),
        PlanKind::Planned(failover_model::Mode::Uptime),
        PlanKind::Forced,
    ];
    for kind in kinds {
        let plan = failover_model::Plan::with_hooks(kind, variant, hooks);
        if plan.steps.last().map(|s| s.step) != Some(Step::Complete) {
            return Some(format!("the {kind} plan does not end with the completion"));
        }
        let takes = [Step::AcquireLock, Step::ForceTakeLock, Step::AwaitHandOff];
        if !plan.steps.first().is_some_and(|s| takes.contains(&s.step)) {
            return Some(format!("the {kind} plan does not start by taking the lock"));
        }
        for at in 0..plan.len() as u32 {
            let next = plan.get(at + 1).map(|s| s.step);
            if plan.ends_phase(at) && next != Some(Step::AwaitHandOff) {
                return Some(format!(
                    "the {kind} plan's phase after position {at} does not start with a hand-off"
                ));
            }
        }
    }
    None
}

/// A fresh process id: random (the standard library's per-process hash keys) mixed
/// with the time and the process id, so two processes never share one.
fn random_instance() -> Instance {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    // DynamoDB numbers carry 38 digits; keep ids in the exact range of every reader.
    h.finish() >> 11
}

fn ended_of(view: Option<&Record>, id: FailoverId) -> Option<Ended> {
    match view?.outcome_of(id)? {
        Outcome::NoOp => Some(Ended::AlreadyActive),
        outcome => Some(Ended::Finished(outcome)),
    }
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Applied(_) => "applied",
        Reply::ConditionFailed(_) => "condition-failed",
        Reply::Ambiguous => "ambiguous",
        Reply::Unavailable => "unavailable",
        Reply::Missing => "missing",
    }
}
