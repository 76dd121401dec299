//! `kubectl-failover` as a process against the two real control planes, DynamoDB Local
//! and the real operator (two processes, one per cluster): what each command prints and
//! its exit code, in one story that holds a failover in needs-operator (a volume that
//! never reports its new role) so that status is read during a running failover.
//!
//! Needs `DYNAMODB_ENDPOINT`, `FAILOVER_KUBECONFIG_EAST` and `FAILOVER_KUBECONFIG_WEST`
//! (`scripts/test.sh` starts them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use failover_engine::dynamo::{create_table, local_client};
use failover_engine::timeline::elements;
use failover_integration::operators::{
    CLUSTERS, Launcher, Site, operator_args_from_env, site_with, spec, start_operator, wait_active,
};
use failover_integration::plane::{dynamodb_endpoint, unique_name};
use serde_json::{Value, json};

/// Not a test: the operator's entry point when this binary is re-executed as one
/// (`Launcher::Reexec`).
#[test]
#[ignore = "the operator process's entry point, run by re-executing this binary"]
fn operator_process() {
    if let Some(args) = operator_args_from_env() {
        failover_operator::run::exit_with(
            std::iter::once("failover-operator".to_string()).chain(args),
        );
    }
}

fn launcher() -> Launcher {
    Launcher::Reexec("operator_process".into())
}

