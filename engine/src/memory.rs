//! In-memory adapters with the exact semantics of the ports: a cluster whose
//! controllers settle at once or on demand, a store that is [`failover_model::apply`],
//! and a clock on tokio's (pausable) time. The engine's tests use them; the simulator
//! wraps them with faults and virtual time. They pass the [`crate::conformance`] suite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use failover_model::{Cluster, Record, Reply, Time, Timing, Trace, Variant, Write, apply};
use tokio::sync::Notify;

use crate::member::{set_member, settled};
use crate::ports::{
    Changes, Clock, ClusterError, ClusterPort, Desired, FieldChange, Kind, Member, MemberState,
    ObjectRef, Selector, StorePort, StoreUnavailable,
};

/// How the in-memory cluster's controllers move status after a spec change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Pods and volume states follow the spec within the same call.
    Instantly,
    /// Only when [`MemoryCluster::settle`] is called.
    OnDemand,
}

#[derive(Debug)]
struct Object {
    labels: BTreeMap<String, String>,
    state: MemberState,
}

#[derive(Debug)]
struct ClusterInner {
    objects: BTreeMap<ObjectRef, Object>,
    changes: Vec<FieldChange>,
    sets: usize,
    traces: BTreeMap<String, Trace>,
    identity: String,
}

/// Tells apart the identities of in-memory clusters.
static CLUSTERS: AtomicU64 = AtomicU64::new(0);

/// A cluster in memory.
#[derive(Clone, Debug)]
pub struct MemoryCluster {
    inner: Arc<Mutex<ClusterInner>>,
    notify: Arc<Notify>,
    settle: Settle,
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new(settle: Settle) -> MemoryCluster {
        MemoryCluster {
            inner: Arc::new(Mutex::new(ClusterInner {
                objects: BTreeMap::new(),
                traces: BTreeMap::new(),
                identity: format!(
                    "memory-cluster-{}",
                    CLUSTERS.fetch_add(1, Ordering::Relaxed)
                ),
                changes: Vec::new(),
                sets: 0,
            })),
            notify: Arc::new(Notify::new()),
            settle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClusterInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add (or replace) an object with labels and state.
    pub fn insert(&self, object: ObjectRef, labels: &[(&str, &str)], state: MemberState) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.lock().objects.insert(object, Object { labels, state });
        self.notify.notify_waiters();
    }

    /// The state of an object.
    pub fn state(&self, object: &ObjectRef) -> Option<MemberState> {
        self.lock().objects.get(object).map(|o| o.state.clone())
    }

    /// Let the controllers converge every object (pods follow replicas, volume status
    /// follows spec).
    pub fn settle(&self) {
        let mut inner = self.lock();
        for o in inner.objects.values_mut() {
            o.state = settled(&o.state);
        }
        drop(inner);
        self.notify.notify_waiters();
    }

    /// Every field change applied so far, in order.
    pub fn changes(&self) -> Vec<FieldChange> {
        self.lock().changes.clone()
    }

    /// Give this cluster another identity (each new one has its own).
    pub fn set_identity(&self, identity: &str) {
        self.lock().identity = identity.to_string();
    }

    /// Number of `set` calls so far.
    pub fn sets(&self) -> usize {
        self.lock().sets
    }

    /// Every object and its state.
    pub fn objects(&self) -> Vec<Member> {
        self.lock()
            .objects
            .iter()
            .map(|(r, o)| Member {
                object: r.clone(),
                state: o.state.clone(),
                stop_grace_seconds: None,
            })
            .collect()
    }
}

impl ClusterPort for MemoryCluster {
    async fn members(&self, kind: Kind, selector: &Selector) -> Result<Vec<Member>, ClusterError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for name in &selector.names {
            let r = ObjectRef {
                kind,
                namespace: selector.namespace.clone(),
                name: name.clone(),
            };
            if !inner.objects.contains_key(&r) {
                return Err(ClusterError::NotFound(r));
            }
        }
        for (r, o) in &inner.objects {
            let named = selector.names.contains(&r.name);
            let labeled = selector.labels.matches(&o.labels);
            if r.kind == kind && r.namespace == selector.namespace && (named || labeled) {
                out.push(Member {
                    object: r.clone(),
                    state: o.state.clone(),
                    stop_grace_seconds: None,
                });
            }
        }
        Ok(out)
    }

