//! The two controllers (`kube::runtime::Controller`, level-triggered, idempotent).
//!
//! - `FailoverGroup`: parses the spec (an invalid one gets `status.invalid` and a
//!   `Ready=False` condition naming the problem, and its loop is stopped), runs one
//!   [`GroupLoop`] per valid group, restarts it when the spec changes, stops it when the
//!   group is deleted.
//! - `Failover`: hands the object's request to its group's loop, which writes it into
//!   the record (a request made in either cluster works: the record carries it to the
//!   other operator), and mirrors its life in `status`: `Pending` (waiting to start, or
//!   for another request of this cluster), `Running`, `NeedsOperator`, `Completed`,
//!   `Aborted`, `Refused` (another request holds the group), `Withdrawn`, `Invalid`.
//!
//! Before it starts a group's loop it checks that it has every permission the loop
//! will use ([`access`]); a group it lacks some for gets `Ready=False`, reason
//! `MissingPermissions`, naming them, and no loop.
//!
//! Deleting a `Failover` that has not started withdraws its request; deleting one that
//! runs does not stop it (a failover half done is not undone by deleting an object:
//! `kubectl failover abort` rolls it back while that is safe).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use failover_engine::dynamo::DynamoStore;
use failover_engine::executor::Operator;
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::SystemClock;
use failover_engine::spec::{
    Condition, Failover, FailoverGroup, FailoverGroupStatus, FailoverStatus, Group, failover_id,
};
use failover_model::{Outcome, Record};
use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::access;
use crate::config::Config;
use crate::group::{GroupLoop, MANAGER, View, apply_status, outcome_name};

/// What the controllers share.
pub struct Shared {
    /// The API client (the operator's is rate-limited: `k8s::limit::limited`).
    pub client: Client,
    /// The cluster adapter every group loop and dry run shares: its watch caches (one
    /// per kind and namespace) serve every group.
    pub cluster: KubeCluster,
    /// The DynamoDB client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// The configuration.
    pub config: Config,
    /// The running group loops, by `namespace/name`.
    pub loops: Mutex<BTreeMap<String, Running>>,
    /// The metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This replica leads (runs the controllers and loops).
    pub leading: std::sync::atomic::AtomicBool,
    /// The permissions the process lacks, in words, while it lacks any
    /// ([`access::process_needs`]): nothing runs and `/readyz` says this.
    pub missing: std::sync::Mutex<Option<String>>,
    /// Watched namespaces whose two controllers' caches have synced (all namespaces
    /// count as one).
    pub synced: std::sync::atomic::AtomicUsize,
}

/// A group loop and the validated group it runs.
pub struct Running {
    /// The loop.
    pub handle: GroupLoop,
    /// The group.
    pub group: Group,
}

/// A controller error: the reconcile is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run both controllers over each of `namespaces` (all namespaces when empty) until
/// `shutdown` resolves; then stop every group loop after its current turn.
pub async fn run_namespaces(
    shared: Arc<Shared>,
    namespaces: &[String],
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use futures::FutureExt;
    let shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let shutdown = shutdown.shared();
    if namespaces.is_empty() {
        run(shared, None, shutdown).await;
        return;
    }
    futures::future::join_all(
        namespaces
            .iter()
            .map(|ns| run(shared.clone(), Some(ns.clone()), shutdown.clone())),
    )
    .await;
}

/// Run both controllers over `namespace` (all when `None`) until `shutdown` resolves;
/// then stop every group loop of that namespace after its current turn.
pub async fn run(
    shared: Arc<Shared>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let ns = namespace.as_deref();
    let groups = Controller::new(
        api::<FailoverGroup>(&shared.client, ns),
        watcher::Config::default(),
    );
    let group_store = groups.store();
    let failovers = Controller::new(
        api::<Failover>(&shared.client, ns),
        watcher::Config::default(),
    );
    let failover_store = failovers.store();
    let sync = {
        let (groups, failovers, shared) =
            (group_store.clone(), failover_store.clone(), shared.clone());
        async move {
            if groups.wait_until_ready().await.is_ok() && failovers.wait_until_ready().await.is_ok()
            {
                shared
                    .synced
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let groups = groups
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_group, on_error, shared.clone())
        .for_each(|_| async {});
    let failovers = failovers
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_failover, on_error, shared.clone())
        .for_each(|_| async {});
    let janitor = janitor(
        shared.clone(),
        namespace.clone(),
        group_store,
        failover_store,
        stop_rx,
    );
    let signal = async move {
        shutdown.await;
        info!("shutting down: controllers stop, every group loop ends its turn");
        let _ = stop_tx.send(true);
    };
    tokio::join!(groups, failovers, janitor, signal, sync);
    let loops = {
        let mut all = shared.loops.lock().await;
        let keys: Vec<String> = all
            .keys()
            .filter(|k| {
                namespace
                    .as_deref()
                    .is_none_or(|ns| k.split_once('/').is_some_and(|(n, _)| n == ns))
            })
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| all.remove(&k).map(|r| (k, r)))
            .collect::<Vec<_>>()
    };
    for (key, running) in loops {
        running.handle.stop().await;
        info!(group = %key, "group loop stopped");
    }
}

