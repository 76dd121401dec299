//! The Kubernetes adapter against a mocked API server: every test scripts the exact
//! requests it expects (method, path with subresource, query, content type, JSON body)
//! and the answers, and fails on any request it did not expect.

use std::panic::resume_unwind;
use std::time::{Duration, Instant};

use failover_engine::k8s::KubeCluster;
use failover_engine::ports::{
    ClusterError, ClusterPort, Desired, FieldChange, Kind, LabelQuery, Member, MemberState,
    ObjectRef, Selector,
};
use failover_model::VolumeRole;
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------
// The scenario verifier
// ------------------------------------------------------------------------------------

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const MERGE_PATCH: &str = "application/merge-patch+json";
const NS: &str = "shop";

/// One expected request and the answer to it.
#[derive(Debug)]
struct Exchange {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    response: Value,
}

impl Exchange {
    fn new(method: Method, path: &str) -> Exchange {
        Exchange {
            method,
            path: path.to_string(),
            query: Vec::new(),
            content_type: None,
            body: None,
            status: 200,
            response: json!({}),
        }
    }

    /// A GET of `path` with no query.
    fn get(path: &str) -> Exchange {
        Exchange::new(Method::GET, path)
    }

    /// A list of `path` with `labelSelector=labels`.
    fn list(path: &str, labels: &str) -> Exchange {
        Exchange::get(path).query("labelSelector", labels)
    }

    /// A merge patch of `path` with `body`, sent with the operator's field manager.
    fn patch(path: &str, body: Value) -> Exchange {
        let mut exchange =
            Exchange::new(Method::PATCH, path).query("fieldManager", "failover-operator");
        exchange.content_type = Some(MERGE_PATCH);
        exchange.body = Some(body);
        exchange
    }

    fn query(mut self, key: &str, value: &str) -> Exchange {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    fn reply(mut self, response: Value) -> Exchange {
        self.response = response;
        self
    }

    /// Answer with a Kubernetes `Status` failure.
    fn fail(mut self, code: u16, reason: &str, message: &str) -> Exchange {
        self.status = code;
        self.response = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        });
        self
    }
}

/// The decoded query pairs of a request, sorted.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    pairs
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// The mocked API server running one scenario.
struct Server(tokio::task::JoinHandle<()>);

impl Server {
    /// Answer `exchanges` in order, asserting each request; any further request fails
    /// (the mock service is closed when the scenario ends).
    fn expect(mut handle: Handle, exchanges: Vec<Exchange>) -> Server {
        Server(tokio::spawn(async move {
            for (i, expected) in exchanges.into_iter().enumerate() {
                let (request, send) = handle
                    .next_request()
                    .await
                    .unwrap_or_else(|| panic!("request {i} never came: expected {expected:?}"));
                let what = format!("request {i} ({} {})", request.method(), request.uri());
                assert_eq!(request.method(), expected.method, "{what}: method");
                assert_eq!(request.uri().path(), expected.path, "{what}: path");
                let mut query = expected.query.clone();
                query.sort();
                assert_eq!(query_pairs(request.uri().query()), query, "{what}: query");
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().expect("header").to_string());
                if let Some(expected_type) = expected.content_type {
                    assert_eq!(
                        content_type.as_deref(),
                        Some(expected_type),
                        "{what}: content type"
                    );
                }
                let bytes = request.into_body().collect_bytes().await.expect("body");
                match &expected.body {
                    Some(body) => {
                        let actual: Value = serde_json::from_slice(&bytes).expect("JSON body");
                        assert_eq!(&actual, body, "{what}: body");
                    }
                    None => assert!(bytes.is_empty(), "{what}: unexpected body"),
                }
                let response = Response::builder()
                    .status(expected.status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        serde_json::to_vec(&expected.response).expect("JSON"),
                    ))
                    .expect("response");
                send.send_response(response);
            }
        }))
    }

    /// Wait for the scenario to finish, re-raising its assertion failures.
    async fn done(self) {
        match tokio::time::timeout(Duration::from_secs(5), self.0).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) if err.is_panic() => resume_unwind(err.into_panic()),
            Ok(Err(err)) => panic!("scenario failed: {err}"),
            Err(_) => panic!("scenario timed out: a request it expected never came"),
        }
    }
}

/// The pinned clock of the tests: 2026-11-22T10:00:00Z.
struct Pinned;

impl failover_engine::ports::Clock for Pinned {
    fn now(&self) -> failover_model::Time {
        1_795_341_600_000
    }
    fn mono(&self) -> failover_model::Time {
        0
    }
    fn sleep(&self, duration: Duration) -> impl std::future::Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// A mocked cluster: the adapter and the handle of its API server.
fn mock() -> (KubeCluster, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (KubeCluster::with_clock(client, Pinned), handle)
}

/// Run `exchanges` against `operation` and return its result once the scenario is done.
async fn scenario<T>(
    handle: Handle,
    exchanges: Vec<Exchange>,
    operation: impl Future<Output = T>,
) -> T {
    let server = Server::expect(handle, exchanges);
    let result = operation.await;
    server.done().await;
    result
}

/// RFC 7386 JSON merge patch, as the API server applies it.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn merged(object: &Value, patch: &Value) -> Value {
    let mut out = object.clone();
    merge(&mut out, patch);
    out
}

// ------------------------------------------------------------------------------------
// Objects
// ------------------------------------------------------------------------------------

fn object(api_version: &str, kind: &str, name: &str, spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name, "namespace": NS, "resourceVersion": "100", "generation": 4,
            "labels": { "app": "shop" },
        },
        "spec": spec,
        "status": status,
    })
}

fn with_annotations(mut object: Value, annotations: Value) -> Value {
    object["metadata"]["annotations"] = annotations;
    object
}

fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": api_version, "kind": format!("{kind}List"),
        "metadata": { "resourceVersion": "200" }, "items": items,
    })
}

fn reference(kind: Kind, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: NS.to_string(),
        name: name.to_string(),
    }
}

fn change(kind: Kind, name: &str, field: &str, from: &str, to: &str) -> FieldChange {
    FieldChange {
        object: reference(kind, name),
        field: field.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    }
}

fn by_labels() -> Selector {
    Selector {
        namespace: NS.into(),
        labels: LabelQuery::equals("app", "shop"),
        names: Vec::new(),
    }
}

