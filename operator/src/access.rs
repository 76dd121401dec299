//! The permissions a group's loop needs, checked before the loop starts.
//!
//! A loop that lacks a permission would fail in the middle of a step (a 403 on the
//! first patch of a failover, say), after other objects were already changed. So
//! before it starts a group's loop the operator asks the API server, with one
//! `SelfSubjectAccessReview` per permission, whether its own identity may do
//! everything the group will need: read, watch and patch every kind of member in
//! every namespace the group names, keep its trace ConfigMap, record Events, write the
//! group's status, run its hooks and (with auto-failover) create `Failover`s. When
//! something is denied the group gets `Ready=False`, reason `MissingPermissions`, whose
//! message names each missing permission as an RBAC rule (verb, resource, API group,
//! namespace) and what it is for; the loop does not start, so nothing is changed and
//! no record is written. The check is repeated every 30 s until it passes.
//!
//! Every authenticated identity may create `SelfSubjectAccessReview`s (the built-in
//! `system:basic-user` role), so the check itself needs no rule.

use std::collections::BTreeSet;
use std::fmt;

use failover_engine::hooks::HookAction;
use failover_engine::k8s::rbac_resource;
use failover_engine::ports::Kind;
use failover_engine::spec::Group;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::config::Config;

/// The API group of the operator's own resources.
const OWN_GROUP: &str = "failover.rs";

/// One permission: an RBAC verb on a resource (or subresource) of an API group in a
/// namespace, and what the operator uses it for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// The namespace.
    pub namespace: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource's plural name.
    pub resource: String,
    /// The subresource (`status`, `exec`), if any.
    pub subresource: Option<String>,
    /// The one object it is needed on, if only one (an RBAC rule may then name it in
    /// `resourceNames`).
    pub name: Option<String>,
    /// The RBAC verb.
    pub verb: String,
    /// What it is for, in words.
    pub why: String,
}

impl fmt::Display for Need {
    /// `patch statefulsets (API group apps) in namespace shop (stop and start ...)`:
    /// the shape of an RBAC rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut resource = self.resource.clone();
        if let Some(sub) = &self.subresource {
            resource = format!("{resource}/{sub}");
        }
        if let Some(name) = &self.name {
            resource = format!("{resource} {name}");
        }
        if !self.group.is_empty() {
            resource = format!("{resource} (API group {})", self.group);
        } else {
            resource = format!("{resource} (core API group)");
        }
        let place = if self.namespace.is_empty() {
            "cluster-wide".to_string()
        } else {
            format!("in namespace {}", self.namespace)
        };
        write!(f, "{} {} {} ({})", self.verb, resource, place, self.why)
    }
}

fn need(
    namespace: &str,
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    verb: &str,
    why: &str,
) -> Need {
    Need {
        namespace: namespace.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.map(Into::into),
        name: None,
        verb: verb.into(),
        why: why.into(),
    }
}

/// What the operator does with a member kind, for the message.
fn purpose(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment | Kind::StatefulSet => "stop and start the group's workloads",
        Kind::CronJob => "suspend and resume the group's CronJobs",
        Kind::VirtualService | Kind::Ingress => "stop and start the group's traffic",
        Kind::VolumeReplication => "demote and promote the group's replicated volumes",
        Kind::Kustomization | Kind::HelmRelease => "suspend and resume Flux for the group",
    }
}