    async fn set(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let mut inner = self.lock();
        inner.sets += 1;
        let Some(o) = inner.objects.get_mut(object) else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        let Some((after, changes)) = set_member(object, &o.state, desired) else {
            return Ok(Vec::new());
        };
        o.state = match self.settle {
            Settle::Instantly => settled(&after),
            Settle::OnDemand => after,
        };
        inner.changes.extend(changes.iter().cloned());
        drop(inner);
        self.notify.notify_waiters();
        Ok(changes)
    }

    async fn preview(&self, object: &ObjectRef, desired: Desired) -> Changes {
        let inner = self.lock();
        let Some(o) = inner.objects.get(object) else {
            return Err(ClusterError::NotFound(object.clone()));
        };
        Ok(set_member(object, &o.state, desired).map_or_else(Vec::new, |(_, changes)| changes))
    }

    async fn changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    async fn identity(&self) -> Result<String, ClusterError> {
        Ok(self.lock().identity.clone())
    }

    async fn recall(&self, group: &str) -> Result<Option<Trace>, ClusterError> {
        Ok(self.lock().traces.get(group).copied())
    }

    async fn remember(&self, group: &str, trace: Trace) -> Result<(), ClusterError> {
        let mut inner = self.lock();
        let kept = inner.traces.get(group).copied();
        inner
            .traces
            .insert(group.to_string(), Trace::newest(kept, trace));
        Ok(())
    }
}

/// The global store in memory: every write is [`failover_model::apply`].
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<BTreeMap<String, Record>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The group's record, for assertions.
    pub fn get(&self, group: &str) -> Option<Record> {
        self.lock().get(group).cloned()
    }

    /// Delete the group's record (a table re-created, an item deleted by hand).
    pub fn delete(&self, group: &str) {
        self.lock().remove(group);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply `write` with the given protocol variant (the simulator's broken stores).
    pub fn write_with(
        &self,
        group: &str,
        timing: &Timing,
        write: &Write,
        variant: Variant,
    ) -> Reply {
        let mut records = self.lock();
        let Some(record) = records.get_mut(group) else {
            return Reply::Missing;
        };
        match apply(record, write, timing, variant) {
            Ok(next) => {
                *record = next.clone();
                Reply::Applied(next)
            }
            Err(_) => Reply::ConditionFailed(record.clone()),
        }
    }
}

impl StorePort for MemoryStore {
    async fn init(
        &self,
        group: &str,
        active: Cluster,
        now: Time,
    ) -> Result<Record, StoreUnavailable> {
        Ok(self
            .lock()
            .entry(group.to_string())
            .or_insert_with(|| Record::new(active, [Some(now); 2]))
            .clone())
    }

    async fn read(&self, group: &str) -> Result<Option<Record>, StoreUnavailable> {
        Ok(self.get(group))
    }

    async fn write(&self, group: &str, timing: &Timing, write: &Write) -> Reply {
        self.write_with(group, timing, write, Variant::Correct)
    }

    async fn recreate(&self, group: &str, record: &Record) -> Reply {
        let mut records = self.lock();
        match records.get(group) {
            Some(existing) => Reply::ConditionFailed(existing.clone()),
            None => {
                records.insert(group.to_string(), record.clone());
                Reply::Applied(record.clone())
            }
        }
    }
}

/// A clock on tokio's time: milliseconds since `epoch` plus a fixed offset (a cluster's
/// drift). Under a paused tokio runtime it is virtual and deterministic.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
    offset: Time,
}

impl TokioClock {
    /// A clock reading `offset` at the current tokio instant.
    pub fn new(offset: Time) -> TokioClock {
        TokioClock {
            epoch: tokio::time::Instant::now(),
            offset,
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Time {
        self.offset + self.epoch.elapsed().as_millis() as Time
    }

    fn mono(&self) -> Time {
        self.now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
