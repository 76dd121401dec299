//! A group's spec is parsed once into a validated type; every invalid spec gives a typed
//! error whose message says what to fix. One test per case.

use std::time::Duration;

use failover_engine::ports::{Kind, LabelQuery, Selector};
use failover_engine::spec::{
    FailoverGroupSpec, FailoverMode, FailoverSpec, FluxRef, Group, MembersSpec, SpecError,
    TimingSpec, failover_id,
};
use failover_model::{Cluster, Mode, Request};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

fn valid() -> FailoverGroupSpec {
    FailoverGroupSpec {
        clusters: vec!["east".into(), "west".into()],
        members: MembersSpec {
            deployments: vec!["web".into()],
            ..MembersSpec::default()
        },
        ..FailoverGroupSpec::default()
    }
}

fn parse(spec: &FailoverGroupSpec) -> Result<Group, SpecError> {
    Group::parse("shop", "shop", spec, "east")
}

fn err(spec: FailoverGroupSpec) -> (SpecError, String) {
    let e = parse(&spec).expect_err("invalid spec accepted");
    let msg = e.to_string();
    (e, msg)
}

fn selector(labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        match_expressions: (!exprs.is_empty()).then(|| {
            exprs
                .iter()
                .map(|(k, op, vs)| LabelSelectorRequirement {
                    key: k.to_string(),
                    operator: op.to_string(),
                    values: (!vs.is_empty()).then(|| vs.iter().map(|v| v.to_string()).collect()),
                })
                .collect()
        }),
    }
}

fn with_selector(sel: LabelSelector) -> FailoverGroupSpec {
    FailoverGroupSpec {
        members: MembersSpec {
            selector: Some(sel),
            ..MembersSpec::default()
        },
        ..valid()
    }
}

#[test]
fn a_valid_spec_parses_with_defaults() {
    let g = parse(&valid()).expect("valid");
    assert_eq!(g.key, "shop/shop");
    assert_eq!(g.clusters, ["east".to_string(), "west".to_string()]);
    assert_eq!((g.me, g.initial_active), (Cluster::A, Cluster::A));
    assert_eq!(g.parallelism, None, "sized from the client's rate limit");
    assert_eq!(g.step_timeout, Duration::from_secs(60));
    assert_eq!(g.timing, failover_engine::spec::DEFAULT_TIMING);
    assert_eq!(
        (
            g.timing.lease_ttl,
            g.timing.fence_margin,
            g.timing.driver_demotion,
            g.timing.heartbeat_every
        ),
        (16_000, 6_000, 2_000, 1_000)
    );
    assert_eq!(
        g.members.get(&Kind::Deployment),
        Some(&vec![Selector {
            namespace: "shop".into(),
            labels: LabelQuery::default(),
            names: vec!["web".into()],
        }])
    );
    let west = Group::parse("shop", "shop", &valid(), "west").expect("valid");
    assert_eq!(west.me, Cluster::B);
}

#[test]
fn selectors_and_flux_namespaces_become_per_kind_selectors() {
    let mut spec = with_selector(selector(
        &[("app", "shop")],
        &[
            ("tier", "In", &["web", "api"]),
            ("legacy", "DoesNotExist", &[]),
        ],
    ));
    spec.members.kustomizations = vec![FluxRef {
        name: "shop".into(),
        namespace: Some("flux-system".into()),
    }];
    let g = parse(&spec).expect("valid");
    let labels = "app=shop,tier in (web,api),!legacy";
    for kind in [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::CronJob,
        Kind::VirtualService,
        Kind::Ingress,
        Kind::VolumeReplication,
    ] {
        assert_eq!(g.members[&kind][0].labels.to_string(), labels, "{kind}");
    }
    assert_eq!(
        g.members[&Kind::Kustomization],
        vec![Selector {
            namespace: "flux-system".into(),
            labels: LabelQuery::default(),
            names: vec!["shop".into()],
        }]
    );
    assert!(!g.members.contains_key(&Kind::HelmRelease));
}

