//! Hooks: the application's own steps inside a failover, and the [`Task`] abstraction
//! they share with the members' stop/start effects.
//!
//! The model places a hook in the plan ([`failover_model::HookSpot`]) and decides when it
//! runs ([`failover_model::Action::Hook`]); this module runs it. A hook's action is one
//! of:
//! - a Kubernetes **Job** created from the spec's template in the group's namespace,
//!   named after the hook and the failover (`<hook>-<failover id>`), so it is created
//!   once per failover and found again after a restart: success is the Job's `Complete`
//!   condition, failure its `Failed` condition;
//! - an **exec** of a command in every running pod the hook's selector selects: success
//!   is exit code 0 in each;
//! - an **HTTP** request: success is the expected status.
//!
//! A run that has not succeeded within the hook's timeout has failed. Hooks run at least
//! once, not exactly once: a crash after a hook ran and before the journal recorded it
//! runs it again (a Job is found again instead; an exec or a request is sent again).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use failover_model::{Effect, FailoverId, HookSpot, OnFailure, Role, Step};

use crate::effects::{EffectError, StageName};
use crate::executor::bounded;
use crate::observe::Members;
use crate::ports::{Clock, ClusterError, ClusterPort, FieldChange, LabelQuery};
use crate::spec::Group;

/// A hook of a group, as its spec defines it (validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Its name (unique in the group; part of its Jobs' names).
    pub name: String,
    /// Where it stands in the plan and what its failure does.
    pub spot: HookSpot,
    /// A run that has not succeeded by then has failed.
    pub timeout: Duration,
    /// What it does.
    pub action: HookAction,
}

/// What a hook does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookAction {
    /// Create a Job (once per failover) and wait for its `Complete` condition.
    Job {
        /// The Job template's `metadata.labels` and `metadata.annotations` and its `spec`
        /// (a `batch/v1` JobTemplateSpec as JSON).
        template: serde_json::Value,
    },
    /// Run a command in every running pod the selector selects in the group's
    /// namespace; every one must exit with 0.
    Exec {
        /// The pods.
        selector: LabelQuery,
        /// The container (the pod's first when unset).
        container: Option<String>,
        /// The command and its arguments.
        command: Vec<String>,
    },
    /// Send an HTTP request and expect a status.
    Http(HttpRequest),
}

/// An HTTP request of a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`...
    pub method: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// The body to send, if any.
    pub body: Option<String>,
    /// The status that means success.
    pub expected_status: u16,
}

/// A hook's Job as the cluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Neither `Complete` nor `Failed` yet.
    Running,
    /// Its `Complete` condition is true.
    Complete,
    /// Its `Failed` condition is true (the condition's reason and message).
    Failed(String),
}

/// One pod's answer to a hook's exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    /// The pod.
    pub pod: String,
    /// The command's exit code.
    pub exit_code: i32,
    /// The end of what it wrote (stdout and stderr), for the failure message.
    pub output: String,
}

/// Why a hook's run failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The action ran and reported failure.
    #[error("{0}")]
    Failed(String),
    /// It did not succeed within its timeout.
    #[error("no success within {0} s")]
    TimedOut(u64),
    /// The cluster (or the endpoint) could not be reached or refused the call.
    #[error("{0}")]
    Cluster(#[from] ClusterError),
}

