//! Hooks on a real cluster: the hook's Job (created once per failover, found again
//! after a restart), an exec in the selected pods, and the HTTP client (also the
//! operator's auto-failover probe's: one client in the project).
//!
//! # Errors
//!
//! A Job or a pod is not a member kind, so a failed call cannot be
//! [`ClusterError::NotFound`], [`ClusterError::Conflict`] or [`ClusterError::Invalid`]
//! (which name a member): every failure is [`ClusterError::Unavailable`] with a message
//! that says what was asked, the server's answer and, where retrying cannot help (a 4xx
//! other than 401, 408 and 429), that it must be fixed. A 403 names the permission the
//! operator's ServiceAccount lacks (verb, resource, API group, namespace).

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, AttachParams, ListParams, PostParams};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::status_code;
use crate::hooks::{ExecResult, HttpRequest, JobState};
use crate::ports::{ClusterError, LabelQuery};

/// An HTTP/1 client for `http://` and `https://` (rustls, the system's roots).
pub type HttpsClient = HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A new client; `Err` if the system has no TLS roots.
pub fn http_client() -> Result<HttpsClient, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(HttpClient::builder(TokioExecutor::new()).build(https))
}

/// Send `request` with `client`: the status it got. No answer (refused, unreachable,
/// TLS) and a request that cannot be sent (a malformed URL or header) are
/// [`ClusterError::Unavailable`].
pub async fn send(client: &HttpsClient, request: &HttpRequest) -> Result<u16, ClusterError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        ClusterError::Unavailable(format!("{} {}: {e}", request.method, request.url))
    };
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(&request.url);
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
    let req = builder.body(body).map_err(|e| unavailable(&e))?;
    match client.request(req).await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => {
            // hyper-util's error says "client error (Connect)"; the cause says why.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            Err(unavailable(&why))
        }
    }
}

/// [`crate::ports::ClusterPort::http`]: [`send`] with a client made for the request
/// (hooks are rare; a client kept across requests would keep pooled connections tied to
/// the runtime that opened them).
pub async fn http(request: &HttpRequest) -> Result<u16, ClusterError> {
    let client = http_client().map_err(ClusterError::Unavailable)?;
    send(&client, request).await
}

/// What a hook's call needs to be allowed: RBAC `verb` on `resource` of API `group`.
struct Access<'a> {
    verb: &'a str,
    resource: &'a str,
    group: &'a str,
    namespace: &'a str,
}

/// A kube error of a hook's call (`what` says which), classified like
/// [`super::map_error`]; a 403 names the permission `access` the operator lacks.
fn hook_error(err: kube::Error, what: &str, access: &Access<'_>) -> ClusterError {
    let kube::Error::Api(status) = err else {
        return ClusterError::Unavailable(format!("{what}: {err}"));
    };
    let code = status_code(&status);
    let message = if status.message.is_empty() {
        format!("HTTP {code} {}", status.reason)
    } else {
        status.message.clone()
    };
    let fix = match code {
        403 => format!(
            "; the operator's ServiceAccount needs RBAC verb `{}` on resource `{}` (API group \
             \"{}\") in namespace {}",
            access.verb, access.resource, access.group, access.namespace
        ),
        401 | 408 | 429 => String::new(),
        400..=499 => "; retrying does not help until this is fixed".to_owned(),
        _ => String::new(),
    };
    ClusterError::Unavailable(format!("{what}: HTTP {code}: {message}{fix}"))
}

/// The state a Job's conditions report: `Complete` or `Failed` once that condition is
/// true (`Complete` first), `Running` before.
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete").is_some() {
        return JobState::Complete;
    }
    match is("Failed") {
        Some(c) => {
            let parts: Vec<&str> = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect();
            JobState::Failed(if parts.is_empty() {
                "condition Failed".to_owned()
            } else {
                parts.join(": ")
            })
        }
        None => JobState::Running,
    }
}

/// The Job a hook's template makes: named `name`, its metadata's labels (with `labels`
/// added, which win) and annotations from the template, its spec from the template
/// with `activeDeadlineSeconds` set to `deadline_seconds` unless the template sets one
/// (`backoffLimit` and everything else as the template says).
pub fn job_from_template(
    name: &str,
    labels: &BTreeMap<String, String>,
    template: &serde_json::Value,
    deadline_seconds: i64,
) -> Result<Job, String> {
    let mut all: BTreeMap<String, String> = template
        .pointer("/metadata/labels")
        .filter(|l| !l.is_null())
        .map(|l| serde_json::from_value(l.clone()).map_err(|e| format!("metadata.labels: {e}")))
        .transpose()?
        .unwrap_or_default();
    all.extend(labels.clone());
    let annotations: BTreeMap<String, String> = template
        .pointer("/metadata/annotations")
        .filter(|a| !a.is_null())
        .map(|a| {
            serde_json::from_value(a.clone()).map_err(|e| format!("metadata.annotations: {e}"))
        })
        .transpose()?
        .unwrap_or_default();
    let mut spec = template
        .get("spec")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if spec
        .get("activeDeadlineSeconds")
        .is_none_or(|d| d.is_null())
    {
        spec["activeDeadlineSeconds"] = serde_json::json!(deadline_seconds);
    }
    let job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": all,
            "annotations": annotations,
        },
        "spec": spec,
    });
    serde_json::from_value(job).map_err(|e| format!("the Job template: {e}"))
}