fn by_names(names: &[&str]) -> Selector {
    Selector {
        namespace: NS.into(),
        labels: LabelQuery::default(),
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn member(kind: Kind, name: &str, state: MemberState) -> Member {
    Member {
        object: reference(kind, name),
        state,
        stop_grace_seconds: matches!(kind, Kind::Deployment | Kind::StatefulSet).then_some(30),
    }
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const STATEFULSETS: &str = "/apis/apps/v1/namespaces/shop/statefulsets";

/// A Deployment with `replicas` whose rollout is complete.
fn deployment(name: &str, replicas: i64) -> Value {
    object(
        "apps/v1",
        "Deployment",
        name,
        json!({ "replicas": replicas, "selector": { "matchLabels": { "app": name } } }),
        json!({
            "observedGeneration": 4, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
        }),
    )
}

fn workload(replicas: i32, remembered: Option<i32>, pods: i32, ready: bool) -> MemberState {
    MemberState::Workload {
        replicas,
        remembered,
        pods,
        ready,
    }
}

// ------------------------------------------------------------------------------------
// Deployment
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn deployment_members_by_label_selector_sorted_by_name() {
    let (cluster, handle) = mock();
    let stopped = with_annotations(deployment("web", 0), json!({ "failover.rs/replicas": "3" }));
    let members = scenario(
        handle,
        vec![Exchange::list(DEPLOYMENTS, "app=shop").reply(list(
            "apps/v1",
            "Deployment",
            vec![stopped, deployment("api", 2)],
        ))],
        cluster.members(Kind::Deployment, &by_labels()),
    )
    .await
    .expect("members");
    assert_eq!(
        members,
        vec![
            member(Kind::Deployment, "api", workload(2, None, 2, true)),
            member(Kind::Deployment, "web", workload(0, Some(3), 0, true)),
        ]
    );
}

#[tokio::test]
async fn deployment_members_by_names() {
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![
            Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(deployment("web", 3)),
            Exchange::get(&format!("{DEPLOYMENTS}/api")).reply(deployment("api", 1)),
        ],
        cluster.members(Kind::Deployment, &by_names(&["web", "api"])),
    )
    .await
    .expect("members");
    assert_eq!(
        members,
        vec![
            member(Kind::Deployment, "api", workload(1, None, 1, true)),
            member(Kind::Deployment, "web", workload(3, None, 3, true)),
        ]
    );
}

#[tokio::test]
async fn members_by_labels_and_names_are_deduplicated() {
    let (cluster, handle) = mock();
    let selector = Selector {
        names: vec!["web".into(), "worker".into()],
        ..by_labels()
    };
    let members = scenario(
        handle,
        vec![
            Exchange::list(DEPLOYMENTS, "app=shop").reply(list(
                "apps/v1",
                "Deployment",
                vec![deployment("web", 3)],
            )),
            // "web" came with the list: only "worker" is fetched.
            Exchange::get(&format!("{DEPLOYMENTS}/worker")).reply(deployment("worker", 1)),
        ],
        cluster.members(Kind::Deployment, &selector),
    )
    .await
    .expect("members");
    let names: Vec<_> = members.iter().map(|m| m.object.name.as_str()).collect();
    assert_eq!(names, ["web", "worker"]);
}

#[tokio::test]
async fn members_of_an_empty_selector_ask_nothing() {
    let (cluster, handle) = mock();
    let selector = Selector {
        namespace: NS.into(),
        ..Selector::default()
    };
    let members = scenario(handle, vec![], cluster.members(Kind::Deployment, &selector)).await;
    assert_eq!(members, Ok(vec![]));
}

#[tokio::test]
async fn a_missing_named_member_is_not_found() {
    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/gone")).fail(
            404,
            "NotFound",
            "deployments.apps \"gone\" not found",
        )],
        cluster.members(Kind::Deployment, &by_names(&["gone"])),
    )
    .await;
    assert_eq!(
        result,
        Err(ClusterError::NotFound(reference(Kind::Deployment, "gone")))
    );
}

#[tokio::test]
async fn deployment_stop_remembers_the_count_and_scales_to_zero_in_one_write() {
    let (cluster, handle) = mock();
    let web = deployment("web", 3);
    let stop = json!({
        "metadata": {
            "annotations": { "failover.rs/replicas": "3" },
            "resourceVersion": "100",
        },
        "spec": { "replicas": 0 },
    });
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(web.clone()),
            Exchange::patch(&format!("{DEPLOYMENTS}/web"), stop.clone()).reply(merged(&web, &stop)),
        ],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Stop),
    )
    .await
    .expect("stop");
    assert_eq!(
        changes,
        vec![
            change(
                Kind::Deployment,
                "web",
                "metadata.annotations[failover.rs/replicas]",
                "-",
                "3"
            ),
            change(Kind::Deployment, "web", "spec.replicas", "3", "0"),
        ]
    );
}

#[tokio::test]
async fn preview_reads_and_plans_exactly_what_set_sends_without_writing() {
    // The dry run's answer: one GET, no write, the changes `set` reports (the test
    // above) from the same pure planning.
    let (cluster, handle) = mock();
    let web = deployment("web", 3);
    let object = reference(Kind::Deployment, "web");
    let previewed = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(web.clone())],
        cluster.preview(&object, Desired::Stop),
    )
    .await
    .expect("preview");
    assert_eq!(
        previewed,
        vec![
            change(
                Kind::Deployment,
                "web",
                "metadata.annotations[failover.rs/replicas]",
                "-",
                "3"
            ),
            change(Kind::Deployment, "web", "spec.replicas", "3", "0"),
        ]
    );
    // The in-memory clusters name the same fields the same way.
    let (_, in_memory) =
        failover_engine::member::set_member(&object, &workload(3, None, 3, true), Desired::Stop)
            .expect("a running deployment changes");
    assert_eq!(in_memory, previewed);
}

#[tokio::test]
async fn deployment_stop_of_a_stopped_deployment_writes_nothing() {
    let (cluster, handle) = mock();
    let stopped = with_annotations(deployment("web", 0), json!({ "failover.rs/replicas": "3" }));
    let changes = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(stopped)],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Stop),
    )
    .await;
    assert_eq!(changes, Ok(vec![]));
}

#[tokio::test]
async fn deployment_stop_with_the_count_already_remembered_only_scales() {
    let (cluster, handle) = mock();
    let half = with_annotations(deployment("web", 3), json!({ "failover.rs/replicas": "3" }));
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(half.clone()),
            Exchange::patch(
                &format!("{DEPLOYMENTS}/web"),
                json!({ "spec": { "replicas": 0 } }),
            )
            .reply(merged(&half, &json!({ "spec": { "replicas": 0 } }))),
        ],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Stop),
    )
    .await
    .expect("stop");
    assert_eq!(
        changes,
        vec![change(Kind::Deployment, "web", "spec.replicas", "3", "0")]
    );
}

#[tokio::test]
async fn deployment_start_restores_the_remembered_count_and_keeps_the_annotation() {
    let (cluster, handle) = mock();
    let stopped = with_annotations(deployment("web", 0), json!({ "failover.rs/replicas": "3" }));
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(stopped.clone()),
            Exchange::patch(
                &format!("{DEPLOYMENTS}/web"),
                json!({ "spec": { "replicas": 3 } }),
            )
            .reply(merged(&stopped, &json!({ "spec": { "replicas": 3 } }))),
        ],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(
        changes,
        vec![change(Kind::Deployment, "web", "spec.replicas", "0", "3")]
    );
}

#[tokio::test]
async fn deployment_start_without_a_remembered_count_starts_one() {
    let (cluster, handle) = mock();
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(deployment("web", 0)),
            Exchange::patch(
                &format!("{DEPLOYMENTS}/web"),
                json!({ "spec": { "replicas": 1 } }),
            )
            .reply(deployment("web", 1)),
        ],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(
        changes,
        vec![change(Kind::Deployment, "web", "spec.replicas", "0", "1")]
    );
}

