//! The examples in `deploy/examples/` and the kind lab's group (`deploy/kind/demo.yaml`)
//! are what the operator accepts: each document deserializes into the Rust CRD types
//! with no field left over (a misspelt field would be dropped silently by the API
//! server's pruning and by serde), and passes the validation the operator applies to it
//! (`Group::parse` in `reconcile_group`, `Group::request` in `reconcile_failover`, the
//! leader hand-over check) from both clusters' side.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use failover_engine::spec::{Failover, FailoverGroup, FailoverMode, Group};
use failover_model::Cluster;
use serde_json::Value;

/// A file of the repository.
fn path(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(relative)
}

/// The YAML documents of `relative`, as JSON values.
fn documents(relative: &str) -> Vec<Value> {
    let p = path(relative);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Where `typed` (the value after a round trip through the Rust types) differs from
/// `written` (the file's): fields the types do not know, or values they read otherwise
/// (defaults the types add are fine).
fn differences(at: &str, written: &Value, typed: &Value, out: &mut Vec<String>) {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => {
            let keys: BTreeSet<&String> = w.keys().chain(t.keys()).collect();
            for k in keys {
                let here = format!("{at}.{k}");
                match (w.get(k), t.get(k)) {
                    (Some(a), Some(b)) => differences(&here, a, b, out),
                    (Some(_), None) => out.push(format!("{here}: not a field of the CRD")),
                    // A default the types fill in.
                    (None, _) => {}
                }
            }
        }
        (Value::Array(w), Value::Array(t)) if w.len() == t.len() => {
            for (i, (a, b)) in w.iter().zip(t).enumerate() {
                differences(&format!("{at}[{i}]"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{at}: written {a}, read as {b}")),
    }
}

/// `doc` as the Rust type `T`, checked to lose and add nothing.
fn typed<T>(file: &str, doc: &Value) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let object: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&object).expect("serializes");
    let mut diff = Vec::new();
    differences("", doc, &back, &mut diff);
    assert!(diff.is_empty(), "{file}: {diff:#?}");
    object
}

/// The operator's default `--leader-lease-seconds` plus the Lease's grace: how long a
/// crashed leader takes to be replaced.
fn default_handover() -> Duration {
    let command = failover_operator::config::Config::command();
    let lease = command
        .get_arguments()
        .find(|a| a.get_id() == "leader_lease_seconds")
        .and_then(|a| a.get_default_values().first())
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("--leader-lease-seconds has a default");
    Duration::from_secs(lease) + failover_operator::auto::LEADER_GRACE
}

/// Validate group `doc` (of `file`) as each of its clusters' operators does; the
/// groups, in the order of `spec.clusters`.
fn valid_group(file: &str, doc: &Value) -> (FailoverGroup, Vec<Group>) {
    assert_eq!(doc["apiVersion"], "failover.rs/v1alpha1", "{file}");
    assert_eq!(doc["kind"], "FailoverGroup", "{file}");
    let fg: FailoverGroup = typed(file, doc);
    assert!(
        fg.status.is_none(),
        "{file}: the operator writes the status"
    );
    let ns = fg.metadata.namespace.clone().expect("a namespace");
    let name = fg.metadata.name.clone().expect("a name");
    let mut groups = Vec::new();
    for me in &fg.spec.clusters {
        let group = Group::parse(&ns, &name, &fg.spec, me)
            .unwrap_or_else(|e| panic!("{file}: invalid for the operator of {me}: {e}"));
        assert_eq!(group.name_of(group.me), me);
        assert_eq!(
            failover_operator::auto::handover_problem(&group, Some(default_handover())),
            None,
            "{file}: the leader hand-over check of {me}'s operator"
        );
        groups.push(group);
    }
    assert_eq!(groups.len(), 2, "{file}: two clusters");
    assert_eq!(
        groups[0].print(),
        groups[1].print(),
        "{file}: both copies print alike"
    );
    (fg, groups)
}

#[test]
fn examples_failovergroup_is_valid() {
    let file = "deploy/examples/failovergroup.yaml";
    let docs = documents(file);
    assert_eq!(docs.len(), 1, "{file}: one FailoverGroup");
    let (fg, groups) = valid_group(file, &docs[0]);
    let spec = &fg.spec;
    // The example shows every field of the CRD's spec (hooks: each action's, across
    // the hooks).
    let crd =
        serde_json::to_value(<FailoverGroup as kube::CustomResourceExt>::crd()).expect("the CRD");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut missing = Vec::new();
    shown("spec", schema, &[&docs[0]["spec"]], &mut missing);
    assert!(missing.is_empty(), "{file}: fields not shown: {missing:#?}");
    for group in &groups {
        assert_eq!(group.initial_active, Cluster::A);
        let auto = group.auto.as_ref().expect("auto-failover enabled");
        assert_eq!(auto.mode, failover_model::Mode::Consistency);
        assert!(auto.probe.is_some());
        assert_eq!(group.hooks.len(), spec.hooks.len());
        assert!(group.demotion_stops_writes);
        // What the comments say of the timing.
        let t = &group.timing;
        assert_eq!(t.lease_ttl + t.clock_drift_max, 18_000, "forced after 18 s");
        assert_eq!(
            failover_engine::executor::stop_grace_limit(group).as_secs(),
            5,
            "the grace period limit the comment names"
        );
    }
    // Each kind of hook action, and both failure policies.
    let hooks = &spec.hooks;
    assert!(hooks.iter().any(|h| h.job.is_some()));
    assert!(hooks.iter().any(|h| h.exec.is_some()));
    assert!(hooks.iter().any(|h| h.http.is_some()));
    // The group's namespace and name key its record.
    assert_eq!(groups[0].key, "shop/shop");
}

/// The fields of `schema` (an object's OpenAPI schema) that none of `values` shows, at
/// any depth; below `x-kubernetes-preserve-unknown-fields` (a hook's Job template) and
/// label selectors' insides, nothing is required.
fn shown(at: &str, schema: &Value, values: &[&Value], missing: &mut Vec<String>) {
    let schema = match schema.get("items") {
        Some(items) => items,
        None => schema,
    };
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if at.ends_with("selector") {
        return;
    }
    // Array values count element by element.
    let values: Vec<&Value> = values
        .iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            v => vec![*v],
        })
        .collect();
    for (field, sub) in properties {
        let here: Vec<&Value> = values.iter().filter_map(|v| v.get(field)).collect();
        if here.is_empty() {
            missing.push(format!("{at}.{field}"));
        } else {
            shown(&format!("{at}.{field}"), sub, &here, missing);
        }
    }
}

