//! The operator's metrics (`prometheus-client`), served on `/metrics`. README,
//! "Operating it", lists them.

use std::sync::atomic::AtomicU64;

use failover_engine::executor::{Turn, TurnResult};
use failover_engine::k8s::limit::Limiter;
use failover_engine::ports::ClusterError;
use failover_model::{Action, Reply};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Failovers ended, by group, mode and outcome.
    pub failovers: Family<Labels, Counter>,
    /// Failover durations (first seen in flight to its history item), by mode.
    pub failover_seconds: Histograms,
    /// Stage durations, by mode and stage.
    pub stage_seconds: Histograms,
    /// Seconds since each cluster's last heartbeat, by group and cluster.
    pub heartbeat_age: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Seconds of the active cluster's lease left, by group.
    pub lease_left: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Store writes, by operation and reply.
    pub store_writes: Family<Labels, Counter>,
    /// Kubernetes errors of effects and fences, by reason.
    pub kube_errors: Family<Labels, Counter>,
    /// 1 while the group's cluster is active with its lease run out (self-fenced).
    pub fenced: Family<Labels, Gauge>,
    /// 1 while this replica is the leader (runs the controllers and loops).
    pub leader: Gauge,
    /// The auto-failover watch's state, by group and state (1 for the current one).
    pub auto_state: Family<Labels, Gauge>,
    /// Failed observations in a row of the auto-failover watch, by group.
    pub auto_failures: Family<Labels, Gauge>,
    /// Failovers the auto-failover watch asked for, by group.
    pub auto_fired: Family<Labels, Counter>,
}