/// [`crate::ports::ClusterPort::ensure_job`] on `client`: get Job `name`; if there is
/// none, create it from the template; if another process created it meanwhile (409),
/// get that one.
pub async fn ensure_job(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    template: &serde_json::Value,
    deadline_seconds: i64,
) -> Result<JobState, ClusterError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let what = format!("Job {namespace}/{name}");
    let access = |verb| Access {
        verb,
        resource: "jobs",
        group: "batch",
        namespace,
    };
    let get = || async {
        jobs.get_opt(name)
            .await
            .map_err(|e| hook_error(e, &format!("get {what}"), &access("get")))
    };
    if let Some(job) = get().await? {
        return Ok(job_state(&job));
    }
    let job = job_from_template(name, labels, template, deadline_seconds)
        .map_err(|e| ClusterError::Unavailable(format!("{what}: {e}")))?;
    match jobs.create(&PostParams::default(), &job).await {
        Ok(job) => Ok(job_state(&job)),
        // Another process created it meanwhile: it is the one.
        Err(kube::Error::Api(s)) if status_code(&s) == 409 => match get().await? {
            Some(job) => Ok(job_state(&job)),
            None => Err(ClusterError::Unavailable(format!(
                "{what}: created by another process and deleted since; retry"
            ))),
        },
        Err(e) => Err(hook_error(e, &format!("create {what}"), &access("create"))),
    }
}

/// How much of a command's output a failure message keeps (its end).
pub const OUTPUT_TAIL: usize = 2048;

/// Read `stream` to its end, keeping its last [`OUTPUT_TAIL`] bytes.
async fn tail(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * OUTPUT_TAIL {
            kept.drain(..kept.len() - OUTPUT_TAIL);
        }
    }
    kept
}

/// The last [`OUTPUT_TAIL`] bytes of `text`, cut at a character boundary.
fn last(text: &str) -> &str {
    let from = text.len().saturating_sub(OUTPUT_TAIL);
    let from = (from..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[from..]
}

/// [`crate::ports::ClusterPort::exec`] on `client`: the pods `selector` selects in
/// `namespace` whose phase is `Running` (and that are not being deleted), the command
/// run in each at once through the `exec` subresource, in `container` or the pod's
/// first. The exit code is the one the status channel reports (0 on `Success`, else the
/// `ExitCode` cause, else 1).
pub async fn exec(
    client: &Client,
    namespace: &str,
    selector: &LabelQuery,
    container: Option<&str>,
    command: &[String],
) -> Result<Vec<ExecResult>, ClusterError> {
    if selector.is_empty() {
        return Ok(Vec::new());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&selector.to_string()))
        .await
        .map_err(|e| {
            let access = Access {
                verb: "list",
                resource: "pods",
                group: "",
                namespace,
            };
            hook_error(e, &format!("list pods {selector} in {namespace}"), &access)
        })?;
    let running = list.items.into_iter().filter(|pod| {
        pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Running")
    });
    let runs = running.map(|pod| {
        let pods = pods.clone();
        async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let first = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone());
            let mut params = AttachParams::default()
                .stdout(true)
                .stderr(true)
                .stdin(false);
            if let Some(c) = container.map(str::to_owned).or(first) {
                params = params.container(c);
            }
            exec_in(&pods, namespace, &name, command, &params).await
        }
    });
    futures::future::join_all(runs).await.into_iter().collect()
}