#[test]
fn not_two_clusters() {
    for clusters in [vec![], vec!["east"], vec!["east", "west", "north"]] {
        let n = clusters.len();
        let spec = FailoverGroupSpec {
            clusters: clusters.into_iter().map(String::from).collect(),
            ..valid()
        };
        let (e, msg) = err(spec);
        assert_eq!(e, SpecError::NotTwoClusters(n));
        assert!(msg.contains("exactly two"), "{msg}");
    }
}

#[test]
fn identical_clusters() {
    let (e, msg) = err(FailoverGroupSpec {
        clusters: vec!["east".into(), "east".into()],
        ..valid()
    });
    assert_eq!(e, SpecError::IdenticalClusters("east".into()));
    assert!(msg.contains("two different clusters"), "{msg}");
}

#[test]
fn malformed_cluster_name() {
    let (e, msg) = err(FailoverGroupSpec {
        clusters: vec!["East_1".into(), "west".into()],
        ..valid()
    });
    assert!(matches!(e, SpecError::InvalidName { ref field, .. } if field == "spec.clusters[0]"));
    assert!(msg.contains("lowercase"), "{msg}");
}

#[test]
fn unknown_cluster_for_this_operator() {
    let e = Group::parse("shop", "shop", &valid(), "north").expect_err("unknown");
    assert!(matches!(e, SpecError::UnknownCluster { ref name, .. } if name == "north"));
    assert!(e.to_string().contains("--cluster-name"), "{e}");
}

#[test]
fn unknown_initial_active() {
    let (e, msg) = err(FailoverGroupSpec {
        initial_active: Some("south".into()),
        ..valid()
    });
    assert!(
        matches!(e, SpecError::UnknownCluster { ref field, .. } if field == "spec.initialActive")
    );
    assert!(msg.contains("\"east\", \"west\""), "{msg}");
}

#[test]
fn no_members() {
    let (e, msg) = err(FailoverGroupSpec {
        members: MembersSpec::default(),
        ..valid()
    });
    assert_eq!(e, SpecError::NoMembers);
    assert!(
        msg.contains("label selector or name at least one member"),
        "{msg}"
    );
}

#[test]
fn duplicate_names() {
    let mut spec = valid();
    spec.members.deployments = vec!["web".into(), "api".into(), "web".into()];
    let (e, _) = err(spec);
    assert_eq!(
        e,
        SpecError::DuplicateMember {
            field: "deployments".into(),
            name: "web".into()
        }
    );
    let mut spec = valid();
    let flux = |ns: Option<&str>| FluxRef {
        name: "shop".into(),
        namespace: ns.map(String::from),
    };
    // The same name in two namespaces is two objects; in one namespace it is a duplicate.
    spec.members.kustomizations = vec![flux(None), flux(Some("flux-system"))];
    parse(&spec).expect("distinct namespaces");
    spec.members.kustomizations = vec![flux(Some("shop")), flux(None)];
    let (e, msg) = err(spec);
    assert!(matches!(e, SpecError::DuplicateMember { .. }));
    assert!(msg.contains("kustomizations names \"shop\" twice"), "{msg}");
}

#[test]
fn malformed_member_name() {
    let mut spec = valid();
    spec.members.volume_replications = vec!["Data Volume".into()];
    let (e, _) = err(spec);
    assert!(
        matches!(e, SpecError::InvalidName { ref field, .. } if field == "spec.members.volumeReplications[0]")
    );
}

#[test]
fn malformed_selectors() {
    let cases: Vec<(LabelSelector, &str)> = vec![
        (selector(&[], &[]), "would select everything"),
        (
            selector(&[("bad key!", "x")], &[]),
            "label key \"bad key!\"",
        ),
        (selector(&[("app", "-x")], &[]), "must start and end"),
        (selector(&[("app", &"x".repeat(64))], &[]), "at most 63"),
        (
            selector(&[], &[("tier", "In", &[])]),
            "operator In needs values",
        ),
        (
            selector(&[], &[("tier", "Exists", &["x"])]),
            "operator Exists takes no values",
        ),
        (
            selector(&[], &[("tier", "Near", &["x"])]),
            "unknown operator \"Near\"",
        ),
        (selector(&[("Example.COM/app", "x")], &[]), "prefix"),
    ];
    for (sel, want) in cases {
        let (e, msg) = err(with_selector(sel));
        assert!(matches!(e, SpecError::MalformedSelector(_)), "{e:?}");
        assert!(msg.contains(want), "{msg:?} should say {want:?}");
        assert!(msg.starts_with("spec.members.selector"), "{msg}");
    }
    parse(&with_selector(selector(&[("example.com/app", "x")], &[]))).expect("prefixed key");
}

