//! Auto-failover in the operator: once a second, the group's [`Watch`] gets an
//! observation of the active cluster (the record as the group's loop last read it, and
//! the probe's answer); when it fires, a `Failover` object labelled
//! `failover.rs/automatic=true` asks for the failover, so an automatic failover takes
//! the path of a manual one. The watch's state goes into the group's status under its
//! own field manager (`status.autoFailover`) and into the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use failover_engine::auto::{AutoPolicy, Probe, State, Watch};
use failover_engine::k8s::hooks::HttpsClient;
use failover_engine::spec::{
    AutoFailoverStatus, Failover, FailoverGroup, FailoverMode, FailoverSpec, Group,
};
use failover_model::Mode;
use http_body_util::Full;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::group::{View, apply_status_as};
use crate::metrics::Metrics;

/// The field manager of `status.autoFailover`.
pub const MANAGER: &str = "failover-operator-auto";
/// The label that marks a `Failover` the watch created.
pub const AUTOMATIC: &str = "failover.rs/automatic";
/// The label naming the group of an automatic `Failover`.
pub const GROUP: &str = "failover.rs/group";
/// The annotation saying why the watch fired.
pub const REASON: &str = "failover.rs/reason";

/// How often the watch observes.
const EVERY: Duration = Duration::from_secs(1);

/// The 2 s of grace `kube-lease-manager` gives a Lease (see `main`).
pub const LEADER_GRACE: Duration = Duration::from_secs(2);

/// A group whose timing a crashed leader's replacement cannot beat: the replacement
/// must claim the cluster's slot (a heartbeat) before the peer may force, or the peer
/// promotes while nothing fences this cluster. `handover` is the longest a crashed
/// leader takes to be replaced (`--leader-lease-seconds` plus the grace), `None`
/// without leader election.
pub fn handover_problem(group: &Group, handover: Option<Duration>) -> Option<String> {
    let handover = handover?.as_millis() as u64;
    let t = &group.timing;
    let budget = t
        .lease_ttl
        .saturating_sub(t.fence_lead() + t.heartbeat_every);
    (handover >= budget).then(|| {
        format!(
            "a crashed leader is replaced within {} s (--leader-lease-seconds + {} s), which \
             must be below leaseSeconds - fenceMarginSeconds - driverDemotionSeconds - \
             heartbeatSeconds ({} s), or the \
             peer may force a failover while nothing fences this cluster: lower \
             --leader-lease-seconds or raise spec.timing.leaseSeconds (auto-failover stays \
             disarmed meanwhile)",
            handover / 1000,
            LEADER_GRACE.as_secs(),
            budget / 1000
        )
    })
}

/// What the watch task needs.
pub struct AutoTask {
    /// The group (with `auto` set).
    pub group: Group,
    /// The `FailoverGroup` object's name.
    pub name: String,
    /// The API client.
    pub client: Client,
    /// The group loop's view (the record as last read).
    pub view: watch::Receiver<View>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// A problem that keeps the watch disarmed ([`handover_problem`]).
    pub problem: Option<String>,
    /// Where its Events go.
    pub events: (Reporter, ObjectReference),
}

