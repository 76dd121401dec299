//! `FailoverGroup.spec.hooks` (issue 13): the hooks a spec declares are parsed into the
//! places the model gives them, and every hook that cannot work is refused with a message
//! that names it, says what is wrong and how to fix it. One test per rule.

use std::collections::BTreeMap;
use std::time::Duration;

use failover_engine::hooks::HookAction;
use failover_engine::ports::{LabelQuery, LabelTerm};
use failover_engine::spec::{
    ExecHookSpec, FailoverGroup, FailoverGroupSpec, Group, HookFailurePolicy, HookSide, HookSpec,
    MembersSpec, SpecError, StageDeadlines, TimingSpec,
};
use failover_model::{
    HookSpot, Hooks, Mode, OnFailure, Plan, PlanKind, Role, Stage, Step, Variant,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn base() -> FailoverGroupSpec {
    FailoverGroupSpec {
        clusters: vec!["east".into(), "west".into()],
        members: MembersSpec {
            deployments: vec!["orders".into()],
            stateful_sets: vec!["orders-db".into()],
            ..MembersSpec::default()
        },
        ..FailoverGroupSpec::default()
    }
}

/// `base()` with `spec.hooks` as users write them (JSON for YAML).
fn with_hooks(hooks: Value) -> FailoverGroupSpec {
    let mut spec = serde_json::to_value(base()).expect("spec as JSON");
    spec["hooks"] = hooks;
    serde_json::from_value(spec).expect("the hooks deserialize")
}

fn parse(spec: &FailoverGroupSpec) -> Result<Group, SpecError> {
    Group::parse("shop", "orders", spec, "east")
}

/// The message of the rejection of `hooks`, which must be about a hook.
fn rejected(hooks: Value) -> String {
    rejected_spec(with_hooks(hooks))
}

fn rejected_spec(spec: FailoverGroupSpec) -> String {
    let e = parse(&spec).expect_err("invalid hooks accepted");
    assert!(
        matches!(e, SpecError::BadHook { .. } | SpecError::OutOfRange(_)),
        "{e:?}"
    );
    e.to_string()
}

fn assert_says(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{p:?} missing from: {msg}");
    }
}

/// A Job hook's template as the README shows it.
fn template(restart: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "orders-hooks"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": restart,
            "containers": [{"name": "hook", "image": "registry.example.com/orders/tools:1.4",
                            "command": ["orders-admin", "checkpoint"]}]
        }}}
    })
}

fn job(name: &str, place: &str, step: &str, side: &str, on_failure: &str) -> Value {
    json!({
        "name": name, place: step, "side": side, "onFailure": on_failure,
        "timeoutSeconds": 120,
        "job": {"template": template("Never")}
    })
}

/// The README's three hooks: a quiesce Job before the source's demotion (abort), a
/// verify Job before the target's promotion (abort by default) and a notification after
/// the target's Flux resumed (continue).
fn database_team() -> Value {
    json!([
        job("quiesce", "before", "demote-volumes", "source", "abort"),
        {"name": "verify", "before": "promote-volumes", "side": "target",
         "job": {"template": template("OnFailure")}},
        {"name": "notify", "after": "resume-flux", "side": "target", "onFailure": "continue",
         "timeoutSeconds": 10,
         "http": {"url": "https://hooks.example.com/services/T000/B000/XXXX",
                  "headers": {"Content-Type": "application/json"},
                  "body": "{\"text\": \"orders failed over\"}"}},
    ])
}

