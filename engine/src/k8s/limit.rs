//! The client side of the API server's load: a token bucket every request waits on
//! (QPS and burst, like client-go's `rest.Config`), 429 `Retry-After` answers waited
//! out and re-sent, and a count of the requests by verb.
//!
//! [`limited`] wraps a [`Client`]: the returned client sends every request (lists,
//! gets, patches, watch starts, exec upgrades) through the [`Limiter`] and then through
//! the wrapped client's own stack. Clones of it share the bucket, so one limiter bounds
//! every group, watch and controller of an operator process.
//!
//! # 429 Too Many Requests
//!
//! The API server's priority and fairness answers 429 with `Retry-After` (seconds)
//! before it does anything with the request, so re-sending is safe for every verb. A
//! 429 is waited out (the header's seconds, else an exponential back-off from
//! [`FIRST_BACKOFF`], each wait at most [`MAX_WAIT`], with a jitter so that clients
//! that were refused together do not come back together) and re-sent, up to
//! [`RETRIES_429`] times; the last 429 is then returned (the adapter maps it to
//! [`crate::ports::ClusterError::Unavailable`]). The waits never outlast the caller:
//! every call the engine makes runs under a deadline (a step's share of the lease,
//! the observation deadline) that drops the request, waits included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use tokio::time::Instant;

/// Re-sends of one request answered 429 before the 429 is returned.
pub const RETRIES_429: u32 = 4;
/// The first back-off after a 429 without `Retry-After`; it doubles with each retry.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest single wait after a 429 (also caps `Retry-After`).
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The most writes of one step in flight at once, whatever the burst: one API server
/// gains nothing from more (500 Deployments took 1.43 s with 16 at a time and 1.34 s
/// with 100 on the benchmark machine), and each one in flight holds a connection.
pub const MAX_PARALLELISM: usize = 32;

/// The request rate a client keeps to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Requests per second on average (0 or less: unlimited).
    pub qps: f64,
    /// Requests sent at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for Limits {
    /// 50 requests a second, bursts of 100: ten times client-go's defaults (5 and 10,
    /// which would make a step over 1,000 workloads last minutes) and within what one
    /// API server's default priority level serves a single client.
    fn default() -> Self {
        Limits {
            qps: 50.0,
            burst: 100,
        }
    }
}

impl Limits {
    /// How many writes of one step run at once: as many as the bucket lets through
    /// without waiting (its burst; more in flight would only queue in the bucket), at
    /// most [`MAX_PARALLELISM`], at least 1.
    pub fn parallelism(&self) -> usize {
        (self.burst.max(1) as usize).min(MAX_PARALLELISM)
    }
}

/// A token bucket, the counts of what went through it, and how long requests waited.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: Limits,
    bucket: Mutex<Bucket>,
    requests: Mutex<BTreeMap<&'static str, u64>>,
    throttled_micros: AtomicU64,
    retried_429: AtomicU64,
    urgent: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a [`Limiter`] let through so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Requests sent, by verb as the API server names them (`get`, `list`, `watch`,
    /// `create`, `update`, `patch`, `delete`, and `other`), 429 re-sends included.
    pub requests: BTreeMap<&'static str, u64>,
    /// Total time requests waited for a token.
    pub throttled: Duration,
    /// Requests re-sent after a 429.
    pub retried_429: u64,
    /// Requests of urgent work ([`crate::ports::urgent`]) let through without waiting.
    pub urgent: u64,
}

impl Counts {
    /// Every request, whatever its verb.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Every request but watch starts: the calls that read or write.
    pub fn calls(&self) -> u64 {
        self.total() - self.of("watch")
    }

    /// Requests of `verb`.
    pub fn of(&self, verb: &str) -> u64 {
        self.requests.get(verb).copied().unwrap_or(0)
    }

    /// What was sent since `earlier` (a previous snapshot of the same limiter).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            requests: self
                .requests
                .iter()
                .map(|(verb, n)| (*verb, n - earlier.of(verb)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            retried_429: self.retried_429 - earlier.retried_429,
            urgent: self.urgent - earlier.urgent,
        }
    }
}