/// What the operator process needs before any group: its leader-election Lease (with
/// `config.leader_election`), reading and watching `FailoverGroup`s and `Failover`s in
/// every namespace it watches (`""`: cluster-wide), and reading the `kube-system`
/// namespace, whose UID is the cluster's identity (unless `--cluster-id` is given).
pub fn process_needs(config: &Config) -> Vec<Need> {
    let mut all = BTreeSet::new();
    if config.leader_election {
        for verb in ["get", "create", "patch"] {
            let mut lease = need(
                &config.lease_namespace,
                "coordination.k8s.io",
                "leases",
                None,
                verb,
                "leader election among the operator's replicas",
            );
            // A create names no object to the authorizer.
            lease.name = (verb != "create").then(|| config.lease_name.clone());
            all.insert(lease);
        }
    }
    let watched: Vec<&str> = if config.namespaces.is_empty() {
        vec![""]
    } else {
        config.namespaces.iter().map(String::as_str).collect()
    };
    for ns in watched {
        for resource in ["failovergroups", "failovers"] {
            for verb in ["list", "watch"] {
                all.insert(need(
                    ns,
                    OWN_GROUP,
                    resource,
                    None,
                    verb,
                    "run the FailoverGroup and Failover controllers",
                ));
            }
        }
    }
    if config.cluster_id.is_none() {
        let mut identity = need(
            "",
            "",
            "namespaces",
            None,
            "get",
            "read the kube-system namespace's UID, the cluster's identity (or set --cluster-id)",
        );
        identity.name = Some("kube-system".into());
        all.insert(identity);
    }
    all.into_iter().collect()
}

/// Every permission `group`'s loop needs in this cluster, sorted, without repeats.
pub fn needs(group: &Group) -> Vec<Need> {
    let ns = group.namespace.as_str();
    let mut all = BTreeSet::new();
    for (kind, selectors) in &group.members {
        let (api_group, plural) = rbac_resource(*kind);
        for selector in selectors {
            for verb in ["get", "list", "watch", "patch"] {
                all.insert(need(
                    &selector.namespace,
                    api_group,
                    plural,
                    None,
                    verb,
                    purpose(*kind),
                ));
            }
        }
    }
    for verb in ["get", "create", "update"] {
        all.insert(need(
            ns,
            "",
            "configmaps",
            None,
            verb,
            "keep the group's trace ConfigMap failover-trace-<group>",
        ));
    }
    for verb in ["create", "patch"] {
        all.insert(need(
            ns,
            "events.k8s.io",
            "events",
            None,
            verb,
            "record the group's Events",
        ));
    }
    all.insert(need(
        ns,
        OWN_GROUP,
        "failovergroups",
        Some("status"),
        "patch",
        "write the group's status",
    ));
    all.insert(need(
        ns,
        OWN_GROUP,
        "failovers",
        Some("status"),
        "patch",
        "write the status of the group's Failover requests",
    ));
    if group.auto.is_some() {
        all.insert(need(
            ns,
            OWN_GROUP,
            "failovers",
            None,
            "create",
            "request automatic failovers (spec.autoFailover)",
        ));
    }
    for hook in &group.hooks {
        match &hook.action {
            HookAction::Job { .. } => {
                for verb in ["get", "create"] {
                    all.insert(need(ns, "batch", "jobs", None, verb, "run the Job hooks"));
                }
            }
            HookAction::Exec { .. } => {
                all.insert(need(
                    ns,
                    "",
                    "pods",
                    None,
                    "list",
                    "find the exec hooks' pods",
                ));
                // An exec is a GET upgraded to a stream: authorized as `get` before
                // Kubernetes 1.35, as `create` too from 1.35.
                for verb in ["get", "create"] {
                    all.insert(need(
                        ns,
                        "",
                        "pods",
                        Some("exec"),
                        verb,
                        "run the exec hooks' commands",
                    ));
                }
            }
            // Sent by the operator to a URL; no Kubernetes permission.
            HookAction::Http(_) => {}
        }
    }
    all.into_iter().collect()
}