/// Run `command` in pod `name` and wait for its exit status.
async fn exec_in(
    pods: &Api<Pod>,
    namespace: &str,
    name: &str,
    command: &[String],
    params: &AttachParams,
) -> Result<ExecResult, ClusterError> {
    let mut attached = pods
        .exec(name, command.to_vec(), params)
        .await
        .map_err(|e| {
            let access = Access {
                verb: "create",
                resource: "pods/exec",
                group: "",
                namespace,
            };
            hook_error(e, &format!("exec in pod {namespace}/{name}"), &access)
        })?;
    let status = attached.take_status();
    // Both streams at once: the process blocks on a full one while the other is read.
    let (stdout, stderr) = tokio::join!(tail(attached.stdout()), tail(attached.stderr()));
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    if let Err(e) = attached.join().await {
        tracing::debug!(pod = %name, error = %e, "exec stream ended with an error");
    }
    let mut output = String::from_utf8_lossy(&stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr));
    let exit_code = match &status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => {
            let code = s
                .details
                .as_ref()
                .and_then(|d| d.causes.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.trim().parse().ok());
            if code.is_none()
                && let Some(message) = s.message.as_deref().filter(|m| !m.is_empty())
            {
                // Not the command's failure (no such container or executable): say so.
                output.push_str(message);
            }
            code.unwrap_or(1)
        }
        None => {
            output.push_str("(the exec ended without an exit status)");
            1
        }
    };
    Ok(ExecResult {
        pod: name.to_owned(),
        exit_code,
        output: last(&output).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    #[test]
    fn a_job_from_a_template_keeps_its_metadata_and_gets_a_deadline() {
        let template = serde_json::json!({
            "metadata": {"labels": {"app": "hooks", "failover.rs/hook": "theirs"},
                         "annotations": {"a": "b"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
        });
        let labels = BTreeMap::from([("failover.rs/hook".to_owned(), "q".to_owned())]);
        let job = job_from_template("q-00000001", &labels, &template, 120).expect("a Job");
        let meta = &job.metadata;
        assert_eq!(meta.name.as_deref(), Some("q-00000001"));
        let l = meta.labels.clone().unwrap_or_default();
        assert_eq!(l.get("app").map(String::as_str), Some("hooks"));
        assert_eq!(l.get("failover.rs/hook").map(String::as_str), Some("q"));
        let a = meta.annotations.clone().unwrap_or_default();
        assert_eq!(a.get("a").map(String::as_str), Some("b"));
        let spec = job.spec.expect("spec");
        assert_eq!(spec.active_deadline_seconds, Some(120));
        assert_eq!(spec.backoff_limit, Some(0));
        let own = serde_json::json!({"spec": {"activeDeadlineSeconds": 30, "template": {}}});
        let job = job_from_template("q-00000001", &labels, &own, 120).expect("a Job");
        assert_eq!(job.spec.expect("spec").active_deadline_seconds, Some(30));
        assert!(
            job_from_template(
                "q",
                &labels,
                &serde_json::json!({"metadata": {"labels": 1}}),
                1
            )
            .is_err()
        );
    }

    #[test]
    fn a_job_reports_its_conditions() {
        let with = |conditions: &[(&str, &str, &str, &str)]| Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s, r, m)| JobCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            reason: Some((*r).into()),
                            message: Some((*m).into()),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                ..JobStatus::default()
            }),
            ..Job::default()
        };
        assert_eq!(job_state(&Job::default()), JobState::Running);
        assert_eq!(
            job_state(&with(&[(
                "FailureTarget",
                "True",
                "BackoffLimitExceeded",
                ""
            )])),
            JobState::Running
        );
        assert_eq!(
            job_state(&with(&[("Complete", "True", "", "")])),
            JobState::Complete
        );
        assert_eq!(
            job_state(&with(&[(
                "Failed",
                "True",
                "DeadlineExceeded",
                "Job was active longer than specified deadline"
            )])),
            JobState::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into()
            )
        );
        assert_eq!(
            job_state(&with(&[("Failed", "False", "x", "y")])),
            JobState::Running
        );
    }

    #[test]
    fn a_forbidden_call_names_the_permission() {
        let forbidden = kube::Error::Api(
            kube::core::Status::failure("jobs.batch is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let access = Access {
            verb: "create",
            resource: "jobs",
            group: "batch",
            namespace: "shop",
        };
        let e = hook_error(forbidden, "create Job shop/q-1", &access).to_string();
        for part in [
            "create Job shop/q-1",
            "403",
            "verb `create`",
            "resource `jobs`",
            "\"batch\"",
            "namespace shop",
        ] {
            assert!(e.contains(part), "{part:?} missing: {e}");
        }
        let invalid = kube::Error::Api(
            kube::core::Status::failure("spec.template: Required value", "Invalid")
                .with_code(422)
                .boxed(),
        );
        let e = hook_error(invalid, "create Job shop/q-1", &access).to_string();
        assert!(
            e.contains("Required value") && e.contains("retrying does not help"),
            "{e}"
        );
    }

    #[test]
    fn output_keeps_its_end() {
        let long = format!("{}é{}", "a".repeat(3000), "b".repeat(OUTPUT_TAIL - 1));
        let kept = last(&long);
        assert!(
            kept.len() <= OUTPUT_TAIL && kept.ends_with('b'),
            "{}",
            kept.len()
        );
        assert_eq!(last("short"), "short");
    }

    #[tokio::test]
    async fn a_request_nobody_answers_is_unavailable() {
        let request = HttpRequest {
            method: "GET".into(),
            url: "http://127.0.0.1:1/".into(),
            headers: BTreeMap::new(),
            body: None,
            expected_status: 200,
        };
        match http(&request).await {
            Err(ClusterError::Unavailable(why)) => assert!(why.contains("127.0.0.1:1"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