#[test]
fn a_database_teams_hooks_parse_into_their_places() {
    let spec = with_hooks(database_team());
    let g = parse(&spec).expect("valid hooks");
    let spots: Vec<HookSpot> = g.hooks.iter().map(|h| h.spot).collect();
    let expected = [
        HookSpot {
            anchor: Step::DemoteVolumes,
            after: false,
            side: Role::Source,
            on_failure: OnFailure::Abort,
        },
        HookSpot {
            anchor: Step::PromoteVolumes,
            after: false,
            side: Role::Target,
            on_failure: OnFailure::Abort,
        },
        HookSpot {
            anchor: Step::ResumeFlux,
            after: true,
            side: Role::Target,
            on_failure: OnFailure::Continue,
        },
    ];
    assert_eq!(spots, expected);
    let names: Vec<&str> = g.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["quiesce", "verify", "notify"]);
    let timeouts: Vec<Duration> = g.hooks.iter().map(|h| h.timeout).collect();
    assert_eq!(
        timeouts,
        [120, 300, 10].map(Duration::from_secs),
        "verify's is the default"
    );
    assert_eq!(
        g.hooks[0].action,
        HookAction::Job {
            template: template("Never")
        }
    );
    let HookAction::Http(r) = &g.hooks[2].action else {
        panic!("{:?}", g.hooks[2].action);
    };
    assert_eq!(
        (r.method.as_str(), r.expected_status),
        ("POST", 200),
        "the defaults"
    );
    assert_eq!(r.headers["Content-Type"], "application/json");
    assert_eq!(
        r.body.as_deref(),
        Some("{\"text\": \"orders failed over\"}")
    );

    // The layout the plan and the print carry.
    let layout = g.hooks_layout();
    assert_eq!(Some(layout), Hooks::of(&expected));
    assert_eq!(layout.len(), 3);
    assert_eq!(g.print().hooks, layout);
    assert_eq!(g.hook(1).map(|h| h.name.as_str()), Some("verify"));
    assert_eq!(g.hook(3), None);
    // The other cluster's operator reads the same hooks.
    let west = Group::parse("shop", "orders", &spec, "west").expect("valid");
    assert_eq!(west.hooks_layout(), layout);

    // The consistency plan runs each hook beside its anchor, in the anchor's stage.
    let kind = PlanKind::Planned(Mode::Consistency);
    let plan = Plan::with_hooks(kind, Variant::Correct, layout);
    let around = |i: u8| {
        let at = plan
            .steps
            .iter()
            .position(|s| s.step == Step::Hook(i))
            .expect("the hook is in the plan");
        (plan.steps[at].stage, plan.steps[at].owner, at)
    };
    let (stage, owner, at) = around(0);
    assert_eq!((stage, owner), (Stage::VolumeDemotion, Role::Source));
    assert_eq!(plan.steps[at + 1].step, Step::DemoteVolumes);
    assert!(plan.hook_aborts(kind, at as u32));
    let (stage, owner, at) = around(1);
    assert_eq!((stage, owner), (Stage::VolumePromotion, Role::Target));
    assert_eq!(plan.steps[at + 1].step, Step::PromoteVolumes);
    assert!(
        plan.hook_aborts(kind, at as u32),
        "the target promoted nothing yet"
    );
    let (stage, owner, at) = around(2);
    assert_eq!((stage, owner), (Stage::TargetActivation, Role::Target));
    assert_eq!(plan.steps[at - 1].step, Step::ResumeFlux);
}

#[test]
fn hooks_built_in_rust_parse_like_their_yaml() {
    let hook = HookSpec {
        name: "verify".into(),
        before: Some("promote-volumes".into()),
        after: None,
        side: HookSide::Target,
        timeout_seconds: Some(60),
        on_failure: Some(HookFailurePolicy::Abort),
        job: None,
        exec: Some(ExecHookSpec {
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), "orders-db".into())])),
                match_expressions: None,
            },
            container: Some("checker".into()),
            command: vec!["orders-admin".into(), "verify-replica".into()],
        }),
        http: None,
    };
    let spec = FailoverGroupSpec {
        hooks: vec![hook],
        ..base()
    };
    let yaml = with_hooks(json!([{
        "name": "verify", "before": "promote-volumes", "side": "target",
        "timeoutSeconds": 60, "onFailure": "abort",
        "exec": {"selector": {"matchLabels": {"app": "orders-db"}}, "container": "checker",
                 "command": ["orders-admin", "verify-replica"]}
    }]));
    assert_eq!(spec, yaml);
    let g = parse(&spec).expect("valid");
    assert_eq!(
        g.hooks[0].action,
        HookAction::Exec {
            selector: LabelQuery::new(vec![LabelTerm::Equals("app".into(), "orders-db".into())]),
            container: Some("checker".into()),
            command: vec!["orders-admin".into(), "verify-replica".into()],
        }
    );
}