#[tokio::test]
async fn deployment_start_of_a_running_deployment_writes_nothing() {
    let (cluster, handle) = mock();
    // Running at 5 with a stale remembered 3: never scaled down.
    let running = with_annotations(deployment("web", 5), json!({ "failover.rs/replicas": "3" }));
    let changes = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(running)],
        cluster.set(&reference(Kind::Deployment, "web"), Desired::Start),
    )
    .await;
    assert_eq!(changes, Ok(vec![]));
}

/// The readiness the adapter reports for a Deployment of 3 replicas with `status`.
async fn deployment_ready(status: Value) -> bool {
    let (cluster, handle) = mock();
    let mut web = deployment("web", 3);
    web["status"] = status;
    let members = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(web)],
        cluster.members(Kind::Deployment, &by_names(&["web"])),
    )
    .await
    .expect("members");
    match members[0].state {
        MemberState::Workload { ready, .. } => ready,
        ref other => panic!("not a workload: {other:?}"),
    }
}

#[tokio::test]
async fn deployment_readiness_follows_kubectl_rollout_status() {
    let complete = json!({
        "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3,
        "readyReplicas": 3, "availableReplicas": 3,
    });
    assert!(deployment_ready(complete.clone()).await, "all ready");
    assert!(
        !deployment_ready(merged(&complete, &json!({ "observedGeneration": 3 }))).await,
        "observedGeneration behind generation"
    );
    assert!(
        !deployment_ready(merged(&complete, &json!({ "replicas": 4 }))).await,
        "an old replica left"
    );
    assert!(
        !deployment_ready(merged(
            &complete,
            &json!({ "updatedReplicas": 2, "replicas": 2 })
        ))
        .await,
        "not all updated"
    );
    assert!(
        !deployment_ready(merged(&complete, &json!({ "availableReplicas": 2 }))).await,
        "not all available"
    );
    assert!(!deployment_ready(json!({})).await, "no status yet");
}

#[tokio::test]
async fn deployment_pods_and_defaults_when_status_is_missing() {
    let (cluster, handle) = mock();
    let mut web = deployment("web", 0);
    web["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    web["status"] = json!({});
    web["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("generation");
    let members = scenario(
        handle,
        vec![Exchange::get(&format!("{DEPLOYMENTS}/web")).reply(web)],
        cluster.members(Kind::Deployment, &by_names(&["web"])),
    )
    .await
    .expect("members");
    // spec.replicas defaults to 1; no status means no pods and not ready.
    assert_eq!(members[0].state, workload(1, None, 0, false));
}

// ------------------------------------------------------------------------------------
// StatefulSet
// ------------------------------------------------------------------------------------

/// A StatefulSet with `replicas` whose rollout is complete.
fn statefulset(name: &str, replicas: i64) -> Value {
    object(
        "apps/v1",
        "StatefulSet",
        name,
        json!({
            "replicas": replicas, "serviceName": name,
            "updateStrategy": { "type": "RollingUpdate" },
        }),
        json!({
            "observedGeneration": 4, "replicas": replicas, "readyReplicas": replicas,
            "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": "db-7d4", "updateRevision": "db-7d4",
        }),
    )
}

#[tokio::test]
async fn statefulset_members_by_labels_and_names() {
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![Exchange::list(STATEFULSETS, "app=shop").reply(list(
            "apps/v1",
            "StatefulSet",
            vec![statefulset("db", 3)],
        ))],
        cluster.members(Kind::StatefulSet, &by_labels()),
    )
    .await
    .expect("members");
    assert_eq!(
        members,
        vec![member(Kind::StatefulSet, "db", workload(3, None, 3, true))]
    );

    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![Exchange::get(&format!("{STATEFULSETS}/db")).reply(statefulset("db", 2))],
        cluster.members(Kind::StatefulSet, &by_names(&["db"])),
    )
    .await
    .expect("members");
    assert_eq!(
        members,
        vec![member(Kind::StatefulSet, "db", workload(2, None, 2, true))]
    );
}

/// The readiness the adapter reports for `statefulset`.
async fn statefulset_ready(statefulset: Value) -> bool {
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![Exchange::get(&format!("{STATEFULSETS}/db")).reply(statefulset)],
        cluster.members(Kind::StatefulSet, &by_names(&["db"])),
    )
    .await
    .expect("members");
    match members[0].state {
        MemberState::Workload { ready, .. } => ready,
        ref other => panic!("not a workload: {other:?}"),
    }
}

#[tokio::test]
async fn statefulset_readiness_follows_kubectl_rollout_status() {
    let db = statefulset("db", 3);
    assert!(statefulset_ready(db.clone()).await, "all ready");
    let status = |patch: Value| merged(&db, &json!({ "status": patch }));
    assert!(
        !statefulset_ready(status(json!({ "observedGeneration": 3 }))).await,
        "generation behind"
    );
    assert!(
        !statefulset_ready(status(json!({ "readyReplicas": 2 }))).await,
        "a replica not ready"
    );
    assert!(
        !statefulset_ready(status(json!({ "updatedReplicas": 2 }))).await,
        "not all updated"
    );
    assert!(
        !statefulset_ready(status(json!({ "updateRevision": "db-9f1" }))).await,
        "revisions differ"
    );
    let on_delete = merged(
        &db,
        &json!({ "spec": { "updateStrategy": { "type": "OnDelete" } }, "status": { "updatedReplicas": 0, "updateRevision": "db-9f1" } }),
    );
    assert!(
        statefulset_ready(on_delete).await,
        "OnDelete only needs ready replicas"
    );
    let partitioned = merged(
        &db,
        &json!({
            "spec": { "updateStrategy": { "rollingUpdate": { "partition": 2 } } },
            "status": { "updatedReplicas": 1, "updateRevision": "db-9f1" },
        }),
    );
    assert!(
        statefulset_ready(partitioned).await,
        "partitioned rollout done"
    );
    let empty = merged(&db, &json!({ "status": null }));
    assert!(!statefulset_ready(empty).await, "no status");
}

#[tokio::test]
async fn statefulset_stop_and_start_patch_spec_replicas() {
    let (cluster, handle) = mock();
    let db = statefulset("db", 2);
    let annotation = json!({
        "metadata": { "annotations": { "failover.rs/replicas": "2" }, "resourceVersion": "100" }
    });
    let stop = merged(&annotation, &json!({ "spec": { "replicas": 0 } }));
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{STATEFULSETS}/db")).reply(db.clone()),
            Exchange::patch(&format!("{STATEFULSETS}/db"), stop.clone()).reply(merged(&db, &stop)),
        ],
        cluster.set(&reference(Kind::StatefulSet, "db"), Desired::Stop),
    )
    .await
    .expect("stop");
    assert_eq!(changes.len(), 2);

    let (cluster, handle) = mock();
    let stopped = merged(
        &merged(&db, &annotation),
        &json!({ "spec": { "replicas": 0 } }),
    );
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&format!("{STATEFULSETS}/db")).reply(stopped.clone()),
            Exchange::patch(
                &format!("{STATEFULSETS}/db"),
                json!({ "spec": { "replicas": 2 } }),
            )
            .reply(merged(&stopped, &json!({ "spec": { "replicas": 2 } }))),
        ],
        cluster.set(&reference(Kind::StatefulSet, "db"), Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(
        changes,
        vec![change(Kind::StatefulSet, "db", "spec.replicas", "0", "2")]
    );

    let (cluster, handle) = mock();
    let changes = scenario(
        handle,
        vec![Exchange::get(&format!("{STATEFULSETS}/db")).reply(stopped)],
        cluster.set(&reference(Kind::StatefulSet, "db"), Desired::Stop),
    )
    .await;
    assert_eq!(changes, Ok(vec![]), "already stopped");
}

