//! Tasks: what the effect steps of the model's plans become in the engine.
//!
//! A [`Task`] has a name, a description and an async `execute` that receives its ports
//! through a [`Context`]. The [`factory`] builds the task list of a plan kind and role
//! from [`failover_model::Plan`], so the engine's tasks are exactly the model's steps.
//! A task changes every member of its kinds with bounded parallelism; it is an
//! idempotent "ensure": members already as wanted are not written.

use std::collections::BTreeMap;
use std::fmt;

use failover_model::{Plan, PlanKind, Role, START, STOP, Stage, Step, StepKind, Variant};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::observe::{is_set, step_target};
use crate::ports::{ClusterError, ClusterPort, Desired, FieldChange, Kind};
use crate::spec::Group;

/// What a task gets to work with: the cluster's port and the validated group.
pub struct Context<'a, C> {
    /// This cluster's API.
    pub cluster: &'a C,
    /// The group.
    pub group: &'a Group,
}

/// A step that failed, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{stage}/{task}: {source}")]
pub struct TaskError {
    /// The stage the step belongs to (`fence` and `steady` steps carry the stage of the
    /// plan position they stand for, or none).
    pub stage: StageName,
    /// The task.
    pub task: &'static str,
    /// The cluster error.
    pub source: ClusterError,
}

/// A stage, or the context of a step outside a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageName {
    /// A failover stage.
    Stage(Stage),
    /// Outside a failover (keeping the cluster at rest, fencing).
    Outside,
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageName::Stage(s) => write!(f, "{s}"),
            StageName::Outside => f.write_str("at-rest"),
        }
    }
}

/// A unit of work on the operator's own cluster.
pub trait Task<C: ClusterPort>: Send + Sync {
    /// The step's kebab-case name.
    fn name(&self) -> &'static str;
    /// One line saying what it does.
    fn description(&self) -> &'static str;
    /// The model's step this task executes.
    fn step(&self) -> Step;
    /// Do it; returns the fields it changed.
    fn execute<'a>(
        &'a self,
        ctx: &'a Context<'a, C>,
    ) -> BoxFuture<'a, Result<Vec<FieldChange>, ClusterError>>;
}

/// The task of an effect step: set every member of some kinds to stopped or started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetMembers {
    step: Step,
    kinds: &'static [Kind],
    desired: Desired,
}

impl SetMembers {
    /// The task for an effect step (`None` for record and await steps).
    pub fn of(step: Step) -> Option<SetMembers> {
        let (kinds, desired) = step_target(step)?;
        Some(SetMembers {
            step,
            kinds,
            desired,
        })
    }
}

impl<C: ClusterPort> Task<C> for SetMembers {
    fn name(&self) -> &'static str {
        self.step.name()
    }

    fn description(&self) -> &'static str {
        self.step.description()
    }

    fn step(&self) -> Step {
        self.step
    }

    fn execute<'a>(
        &'a self,
        ctx: &'a Context<'a, C>,
    ) -> BoxFuture<'a, Result<Vec<FieldChange>, ClusterError>> {
        Box::pin(async move {
            let mut objects = Vec::new();
            for kind in self.kinds {
                for selector in ctx.group.members.get(kind).into_iter().flatten() {
                    let members = retried(|| ctx.cluster.members(*kind, selector)).await?;
                    objects.extend(
                        members
                            .into_iter()
                            .filter(|m| !is_set(&m.state, self.desired))
                            .map(|m| m.object),
                    );
                }
            }
            let desired = self.desired;
            let changes: Vec<Vec<FieldChange>> = stream::iter(objects)
                .map(|o| async move { retried(|| ctx.cluster.set(&o, desired)).await })
                .buffer_unordered(ctx.group.parallelism.max(1))
                .try_collect()
                .await?;
            let mut changes: Vec<FieldChange> = changes.into_iter().flatten().collect();
            changes.sort();
            Ok(changes)
        })
    }
}

/// Attempts of one call inside a step before the step fails.
pub const CALL_ATTEMPTS: usize = 3;

/// Run a Kubernetes call, retrying it at once on a conflict or an unavailable API
/// (every call is an idempotent read or "ensure", so a retry never applies twice). A
/// self-fence must finish within the fence margin: one flaky call must not cost it a
/// whole retry round of the executor.
pub async fn retried<T, F, Fut>(mut call: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(ClusterError::Unavailable(_) | ClusterError::Conflict(_))
                if attempt < CALL_ATTEMPTS =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The tasks of one operator: every effect step it may be asked to run, by step.
pub struct Tasks<C: ClusterPort> {
    by_step: BTreeMap<Step, Box<dyn Task<C>>>,
}

impl<C: ClusterPort> Tasks<C> {
    /// The task for `step`.
    pub fn get(&self, step: Step) -> Option<&dyn Task<C>> {
        self.by_step.get(&step).map(|t| t.as_ref())
    }

    /// All tasks, in step order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Task<C>> {
        self.by_step.values().map(|t| t.as_ref())
    }
}

/// The factory: the tasks of the plans of every kind for `role`, plus the stop and
/// start steps of fencing and keeping the cluster at rest. Built from the model's plans,
/// never listed by hand.
pub fn factory<C: ClusterPort>(variant: Variant) -> Tasks<C> {
    let kinds = [
        PlanKind::Planned(failover_model::Mode::Consistency),
        PlanKind::Planned(failover_model::Mode::Uptime),
        PlanKind::Forced,
    ];
    let steps = kinds
        .into_iter()
        .flat_map(|k| Plan::of(k, variant).steps.iter().copied())
        .map(|ps| ps.step)
        .chain(STOP)
        .chain(START)
        .filter(|s| s.kind() == StepKind::Effect);
    let mut by_step: BTreeMap<Step, Box<dyn Task<C>>> = BTreeMap::new();
    for step in steps {
        if let Some(task) = SetMembers::of(step) {
            by_step.insert(step, Box::new(task));
        }
    }
    Tasks { by_step }
}

/// The plan of `kind` for `role`, as (stage, step) pairs: what the operator of that role
/// will do, in order (each step has its name and description).
pub fn plan_lines(kind: PlanKind, role: Role, variant: Variant) -> Vec<(Stage, Step)> {
    Plan::of(kind, variant)
        .steps
        .iter()
        .filter(|ps| ps.owner == role)
        .map(|ps| (ps.stage, ps.step))
        .collect()
}
