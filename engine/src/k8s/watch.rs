//! Background metadata watchers that wake [`super::KubeCluster::changed`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::ports::{Kind, Selector};

/// What one watcher watches: a kind in a namespace, by label selector or all of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct WatchKey {
    pub(super) kind: Kind,
    namespace: String,
    /// `None`: every object of the kind in the namespace.
    labels: Option<String>,
}

impl WatchKey {
    /// The watch that sees every object `selector` selects: by its labels if it names
    /// no objects, else the whole namespace.
    pub(super) fn new(kind: Kind, selector: &Selector) -> WatchKey {
        WatchKey {
            kind,
            namespace: selector.namespace.clone(),
            labels: (selector.names.is_empty() && !selector.labels.is_empty())
                .then(|| selector.labels.to_string()),
        }
    }
}

#[derive(Default)]
struct State {
    wanted: BTreeSet<WatchKey>,
    running: HashMap<WatchKey, AbortHandle>,
}

/// The watchers of one [`super::KubeCluster`] and the [`Notify`] they feed.
#[derive(Default)]
pub(super) struct Watches {
    notify: Arc<Notify>,
    state: Mutex<State>,
}

impl Watches {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remember that `key` should be watched (started by the next `changed`).
    pub(super) fn want(&self, key: WatchKey) {
        self.lock().wanted.insert(key);
    }

    /// The wanted watches not running yet.
    pub(super) fn pending(&self) -> Vec<WatchKey> {
        let state = self.lock();
        state
            .wanted
            .iter()
            .filter(|k| !state.running.contains_key(*k))
            .cloned()
            .collect()
    }

    /// Start the watcher of `key` (unless it runs already).
    pub(super) fn start(&self, client: &Client, key: WatchKey, resource: ApiResource) {
        let mut state = self.lock();
        if state.running.contains_key(&key) {
            return;
        }
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(client.clone(), &key.namespace, &resource);
        let mut config = watcher::Config::default();
        if let Some(labels) = &key.labels {
            config = config.labels(labels);
        }
        let notify = self.notify.clone();
        let kind = key.kind;
        let task = tokio::spawn(async move {
            let mut events = watcher(api, config).default_backoff().boxed();
            let mut listed = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Apply(_) | Event::Delete(_)) => wake(&notify),
                    Ok(Event::InitDone) => {
                        // The first listing is the state the caller just read; a later
                        // one follows a restart during which changes may have been missed.
                        if listed {
                            wake(&notify);
                        }
                        listed = true;
                    }
                    Ok(Event::Init | Event::InitApply(_)) => {}
                    Err(err) => tracing::debug!(%kind, %err, "watch failed; retrying"),
                }
            }
        });
        state.running.insert(key, task.abort_handle());
    }

    /// A future that resolves on the next event (or at once if one came since the last).
    pub(super) fn notified(&self) -> impl Future<Output = ()> + Send + 'static {
        let notify = self.notify.clone();
        async move { notify.notified().await }
    }

    /// Stop every watcher.
    pub(super) fn stop_all(&self) {
        for (_, task) in self.lock().running.drain() {
            task.abort();
        }
    }
}

/// Wake every current waiter, and leave one wake-up for the next one.
fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}