/// Asks the API server which of `needs` the client's identity lacks (an empty list:
/// none). An error when the API server could not answer.
pub async fn missing(client: &Client, needs: &[Need]) -> Result<Vec<Need>, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let reviews = needs.iter().map(|n| {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: (!n.namespace.is_empty()).then(|| n.namespace.clone()),
                    group: Some(n.group.clone()),
                    resource: Some(n.resource.clone()),
                    subresource: n.subresource.clone(),
                    name: n.name.clone(),
                    verb: Some(n.verb.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    let mut lacking = Vec::new();
    for (n, answer) in needs.iter().zip(answers) {
        let allowed = answer?.status.is_some_and(|s| s.allowed);
        if !allowed {
            lacking.push(n.clone());
        }
    }
    Ok(lacking)
}

/// Whether the API server serves the operator's own resources (`FailoverGroup`,
/// `Failover` in `failover.rs/v1alpha1`); if not, what to do about it.
pub async fn crds_served(client: &Client) -> Result<(), String> {
    let version = format!("{OWN_GROUP}/v1alpha1");
    match client.list_api_group_resources(&version).await {
        Ok(list) => {
            let missing: Vec<&str> = ["failovergroups", "failovers"]
                .into_iter()
                .filter(|r| !list.resources.iter().any(|x| x.name == *r))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the API server does not serve {} in {version}: install the operator's \
                     CRDs (`kubectl apply --server-side -f deploy/crds/crds.yaml`, or the \
                     chart's crds/); the controllers start once they are served (checked \
                     every 30 s)",
                    missing.join(", ")
                ))
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Err(format!(
            "the API server does not serve {version}: install the operator's CRDs \
             (`kubectl apply --server-side -f deploy/crds/crds.yaml`, or the chart's crds/); \
             the controllers start once they are served (checked every 30 s)"
        )),
        Err(e) => Err(format!(
            "cannot read the API server's discovery of {version}: {e}"
        )),
    }
}

