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
    Action, ClusterState, Decision, FailoverId, Inputs, Memory, Outcome, Record, Reply, Request,
    Time, Variant, Wake, core::decide::write, decide,
};
use futures::FutureExt;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::observe::{Members, fold, unknown};
use crate::ports::{Clock, ClusterError, ClusterPort, FieldChange, StorePort, StoreUnavailable};
use crate::spec::Group;
use crate::tasks::{Context, StageName, TaskError, Tasks, factory, retried};

/// How often a waiting operator looks at its cluster again even without a watch event.
pub const POLL: Duration = Duration::from_millis(1000);

/// After a watch event, how long the executor waits for more before it looks at the
/// cluster (at most until its next wake-up time).
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// What one turn did.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// Local time when the decision was made.
    pub now: Time,
    /// What the operator observed of its cluster.
    pub observed: ClusterState,
    /// The decision.
    pub decision: Decision,
    /// What came of it.
    pub result: TurnResult,
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
    Failed(TaskError),
    /// A self-fence attempt ran every one of its steps, in order, past failures: what they changed,
    /// and the steps that failed or timed out (retried on the next attempt).
    Fenced {
        /// Changes made by the steps that succeeded.
        changes: Vec<FieldChange>,
        /// The steps that failed.
        failed: Vec<TaskError>,
    },
    /// Nothing to do now.
    Waited(Wake),
}

/// How a failover request ended, as this operator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It ran to the end: completed or aborted (the history item).
    Finished(Outcome),
    /// The target already is the active cluster and nothing is in flight.
    AlreadyActive,
    /// It never started: the group is invalid in this cluster ([`Operator::validate`]).
    /// This operator changed nothing. (A failover the record shows under way is resumed
    /// even so; the peer's operator validates its own cluster.)
    Refused(GroupInvalid),
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

/// One cluster's operator for one group.
pub struct Operator<C: ClusterPort, S, K> {
    cluster: C,
    store: S,
    clock: K,
    group: Group,
    tasks: Tasks<C>,
    variant: Variant,
    memory: Memory,
    request: Option<Request>,
    initialized: bool,
}

impl<C: ClusterPort, S: StorePort, K: Clock> Operator<C, S, K> {
    /// An operator with empty memory (as after a start).
    pub fn new(cluster: C, store: S, clock: K, group: Group) -> Self {
        Self::with_variant(cluster, store, clock, group, Variant::Correct)
    }

    /// An operator running a protocol variant (the simulator's broken ones).
    pub fn with_variant(cluster: C, store: S, clock: K, group: Group, variant: Variant) -> Self {
        Operator {
            cluster,
            store,
            clock,
            group,
            tasks: factory(variant),
            variant,
            memory: Memory::default(),
            request: None,
            initialized: false,
        }
    }

    /// The operator's memory (lost on restart).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The pending request this operator knows of.
    pub fn set_request(&mut self, request: Option<Request>) {
        self.request = request;
    }