// ------------------------------------------------------------------------------------
// CronJob
// ------------------------------------------------------------------------------------

fn batch_v1(with_cronjobs: bool) -> Value {
    let mut resources = vec![json!({
        "name": "jobs", "singularName": "", "namespaced": true, "kind": "Job",
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    })];
    if with_cronjobs {
        resources.push(json!({
            "name": "cronjobs", "singularName": "", "namespaced": true, "kind": "CronJob",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
    }
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": resources })
}

fn cronjob(api_version: &str, name: &str, suspend: Option<bool>) -> Value {
    let mut spec = json!({ "schedule": "*/5 * * * *", "jobTemplate": { "spec": {} } });
    if let Some(suspend) = suspend {
        spec["suspend"] = json!(suspend);
    }
    object(api_version, "CronJob", name, spec, json!({}))
}

const CRONJOBS_V1: &str = "/apis/batch/v1/namespaces/shop/cronjobs";
const CRONJOBS_V1BETA1: &str = "/apis/batch/v1beta1/namespaces/shop/cronjobs";

#[tokio::test]
async fn cronjob_members_on_batch_v1_discover_the_version_once() {
    let (cluster, handle) = mock();
    let (members, named) = scenario(
        handle,
        vec![
            Exchange::get("/apis/batch/v1").reply(batch_v1(true)),
            Exchange::list(CRONJOBS_V1, "app=shop").reply(list(
                "batch/v1",
                "CronJob",
                vec![
                    cronjob("batch/v1", "report", Some(true)),
                    cronjob("batch/v1", "cleanup", None),
                ],
            )),
            // The version is cached: no second discovery.
            Exchange::get(&format!("{CRONJOBS_V1}/report")).reply(cronjob(
                "batch/v1",
                "report",
                Some(false),
            )),
        ],
        async {
            let members = cluster.members(Kind::CronJob, &by_labels()).await;
            let named = cluster.members(Kind::CronJob, &by_names(&["report"])).await;
            (members, named)
        },
    )
    .await;
    assert_eq!(
        members.expect("members"),
        vec![
            member(
                Kind::CronJob,
                "cleanup",
                MemberState::CronJob { suspended: false }
            ),
            member(
                Kind::CronJob,
                "report",
                MemberState::CronJob { suspended: true }
            ),
        ]
    );
    assert_eq!(
        named.expect("named"),
        vec![member(
            Kind::CronJob,
            "report",
            MemberState::CronJob { suspended: false }
        )]
    );
}

#[tokio::test]
async fn cronjob_stop_and_start_patch_spec_suspend() {
    let (cluster, handle) = mock();
    let stop = json!({ "spec": { "suspend": true } });
    let start = json!({ "spec": { "suspend": false } });
    let report = cronjob("batch/v1", "report", None);
    let (stopped, started, again) = scenario(
        handle,
        vec![
            Exchange::get("/apis/batch/v1").reply(batch_v1(true)),
            Exchange::get(&format!("{CRONJOBS_V1}/report")).reply(report.clone()),
            Exchange::patch(&format!("{CRONJOBS_V1}/report"), stop.clone())
                .reply(merged(&report, &stop)),
            Exchange::get(&format!("{CRONJOBS_V1}/report")).reply(merged(&report, &stop)),
            Exchange::patch(&format!("{CRONJOBS_V1}/report"), start.clone())
                .reply(merged(&report, &start)),
            Exchange::get(&format!("{CRONJOBS_V1}/report")).reply(merged(&report, &start)),
        ],
        async {
            let object = reference(Kind::CronJob, "report");
            (
                cluster.set(&object, Desired::Stop).await,
                cluster.set(&object, Desired::Start).await,
                cluster.set(&object, Desired::Start).await,
            )
        },
    )
    .await;
    assert_eq!(
        stopped,
        Ok(vec![change(
            Kind::CronJob,
            "report",
            "spec.suspend",
            "-",
            "true"
        )])
    );
    assert_eq!(
        started,
        Ok(vec![change(
            Kind::CronJob,
            "report",
            "spec.suspend",
            "true",
            "false"
        )])
    );
    assert_eq!(again, Ok(vec![]), "already started: no write");
}

#[tokio::test]
async fn cronjob_falls_back_to_batch_v1beta1_on_kubernetes_1_20() {
    let (cluster, handle) = mock();
    let report = cronjob("batch/v1beta1", "report", Some(false));
    let stop = json!({ "spec": { "suspend": true } });
    let (members, stopped) = scenario(
        handle,
        vec![
            // Kubernetes 1.20 serves batch/v1, but only Jobs.
            Exchange::get("/apis/batch/v1").reply(batch_v1(false)),
            Exchange::list(CRONJOBS_V1BETA1, "app=shop").reply(list(
                "batch/v1beta1",
                "CronJob",
                vec![report.clone()],
            )),
            Exchange::get(&format!("{CRONJOBS_V1BETA1}/report")).reply(report.clone()),
            Exchange::patch(&format!("{CRONJOBS_V1BETA1}/report"), stop.clone())
                .reply(merged(&report, &stop)),
        ],
        async {
            (
                cluster.members(Kind::CronJob, &by_labels()).await,
                cluster
                    .set(&reference(Kind::CronJob, "report"), Desired::Stop)
                    .await,
            )
        },
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![member(
            Kind::CronJob,
            "report",
            MemberState::CronJob { suspended: false }
        )])
    );
    assert_eq!(
        stopped,
        Ok(vec![change(
            Kind::CronJob,
            "report",
            "spec.suspend",
            "false",
            "true"
        )])
    );
}

#[tokio::test]
async fn cronjob_falls_back_to_batch_v1beta1_when_batch_v1_is_not_served() {
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![
            Exchange::get("/apis/batch/v1").fail(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
            Exchange::get(&format!("{CRONJOBS_V1BETA1}/report")).reply(cronjob(
                "batch/v1beta1",
                "report",
                Some(true),
            )),
        ],
        cluster.members(Kind::CronJob, &by_names(&["report"])),
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![member(
            Kind::CronJob,
            "report",
            MemberState::CronJob { suspended: true }
        )])
    );
}

#[tokio::test]
async fn cronjob_discovery_failure_is_unavailable_and_not_cached() {
    let (cluster, handle) = mock();
    let (first, second) = scenario(
        handle,
        vec![
            Exchange::get("/apis/batch/v1").fail(503, "ServiceUnavailable", "etcd is down"),
            Exchange::get("/apis/batch/v1").reply(batch_v1(true)),
            Exchange::get(&format!("{CRONJOBS_V1}/report"))
                .reply(cronjob("batch/v1", "report", None)),
        ],
        async {
            (
                cluster.members(Kind::CronJob, &by_names(&["report"])).await,
                cluster.members(Kind::CronJob, &by_names(&["report"])).await,
            )
        },
    )
    .await;
    assert!(
        matches!(first, Err(ClusterError::Unavailable(_))),
        "{first:?}"
    );
    assert!(second.is_ok(), "{second:?}");
}

// ------------------------------------------------------------------------------------
// VirtualService
// ------------------------------------------------------------------------------------

const VIRTUALSERVICES: &str = "/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices";

fn routes() -> Value {
    json!([
        {
            "name": "api",
            "match": [{ "uri": { "prefix": "/api" }, "headers": { "x-canary": { "exact": "1" } } }],
            "route": [
                { "destination": { "host": "api.shop.svc.cluster.local", "port": { "number": 8080 }, "subset": "v2" }, "weight": 90 },
                { "destination": { "host": "api.shop.svc.cluster.local", "port": { "number": 8080 }, "subset": "v1" }, "weight": 10 }
            ],
            "retries": { "attempts": 3, "perTryTimeout": "2s" },
            "timeout": "10s"
        },
        { "route": [{ "destination": { "host": "web.shop.svc.cluster.local" } }] }
    ])
}

fn virtual_service(name: &str) -> Value {
    object(
        "networking.istio.io/v1beta1",
        "VirtualService",
        name,
        json!({ "hosts": ["shop.example.com"], "gateways": ["istio-system/public"], "http": routes() }),
        json!({}),
    )
}

#[tokio::test]
async fn virtual_service_members() {
    let (cluster, handle) = mock();
    let disabled = with_annotations(
        virtual_service("admin"),
        json!({ "failover.rs/original-http": routes().to_string() }),
    );
    let members = scenario(
        handle,
        vec![
            Exchange::list(VIRTUALSERVICES, "app=shop").reply(list(
                "networking.istio.io/v1beta1",
                "VirtualService",
                vec![virtual_service("shop")],
            )),
            Exchange::get(&format!("{VIRTUALSERVICES}/admin")).reply(disabled),
        ],
        cluster.members(
            Kind::VirtualService,
            &Selector {
                names: vec!["admin".into()],
                ..by_labels()
            },
        ),
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![
            member(
                Kind::VirtualService,
                "admin",
                MemberState::Network { disabled: true }
            ),
            member(
                Kind::VirtualService,
                "shop",
                MemberState::Network { disabled: false }
            ),
        ])
    );
}

