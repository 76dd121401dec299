//! Which clusters, namespace and table a command works on: the command line, else the
//! config file, else defaults; and the clients for them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use failover_engine::dynamo::DynamoStore;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

use crate::{Failure, Global};

/// The config file (`--config`, `$KUBECTL_FAILOVER_CONFIG`, or
/// `~/.config/kubectl-failover/config.yaml` when it exists).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// The groups' namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The DynamoDB table.
    #[serde(default)]
    pub table: Option<String>,
    /// A DynamoDB endpoint (DynamoDB Local).
    #[serde(default)]
    pub dynamodb_endpoint: Option<String>,
    /// The table's AWS region.
    #[serde(default)]
    pub region: Option<String>,
    /// The two clusters.
    #[serde(default)]
    pub clusters: Vec<ClusterEntry>,
}

/// One cluster of the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterEntry {
    /// Its name, as the groups' `spec.clusters` lists it.
    pub name: String,
    /// The kubeconfig context (default: the context named as the cluster).
    #[serde(default)]
    pub context: Option<String>,
    /// The kubeconfig file (default: `--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

/// A cluster as a command reaches it.
#[derive(Clone)]
pub struct Site {
    /// Its name in the groups.
    pub name: String,
    /// Where it was configured (`context east-admin of ~/.kube/config`).
    pub origin: String,
    /// Its client, or why there is none.
    pub client: Result<kube::Client, String>,
    /// The namespace of its kubeconfig context, if set.
    pub context_namespace: Option<String>,
}

/// Everything a command needs to reach the clusters and the record.
pub struct Context {
    /// The clusters, in the order configured.
    pub sites: Vec<Site>,
    /// The groups' namespace.
    pub namespace: String,
    /// The DynamoDB table.
    pub table: String,
    /// The DynamoDB endpoint, if not AWS's.
    pub endpoint: Option<String>,
    /// The region, if given.
    pub region: Option<String>,
    /// Time allowed per call.
    pub timeout: Duration,
}

impl Context {
    /// Resolve `global`: read the config file, build a client per cluster (a cluster
    /// whose kubeconfig cannot be used is kept with the reason, so commands can say so).
    pub async fn new(global: &Global) -> Result<Context, Failure> {
        let file = read_config(global.config.as_deref())?;
        let entries = if global.clusters.is_empty() {
            file.clusters.clone()
        } else {
            global
                .clusters
                .iter()
                .map(|c| parse_cluster_flag(c))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Failure::usage(format!(
                "a cluster is named twice in {names:?}: name each of the two clusters once"
            )));
        }
        let timeout = Duration::from_secs(global.request_timeout.max(1));
        let mut sites = Vec::new();
        for entry in &entries {
            sites.push(site(entry, global.kubeconfig.as_deref(), timeout).await);
        }
        let namespace = global
            .namespace
            .clone()
            .or(file.namespace.clone())
            .or_else(|| sites.iter().find_map(|s| s.context_namespace.clone()))
            .unwrap_or_else(|| "default".to_string());
        Ok(Context {
            sites,
            namespace,
            table: global
                .table
                .clone()
                .or(file.table)
                .unwrap_or_else(|| "failover".to_string()),
            endpoint: global.dynamodb_endpoint.clone().or(file.dynamodb_endpoint),
            region: global.region.clone().or(file.region),
            timeout,
        })
    }

    /// The clusters must be named (commands that read the groups).
    pub fn require_sites(&self) -> Result<(), Failure> {
        if self.sites.is_empty() {
            return Err(Failure::usage(
                "no cluster named: give --cluster NAME=CONTEXT for each of the two clusters, \
                 or a config file (--config; see --help)",
            ));
        }
        Ok(())
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Result<&Site, Failure> {
        self.sites.iter().find(|s| s.name == name).ok_or_else(|| {
            Failure::usage(format!(
                "cluster {name:?} is not configured (configured: {:?}); add --cluster \
                 {name}=CONTEXT",
                self.sites.iter().map(|s| &s.name).collect::<Vec<_>>()
            ))
        })
    }

    /// A DynamoDB client: the endpoint's, else from the AWS SDK's configuration.
    pub async fn dynamo_client(&self) -> aws_sdk_dynamodb::Client {
        failover_engine::dynamo::client(self.endpoint.as_deref(), self.region.as_deref()).await
    }

    /// The store of the records.
    pub async fn store(&self) -> DynamoStore {
        DynamoStore::new(self.dynamo_client().await, self.table.clone())
    }

    /// Where the records are read from, in words.
    pub fn table_words(&self) -> String {
        match &self.endpoint {
            Some(url) => format!("DynamoDB table {} at {url}", self.table),
            None => format!("DynamoDB table {}", self.table),
        }
    }

    /// `call` within the per-call time.
    pub async fn bounded<T, E: std::fmt::Display>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

/// `NAME=CONTEXT` or `NAME`.
pub fn parse_cluster_flag(flag: &str) -> Result<ClusterEntry, Failure> {
    let (name, context) = match flag.split_once('=') {
        Some((name, context)) => (name, Some(context.to_string())),
        None => (flag, None),
    };
    if name.is_empty() || context.as_deref() == Some("") {
        return Err(Failure::usage(format!(
            "--cluster {flag:?}: give NAME=CONTEXT (or NAME for the context named NAME)"
        )));
    }
    Ok(ClusterEntry {
        name: name.to_string(),
        context,
        kubeconfig: None,
    })
}

/// The config file: the one named, else the default one if it exists, else empty.
pub fn read_config(path: Option<&Path>) -> Result<FileConfig, Failure> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
            match base {
                Some(b) => (b.join("kubectl-failover").join("config.yaml"), false),
                None => return Ok(FileConfig::default()),
            }
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    serde_saphyr::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "the config file {} is not valid: {e} (see --help for its form)",
            path.display()
        ))
    })
}

