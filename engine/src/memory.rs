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
    Changes, Clock, ClusterError, ClusterPort, Desired, ExecResult, FieldChange, HttpRequest,
    JobState, Kind, LabelQuery, Member, MemberState, ObjectRef, Selector, StorePort,
    StoreUnavailable,
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
    /// Hook Jobs by (namespace, name).
    jobs: BTreeMap<(String, String), MemoryJob>,
    /// How many times a Job of each (namespace, name) was created (a deleted Job is
    /// created again by the next `ensure_job`).
    creations: BTreeMap<(String, String), usize>,
    /// Pods an exec hook can select, with the exit code each answers.
    pods: Vec<MemoryPod>,
    /// HTTP answers by URL (no entry: the endpoint is unreachable).
    http: BTreeMap<String, Result<u16, String>>,
    /// Every HTTP request sent, in order.
    requests: Vec<HttpRequest>,
}

/// A hook's Job in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryJob {
    /// Its labels (the template's and the hook's).
    pub labels: BTreeMap<String, String>,
    /// The template it was created from.
    pub template: serde_json::Value,
    /// `spec.activeDeadlineSeconds` as created.
    pub deadline_seconds: i64,
    /// Its state: `Running` until [`MemoryCluster::finish_job`] (or
    /// [`MemoryCluster::complete_job`], [`MemoryCluster::fail_job`]).
    pub state: JobState,
    /// How many times a Job of its name was created (a second `ensure_job` must not
    /// create it again: 1 unless it was deleted by [`MemoryCluster::delete_job`]).
    pub created: usize,
}

/// A pod an exec hook may run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// It runs (only running pods are exec'd in).
    pub running: bool,
    /// The exit code a command answers in it.
    pub exit_code: i32,
    /// What a command writes in it (stdout and stderr); empty: nothing on success,
    /// `<command> failed` on failure.
    pub output: String,
    /// The commands run in it so far.
    pub ran: Vec<Vec<String>>,
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
                jobs: BTreeMap::new(),
                creations: BTreeMap::new(),
                pods: Vec::new(),
                http: BTreeMap::new(),
                requests: Vec::new(),
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

impl MemoryCluster {
    /// The hook Jobs, by (namespace, name).
    pub fn jobs(&self) -> BTreeMap<(String, String), MemoryJob> {
        self.lock().jobs.clone()
    }

    /// End Job `name` in `namespace` as `state` (`Complete` or `Failed`); `false` if it
    /// does not exist.
    pub fn finish_job(&self, namespace: &str, name: &str, state: JobState) -> bool {
        let mut inner = self.lock();
        let Some(job) = inner.jobs.get_mut(&(namespace.to_owned(), name.to_owned())) else {
            return false;
        };
        job.state = state;
        drop(inner);
        self.notify.notify_waiters();
        true
    }

    /// Add a pod an exec hook may select, answering `exit_code` to every command.
    pub fn add_pod(&self, namespace: &str, name: &str, labels: &[(&str, &str)], exit_code: i32) {
        self.lock().pods.push(MemoryPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            running: true,
            exit_code,
            output: String::new(),
            ran: Vec::new(),
        });
    }

    /// End Job `name` in `namespace` with its `Complete` condition; `false` if it does
    /// not exist.
    pub fn complete_job(&self, namespace: &str, name: &str) -> bool {
        self.finish_job(namespace, name, JobState::Complete)
    }

    /// End Job `name` in `namespace` with its `Failed` condition, `why` being the
    /// condition's `<reason>: <message>`; `false` if it does not exist.
    pub fn fail_job(&self, namespace: &str, name: &str, why: &str) -> bool {
        self.finish_job(namespace, name, JobState::Failed(why.to_owned()))
    }

    /// Delete Job `name` in `namespace` (a person, or the TTL controller): the next
    /// `ensure_job` creates it again. `false` if it does not exist.
    pub fn delete_job(&self, namespace: &str, name: &str) -> bool {
        let removed = self
            .lock()
            .jobs
            .remove(&(namespace.to_owned(), name.to_owned()))
            .is_some();
        self.notify.notify_waiters();
        removed
    }

    /// What a command answers in pod `name` of `namespace` from now on: `exit_code`
    /// and `output`; `false` if there is no such pod.
    pub fn set_exec(&self, namespace: &str, name: &str, exit_code: i32, output: &str) -> bool {
        let mut inner = self.lock();
        let Some(pod) = inner
            .pods
            .iter_mut()
            .find(|p| p.namespace == namespace && p.name == name)
        else {
            return false;
        };
        pod.exit_code = exit_code;
        pod.output = output.to_owned();
        true
    }

    /// Make pod `name` of `namespace` running or not (an exec hook skips pods that do
    /// not run); `false` if there is no such pod.
    pub fn set_pod_running(&self, namespace: &str, name: &str, running: bool) -> bool {
        let mut inner = self.lock();
        let Some(pod) = inner
            .pods
            .iter_mut()
            .find(|p| p.namespace == namespace && p.name == name)
        else {
            return false;
        };
        pod.running = running;
        true
    }

    /// The pods an exec hook may select, with what ran in them.
    pub fn pods(&self) -> Vec<MemoryPod> {
        self.lock().pods.clone()
    }

    /// What a request to `url` answers: a status, or an error (unreachable).
    pub fn set_http(&self, url: &str, answer: Result<u16, String>) {
        self.lock().http.insert(url.to_owned(), answer);
    }

    /// The HTTP requests sent so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.lock().requests.clone()
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

    async fn ensure_job(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        template: &serde_json::Value,
        deadline_seconds: i64,
    ) -> Result<JobState, ClusterError> {
        let mut inner = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(job) = inner.jobs.get(&key) {
            return Ok(job.state.clone());
        }
        let created = {
            let n = inner.creations.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let mut all: BTreeMap<String, String> = template
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        all.extend(labels.clone());
        let job = MemoryJob {
            labels: all,
            template: template.clone(),
            deadline_seconds: template
                .pointer("/spec/activeDeadlineSeconds")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(deadline_seconds),
            state: JobState::Running,
            created,
        };
        inner.jobs.insert(key, job);
        Ok(JobState::Running)
    }

    async fn exec(
        &self,
        namespace: &str,
        selector: &LabelQuery,
        _container: Option<&str>,
        command: &[String],
    ) -> Result<Vec<ExecResult>, ClusterError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for pod in inner.pods.iter_mut() {
            if pod.namespace == namespace && pod.running && selector.matches(&pod.labels) {
                pod.ran.push(command.to_vec());
                out.push(ExecResult {
                    pod: pod.name.clone(),
                    exit_code: pod.exit_code,
                    output: if !pod.output.is_empty() {
                        pod.output.clone()
                    } else if pod.exit_code == 0 {
                        String::new()
                    } else {
                        format!("{} failed", command.join(" "))
                    },
                });
            }
        }
        Ok(out)
    }

    async fn http(&self, request: &HttpRequest) -> Result<u16, ClusterError> {
        let mut inner = self.lock();
        inner.requests.push(request.clone());
        match inner.http.get(&request.url) {
            Some(Ok(status)) => Ok(*status),
            Some(Err(why)) => Err(ClusterError::Unavailable(format!("{}: {why}", request.url))),
            None => Err(ClusterError::Unavailable(format!(
                "{}: connection refused",
                request.url
            ))),
        }
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
