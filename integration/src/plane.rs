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

use crate::dynamodb_container::EndpointError;
use crate::{HarnessError, wait_for};

// DynamoDB Local's container: see `dynamodb_endpoint`.
pub use crate::dynamodb_container::{
    Container as DynamoDbContainer, DYNAMODB_IMAGE, TEST_CONTAINER_LABEL,
    container as dynamodb_container,
};

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

/// The endpoint of DynamoDB Local for the tests of this process: a container
/// testcontainers starts (`FAILOVER_DYNAMODB=container`, or unset when an engine answers),
/// `DYNAMODB_ENDPOINT`, or the instance `scripts/dynamodb-local.sh start` runs; see
/// [`crate::dynamodb_container::endpoint`] for the rules.
///
/// One container serves the whole process (see [`dynamodb_container()`]); a reaper process
/// (`scripts/podman.sh reap`) removes it when the process exits, however it exits.
pub async fn dynamodb_endpoint() -> Result<String, HarnessError> {
    let root = repo_root();
    tokio::task::spawn_blocking(move || {
        crate::dynamodb_container::endpoint(&root, |why| {
            tracing::debug!("no DynamoDB Local container ({why}): starting the process");
        })
    })
    .await
    .map_err(|e| HarnessError::Plane("dynamodb".into(), e.to_string()))?
    .map_err(|e| match e {
        EndpointError::Mode(why) => HarnessError::Invalid(why),
        EndpointError::Failed(why) => HarnessError::Plane("dynamodb".into(), why),
    })
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
        established(client, &name).await?;
    }
    Ok(())
}

/// Waits (up to 30 s) until CRD `name` is established: its resources are served.
pub async fn established(client: &Client, name: &str) -> Result<(), HarnessError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        &format!("CRD {name} to be established"),
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let crd = api.get(name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        },
    )
    .await
}