#[tokio::test]
async fn virtual_service_disable_and_restore_round_trip_keeps_the_routes_exactly() {
    let original = virtual_service("shop");
    let path = format!("{VIRTUALSERVICES}/shop");
    let object = reference(Kind::VirtualService, "shop");

    // Stop: one merge patch saving the routes and answering 503.
    let (cluster, handle) = mock();
    let disable = json!({
        "metadata": {
            "annotations": { "failover.rs/original-http": routes().to_string() },
            "resourceVersion": "100",
        },
        "spec": { "http": [{ "name": "failover-disabled", "directResponse": { "status": 503 } }] },
    });
    let mut disabled = merged(&original, &disable);
    disabled["metadata"]["resourceVersion"] = json!("101");
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(original.clone()),
            Exchange::patch(&path, disable).reply(disabled.clone()),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await
    .expect("stop");
    assert_eq!(
        changes,
        vec![
            change(
                Kind::VirtualService,
                "shop",
                "spec.http",
                &routes().to_string(),
                &json!([{ "name": "failover-disabled", "directResponse": { "status": 503 } }])
                    .to_string(),
            ),
            change(
                Kind::VirtualService,
                "shop",
                "metadata.annotations[failover.rs/original-http]",
                "-",
                &routes().to_string(),
            ),
        ]
    );

    // Stop again: already disabled, nothing written.
    let (cluster, handle) = mock();
    let again = scenario(
        handle,
        vec![Exchange::get(&path).reply(disabled.clone())],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(again, Ok(vec![]));

    // Start: one merge patch restoring the routes and removing the annotation.
    let (cluster, handle) = mock();
    let restore = json!({
        "metadata": { "annotations": { "failover.rs/original-http": null }, "resourceVersion": "101" },
        "spec": { "http": routes() },
    });
    let restored = merged(&disabled, &restore);
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(disabled.clone()),
            Exchange::patch(&path, restore).reply(restored.clone()),
        ],
        cluster.set(&object, Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(changes.len(), 2);
    assert_eq!(
        restored["spec"], original["spec"],
        "routes restored exactly"
    );
    assert_eq!(
        restored["metadata"]["annotations"],
        json!({}),
        "annotation removed"
    );

    // Start again: already enabled, nothing written.
    let (cluster, handle) = mock();
    let again = scenario(
        handle,
        vec![Exchange::get(&path).reply(restored)],
        cluster.set(&object, Desired::Start),
    )
    .await;
    assert_eq!(again, Ok(vec![]));
}

#[tokio::test]
async fn virtual_service_without_http_routes_round_trips_to_none() {
    let mut tcp_only = virtual_service("tcp");
    tcp_only["spec"] =
        json!({ "hosts": ["db"], "tcp": [{ "route": [{ "destination": { "host": "db" } }] }] });
    let path = format!("{VIRTUALSERVICES}/tcp");
    let (cluster, handle) = mock();
    let disable = json!({
        "metadata": { "annotations": { "failover.rs/original-http": "null" }, "resourceVersion": "100" },
        "spec": { "http": [{ "name": "failover-disabled", "directResponse": { "status": 503 } }] },
    });
    let disabled = merged(&tcp_only, &disable);
    scenario(
        handle,
        vec![
            Exchange::get(&path).reply(tcp_only.clone()),
            Exchange::patch(&path, disable).reply(disabled.clone()),
        ],
        cluster.set(&reference(Kind::VirtualService, "tcp"), Desired::Stop),
    )
    .await
    .expect("stop");
    let (cluster, handle) = mock();
    let restore = json!({
        "metadata": { "annotations": { "failover.rs/original-http": null }, "resourceVersion": "100" },
        "spec": { "http": null },
    });
    let restored = merged(&disabled, &restore);
    scenario(
        handle,
        vec![
            Exchange::get(&path).reply(disabled),
            Exchange::patch(&path, restore).reply(restored.clone()),
        ],
        cluster.set(&reference(Kind::VirtualService, "tcp"), Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(restored["spec"], tcp_only["spec"]);
}

#[tokio::test]
async fn virtual_service_with_a_corrupt_saved_route_is_invalid() {
    let (cluster, handle) = mock();
    let broken = with_annotations(
        virtual_service("shop"),
        json!({ "failover.rs/original-http": "[{not json" }),
    );
    let result = scenario(
        handle,
        vec![Exchange::get(&format!("{VIRTUALSERVICES}/shop")).reply(broken)],
        cluster.set(&reference(Kind::VirtualService, "shop"), Desired::Start),
    )
    .await;
    assert!(
        matches!(result, Err(ClusterError::Invalid(_, ref m)) if m.contains("failover.rs/original-http")),
        "{result:?}"
    );
}

// ------------------------------------------------------------------------------------
// Ingress
// ------------------------------------------------------------------------------------

const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses";

fn ingress(name: &str, class: Option<&str>, legacy: Option<&str>) -> Value {
    let mut spec = json!({ "rules": [{ "host": "shop.example.com", "http": { "paths": [
        { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "web", "port": { "number": 80 } } } }
    ] } }] });
    if let Some(class) = class {
        spec["ingressClassName"] = json!(class);
    }
    let mut ingress = object("networking.k8s.io/v1", "Ingress", name, spec, json!({}));
    let mut annotations = json!({ "nginx.ingress.kubernetes.io/rewrite-target": "/" });
    if let Some(legacy) = legacy {
        annotations["kubernetes.io/ingress.class"] = json!(legacy);
    }
    ingress["metadata"]["annotations"] = annotations;
    ingress
}

#[tokio::test]
async fn ingress_members() {
    let (cluster, handle) = mock();
    let disabled = merged(
        &ingress("old", Some("failover-disabled"), None),
        &json!({ "metadata": { "annotations": { "failover.rs/original-class": "{\"ingressClassName\":\"nginx\"}" } } }),
    );
    let members = scenario(
        handle,
        vec![Exchange::list(INGRESSES, "app=shop").reply(list(
            "networking.k8s.io/v1",
            "Ingress",
            vec![ingress("shop", Some("nginx"), None), disabled],
        ))],
        cluster.members(Kind::Ingress, &by_labels()),
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![
            member(
                Kind::Ingress,
                "old",
                MemberState::Network { disabled: true }
            ),
            member(
                Kind::Ingress,
                "shop",
                MemberState::Network { disabled: false }
            ),
        ])
    );
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![Exchange::get(&format!("{INGRESSES}/shop")).reply(ingress("shop", None, None))],
        cluster.members(Kind::Ingress, &by_names(&["shop"])),
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![member(
            Kind::Ingress,
            "shop",
            MemberState::Network { disabled: false }
        )])
    );
}

