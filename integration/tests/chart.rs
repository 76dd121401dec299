//! The Helm chart `deploy/helm/failover-operator`: linted by Helm's own linter, its CRDs
//! the committed ones, every value documented and checked by the schema, bad values
//! refused with a clear message, and the rendered objects applied to a real Kubernetes
//! 1.20 API server, where its RBAC grants the operator's ServiceAccount exactly what the
//! operator does: checked rule by rule, by SubjectAccessReviews, and by the engine's
//! real Kubernetes calls made as that ServiceAccount.
//!
//! The chart is linted and rendered by `scripts/chart.sh` (Helm's Go library through
//! the PyPI package helm-python-sdk, installed once into a cached venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use failover_engine::effects::retried;
use failover_engine::hooks::JobState;
use failover_engine::k8s::KubeCluster;
use failover_engine::ports::{ClusterPort, Desired, Kind, LabelQuery, Selector};
use failover_integration::app;
use failover_integration::plane::{ControlPlane, established, repo_root};
use failover_model::{Cluster, Trace};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Config, Resource};
use serde_json::{Value, json};

/// The namespace the chart is installed in.
const NAMESPACE: &str = "failover-system";
/// The release's objects' name (release `failover-operator`, the chart's default name).
const NAME: &str = "failover-operator";
/// The field manager of the test's server-side applies.
const MANAGER: &str = "failover-chart-test";

fn chart_dir() -> PathBuf {
    repo_root().join("deploy/helm/failover-operator")
}

/// What `scripts/chart.sh` printed, and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `scripts/chart.sh` with `args`.
fn chart(args: &[&str]) -> Run {
    let out = Command::new(repo_root().join("scripts/chart.sh"))
        .args(args)
        .output()
        .expect("run scripts/chart.sh");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The manifests `scripts/chart.sh render args` prints, parsed.
fn render(args: &[&str]) -> Vec<Value> {
    let run = chart(&[&["render"], args].concat());
    assert!(run.ok, "rendering with {args:?} failed:\n{}", run.stderr);
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&run.stdout).expect("rendered YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The object of `kind` named `name` among `docs`.
fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

/// The operator container's environment, by name.
fn env_of(deployment: &Value) -> BTreeMap<String, Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_string(), e.clone()))
        .collect()
}

#[test]
fn chart_lints_clean() {
    let run = chart(&["lint"]);
    assert!(
        run.ok,
        "helm lint --strict failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    for bad in ["[WARNING]", "[ERROR]", "[UNKNOWN]"] {
        assert!(
            !run.stdout.contains(bad),
            "lint found problems:\n{}",
            run.stdout
        );
    }
    let linted = run.stdout.matches("==> Linting").count();
    let ci = std::fs::read_dir(chart_dir().join("ci"))
        .expect("ci/")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("-values.yaml"))
        })
        .count();
    assert!(ci >= 3, "the chart's ci/ values files: {ci}");
    assert_eq!(linted, ci, "one lint per ci/ values file:\n{}", run.stdout);
}

#[test]
fn chart_crds_are_the_committed_ones() {
    let committed = std::fs::read(repo_root().join("deploy/crds/crds.yaml")).expect("CRDs");
    let crds = chart_dir().join("crds");
    let files: Vec<String> = std::fs::read_dir(&crds)
        .expect("the chart's crds/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        ["crds.yaml"],
        "the chart's crds/ holds only the copy"
    );
    let copy = std::fs::read(crds.join("crds.yaml")).expect("the chart's CRDs");
    assert!(
        copy == committed,
        "deploy/helm/failover-operator/crds/crds.yaml differs from deploy/crds/crds.yaml: \
         run scripts/chart.sh sync-crds"
    );
    let run = chart(&["check-crds"]);
    assert!(run.ok, "{}", run.stderr);
    // --include-crds renders them first, unchanged.
    let docs = render(&["--set", "clusterName=east", "--include-crds"]);
    let names: Vec<&str> = docs
        .iter()
        .take(2)
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["failovergroups.failover.rs", "failovers.failover.rs"]
    );
}