#[test]
fn timing_that_cannot_work() {
    let cases: Vec<(TimingSpec, &str)> = vec![
        (
            TimingSpec {
                fence_margin_seconds: Some(30),
                ..TimingSpec::default()
            },
            "below leaseSeconds",
        ),
        (
            TimingSpec {
                heartbeat_seconds: Some(20),
                ..TimingSpec::default()
            },
            "missed heartbeat is retried",
        ),
        (
            TimingSpec {
                max_clock_drift_seconds: Some(40),
                lease_seconds: Some(40),
                fence_margin_seconds: Some(10),
                ..TimingSpec::default()
            },
            "maxClockDriftSeconds (40) must be below leaseSeconds (40)",
        ),
        (
            TimingSpec {
                lease_seconds: Some(0),
                ..TimingSpec::default()
            },
            "must be positive",
        ),
        // Issue 9: the fence's worst case (a pause, the observation, five steps) must
        // fit in the margin, whose deadlines are its shares.
        (
            TimingSpec {
                fence_margin_seconds: Some(3),
                ..TimingSpec::default()
            },
            "fenceMarginSeconds (3) must be at least 4",
        ),
        // The call deadlines (5/8 of a 20 s margin) leave no room for a missed heartbeat.
        (
            TimingSpec {
                lease_seconds: Some(34),
                fence_margin_seconds: Some(20),
                ..TimingSpec::default()
            },
            "raise leaseSeconds to at least",
        ),
        // Issue 17: the fence starts once less than its margin plus the driver's
        // demotion time is left, which must leave a lease to serve in.
        (
            TimingSpec {
                driver_demotion_seconds: Some(10),
                ..TimingSpec::default()
            },
            "fenceMarginSeconds + driverDemotionSeconds (16) below leaseSeconds (16)",
        ),
        (
            TimingSpec {
                driver_demotion_seconds: Some(6),
                ..TimingSpec::default()
            },
            "leaseSeconds - fenceMarginSeconds - driverDemotionSeconds (4)",
        ),
    ];
    for (timing, want) in cases {
        let (e, msg) = err(FailoverGroupSpec {
            timing: Some(timing),
            ..valid()
        });
        assert!(matches!(e, SpecError::BadTiming(_)), "{e:?}");
        assert!(msg.contains(want), "{msg:?} should say {want:?}");
    }
}

#[test]
fn parallelism_and_timeout_out_of_range() {
    let (e, msg) = err(FailoverGroupSpec {
        parallelism: Some(0),
        ..valid()
    });
    assert!(matches!(e, SpecError::OutOfRange(_)));
    assert!(msg.contains("spec.parallelism"), "{msg}");
    let (_, msg) = err(FailoverGroupSpec {
        step_timeout_seconds: Some(0),
        ..valid()
    });
    assert!(msg.contains("spec.stepTimeoutSeconds"), "{msg}");
}

#[test]
fn a_failover_targets_one_of_the_groups_clusters() {
    let g = parse(&valid()).expect("valid");
    let f = |to: &str, mode| FailoverSpec {
        group: "shop".into(),
        target_cluster: to.into(),
        mode,
        dry_run: false,
    };
    assert_eq!(
        g.request(7, &f("west", FailoverMode::Uptime)),
        Ok(Request {
            id: 7,
            to: Cluster::B,
            mode: Mode::Uptime
        })
    );
    let e = g
        .request(7, &f("south", FailoverMode::Consistency))
        .expect_err("unknown target");
    assert!(e.to_string().contains("spec.targetCluster"), "{e}");
}

#[test]
fn failover_ids_are_stable_and_distinct() {
    let a = failover_id("6d1f3c2e-0000-4000-8000-000000000001");
    assert_eq!(a, failover_id("6d1f3c2e-0000-4000-8000-000000000001"));
    assert_ne!(a, failover_id("6d1f3c2e-0000-4000-8000-000000000002"));
}

