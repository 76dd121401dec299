//! The Kubernetes adapter: [`KubeCluster`] implements [`ClusterPort`] with kube-rs.
//!
//! Every kind is handled as a [`DynamicObject`] (one code path for built-in kinds and
//! CRDs, and no dependency on which versions k8s-openapi still ships). All writes are
//! JSON merge patches (`application/merge-patch+json`, which replaces arrays wholesale
//! and removes a key given `null`) sent with the field manager [`FIELD_MANAGER`].
//!
//! # `set`: read, then change only what differs
//!
//! [`ClusterPort::set`] reads the object, works out which fields differ from the desired
//! state, and writes only those. An object already in the desired state causes no write
//! at all and an empty list of [`FieldChange`]s, so `set` is an idempotent "ensure".
//! Patches that save a value read from the object (the replica count, the original
//! routes or ingress class) carry the `metadata.resourceVersion` that was read, so a
//! concurrent change makes the server answer 409 ([`ClusterError::Conflict`]) instead
//! of saving a stale original.
//!
//! | kind | API | stop | start | state |
//! |---|---|---|---|---|
//! | Deployment, StatefulSet | `apps/v1` | see below | see below | [`MemberState::Workload`] |
//! | CronJob | `batch/v1`, else `batch/v1beta1` | `spec.suspend: true` | `spec.suspend: false` | `spec.suspend` |
//! | VirtualService | `networking.istio.io/v1beta1` | routes answered by a 503 | routes restored | annotation present |
//! | Ingress | `networking.k8s.io/v1` | class `failover-disabled` | class restored | annotation present |
//! | VolumeReplication | `replication.storage.openshift.io/v1alpha1` | `spec.replicationState: secondary` | `primary` | spec and `status.state` |
//! | Kustomization | `kustomize.toolkit.fluxcd.io/v1` | `spec.suspend: true` | `false` + reconcile request | `spec.suspend` |
//! | HelmRelease | `helm.toolkit.fluxcd.io/v2` | `spec.suspend: true` | `false` + reconcile request | `spec.suspend` |
//!
//! ## Deployment and StatefulSet
//!
//! - **Stop**, if `spec.replicas > 0`: one merge patch of the object that sets the
//!   annotation [`REPLICAS_ANNOTATION`] (`failover.rs/replicas`) to the current count,
//!   with the `metadata.resourceVersion` that count was read at, and
//!   `spec.replicas: 0`; only `{"spec":{"replicas":0}}` if the annotation already holds
//!   that count. One write, so a stop is never half done. A workload already at zero is
//!   left alone.
//! - **Start**, if `spec.replicas == 0`: a merge patch `{"spec":{"replicas":N}}` to the
//!   remembered count. Without a usable annotation it scales to 1 and logs a warning.
//!   The annotation is left in place. A workload already above zero is left alone (it
//!   is never scaled *down* to a stale remembered count).
//! - **State**: `replicas` = `spec.replicas` (1 if unset), `remembered` = the annotation
//!   (when it parses as a positive count), `pods` = `status.replicas` (0 if unset), and
//!   `ready` judged like `kubectl rollout status` (missing status fields count as 0):
//!   first `status.observedGeneration >= metadata.generation`; then for a Deployment
//!   `updatedReplicas >= spec.replicas`, `replicas == updatedReplicas` (no old pods
//!   left) and `availableReplicas >= updatedReplicas`; for a StatefulSet
//!   `readyReplicas >= spec.replicas` and, with the `RollingUpdate` strategy (the
//!   default), `updatedReplicas >= spec.replicas - partition` and, without a partition,
//!   `currentRevision == updateRevision` when both are present.
//!
//! ## CronJob
//!
//! `spec.suspend` set by merge patch (an absent field counts as `false`). Kubernetes
//! before 1.21 serves CronJobs only as `batch/v1beta1`: on first use each [`KubeCluster`]
//! reads the resource list of `batch/v1` (`GET /apis/batch/v1`) and uses `batch/v1` if it
//! lists `cronjobs`, `batch/v1beta1` otherwise (also when the group version answers 404).
//! The answer is cached for the life of the [`KubeCluster`]; a failed discovery is not
//! cached and is reported as [`ClusterError::Unavailable`].
//!
//! ## VirtualService
//!
//! `networking.istio.io/v1beta1`: Istio also serves `v1` since 1.22, with the same
//! schema, but `v1beta1` is served by every Istio release since 1.5 (and still by the
//! current ones), so it works on old and new meshes alike.
//! - **Stop**, unless disabled: one merge patch that saves the original `spec.http` (as
//!   JSON, `null` if absent) in the annotation [`ORIGINAL_HTTP_ANNOTATION`]
//!   (`failover.rs/original-http`) and replaces `spec.http` with the single route
//!   `[{"name":"failover-disabled","directResponse":{"status":503}}]`. A route weight of
//!   zero does not stop traffic; an Istio `directResponse` (Istio 1.15+) answers every
//!   request with 503 instead. `spec.tcp` and `spec.tls` routes are not touched.
//! - **Start**, if disabled: one merge patch that restores `spec.http` exactly from the
//!   annotation and removes the annotation (`null`).
//! - **State**: disabled = the annotation is present.
//!
//! ## Ingress
//!
//! - **Stop**, unless disabled: one merge patch that saves the original
//!   `spec.ingressClassName` and the legacy `kubernetes.io/ingress.class` annotation (each
//!   only if present) as a JSON object with those two keys in the annotation
//!   [`ORIGINAL_CLASS_ANNOTATION`] (`failover.rs/original-class`), sets
//!   `spec.ingressClassName` to [`DISABLED_INGRESS_CLASS`] (a class no controller serves)
//!   and removes the legacy annotation.
//! - **Start**, if disabled: one merge patch that restores both (removing
//!   `spec.ingressClassName` if there was none) and removes the saved annotation.
//! - **State**: disabled = the annotation is present.
//!
//! ## VolumeReplication
//!
//! Stop = `spec.replicationState: secondary`, start = `primary`, by merge patch. State:
//! `spec` from `spec.replicationState` (`resync` counts as secondary), `status` from
//! `status.state` (`Primary`/`Secondary`, case-insensitive; anything else, or a status
//! whose `observedGeneration` is behind `metadata.generation`, is `None`). A
//! `Degraded=True` condition is normal on a secondary and is not an error.
//!
//! ## Kustomization and HelmRelease
//!
//! Stop = `spec.suspend: true`. Start (only if suspended) = `spec.suspend: false` and the
//! annotation `reconcile.fluxcd.io/requestedAt` set to the current time (RFC 3339, from
//! the clock given to [`KubeCluster::with_clock`]) in the same merge patch, so Flux
//! reconciles at once.
//!
//! # `members`
//!
//! A list in the selector's namespace with `labelSelector` = the selector's labels (no
//! list if they are empty), plus a get of each explicitly named object the list did not
//! return (a missing one is [`ClusterError::NotFound`]); deduplicated and sorted by name.
//! A list answered by 404 means the API server does not serve the kind (a CRD that is
//! not installed) and is [`ClusterError::Invalid`].
//!
//! # Watch caches
//!
//! An adapter made [`KubeCluster::with_caches`] (the operator's) reads `members` and
//! the objects `set` plans from, from watch caches instead: one reflector per kind and
//! namespace, selectors matched in memory. A write counts once the cache has seen it
//! (its resourceVersion at or after the write's); until then the object is read from
//! the API server. The rule and when a cache is not used: [`cache`].
//!
//! # `changed`
//!
//! Every `members` call registers what it selected. `changed` starts, for every
//! registration not yet watched, a background kube-runtime metadata watcher of that kind
//! in that namespace (with the label selector when no names were given, else the whole
//! namespace), then waits for a watch event or the timeout. The first listing of a new
//! watcher does not wake anyone; a re-listing after a watch restart does, since changes
//! may have been missed. Every event wakes all current waiters and leaves one stored
//! wake-up for the next caller, so no event between two calls is lost (wake-ups may be
//! spurious). Watchers stop when the last clone of the [`KubeCluster`] is dropped.
//!
//! # Errors
//!
//! HTTP 404 is [`ClusterError::NotFound`], 409 [`ClusterError::Conflict`], 400 and 422
//! (and other 4xx such as 403 Forbidden) [`ClusterError::Invalid`] carrying the server's
//! message; 5xx, 401, 408, 429, timeouts and connection failures are
//! [`ClusterError::Unavailable`], and a write that failed this way **may have applied**:
//! callers re-read (every `set` is an idempotent ensure).

