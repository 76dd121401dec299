//! The committed CRDs (`deploy/crds/crds.yaml`) are byte for byte what the Rust types
//! generate and what `kubectl-failover crds` prints, and they parse back into the same
//! definitions.

use failover_cli::Output;
use failover_cli::commands::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds/crds.yaml");

#[test]
fn committed_crds_are_what_the_types_generate() {
    let generated = crds(Output::Yaml).expect("generated");
    let committed = std::fs::read_to_string(COMMITTED).expect("deploy/crds/crds.yaml");
    assert!(
        committed == generated,
        "deploy/crds/crds.yaml differs from what the Rust types generate; regenerate it: \
         cargo run -p failover-cli -- crds > deploy/crds/crds.yaml"
    );
}

#[test]
fn the_plugin_prints_the_committed_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-failover"))
        .arg("crds")
        .output()
        .expect("run kubectl-failover crds");
    assert!(out.status.success());
    let committed = std::fs::read(COMMITTED).expect("deploy/crds/crds.yaml");
    assert!(
        out.stdout == committed,
        "`kubectl-failover crds` differs from the file"
    );
}

#[test]
fn the_yaml_parses_back_into_the_same_definitions() {
    use kube::CustomResourceExt;
    let text = std::fs::read_to_string(COMMITTED).expect("deploy/crds/crds.yaml");
    let docs: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&text).expect("the YAML parses as CRDs");
    let expected = [
        failover_engine::spec::FailoverGroup::crd(),
        failover_engine::spec::Failover::crd(),
    ];
    assert_eq!(docs.len(), 2);
    for (doc, want) in docs.iter().zip(expected) {
        assert_eq!(
            serde_json::to_value(doc).expect("json"),
            serde_json::to_value(&want).expect("json"),
            "{} does not round-trip",
            want.metadata.name.clone().unwrap_or_default()
        );
    }
}
