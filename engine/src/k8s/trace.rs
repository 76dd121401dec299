//! What a cluster keeps of its group's record ([`Trace`]): a ConfigMap
//! `failover-trace-<group>` in the group's namespace, data `token`, `ended`, `active`
//! (`A`/`B`) and `missing` (`true` once the operator found the record missing), labelled `app.kubernetes.io/managed-by: failover-operator`. It only moves
//! forward: a write replaces it (with the resourceVersion read) only by a newer trace,
//! so two processes of the operator never move it back.
//!
//! The operator needs `get`, `create` and `update` on ConfigMaps in the group's
//! namespace.

use std::collections::BTreeMap;

use failover_model::{Cluster, Trace};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::ports::ClusterError;

/// The ConfigMap's name prefix (the group's name follows).
pub const PREFIX: &str = "failover-trace-";

/// The namespace and ConfigMap name for group key `namespace/name`.
fn place(group: &str) -> Result<(&str, String), ClusterError> {
    let (namespace, name) = group.split_once('/').ok_or_else(|| {
        ClusterError::Unavailable(format!("group key {group:?} is not namespace/name"))
    })?;
    Ok((namespace, format!("{PREFIX}{name}")))
}

fn unavailable(group: &str, e: kube::Error) -> ClusterError {
    ClusterError::Unavailable(format!("the record's trace of group {group}: {e}"))
}

/// The trace in `map`, if it is one.
fn parse(map: &ConfigMap) -> Result<Trace, String> {
    let data = map.data.clone().unwrap_or_default();
    let field = |k: &str| {
        data.get(k)
            .ok_or_else(|| format!("data.{k} is missing"))
            .cloned()
    };
    let number = |k: &str| -> Result<u64, String> {
        field(k)?
            .parse()
            .map_err(|e| format!("data.{k} is not a number: {e}"))
    };
    let active = match field("active")?.as_str() {
        "A" => Cluster::A,
        "B" => Cluster::B,
        other => return Err(format!("data.active = {other:?}, not A or B")),
    };
    Ok(Trace {
        token: number("token")?,
        ended: u32::try_from(number("ended")?).map_err(|e| format!("data.ended: {e}"))?,
        active,
        missing: data.get("missing").is_some_and(|m| m == "true"),
    })
}

/// The trace the cluster keeps for `group`, if any.
pub async fn recall(client: &Client, group: &str) -> Result<Option<Trace>, ClusterError> {
    let (namespace, name) = place(group)?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(map) = api
        .get_opt(&name)
        .await
        .map_err(|e| unavailable(group, e))?
    else {
        return Ok(None);
    };
    // A trace that cannot be read still says the group had a record.
    parse(&map).map(Some).map_err(|why| {
        ClusterError::Unavailable(format!(
            "ConfigMap {namespace}/{name} is malformed ({why}); fix or delete it only if \
             group {group} never had a record"
        ))
    })
}

/// Keep `trace` for `group` unless the cluster keeps a newer one.
pub async fn remember(client: &Client, group: &str, trace: Trace) -> Result<(), ClusterError> {
    let (namespace, name) = place(group)?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| unavailable(group, e))?;
    let kept = existing.as_ref().and_then(|m| parse(m).ok());
    if kept.is_some_and(|k| Trace::newest(Some(k), trace) == k) {
        return Ok(());
    }
    let data = BTreeMap::from([
        ("token".to_string(), trace.token.to_string()),
        ("ended".to_string(), trace.ended.to_string()),
        ("active".to_string(), trace.active.to_string()),
        ("missing".to_string(), trace.missing.to_string()),
    ]);
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "failover-operator".to_string(),
            )])),
            resource_version: existing
                .as_ref()
                .and_then(|m| m.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let params = PostParams::default();
    let result = match existing {
        // The resourceVersion read makes a concurrent newer trace win: a conflict.
        Some(_) => api.replace(&name, &params, &map).await.map(|_| ()),
        None => api.create(&params, &map).await.map(|_| ()),
    };
    result.map_err(|e| unavailable(group, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_round_trips_through_its_config_map() {
        let t = Trace {
            token: 12,
            ended: 3,
            active: Cluster::B,
            missing: false,
        };
        let map = ConfigMap {
            data: Some(BTreeMap::from([
                ("token".to_string(), "12".to_string()),
                ("ended".to_string(), "3".to_string()),
                ("active".to_string(), "B".to_string()),
            ])),
            ..ConfigMap::default()
        };
        assert_eq!(parse(&map), Ok(t));
        let bad = ConfigMap::default();
        assert!(parse(&bad).is_err());
        assert_eq!(
            place("shop/orders").map(|(ns, n)| (ns.to_string(), n)),
            Ok(("shop".to_string(), "failover-trace-orders".to_string()))
        );
    }
}