/// Who reports the operator's Events.
fn reporter(config: &Config) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance: config.identity.clone(),
    }
}

fn on_error<K>(_: Arc<K>, error: &Error, _: Arc<Shared>) -> Action {
    warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Stop the loops of deleted groups, and withdraw the requests of deleted `Failover`
/// objects that have not started (the controllers never see a deleted object).
async fn janitor(
    shared: Arc<Shared>,
    namespace: Option<String>,
    groups: Store<FailoverGroup>,
    failovers: Store<Failover>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut loops = shared.loops.lock().await;
        // Only this controller's namespace (each watched namespace has its own).
        let ours = |key: &str| {
            namespace
                .as_deref()
                .is_none_or(|ns| key.split_once('/').is_some_and(|(k, _)| k == ns))
        };
        let gone: Vec<String> = loops
            .keys()
            .filter(|key| ours(key))
            .filter(|key| {
                let (ns, name) = key.split_once('/').unwrap_or(("", key));
                groups.get(&ObjectRef::new(name).within(ns)).is_none()
            })
            .cloned()
            .collect();
        for key in gone {
            if let Some(running) = loops.remove(&key) {
                info!(group = %key, "group deleted: stopping its loop");
                running.handle.stop().await;
            }
        }
        for running in loops.values().filter(|r| ours(&r.group.key)) {
            let mut inputs = running
                .handle
                .inputs
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let Some(request) = inputs.request else {
                continue;
            };
            let ns = running.group.key.split_once('/').map_or("", |(ns, _)| ns);
            let exists = failovers.state().iter().any(|f| {
                f.namespace().as_deref() == Some(ns)
                    && f.uid().as_deref().map(failover_id) == Some(request.id)
            });
            if !exists {
                info!(
                    id = format!("{:016x}", request.id),
                    "Failover deleted: request withdrawn unless it started"
                );
                inputs.request = None;
                inputs.withdraw = Some(request.id);
            }
        }
    }
}

async fn reconcile_group(fg: Arc<FailoverGroup>, shared: Arc<Shared>) -> Result<Action, Error> {
    let ns = fg.namespace().unwrap_or_default();
    let name = fg.name_any();
    let key = format!("{ns}/{name}");
    let generation = fg.metadata.generation;
    let group = Group::parse(&ns, &name, &fg.spec, &shared.config.cluster_name);
    let mut loops = shared.loops.lock().await;
    match group {
        Err(invalid) => {
            if let Some(running) = loops.remove(&key) {
                warn!(group = %key, error = %invalid, "group became invalid: stopping its loop");
                running.handle.stop().await;
            }
            let status = FailoverGroupStatus {
                invalid: Some(invalid.to_string()),
                ..without_loop(generation, "InvalidSpec", invalid.to_string())
            };
            let api: Api<FailoverGroup> = Api::namespaced(shared.client.clone(), &ns);
            apply_status(&api, &name, &status).await?;
            Ok(Action::await_change())
        }
        Ok(group) => {
            let current = loops
                .get(&key)
                .is_some_and(|r| r.handle.generation == generation && !r.handle.finished());
            if !current {
                if let Some(old) = loops.remove(&key) {
                    info!(group = %key, "spec changed (or the loop ended): restarting its loop");
                    old.handle.stop().await;
                }
                // Nothing starts (no record, no change) without every permission the
                // loop will use.
                let api: Api<FailoverGroup> = Api::namespaced(shared.client.clone(), &ns);
                let (reason, message) = match access::missing(
                    &shared.client,
                    &access::needs(&group),
                )
                .await
                {
                    Ok(lacking) if lacking.is_empty() => (None, String::new()),
                    Ok(lacking) => (
                        Some("MissingPermissions"),
                        access::message(&lacking, "the group's loop"),
                    ),
                    Err(e) => (
                        Some("PermissionsUnknown"),
                        format!(
                            "the operator could not check its permissions (SelfSubjectAccessReview): {e}; it retries in 30 s and changes nothing meanwhile"
                        ),
                    ),
                };
                if let Some(reason) = reason {
                    warn!(group = %key, reason, "{message}");
                    let status = FailoverGroupStatus {
                        problems: vec![message.clone()],
                        ..without_loop(generation, reason, message)
                    };
                    apply_status(&api, &name, &status).await?;
                    return Ok(Action::requeue(Duration::from_secs(30)));
                }
                let cluster = shared.cluster.clone();
                let store = DynamoStore::new(shared.dynamo.clone(), shared.config.table.clone());
                let mut op = Operator::new(cluster, store, SystemClock, group.clone());
                if let Some(id) = &shared.config.cluster_id {
                    op = op.with_cluster_id(id);
                }
                let handle = GroupLoop::start(
                    op,
                    api,
                    name.clone(),
                    generation,
                    shared.config.status_history,
                    shared.metrics.clone(),
                    (
                        shared.client.clone(),
                        reporter(&shared.config),
                        fg.object_ref(&()),
                    ),
                    shared.config.leader_election.then(|| {
                        Duration::from_secs(shared.config.leader_lease_seconds)
                            + crate::auto::LEADER_GRACE
                    }),
                );
                info!(group = %key, "group loop started");
                loops.insert(key, Running { handle, group });
            }
            Ok(Action::requeue(Duration::from_secs(30)))
        }
    }
}