/// Run the plugin with `config`; its output (stdin: `input`).
fn cli(config: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-failover"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-failover");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("kubectl-failover ends");
    eprintln!(
        "$ kubectl failover {}\n{}{}(exit {:?})",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The status document of the group.
fn status_json(config: &Path) -> Value {
    let out = cli(config, &["status", "shop", "-o", "json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let all: Value = serde_json::from_slice(&out.stdout).expect("status -o json is JSON");
    all[0].clone()
}

/// Make `site`'s VolumeReplication keep its reported role (a stuck driver), or fix it.
async fn stick_volume(site: &Site, stuck: bool) {
    let ns = &site.objects[0].namespace;
    failover_integration::agents::stick_volume(&site.plane.client, ns, stuck).await;
}

/// The config file naming both planes (`west` optionally through a server that does
/// not answer).
fn write_config(
    dir: &Path,
    ns: &str,
    table: &str,
    endpoint: &str,
    sites: &[Site; 2],
    west_down: bool,
) -> PathBuf {
    let west = if west_down {
        let text = std::fs::read_to_string(&sites[1].plane.kubeconfig).expect("kubeconfig");
        let broken: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("server:") {
                    "    server: https://127.0.0.1:9".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.join("west-down.kubeconfig");
        std::fs::write(&path, broken).expect("write");
        path
    } else {
        sites[1].plane.kubeconfig.clone()
    };
    let config = format!(
        "namespace: {ns}\ntable: {table}\ndynamodbEndpoint: {endpoint}\nclusters:\n  \
         - name: east\n    kubeconfig: {}\n  - name: west\n    kubeconfig: {}\n",
        sites[0].plane.kubeconfig.display(),
        west.display()
    );
    let path = dir.join(if west_down {
        "config-west-down.yaml"
    } else {
        "config.yaml"
    });
    std::fs::write(&path, config).expect("write the config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_request_wait_actions_history_and_exit_codes_on_real_clusters() {
    let ns = unique_name("cli");
    // Short deadlines (step 2 s, stage 6 s) so a stuck volume is flagged quickly.
    let mut spec = spec();
    spec.step_timeout_seconds = Some(2);
    if let Some(t) = spec.timing.as_mut() {
        t.stage_deadline_seconds = Some(6);
    }
    let sites = [
        site_with(CLUSTERS[0], &ns, true, spec.clone()).await,
        site_with(CLUSTERS[1], &ns, false, spec).await,
    ];
    let endpoint = dynamodb_endpoint().await.expect("DynamoDB Local");
    let table = unique_name("failover");
    create_table(&local_client(&endpoint).await, &table)
        .await
        .expect("table");
    let procs: Vec<_> = sites
        .iter()
        .map(|s| start_operator(&launcher(), &s.plane, &ns, &table, &endpoint, 0))
        .collect();
    let logs: Vec<PathBuf> = procs.iter().map(|p| p.log.clone()).collect();
    for site in &sites {
        wait_active(site, &ns, "east", &logs).await;
    }
    let dir = std::env::temp_dir().join(&ns);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = write_config(&dir, &ns, &table, &endpoint, &sites, false);

    // At rest: east active, both clusters reachable, nothing in flight.
    let out = cli(&config, &["status", "shop"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let s = text(&out);
    assert!(s.contains(&format!("GROUP {ns}/shop   active east")), "{s}");
    assert!(s.contains("failover   none in flight"), "{s}");
    assert!(!s.contains("UNREACHABLE"), "{s}");
    let doc = status_json(&config);
    assert_eq!(doc["active"], "east");
    assert!(
        doc["clusters"][0]["leaseLeftSeconds"]
            .as_f64()
            .is_some_and(|l| l > 0.0)
    );

    // The plan of a failover to west, per cluster, from the adapter's patch planning;
    // nothing changes.
    let out = cli(&config, &["dry-run", "shop", "--to", "west"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let s = text(&out);
    assert!(
        s.contains("# east: the source of a consistency failover"),
        "{s}"
    );
    assert!(
        s.contains("# west: the target of a consistency failover"),
        "{s}"
    );
    assert!(
        s.contains("spec.replicationState: primary -> secondary"),
        "{s}"
    );
    assert!(
        s.contains("spec.replicationState: secondary -> primary"),
        "{s}"
    );
    let out = cli(
        &config,
        &["dry-run", "shop", "--to", "west", "-o", "yaml"],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let plans: Value = serde_saphyr::from_str(&text(&out)).expect("dry-run -o yaml is YAML");
    assert_eq!(plans[1]["cluster"], "west");
    assert_eq!(plans[1]["role"], "target");
    assert_eq!(
        status_json(&config)["active"],
        "east",
        "a dry run changes nothing"
    );

    // The table: created once more (idempotent); the record exists, so re-creating it
    // is refused.
    let out = cli(&config, &["create-table"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert_eq!(text(&out), format!("table {table} ready\n"));
    let out = cli(&config, &["recreate-record", "shop"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("not re-created"), "{}", err(&out));

    // A consistency failover to west, followed: stdout is not a terminal, so
    // timestamped lines; exit 0.
    let out = cli(
        &config,
        &[
            "request",
            "shop",
            "--to",
            "west",
            "--wait",
            "--timeout",
            "150",
        ],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}; logs {logs:?}",
        text(&out),
        err(&out)
    );
    let s = text(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[0].contains("created in west: consistency failover of"),
        "{s}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.len() > 24 && l.as_bytes()[4] == b'-' && &l[10..11] == "T"),
        "every line starts with its RFC 3339 time:\n{s}"
    );
    for expected in [
        "phase Running",
        "stage source-preparation",
        "stage volume-promotion",
        "phase Completed",
        "outcome completed-consistency",
        "done: completed-consistency after",
    ] {
        assert!(s.contains(expected), "{expected:?} missing:\n{s}");
    }
    assert!(
        !s.contains('\u{1b}'),
        "no terminal escapes when not a terminal:\n{s}"
    );
    wait_active(&sites[0], &ns, "west", &logs).await;

    // History: who asked (west, the Failover object), when, the stages.
    let out = cli(&config, &["history", "shop"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let s = text(&out);
    let row = s.lines().nth(1).expect("a row");
    for cell in [
        "consistency",
        "completed-consistency",
        "west (tester (kubectl-failover), Failover shop-to-west-",
        "initialization",
        "volume-promotion",
        "target-activation",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row}");
    }

    // Back to east with east's volume stuck: needs-operator, exit 2.
    stick_volume(&sites[0], true).await;
    let out = cli(
        &config,
        &[
            "request",
            "shop",
            "--to",
            "east",
            "--wait",
            "--timeout",
            "150",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}{}", text(&out), err(&out));
    assert!(
        text(&out).contains("needs an operator after"),
        "{}",
        text(&out)
    );

    // Status during the running failover: in flight, its stage and step, flagged.
    let out = cli(&config, &["status", "shop"], "");
    let s = text(&out);
    assert!(
        s.contains("failover   ") && s.contains("consistency west → east"),
        "{s}"
    );
    assert!(s.contains("stage volume-promotion"), "{s}");
    assert!(s.contains("NEEDS OPERATOR"), "{s}");
    let doc = status_json(&config);
    assert_eq!(doc["failover"]["needsOperator"], true);
    assert_eq!(doc["failover"]["target"], "east");
    assert_eq!(doc["lockHolder"], "east");

    // Another request meanwhile is refused: exit 1.
    let out = cli(
        &config,
        &[
            "request",
            "shop",
            "--to",
            "west",
            "--in",
            "west",
            "--wait",
            "--timeout",
            "150",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out), err(&out));
    assert!(text(&out).contains("Refused"), "{}", text(&out));

    // A person's actions: abort is refused after the promotion (exit 1); retry asks
    // first (no: exit 1, nothing done), then with --yes (exit 0).
    let out = cli(&config, &["abort", "shop", "--yes"], "");
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("two primaries"), "{}", err(&out));
    let out = cli(&config, &["retry", "shop"], "n\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not done"), "{}", text(&out));
    assert!(err(&out).contains("retry it? [y/N]"), "{}", err(&out));
    let out = cli(&config, &["retry", "shop"], "y\n");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert!(text(&out).contains("done (token"), "{}", text(&out));

    // The volume fixed, the failover completes by itself.
    stick_volume(&sites[0], false).await;
    wait_active(&sites[1], &ns, "east", &logs).await;
    let out = cli(&config, &["history", "shop", "-o", "json"], "");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("history -o json");
    assert_eq!(rows[0]["outcome"], "completed-consistency", "{rows}");
    assert_eq!(rows[0]["mode"], "consistency");
    assert_eq!(
        rows[0]["events"],
        json!(["needs-operator at volume-promotion", "retry asked"]),
        "{rows}"
    );
    let stuck_id = rows[0]["id"].as_str().expect("an id").to_string();

    // On a terminal (a pseudo-terminal from `script`): the live view, redrawn in place
    // with a line per stage and a bar; an uptime failover to west.
    let command = format!(
        "{} --config {} request shop --to west --mode uptime --wait --timeout 150",
        env!("CARGO_BIN_EXE_kubectl-failover"),
        config.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("USER", "tester")
        .output()
        .expect("script (bsdutils)");
    let s = text(&out);
    eprintln!("$ script -qec 'kubectl failover request shop --to west --mode uptime --wait'\n{s}");
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(
        s.contains("\u{1b}[") && s.contains("\u{1b}[J"),
        "redrawn in place:\n{s}"
    );
    for expected in [
        "✔ initialization",
        "✔ target-activation",
        "✔ completion",
        "] ",
        "Completed: completed-uptime",
    ] {
        assert!(s.contains(expected), "{expected:?} missing:\n{s}");
    }
    wait_active(&sites[0], &ns, "west", &logs).await;

    // Issue 17: the timelines of real failovers, from the record's history and the
    // operators' Events. The uptime failover (the newest): each cluster's stages, the
    // overlap the mode accepts and none other, the history item, the operators' Events.
    let page = dir.join("uptime.html");
    let out = cli(
        &config,
        &[
            "history",
            "shop",
            "--timeline",
            page.to_str().expect("utf-8"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert!(text(&out).contains("drawn to"), "{}", text(&out));
    let els = elements(&std::fs::read_to_string(&page).expect("the page"));
    let of = |kind: &'static str| els.iter().filter(move |e| e["data-kind"] == kind);
    let stages = |c: &str| -> Vec<String> {
        of("stage")
            .filter(|e| e["data-cluster"] == c)
            .map(|e| e["data-label"].clone())
            .collect()
    };
    assert!(
        stages("east").contains(&"initialization".to_string()),
        "{els:?}"
    );
    assert!(
        stages("west").contains(&"target-activation".to_string()),
        "{els:?}"
    );
    assert!(
        of("overlap").any(|e| e["data-overlap"] == "two-primaries"),
        "the uptime window: {els:?}"
    );
    assert!(
        of("overlap").all(|e| e["data-accepted"] == "true"),
        "{els:?}"
    );
    assert!(of("record-mark").any(|e| e["data-label"] == "history: completed-uptime"));
    assert!(
        of("mark").any(|e| e["data-label"] == "StageStarted"),
        "the operators' Events: {els:?}"
    );
    // The consistency failover that needed an operator, by its id, as SVG: its stuck
    // mark and the person's retry in the record lane, no overlap.
    let picture = dir.join("stuck.svg");
    let out = cli(
        &config,
        &[
            "history",
            "shop",
            "--timeline",
            picture.to_str().expect("utf-8"),
            "--failover",
            &stuck_id[..8],
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let doc = std::fs::read_to_string(&picture).expect("the picture");
    assert!(doc.starts_with("<svg"), "an SVG");
    let els = elements(&doc);
    let marks: Vec<&String> = els
        .iter()
        .filter(|e| e["data-kind"] == "record-mark")
        .map(|e| &e["data-label"])
        .collect();
    assert!(marks.iter().any(|m| m.ends_with(": stuck")), "{marks:?}");
    assert!(marks.iter().any(|m| m.ends_with(": retry")), "{marks:?}");
    assert!(!els.iter().any(|e| e["data-kind"] == "overlap"), "{els:?}");
    let out = cli(
        &config,
        &[
            "history",
            "shop",
            "--timeline",
            "x.html",
            "--failover",
            "ffff",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert!(err(&out).contains("no ended failover"), "{}", err(&out));

    // West unreachable: status still answers from east and the record, and says so.
    let down = write_config(&dir, &ns, &table, &endpoint, &sites, true);
    let out = cli(&down, &["--request-timeout", "2", "status", "shop"], "");
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let s = text(&out);
    assert!(s.contains("active west"), "{s}");
    let west = s
        .lines()
        .find(|l| l.trim_start().starts_with("west "))
        .expect("west's row");
    assert!(west.contains("UNREACHABLE"), "{west}");
    assert!(s.contains("west: unreachable:"), "{s}");

    // Usage and connection errors: exit 3, saying what to do.
    let out = cli(&config, &["request", "shop", "--to", "nowhere"], "");
    assert_eq!(out.status.code(), Some(3));
    assert!(err(&out).contains("is not a cluster of"), "{}", err(&out));
    let out = cli(&config, &["status", "--bogus"], "");
    assert_eq!(out.status.code(), Some(3));
    let out = cli(&config, &["status", "no-such-group"], "");
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    let mut only_down = down.clone();
    only_down.set_file_name("config-only-down.yaml");
    let both_down = std::fs::read_to_string(&down)
        .expect("config")
        .replace(
            &sites[0].plane.kubeconfig.display().to_string(),
            &dir.join("west-down.kubeconfig").display().to_string(),
        )
        .replace(
            &format!("dynamodbEndpoint: {endpoint}"),
            "dynamodbEndpoint: http://127.0.0.1:9",
        );
    std::fs::write(&only_down, both_down).expect("write");
    let out = cli(
        &only_down,
        &["--request-timeout", "2", "status", "shop"],
        "",
    );
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert!(
        err(&out).contains("neither cluster nor the table answered"),
        "{}",
        err(&out)
    );
    drop(procs);
}
