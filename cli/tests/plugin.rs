//! `kubectl failover ...` works when `kubectl-failover` is on PATH: kubectl's plugin
//! mechanism finds it and hands it the arguments (`scripts/test.sh` installs kubectl
//! where it is missing).

use std::path::Path;
use std::process::Command;

#[test]
fn kubectl_runs_the_plugin_from_path() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-failover"));
    let dir = bin.parent().expect("the binary's directory");
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let out = Command::new("kubectl")
        .args(["failover", "--help"])
        .env("PATH", &path)
        .output()
        .expect("kubectl is installed (scripts/test.sh installs kubernetes-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: kubectl failover"), "{help}");
    for command in [
        "status",
        "request",
        "abort",
        "retry",
        "resolve",
        "history",
        "dry-run",
        "crds",
        "create-table",
        "recreate-record",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`kubectl failover --help` does not list {command}:\n{help}"
        );
    }
    // Arguments and the exit code pass through kubectl: a usage error is 3.
    let out = Command::new("kubectl")
        .args(["failover", "request"])
        .env("PATH", &path)
        .output()
        .expect("kubectl");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