/// A client for `entry`.
async fn site(entry: &ClusterEntry, kubeconfig: Option<&Path>, timeout: Duration) -> Site {
    let file = entry.kubeconfig.as_deref().or(kubeconfig);
    let context = entry.context.clone().unwrap_or_else(|| entry.name.clone());
    let origin = match file {
        Some(f) => format!("context {context} of {}", f.display()),
        None => format!("context {context}"),
    };
    let read = match file {
        Some(f) => Kubeconfig::read_from(f),
        None => Kubeconfig::read(),
    };
    let kc = match read {
        Ok(kc) => kc,
        Err(e) => {
            return Site {
                name: entry.name.clone(),
                origin,
                client: Err(format!("cannot read the kubeconfig: {e}")),
                context_namespace: None,
            };
        }
    };
    let context_namespace = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref()?.namespace.clone());
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let client = match kube::Config::from_custom_kubeconfig(kc, &options).await {
        Ok(mut config) => {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            kube::Client::try_from(config).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{origin}: {e}")),
    };
    Site {
        name: entry.name.clone(),
        origin,
        client,
        context_namespace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_flags_name_a_context_or_themselves() {
        let e = parse_cluster_flag("east=admin@east").expect("valid");
        assert_eq!(e.name, "east");
        assert_eq!(e.context.as_deref(), Some("admin@east"));
        let e = parse_cluster_flag("west").expect("valid");
        assert_eq!((e.name.as_str(), e.context), ("west", None));
        assert!(parse_cluster_flag("=x").is_err());
        assert!(parse_cluster_flag("east=").is_err());
    }

    #[test]
    fn the_config_file_names_clusters_and_table() {
        let dir = std::env::temp_dir().join(format!("kf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config.yaml");
        std::fs::write(
            &path,
            "namespace: shop\ntable: records\nclusters:\n  - {name: east, context: e}\n  \
             - name: west\n    kubeconfig: /tmp/west.yaml\n",
        )
        .expect("write");
        let c = read_config(Some(&path)).expect("parses");
        assert_eq!(c.namespace.as_deref(), Some("shop"));
        assert_eq!(c.table.as_deref(), Some("records"));
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.clusters[0].context.as_deref(), Some("e"));
        assert_eq!(
            c.clusters[1].kubeconfig.as_deref(),
            Some(Path::new("/tmp/west.yaml"))
        );
        std::fs::write(&path, "clusterz: []\n").expect("write");
        let err = read_config(Some(&path)).expect_err("unknown field");
        assert!(err.message.contains("not valid"), "{}", err.message);
        assert!(read_config(Some(&dir.join("absent.yaml"))).is_err());
    }
}
