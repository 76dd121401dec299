//! Dry-run: the plan of one cluster's role, object by object and field by field, with
//! nothing changed. The same tasks run against [`Recording`], a port that reads through
//! to the real cluster, keeps every change in an overlay (so later steps see earlier
//! ones, and controllers are assumed to converge), and records what it would write.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use failover_model::{PlanKind, Role, Stage, Step, StepKind, Variant};

use crate::memory::set_member;
use crate::observe::settled;
use crate::ports::{
    ClusterError, ClusterPort, Desired, FieldChange, Kind, Member, MemberState, ObjectRef, Selector,
};
use crate::spec::Group;
use crate::tasks::{Context, factory, plan_lines};

/// A port that reads through to `inner` and changes nothing.
pub struct Recording<'a, C> {
    inner: &'a C,
    overlay: Mutex<BTreeMap<ObjectRef, MemberState>>,
}

impl<'a, C: ClusterPort> Recording<'a, C> {
    /// Record over `inner`.
    pub fn new(inner: &'a C) -> Self {
        Recording {
            inner,
            overlay: Mutex::new(BTreeMap::new()),
        }
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectRef, MemberState>> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: ClusterPort> ClusterPort for Recording<'_, C> {
    async fn members(&self, kind: Kind, selector: &Selector) -> Result<Vec<Member>, ClusterError> {
        let mut members = self.inner.members(kind, selector).await?;
        let mut overlay = self.overlay();
        for m in &mut members {
            match overlay.get(&m.object) {
                Some(state) => m.state = state.clone(),
                None => {
                    overlay.insert(m.object.clone(), m.state.clone());
                }
            }
        }
        Ok(members)
    }

    async fn set(
        &self,
        object: &ObjectRef,
        desired: Desired,
    ) -> Result<Vec<FieldChange>, ClusterError> {
        let mut overlay = self.overlay();
        let Some(state) = overlay.get(object).cloned() else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        let Some((after, changes)) = set_member(object, &state, desired) else {
            return Ok(Vec::new());
        };
        overlay.insert(object.clone(), settled(&after));
        Ok(changes)
    }

    async fn changed(&self, _timeout: Duration) {}

    async fn identity(&self) -> Result<String, ClusterError> {
        self.inner.identity().await
    }

    async fn recall(&self, group: &str) -> Result<Option<failover_model::Trace>, ClusterError> {
        self.inner.recall(group).await
    }

    /// A dry run keeps nothing.
    async fn remember(
        &self,
        _group: &str,
        _trace: failover_model::Trace,
    ) -> Result<(), ClusterError> {
        Ok(())
    }
}

/// One step of a dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedStep {
    /// Its stage.
    pub stage: Stage,
    /// The step.
    pub step: Step,
    /// The fields it would change (empty for record and await steps, and for effects
    /// already in place).
    pub changes: Vec<FieldChange>,
}

/// The steps this cluster's operator would run in a failover of `kind` where it plays
/// `role`, with every field each would change, changing nothing.
pub async fn dry_run<C: ClusterPort>(
    cluster: &C,
    group: &Group,
    kind: PlanKind,
    role: Role,
) -> Result<Vec<PlannedStep>, ClusterError> {
    let recording = Recording::new(cluster);
    let tasks = factory::<Recording<'_, C>>(Variant::Correct);
    let ctx = Context {
        cluster: &recording,
        group,
    };
    let mut out = Vec::new();
    for (stage, step) in plan_lines(kind, role, Variant::Correct) {
        let changes = match (step.kind(), tasks.get(step)) {
            (StepKind::Effect, Some(task)) => task.execute(&ctx).await?,
            _ => Vec::new(),
        };
        out.push(PlannedStep {
            stage,
            step,
            changes,
        });
    }
    Ok(out)
}

/// Render a dry run as text, one line per step and one per field.
pub fn render(steps: &[PlannedStep]) -> String {
    let mut s = String::new();
    for (i, p) in steps.iter().enumerate() {
        s.push_str(&format!(
            "{:>2}. [{}] {}: {}\n",
            i + 1,
            p.stage,
            p.step,
            p.step.description()
        ));
        for c in &p.changes {
            s.push_str(&format!("      {c}\n"));
        }
    }
    s
}