impl AutoTask {
    /// Observe once a second until `stop` says so.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let Some(policy) = self.group.auto.clone() else {
            return;
        };
        let key = self.group.key.clone();
        let mut watch = Watch::new(policy.clone());
        let started = Instant::now();
        let http = policy.probe.as_ref().and_then(|_| http_client());
        let groups: Api<FailoverGroup> =
            Api::namespaced(self.client.clone(), &self.group.namespace);
        let recorder = Recorder::new(self.client.clone(), self.events.0.clone());
        let mut written: Option<AutoFailoverStatus> = None;
        let mut last_failover = None;
        let mut last_state = "";
        // A firing whose Failover could not be created yet (an API error): retried every
        // tick until the record shows a request (the trigger itself rests for
        // minInterval once it fired).
        let mut unsent: Option<String> = None;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        info!(group = %key, "auto-failover watch started");
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let Some(record) = self.view.borrow().record.clone() else {
                continue;
            };
            let now = started.elapsed().as_millis() as u64;
            let state = match &self.problem {
                Some(p) => State::Disarmed(p.clone()),
                None => {
                    let probe = match (&policy.probe, &http) {
                        (Some(p), Some(c))
                            if Watch::inapplicable(&self.group, &record).is_none() =>
                        {
                            Some(probe(c, p).await)
                        }
                        (Some(_), None) => Some(Err("no HTTP client (no TLS roots)".into())),
                        _ => None,
                    };
                    watch.observe(&self.group, &record, now, probe)
                }
            };
            if let State::Fired(symptom) = &state {
                unsent = Some(symptom.to_string());
            }
            if record.request.is_some() || record.failover.is_some() {
                unsent = None;
            }
            if let Some(symptom) = &unsent
                && let Some(name) = self.ask(&policy, symptom, &recorder).await
            {
                last_failover = Some(name);
                unsent = None;
            }
            let status = self.status(&state, now, last_failover.clone());
            if state.name() != last_state {
                for s in ["Disarmed", "Paused", "Healthy", "Failing", "Fired"] {
                    self.metrics
                        .auto_state
                        .get_or_create(&vec![("group", key.clone()), ("state", s.into())])
                        .set(i64::from(s == state.name()));
                }
                info!(group = %key, state = state.name(), message = ?status.message, "auto-failover watch");
                last_state = state.name();
            }
            self.metrics
                .auto_failures
                .get_or_create(&vec![("group", key.clone())])
                .set(i64::from(status.failures.unwrap_or(0)));
            if written.as_ref() != Some(&status) {
                let mine = serde_json::json!({ "autoFailover": status });
                match apply_status_as(&groups, &self.name, &mine, MANAGER).await {
                    Ok(_) => written = Some(status),
                    Err(e) => {
                        warn!(group = %key, error = %e, "cannot write the auto-failover status")
                    }
                }
            }
        }
        info!(group = %key, "auto-failover watch stopped");
    }

    /// Create the automatic `Failover` for `symptom` (counted, logged, an Event): its
    /// name, or `None` if the API refused (the caller retries).
    async fn ask(&self, policy: &AutoPolicy, symptom: &str, recorder: &Recorder) -> Option<String> {
        let key = &self.group.key;
        let (name, created) = match self
            .fire(policy.mode, symptom, policy.trigger.min_interval)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                warn!(group = %key, error = %e, "auto-failover cannot create its Failover (retried)");
                return None;
            }
        };
        if created {
            self.metrics
                .auto_fired
                .get_or_create(&vec![("group", key.clone())])
                .inc();
            warn!(group = %key, failover = %name, %symptom, "auto-failover fired");
            let event = Event {
                type_: EventType::Warning,
                reason: "AutoFailover".into(),
                note: Some(format!(
                    "{symptom}: asked for a failover to {} (Failover {name})",
                    self.group.name_of(self.group.me)
                )),
                action: "Request".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &self.events.1).await {
                warn!(error = %e, "cannot publish an Event");
            }
        }
        Some(name)
    }

    /// The status of `state` observed at `now`.
    fn status(&self, state: &State, now: u64, last_failover: Option<String>) -> AutoFailoverStatus {
        let secs = |ms: u64| ms.div_ceil(1000);
        let mut s = AutoFailoverStatus {
            state: state.name().into(),
            last_failover,
            ..AutoFailoverStatus::default()
        };
        match state {
            State::Disarmed(why) | State::Paused(why) => s.message = Some(why.clone()),
            State::Healthy => {
                s.message = Some(format!(
                    "{} is active and healthy",
                    self.group.name_of(self.group.me.peer())
                ))
            }
            State::Failing {
                since,
                failures,
                symptom,
                fires_at,
            } => {
                s.message = Some(symptom.to_string());
                s.failures = Some(*failures);
                s.failing_for_seconds = Some(now.saturating_sub(*since) / 1000);
                s.fires_in_seconds = Some(secs(fires_at.saturating_sub(now)));
            }
            State::Fired(symptom) => s.message = Some(format!("fired: {symptom}")),
        }
        s
    }

    /// Create the automatic `Failover` (its name, and whether it was created): none if
    /// one was created less than `min_interval` ago (the trigger's memory does not
    /// survive a restart; the objects do).
    async fn fire(
        &self,
        mode: Mode,
        why: &str,
        min_interval: u64,
    ) -> Result<(String, bool), kube::Error> {
        let api: Api<Failover> = Api::namespaced(self.client.clone(), &self.group.namespace);
        let labels = format!("{AUTOMATIC}=true,{GROUP}={}", self.name);
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let recent = api
            .list(&ListParams::default().labels(&labels))
            .await?
            .items
            .into_iter()
            .filter_map(|f| {
                let at = f.metadata.creation_timestamp.as_ref()?.0.as_second();
                Some((at, f.metadata.name?))
            })
            .filter(|(at, _)| (now - at) * 1000 < min_interval as i64)
            .max();
        if let Some((_, name)) = recent {
            return Ok((name, false));
        }
        let name = format!("{}-auto-{now}", self.name);
        let mut fo = Failover::new(
            &name,
            FailoverSpec {
                group: self.name.clone(),
                target_cluster: self.group.name_of(self.group.me).to_string(),
                mode: match mode {
                    Mode::Uptime => FailoverMode::Uptime,
                    _ => FailoverMode::Consistency,
                },
                dry_run: false,
            },
        );
        fo.metadata.labels = Some(
            [(AUTOMATIC, "true"), (GROUP, self.name.as_str())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        fo.metadata.annotations = Some([(REASON.to_string(), why.to_string())].into());
        api.create(&PostParams::default(), &fo).await?;
        Ok((name, true))
    }
}

/// The probe's client: the engine's (the one hooks use), HTTP and HTTPS with the
/// system's roots.
fn http_client() -> Option<HttpsClient> {
    failover_engine::k8s::hooks::http_client()
        .map_err(|e| warn!(error = %e, "no HTTP client for the auto-failover probe"))
        .ok()
}

/// One `GET` of the probe's URL: healthy if it answers the expected status in time.
async fn probe(client: &HttpsClient, p: &Probe) -> Result<(), String> {
    let request = http::Request::get(&p.url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{}: {e}", p.url))?;
    match tokio::time::timeout(p.timeout, client.request(request)).await {
        Err(_) => Err(format!(
            "{}: no answer within {} s",
            p.url,
            p.timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("{}: {e}", p.url)),
        Ok(Ok(r)) if r.status().as_u16() == p.expected_status => Ok(()),
        Ok(Ok(r)) => Err(format!(
            "{}: status {} (expected {})",
            p.url,
            r.status().as_u16(),
            p.expected_status
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_engine::spec::{AutoFailoverSpec, FailoverGroupSpec, MembersSpec};
    use http::{Request, Response};
    use kube::client::Body;

    fn group() -> Group {
        let spec = FailoverGroupSpec {
            clusters: vec!["east".into(), "west".into()],
            members: MembersSpec {
                deployments: vec!["web".into()],
                ..MembersSpec::default()
            },
            auto_failover: Some(AutoFailoverSpec {
                enabled: true,
                ..AutoFailoverSpec::default()
            }),
            ..FailoverGroupSpec::default()
        };
        Group::parse("shop", "shop", &spec, "west").expect("group")
    }

    fn task(client: Client) -> AutoTask {
        let (_, view) = watch::channel(View::default());
        AutoTask {
            group: group(),
            name: "shop".into(),
            client,
            view,
            metrics: Arc::new(Metrics::default()),
            problem: None,
            events: (Reporter::from("test"), ObjectReference::default()),
        }
    }

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    async fn answer(
        handle: &mut Handle,
        body: serde_json::Value,
    ) -> (Request<()>, serde_json::Value) {
        let (request, send) = handle.next_request().await.expect("a request");
        let (parts, payload) = request.into_parts();
        let bytes = payload.collect_bytes().await.expect("body");
        let sent = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("response"),
        );
        (Request::from_parts(parts, ()), sent)
    }

    /// Firing lists the group's automatic Failovers, then creates one: its exact
    /// labels, annotation and spec.
    #[tokio::test]
    async fn firing_creates_one_labelled_failover_for_this_cluster() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let task = task(Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let empty = serde_json::json!({"apiVersion": "failover.rs/v1alpha1",
                "kind": "FailoverList", "metadata": {}, "items": []});
            let (list, _) = answer(&mut handle, empty).await;
            let created = serde_json::json!({"apiVersion": "failover.rs/v1alpha1",
                "kind": "Failover", "metadata": {"name": "x", "namespace": "shop"},
                "spec": {"group": "shop", "targetCluster": "west"}});
            let (create, body) = answer(&mut handle, created).await;
            (list, create, body)
        });
        let (name, created) = task
            .fire(Mode::Uptime, "the heartbeat stopped", 600_000)
            .await
            .expect("fired");
        assert!(created);
        assert!(name.starts_with("shop-auto-"), "{name}");
        let (list, create, body) = server.await.expect("server");
        assert_eq!(list.method(), http::Method::GET);
        assert_eq!(
            list.uri().path(),
            "/apis/failover.rs/v1alpha1/namespaces/shop/failovers"
        );
        assert_eq!(
            list.uri().query(),
            Some("&labelSelector=failover.rs%2Fautomatic%3Dtrue%2Cfailover.rs%2Fgroup%3Dshop")
        );
        assert_eq!(create.method(), http::Method::POST);
        assert_eq!(
            create.uri().path(),
            "/apis/failover.rs/v1alpha1/namespaces/shop/failovers"
        );
        assert_eq!(body["metadata"]["name"], name.as_str());
        assert_eq!(body["metadata"]["labels"]["failover.rs/automatic"], "true");
        assert_eq!(body["metadata"]["labels"]["failover.rs/group"], "shop");
        assert_eq!(
            body["metadata"]["annotations"]["failover.rs/reason"],
            "the heartbeat stopped"
        );
        assert_eq!(
            body["spec"],
            serde_json::json!({"group": "shop", "targetCluster": "west", "mode": "Uptime",
                "dryRun": false})
        );
    }

    /// A recent automatic Failover (within minInterval) means no new one, also after a
    /// restart.
    #[tokio::test]
    async fn a_recent_automatic_failover_is_not_created_again() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let task = task(Client::new(service, "default"));
        let now = k8s_openapi::jiff::Timestamp::now();
        let server = tokio::spawn(async move {
            let list = serde_json::json!({"apiVersion": "failover.rs/v1alpha1",
                "kind": "FailoverList", "metadata": {}, "items": [{
                    "apiVersion": "failover.rs/v1alpha1", "kind": "Failover",
                    "metadata": {"name": "shop-auto-1", "namespace": "shop",
                        "creationTimestamp": now.to_string()},
                    "spec": {"group": "shop", "targetCluster": "west"}}]});
            answer(&mut handle, list).await;
            // No second request: a create would wait here for ever.
            handle
        });
        let (name, created) = task
            .fire(Mode::Consistency, "x", 600_000)
            .await
            .expect("listed");
        assert_eq!((name.as_str(), created), ("shop-auto-1", false));
        drop(server);
    }

    /// The probe against a local HTTP server: the expected status is healthy, another
    /// status or no answer in time is a failure that says why.
    #[tokio::test]
    async fn the_probe_judges_status_and_time() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let reply = if head.starts_with("GET /ok ") {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    } else if head.starts_with("GET /down ") {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        // /hang: never answer.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    };
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        let client = http_client().expect("client");
        let probe_of = |path: &str| Probe {
            url: format!("http://127.0.0.1:{port}{path}"),
            expected_status: 200,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(probe(&client, &probe_of("/ok")).await, Ok(()));
        let down = probe(&client, &probe_of("/down")).await.expect_err("503");
        assert!(down.ends_with("status 503 (expected 200)"), "{down}");
        let hung = probe(&client, &probe_of("/hang"))
            .await
            .expect_err("no answer");
        assert!(hung.ends_with("no answer within 1 s"), "{hung}");
        let closed = Probe {
            url: "http://127.0.0.1:1/".into(),
            ..probe_of("/")
        };
        assert!(probe(&client, &closed).await.is_err());
    }
}