#[test]
fn examples_failover_is_valid() {
    let group_file = "deploy/examples/failovergroup.yaml";
    let (fg, groups) = valid_group(group_file, &documents(group_file)[0]);
    let file = "deploy/examples/failover.yaml";
    let docs = documents(file);
    assert_eq!(docs.len(), 3, "{file}: a dry run and one request per mode");
    let mut modes = BTreeSet::new();
    let mut dry_runs = 0;
    for (i, doc) in docs.iter().enumerate() {
        assert_eq!(doc["apiVersion"], "failover.rs/v1alpha1", "{file}[{i}]");
        assert_eq!(doc["kind"], "Failover", "{file}[{i}]");
        let fo: Failover = typed(file, doc);
        assert_eq!(fo.metadata.namespace, fg.metadata.namespace, "{file}[{i}]");
        assert_eq!(
            Some(&fo.spec.group),
            fg.metadata.name.as_ref(),
            "{file}[{i}]"
        );
        // `reconcile_failover`: the request the object stands for, in either cluster.
        for group in &groups {
            let request = group
                .request(7, &fo.spec)
                .unwrap_or_else(|e| panic!("{file}[{i}]: {e}"));
            assert_eq!(group.name_of(request.to), fo.spec.target_cluster);
        }
        if fo.spec.dry_run {
            dry_runs += 1;
        } else {
            modes.insert(format!("{:?}", fo.spec.mode));
        }
    }
    assert_eq!(dry_runs, 1, "{file}: one dry run");
    let both: BTreeSet<String> = [FailoverMode::Consistency, FailoverMode::Uptime]
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    assert_eq!(modes, both, "{file}: both modes");
}

#[test]
fn examples_kind_demo_group_is_valid() {
    let file = "deploy/kind/demo.yaml";
    let docs = documents(file);
    let fg_doc = docs
        .iter()
        .find(|d| d["kind"] == "FailoverGroup")
        .expect("a FailoverGroup");
    let (fg, groups) = valid_group(file, fg_doc);
    let ns = fg.metadata.namespace.clone().expect("a namespace");
    // What `Operator::validate` checks on the live cluster, checked on the file that
    // creates it: the named members exist, some are workloads, and their pods stop
    // within the fence's budget.
    let named = |kind: &str, name: &str| {
        docs.iter().find(|d| {
            d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"] == ns
        })
    };
    let m = &fg.spec.members;
    assert!(
        m.selector.is_none(),
        "{file}: kind has no Istio or csi-addons CRDs"
    );
    assert!(!m.deployments.is_empty());
    let limit = failover_engine::executor::stop_grace_limit(&groups[0]).as_secs();
    for name in &m.deployments {
        let d = named("Deployment", name).unwrap_or_else(|| panic!("{file}: {name}"));
        let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace <= limit,
            "{file}: {name}'s grace period {grace} s > {limit} s"
        );
        // Created stopped in both clusters; the active one's operator starts it to the
        // remembered count.
        assert_eq!(d["spec"]["replicas"], 0, "{file}: {name} starts stopped");
        let remembered = d["metadata"]["annotations"][failover_engine::k8s::REPLICAS_ANNOTATION]
            .as_str()
            .and_then(|r| r.parse::<u32>().ok());
        assert!(remembered.is_some_and(|r| r > 0), "{file}: {name}'s count");
    }
    for name in &m.cron_jobs {
        let c = named("CronJob", name).unwrap_or_else(|| panic!("{file}: {name}"));
        assert_eq!(
            c["spec"]["suspend"], true,
            "{file}: {name} starts suspended"
        );
    }
    for list in [
        &m.stateful_sets,
        &m.virtual_services,
        &m.ingresses,
        &m.volume_replications,
    ] {
        assert!(
            list.is_empty(),
            "{file}: only Deployments and CronJobs in kind"
        );
    }
    assert!(m.kustomizations.is_empty() && m.helm_releases.is_empty());
}