/// A failover-scoped name for a hook's Job: `<hook>-<failover id, 8 hex digits>`,
/// at most 63 characters (a Job's name becomes a label value of its pods).
pub fn job_name(hook: &str, id: FailoverId) -> String {
    let suffix = format!("-{:08x}", id as u32);
    let room = 63 - suffix.len();
    let base: String = hook.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

/// The labels every Job of a hook carries.
pub fn job_labels(group: &Group, hook: &str, id: FailoverId) -> BTreeMap<String, String> {
    let group_name = group.key.rsplit('/').next().unwrap_or_default();
    BTreeMap::from([
        ("failover.rs/group".to_owned(), group_name.to_owned()),
        ("failover.rs/hook".to_owned(), hook.to_owned()),
        ("failover.rs/failover".to_owned(), format!("{id:016x}")),
    ])
}

impl Hook {
    /// `before demote-volumes on the source (abort)`.
    pub fn place(&self) -> String {
        let s = &self.spot;
        format!(
            "{} {} on the {} ({})",
            if s.after { "after" } else { "before" },
            s.anchor,
            match s.side {
                Role::Source => "source",
                Role::Target => "target",
            },
            s.on_failure.name()
        )
    }

    /// What its action does, in a few words.
    pub fn action_text(&self, group: &Group) -> String {
        match &self.action {
            HookAction::Job { .. } => format!("Job {}/{}-<failover>", group.namespace, self.name),
            HookAction::Exec {
                selector,
                container,
                command,
            } => format!(
                "exec `{}` in {} pods {selector}{}",
                command.join(" "),
                group.namespace,
                container
                    .as_ref()
                    .map(|c| format!(" (container {c})"))
                    .unwrap_or_default()
            ),
            HookAction::Http(r) => {
                format!("{} {} expecting {}", r.method, r.url, r.expected_status)
            }
        }
    }

    /// Its failure rolls the failover back where that is safe (else retried).
    pub fn aborts(&self) -> bool {
        self.spot.on_failure == OnFailure::Abort
    }
}

/// How often a hook's Job is looked at while it runs.
pub const JOB_POLL: Duration = Duration::from_millis(500);

/// Run `hook` for failover `id` on `cluster`: at most its timeout.
pub async fn run_hook<C: ClusterPort, K: Clock>(
    cluster: &C,
    clock: &K,
    group: &Group,
    hook: &Hook,
    id: FailoverId,
) -> Result<String, HookError> {
    let timeout = hook.timeout;
    let last_error: std::sync::Mutex<Option<ClusterError>> = std::sync::Mutex::new(None);
    let run = async {
        match &hook.action {
            HookAction::Job { template } => {
                let name = job_name(&hook.name, id);
                let labels = job_labels(group, &hook.name, id);
                let deadline = timeout.as_secs().max(1) as i64;
                loop {
                    // A call that fails (an API server that blinks) is tried again at
                    // the poll's pace until the timeout, which then names it.
                    let state = match cluster
                        .ensure_job(&group.namespace, &name, &labels, template, deadline)
                        .await
                    {
                        Ok(state) => state,
                        Err(e) => {
                            tracing::warn!(error = %e, job = %name, "hook Job call failed; retried");
                            *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            clock.sleep(JOB_POLL).await;
                            continue;
                        }
                    };
                    match state {
                        JobState::Complete => return Ok(format!("Job {name} complete")),
                        JobState::Failed(why) => {
                            return Err(HookError::Failed(format!("Job {name} failed: {why}")));
                        }
                        JobState::Running => clock.sleep(JOB_POLL).await,
                    }
                }
            }
            HookAction::Exec {
                selector,
                container,
                command,
            } => {
                let results = cluster
                    .exec(&group.namespace, selector, container.as_deref(), command)
                    .await?;
                if results.is_empty() {
                    return Err(HookError::Failed(format!(
                        "no running pod matches {selector} in {}",
                        group.namespace
                    )));
                }
                let failed: Vec<String> = results
                    .iter()
                    .filter(|r| r.exit_code != 0)
                    .map(|r| format!("{} exited {}: {}", r.pod, r.exit_code, r.output.trim()))
                    .collect();
                if failed.is_empty() {
                    Ok(format!("exec succeeded in {} pods", results.len()))
                } else {
                    Err(HookError::Failed(failed.join("; ")))
                }
            }
            HookAction::Http(request) => {
                let status = cluster.http(request).await?;
                if status == request.expected_status {
                    Ok(format!(
                        "{} {} answered {status}",
                        request.method, request.url
                    ))
                } else {
                    Err(HookError::Failed(format!(
                        "{} {} answered {status}, expected {}",
                        request.method, request.url, request.expected_status
                    )))
                }
            }
        }
    };
    let ran = bounded(clock, timeout, run).await;
    ran.unwrap_or_else(
        || match last_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(HookError::Failed(format!(
                "no success within {} s; the last call failed: {e}",
                timeout.as_secs()
            ))),
            None => Err(HookError::TimedOut(timeout.as_secs())),
        },
    )
}