    /// Create the group's record if it does not exist yet (done once, before the first
    /// turn; a store that is unavailable then is retried by the protocol's own reads).
    pub async fn init(&mut self) -> Result<Record, StoreUnavailable> {
        let record = self
            .store
            .init(&self.group.key, self.group.initial_active, self.clock.now())
            .await?;
        self.initialized = true;
        Ok(record)
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
        for (kind, selectors) in &self.group.members {
            for s in selectors {
                match retried(|| self.cluster.members(*kind, s)).await {
                    Ok(_) => {}
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
                    Err(e) => warn!(error = %e, %kind, "cannot validate the group now"),
                }
            }
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
        match self.members().await {
            Ok(m) => fold(&m),
            Err(e) => {
                warn!(error = %e, "cannot observe the cluster; assuming the worst");
                unknown(&self.group.members.keys().copied().collect::<Vec<_>>())
            }
        }
    }

    /// The decision the model makes now.
    pub fn decide(&self, now: Time, cluster: &ClusterState) -> Decision {
        let inputs = Inputs {
            me: self.group.me,
            now,
            cluster,
            request: self.request,
            timing: &self.group.timing,
            variant: self.variant,
        };
        decide(&inputs, &self.memory)
    }

    /// One turn: observe, decide, execute. Never waits for time to pass (see [`Self::pause`]).
    pub async fn turn(&mut self) -> Turn {
        let (now, observed, decision) = self.prepare().await;
        self.carry_out(now, observed, decision).await
    }

    /// The first half of a turn: observe and decide (local time, observation, decision).
    /// A driver that must see a decision before it is carried out (the simulator's
    /// audit) calls this and then [`Self::carry_out`].
    pub async fn prepare(&mut self) -> (Time, ClusterState, Decision) {
        if !self.initialized
            && let Err(e) = self.init().await
        {
            warn!(error = %e, "cannot create the group's record yet");
        }
        let cluster = self.observe().await;
        let now = self.clock.now();
        let decision = self.decide(now, &cluster);
        (now, cluster, decision)
    }

    /// The second half of a turn: carry out `decision`, made at `now` from `observed`.
    pub async fn carry_out(
        &mut self,
        now: Time,
        observed: ClusterState,
        decision: Decision,
    ) -> Turn {
        let span = self.span(&decision);
        let result = self.execute(now, &decision).instrument(span).await;
        Turn {
            now,
            observed,
            decision,
            result,
        }
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
                task = %step,
            ),
            _ => info_span!(
                "operator",
                group = %self.group.key,
                cluster = %self.group.name_of(self.group.me),
                purpose = ?d.purpose,
            ),
        }
    }

    async fn execute(&mut self, now: Time, d: &Decision) -> TurnResult {
        let timing = self.group.timing;
        match &d.action {
            Action::Read => {
                let read = self.store.read(&self.group.key).await;
                let record = match &read {
                    Ok(Some(r)) => Some(r.clone()),
                    // A group whose record does not exist yet: create it.
                    Ok(None) => self.init().await.ok(),
                    Err(_) => None,
                };
                self.memory.on_read(now, &timing, record);
                TurnResult::Read(read)
            }
            Action::Write(op) => {
                let w = write(self.group.me, now, *op);
                let reply = self.store.write(&self.group.key, &timing, &w).await;
                debug!(op = ?op, reply = reply_name(&reply), "write");
                self.memory.on_write(&w, &timing, reply.clone());
                TurnResult::Wrote(reply)
            }
            Action::Kube(step) => {
                let stage = d.stage.map_or(StageName::Outside, StageName::Stage);
                let result = self.run_step(*step, stage, self.group.step_timeout).await;
                self.memory.on_kube(now, &timing, result.is_ok());
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
            Action::Fence(steps) => {
                // Every step, in the stop order (traffic off before the pods stop, pods
                // before the volumes), each with its own deadline: one that fails or
                // hangs never keeps the later ones (volume demotion above all) from
                // running. (Side by side, traffic would briefly reach stopping pods.)
                let mut changes = Vec::new();
                let mut failed = Vec::new();
                let deadline = fence_step_deadline(&self.group);
                for step in steps.iter() {
                    match self.run_step(step, StageName::Outside, deadline).await {
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
                self.memory.on_kube(now, &timing, failed.is_empty());
                TurnResult::Fenced { changes, failed }
            }
            Action::Wait(wake) => TurnResult::Waited(*wake),
        }
    }

    /// Run the task of effect `step` within the step timeout.
    async fn run_step(
        &self,
        step: failover_model::Step,
        stage: StageName,
        timeout: Duration,
    ) -> Result<Vec<FieldChange>, TaskError> {
        let Some(task) = self.tasks.get(step) else {
            // The factory builds a task for every effect step of every plan.
            unreachable!("no task for effect step {step}");
        };
        let ctx = Context {
            cluster: &self.cluster,
            group: &self.group,
        };
        let run = task.execute(&ctx).fuse();
        let expire = self.clock.sleep(timeout).fuse();
        futures::pin_mut!(run, expire);
        let result = futures::select_biased! {
            r = run => r,
            () = expire => Err(ClusterError::Unavailable(format!(
                "step did not finish within {} ms", timeout.as_millis()
            ))),
        };
        result.map_err(|source| TaskError {
            stage,
            task: task.name(),
            source,
        })
    }

    /// Wait as long as the last turn asks: until the time the model named, a change in
    /// the cluster, or the next heartbeat, whichever comes first (at most [`POLL`]).
    pub async fn pause(&self, turn: &Turn) {
        let now = self.clock.now();
        let timing = &self.group.timing;
        // The next heartbeat, unless the store is backing off (then the back-off's end).
        let heartbeat_due = self
            .memory
            .heartbeat_at
            .map_or(now, |at| at + timing.heartbeat_every)
            .max(self.memory.retry_at.unwrap_or(0));
        let until = match &turn.result {
            // The model's wake-up time already counts heartbeats and back-offs.
            TurnResult::Waited(Wake::Idle(t) | Wake::At(t)) => *t,
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
            let left = until.saturating_sub(self.clock.now());
            if woken && left > 0 {
                let debounce = Duration::from_millis(left).min(DEBOUNCE);
                self.clock.sleep(debounce).await;
            }
        }
    }

    /// Run turns until `stop` says so after a turn.
    pub async fn run_until(&mut self, mut stop: impl FnMut(&Self, &Turn) -> bool) {
        loop {
            let turn = self.turn().await;
            if stop(self, &turn) {
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

/// How long one step of a self-fence attempt may take: the whole attempt (every stop
/// step, one after the other) must fit in the fence margin, so a step that hangs
/// cannot push the volume demotion past the moment the peer may force. The group's
/// `stepTimeout` still bounds it from above.
pub fn fence_step_deadline(group: &Group) -> Duration {
    let steps = failover_model::STOP
        .iter()
        .filter(|s| s.kind() == failover_model::StepKind::Effect)
        .count() as u64;
    let share = Duration::from_millis(group.timing.fence_margin / (steps + 1));
    share.min(group.step_timeout)
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
        ended = ended_of(op.memory().view.as_ref(), request.id, request.to);
        ended.is_some()
    })
    .instrument(span)
    .await;
    op.set_request(None);
    ended.unwrap_or(Ended::AlreadyActive)
}

fn ended_of(view: Option<&Record>, id: FailoverId, to: failover_model::Cluster) -> Option<Ended> {
    let view = view?;
    if let Some(h) = view.history.iter().find(|h| h.id == id) {
        return Some(Ended::Finished(h.outcome));
    }
    (view.failover.is_none() && view.active == to).then_some(Ended::AlreadyActive)
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Applied(_) => "applied",
        Reply::ConditionFailed(_) => "condition-failed",
        Reply::Ambiguous => "ambiguous",
        Reply::Unavailable => "unavailable",
    }
}
