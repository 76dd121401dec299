//! The operator as it is deployed: in the lab `scripts/lab.sh up` starts (two clusters
//! with real nodes, the operator image installed from the Helm chart in each, the demo
//! application of deploy/demo active in east, DynamoDB Local). The operator runs as
//! Pods on real kubelets with only the chart's RBAC (its ServiceAccount's token); the
//! demo's readiness is the kubelet's, its endpoint a NodePort Service.
//!
//! Needs the lab: `scripts/lab.sh up` (scripts/test.sh starts it before the tests and
//! stops it after). The tests share it, so they run one at a time, and each leaves the
//! demo active in east as it found it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use failover_engine::spec::{Failover, FailoverGroup, FailoverMode};
use failover_integration::operators::create_failover;
use failover_integration::plane::{client, repo_root, unique_name};
use failover_integration::wait_for;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The lab's tests share its clusters: one at a time.
static LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OPERATOR_NS: &str = "failover-system";
const OPERATOR: &str = "failover-operator";
const DEMO_NS: &str = "demo";
const GROUP: &str = "demo";
/// A failover in the lab, with room for a leader's replacement.
const FAILOVER_BOUND: Duration = Duration::from_secs(150);

/// One cluster of the lab.
struct Cluster {
    name: &'static str,
    client: Client,
    node_ip: String,
}

fn plane_dir(cluster: &str) -> PathBuf {
    repo_root()
        .join(".tools/control-planes")
        .join(format!("lab-{cluster}"))
}

async fn lab() -> [Cluster; 2] {
    let mut clusters = Vec::new();
    for name in ["east", "west"] {
        let dir = plane_dir(name);
        let kubeconfig = dir.join("kubeconfig");
        assert!(
            kubeconfig.exists()
                && repo_root()
                    .join(".tools/lab/kubectl-failover.yaml")
                    .exists(),
            "the lab is not up: run `scripts/lab.sh up` first (scripts/test.sh does)"
        );
        let client = client(&kubeconfig).await.expect("lab client");
        let node_ip = std::fs::read_to_string(dir.join("node-ip"))
            .expect("node-ip")
            .trim()
            .to_string();
        clusters.push(Cluster {
            name,
            client,
            node_ip,
        });
    }
    let [east, west]: [Cluster; 2] = clusters.try_into().ok().expect("two clusters");
    [east, west]
}

/// What the demo's endpoint (NodePort 30080) answers in `cluster`, if anything.
async fn endpoint(cluster: &Cluster) -> Option<String> {
    let url = format!("http://{}:30080/", cluster.node_ip);
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "2", &url])
        .output()
        .await
        .ok()?;
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.success() && body.starts_with("demo served by")).then_some(body)
}

/// The demo answers from `active` only (waiting for kube-proxy and the kubelet).
async fn serves_only_from(clusters: &[Cluster; 2], active: &str) {
    wait_for(
        &format!("the demo's endpoint to answer from {active} only"),
        Duration::from_secs(60),
        || async {
            for c in clusters {
                let answer = endpoint(c).await;
                let ok = if c.name == active {
                    answer
                        .as_deref()
                        .is_some_and(|b| b.contains(&format!("cluster {active} ")))
                } else {
                    answer.is_none()
                };
                if !ok {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .expect("the endpoint answers only from the active cluster");
}

/// The demo's workloads run in `active` (ready, as the kubelet says) and are stopped
/// in the other; its CronJob runs only in `active`; its volume is bound where it runs.
async fn demo_runs_in(clusters: &[Cluster; 2], active: &str) {
    for c in clusters {
        let on = c.name == active;
        let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), DEMO_NS);
        let sets: Api<StatefulSet> = Api::namespaced(c.client.clone(), DEMO_NS);
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), DEMO_NS);
        wait_for(
            &format!(
                "the demo {} in {}",
                if on { "ready" } else { "stopped" },
                c.name
            ),
            Duration::from_secs(90),
            || async {
                let web = deployments.get("web").await.ok()?;
                let db = sets.get("db").await.ok()?;
                let want = i32::from(on);
                let spec_ok = web.spec.as_ref()?.replicas == Some(want)
                    && db.spec.as_ref()?.replicas == Some(want);
                let ready = |r: Option<i32>| r.unwrap_or(0) == want;
                let status_ok = ready(web.status.as_ref()?.ready_replicas)
                    && ready(db.status.as_ref()?.ready_replicas);
                // The workloads' pods (the CronJob's finished Jobs leave theirs).
                let running = pods
                    .list(&ListParams::default().labels("app in (web,db)"))
                    .await
                    .ok()?
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count();
                (spec_ok && status_ok && (on || running == 0)).then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let cron: Api<DynamicObject> = Api::namespaced_with(
            c.client.clone(),
            DEMO_NS,
            &failover_engine::k8s::KubeCluster::new(c.client.clone())
                .resource(failover_engine::ports::Kind::CronJob)
                .await
                .expect("cronjob resource"),
        );
        let report = cron.get("report").await.expect("CronJob report");
        assert_eq!(
            report.data["spec"]["suspend"],
            json!(!on),
            "CronJob report in {} should be {}",
            c.name,
            if on { "running" } else { "suspended" }
        );
        if on {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), DEMO_NS);
            let claim = claims.get("data-db-0").await.expect("the db's claim");
            assert_eq!(
                claim.status.and_then(|s| s.phase).as_deref(),
                Some("Bound"),
                "the db's volume in {}",
                c.name
            );
        }
    }
}