/// The status of a group whose loop does not run: only `Ready=False` with `reason`.
fn without_loop(generation: Option<i64>, reason: &str, message: String) -> FailoverGroupStatus {
    FailoverGroupStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: reason.into(),
            message,
        }],
        ..FailoverGroupStatus::default()
    }
}

/// A `Failover`'s status: its phase, its id and what happened, in words.
fn said(phase: &str, id: u64, message: impl Into<String>) -> FailoverStatus {
    FailoverStatus {
        phase: Some(phase.into()),
        id: Some(format!("{id:016x}")),
        message: Some(message.into()),
        ..FailoverStatus::default()
    }
}

/// The phase of request `id` in the record and the loop's view: `None` while it has
/// not reached the record yet.
fn phase(view: &View, id: u64) -> Option<FailoverStatus> {
    if let Some((refused, holder)) = view.refused
        && refused == id
    {
        return Some(said(
            "Refused",
            id,
            format!(
                "another request ({holder:016x}) holds the group; delete this Failover and \
                 ask again once that one ended"
            ),
        ));
    }
    let r: &Record = view.record.as_ref()?;
    if let Some(h) = r.history.iter().find(|h| h.id == id) {
        let phase = match h.outcome {
            Outcome::Completed(_) | Outcome::Resolved | Outcome::NoOp => "Completed",
            Outcome::Aborted(_) => "Aborted",
            Outcome::Withdrawn => "Withdrawn",
        };
        return Some(FailoverStatus {
            outcome: Some(outcome_name(h.outcome)),
            ..said(phase, id, format!("ended: {}", outcome_name(h.outcome)))
        });
    }
    if let Some(f) = r.failover.filter(|f| f.id == id) {
        let stage = f.next_step().map(|s| s.stage.to_string());
        return Some(FailoverStatus {
            phase: Some(if f.stuck { "NeedsOperator" } else { "Running" }.into()),
            id: Some(format!("{id:016x}")),
            stage,
            message: f.stuck.then(|| {
                "a stage passed its deadline after the target promoted: fix the objects the \
                 group's status names, or `kubectl failover retry|resolve`"
                    .to_string()
            }),
            ..FailoverStatus::default()
        });
    }
    if r.request.is_some_and(|p| p.id == id) {
        return Some(said(
            "Pending",
            id,
            "accepted by the record; waiting to start",
        ));
    }
    None
}

fn terminal(status: &FailoverStatus) -> bool {
    matches!(
        status.phase.as_deref(),
        Some("Completed" | "Aborted" | "Withdrawn" | "Refused" | "Invalid" | "DryRun")
    )
}

