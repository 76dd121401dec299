//! A fault-injecting layer in front of an API server: while a rule is on, the client's
//! requests that match it (a method and a path fragment, e.g. `PATCH` of
//! `/cronjobs/`) hang without an answer or fail at once. It is built into a kube
//! [`Client`], so the engine's real Kubernetes adapter meets it exactly as it would meet
//! an admission webhook that times out or an API server that drops connections.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a matching request meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No answer, ever: only the caller's deadline ends the call.
    Hang,
    /// The connection fails at once; nothing reaches the API server.
    Fail,
}

/// Which requests a fault hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The HTTP method.
    pub method: Method,
    /// A fragment of the request path (`/cronjobs/`).
    pub path_contains: String,
    /// What they meet.
    pub fault: Fault,
}

/// The switch of a faulty client: the rule in force, and how many requests it hit.
#[derive(Clone, Default)]
pub struct Faults {
    rule: Arc<Mutex<Option<Rule>>>,
    hits: Arc<AtomicUsize>,
}

impl Faults {
    /// Put `rule` in force (`None`: every request passes).
    pub fn set(&self, rule: Option<Rule>) {
        *self.rule.lock().unwrap_or_else(|e| e.into_inner()) = rule;
    }

    /// Requests the rules hit so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn meets<B>(&self, req: &Request<B>) -> Option<Fault> {
        let rule = self.rule.lock().unwrap_or_else(|e| e.into_inner());
        let rule = rule.as_ref()?;
        let hit = req.method() == rule.method && req.uri().path().contains(&rule.path_contains);
        hit.then(|| {
            self.hits.fetch_add(1, Ordering::SeqCst);
            rule.fault
        })
    }
}

impl<S> Layer<S> for Faults {
    type Service = Faulty<S>;

    fn layer(&self, inner: S) -> Faulty<S> {
        Faulty {
            inner,
            faults: self.clone(),
        }
    }
}

/// The service [`Faults`] wraps around a client's stack.
#[derive(Clone)]
pub struct Faulty<S> {
    inner: S,
    faults: Faults,
}

impl<S, B> Service<Request<Body>> for Faulty<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.faults.meets(&req) {
            Some(Fault::Hang) => Box::pin(futures::future::pending()),
            Some(Fault::Fail) => Box::pin(async { Err("injected: connection reset".into()) }),
            None => {
                let call = self.inner.call(req);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
        }
    }
}

/// A client of the API server in `kubeconfig` whose requests pass through `faults`.
pub async fn faulty_client(kubeconfig: &Path, faults: &Faults) -> Result<Client, String> {
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let builder = ClientBuilder::try_from(config).map_err(|e| e.to_string())?;
    Ok(builder.with_layer(faults).build())
}