#[tokio::test]
async fn ingress_disable_and_restore_round_trip() {
    let original = ingress("shop", Some("nginx"), Some("nginx-legacy"));
    let path = format!("{INGRESSES}/shop");
    let object = reference(Kind::Ingress, "shop");
    let saved = r#"{"ingressClassName":"nginx","kubernetes.io/ingress.class":"nginx-legacy"}"#;

    let (cluster, handle) = mock();
    let disable = json!({
        "metadata": {
            "annotations": { "failover.rs/original-class": saved, "kubernetes.io/ingress.class": null },
            "resourceVersion": "100",
        },
        "spec": { "ingressClassName": "failover-disabled" },
    });
    let disabled = merged(&original, &disable);
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(original.clone()),
            Exchange::patch(&path, disable).reply(disabled.clone()),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await
    .expect("stop");
    assert_eq!(
        changes,
        vec![
            change(
                Kind::Ingress,
                "shop",
                "spec.ingressClassName",
                "nginx",
                "failover-disabled"
            ),
            change(
                Kind::Ingress,
                "shop",
                "metadata.annotations[kubernetes.io/ingress.class]",
                "nginx-legacy",
                "-"
            ),
            change(
                Kind::Ingress,
                "shop",
                "metadata.annotations[failover.rs/original-class]",
                "-",
                saved
            ),
        ]
    );

    let (cluster, handle) = mock();
    let again = scenario(
        handle,
        vec![Exchange::get(&path).reply(disabled.clone())],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(again, Ok(vec![]));

    let (cluster, handle) = mock();
    let restore = json!({
        "metadata": {
            "annotations": { "failover.rs/original-class": null, "kubernetes.io/ingress.class": "nginx-legacy" },
            "resourceVersion": "100",
        },
        "spec": { "ingressClassName": "nginx" },
    });
    let restored = merged(&disabled, &restore);
    let changes = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(disabled),
            Exchange::patch(&path, restore).reply(restored.clone()),
        ],
        cluster.set(&object, Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(
        changes,
        vec![
            change(
                Kind::Ingress,
                "shop",
                "spec.ingressClassName",
                "failover-disabled",
                "nginx"
            ),
            change(
                Kind::Ingress,
                "shop",
                "metadata.annotations[kubernetes.io/ingress.class]",
                "-",
                "nginx-legacy"
            ),
            change(
                Kind::Ingress,
                "shop",
                "metadata.annotations[failover.rs/original-class]",
                saved,
                "-"
            ),
        ]
    );
    assert_eq!(restored, original, "the Ingress is exactly as before");

    let (cluster, handle) = mock();
    let again = scenario(
        handle,
        vec![Exchange::get(&path).reply(restored)],
        cluster.set(&object, Desired::Start),
    )
    .await;
    assert_eq!(again, Ok(vec![]));
}

#[tokio::test]
async fn ingress_without_a_class_round_trips_to_no_class() {
    let original = ingress("shop", None, None);
    let path = format!("{INGRESSES}/shop");
    let object = reference(Kind::Ingress, "shop");
    let (cluster, handle) = mock();
    let disable = json!({
        "metadata": { "annotations": { "failover.rs/original-class": "{}" }, "resourceVersion": "100" },
        "spec": { "ingressClassName": "failover-disabled" },
    });
    let disabled = merged(&original, &disable);
    scenario(
        handle,
        vec![
            Exchange::get(&path).reply(original.clone()),
            Exchange::patch(&path, disable).reply(disabled.clone()),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await
    .expect("stop");
    let (cluster, handle) = mock();
    let restore = json!({
        "metadata": { "annotations": { "failover.rs/original-class": null }, "resourceVersion": "100" },
        "spec": { "ingressClassName": null },
    });
    let restored = merged(&disabled, &restore);
    scenario(
        handle,
        vec![
            Exchange::get(&path).reply(disabled),
            Exchange::patch(&path, restore).reply(restored.clone()),
        ],
        cluster.set(&object, Desired::Start),
    )
    .await
    .expect("start");
    assert_eq!(restored, original);
}

// ------------------------------------------------------------------------------------
// VolumeReplication
// ------------------------------------------------------------------------------------

const VOLUMEREPLICATIONS: &str =
    "/apis/replication.storage.openshift.io/v1alpha1/namespaces/shop/volumereplications";

fn volume_replication(name: &str, spec: &str, status: Value) -> Value {
    object(
        "replication.storage.openshift.io/v1alpha1",
        "VolumeReplication",
        name,
        json!({
            "volumeReplicationClass": "rbd-replication", "replicationState": spec,
            "dataSource": { "kind": "PersistentVolumeClaim", "name": name },
        }),
        status,
    )
}

fn volume(spec: VolumeRole, status: Option<VolumeRole>) -> MemberState {
    MemberState::Volume { spec, status }
}

#[tokio::test]
async fn volume_replication_status_parsing() {
    let degraded = json!([
        { "type": "Completed", "status": "True", "reason": "Demoted" },
        { "type": "Degraded", "status": "True", "reason": "VolumeDegraded" },
        { "type": "Resyncing", "status": "False", "reason": "NotResyncing" },
    ]);
    let items = vec![
        volume_replication(
            "a-primary",
            "primary",
            json!({ "state": "Primary", "observedGeneration": 4 }),
        ),
        volume_replication(
            "b-secondary",
            "secondary",
            json!({ "state": "secondary", "observedGeneration": 4, "conditions": degraded }),
        ),
        volume_replication("c-resyncing", "resync", json!({ "state": "Resyncing" })),
        volume_replication("d-new", "primary", json!({})),
        volume_replication(
            "e-stale",
            "secondary",
            json!({ "state": "Primary", "observedGeneration": 3 }),
        ),
        volume_replication("f-unknown", "primary", json!({ "state": "Unknown" })),
    ];
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![Exchange::list(VOLUMEREPLICATIONS, "app=shop").reply(list(
            "replication.storage.openshift.io/v1alpha1",
            "VolumeReplication",
            items,
        ))],
        cluster.members(Kind::VolumeReplication, &by_labels()),
    )
    .await;
    use VolumeRole::{Primary, Secondary};
    assert_eq!(
        members,
        Ok(vec![
            member(
                Kind::VolumeReplication,
                "a-primary",
                volume(Primary, Some(Primary))
            ),
            member(
                Kind::VolumeReplication,
                "b-secondary",
                volume(Secondary, Some(Secondary))
            ),
            member(
                Kind::VolumeReplication,
                "c-resyncing",
                volume(Secondary, None)
            ),
            member(Kind::VolumeReplication, "d-new", volume(Primary, None)),
            member(Kind::VolumeReplication, "e-stale", volume(Secondary, None)),
            member(Kind::VolumeReplication, "f-unknown", volume(Primary, None)),
        ])
    );
}

#[tokio::test]
async fn volume_replication_members_by_name_and_a_bad_spec() {
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![
            Exchange::get(&format!("{VOLUMEREPLICATIONS}/data")).reply(volume_replication(
                "data",
                "secondary",
                json!({ "state": "Secondary" }),
            )),
        ],
        cluster.members(Kind::VolumeReplication, &by_names(&["data"])),
    )
    .await;
    assert_eq!(
        members,
        Ok(vec![member(
            Kind::VolumeReplication,
            "data",
            volume(VolumeRole::Secondary, Some(VolumeRole::Secondary))
        )])
    );
    let (cluster, handle) = mock();
    let members = scenario(
        handle,
        vec![
            Exchange::get(&format!("{VOLUMEREPLICATIONS}/data")).reply(volume_replication(
                "data",
                "sideways",
                json!({}),
            )),
        ],
        cluster.members(Kind::VolumeReplication, &by_names(&["data"])),
    )
    .await;
    assert!(
        matches!(members, Err(ClusterError::Invalid(ref o, _)) if o.name == "data"),
        "{members:?}"
    );
}

#[tokio::test]
async fn volume_replication_demote_and_promote() {
    let path = format!("{VOLUMEREPLICATIONS}/data");
    let object = reference(Kind::VolumeReplication, "data");
    let primary = volume_replication("data", "primary", json!({ "state": "Primary" }));
    let demote = json!({ "spec": { "replicationState": "secondary" } });
    let promote = json!({ "spec": { "replicationState": "primary" } });
    let secondary = merged(&primary, &demote);
    let (cluster, handle) = mock();
    let (stopped, again, started, again_started) = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(primary.clone()),
            Exchange::patch(&path, demote).reply(secondary.clone()),
            Exchange::get(&path).reply(secondary.clone()),
            Exchange::get(&path).reply(secondary.clone()),
            Exchange::patch(&path, promote.clone()).reply(merged(&secondary, &promote)),
            Exchange::get(&path).reply(merged(&secondary, &promote)),
        ],
        async {
            (
                cluster.set(&object, Desired::Stop).await,
                cluster.set(&object, Desired::Stop).await,
                cluster.set(&object, Desired::Start).await,
                cluster.set(&object, Desired::Start).await,
            )
        },
    )
    .await;
    assert_eq!(
        stopped,
        Ok(vec![change(
            Kind::VolumeReplication,
            "data",
            "spec.replicationState",
            "primary",
            "secondary"
        )])
    );
    assert_eq!(again, Ok(vec![]));
    assert_eq!(
        started,
        Ok(vec![change(
            Kind::VolumeReplication,
            "data",
            "spec.replicationState",
            "secondary",
            "primary"
        )])
    );
    assert_eq!(again_started, Ok(vec![]));
}