#[test]
fn hooks_survive_a_round_trip_and_defaults_stay_unwritten() {
    let spec = with_hooks(database_team());
    let text = serde_json::to_string(&spec).expect("serializes");
    let back: FailoverGroupSpec = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, spec);
    assert_eq!(
        parse(&back).expect("valid").hooks,
        parse(&spec).expect("valid").hooks
    );
    // What the user left out stays out.
    let hooks = &serde_json::to_value(&spec).expect("JSON")["hooks"];
    assert!(hooks[1].get("onFailure").is_none(), "{}", hooks[1]);
    assert!(hooks[1].get("timeoutSeconds").is_none(), "{}", hooks[1]);
    assert!(hooks[2]["http"].get("method").is_none(), "{}", hooks[2]);
    assert!(
        serde_json::to_value(base())
            .expect("JSON")
            .get("hooks")
            .is_none(),
        "a spec without hooks writes none"
    );
    // Misspelt fields are errors, not silently ignored.
    let mut typo = database_team();
    typo[0]["onfailure"] = json!("continue");
    let mut spec = serde_json::to_value(base()).expect("JSON");
    spec["hooks"] = typo;
    let e = serde_json::from_value::<FailoverGroupSpec>(spec).expect_err("unknown field");
    assert!(e.to_string().contains("onfailure"), "{e}");
}

