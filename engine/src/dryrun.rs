//! Dry-run: the plan of one cluster's role, object by object and field by field, with
//! nothing changed. The same effects run against [`Recording`], a port that reads
//! through to the real cluster, asks it what each write would change
//! ([`ClusterPort::preview`]: the Kubernetes adapter plans its patches as `set` does,
//! without sending them), and keeps the result in an overlay, so later steps see earlier
//! ones (controllers are assumed to converge).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use failover_model::{Plan, PlanKind, Role, Stage, Step, StepKind, Variant};

use crate::effects::carry_out;
use crate::member::{after_set, is_set, settled};
use crate::ports::{
    Changes, ClusterError, ClusterPort, Desired, ExecResult, FieldChange, HttpRequest, JobState,
    Kind, LabelQuery, Member, MemberState, ObjectRef, Selector,
};
use crate::spec::Group;

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
    fn write_parallelism(&self) -> usize {
        self.inner.write_parallelism()
    }

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

    async fn set(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let Some(state) = self.overlay().get(object).cloned() else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        if is_set(&state, desired) {
            return Ok(Vec::new());
        }
        // The cluster's own answer, from the object as it is: a role's plan changes each
        // class of objects once, so no earlier step of the dry run changed it.
        let changes = self.inner.preview(object, desired).await?;
        self.overlay()
            .insert(object.clone(), settled(&after_set(&state, desired)));
        Ok(changes)
    }

    async fn preview(&self, object: &ObjectRef, desired: Desired) -> Changes {
        self.inner.preview(object, desired).await
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

    /// A dry run lists hooks; it runs none.
    async fn ensure_job(
        &self,
        _namespace: &str,
        name: &str,
        _labels: &BTreeMap<String, String>,
        _template: &serde_json::Value,
        _deadline_seconds: i64,
    ) -> Result<JobState, ClusterError> {
        Err(no_hooks(&format!("Job {name}")))
    }

    /// A dry run lists hooks; it runs none.
    async fn exec(
        &self,
        _namespace: &str,
        _selector: &LabelQuery,
        _container: Option<&str>,
        command: &[String],
    ) -> Result<Vec<ExecResult>, ClusterError> {
        Err(no_hooks(&format!("exec `{}`", command.join(" "))))
    }

    /// A dry run lists hooks; it runs none.
    async fn http(&self, request: &HttpRequest) -> Result<u16, ClusterError> {
        Err(no_hooks(&format!("{} {}", request.method, request.url)))
    }
}

fn no_hooks(what: &str) -> ClusterError {
    ClusterError::Unavailable(format!("a dry run runs no hook ({what} not run)"))
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
    /// For a hook step: the hook, where it stands and what it would run.
    pub hook: Option<String>,
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
    let mut out = Vec::new();
    for (stage, step) in plan_lines(group, kind, role) {
        let changes = match step.kind() {
            StepKind::Effect(effect) => carry_out(&recording, group, effect, None).await?,
            StepKind::Record | StepKind::Await | StepKind::Hook(_) => Vec::new(),
        };
        let hook = match step {
            Step::Hook(i) => group.hook(i).map(|h| {
                format!(
                    "{}, {}: {} (timeout {} s, at least once)",
                    h.name,
                    h.place(),
                    h.action_text(group),
                    h.timeout.as_secs()
                )
            }),
            _ => None,
        };
        out.push(PlannedStep {
            stage,
            step,
            changes,
            hook,
        });
    }
    Ok(out)
}

/// The steps of `role` in the plan of `kind` with the group's hooks, with their
/// stages, in order.
pub fn plan_lines(group: &Group, kind: PlanKind, role: Role) -> Vec<(Stage, Step)> {
    Plan::with_hooks(kind, Variant::Correct, group.hooks_layout())
        .steps
        .iter()
        .filter(|ps| ps.owner == role)
        .map(|ps| (ps.stage, ps.step))
        .collect()
}

/// Render a dry run as text, one line per step and one per field.
pub fn render(steps: &[PlannedStep]) -> String {
    let mut s = String::new();
    for (i, p) in steps.iter().enumerate() {
        let what = p.hook.as_deref().unwrap_or(p.step.description());
        s.push_str(&format!("{:>2}. [{}] {}: {what}\n", i + 1, p.stage, p.step));
        for c in &p.changes {
            s.push_str(&format!("      {c}\n"));
        }
    }
    s
}