/// The demo active in east, as every test starts (a test that failed half-way may
/// have left it in west: fail it back first).
async fn active_in_east(clusters: &[Cluster; 2]) {
    let groups: Api<FailoverGroup> = Api::namespaced(clusters[0].client.clone(), DEMO_NS);
    let active = wait_for(
        "the demo group's record",
        Duration::from_secs(60),
        || async { groups.get(GROUP).await.ok()?.status?.active },
    )
    .await
    .expect("the group's status names the active cluster");
    if active != "east" {
        let name = request(&clusters[0], "east", FailoverMode::Consistency).await;
        let out = outcome(&clusters[0], &name).await;
        assert!(out.starts_with("completed"), "back to east: {out}");
    }
}

/// Creates a `Failover` of the demo to `to` in that cluster; its name.
async fn request(cluster: &Cluster, to: &str, mode: FailoverMode) -> String {
    create_failover(&cluster.client, DEMO_NS, GROUP, to, mode).await
}

/// Waits for `Failover` `name` in `cluster` to end (`past` false) or to show a stage
/// after taking the lock (`past` true): its outcome or that stage.
async fn follow(cluster: &Cluster, name: &str, past_lock: bool) -> String {
    let api: Api<Failover> = Api::namespaced(cluster.client.clone(), DEMO_NS);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < FAILOVER_BOUND,
            "Failover {name} did not end within {FAILOVER_BOUND:?}; operator logs: \
             kubectl -n {OPERATOR_NS} logs deploy/{OPERATOR}"
        );
        let status = api.get(name).await.expect("get").status.unwrap_or_default();
        if let Some(outcome) = status.outcome {
            return outcome;
        }
        if past_lock && let Some(stage) = status.stage.filter(|s| s != "acquiring") {
            return stage;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn outcome(cluster: &Cluster, name: &str) -> String {
    follow(cluster, name, false).await
}

/// The Pod holding `cluster`'s leader election Lease.
async fn leader(cluster: &Cluster) -> String {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), OPERATOR_NS);
    wait_for(
        &format!("a leader in {}", cluster.name),
        Duration::from_secs(60),
        || async {
            leases
                .get(OPERATOR)
                .await
                .ok()?
                .spec?
                .holder_identity
                .filter(|h| !h.is_empty())
        },
    )
    .await
    .expect("a leader")
}

/// The group's `Ready` condition in `cluster`: (status, reason, message).
async fn ready(client: &Client, ns: &str, group: &str) -> Option<(String, String, String)> {
    let api: Api<FailoverGroup> = Api::namespaced(client.clone(), ns);
    let g = api.get(group).await.ok()?;
    let c = g
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason, c.message))
}