// ---------------------------------------------------------------------------------------
// spec.hooks (issue 13)
// ---------------------------------------------------------------------------------------

/// A database team's hooks, as YAML users write them.
fn hooked(hooks: serde_json::Value) -> FailoverGroupSpec {
    let mut spec = serde_json::to_value(valid()).expect("spec as JSON");
    spec["hooks"] = hooks;
    serde_json::from_value(spec).expect("a spec with hooks deserializes")
}

fn job(place: &str, step: &str, side: &str, on_failure: &str) -> serde_json::Value {
    serde_json::json!({
        "name": "quiesce", place: step, "side": side, "onFailure": on_failure,
        "timeoutSeconds": 120,
        "job": {"template": {"spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "q", "image": "tools", "command": ["quiesce"]}]
        }}}}}
    })
}

fn hook_err(hooks: serde_json::Value) -> String {
    let (e, msg) = err(hooked(hooks));
    assert!(
        matches!(e, SpecError::BadHook { .. } | SpecError::OutOfRange(_)),
        "{e:?}"
    );
    msg
}

#[test]
fn hooks_parse_into_their_places_and_the_print() {
    use failover_engine::hooks::HookAction;
    use failover_model::{HookSpot, OnFailure, Role, Step};
    let spec = hooked(serde_json::json!([
        job("before", "demote-volumes", "source", "abort"),
        {"name": "verify", "before": "promote-volumes", "side": "target",
         "exec": {"selector": {"matchLabels": {"app": "db"}}, "command": ["verify"]}},
        {"name": "notify", "after": "resume-flux", "side": "target", "onFailure": "continue",
         "timeoutSeconds": 10,
         "http": {"url": "https://hooks.example.com/x", "body": "{}"}},
    ]));
    let g = parse(&spec).expect("valid hooks");
    let spots: Vec<HookSpot> = g.hooks.iter().map(|h| h.spot).collect();
    assert_eq!(
        spots,
        [
            HookSpot {
                anchor: Step::DemoteVolumes,
                after: false,
                side: Role::Source,
                on_failure: OnFailure::Abort
            },
            HookSpot {
                anchor: Step::PromoteVolumes,
                after: false,
                side: Role::Target,
                on_failure: OnFailure::Abort
            },
            HookSpot {
                anchor: Step::ResumeFlux,
                after: true,
                side: Role::Target,
                on_failure: OnFailure::Continue
            },
        ]
    );
    assert_eq!(g.hooks[0].timeout, Duration::from_secs(120));
    assert_eq!(g.hooks[1].timeout, Duration::from_secs(300), "the default");
    let HookAction::Http(r) = &g.hooks[2].action else {
        panic!("{:?}", g.hooks[2].action);
    };
    assert_eq!(
        (r.method.as_str(), r.expected_status),
        ("POST", 200),
        "the defaults"
    );
    assert_eq!(g.print().hooks, g.hooks_layout());
    assert_eq!(g.hooks_layout().len(), 3);
    // Both clusters' copies print alike; one without the hooks differs in spec.hooks.
    let west = Group::parse("shop", "shop", &spec, "west").expect("valid");
    assert_eq!(west.print(), g.print());
    assert_eq!(
        parse(&valid()).unwrap().print().differs(&g.print()),
        vec!["spec.hooks"]
    );
    // The YAML round trip keeps them.
    let back: FailoverGroupSpec =
        serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn an_abort_hook_after_the_promotion_is_rejected_with_why() {
    let msg = hook_err(serde_json::json!([job(
        "after",
        "promote-volumes",
        "target",
        "abort"
    )]));
    assert!(msg.contains("spec.hooks[0] (quiesce)"), "{msg}");
    assert!(msg.contains("the target may have promoted"), "{msg}");
    assert!(msg.contains("two primaries"), "{msg}");
    assert!(msg.contains("onFailure: continue"), "{msg}");
    // The same place with `continue` is fine, and a source abort hook too (it rolls
    // back in consistency mode).
    parse(&hooked(serde_json::json!([job(
        "after",
        "promote-volumes",
        "target",
        "continue"
    )])))
    .expect("continue after the promotion");
    parse(&hooked(serde_json::json!([job(
        "before",
        "demote-volumes",
        "source",
        "abort"
    )])))
    .expect("a source abort hook");
}

#[test]
fn a_hook_on_the_wrong_side_or_beside_a_record_step_is_rejected() {
    let msg = hook_err(serde_json::json!([job(
        "before",
        "demote-volumes",
        "target",
        "continue"
    )]));
    assert!(
        msg.contains("runs on the source") && msg.contains("without it"),
        "{msg}"
    );
    let msg = hook_err(serde_json::json!([job(
        "after", "complete", "target", "continue"
    )]));
    assert!(msg.contains("writes the record"), "{msg}");
    let msg = hook_err(serde_json::json!([job(
        "before",
        "demote-volume",
        "source",
        "abort"
    )]));
    assert!(
        msg.contains("no step \"demote-volume\"") && msg.contains("demote-volumes"),
        "{msg}"
    );
    let mut both = job("before", "demote-volumes", "source", "abort");
    both["after"] = serde_json::json!("demote-volumes");
    let msg = hook_err(serde_json::json!([both]));
    assert!(msg.contains("exactly one of `before` and `after`"), "{msg}");
}

#[test]
fn hook_names_must_be_unique_labels_that_fit_a_job_name() {
    let one = job("before", "demote-volumes", "source", "abort");
    let msg = hook_err(serde_json::json!([one.clone(), one.clone()]));
    assert!(msg.contains("another hook has this name"), "{msg}");
    let mut long = one.clone();
    long["name"] = serde_json::json!("q".repeat(55));
    assert!(hook_err(serde_json::json!([long])).contains("at most 54 characters"));
    let mut bad = one;
    bad["name"] = serde_json::json!("Quiesce");
    assert!(hook_err(serde_json::json!([bad])).contains("name:"));
    let many: Vec<serde_json::Value> = (0..9)
        .map(|i| {
            let mut h = job("before", "demote-volumes", "source", "abort");
            h["name"] = serde_json::json!(format!("h{i}"));
            h
        })
        .collect();
    assert!(hook_err(serde_json::Value::Array(many)).contains("at most 8"));
}

#[test]
fn a_hook_needs_one_valid_action_and_a_timeout_within_its_stage() {
    let mut none = job("before", "demote-volumes", "source", "abort");
    none.as_object_mut().unwrap().remove("job");
    assert!(hook_err(serde_json::json!([none])).contains("exactly one action"));
    let mut restart = job("before", "demote-volumes", "source", "abort");
    restart["job"]["template"]["spec"]["template"]["spec"]["restartPolicy"] =
        serde_json::json!("Always");
    assert!(hook_err(serde_json::json!([restart])).contains("Never or OnFailure"));
    let mut long = job("before", "demote-volumes", "source", "abort");
    long["timeoutSeconds"] = serde_json::json!(601);
    let msg = hook_err(serde_json::json!([long]));
    assert!(
        msg.contains("volume-demotion stage's deadline (600 s)"),
        "{msg}"
    );
    let exec = serde_json::json!([{"name": "v", "before": "promote-volumes", "side": "target",
        "exec": {"selector": {}, "command": ["v"]}}]);
    let msg = hook_err(exec);
    assert!(
        msg.contains("exec.selector: the selector is empty"),
        "{msg}"
    );
    let exec = serde_json::json!([{"name": "v", "before": "promote-volumes", "side": "target",
        "exec": {"selector": {"matchLabels": {"app": "db"}}, "command": []}}]);
    assert!(hook_err(exec).contains("exec.command is empty"));
    let http = serde_json::json!([{"name": "n", "after": "resume-flux", "side": "target",
        "onFailure": "continue", "http": {"url": "hooks.example.com"}}]);
    assert!(hook_err(http).contains("http:// or https://"));
    let http = serde_json::json!([{"name": "n", "after": "resume-flux", "side": "target",
        "onFailure": "continue", "http": {"url": "https://x", "expectedStatus": 700}}]);
    assert!(hook_err(http).contains("100 to 599"));
}