pub mod cache;
mod cronjob;
mod flux;
pub mod hooks;
pub mod limit;
mod network;
pub mod trace;
mod volume;
mod watch;
mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::reflector::{self, Store};
use serde_json::Value;
use tokio::sync::OnceCell;

use cache::CATCH_UP;

use crate::ports::{
    Changes, ClusterError, ClusterPort, Desired, FieldChange, Kind, Member, MemberState, ObjectRef,
    Selector,
};

/// The field manager every patch is sent with.
pub const FIELD_MANAGER: &str = "failover-operator";
/// Annotation on a Deployment or StatefulSet: the replica count before scale-down.
pub const REPLICAS_ANNOTATION: &str = "failover.rs/replicas";
/// Annotation on a disabled VirtualService: its original `spec.http`, as JSON.
pub const ORIGINAL_HTTP_ANNOTATION: &str = "failover.rs/original-http";
/// Annotation on a disabled Ingress: its original class, as JSON.
pub const ORIGINAL_CLASS_ANNOTATION: &str = "failover.rs/original-class";
/// The legacy ingress class annotation, saved and removed with the class.
pub const LEGACY_INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The ingress class a disabled Ingress is moved to (no controller serves it).
pub const DISABLED_INGRESS_CLASS: &str = "failover-disabled";
/// The name of the single 503 route of a disabled VirtualService.
pub const DISABLED_ROUTE_NAME: &str = "failover-disabled";
/// The Flux annotation that requests a reconcile.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// The wall clock read for Flux's `requestedAt`, from the engine's one clock
/// ([`crate::ports::Clock::now`]).
type Now = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// One cluster's API through kube-rs: the real [`ClusterPort`].
///
/// Cheap to clone; clones share the CronJob API version cache and the watchers.
#[derive(Clone)]
pub struct KubeCluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    now: Now,
    cronjob: OnceCell<ApiResource>,
    watches: watch::Watches,
    /// Watch caches the reads come from ([`KubeCluster::with_caches`]); none: every read
    /// goes to the API server.
    caches: Option<cache::Caches>,
    /// Objects of one step written at once ([`KubeCluster::with_write_parallelism`]).
    parallelism: usize,
}

