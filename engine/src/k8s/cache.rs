//! Watch caches: one kube-runtime reflector per (kind, namespace), shared by every
//! group of the process, so a turn reads memory and not the API server.
//!
//! # The rule: a write counts once the cache has seen it
//!
//! A watch delivers each object's changes in order, some time after they happen. So a
//! cache is always a past state of each object, and right after a write it may still
//! show the state from before the write. The protocol judges a step done by observing
//! its result; an observation older than the step's own write would judge it by the
//! state it replaced. Therefore:
//!
//! - every write of this process notes the `metadata.resourceVersion` the server gave
//!   the object;
//! - an observation uses the cached object only if its resourceVersion is at or after
//!   the noted one (resourceVersions are etcd revisions, compared as numbers; one that
//!   is not a number counts only when equal). Otherwise it waits up to [`CATCH_UP`]
//!   for the watch, then reads that object from the API server, whose answer is at or
//!   after the write;
//! - a write whose read of the object came from the cache carries that read's
//!   resourceVersion where the adapter saves a value it read (see the module above);
//!   a 409 marks the object stale and the retry reads it from the API
//!   server.
//!
//! Changes by others (the kubelet, the csi-addons driver, a person) show up as late as
//! the watch brings them. Every check the protocol makes on them waits for them to
//! happen (pods gone, a volume's status secondary), so a late one only delays a step;
//! it never lets one count early.
//!
//! # When the cache is not used
//!
//! A cache serves reads only while it is **in sync**: listed, and its watch not failed
//! since. Until the first listing ends, during a re-list, and from a watch error until
//! the watch is back, reads go to the API server exactly as without a cache (a list
//! with the label selector, a get per named object), so an API server that cannot be
//! reached still makes the observation fail, and the engine assume the worst.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event, watcher};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::ports::{Kind, ObjectRef};

/// How long an observation waits for the watch to bring this process's own write
/// before it reads the object from the API server.
pub const CATCH_UP: Duration = Duration::from_millis(500);

/// Objects per page of a cache's listing.
const LIST_PAGE: u32 = 100;

/// The annotation kubectl's client-side apply keeps (a copy of the whole object): not
/// kept in the cache.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One kind in one namespace, as watched.
struct Cache {
    store: Store<DynamicObject>,
    in_sync: Arc<AtomicBool>,
    /// The watch failed and has not delivered an event since.
    failing: Arc<AtomicBool>,
    task: AbortHandle,
}