/// Every leaf of `value` as a dotted path (maps are entered, empty ones and everything
/// else are leaves).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// Whether `path` is a key of `values` (a leaf or a map).
fn has_path(values: &Value, path: &str) -> bool {
    path.split('.').try_fold(values, |v, k| v.get(k)).is_some()
}

/// The schema of `path`, or of the free-form object above it (one without
/// `properties`), if the schema describes it.
fn schema_of<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    for key in path.split('.') {
        match node.get("properties") {
            Some(props) => node = props.get(key)?,
            None => return (node["type"] == "object").then_some(node),
        }
    }
    Some(node)
}

/// Every property the schema names, as dotted paths.
fn schema_paths(prefix: &str, schema: &Value, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            schema_paths(&path, v, out);
        }
    }
}

#[test]
fn chart_renders_every_value_documented() {
    let dir = chart_dir();
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("values.yaml")).expect("values"))
            .expect("values.yaml");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("values.schema.json")).expect("schema"),
    )
    .expect("values.schema.json");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    let table = readme
        .split("\n## Values\n")
        .nth(1)
        .expect("a Values section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();
    let mut all = Vec::new();
    leaves("", &values, &mut all);
    for path in &all {
        let covered = documented
            .iter()
            .any(|d| d == path || path.starts_with(&format!("{d}.")));
        assert!(covered, "value {path} is not in the README's values table");
        assert!(
            schema_of(&schema, path).is_some(),
            "value {path} is not in values.schema.json"
        );
    }
    for key in &documented {
        assert!(
            has_path(&values, key),
            "the README documents {key}, which values.yaml does not have"
        );
    }
    let mut named = Vec::new();
    schema_paths("", &schema, &mut named);
    for path in named.iter().filter(|p| *p != "global") {
        let under_free_form = path
            .rsplit_once('.')
            .is_some_and(|(parent, _)| !has_path(&values, parent));
        assert!(
            has_path(&values, path) || under_free_form,
            "values.schema.json describes {path}, which values.yaml does not have"
        );
    }

    // Every setting of the operator's (operator/src/config.rs) is one the chart sets,
    // but the kubeconfig (the chart's operator runs in the cluster).
    let config = std::fs::read_to_string(repo_root().join("operator/src/config.rs"))
        .expect("operator/src/config.rs");
    let deployment =
        std::fs::read_to_string(dir.join("templates/deployment.yaml")).expect("deployment");
    let vars: Vec<&str> = config
        .split("env = \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(vars.len() >= 15, "the operator's variables: {vars:?}");
    for var in vars.iter().filter(|v| **v != "FAILOVER_KUBECONFIG") {
        assert!(
            deployment.contains(&format!("name: {var}\n")),
            "the chart does not set {var} (operator/src/config.rs)"
        );
    }

    // Every ci/ values file renders; the one with every option on sets each of them.
    for file in ["default", "namespaced", "full"] {
        let path = dir.join(format!("ci/{file}-values.yaml"));
        let docs = render(&["-f", path.to_str().expect("path")]);
        assert!(docs.iter().any(|d| d["kind"] == "Deployment"), "{file}");
    }
    let full = dir.join("ci/full-values.yaml");
    let docs = render(&["-f", full.to_str().expect("path"), "-n", NAMESPACE]);
    let deployment = find(&docs, "Deployment", "failover");
    let env = env_of(deployment);
    let value = |name: &str| env.get(name).map(|e| e["value"].clone());
    assert_eq!(value("FAILOVER_TABLE"), Some(json!("failover-prod")));
    assert_eq!(value("AWS_REGION"), Some(json!("eu-west-1")));
    assert_eq!(value("FAILOVER_KUBE_QPS"), Some(json!("25.5")));
    assert_eq!(value("FAILOVER_METRICS_ADDR"), Some(json!("[::]:9090")));
    assert_eq!(value("FAILOVER_LEASE_NAME"), Some(json!("failover-leader")));
    assert_eq!(
        env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"],
        json!({"name": "failover-aws", "key": "AWS_SESSION_TOKEN"})
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.com/failover/failover-operator@sha256:\
         0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            .is_array()
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "operator"
    );
    let monitor = find(&docs, "ServiceMonitor", "failover");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let pdb = find(&docs, "PodDisruptionBudget", "failover");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(
        !docs.iter().any(|d| d["kind"] == "PriorityClass"),
        "an existing PriorityClass is used, none is created"
    );
    let sa = find(&docs, "ServiceAccount", "failover-operator");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/failover-operator"
    );
    let role = find(&docs, "ClusterRole", "failover");
    let groups: Vec<&Value> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| &r["apiGroups"][0])
        .collect();
    for off in [
        "networking.istio.io",
        "replication.storage.openshift.io",
        "kustomize.toolkit.fluxcd.io",
    ] {
        assert!(!groups.contains(&&json!(off)), "rbac toggles: {off}");
    }

    // Watching namespaces: a Role in each, the Flux rules in flux-system, no
    // ClusterRole for the operator and none for kube-system (clusterId is given); one
    // replica without leader election: no Lease Role and no PodDisruptionBudget.
    let namespaced = dir.join("ci/namespaced-values.yaml");
    let docs = render(&["-f", namespaced.to_str().expect("path"), "-n", NAMESPACE]);
    let roles: Vec<(String, String)> = docs
        .iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| {
            (
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                d["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("shop".to_string(), NAME.to_string()),
            ("payments".to_string(), NAME.to_string()),
            ("flux-system".to_string(), format!("{NAME}-flux")),
        ]
    );
    let cluster_roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        cluster_roles,
        [format!("{NAME}-view"), format!("{NAME}-edit")]
    );
    assert!(!docs.iter().any(|d| d["kind"] == "PodDisruptionBudget"));
    let env = env_of(find(&docs, "Deployment", NAME));
    assert_eq!(env["FAILOVER_NAMESPACES"]["value"], "shop,payments");
    assert_eq!(env["FAILOVER_LEADER_ELECTION"]["value"], "false");
    assert!(!env.contains_key("AWS_ACCESS_KEY_ID"));

    // The notes render, with the Lease and the table.
    let run = chart(&["notes", "--set", "clusterName=east", "-n", NAMESPACE]);
    assert!(run.ok, "{}", run.stderr);
    for needed in [
        "kubectl -n failover-system get lease failover-operator",
        "kubectl failover create-table --table failover",
        "kind: FailoverGroup",
    ] {
        assert!(
            run.stdout.contains(needed),
            "NOTES lack {needed:?}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn chart_refuses_bad_values_with_a_clear_message() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["/clusterName", "minLength"]),
        (&["--set", "clusterName=East"], &["/clusterName", "pattern"]),
        (
            &["--set", "clusterName=east", "--set", "replicaCount=two"],
            &["/replicaCount", "want integer"],
        ),
        (
            &["--set", "clusterName=east", "--set", "clusterNmae=west"],
            &["additional properties 'clusterNmae' not allowed"],
        ),
        (
            &[
                "--set",
                "clusterName=east",
                "--set",
                "podAntiAffinity=maybe",
            ],
            &["/podAntiAffinity", "'soft', 'hard', 'none'"],
        ),
        (
            &["--set", "clusterName=east", "--set", "logging.format=xml"],
            &["/logging/format"],
        ),
        (
            &[
                "--set",
                "clusterName=east",
                "--set",
                "leaderElection.enabled=false",
            ],
            &["replicaCount is 2 but leaderElection.enabled is false"],
        ),
        (
            &[
                "--set",
                "clusterName=east",
                "--set",
                "dynamodb.endpoint=http://dynamodb-local:8000",
                "--set",
                "dynamodb.credentials.secretName=aws",
            ],
            &["dynamodb.credentials.secretName cannot be used with dynamodb.endpoint"],
        ),
        (
            &[
                "--set",
                "clusterName=east",
                "--set",
                "rbac.fluxNamespaces={flux-system}",
            ],
            &["rbac.fluxNamespaces applies only with watchNamespaces"],
        ),
        (
            &["--set", "clusterName=east", "--kube-version", "v1.19.16"],
            &["kubeVersion: >=1.20.0-0", "1.19.16"],
        ),
    ];
    for (args, messages) in cases {
        let run = chart(&[&["render"], *args].concat());
        assert!(!run.ok, "rendering with {args:?} succeeded");
        assert!(run.stdout.is_empty(), "nothing rendered with {args:?}");
        for message in *messages {
            assert!(
                run.stderr.contains(message),
                "rendering with {args:?}: no {message:?} in\n{}",
                run.stderr
            );
        }
    }
    // Lint says the same.
    let run = chart(&["lint", "--set", "clusterName="]);
    assert!(!run.ok);
    assert!(run.stdout.contains("[ERROR]") && run.stdout.contains("/clusterName"));
}