impl fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeCluster")
            .field("default_namespace", &self.inner.client.default_namespace())
            .field("cronjob", &self.inner.cronjob.get().map(|r| &r.api_version))
            .finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// The adapter over `client`, with the system clock.
    pub fn new(client: Client) -> KubeCluster {
        KubeCluster::with_clock(client, crate::ports::SystemClock)
    }

    /// The adapter over `client`, reading the wall clock of `clock` (tests pin it).
    pub fn with_clock(client: Client, clock: impl crate::ports::Clock + 'static) -> KubeCluster {
        let now: Now =
            Arc::new(move || std::time::UNIX_EPOCH + std::time::Duration::from_millis(clock.now()));
        KubeCluster {
            inner: Arc::new(Inner {
                client,
                now,
                cronjob: OnceCell::new(),
                watches: watch::Watches::default(),
                caches: None,
                parallelism: crate::ports::DEFAULT_PARALLELISM,
            }),
        }
    }

    /// This adapter reading from watch caches: one reflector per kind and namespace it
    /// is asked about, shared by every clone (so by every group of an operator), with
    /// selectors matched in memory. Reads go to the API server only while a cache is
    /// not in sync, and for an object whose cached copy is older than this process's
    /// last write of it (the rule in [`cache`]). For long-running
    /// processes (the operator); a one-shot command reads directly.
    ///
    /// # Panics
    ///
    /// If called on a clone (call it right after [`KubeCluster::new`]).
    pub fn with_caches(self) -> KubeCluster {
        self.caches_with_lag(Duration::ZERO)
    }

    /// This adapter writing `n` objects of one step at once (unless the group asks for
    /// fewer): the operator passes its client's [`limit::Limits::parallelism`], as many as
    /// the rate limit lets through without waiting.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    pub fn with_write_parallelism(mut self, n: usize) -> KubeCluster {
        Arc::get_mut(&mut self.inner)
            .expect("with_write_parallelism before the adapter is cloned")
            .parallelism = n.max(1);
        self
    }

    /// [`KubeCluster::with_caches`] with every watch event applied `lag` late: a slow
    /// watch, for tests of the rule that a write counts once the cache has seen it.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    pub fn caches_with_lag(mut self, lag: Duration) -> KubeCluster {
        Arc::get_mut(&mut self.inner)
            .expect("with_caches before the adapter is cloned")
            .caches = Some(cache::Caches::new(lag));
        self
    }

    /// The API resource this adapter uses for `kind` (the table above; the CronJob
    /// version is discovered once per [`KubeCluster`]).
    pub async fn resource(&self, kind: Kind) -> Result<ApiResource, ClusterError> {
        let version = match kind {
            Kind::Deployment | Kind::StatefulSet | Kind::Ingress | Kind::Kustomization => "v1",
            Kind::CronJob => return self.cronjob_resource().await,
            Kind::VirtualService => "v1beta1",
            Kind::VolumeReplication => "v1alpha1",
            Kind::HelmRelease => "v2",
        };
        let (group, plural) = rbac_resource(kind);
        Ok(api_resource(group, version, kind.name(), plural))
    }

    async fn cronjob_resource(&self) -> Result<ApiResource, ClusterError> {
        self.inner
            .cronjob
            .get_or_try_init(|| cronjob::discover(&self.inner.client))
            .await
            .cloned()
    }

    async fn api(&self, kind: Kind, namespace: &str) -> Result<Api<DynamicObject>, ClusterError> {
        let resource = self.resource(kind).await?;
        Ok(Api::namespaced_with(
            self.inner.client.clone(),
            namespace,
            &resource,
        ))
    }

    async fn list(
        &self,
        api: &Api<DynamicObject>,
        kind: Kind,
        selector: &Selector,
    ) -> Result<Vec<DynamicObject>, ClusterError> {
        let params = ListParams::default().labels(&selector.labels.to_string());
        match api.list(&params).await {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(status)) if status_code(&status) == 404 => {
                Err(ClusterError::Invalid(
                    ObjectRef {
                        kind,
                        namespace: selector.namespace.clone(),
                        name: "*".into(),
                    },
                    format!(
                        "the API server does not serve {} (is its CRD installed?): {}",
                        api.resource_url(),
                        status.message
                    ),
                ))
            }
            Err(err) => Err(map_error(
                err,
                &ObjectRef {
                    kind,
                    namespace: selector.namespace.clone(),
                    name: "*".into(),
                },
            )),
        }
    }

    /// The in-sync cache of `kind` in `namespace`, if reads come from caches (starting
    /// it for the next call if it does not run).
    async fn cache_of(
        &self,
        kind: Kind,
        namespace: &str,
    ) -> Result<Option<(&cache::Caches, Store<DynamicObject>, ApiResource)>, ClusterError> {
        let Some(caches) = &self.inner.caches else {
            return Ok(None);
        };
        // Urgent work (the self-fence) reads the API server: a cache may not show yet
        // what others changed (Flux starting what the fence stopped), and the fence
        // must not take it for done.
        if crate::ports::is_urgent() {
            return Ok(None);
        }
        let resource = self.resource(kind).await?;
        Ok(caches
            .in_sync(&self.inner.client, kind, namespace, &resource)
            .await
            .map(|store| (caches, store, resource)))
    }

    /// The cached copy of `object`, if the cache is in sync and the copy at or after
    /// this process's last write of it.
    async fn cached(&self, object: &ObjectRef) -> Result<Option<Arc<DynamicObject>>, ClusterError> {
        let Some((caches, store, resource)) = self.cache_of(object.kind, &object.namespace).await?
        else {
            return Ok(None);
        };
        let key = reflector::ObjectRef::new_with(&object.name, resource).within(&object.namespace);
        Ok(store
            .get(&key)
            .filter(|o| caches.current(object, o.metadata.resource_version.as_deref())))
    }

    /// `object` from the API server.
    async fn get(
        &self,
        api: &Api<DynamicObject>,
        object: &ObjectRef,
    ) -> Result<DynamicObject, ClusterError> {
        let found = api
            .get(&object.name)
            .await
            .map_err(|e| map_error(e, object))?;
        if let Some(caches) = &self.inner.caches {
            caches.fresh(object);
        }
        Ok(found)
    }

    /// Read `object` (from the cache when it may stand for it) and plan the writes that
    /// bring it to `desired` ([`edits`]).
    async fn edits_of(
        &self,
        object: &ObjectRef,
        desired: Desired,
    ) -> Result<(Api<DynamicObject>, Edits), ClusterError> {
        let api = self.api(object.kind, &object.namespace).await?;
        let current = match self.cached(object).await? {
            Some(cached) => cached,
            None => Arc::new(self.get(&api, object).await?),
        };
        let edits = edits(object.kind, &current, desired, (self.inner.now)())
            .map_err(|message| ClusterError::Invalid(object.clone(), message))?;
        Ok((api, edits))
    }

    async fn apply(
        &self,
        api: &Api<DynamicObject>,
        object: &ObjectRef,
        writes: Vec<Edit>,
    ) -> Result<(), ClusterError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        for write in writes {
            let Edit::Patch(body) = write;
            let written = api
                .patch(&object.name, &params, &Patch::Merge(&body))
                .await
                .map(|o| o.metadata.resource_version);
            let caches = self.inner.caches.as_ref();
            match written.map_err(|e| map_error(e, object)) {
                Ok(version) => {
                    if let Some(c) = caches {
                        c.wrote(object, version);
                    }
                }
                Err(err) => {
                    // A 409 on a patch planned from a cached copy: read it afresh. Any
                    // other failure may have applied: the cached copy cannot tell.
                    if let Some(c) = caches {
                        c.stale(object);
                    }
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watches.stop_all();
        if let Some(caches) = &self.caches {
            caches.stop_all();
        }
    }
}

/// Objects by name, as read (from a cache or the API server).
type Found = BTreeMap<String, Arc<DynamicObject>>;

/// `found` as members of `kind` in `namespace`.
fn to_members(kind: Kind, namespace: &str, found: Found) -> Result<Vec<Member>, ClusterError> {
    found
        .into_iter()
        .map(|(name, object)| {
            let reference = ObjectRef {
                kind,
                namespace: namespace.to_string(),
                name,
            };
            let stop_grace_seconds = matches!(kind, Kind::Deployment | Kind::StatefulSet)
                .then(|| workload::stop_grace_seconds(&object));
            match state(kind, &object) {
                Ok(state) => Ok(Member {
                    object: reference,
                    state,
                    stop_grace_seconds,
                }),
                Err(message) => Err(ClusterError::Invalid(reference, message)),
            }
        })
        .collect()
}

impl KubeCluster {
    /// [`ClusterPort::members`] from an in-sync cache: the selector matched in memory,
    /// every object this process wrote waited for (or read afresh) until the copy is
    /// at or after the write.
    async fn members_cached(
        &self,
        caches: &cache::Caches,
        store: &Store<DynamicObject>,
        resource: &ApiResource,
        kind: Kind,
        selector: &Selector,
    ) -> Result<Vec<Member>, ClusterError> {
        let ns = &selector.namespace;
        let reference = |name: &str| ObjectRef {
            kind,
            namespace: ns.clone(),
            name: name.to_string(),
        };
        let select = || -> Found {
            let mut found = Found::new();
            if !selector.labels.is_empty() {
                static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
                for object in store.state() {
                    let labels = object.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
                    if selector.labels.matches(labels)
                        && let Some(name) = object.metadata.name.clone()
                    {
                        found.insert(name, object);
                    }
                }
            }
            for name in &selector.names {
                let key = reflector::ObjectRef::new_with(name, resource.clone()).within(ns);
                if let Some(object) = store.get(&key) {
                    found.insert(name.clone(), object);
                }
            }
            found
        };
        let behind = |found: &Found| -> Vec<String> {
            found
                .iter()
                .filter(|(name, o)| {
                    !caches.current(&reference(name), o.metadata.resource_version.as_deref())
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        let started = tokio::time::Instant::now();
        let mut events = caches.events();
        events.mark_unchanged();
        let mut found = select();
        // Waiting helps the objects the watch has not brought up to this process's
        // writes yet, not those found stale.
        let waiting = |found: &Found| {
            behind(found)
                .iter()
                .any(|name| !caches.is_stale(&reference(name)))
        };
        while waiting(&found) && started.elapsed() < CATCH_UP {
            let left = CATCH_UP.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left, events.changed()).await;
            events.mark_unchanged();
            found = select();
        }
        // Still behind, or named and not (yet) cached: from the API server.
        let api = self.api(kind, ns).await?;
        let missing = selector
            .names
            .iter()
            .filter(|n| !found.contains_key(*n))
            .cloned();
        let direct: Vec<String> = behind(&found).into_iter().chain(missing).collect();
        for name in direct {
            let object = self.get(&api, &reference(&name)).await?;
            found.insert(name, Arc::new(object));
        }
        to_members(kind, ns, found)
    }
}

impl ClusterPort for KubeCluster {
    fn write_parallelism(&self) -> usize {
        self.inner.parallelism
    }

    async fn members(&self, kind: Kind, selector: &Selector) -> Result<Vec<Member>, ClusterError> {
        if selector.labels.is_empty() && selector.names.is_empty() {
            return Ok(Vec::new());
        }
        if let Some((caches, store, resource)) = self.cache_of(kind, &selector.namespace).await? {
            return self
                .members_cached(caches, &store, &resource, kind, selector)
                .await;
        }
        if self.inner.caches.is_none() {
            self.inner
                .watches
                .want(watch::WatchKey::new(kind, selector));
        }
        let api = self.api(kind, &selector.namespace).await?;
        let mut found = Found::new();
        if !selector.labels.is_empty() {
            for object in self.list(&api, kind, selector).await? {
                if let Some(name) = object.metadata.name.clone() {
                    found.insert(name, Arc::new(object));
                }
            }
        }
        for name in &selector.names {
            if found.contains_key(name) {
                continue;
            }
            let reference = ObjectRef {
                kind,
                namespace: selector.namespace.clone(),
                name: name.clone(),
            };
            let object = self.get(&api, &reference).await?;
            found.insert(name.clone(), Arc::new(object));
        }
        to_members(kind, &selector.namespace, found)
    }

    async fn set(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let (api, edits) = self.edits_of(object, desired).await?;
        let changes = edits.changes_of(object);
        self.apply(&api, object, edits.writes).await?;
        Ok(changes)
    }

    async fn preview(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let (_, edits) = self.edits_of(object, desired).await?;
        Ok(edits.changes_of(object))
    }

    async fn changed(&self, timeout: Duration) {
        if let Some(caches) = &self.inner.caches {
            let _ = tokio::time::timeout(timeout, caches.notified()).await;
            return;
        }
        let pending = self.inner.watches.pending();
        for key in pending {
            match self.resource(key.kind).await {
                Ok(resource) => self.inner.watches.start(&self.inner.client, key, resource),
                Err(err) => tracing::debug!(kind = %key.kind, %err, "cannot watch yet"),
            }
        }
        let notified = self.inner.watches.notified();
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    async fn identity(&self) -> Result<String, ClusterError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.inner.client.clone());
        let ns = api.get("kube-system").await.map_err(|e| {
            ClusterError::Unavailable(format!("cannot read namespace kube-system: {e}"))
        })?;
        ns.metadata.uid.ok_or_else(|| {
            ClusterError::Unavailable("namespace kube-system has no uid".to_string())
        })
    }

    async fn recall(&self, group: &str) -> Result<Option<failover_model::Trace>, ClusterError> {
        trace::recall(&self.inner.client, group).await
    }

    async fn remember(&self, group: &str, t: failover_model::Trace) -> Result<(), ClusterError> {
        trace::remember(&self.inner.client, group, t).await
    }

    async fn ensure_job(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        template: &serde_json::Value,
        deadline_seconds: i64,
    ) -> Result<crate::hooks::JobState, ClusterError> {
        let client = &self.inner.client;
        hooks::ensure_job(client, namespace, name, labels, template, deadline_seconds).await
    }

    async fn exec(
        &self,
        namespace: &str,
        selector: &crate::ports::LabelQuery,
        container: Option<&str>,
        command: &[String],
    ) -> Result<Vec<crate::hooks::ExecResult>, ClusterError> {
        hooks::exec(&self.inner.client, namespace, selector, container, command).await
    }

    async fn http(&self, request: &crate::hooks::HttpRequest) -> Result<u16, ClusterError> {
        hooks::http(request).await
    }
}

/// The state of an object of `kind`.
fn state(kind: Kind, object: &DynamicObject) -> Result<MemberState, String> {
    match kind {
        Kind::Deployment | Kind::StatefulSet => Ok(workload::state(kind, object)),
        Kind::CronJob => Ok(cronjob::state(object)),
        Kind::VirtualService | Kind::Ingress => Ok(network::state(kind, object)),
        Kind::VolumeReplication => volume::state(object),
        Kind::Kustomization | Kind::HelmRelease => Ok(flux::state(object)),
    }
}

/// The writes that bring `object`, of `kind`, to `desired`, and the fields they change:
/// pure (no call), so that `set` sends exactly what `preview` (the dry run) shows.
/// `now` stamps Flux's reconcile request. An object the adapter cannot change safely
/// (a VirtualService whose routes it cannot keep) is an error message.
pub fn edits(
    kind: Kind,
    object: &DynamicObject,
    desired: Desired,
    now: SystemTime,
) -> Result<Edits, String> {
    match kind {
        Kind::Deployment | Kind::StatefulSet => Ok(workload::plan(object, desired)),
        Kind::CronJob => Ok(cronjob::plan(object, desired)),
        Kind::VirtualService => network::plan_virtual_service(object, desired),
        Kind::Ingress => network::plan_ingress(object, desired),
        Kind::VolumeReplication => Ok(volume::plan(object, desired)),
        Kind::Kustomization | Kind::HelmRelease => Ok(flux::plan(object, desired, now)),
    }
}

/// One write of [`Edits`].
#[derive(Debug, PartialEq)]
pub enum Edit {
    /// A merge patch of the object.
    Patch(Value),
}

/// One changed field, before it is attached to its object.
#[derive(Debug, PartialEq)]
pub struct Change {
    /// The field, as a path (`spec.replicas`, `metadata.annotations[key]`).
    pub field: String,
    /// Its value before (`-` if absent).
    pub from: String,
    /// Its value after.
    pub to: String,
}

impl Change {
    fn new(field: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Change {
        Change {
            field: field.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn annotation(key: &str, from: Option<&str>, to: Option<&str>) -> Change {
        Change::new(
            format!("metadata.annotations[{key}]"),
            from.unwrap_or(ABSENT),
            to.unwrap_or(ABSENT),
        )
    }
}

/// What `set` does to one object: its writes in order, and the fields they change.
#[derive(Debug, Default, PartialEq)]
pub struct Edits {
    /// The writes, in order (empty if the object already is as desired).
    pub writes: Vec<Edit>,
    /// The fields they change.
    pub changes: Vec<Change>,
}

impl Edits {
    /// The changes as the port reports them, on `object`.
    fn changes_of(&self, object: &ObjectRef) -> Vec<FieldChange> {
        self.changes
            .iter()
            .map(|c| FieldChange {
                object: object.clone(),
                field: c.field.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
            })
            .collect()
    }
}

/// How an absent value is rendered in a [`FieldChange`].
const ABSENT: &str = "-";

/// A JSON value rendered for a [`FieldChange`]: strings bare, others as compact JSON.
fn render(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => ABSENT.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The field at a JSON pointer (`/spec/replicas`) of an object's body.
fn field<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a Value> {
    object.data.pointer(pointer).filter(|v| !v.is_null())
}

/// An integer field, 0 if absent.
fn int(object: &DynamicObject, pointer: &str) -> i64 {
    field(object, pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// A boolean field, false if absent.
fn flag(object: &DynamicObject, pointer: &str) -> bool {
    field(object, pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One annotation of an object.
fn annotation<'a>(object: &'a DynamicObject, key: &str) -> Option<&'a str> {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// `metadata.resourceVersion`, for patches that must not overwrite a concurrent change.
fn resource_version(object: &DynamicObject) -> Value {
    object
        .metadata
        .resource_version
        .clone()
        .map_or(Value::Null, Value::String)
}

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The HTTP status of a failed call (from the reason if the server left the code out).
fn status_code(status: &kube::core::Status) -> u16 {
    if status.code != 0 {
        return status.code;
    }
    match status.reason.as_str() {
        "NotFound" => 404,
        "AlreadyExists" | "Conflict" => 409,
        "Invalid" => 422,
        "BadRequest" => 400,
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "Timeout" => 504,
        "TooManyRequests" => 429,
        _ => 500,
    }
}

/// The API group and plural name of `kind`'s resource: what an RBAC rule for it names
/// (the same for every version the adapter may use).
pub fn rbac_resource(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Deployment => ("apps", "deployments"),
        Kind::StatefulSet => ("apps", "statefulsets"),
        Kind::CronJob => ("batch", "cronjobs"),
        Kind::VirtualService => ("networking.istio.io", "virtualservices"),
        Kind::Ingress => ("networking.k8s.io", "ingresses"),
        Kind::VolumeReplication => ("replication.storage.openshift.io", "volumereplications"),
        Kind::Kustomization => ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        Kind::HelmRelease => ("helm.toolkit.fluxcd.io", "helmreleases"),
    }
}

/// Maps a kube-rs error on `object` to the port's error contract.
fn map_error(err: kube::Error, object: &ObjectRef) -> ClusterError {
    match err {
        kube::Error::Api(status) => {
            let code = status_code(&status);
            let message = if status.message.is_empty() {
                format!("HTTP {code} {}", status.reason)
            } else {
                status.message.clone()
            };
            match code {
                404 => ClusterError::NotFound(object.clone()),
                409 => ClusterError::Conflict(object.clone()),
                401 | 408 | 429 => {
                    ClusterError::Unavailable(format!("{object}: HTTP {code}: {message}"))
                }
                400..=499 => ClusterError::Invalid(object.clone(), message),
                _ => ClusterError::Unavailable(format!("{object}: HTTP {code}: {message}")),
            }
        }
        other => ClusterError::Unavailable(format!("{object}: {other}")),
    }
}

/// `time` in RFC 3339 (UTC, `Z`), with fractional seconds like Go's `RFC3339Nano`
/// (trailing zeros dropped, none at all on a whole second).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 120_000_000);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.12Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_399);
        assert_eq!(rfc3339(t), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn maps_status_codes() {
        let object = ObjectRef {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "web".into(),
        };
        let err = |code: u16, message: &str| {
            map_error(
                kube::Error::Api(
                    kube::core::Status::failure(message, "Reason")
                        .with_code(code)
                        .boxed(),
                ),
                &object,
            )
        };
        assert_eq!(err(404, "gone"), ClusterError::NotFound(object.clone()));
        assert_eq!(err(409, "conflict"), ClusterError::Conflict(object.clone()));
        assert_eq!(
            err(422, "bad"),
            ClusterError::Invalid(object.clone(), "bad".into())
        );
        assert_eq!(
            err(403, "no"),
            ClusterError::Invalid(object.clone(), "no".into())
        );
        assert!(matches!(err(503, "down"), ClusterError::Unavailable(_)));
        assert!(matches!(err(429, "slow"), ClusterError::Unavailable(_)));
    }
}