async fn reconcile_failover(fo: Arc<Failover>, shared: Arc<Shared>) -> Result<Action, Error> {
    let ns = fo.namespace().unwrap_or_default();
    let name = fo.name_any();
    let api: Api<Failover> = Api::namespaced(shared.client.clone(), &ns);
    if fo.status.as_ref().is_some_and(terminal) {
        return Ok(Action::await_change());
    }
    let Some(uid) = fo.uid() else {
        return Ok(Action::await_change());
    };
    let id = failover_id(&uid);
    let key = format!("{ns}/{}", fo.spec.group);
    let loops = shared.loops.lock().await;
    let Some(running) = loops.get(&key) else {
        let status = said(
            "Pending",
            id,
            format!("no valid FailoverGroup {key} runs in this cluster (see its status)"),
        );
        drop(loops);
        apply_status(&api, &name, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let request = match running.group.request(id, &fo.spec) {
        Ok(r) => r,
        Err(invalid) => {
            let status = said("Invalid", id, invalid.to_string());
            drop(loops);
            apply_status(&api, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    if fo.spec.dry_run {
        // Only the plan: what this cluster would change, object by object and field by
        // field (the adapter's own patch planning); nothing is written to the record.
        let group = running.group.clone();
        drop(loops);
        let role = if request.to == group.me {
            failover_model::Role::Target
        } else {
            failover_model::Role::Source
        };
        let cluster = shared.cluster.clone();
        let kind = failover_model::PlanKind::Planned(request.mode);
        let status = match failover_engine::dryrun::dry_run(&cluster, &group, kind, role).await {
            Ok(plan) => said("DryRun", id, failover_engine::dryrun::render(&plan)),
            Err(e) => said("DryRun", id, format!("the plan could not be computed: {e}")),
        };
        apply_status(&api, &name, &status).await?;
        return Ok(Action::await_change());
    }
    let view = running.handle.view.borrow().clone();
    let status = {
        let mut inputs = running
            .handle
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match phase(&view, id) {
            Some(status) => {
                if terminal(&status) && inputs.request.is_some_and(|r| r.id == id) {
                    inputs.request = None;
                }
                status
            }
            None => match inputs.request {
                Some(other) if other.id != id => said(
                    "Pending",
                    id,
                    format!(
                        "waiting: this cluster's request {:016x} goes first",
                        other.id
                    ),
                ),
                _ => {
                    inputs.request = Some(request);
                    said("Pending", id, "being written into the group's record")
                }
            },
        }
    };
    drop(loops);
    if fo.status.as_ref() != Some(&status) {
        apply_status(&api, &name, &status).await?;
    }
    Ok(if terminal(&status) {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_model::{AbortReason, Cluster, HistoryEntry, InFlight, Mode, Pending, PlanKind};

    fn view(record: Record) -> View {
        View {
            record: Some(record),
            ..View::default()
        }
    }

    fn phase_of(v: &View, id: u64) -> Option<String> {
        phase(v, id).and_then(|s| s.phase)
    }

    #[test]
    fn a_request_is_pending_running_then_ended_as_the_record_says() {
        let id = 0x5eed;
        let mut r = Record::new(Cluster::A, [Some(0), Some(0)]);
        assert_eq!(
            phase_of(&view(r.clone()), id),
            None,
            "not in the record yet"
        );
        r.request = Some(Pending {
            id,
            to: Cluster::B,
            mode: Mode::Consistency,
            by: Cluster::B,
        });
        assert_eq!(phase_of(&view(r.clone()), id).as_deref(), Some("Pending"));
        r.request = None;
        r.failover = Some(InFlight {
            id,
            kind: PlanKind::Planned(Mode::Consistency),
            source: Cluster::A,
            target: Cluster::B,
            done: 4,
            stuck: false,
            asked: None,
            hooks: failover_model::Hooks::NONE,
        });
        let running = phase(&view(r.clone()), id).expect("running");
        assert_eq!(running.phase.as_deref(), Some("Running"));
        assert_eq!(running.stage.as_deref(), Some("source-preparation"));
        if let Some(f) = r.failover.as_mut() {
            f.stuck = true;
        }
        assert_eq!(
            phase_of(&view(r.clone()), id).as_deref(),
            Some("NeedsOperator")
        );
        r.failover = None;
        r.history.push(HistoryEntry {
            id,
            outcome: Outcome::Aborted(AbortReason::Person),
        });
        let ended = phase(&view(r.clone()), id).expect("ended");
        assert_eq!(ended.phase.as_deref(), Some("Aborted"));
        assert_eq!(ended.outcome.as_deref(), Some("aborted-by-person"));
        assert!(terminal(&ended));
    }

    #[test]
    fn a_refused_request_names_the_one_holding_the_group() {
        let v = View {
            refused: Some((1, 2)),
            ..View::default()
        };
        let s = phase(&v, 1).expect("refused");
        assert_eq!(s.phase.as_deref(), Some("Refused"));
        assert!(s.message.unwrap_or_default().contains("0000000000000002"));
        assert_eq!(phase(&v, 3), None);
    }

    // ---------------------------------------------------------------------------------
    // The controllers against a mocked API server: the exact requests they send.
    // ---------------------------------------------------------------------------------

    use failover_engine::spec::{FailoverGroupSpec, FailoverMode, FailoverSpec};
    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn shared(service: tower_test::mock::Mock<Request<Body>, Response<Body>>) -> Arc<Shared> {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        use clap::Parser;
        let client = Client::new(service, "default");
        Arc::new(Shared {
            cluster: KubeCluster::new(client.clone()),
            client,
            dynamo: aws_sdk_dynamodb::Client::from_conf(conf),
            config: Config::parse_from(["failover-operator", "--cluster-name", "east"]),
            loops: Mutex::new(BTreeMap::new()),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            leading: std::sync::atomic::AtomicBool::new(true),
            synced: std::sync::atomic::AtomicUsize::new(0),
            missing: std::sync::Mutex::new(None),
        })
    }

    /// Answer the one request the scenario expects: its method, path and query, and
    /// its body as JSON; the answer is `object` with the body's status.
    async fn expect_status_patch(
        mut handle: Handle,
        path: &str,
        mut object: serde_json::Value,
    ) -> serde_json::Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(request.uri().path(), path);
        let mut query: Vec<&str> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        query.sort_unstable();
        assert_eq!(query, ["fieldManager=failover-operator", "force=true"]);
        assert_eq!(
            request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("")),
            Some("application/apply-patch+yaml")
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        object["status"] = body["status"].clone();
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&object).expect("json")))
                .expect("response"),
        );
        body
    }

    #[tokio::test]
    async fn an_invalid_group_gets_its_problem_in_status_and_no_loop() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let shared = shared(service);
        let mut fg = FailoverGroup::new(
            "shop",
            FailoverGroupSpec {
                clusters: vec!["east".into()],
                ..FailoverGroupSpec::default()
            },
        );
        fg.metadata.namespace = Some("shop".into());
        fg.metadata.generation = Some(4);
        let object = serde_json::to_value(&fg).expect("json");
        let server = tokio::spawn(expect_status_patch(
            handle,
            "/apis/failover.rs/v1alpha1/namespaces/shop/failovergroups/shop/status",
            object,
        ));
        let action = reconcile_group(Arc::new(fg), shared.clone())
            .await
            .expect("reconcile");
        assert_eq!(action, Action::await_change());
        let body = server.await.expect("server");
        assert_eq!(body["apiVersion"], "failover.rs/v1alpha1");
        assert_eq!(body["kind"], "FailoverGroup");
        let status = &body["status"];
        assert_eq!(
            status["invalid"],
            "spec.clusters must list exactly two cluster names, found 1"
        );
        assert_eq!(status["observedGeneration"], 4);
        assert_eq!(status["conditions"][0]["type"], "Ready");
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][0]["reason"], "InvalidSpec");
        assert!(shared.loops.lock().await.is_empty());
    }

    #[tokio::test]
    async fn a_failover_without_its_group_waits_pending_and_says_why() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let shared = shared(service);
        let mut fo = Failover::new(
            "to-west",
            FailoverSpec {
                group: "shop".into(),
                target_cluster: "west".into(),
                mode: FailoverMode::Consistency,
                dry_run: false,
            },
        );
        fo.metadata.namespace = Some("shop".into());
        fo.metadata.uid = Some("0e0e".into());
        let object = serde_json::to_value(&fo).expect("json");
        let server = tokio::spawn(expect_status_patch(
            handle,
            "/apis/failover.rs/v1alpha1/namespaces/shop/failovers/to-west/status",
            object,
        ));
        let action = reconcile_failover(Arc::new(fo), shared)
            .await
            .expect("reconcile");
        assert_eq!(action, Action::requeue(Duration::from_secs(2)));
        let body = server.await.expect("server");
        assert_eq!(body["kind"], "Failover");
        assert_eq!(body["status"]["phase"], "Pending");
        assert_eq!(
            body["status"]["id"],
            format!("{:016x}", failover_id("0e0e"))
        );
        assert_eq!(
            body["status"]["message"],
            "no valid FailoverGroup shop/shop runs in this cluster (see its status)"
        );
    }
}