#[tokio::test(flavor = "multi_thread")]
async fn deployed_operators_run_from_the_chart_as_pods_and_elect_a_leader() {
    let _lab = LAB.lock().await;
    let clusters = lab().await;
    active_in_east(&clusters).await;
    for c in &clusters {
        let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), OPERATOR_NS);
        let d = deployments
            .get(OPERATOR)
            .await
            .expect("the chart's Deployment");
        let status = d.status.clone().unwrap_or_default();
        assert_eq!(status.ready_replicas, Some(2), "{}: {status:?}", c.name);
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), OPERATOR_NS);
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=failover-operator"))
            .await
            .expect("pods");
        let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
        assert_eq!(names.len(), 2, "{}: {names:?}", c.name);
        for pod in &list.items {
            let spec = pod.spec.as_ref().expect("spec");
            assert_eq!(
                spec.service_account_name.as_deref(),
                Some(OPERATOR),
                "the chart's ServiceAccount"
            );
            assert!(
                spec.node_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("lab-")),
                "scheduled on the real node: {:?}",
                spec.node_name
            );
            let container = &spec.containers[0];
            assert!(
                container
                    .image
                    .as_deref()
                    .is_some_and(|i| i.starts_with("localhost/failover-operator:")),
                "the image built by scripts/image.sh: {:?}",
                container.image
            );
            let security = container.security_context.clone().unwrap_or_default();
            assert_eq!(security.read_only_root_filesystem, Some(true));
            assert_eq!(security.allow_privilege_escalation, Some(false));
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            assert!(
                ready,
                "{} not Ready (its /readyz, probed by the kubelet)",
                pod.name_any()
            );
        }
        let holder = leader(c).await;
        assert!(
            names.contains(&holder),
            "{}: the Lease is held by {holder}, not one of the Pods {names:?}",
            c.name
        );
        let group = ready(&c.client, DEMO_NS, GROUP).await;
        assert_eq!(
            group.as_ref().map(|g| g.0.as_str()),
            Some("True"),
            "group demo in {}: {group:?}",
            c.name
        );
    }
    serves_only_from(&clusters, "east").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deployed_demo_fails_over_and_back_and_answers_only_where_active() {
    let _lab = LAB.lock().await;
    let clusters = lab().await;
    active_in_east(&clusters).await;
    let [east, west] = &clusters;
    demo_runs_in(&clusters, "east").await;
    serves_only_from(&clusters, "east").await;

    let name = request(west, "west", FailoverMode::Consistency).await;
    let out = outcome(west, &name).await;
    assert_eq!(out, "completed-consistency");
    demo_runs_in(&clusters, "west").await;
    serves_only_from(&clusters, "west").await;

    let name = request(east, "east", FailoverMode::Uptime).await;
    let out = outcome(east, &name).await;
    assert_eq!(out, "completed-uptime");
    demo_runs_in(&clusters, "east").await;
    serves_only_from(&clusters, "east").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deployed_leader_pod_deleted_mid_failover_the_other_replica_finishes() {
    let _lab = LAB.lock().await;
    let clusters = lab().await;
    active_in_east(&clusters).await;
    let [east, west] = &clusters;
    demo_runs_in(&clusters, "east").await;
    let before = leader(east).await;
    let name = request(west, "west", FailoverMode::Consistency).await;
    let pods: Api<Pod> = Api::namespaced(east.client.clone(), OPERATOR_NS);
    let stage = follow(west, &name, true).await;
    assert!(
        !stage.starts_with("completed"),
        "the failover ended before the leader could be deleted: {stage}"
    );
    pods.delete(&before, &DeleteParams::default())
        .await
        .expect("delete the leader Pod");
    let out = outcome(west, &name).await;
    assert_eq!(
        out, "completed-consistency",
        "leader {before} deleted at stage {stage}"
    );
    let after = leader(east).await;
    assert_ne!(after, before, "the other replica leads now");
    demo_runs_in(&clusters, "west").await;
    serves_only_from(&clusters, "west").await;
    // Back to east, as the other tests expect; the deleted Pod's replacement is up.
    let name = request(east, "east", FailoverMode::Consistency).await;
    let out = outcome(east, &name).await;
    assert_eq!(out, "completed-consistency");
    demo_runs_in(&clusters, "east").await;
    let deployments: Api<Deployment> = Api::namespaced(east.client.clone(), OPERATOR_NS);
    wait_for(
        "two operator replicas again",
        Duration::from_secs(90),
        || async {
            let d = deployments.get(OPERATOR).await.ok()?;
            (d.status?.ready_replicas == Some(2)).then_some(())
        },
    )
    .await
    .expect("the Deployment replaced the deleted Pod");
}

/// Removes the rules granting `resource` from the chart's ClusterRole; the rules it
/// had.
async fn remove_rule(client: &Client, resource: &str) -> serde_json::Value {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = roles.get(OPERATOR).await.expect("the chart's ClusterRole");
    let rules = serde_json::to_value(role.rules.clone().unwrap_or_default()).expect("rules");
    let kept: Vec<serde_json::Value> = rules
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| {
            !r["resources"]
                .as_array()
                .is_some_and(|rs| rs.contains(&json!(resource)))
        })
        .cloned()
        .collect();
    assert!(
        kept.len() < rules.as_array().map_or(0, Vec::len),
        "the chart's ClusterRole has a rule for {resource}"
    );
    set_rules(client, json!(kept)).await;
    rules
}