/// The API versions the server serves, as Helm's capabilities list them (`group/version`
/// and `group/version/Kind`), and the discovery.
async fn served(client: &Client) -> (Vec<String>, Discovery) {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut versions = BTreeSet::new();
    for group in discovery.groups() {
        for version in group.versions() {
            let gv = if group.name().is_empty() {
                version.to_string()
            } else {
                format!("{}/{version}", group.name())
            };
            for (resource, _) in group.versioned_resources(version) {
                versions.insert(format!("{gv}/{}", resource.kind));
            }
            versions.insert(gv);
        }
    }
    (versions.into_iter().collect(), discovery)
}

/// Render the chart for `plane` (its Kubernetes version and API versions), with its
/// CRDs, and apply every object by server-side apply; the objects.
///
/// The Deployment's Pods must never run the operator on the shared control plane
/// (another test's groups live there): a node selector no node has, and an unreachable
/// DynamoDB endpoint.
async fn apply_chart(plane: &ControlPlane) -> Vec<Value> {
    let client = &plane.client;
    let version = client.apiserver_version().await.expect("version");
    let (api_versions, _) = served(client).await;
    let api_versions = api_versions.join(",");
    let args: Vec<String> = [
        "--namespace",
        NAMESPACE,
        "--include-crds",
        "--kube-version",
        &version.git_version,
        "--api-versions",
        &api_versions,
        "--set",
        "clusterName=east",
        "--set-string",
        "nodeSelector.failover-chart-test=no-such-node",
        "--set",
        "dynamodb.endpoint=http://127.0.0.1:1",
    ]
    .map(String::from)
    .into();
    let docs = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        render(&args)
    })
    .await
    .expect("render");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {NAMESPACE}: {e}"),
    }
    let mut discovery = served(client).await.1;
    for doc in &docs {
        let (api, name) = api_of(client, &discovery, doc);
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", doc["kind"]));
        if doc["kind"] == "CustomResourceDefinition" {
            established(client, name).await.expect("CRD established");
            discovery = served(client).await.1;
        }
    }
    docs
}