impl Limiter {
    /// A limiter keeping to `limits`, its bucket full.
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            inner: Arc::new(Inner {
                limits,
                bucket: Mutex::new(Bucket {
                    tokens: f64::from(limits.burst.max(1)),
                    at: Instant::now(),
                }),
                requests: Mutex::new(BTreeMap::new()),
                throttled_micros: AtomicU64::new(0),
                retried_429: AtomicU64::new(0),
                urgent: AtomicU64::new(0),
            }),
        }
    }

    /// The limits it keeps to.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// What went through it so far.
    pub fn counts(&self) -> Counts {
        Counts {
            requests: self
                .inner
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            throttled: Duration::from_micros(self.inner.throttled_micros.load(Ordering::Relaxed)),
            retried_429: self.inner.retried_429.load(Ordering::Relaxed),
            urgent: self.inner.urgent.load(Ordering::Relaxed),
        }
    }

    /// Take a token without waiting (the bucket may go below empty: the next routine
    /// requests wait the longer), for urgent work ([`crate::ports::urgent`]).
    pub fn take(&self) {
        let limits = self.inner.limits;
        if limits.qps <= 0.0 {
            return;
        }
        let mut bucket = self.inner.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let burst = f64::from(limits.burst.max(1));
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * limits.qps;
        bucket.tokens = (bucket.tokens + refill).min(burst) - 1.0;
        bucket.at = now;
    }

    /// Take a token, waiting until one is there. Tokens are handed out in the order
    /// they are asked for: the bucket may go negative, each asker waiting for its own.
    pub async fn acquire(&self) {
        let limits = self.inner.limits;
        if limits.qps <= 0.0 {
            return;
        }
        let wait = {
            let mut bucket = self.inner.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let burst = f64::from(limits.burst.max(1));
            let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * limits.qps;
            bucket.tokens = (bucket.tokens + refill).min(burst);
            bucket.at = now;
            bucket.tokens -= 1.0;
            if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / limits.qps)
            }
        };
        if !wait.is_zero() {
            self.inner
                .throttled_micros
                .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    fn count(&self, verb: &'static str) {
        *self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(verb)
            .or_default() += 1;
    }

    /// Send `request` through `client`, keeping to the limits and waiting out 429s.
    pub async fn send(
        &self,
        client: &Client,
        request: Request<Body>,
    ) -> Result<Response<Body>, kube::Error> {
        let verb = verb(&request);
        let mut request = request;
        let mut retry = 0;
        loop {
            // A copy to re-send if the server asks to come back (a streamed body has
            // none: its 429 is returned as it is).
            let again = copy(&request);
            if crate::ports::is_urgent() {
                self.take();
                self.inner.urgent.fetch_add(1, Ordering::Relaxed);
            } else {
                self.acquire().await;
            }
            self.count(verb);
            let response = client.send(request).await?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS || retry >= RETRIES_429 {
                return Ok(response);
            }
            let Some(again) = again else {
                return Ok(response);
            };
            let wait = retry_after(&response).unwrap_or(FIRST_BACKOFF * 2u32.pow(retry));
            let wait = jitter(wait.min(MAX_WAIT));
            tracing::debug!(verb, wait_ms = wait.as_millis() as u64, "HTTP 429: waiting");
            self.inner.retried_429.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            request = again;
            retry += 1;
        }
    }
}

/// `client` with every request sent through a new [`Limiter`] keeping to `limits`; the
/// limiter is returned too, for its [`Counts`].
pub fn limited(client: Client, limits: Limits) -> (Client, Limiter) {
    let limiter = Limiter::new(limits);
    let namespace = client.default_namespace().to_string();
    let valid_until = *client.valid_until();
    let service = {
        let limiter = limiter.clone();
        tower::service_fn(move |request: Request<Body>| {
            let (limiter, client) = (limiter.clone(), client.clone());
            async move { limiter.send(&client, request).await }
        })
    };
    let client = Client::new(service, namespace).with_valid_until(valid_until);
    (client, limiter)
}