async fn set_rules(client: &Client, rules: serde_json::Value) {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles
        .patch(
            OPERATOR,
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": rules})),
        )
        .await
        .expect("patch the ClusterRole");
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_a_removed_rule_is_named_in_a_condition_and_nothing_is_changed() {
    let _lab = LAB.lock().await;
    let clusters = lab().await;
    active_in_east(&clusters).await;
    let [east, _] = clusters;
    let ns = unique_name("rbac");
    let namespaces: Api<Namespace> = Api::all(east.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
        )
        .await
        .expect("create namespace");
    // A member the group would stop on a failover; the exec hook's pods.
    let deployments: Api<Deployment> = Api::namespaced(east.client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api", "labels": {"app.kubernetes.io/part-of": "rbac"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": "localhost/failover-demo:0.1.0",
                                                       "imagePullPolicy": "IfNotPresent"}]}}}
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    let original = remove_rule(&east.client, "pods/exec").await;
    let groups: Api<FailoverGroup> = Api::namespaced(east.client.clone(), &ns);
    let group: FailoverGroup = serde_json::from_value(json!({
        "apiVersion": "failover.rs/v1alpha1", "kind": "FailoverGroup",
        "metadata": {"name": "g"},
        "spec": {
            "clusters": ["east", "west"],
            "members": {"selector": {"matchLabels": {"app.kubernetes.io/part-of": "rbac"}}},
            "hooks": [{"name": "verify", "before": "promote-volumes", "side": "target",
                       "exec": {"selector": {"matchLabels": {"app": "api"}}, "command": ["true"]}}]
        }
    }))
    .expect("group");
    let result = async {
        groups
            .create(&PostParams::default(), &group)
            .await
            .expect("create the group");
        let (status, reason, message) = wait_for(
            "the group's Ready condition",
            Duration::from_secs(60),
            || async { ready(&east.client, &ns, "g").await },
        )
        .await
        .expect("a Ready condition");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "MissingPermissions"),
            "{message}"
        );
        // The rule's two verbs (an exec is authorized as `get` before 1.35, `create`
        // after), and nothing else.
        for verb in ["create", "get"] {
            let want = format!(
                "{verb} pods/exec (core API group) in namespace {ns} (run the exec hooks' commands)"
            );
            assert!(message.contains(&want), "{message}\nshould name: {want}");
        }
        assert_eq!(
            message.matches(" in namespace ").count(),
            2,
            "exactly the removed rule: {message}"
        );
        // Nothing was done: no record read or written, no trace, the member untouched.
        let g = groups.get("g").await.expect("group");
        let s = g.status.unwrap_or_default();
        assert!(s.active.is_none() && s.token.is_none(), "no record: {s:?}");
        let maps: Api<ConfigMap> = Api::namespaced(east.client.clone(), &ns);
        assert!(
            maps.get_opt("failover-trace-g")
                .await
                .expect("get")
                .is_none(),
            "no trace ConfigMap"
        );
        let d = deployments.get("api").await.expect("deployment");
        assert!(
            !d.annotations()
                .keys()
                .any(|k| k.starts_with("failover.rs/")),
            "the member was not touched: {:?}",
            d.annotations()
        );
        // Granted again, the loop starts within the 30 s re-check.
        set_rules(&east.client, original.clone()).await;
        wait_for(
            "the loop to start once granted",
            Duration::from_secs(60),
            || async {
                let (_, reason, _) = ready(&east.client, &ns, "g").await?;
                (reason != "MissingPermissions").then_some(())
            },
        )
        .await
        .expect("the group's loop started");
    };
    // Restore the rules whatever happened, for the other tests.
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    set_rules(&east.client, original).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