/// Every cache of one [`super::KubeCluster`] and what its writes await.
pub(super) struct Caches {
    /// Woken by every change a cache sees (after its first listing), for `changed`.
    notify: Arc<Notify>,
    /// Bumped by every event a cache applies, for observations catching up.
    applied: tokio::sync::watch::Sender<u64>,
    caches: Mutex<HashMap<(Kind, String), Arc<Cache>>>,
    /// The resourceVersion of this process's last write of each object, until a cache
    /// shows it.
    written: Mutex<HashMap<ObjectRef, String>>,
    /// Objects a write found changed since the cached read (409): read from the API
    /// server next time.
    stale: Mutex<HashSet<ObjectRef>>,
    /// Every event is applied this late (a test's slow watch).
    lag: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Caches {
    pub(super) fn new(lag: Duration) -> Caches {
        Caches {
            notify: Arc::new(Notify::new()),
            applied: tokio::sync::watch::Sender::new(0),
            caches: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            stale: Mutex::new(HashSet::new()),
            lag,
        }
    }

    /// The cache of `kind` in `namespace` if it is in sync; starts it if it does not
    /// run yet. A cache still in its first listing is waited for, up to [`CATCH_UP`]
    /// (a direct list of a thousand objects would cost what the cache is there to
    /// save); one whose watch failed is not.
    pub(super) async fn in_sync(
        &self,
        client: &Client,
        kind: Kind,
        namespace: &str,
        resource: &ApiResource,
    ) -> Option<Store<DynamicObject>> {
        let cache = lock(&self.caches)
            .entry((kind, namespace.to_string()))
            .or_insert_with(|| self.start(client, kind, namespace, resource))
            .clone();
        let started = tokio::time::Instant::now();
        let mut events = self.events();
        loop {
            events.mark_unchanged();
            if cache.in_sync.load(Ordering::Acquire) {
                return Some(cache.store.clone());
            }
            let waited = started.elapsed();
            if cache.failing.load(Ordering::Acquire) || waited >= CATCH_UP {
                return None;
            }
            let _ = tokio::time::timeout(CATCH_UP - waited, events.changed()).await;
        }
    }

    fn start(
        &self,
        client: &Client,
        kind: Kind,
        namespace: &str,
        resource: &ApiResource,
    ) -> Arc<Cache> {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        let mut writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let in_sync = Arc::new(AtomicBool::new(false));
        let (notify, applied, lag) = (self.notify.clone(), self.applied.clone(), self.lag);
        let flag = in_sync.clone();
        let failing = Arc::new(AtomicBool::new(false));
        let failed = failing.clone();
        let namespace = namespace.to_string();
        let task = tokio::spawn(async move {
            // Listed 100 at a time (client-go's 500 would hold five times the decoded
            // objects at once at the start, memory the process keeps afterwards).
            let config = watcher::Config::default().page_size(LIST_PAGE);
            let mut events = watcher(api, config).default_backoff().boxed();
            // Events with the time they came, so that a slow watch delays each by the
            // lag, not the lag times the events before it.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let pump = async move {
                while let Some(event) = events.next().await {
                    if tx.send((tokio::time::Instant::now(), event)).is_err() {
                        break;
                    }
                }
            };
            let mut listed = false;
            let apply = async move {
                while let Some((came, event)) = rx.recv().await {
                    let mut event = match event {
                        Ok(event) => event,
                        Err(err) => {
                            flag.store(false, Ordering::Release);
                            failed.store(true, Ordering::Release);
                            // Wake whoever waits for the first listing: it will not come.
                            applied.send_modify(|n| *n += 1);
                            tracing::debug!(%kind, %namespace, %err, "watch failed; reading from the API server until it is back");
                            continue;
                        }
                    };
                    // A slow watch brings changes late; its listings are not slowed.
                    if !lag.is_zero() && matches!(event, Event::Apply(_) | Event::Delete(_)) {
                        tokio::time::sleep_until(came + lag).await;
                    }
                    match &mut event {
                        Event::Apply(object) | Event::InitApply(object) | Event::Delete(object) => {
                            slim(kind, object);
                        }
                        Event::Init | Event::InitDone => {}
                    }
                    failed.store(false, Ordering::Release);
                    writer.apply_watcher_event(&event);
                    applied.send_modify(|n| *n += 1);
                    match event {
                        // A re-list (after a watch restart) replaces the store when it
                        // ends; until then the old one may miss changes.
                        Event::Init => flag.store(false, Ordering::Release),
                        Event::InitApply(_) => {}
                        Event::InitDone => {
                            flag.store(true, Ordering::Release);
                            // The first listing is what the caller read directly; a later
                            // one may hold changes missed while the watch was down.
                            if listed {
                                wake(&notify);
                            }
                            listed = true;
                        }
                        Event::Apply(_) | Event::Delete(_) => {
                            flag.store(true, Ordering::Release);
                            wake(&notify);
                        }
                    }
                }
            };
            futures::join!(pump, apply);
        });
        Arc::new(Cache {
            store,
            in_sync,
            failing,
            task: task.abort_handle(),
        })
    }

    /// Note this process's write of `object`, which the server gave `version`.
    pub(super) fn wrote(&self, object: &ObjectRef, version: Option<String>) {
        lock(&self.stale).remove(object);
        match version {
            Some(v) => {
                lock(&self.written).insert(object.clone(), v);
            }
            None => {
                lock(&self.stale).insert(object.clone());
            }
        }
    }

    /// `object` changed since the cache's copy was read (a 409): read it from the API
    /// server next time.
    pub(super) fn stale(&self, object: &ObjectRef) {
        lock(&self.stale).insert(object.clone());
    }

