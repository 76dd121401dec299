//! The protocol core stays pure: no IO, no async, no clock, no randomness, no
//! Kubernetes or AWS types. This test scans its sources for the ways those get in.

use std::fs;
use std::path::Path;

const FORBIDDEN: [&str; 14] = [
    "std::time",
    "Instant",
    "SystemTime",
    "std::fs",
    "std::net",
    "std::io",
    "std::thread",
    "std::env",
    "async fn",
    ".await",
    "rand::",
    "tokio",
    "kube::",
    "aws_",
];

#[test]
fn protocol_core_has_no_io_async_clock_or_randomness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut scanned = 0;
    for entry in fs::read_dir(&dir).expect("src/core exists") {
        let path = entry.expect("readable entry").path();
        let text = fs::read_to_string(&path).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                assert!(
                    !code.contains(word),
                    "{}:{}: `{word}` in the pure core: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
        scanned += 1;
    }
    assert!(scanned >= 6, "scanned {scanned} files");
}

#[test]
fn model_crate_depends_only_on_stateright() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("readable manifest");
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split('.').next().or(l.split('=').next()))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(deps, vec!["stateright"]);
}