#[test]
fn the_crd_keeps_the_job_template_opaque() {
    let crd = serde_json::to_value(FailoverGroup::crd()).expect("CRD as JSON");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let hook = &spec["properties"]["hooks"]["items"];
    let required: Vec<&str> = hook["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["name", "side"]);
    let template = &hook["properties"]["job"]["properties"]["template"];
    assert_eq!(template["type"], "object", "{template}");
    assert_eq!(template["x-kubernetes-preserve-unknown-fields"], true);
    assert!(template.get("properties").is_none(), "{template}");
    let sides = &hook["properties"]["side"]["enum"];
    assert_eq!(sides, &json!(["source", "target"]));
}

// ---------------------------------------------------------------------------------------
// One rejection per rule.
// ---------------------------------------------------------------------------------------

#[test]
fn at_most_eight_hooks() {
    let nine: Vec<Value> = (0..9)
        .map(|i| {
            job(
                &format!("h{i}"),
                "before",
                "demote-volumes",
                "source",
                "abort",
            )
        })
        .collect();
    let msg = rejected(Value::Array(nine));
    assert_says(&msg, &["spec.hooks", "9 hooks", "at most 8", "combine"]);
    let eight: Vec<Value> = (0..8)
        .map(|i| {
            job(
                &format!("h{i}"),
                "before",
                "demote-volumes",
                "source",
                "abort",
            )
        })
        .collect();
    let g = parse(&with_hooks(Value::Array(eight))).expect("eight hooks");
    assert_eq!(g.hooks_layout().len(), 8);
}

#[test]
fn a_hook_name_must_be_a_dns_label() {
    let msg = rejected(json!([job(
        "Quiesce_DB",
        "before",
        "demote-volumes",
        "source",
        "abort"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (Quiesce_DB)",
            "name:",
            "DNS-1123",
            "lowercase",
            "\"quiesce-db\"",
        ],
    );
    let msg = rejected(json!([job(
        "",
        "before",
        "demote-volumes",
        "source",
        "abort"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (unnamed)",
            "name is empty",
            "give the hook a name",
        ],
    );
}

#[test]
fn a_hook_name_must_leave_room_for_the_job_suffix() {
    let msg = rejected(json!([job(
        &"q".repeat(55),
        "before",
        "demote-volumes",
        "source",
        "abort"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (qqq",
            "55 characters",
            "at most 54 characters",
            "63",
            "shorten",
        ],
    );
    parse(&with_hooks(json!([job(
        &"q".repeat(54),
        "before",
        "demote-volumes",
        "source",
        "abort"
    )])))
    .expect("54 characters fit");
}

#[test]
fn hook_names_are_unique() {
    let msg = rejected(json!([
        job("quiesce", "before", "demote-volumes", "source", "abort"),
        job("quiesce", "before", "suspend-flux", "source", "abort"),
    ]));
    assert_says(
        &msg,
        &[
            "spec.hooks[1] (quiesce)",
            "another hook has this name (spec.hooks[0])",
            "own name",
        ],
    );
}

#[test]
fn a_hook_stands_before_or_after_exactly_one_step() {
    let mut both = job("quiesce", "before", "demote-volumes", "source", "abort");
    both["after"] = json!("await-workloads-down");
    let msg = rejected(json!([both]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "exactly one of `before` and `after`",
            "found both",
            "keep one",
        ],
    );
    let mut neither = job("quiesce", "before", "demote-volumes", "source", "abort");
    neither.as_object_mut().expect("object").remove("before");
    let msg = rejected(json!([neither]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "found neither",
            "before: demote-volumes",
        ],
    );
}

#[test]
fn an_unknown_step_is_rejected_with_the_names_allowed() {
    let msg = rejected(json!([job(
        "quiesce",
        "before",
        "demote-volume",
        "source",
        "abort"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "before: there is no step \"demote-volume\"",
            "on the source suspend-flux, disable-network",
            "demote-volumes, await-volumes-secondary",
            "on the target promote-volumes",
            "resume-flux",
        ],
    );
    assert!(
        !msg.contains("acquire-lock"),
        "record steps are not offered: {msg}"
    );
}

#[test]
fn a_record_step_takes_no_hook() {
    let msg = rejected(json!([job(
        "notify", "after", "complete", "target", "continue"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (notify)",
            "complete writes the record",
            "cluster step",
        ],
    );
    let msg = rejected(json!([job(
        "check",
        "after",
        "acquire-lock",
        "source",
        "abort"
    )]));
    assert_says(
        &msg,
        &["spec.hooks[0] (check)", "acquire-lock writes the record"],
    );
}

#[test]
fn a_hook_runs_on_the_side_of_its_step() {
    let msg = rejected(json!([job(
        "quiesce",
        "before",
        "demote-volumes",
        "target",
        "continue"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "demote-volumes runs on the source",
            "without it",
            "set `side: source`",
        ],
    );
    let msg = rejected(json!([job(
        "warm",
        "after",
        "scale-up-workloads",
        "source",
        "continue"
    )]));
    assert_says(
        &msg,
        &[
            "scale-up-workloads runs on the target",
            "set `side: target`",
        ],
    );
}

#[test]
fn an_abort_hook_after_the_promotion_is_rejected_with_why() {
    let msg = rejected(json!([job(
        "verify",
        "after",
        "promote-volumes",
        "target",
        "abort"
    )]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (verify)",
            "target hook after promote-volumes",
            "the target may have promoted",
            "no roll back is safe",
            "two primaries",
            "onFailure: continue",
            "before promote-volumes",
        ],
    );
    // Later target steps alike; the default policy is abort.
    let msg = rejected(
        json!([{"name": "warm", "before": "scale-up-workloads", "side": "target",
        "exec": {"selector": {"matchLabels": {"app": "orders"}}, "command": ["warm"]}}]),
    );
    assert_says(
        &msg,
        &["spec.hooks[0] (warm)", "the target may have promoted"],
    );
    // Where a roll back is safe in some mode, abort is fine: the target before its
    // promotion, and the source (it rolls back in consistency mode; in uptime mode it
    // is retried until the stage's deadline flags needs-operator).
    for ok in [
        job("verify", "before", "promote-volumes", "target", "abort"),
        job("verify", "after", "promote-volumes", "target", "continue"),
        job("quiesce", "before", "demote-volumes", "source", "abort"),
        job(
            "quiesce",
            "after",
            "await-volumes-secondary",
            "source",
            "abort",
        ),
    ] {
        parse(&with_hooks(json!([ok.clone()]))).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn a_hook_timeout_is_at_least_a_second() {
    let mut zero = job("quiesce", "before", "demote-volumes", "source", "abort");
    zero["timeoutSeconds"] = json!(0);
    let msg = rejected(json!([zero]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "timeoutSeconds is 0",
            "at least 1 s",
        ],
    );
}

#[test]
fn a_hook_timeout_fits_its_stages_deadline() {
    let mut long = job("quiesce", "before", "demote-volumes", "source", "abort");
    long["timeoutSeconds"] = json!(601);
    let msg = rejected(json!([long]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "timeoutSeconds (601)",
            "the volume-demotion stage's deadline (600 s)",
            "fire first",
            "at most 600",
            "spec.timing.stageDeadlines.volumeDemotion",
        ],
    );
    // The default (300) against a shorter deadline of the hook's stage only.
    let hook = json!([{"name": "notify", "after": "resume-flux", "side": "target",
        "onFailure": "continue", "http": {"url": "https://hooks.example.com/x"}}]);
    let short = |stage_deadlines: StageDeadlines| FailoverGroupSpec {
        timing: Some(TimingSpec {
            stage_deadlines: Some(stage_deadlines),
            ..TimingSpec::default()
        }),
        ..with_hooks(hook.clone())
    };
    let msg = rejected_spec(short(StageDeadlines {
        target_activation: Some(240),
        ..StageDeadlines::default()
    }));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (notify)",
            "timeoutSeconds (300, the default)",
            "target-activation stage's deadline (240 s)",
            "stageDeadlines.targetActivation",
        ],
    );
    parse(&short(StageDeadlines {
        volume_demotion: Some(240),
        ..StageDeadlines::default()
    }))
    .expect("another stage's deadline does not bound it");
    let mut exact = job("quiesce", "before", "demote-volumes", "source", "abort");
    exact["timeoutSeconds"] = json!(600);
    parse(&with_hooks(json!([exact]))).expect("the whole deadline");
}

#[test]
fn a_hook_has_exactly_one_action() {
    let mut none = job("quiesce", "before", "demote-volumes", "source", "abort");
    none.as_object_mut().expect("object").remove("job");
    let msg = rejected(json!([none]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "exactly one action, found none",
            "`job`, `exec` and `http`",
        ],
    );
    let mut two = job("quiesce", "before", "demote-volumes", "source", "abort");
    two["http"] = json!({"url": "https://hooks.example.com/x"});
    let msg = rejected(json!([two]));
    assert_says(
        &msg,
        &["exactly one action, found job and http", "several hooks"],
    );
}

#[test]
fn a_job_template_has_containers() {
    let mut empty = job("quiesce", "before", "demote-volumes", "source", "abort");
    empty["job"]["template"]["spec"]["template"]["spec"]["containers"] = json!([]);
    let msg = rejected(json!([empty]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "job.template.spec.template.spec.containers is empty",
            "at least one container",
        ],
    );
    let no_spec = json!([{"name": "quiesce", "before": "demote-volumes", "side": "source",
        "job": {"template": {"metadata": {"labels": {"app": "x"}}}}}]);
    assert_says(&rejected(no_spec), &["containers is empty"]);
}

#[test]
fn a_job_template_restarts_never_or_on_failure() {
    let mut always = job("quiesce", "before", "demote-volumes", "source", "abort");
    always["job"]["template"] = template("Always");
    let msg = rejected(json!([always]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "restartPolicy must be Never or OnFailure",
            "found \"Always\"",
            "set `restartPolicy: Never`",
        ],
    );
    let mut unset = job("quiesce", "before", "demote-volumes", "source", "abort");
    unset["job"]["template"]["spec"]["template"]["spec"]
        .as_object_mut()
        .expect("pod spec")
        .remove("restartPolicy");
    assert_says(
        &rejected(json!([unset])),
        &["Never or OnFailure", "found none"],
    );
}

#[test]
fn a_job_template_is_a_job_template_spec() {
    let mut named = job("quiesce", "before", "demote-volumes", "source", "abort");
    named["job"]["template"]["metadata"]["name"] = json!("my-job");
    let msg = rejected(json!([named]));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (quiesce)",
            "job.template.metadata.name is not used",
            "keep only labels and annotations",
        ],
    );
    let mut extra = job("quiesce", "before", "demote-volumes", "source", "abort");
    extra["job"]["template"]["kind"] = json!("Job");
    assert_says(
        &rejected(json!([extra])),
        &[
            "job.template.kind is not part of a JobTemplateSpec",
            "only `metadata`",
        ],
    );
    let mut label = job("quiesce", "before", "demote-volumes", "source", "abort");
    label["job"]["template"]["metadata"]["labels"] = json!({"app": "bad value"});
    assert_says(
        &rejected(json!([label])),
        &["job.template.metadata.labels[app]"],
    );
}

#[test]
fn an_exec_hook_needs_a_selector_and_a_command() {
    let exec = |selector: Value, command: Value| {
        json!([{"name": "verify", "before": "promote-volumes", "side": "target",
            "exec": {"selector": selector, "command": command}}])
    };
    let msg = rejected(exec(json!({}), json!(["verify"])));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (verify)",
            "exec.selector: the selector is empty",
            "every pod",
            "matchLabels or matchExpressions",
        ],
    );
    let msg = rejected(exec(
        json!({"matchExpressions": [{"key": "app", "operator": "Has"}]}),
        json!(["verify"]),
    ));
    assert_says(
        &msg,
        &["exec.selector: matchExpressions[0]", "In, NotIn, Exists"],
    );
    let msg = rejected(exec(json!({"matchLabels": {"app": "db"}}), json!([])));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (verify)",
            "exec.command is empty",
            "the program and its arguments",
        ],
    );
    let msg = rejected(exec(json!({"matchLabels": {"app": "db"}}), json!([""])));
    assert_says(&msg, &["exec.command[0] is empty"]);
}

#[test]
fn an_http_hook_needs_a_url_a_method_and_a_status() {
    let http = |fields: Value| {
        json!([{"name": "notify", "after": "resume-flux", "side": "target",
            "onFailure": "continue", "http": fields}])
    };
    let msg = rejected(http(json!({"url": "hooks.example.com/x"})));
    assert_says(
        &msg,
        &[
            "spec.hooks[0] (notify)",
            "http.url \"hooks.example.com/x\" is not an http:// or https:// URL",
            "give the full URL",
        ],
    );
    assert_says(&rejected(http(json!({"url": "https://"}))), &["http.url"]);
    let msg = rejected(http(json!({"url": "https://x", "method": "PO ST"})));
    assert_says(
        &msg,
        &[
            "http.method \"PO ST\" is not an HTTP method",
            "use GET, POST",
        ],
    );
    let msg = rejected(http(json!({"url": "https://x", "expectedStatus": 700})));
    assert_says(
        &msg,
        &[
            "http.expectedStatus 700 is not an HTTP status",
            "from 100 to 599",
        ],
    );
    let msg = rejected(http(
        json!({"url": "https://x", "headers": {"X-A": "a\r\nX-B: b"}}),
    ));
    assert_says(&msg, &["http.headers[X-A]", "line break"]);
    let msg = rejected(http(json!({"url": "https://x", "headers": {"X A": "a"}})));
    assert_says(&msg, &["http.headers: \"X A\" is not a header name"]);
    let g = parse(&with_hooks(http(
        json!({"url": "http://alerts.svc:8080/hook?x=1", "method": "PUT", "expectedStatus": 204}),
    )))
    .expect("valid");
    let HookAction::Http(r) = &g.hooks[0].action else {
        panic!("{:?}", g.hooks[0].action);
    };
    assert_eq!((r.method.as_str(), r.expected_status), ("PUT", 204));
}

#[test]
fn a_source_hook_is_not_in_a_forced_plan() {
    // Not a rejection: the model leaves the source's hooks out of a forced failover
    // (the source is gone), and keeps the target's.
    let g = parse(&with_hooks(database_team())).expect("valid");
    let forced = Plan::with_hooks(PlanKind::Forced, Variant::Correct, g.hooks_layout());
    let hooks: Vec<Step> = forced
        .steps
        .iter()
        .map(|s| s.step)
        .filter(|s| matches!(s, Step::Hook(_)))
        .collect();
    assert_eq!(hooks, [Step::Hook(1), Step::Hook(2)]);
}