// ------------------------------------------------------------------------------------
// Flux
// ------------------------------------------------------------------------------------

const KUSTOMIZATIONS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/shop/kustomizations";
const HELMRELEASES: &str = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/shop/helmreleases";

fn kustomization(name: &str, suspend: Option<bool>) -> Value {
    let mut spec = json!({ "interval": "10m", "path": "./apps/shop", "prune": true,
        "sourceRef": { "kind": "GitRepository", "name": "flux-system" } });
    if let Some(suspend) = suspend {
        spec["suspend"] = json!(suspend);
    }
    object(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        name,
        spec,
        json!({}),
    )
}

fn helm_release(name: &str, suspend: Option<bool>) -> Value {
    let mut spec = json!({ "interval": "10m", "chart": { "spec": { "chart": "shop",
        "sourceRef": { "kind": "HelmRepository", "name": "charts" } } } });
    if let Some(suspend) = suspend {
        spec["suspend"] = json!(suspend);
    }
    object(
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        name,
        spec,
        json!({}),
    )
}

#[tokio::test]
async fn flux_members() {
    let (cluster, handle) = mock();
    let (kustomizations, releases) = scenario(
        handle,
        vec![
            Exchange::list(KUSTOMIZATIONS, "app=shop").reply(list(
                "kustomize.toolkit.fluxcd.io/v1",
                "Kustomization",
                vec![
                    kustomization("shop", None),
                    kustomization("infra", Some(true)),
                ],
            )),
            Exchange::get(&format!("{HELMRELEASES}/shop")).reply(helm_release("shop", Some(false))),
        ],
        async {
            (
                cluster.members(Kind::Kustomization, &by_labels()).await,
                cluster
                    .members(Kind::HelmRelease, &by_names(&["shop"]))
                    .await,
            )
        },
    )
    .await;
    assert_eq!(
        kustomizations,
        Ok(vec![
            member(
                Kind::Kustomization,
                "infra",
                MemberState::Flux { suspended: true }
            ),
            member(
                Kind::Kustomization,
                "shop",
                MemberState::Flux { suspended: false }
            ),
        ])
    );
    assert_eq!(
        releases,
        Ok(vec![member(
            Kind::HelmRelease,
            "shop",
            MemberState::Flux { suspended: false }
        )])
    );
}