/// The API of a rendered object, resolved by discovery, and its name. Every
/// namespaced object of the chart names its namespace.
fn api_of<'a>(
    client: &Client,
    discovery: &Discovery,
    doc: &'a Value,
) -> (Api<DynamicObject>, &'a str) {
    let (group, version) = match doc["apiVersion"].as_str().expect("apiVersion") {
        gv if gv.contains('/') => gv.split_once('/').expect("group/version"),
        v => ("", v),
    };
    let kind = doc["kind"].as_str().expect("kind");
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .unwrap_or_else(|| panic!("the server does not serve {gvk:?}"));
    let name = doc["metadata"]["name"].as_str().expect("name");
    let api = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} {name} names no namespace"));
            Api::namespaced_with(client.clone(), ns, &resource)
        }
    };
    (api, name)
}

/// The operator's ServiceAccount, as the API server names it.
fn operator_user() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{NAME}")
}

/// One access to check: (namespace, API group, resource, subresource, verb, name).
type Access = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// Whether the operator's ServiceAccount may do `access` (a SubjectAccessReview).
async fn allowed(client: &Client, access: Access) -> bool {
    let (namespace, group, resource, subresource, verb, name) = access;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(operator_user()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: some(namespace),
                group: Some(group.to_string()),
                resource: some(resource),
                subresource: some(subresource),
                verb: some(verb),
                name: some(name),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// The operator's ClusterRole rules: (API group, resource, verb, resource name), and
/// the code that needs each (the chart's comments say the same).
const OPERATOR_RULES: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "failover.rs",
        "failovergroups",
        &["list", "watch"],
        "",
        "operator/src/controllers.rs run",
    ),
    (
        "failover.rs",
        "failovers",
        &["list", "watch", "create"],
        "",
        "controllers.rs run; auto.rs fire",
    ),
    (
        "failover.rs",
        "failovergroups/status",
        &["patch"],
        "",
        "group.rs apply_status_as",
    ),
    (
        "failover.rs",
        "failovers/status",
        &["patch"],
        "",
        "group.rs apply_status_as",
    ),
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s",
    ),
    (
        "apps",
        "statefulsets",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s",
    ),
    (
        "batch",
        "cronjobs",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/cronjob.rs",
    ),
    (
        "networking.k8s.io",
        "ingresses",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/network.rs",
    ),
    (
        "networking.istio.io",
        "virtualservices",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/network.rs",
    ),
    (
        "replication.storage.openshift.io",
        "volumereplications",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/volume.rs",
    ),
    (
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/flux.rs",
    ),
    (
        "helm.toolkit.fluxcd.io",
        "helmreleases",
        &["get", "list", "watch", "patch"],
        "",
        "engine/src/k8s/flux.rs",
    ),
    (
        "",
        "configmaps",
        &["get", "create", "update"],
        "",
        "engine/src/k8s/trace.rs",
    ),
    (
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "",
        "kube-runtime Recorder",
    ),
    (
        "batch",
        "jobs",
        &["get", "create"],
        "",
        "engine/src/k8s/hooks.rs ensure_job",
    ),
    ("", "pods", &["list"], "", "engine/src/k8s/hooks.rs exec"),
    (
        "",
        "pods/exec",
        &["create", "get"],
        "",
        "engine/src/k8s/hooks.rs exec_in",
    ),
    (
        "",
        "namespaces",
        &["get"],
        "kube-system",
        "engine/src/k8s/mod.rs identity",
    ),
];