/// What a [`Task`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// An effect: the fields it changed.
    Changed(Vec<FieldChange>),
    /// A hook: what it reported.
    Hook(String),
}

/// Why a [`Task`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// An effect failed.
    #[error(transparent)]
    Effect(#[from] EffectError),
    /// A hook failed.
    #[error("hook {hook}: {error}")]
    Hook {
        /// The hook's name.
        hook: String,
        /// Why.
        error: HookError,
    },
}

/// A boxed future of a task's outcome.
pub type TaskRun<'a> = Pin<Box<dyn Future<Output = Result<Done, TaskError>> + Send + 'a>>;

/// A named, described unit of the operator's work on its own cluster, run by the
/// executor with lease keeping beside it: the members' stop/start effects
/// ([`EffectTask`]) and hooks ([`HookTask`]).
pub trait Task: Send + Sync {
    /// Its name, for logs and status (`scale-down-workloads`, `hook quiesce`).
    fn name(&self) -> String;
    /// What it does, in a few words.
    fn describe(&self, group: &Group) -> String;
    /// The plan step it carries out.
    fn step(&self) -> Step;
    /// Carry it out.
    fn execute<'a, C: ClusterPort, K: Clock>(
        &'a self,
        cluster: &'a C,
        clock: &'a K,
        group: &'a Group,
        listed: Option<&'a Members>,
    ) -> TaskRun<'a>;
}

/// An effect on the group's members of one class ([`crate::effects::carry_out`]),
/// within the step timeout.
#[derive(Clone, Copy, Debug)]
pub struct EffectTask {
    /// The effect.
    pub effect: Effect,
    /// The stage it serves, for errors.
    pub stage: StageName,
}

impl Task for EffectTask {
    fn name(&self) -> String {
        self.effect.name().to_owned()
    }

    fn describe(&self, _group: &Group) -> String {
        self.effect.step().description().to_owned()
    }

    fn step(&self) -> Step {
        self.effect.step()
    }

    fn execute<'a, C: ClusterPort, K: Clock>(
        &'a self,
        cluster: &'a C,
        clock: &'a K,
        group: &'a Group,
        listed: Option<&'a Members>,
    ) -> TaskRun<'a> {
        Box::pin(async move {
            crate::executor::run_step(
                cluster,
                group,
                clock,
                self.effect,
                group.step_timeout,
                listed,
            )
            .await
            .map(Done::Changed)
            .map_err(|source| {
                TaskError::Effect(EffectError {
                    stage: self.stage,
                    effect: self.effect,
                    source,
                })
            })
        })
    }
}

/// A hook's run for one failover ([`run_hook`]), within the hook's timeout.
#[derive(Clone, Debug)]
pub struct HookTask<'h> {
    /// The hook's index in the group's hooks.
    pub index: u8,
    /// The hook.
    pub hook: &'h Hook,
    /// The failover it runs for.
    pub id: FailoverId,
}

impl Task for HookTask<'_> {
    fn name(&self) -> String {
        format!("hook {}", self.hook.name)
    }

    fn describe(&self, group: &Group) -> String {
        format!("{}: {}", self.hook.place(), self.hook.action_text(group))
    }

    fn step(&self) -> Step {
        Step::Hook(self.index)
    }

    fn execute<'a, C: ClusterPort, K: Clock>(
        &'a self,
        cluster: &'a C,
        clock: &'a K,
        group: &'a Group,
        _listed: Option<&'a Members>,
    ) -> TaskRun<'a> {
        Box::pin(async move {
            run_hook(cluster, clock, group, self.hook, self.id)
                .await
                .map(Done::Hook)
                .map_err(|error| TaskError::Hook {
                    hook: self.hook.name.clone(),
                    error,
                })
        })
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.place())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit_a_label_and_name_the_failover() {
        assert_eq!(
            job_name("quiesce", 0x1234_5678_9abc_def0),
            "quiesce-9abcdef0"
        );
        let long = "h".repeat(80);
        let name = job_name(&long, 1);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-00000001"));
    }
}