#[tokio::test]
async fn flux_suspend_and_resume_with_a_reconcile_request() {
    for (kind, path, running) in [
        (
            Kind::Kustomization,
            format!("{KUSTOMIZATIONS}/shop"),
            kustomization("shop", None),
        ),
        (
            Kind::HelmRelease,
            format!("{HELMRELEASES}/shop"),
            helm_release("shop", None),
        ),
    ] {
        let object = reference(kind, "shop");
        let suspend = json!({ "spec": { "suspend": true } });
        let resume = json!({
            "metadata": { "annotations": { "reconcile.fluxcd.io/requestedAt": "2026-11-22T10:00:00Z" } },
            "spec": { "suspend": false },
        });
        let suspended = merged(&running, &suspend);
        let resumed = merged(&suspended, &resume);
        let (cluster, handle) = mock();
        let (stopped, again, started, again_started) = scenario(
            handle,
            vec![
                Exchange::get(&path).reply(running.clone()),
                Exchange::patch(&path, suspend).reply(suspended.clone()),
                Exchange::get(&path).reply(suspended.clone()),
                Exchange::get(&path).reply(suspended.clone()),
                Exchange::patch(&path, resume).reply(resumed.clone()),
                Exchange::get(&path).reply(resumed.clone()),
            ],
            async {
                (
                    cluster.set(&object, Desired::Stop).await,
                    cluster.set(&object, Desired::Stop).await,
                    cluster.set(&object, Desired::Start).await,
                    cluster.set(&object, Desired::Start).await,
                )
            },
        )
        .await;
        assert_eq!(
            stopped,
            Ok(vec![change(kind, "shop", "spec.suspend", "-", "true")]),
            "{kind}"
        );
        assert_eq!(again, Ok(vec![]), "{kind}");
        assert_eq!(
            started,
            Ok(vec![
                change(kind, "shop", "spec.suspend", "true", "false"),
                change(
                    kind,
                    "shop",
                    "metadata.annotations[reconcile.fluxcd.io/requestedAt]",
                    "-",
                    "2026-11-22T10:00:00Z"
                ),
            ]),
            "{kind}"
        );
        assert_eq!(again_started, Ok(vec![]), "{kind}");
    }
}

// ------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn errors_map_to_the_port_contract() {
    let object = reference(Kind::Deployment, "web");
    let path = format!("{DEPLOYMENTS}/web");
    let stop_patch = json!({
        "metadata": { "annotations": { "failover.rs/replicas": "3" }, "resourceVersion": "100" },
        "spec": { "replicas": 0 },
    });

    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![Exchange::get(&path).fail(404, "NotFound", "deployments.apps \"web\" not found")],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(result, Err(ClusterError::NotFound(object.clone())), "404");

    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(deployment("web", 3)),
            Exchange::patch(&path, stop_patch.clone()).fail(
                409,
                "Conflict",
                "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified",
            ),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(result, Err(ClusterError::Conflict(object.clone())), "409");

    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(deployment("web", 3)),
            Exchange::patch(&path, stop_patch.clone()).fail(
                500,
                "InternalError",
                "etcdserver: request timed out",
            ),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    match result {
        Err(ClusterError::Unavailable(message)) => assert!(
            message.contains("etcdserver: request timed out"),
            "{message}"
        ),
        other => panic!("500: {other:?}"),
    }

    let (cluster, handle) = mock();
    let message = "Deployment.apps \"web\" is invalid: metadata.annotations: Invalid value: \"failover.rs/replicas\": too long";
    let result = scenario(
        handle,
        vec![
            Exchange::get(&path).reply(deployment("web", 3)),
            Exchange::patch(&path, stop_patch.clone()).fail(422, "Invalid", message),
        ],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(
        result,
        Err(ClusterError::Invalid(object.clone(), message.to_string())),
        "422"
    );

    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![Exchange::get(&path).fail(
            400,
            "BadRequest",
            "the body of the request was in an unknown format",
        )],
        cluster.set(&object, Desired::Stop),
    )
    .await;
    assert_eq!(
        result,
        Err(ClusterError::Invalid(
            object.clone(),
            "the body of the request was in an unknown format".into()
        )),
        "400"
    );

    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![Exchange::get(&path).fail(503, "ServiceUnavailable", "apiserver is shutting down")],
        cluster.members(Kind::Deployment, &by_names(&["web"])),
    )
    .await;
    assert!(
        matches!(result, Err(ClusterError::Unavailable(_))),
        "503: {result:?}"
    );
}

#[tokio::test]
async fn a_connection_failure_is_unavailable() {
    let (cluster, handle) = mock();
    drop(handle); // nobody answers: the service is closed
    let result = cluster
        .set(&reference(Kind::Deployment, "web"), Desired::Stop)
        .await;
    assert!(
        matches!(result, Err(ClusterError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_kind_whose_crd_is_missing_is_invalid() {
    let (cluster, handle) = mock();
    let result = scenario(
        handle,
        vec![Exchange::list(VIRTUALSERVICES, "app=shop").fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )],
        cluster.members(Kind::VirtualService, &by_labels()),
    )
    .await;
    match result {
        Err(ClusterError::Invalid(object, message)) => {
            assert_eq!(object.kind, Kind::VirtualService);
            assert!(message.contains("CRD"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------------
// changed
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn changed_without_watches_waits_for_the_timeout() {
    let (cluster, _handle) = mock();
    let start = Instant::now();
    cluster.changed(Duration::from_millis(200)).await;
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn changed_wakes_on_a_watch_event_of_the_group() {
    let (cluster, mut handle) = mock();
    // members registers the selection (and its list is answered)...
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("members' list");
        assert_eq!(request.uri().path(), DEPLOYMENTS);
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&list("apps/v1", "Deployment", vec![deployment("web", 3)]))
                .expect("JSON"),
        )));
        // ...then changed starts a metadata watcher with the group's label selector:
        // first its list...
        let (request, send) = handle.next_request().await.expect("watcher's list");
        assert_eq!(request.uri().path(), DEPLOYMENTS);
        let query = query_pairs(request.uri().query());
        assert!(
            query.contains(&("labelSelector".into(), "app=shop".into())),
            "{query:?}"
        );
        assert!(!query.iter().any(|(k, _)| k == "watch"), "{query:?}");
        let accept = request
            .headers()
            .get(http::header::ACCEPT)
            .expect("accept")
            .to_str()
            .expect("accept");
        assert!(
            accept.contains("PartialObjectMetadataList"),
            "metadata only: {accept}"
        );
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                "metadata": { "resourceVersion": "300" },
                "items": [{ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": { "name": "web", "namespace": NS, "resourceVersion": "300" } }],
            }))
            .expect("JSON"),
        )));
        // ...then its watch, answered with an event once the test says so.
        let (request, send) = handle.next_request().await.expect("watcher's watch");
        let query = query_pairs(request.uri().query());
        assert!(
            query.contains(&("watch".into(), "true".into())),
            "{query:?}"
        );
        assert!(
            query.contains(&("resourceVersion".into(), "300".into())),
            "{query:?}"
        );
        rx.await.expect("go");
        let event = json!({ "type": "MODIFIED", "object": {
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": { "name": "web", "namespace": NS, "resourceVersion": "301" } } });
        send.send_response(Response::new(Body::from(format!("{event}\n").into_bytes())));
        handle
    });

    cluster
        .members(Kind::Deployment, &by_labels())
        .await
        .expect("members");
    // The watcher's first listing is not a change: this waits for the whole timeout.
    let start = Instant::now();
    cluster.changed(Duration::from_millis(300)).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "woken by the initial list"
    );
    // A watch event wakes the next call long before its timeout.
    tx.send(()).expect("server alive");
    let start = Instant::now();
    cluster.changed(Duration::from_secs(20)).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "not woken by the event"
    );
    let handle = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("scenario finished")
        .unwrap_or_else(|e| resume_unwind(e.into_panic()));
    drop(cluster); // stops the watcher
    drop(handle);
}