/// A Role's or ClusterRole's rules as (group, resource, verb, resource name) tuples.
fn rule_set(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let names = strings(&rule["resourceNames"]);
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    for n in &names {
                        out.insert((g.clone(), r.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_applies_to_a_real_api_server() {
    let plane = ControlPlane::shared("east").await.expect("control plane");
    let client = &plane.client;
    let docs = apply_chart(&plane).await;
    let version = client.apiserver_version().await.expect("version");
    let minor: u32 = version
        .minor
        .trim_end_matches('+')
        .parse()
        .expect("minor version");

    // Every object is on the server.
    let discovery = served(client).await.1;
    for doc in &docs {
        let (api, name) = api_of(client, &discovery, doc);
        api.get(name)
            .await
            .unwrap_or_else(|e| panic!("{} {name} is not on the server: {e}", doc["kind"]));
    }

    // The PodDisruptionBudget in the version the server serves: policy/v1beta1 on 1.20.
    let pdb = find(&docs, "PodDisruptionBudget", NAME);
    let expected = if minor >= 21 {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    assert_eq!(pdb["apiVersion"], expected, "Kubernetes 1.{minor}");

    // The ClusterRole has exactly the operator's rules; the Lease Role exactly its own.
    let expected: BTreeSet<(String, String, String, String)> = OPERATOR_RULES
        .iter()
        .flat_map(|(g, r, verbs, n, _)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string(), n.to_string()))
        })
        .collect();
    let rules = rule_set(find(&docs, "ClusterRole", NAME));
    let missing: Vec<_> = expected.difference(&rules).collect();
    let extra: Vec<_> = rules.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the operator's ClusterRole lacks {missing:?} and grants {extra:?} beyond what the \
         operator uses (OPERATOR_RULES)"
    );
    let lease_role = find(&docs, "Role", &format!("{NAME}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    let rule = |v: &str, name: &str| {
        (
            "coordination.k8s.io".to_string(),
            "leases".to_string(),
            v.to_string(),
            name.to_string(),
        )
    };
    assert_eq!(
        rule_set(lease_role),
        BTreeSet::from([rule("create", ""), rule("get", NAME), rule("patch", NAME)])
    );

    // The API server grants the ServiceAccount each of them, in any namespace...
    let ns = "shop-chart";
    for (group, resource, verbs, name, why) in OPERATOR_RULES {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let namespace = if resource == "namespaces" { "" } else { ns };
        for verb in *verbs {
            let access = (namespace, *group, resource, subresource, *verb, *name);
            assert!(
                allowed(client, access).await,
                "the chart does not let the operator {access:?} ({why})"
            );
        }
    }
    const LEASES: (&str, &str) = ("coordination.k8s.io", "leases");
    let lease = |ns: &'static str, verb: &'static str, name: &'static str| {
        (ns, LEASES.0, LEASES.1, "", verb, name)
    };
    for access in [
        lease(NAMESPACE, "create", ""),
        lease(NAMESPACE, "get", NAME),
        lease(NAMESPACE, "patch", NAME),
        ("", "", "namespaces", "", "get", "kube-system"),
    ] {
        assert!(allowed(client, access).await, "{access:?}");
    }
    // ...so the operator's own check before it leads passes (operator/src/access.rs,
    // process_needs: the Lease and kube-system by name; FailoverGroups and Failovers
    // cluster-wide)...
    for access in [
        lease(NAMESPACE, "get", NAME),
        lease(NAMESPACE, "create", ""),
        lease(NAMESPACE, "patch", NAME),
        ("", "failover.rs", "failovergroups", "", "list", ""),
        ("", "failover.rs", "failovergroups", "", "watch", ""),
        ("", "failover.rs", "failovers", "", "list", ""),
        ("", "failover.rs", "failovers", "", "watch", ""),
        ("", "", "namespaces", "", "get", "kube-system"),
    ] {
        assert!(
            allowed(client, access).await,
            "the operator's permission check before leading asks for {access:?}"
        );
    }
    // ...and nothing else.
    for access in [
        (ns, "apps", "deployments", "", "create", ""),
        (ns, "apps", "deployments", "", "update", "web"),
        (ns, "apps", "deployments", "", "delete", "web"),
        (ns, "apps", "deployments", "scale", "patch", "web"),
        (ns, "apps", "statefulsets", "scale", "update", "db"),
        (ns, "batch", "cronjobs", "", "delete", "report"),
        (ns, "networking.k8s.io", "ingresses", "", "update", "shop"),
        (ns, "", "secrets", "", "get", "db"),
        (ns, "", "secrets", "", "list", ""),
        (ns, "", "configmaps", "", "delete", "failover-trace-shop"),
        (ns, "", "configmaps", "", "list", ""),
        (ns, "", "pods", "", "delete", "web-1"),
        (ns, "", "pods", "", "get", "web-1"),
        (ns, "batch", "jobs", "", "delete", "hook"),
        (ns, "events.k8s.io", "events", "", "delete", "e"),
        (ns, "", "events", "", "create", ""),
        (ns, "failover.rs", "failovergroups", "", "update", "shop"),
        (ns, "failover.rs", "failovergroups", "", "delete", "shop"),
        (ns, "failover.rs", "failovers", "", "delete", "f"),
        lease(ns, "create", ""),
        lease("kube-system", "patch", NAME),
        lease(NAMESPACE, "update", NAME),
        lease(NAMESPACE, "delete", NAME),
        lease(NAMESPACE, "patch", "another-lease"),
        ("", "", "namespaces", "", "get", "default"),
        (ns, "failover.rs", "failovergroups", "", "get", "shop"),
        ("", "", "namespaces", "", "update", "kube-system"),
        ("", "", "namespaces", "", "list", ""),
        ("", "", "nodes", "", "list", ""),
        (
            "",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "create",
            "",
        ),
    ] {
        assert!(
            !allowed(client, access).await,
            "the chart lets the operator {access:?}, which it never does"
        );
    }
}

/// A client of `plane` that acts as the operator's ServiceAccount (impersonation by
/// the plane's administrator).
async fn as_operator(plane: &ControlPlane) -> Client {
    let file = Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(operator_user());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{NAMESPACE}"),
        "system:authenticated".into(),
    ]);
    Client::try_from(config).expect("client")
}