/// The verb of a request, as the API server's metrics name it.
fn verb(request: &Request<Body>) -> &'static str {
    let query = request.uri().query().unwrap_or("");
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    match *request.method() {
        http::Method::GET if watch => "watch",
        http::Method::GET if is_collection(request.uri().path()) => "list",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// A path naming a collection (`/api/v1/namespaces/ns/pods`) rather than one object
/// (`…/pods/web`, `…/pods/web/status`): resource paths alternate type and name after
/// the group version, and a namespaced one starts with `namespaces/<ns>`.
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Skip `api/v1` or `apis/<group>/<version>`.
    let rest = match parts.first() {
        Some(&"api") => &parts[parts.len().min(2)..],
        Some(&"apis") => &parts[parts.len().min(3)..],
        _ => return false,
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    rest.len() == 1
}

/// A copy of `request` to re-send, if its body can be copied.
fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut out = Request::new(body);
    *out.method_mut() = request.method().clone();
    *out.uri_mut() = request.uri().clone();
    *out.version_mut() = request.version();
    *out.headers_mut() = request.headers().clone();
    *out.extensions_mut() = request.extensions().clone();
    Some(out)
}

/// The `Retry-After` of a response, in seconds (the API server sends whole seconds).
fn retry_after(response: &Response<Body>) -> Option<Duration> {
    let value = response.headers().get(http::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// `wait` stretched by up to a fifth, from the clock's low bits (no randomness source
/// needed: clients refused together still read different nanoseconds).
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait + wait.mul_f64(f64::from(nanos % 1000) / 5000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, uri: &str) -> Request<Body> {
        let mut r = Request::new(Body::empty());
        *r.method_mut() = method;
        *r.uri_mut() = uri.parse().expect("uri");
        r
    }

    #[test]
    fn names_verbs_like_the_api_server() {
        let get = http::Method::GET;
        let cases = [
            (
                get.clone(),
                "/apis/apps/v1/namespaces/shop/deployments",
                "list",
            ),
            (
                get.clone(),
                "/apis/apps/v1/namespaces/shop/deployments?labelSelector=a%3Db",
                "list",
            ),
            (
                get.clone(),
                "/apis/apps/v1/namespaces/shop/deployments/web",
                "get",
            ),
            (
                get.clone(),
                "/apis/apps/v1/namespaces/shop/deployments?watch=true&resourceVersion=5",
                "watch",
            ),
            (get.clone(), "/api/v1/namespaces/kube-system", "get"),
            (get.clone(), "/api/v1/namespaces", "list"),
            (get.clone(), "/apis/apps/v1/deployments", "list"),
            (
                http::Method::PATCH,
                "/apis/apps/v1/namespaces/shop/deployments/web/scale",
                "patch",
            ),
            (
                http::Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
                "update",
            ),
            (
                http::Method::POST,
                "/api/v1/namespaces/shop/events",
                "create",
            ),
        ];
        for (method, uri, want) in cases {
            assert_eq!(verb(&request(method, uri)), want, "{uri}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_paces_at_the_rate() {
        let limiter = Limiter::new(Limits {
            qps: 10.0,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst waits for nothing"
        );
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_millis(999) && paced <= Duration::from_millis(1001),
            "10 more at 10/s take a second, took {paced:?}"
        );
        // Each of the ten waited 100 ms for its own token.
        assert_eq!(limiter.counts().throttled, Duration::from_secs(1));
        // A quiet spell refills the bucket, up to the burst only.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let again = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(again.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(again.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_askers_are_served_in_turn_at_the_rate() {
        let limiter = Limiter::new(Limits {
            qps: 100.0,
            burst: 1,
        });
        let start = Instant::now();
        let waits = futures::future::join_all((0..50).map(|_| {
            let limiter = limiter.clone();
            async move {
                limiter.acquire().await;
                start.elapsed()
            }
        }))
        .await;
        let last = waits.iter().max().copied().unwrap_or_default();
        assert_eq!(
            last,
            Duration::from_millis(490),
            "49 waits of 10 ms after the first"
        );
    }

    /// A server that answers each request in turn with `answers`, noting when each
    /// came and its body.
    fn server(
        answers: Vec<(u16, Option<&'static str>)>,
    ) -> (Client, tokio::task::JoinHandle<Vec<(Duration, String)>>) {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, retry_after) in answers {
                let Some((request, reply)) = handle.next_request().await else {
                    break;
                };
                let body = request.into_body().collect_bytes().await.expect("body");
                seen.push((start.elapsed(), String::from_utf8_lossy(&body).to_string()));
                let mut response = Response::builder().status(status);
                if let Some(seconds) = retry_after {
                    response = response.header("Retry-After", seconds);
                }
                let body = if status == 200 {
                    r#"{"ok":true}"#.to_string()
                } else {
                    format!(
                        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","reason":"TooManyRequests","code":{status}}}"#
                    )
                };
                reply.send_response(
                    response
                        .body(Body::from(body.into_bytes()))
                        .expect("response"),
                );
            }
            seen
        });
        (client, task)
    }

    fn patch() -> Request<Vec<u8>> {
        let mut r = Request::new(br#"{"spec":{"replicas":0}}"#.to_vec());
        *r.method_mut() = http::Method::PATCH;
        *r.uri_mut() = "/apis/apps/v1/namespaces/shop/deployments/web/scale"
            .parse()
            .expect("uri");
        r
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_waited_out_as_retry_after_says_and_sent_again() {
        let (client, server) = server(vec![(429, Some("1")), (429, None), (200, None)]);
        let (client, limiter) = limited(client, Limits::default());
        let answer = client.request_text(patch()).await.expect("the third try");
        assert_eq!(answer, r#"{"ok":true}"#);
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter()
                .all(|(_, body)| body == r#"{"spec":{"replicas":0}}"#)
        );
        // Retry-After: 1 s (plus up to a fifth); then the back-off's 200 ms.
        let first = seen[1].0 - seen[0].0;
        assert!(
            first >= Duration::from_secs(1) && first <= Duration::from_millis(1200),
            "{first:?}"
        );
        let second = seen[2].0 - seen[1].0;
        assert!(
            second >= Duration::from_millis(200) && second <= Duration::from_millis(240),
            "{second:?}"
        );
        let counts = limiter.counts();
        assert_eq!(counts.of("patch"), 3);
        assert_eq!(counts.retried_429, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_keeps_refusing_gets_its_429_returned() {
        let answers = vec![(429, Some("30")); RETRIES_429 as usize + 1];
        let (client, server) = server(answers);
        let (client, limiter) = limited(client, Limits::default());
        let start = Instant::now();
        let err = client.request_text(patch()).await.expect_err("refused");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 429),
            "{err:?}"
        );
        // Retry-After 30 s is capped at MAX_WAIT (plus jitter) per retry.
        let waited = start.elapsed();
        assert!(
            waited >= MAX_WAIT * RETRIES_429 && waited <= MAX_WAIT.mul_f64(1.2) * RETRIES_429,
            "{waited:?}"
        );
        assert_eq!(
            server.await.expect("server").len(),
            RETRIES_429 as usize + 1
        );
        assert_eq!(limiter.counts().retried_429, u64::from(RETRIES_429));
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_work_goes_past_a_queue_of_routine_requests() {
        let (client, server) = server(vec![(200, None); 30]);
        let (client, limiter) = limited(
            client,
            Limits {
                qps: 10.0,
                burst: 5,
            },
        );
        // Twenty routine requests: the burst, then one every 100 ms (1.5 s of queue).
        let routine: Vec<_> = (0..20)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.request_text(patch()).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let start = Instant::now();
        let fence = crate::ports::urgent(async {
            let first = client.request_text(patch()).await;
            let second = client.request_text(patch()).await;
            (first, second)
        })
        .await;
        assert!(fence.0.is_ok() && fence.1.is_ok());
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the fence waited for no token"
        );
        // The urgent two still count against the rate: a routine request asked now
        // waits behind the fifteen queued and the two urgent ones.
        client
            .request_text(patch())
            .await
            .expect("the next routine request");
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(1800 - 10),
            "its own, the two urgent and the fifteen queued: 18 tokens at 10/s"
        );
        for r in routine {
            r.await.expect("task").expect("routine request");
        }
        let counts = limiter.counts();
        assert_eq!(counts.urgent, 2);
        assert_eq!(counts.of("patch"), 23);
        drop(server);
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_waits_for_nothing() {
        let limiter = Limiter::new(Limits { qps: 0.0, burst: 1 });
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(Limits::default().parallelism(), MAX_PARALLELISM);
        assert_eq!(
            Limits {
                qps: 5.0,
                burst: 10
            }
            .parallelism(),
            10
        );
    }
}