fn durations() -> Histogram {
    Histogram::new([
        0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

/// The Kubernetes client's counts ([`Limiter::counts`]), read at each scrape: requests
/// by verb (`failover_kube_requests_total`), seconds waited for the rate limit
/// (`failover_kube_throttled_seconds_total`) and 429 re-sends
/// (`failover_kube_retries_429_total`).
#[derive(Debug)]
struct KubeClient(Limiter);

impl Collector for KubeClient {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.counts();
        {
            let mut requests = encoder.encode_descriptor(
                "kube_requests",
                "Kubernetes API requests sent, by verb",
                None,
                MetricType::Counter,
            )?;
            for (verb, n) in &counts.requests {
                ConstCounter::new(*n).encode(requests.encode_family(&[("verb", *verb)])?)?;
            }
        }
        let throttled = ConstCounter::new(counts.throttled.as_secs_f64());
        throttled.encode(encoder.encode_descriptor(
            "kube_throttled_seconds",
            "Seconds requests waited for the client rate limit",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(counts.retried_429).encode(encoder.encode_descriptor(
            "kube_retries_429",
            "Requests re-sent after an HTTP 429",
            None,
            MetricType::Counter,
        )?)
    }
}

impl Metrics {
    /// Every metric, and the Kubernetes client's counts if `limiter` is its rate limiter.
    pub fn new(limiter: Option<Limiter>) -> Self {
        let mut registry = Registry::with_prefix("failover");
        if let Some(limiter) = limiter {
            registry.register_collector(Box::new(KubeClient(limiter)));
        }
        let failovers = Family::<Labels, Counter>::default();
        registry.register(
            "failovers",
            "Failovers ended, by group, mode and outcome",
            failovers.clone(),
        );
        let failover_seconds: Histograms = Family::new_with_constructor(durations);
        registry.register(
            "failover_duration_seconds",
            "How long failovers took, by mode",
            failover_seconds.clone(),
        );
        let stage_seconds: Histograms = Family::new_with_constructor(durations);
        registry.register(
            "stage_duration_seconds",
            "How long failover stages took, by mode and stage",
            stage_seconds.clone(),
        );
        let heartbeat_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "heartbeat_age_seconds",
            "Seconds since each cluster's last heartbeat in the record",
            heartbeat_age.clone(),
        );
        let lease_left = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "lease_left_seconds",
            "Seconds of the active cluster's lease left",
            lease_left.clone(),
        );
        let store_writes = Family::<Labels, Counter>::default();
        registry.register(
            "store_writes",
            "Conditional writes to the record, by operation and reply",
            store_writes.clone(),
        );
        let kube_errors = Family::<Labels, Counter>::default();
        registry.register(
            "kube_errors",
            "Kubernetes errors of effects and fences, by reason",
            kube_errors.clone(),
        );
        let fenced = Family::<Labels, Gauge>::default();
        registry.register(
            "fenced",
            "1 while the group's cluster is active but its lease ran out",
            fenced.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads (runs the controllers and group loops)",
            leader.clone(),
        );
        let auto_state = Family::<Labels, Gauge>::default();
        registry.register(
            "auto_failover_state",
            "The auto-failover watch's state (Disarmed, Paused, Healthy, Failing, Fired): 1 for the current one",
            auto_state.clone(),
        );
        let auto_failures = Family::<Labels, Gauge>::default();
        registry.register(
            "auto_failover_failures",
            "Failed health observations in a row of the auto-failover watch",
            auto_failures.clone(),
        );
        let auto_fired = Family::<Labels, Counter>::default();
        registry.register(
            "auto_failovers",
            "Failovers the auto-failover watch asked for",
            auto_fired.clone(),
        );
        Metrics {
            auto_state,
            auto_failures,
            auto_fired,
            registry,
            failovers,
            failover_seconds,
            stage_seconds,
            heartbeat_age,
            lease_left,
            store_writes,
            kube_errors,
            fenced,
            leader,
        }
    }
}

/// The first word of a value's `Debug` form: the variant's name.
fn variant(debug: String) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

fn reason(e: &ClusterError) -> &'static str {
    match e {
        ClusterError::NotFound(_) => "not-found",
        ClusterError::Conflict(_) => "conflict",
        ClusterError::Invalid(..) => "invalid",
        ClusterError::Unavailable(_) => "unavailable",
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Count what a turn (and the turns beside its call) did: store writes and
    /// Kubernetes errors.
    pub fn on_turn(&self, turn: &Turn) {
        let turns = std::iter::once(turn).chain(turn.during.iter().map(|(t, _)| t));
        for t in turns {
            match (&t.decision.action, &t.result) {
                (Action::Write(op), TurnResult::Wrote(reply)) => {
                    let reply = match reply {
                        Reply::Applied(_) => "applied",
                        Reply::ConditionFailed(_) => "condition-failed",
                        Reply::Ambiguous => "ambiguous",
                        Reply::Unavailable => "unavailable",
                        Reply::Missing => "missing",
                    };
                    self.store_writes
                        .get_or_create(&vec![
                            ("op", variant(format!("{op:?}"))),
                            ("reply", reply.to_string()),
                        ])
                        .inc();
                }
                (_, TurnResult::Failed(e)) => {
                    self.kube_errors
                        .get_or_create(&vec![("reason", reason(&e.source).to_string())])
                        .inc();
                }
                (_, TurnResult::Fenced { failed, .. }) => {
                    for e in failed {
                        self.kube_errors
                            .get_or_create(&vec![("reason", reason(&e.source).to_string())])
                            .inc();
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::k8s::limit::{Limits, limited};
    use http::{Request, Response};
    use kube::client::Body;

    /// The client's requests show on `/metrics` by verb, read at each scrape.
    #[tokio::test]
    async fn the_kubernetes_clients_counts_are_read_at_each_scrape() {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            while let Some((_, reply)) = handle.next_request().await {
                reply.send_response(Response::new(Body::from(b"{}".to_vec())));
            }
        });
        let (client, limiter) = limited(kube::Client::new(mock, "default"), Limits::default());
        let metrics = Metrics::new(Some(limiter));
        let before = metrics.render();
        assert!(
            !before.contains("failover_kube_requests_total{"),
            "{before}"
        );
        assert!(
            before.contains("failover_kube_retries_429_total 0\n"),
            "{before}"
        );
        for _ in 0..2 {
            let get = Request::get("/api/v1/namespaces/kube-system")
                .body(Vec::new())
                .expect("request");
            client.request_text(get).await.expect("answered");
        }
        let text = metrics.render();
        assert!(
            text.contains("# TYPE failover_kube_requests counter"),
            "{text}"
        );
        assert!(
            text.contains("failover_kube_requests_total{verb=\"get\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("failover_kube_throttled_seconds_total 0"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        assert!(!Metrics::default().render().contains("kube_requests"));
        server.abort();
    }
}