/// The resource of the operator's own kind `kind` (`FailoverGroup`, `Failover`).
fn own(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("failover.rs", "v1alpha1", kind),
        plural,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_lets_the_operator_work() {
    let plane = ControlPlane::shared("east").await.expect("control plane");
    apply_chart(&plane).await;
    let admin = &plane.client;
    let operator = as_operator(&plane).await;
    let ns = plane.namespace("chart").await.expect("namespace");
    let objects = app::create(admin, &ns, "shop", &Kind::ALL, 1)
        .await
        .expect("the application");

    // Members of every kind: watched (the caches), listed, read and changed by the
    // engine's adapter as the operator's ServiceAccount.
    for kind in Kind::ALL {
        let resource = app::resource(admin, kind).await.expect("resource");
        let api: Api<DynamicObject> = Api::namespaced_with(operator.clone(), &ns, &resource);
        // A refused watch is an error before any event.
        let events = api
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .unwrap_or_else(|e| panic!("watching {kind} as the operator: {e}"));
        drop(events);
    }
    let cluster = KubeCluster::new(operator.clone()).with_caches();
    let selector = Selector {
        namespace: ns.clone(),
        labels: LabelQuery::equals("app", "shop"),
        names: Vec::new(),
    };
    for kind in Kind::ALL {
        let members = cluster
            .members(kind, &selector)
            .await
            .unwrap_or_else(|e| panic!("listing {kind} as the operator: {e}"));
        assert_eq!(members.len(), 1, "{kind}");
    }
    for object in &objects {
        for desired in [Desired::Stop, Desired::Start] {
            retried(|| cluster.set(object, desired))
                .await
                .unwrap_or_else(|e| panic!("{desired:?} {object} as the operator: {e}"));
        }
    }
    // The cluster's identity, the group's trace, a Job hook, an exec hook's Pods.
    let uid = cluster.identity().await.expect("identity as the operator");
    let kube_system: Api<Namespace> = Api::all(admin.clone());
    assert_eq!(
        Some(uid),
        kube_system
            .get("kube-system")
            .await
            .expect("kube-system")
            .metadata
            .uid
    );
    let group = format!("{ns}/shop");
    let trace = |token| Trace {
        token,
        ended: 0,
        active: Cluster::A,
        missing: false,
    };
    for token in [1, 2] {
        cluster
            .remember(&group, trace(token))
            .await
            .expect("the trace as the operator");
    }
    assert_eq!(
        cluster.recall(&group).await.expect("recall"),
        Some(trace(2))
    );
    let template = json!({"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "hook", "image": "registry.invalid/hook:1"}]
    }}}});
    let labels = BTreeMap::from([("failover.rs/hook".to_string(), "quiesce".to_string())]);
    for _ in 0..2 {
        let state = cluster
            .ensure_job(&ns, "quiesce-1", &labels, &template, 60)
            .await
            .expect("a Job hook as the operator");
        assert_eq!(state, JobState::Running);
    }
    let none = cluster
        .exec(
            &ns,
            &LabelQuery::equals("app", "no-such-pod"),
            None,
            &["true".to_string()],
        )
        .await
        .expect("an exec hook's Pods as the operator");
    assert!(none.is_empty());

    // The group's status, its Events, and an automatic Failover.
    let groups = own("FailoverGroup", "failovergroups");
    let failovers = own("Failover", "failovers");
    let fg: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "failover.rs/v1alpha1", "kind": "FailoverGroup",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {"clusters": ["east", "west"],
                 "members": {"selector": {"matchLabels": {"app": "shop"}}}}
    }))
    .expect("FailoverGroup");
    let admin_groups: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &groups);
    let fg = admin_groups
        .create(&PostParams::default(), &fg)
        .await
        .expect("FailoverGroup");
    let op_groups: Api<DynamicObject> = Api::namespaced_with(operator.clone(), &ns, &groups);
    op_groups
        .list(&ListParams::default())
        .await
        .expect("listing FailoverGroups as the operator");
    let events = op_groups
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watching FailoverGroups as the operator");
    drop(events);
    let status = json!({"apiVersion": "failover.rs/v1alpha1", "kind": "FailoverGroup",
                        "status": {"problems": ["written by the chart test"]}});
    op_groups
        .patch_status(
            "shop",
            &PatchParams::apply("failover-operator").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("the group's status as the operator");
    let recorder = Recorder::new(
        operator.clone(),
        Reporter {
            controller: "failover-operator".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "StageStarted".into(),
        note: Some("the chart test".into()),
        action: "source-preparation".into(),
        secondary: None,
    };
    // Twice: the second adds to the first's series (a patch).
    for _ in 0..2 {
        recorder
            .publish(&event, &fg.object_ref(&groups))
            .await
            .expect("an Event as the operator");
    }
    let op_failovers: Api<DynamicObject> = Api::namespaced_with(operator.clone(), &ns, &failovers);
    let fo: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "failover.rs/v1alpha1", "kind": "Failover",
        "metadata": {"name": "shop-auto-1", "namespace": ns,
                     "labels": {"failover.rs/automatic": "true"}},
        "spec": {"group": "shop", "targetCluster": "west", "mode": "Consistency"}
    }))
    .expect("Failover");
    op_failovers
        .create(&PostParams::default(), &fo)
        .await
        .expect("an automatic Failover as the operator");
    let listed = op_failovers
        .list(&ListParams::default().labels("failover.rs/automatic=true"))
        .await
        .expect("listing Failovers as the operator");
    assert_eq!(listed.items.len(), 1);
    let status = json!({"apiVersion": "failover.rs/v1alpha1", "kind": "Failover",
                        "status": {"phase": "Pending"}});
    op_failovers
        .patch_status(
            "shop-auto-1",
            &PatchParams::apply("failover-operator").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("a Failover's status as the operator");

    // The leader election Lease: created if missing, read, renewed.
    let leases: Api<Lease> = Api::namespaced(operator.clone(), NAMESPACE);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {"holderIdentity": "chart-test", "leaseDurationSeconds": 4}
    }))
    .expect("Lease");
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating the Lease as the operator: {e}"),
    }
    leases
        .get(NAME)
        .await
        .expect("reading the Lease as the operator");
    leases
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"leaseTransitions": 1}})),
        )
        .await
        .expect("renewing the Lease as the operator");
    let elsewhere: Api<Lease> = Api::namespaced(operator.clone(), &ns);
    let other = elsewhere
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"leaseTransitions": 1}})),
        )
        .await;
    assert!(
        matches!(other, Err(kube::Error::Api(ref s)) if s.code == 403),
        "a Lease outside the release's namespace: {other:?}"
    );
}
