//! Folding many members into the model's one state per kind: a half-applied step never
//! counts as done, readiness needs every workload, unknown volume status is not a role.

use failover_engine::observe::{Members, fold, step_progress, unknown};
use failover_engine::ports::{Kind, Member, MemberState, ObjectRef};
use failover_model::{Agreement, START, STOP, Step, VolumeRole};

fn member(kind: Kind, name: &str, state: MemberState) -> Member {
    Member {
        object: ObjectRef {
            kind,
            namespace: "shop".into(),
            name: name.into(),
        },
        state,
        stop_grace_seconds: None,
    }
}

fn workload(replicas: i32, pods: i32, ready: bool) -> MemberState {
    MemberState::Workload {
        replicas,
        remembered: Some(3),
        pods,
        ready,
    }
}

fn members(list: Vec<Member>) -> Members {
    let mut m = Members::new();
    for x in list {
        m.entry(x.object.kind).or_default().push(x);
    }
    m
}

#[test]
fn half_scaled_workloads_satisfy_neither_direction() {
    let m = members(vec![
        member(Kind::Deployment, "web", workload(3, 3, true)),
        member(Kind::StatefulSet, "db", workload(0, 0, true)),
    ]);
    let c = fold(&m);
    assert!(
        c.workloads_up && c.workloads_running,
        "errs towards running"
    );
    assert_eq!(c.agreement.workloads_up, Agreement::Some);
    for step in [
        Step::ScaleDownWorkloads,
        Step::ScaleUpWorkloads,
        Step::AwaitWorkloadsReady,
        Step::AwaitWorkloadsDown,
    ] {
        assert!(!step.satisfied(&c), "{step}");
    }
}

#[test]
fn ready_means_every_workload_ready() {
    let all_ready = members(vec![
        member(Kind::Deployment, "web", workload(3, 3, true)),
        member(Kind::Deployment, "api", workload(2, 2, true)),
    ]);
    assert!(Step::AwaitWorkloadsReady.satisfied(&fold(&all_ready)));
    let one_rolling = members(vec![
        member(Kind::Deployment, "web", workload(3, 3, true)),
        member(Kind::Deployment, "api", workload(2, 1, false)),
    ]);
    let c = fold(&one_rolling);
    assert!(!Step::AwaitWorkloadsReady.satisfied(&c));
    assert!(Step::ScaleUpWorkloads.satisfied(&c), "both are scaled up");
    let draining = members(vec![
        member(Kind::Deployment, "web", workload(0, 0, false)),
        member(Kind::Deployment, "api", workload(0, 1, false)),
    ]);
    let c = fold(&draining);
    assert!(Step::ScaleDownWorkloads.satisfied(&c));
    assert!(!Step::AwaitWorkloadsDown.satisfied(&c), "a pod still runs");
    assert!(c.has_writers());
}

#[test]
fn volumes_need_every_status_and_unknown_is_no_role() {
    let vol = |spec, status| MemberState::Volume { spec, status };
    let (p, s) = (VolumeRole::Primary, VolumeRole::Secondary);
    let demoting = members(vec![
        member(Kind::VolumeReplication, "a", vol(s, Some(s))),
        member(Kind::VolumeReplication, "b", vol(s, None)),
    ]);
    let c = fold(&demoting);
    assert!(Step::DemoteVolumes.satisfied(&c));
    assert!(
        !Step::AwaitVolumesSecondary.satisfied(&c),
        "b has not reported"
    );
    assert!(c.volumes_primary(), "unknown status errs towards primary");
    let promoted = members(vec![
        member(Kind::VolumeReplication, "a", vol(p, Some(p))),
        member(Kind::VolumeReplication, "b", vol(p, Some(p))),
    ]);
    assert!(Step::AwaitVolumesPrimary.satisfied(&fold(&promoted)));
    let unknown_only = members(vec![member(Kind::VolumeReplication, "a", vol(p, None))]);
    assert!(
        !Step::AwaitVolumesPrimary.satisfied(&fold(&unknown_only)),
        "promotion unverified"
    );
}

#[test]
fn suspension_is_safe_only_when_every_member_is_suspended() {
    let flux = |s| MemberState::Flux { suspended: s };
    let m = members(vec![
        member(Kind::Kustomization, "a", flux(true)),
        member(Kind::HelmRelease, "b", flux(false)),
    ]);
    let c = fold(&m);
    assert!(!c.flux_suspended && c.needs_fencing());
    assert!(!Step::SuspendFlux.satisfied(&c) && !Step::ResumeFlux.satisfied(&c));
}

#[test]
fn kinds_without_members_satisfy_every_step() {
    let m = members(vec![member(
        Kind::CronJob,
        "report",
        MemberState::CronJob { suspended: true },
    )]);
    let c = fold(&m);
    for step in STOP
        .iter()
        .chain(START.iter())
        .filter(|s| !matches!(s, Step::SuspendCronJobs | Step::ResumeCronJobs))
    {
        assert!(step.satisfied(&c), "{step} on a kind without members");
    }
    assert!(Step::SuspendCronJobs.satisfied(&c) && !Step::ResumeCronJobs.satisfied(&c));
    assert!(!c.is_writer(), "no volumes, no writer");
}

#[test]
fn an_unobservable_cluster_is_assumed_to_run_everything() {
    let c = unknown(&Kind::ALL);
    assert!(c.needs_fencing() && c.is_writer());
    for step in STOP.iter().chain(START.iter()) {
        assert!(
            !step.satisfied(&c),
            "{step} satisfied on an unknown cluster"
        );
    }
    // A kind the group does not name has no members, even unobserved.
    let c = unknown(&[Kind::Deployment]);
    assert!(Step::PromoteVolumes.satisfied(&c) && Step::ResumeFlux.satisfied(&c));
    assert!(!Step::ScaleDownWorkloads.satisfied(&c) && !Step::ScaleUpWorkloads.satisfied(&c));
}

/// The group's status counts, per kind, how far the next step got.
#[test]
fn step_progress_counts_per_kind() {
    let m = members(vec![
        member(Kind::Deployment, "web", workload(0, 2, false)),
        member(Kind::Deployment, "api", workload(3, 3, true)),
        member(Kind::Deployment, "worker", workload(0, 0, false)),
        member(Kind::StatefulSet, "db", workload(0, 1, false)),
        member(
            Kind::Ingress,
            "shop",
            MemberState::Network { disabled: true },
        ),
        member(
            Kind::VolumeReplication,
            "data",
            MemberState::Volume {
                spec: VolumeRole::Secondary,
                status: Some(VolumeRole::Primary),
            },
        ),
    ]);
    assert_eq!(
        step_progress(Step::ScaleDownWorkloads, &m),
        [
            "scaled down 2/3 Deployments",
            "scaled down 1/1 StatefulSets"
        ]
    );
    assert_eq!(
        step_progress(Step::AwaitWorkloadsDown, &m),
        ["pods gone 1/3 Deployments", "pods gone 0/1 StatefulSets"]
    );
    assert_eq!(
        step_progress(Step::DisableNetwork, &m),
        ["closed 1/1 Ingresses"]
    );
    assert_eq!(
        step_progress(Step::DemoteVolumes, &m),
        ["demoted 1/1 VolumeReplications"]
    );
    assert_eq!(
        step_progress(Step::AwaitVolumesSecondary, &m),
        ["secondary 0/1 VolumeReplications"]
    );
    // Kinds without members and steps on the record say nothing.
    assert!(step_progress(Step::SuspendCronJobs, &m).is_empty());
    assert!(step_progress(Step::AcquireLock, &m).is_empty());
}