    /// The object was read from the API server: its cached copy is usable again once
    /// it is at or after every write noted.
    pub(super) fn fresh(&self, object: &ObjectRef) {
        lock(&self.stale).remove(object);
    }

    /// Whether `object` was found stale (waiting for the watch does not help: it is read
    /// from the API server).
    pub(super) fn is_stale(&self, object: &ObjectRef) -> bool {
        lock(&self.stale).contains(object)
    }

    /// Whether the cached copy of `object` (at `version`) may stand for it: at or after
    /// this process's last write of it, and not found stale.
    pub(super) fn current(&self, object: &ObjectRef, version: Option<&str>) -> bool {
        if lock(&self.stale).contains(object) {
            return false;
        }
        let mut written = lock(&self.written);
        let Some(wrote) = written.get(object) else {
            return true;
        };
        let caught_up = version.is_some_and(|v| at_or_after(v, wrote));
        if caught_up {
            written.remove(object);
        }
        caught_up
    }

    /// A receiver that changes whenever some cache applies an event (call
    /// `mark_unchanged` before looking, then wait for `changed`: no event is missed).
    pub(super) fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// A future that resolves on the next change (or at once if one came since the
    /// last call).
    pub(super) fn notified(&self) -> impl Future<Output = ()> + Send + 'static {
        let notify = self.notify.clone();
        async move { notify.notified().await }
    }

    /// Stop every watch.
    pub(super) fn stop_all(&self) {
        for (_, cache) in lock(&self.caches).drain() {
            cache.task.abort();
        }
    }
}

/// `version` is at or after `wrote`: resourceVersions are etcd revisions, compared as
/// numbers; one that is not a number counts only when equal.
pub(super) fn at_or_after(version: &str, wrote: &str) -> bool {
    match (version.parse::<u64>(), wrote.parse::<u64>()) {
        (Ok(v), Ok(w)) => v >= w,
        _ => version == wrote,
    }
}

/// Drop what the adapter never reads from a cached object: managed fields, kubectl's
/// last-applied copy, and a workload's pod template except its grace period (a
/// thousand Deployments' templates would be most of the operator's memory).
fn slim(kind: Kind, object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    if matches!(kind, Kind::Deployment | Kind::StatefulSet)
        && let Some(spec) = object.data.get_mut("spec").and_then(|s| s.as_object_mut())
        && let Some(template) = spec.remove("template")
        && let Some(grace) = template.pointer("/spec/terminationGracePeriodSeconds")
    {
        spec.insert(
            "template".into(),
            serde_json::json!({ "spec": { "terminationGracePeriodSeconds": grace } }),
        );
    }
}

/// Wake every current waiter, and leave one wake-up for the next one.
fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_compare_as_revisions() {
        assert!(at_or_after("120", "120"));
        assert!(at_or_after("121", "120"));
        assert!(
            !at_or_after("99", "120"),
            "not as strings: 99 is before 120"
        );
        assert!(at_or_after("opaque", "opaque"));
        assert!(!at_or_after("opaque-2", "opaque"));
    }

    #[test]
    fn a_cached_workload_keeps_only_what_the_adapter_reads() {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "resourceVersion": "7",
                "annotations": { LAST_APPLIED: "{}", "failover.rs/replicas": "3" },
                "managedFields": [{ "manager": "kubectl" }],
            },
            "spec": {
                "replicas": 3,
                "template": { "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{ "name": "web", "image": "nginx" }],
                }},
            },
            "status": { "replicas": 3 },
        }))
        .expect("object");
        slim(Kind::Deployment, &mut object);
        assert_eq!(object.metadata.managed_fields, None);
        assert_eq!(
            object.metadata.annotations.as_ref().map(|a| a.len()),
            Some(1)
        );
        assert_eq!(
            object.data,
            serde_json::json!({
                "spec": { "replicas": 3, "template": { "spec": { "terminationGracePeriodSeconds": 5 } } },
                "status": { "replicas": 3 },
            })
        );
    }
}