/// What to say when `lacking` (not empty) is missing; `waits` is what waits for it
/// ("the group's loop", "the controllers").
pub fn message(lacking: &[Need], waits: &str) -> String {
    let list: Vec<String> = lacking.iter().map(ToString::to_string).collect();
    format!(
        "the operator may not: {}. Grant these to its ServiceAccount (the Helm chart's \
         ClusterRole and Role have every rule the operator uses); {waits} starts once they \
         are granted (checked every 30 s), and until then it changes nothing",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::spec::FailoverGroupSpec;
    use serde_json::json;

    fn group(spec: serde_json::Value) -> Group {
        let spec: FailoverGroupSpec = serde_json::from_value(spec).expect("spec");
        Group::parse("shop", "g", &spec, "east").expect("valid group")
    }

    fn rules(needs: &[Need]) -> Vec<String> {
        needs
            .iter()
            .map(|n| {
                let sub = n
                    .subresource
                    .as_deref()
                    .map_or(String::new(), |s| format!("/{s}"));
                format!(
                    "{} {}{} {} {}",
                    n.namespace, n.resource, sub, n.group, n.verb
                )
            })
            .collect()
    }

    #[test]
    fn a_plain_group_needs_its_members_trace_events_and_status() {
        let g = group(json!({
            "clusters": ["east", "west"],
            "members": {"statefulSets": ["db"], "kustomizations": [{"name": "shop", "namespace": "flux-system"}]},
        }));
        let mut got = rules(&needs(&g));
        got.sort();
        let want = [
            "flux-system kustomizations kustomize.toolkit.fluxcd.io get",
            "flux-system kustomizations kustomize.toolkit.fluxcd.io list",
            "flux-system kustomizations kustomize.toolkit.fluxcd.io patch",
            "flux-system kustomizations kustomize.toolkit.fluxcd.io watch",
            "shop configmaps  create",
            "shop configmaps  get",
            "shop configmaps  update",
            "shop events events.k8s.io create",
            "shop events events.k8s.io patch",
            "shop failovergroups/status failover.rs patch",
            "shop failovers/status failover.rs patch",
            "shop statefulsets apps get",
            "shop statefulsets apps list",
            "shop statefulsets apps patch",
            "shop statefulsets apps watch",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn hooks_and_auto_failover_add_their_permissions() {
        let g = group(json!({
            "clusters": ["east", "west"],
            "members": {"deployments": ["api"]},
            "autoFailover": {"enabled": true},
            "hooks": [
                {"name": "quiesce", "before": "demote-volumes", "side": "source",
                 "job": {"template": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "q", "image": "x:1"}]}}}}}},
                {"name": "verify", "before": "promote-volumes", "side": "target",
                 "exec": {"selector": {"matchLabels": {"app": "db"}}, "command": ["true"]}},
                {"name": "notify", "after": "resume-flux", "side": "target", "onFailure": "continue",
                 "http": {"url": "https://example.com/x", "expectedStatus": 200}},
            ],
        }));
        let got = rules(&needs(&g));
        for rule in [
            "shop failovers failover.rs create",
            "shop jobs batch create",
            "shop jobs batch get",
            "shop pods  list",
            "shop pods/exec  create",
            "shop pods/exec  get",
        ] {
            assert!(
                got.contains(&rule.to_string()),
                "{rule} missing from {got:#?}"
            );
        }
    }

    #[test]
    fn the_process_needs_its_lease_its_resources_and_the_identity() {
        use clap::Parser;
        let config = Config::parse_from([
            "failover-operator",
            "--cluster-name=east",
            "--namespace=shop,web",
        ]);
        let got: Vec<String> = process_needs(&config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got.len(), 3 + 2 * 2 * 2 + 1, "{got:#?}");
        assert!(got.contains(&"create leases (API group coordination.k8s.io) in namespace default (leader election among the operator's replicas)".to_string()), "{got:#?}");
        assert!(got.contains(&"patch leases failover-operator (API group coordination.k8s.io) in namespace default (leader election among the operator's replicas)".to_string()), "{got:#?}");
        assert!(got.contains(&"watch failovers (API group failover.rs) in namespace web (run the FailoverGroup and Failover controllers)".to_string()), "{got:#?}");
        assert!(
            got.iter()
                .any(|g| g.starts_with("get namespaces kube-system (core API group) cluster-wide")),
            "{got:#?}"
        );
        let config = Config::parse_from([
            "failover-operator",
            "--cluster-name=east",
            "--cluster-id=abc",
            "--leader-election=false",
        ]);
        let got: Vec<String> = process_needs(&config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got.iter().all(|g| g.contains("cluster-wide")), "{got:#?}");
    }

    /// Answers one request with `status` and `body`; the request's path.
    async fn answer(
        handle: &mut tower_test::mock::Handle<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >,
        status: u16,
        body: serde_json::Value,
    ) -> String {
        let (request, send) = handle.next_request().await.expect("a request");
        let path = request.uri().path().to_string();
        send.send_response(
            http::Response::builder()
                .status(status)
                .body(kube::client::Body::from(
                    serde_json::to_vec(&body).expect("json"),
                ))
                .expect("response"),
        );
        path
    }

    #[tokio::test]
    async fn missing_crds_are_named_with_the_command_that_installs_them() {
        let (service, mut handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let path = answer(
                &mut handle,
                404,
                json!({"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            )
            .await;
            let one = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "failover.rs/v1alpha1",
                "resources": [{"name": "failovergroups", "singularName": "", "namespaced": true,
                               "kind": "FailoverGroup", "verbs": ["list"]}]});
            answer(&mut handle, 200, one).await;
            path
        });
        let none = crds_served(&client).await.expect_err("no CRDs");
        assert!(
            none.contains("does not serve failover.rs/v1alpha1"),
            "{none}"
        );
        assert!(
            none.contains("kubectl apply --server-side -f deploy/crds/crds.yaml"),
            "{none}"
        );
        let half = crds_served(&client).await.expect_err("one CRD");
        assert!(
            half.contains("does not serve failovers in failover.rs/v1alpha1"),
            "{half}"
        );
        assert_eq!(server.await.expect("server"), "/apis/failover.rs/v1alpha1");
    }

    #[test]
    fn the_message_names_each_missing_rule_and_its_purpose() {
        let n = need(
            "shop",
            "apps",
            "statefulsets",
            None,
            "patch",
            "stop and start the group's workloads",
        );
        let exec = need(
            "shop",
            "",
            "pods",
            Some("exec"),
            "create",
            "run the exec hooks' commands",
        );
        let m = message(&[n, exec], "the group's loop");
        assert!(m.contains(
            "patch statefulsets (API group apps) in namespace shop (stop and start the group's workloads)"
        ), "{m}");
        assert!(
            m.contains("create pods/exec (core API group) in namespace shop"),
            "{m}"
        );
        assert!(m.contains("changes nothing"), "{m}");
    }
}
