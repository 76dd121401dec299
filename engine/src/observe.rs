//! Folding a group's members into the model's [`ClusterState`].
//!
//! The model keeps one value per resource kind; a real group has many objects. The fold
//! keeps, per field, the value that errs towards "still writing" (any pod running, any
//! route open, any volume primary, any CronJob or Flux object not suspended) and says in
//! [`Agreements`] where members disagree, so a half-applied step never counts as done in
//! either direction, and where a kind has no members, so steps on it count as done.

use std::collections::BTreeMap;

use failover_model::{Agreement, Agreements, ClusterState, VolumeRole};

use crate::ports::{Kind, Member, MemberState};

/// The members of one cluster, by kind (a kind absent from the map has no members).
pub type Members = BTreeMap<Kind, Vec<Member>>;

/// Fold a group's members into the model's view of the cluster.
pub fn fold(members: &Members) -> ClusterState {
    fold_states(
        members
            .iter()
            .flat_map(|(k, ms)| ms.iter().map(move |m| (*k, &m.state))),
    )
}

/// [`fold`] over (kind, state) pairs, for callers that keep objects their own way.
/// One pass, no allocation: the simulator folds on every turn.
pub fn fold_states<'a>(states: impl Iterator<Item = (Kind, &'a MemberState)>) -> ClusterState {
    let (mut up, mut running, mut cron_on, mut flux_on, mut open, mut spec_primary) = (
        AnyAll::default(),
        false,
        AnyAll::default(),
        AnyAll::default(),
        AnyAll::default(),
        AnyAll::default(),
    );
    // Every workload up and ready (running agrees then).
    let mut all_up_ready = true;
    let mut status_primary = false;
    // The volumes' statuses: the first, and whether all equal it and are known.
    let mut first_status: Option<Option<VolumeRole>> = None;
    let mut status_same = true;
    for (kind, state) in states {
        match (kind, state) {
            (
                Kind::Deployment | Kind::StatefulSet,
                MemberState::Workload {
                    replicas,
                    pods,
                    ready,
                    ..
                },
            ) => {
                up.push(*replicas > 0);
                running |= *pods > 0;
                all_up_ready &= *replicas > 0 && *ready;
            }
            (
                Kind::CronJob,
                MemberState::CronJob { suspended } | MemberState::Flux { suspended },
            ) => {
                cron_on.push(!suspended);
            }
            (
                Kind::Kustomization | Kind::HelmRelease,
                MemberState::CronJob { suspended } | MemberState::Flux { suspended },
            ) => flux_on.push(!suspended),
            (Kind::VirtualService | Kind::Ingress, MemberState::Network { disabled }) => {
                open.push(!disabled);
            }
            (Kind::VolumeReplication, MemberState::Volume { spec, status }) => {
                spec_primary.push(*spec == VolumeRole::Primary);
                status_primary |= *status != Some(VolumeRole::Secondary);
                match first_status {
                    None => {
                        first_status = Some(*status);
                        status_same = status.is_some();
                    }
                    Some(first) => status_same &= *status == first && status.is_some(),
                }
            }
            _ => {}
        }
    }
    let running_agree = if up.n == 0 {
        Agreement::NoMembers
    } else if !running || all_up_ready {
        Agreement::All
    } else {
        Agreement::Some
    };
    let volumes = spec_primary.n > 0;
    let status_agree = if !volumes {
        Agreement::NoMembers
    } else if status_same {
        Agreement::All
    } else {
        Agreement::Some
    };
    let role = |primary| {
        if primary {
            VolumeRole::Primary
        } else {
            VolumeRole::Secondary
        }
    };
    // "Suspended" is safe: the fold says suspended only if every member is.
    ClusterState {
        network_open: open.any,
        workloads_up: up.any,
        workloads_running: running,
        cronjobs_suspended: !cron_on.any,
        flux_suspended: !flux_on.any,
        volume_spec: role(spec_primary.any),
        volume_status: role(status_primary && volumes),
        agreement: Agreements {
            network: open.agreement(),
            workloads_up: up.agreement(),
            workloads_running: running_agree,
            cronjobs: cron_on.agreement(),
            flux: flux_on.agreement(),
            volume_spec: spec_primary.agreement(),
            volume_status: status_agree,
        },
    }
}

/// "Any member on", and whether the members agree.
struct AnyAll {
    n: u32,
    any: bool,
    all: bool,
}

impl Default for AnyAll {
    fn default() -> Self {
        AnyAll {
            n: 0,
            any: false,
            all: true,
        }
    }
}

impl AnyAll {
    fn push(&mut self, v: bool) {
        self.n += 1;
        self.any |= v;
        self.all &= v;
    }

    fn agreement(&self) -> Agreement {
        match (self.n, self.any == self.all) {
            (0, _) => Agreement::NoMembers,
            (_, true) => Agreement::All,
            (_, false) => Agreement::Some,
        }
    }
}

/// What the engine assumes when it cannot observe its cluster: everything may be
/// running and nothing is known to be done, so no step counts as satisfied and a
/// self-fence is never skipped. Kinds the group does not name at all (`kinds` lists
/// those it does) have no members and count as done.
pub fn unknown(kinds: &[Kind]) -> ClusterState {
    let of = |ks: &[Kind]| {
        if ks.iter().any(|k| kinds.contains(k)) {
            Agreement::Some
        } else {
            Agreement::NoMembers
        }
    };
    let workloads = of(&[Kind::Deployment, Kind::StatefulSet]);
    let volumes = of(&[Kind::VolumeReplication]);
    ClusterState {
        agreement: Agreements {
            network: of(&[Kind::VirtualService, Kind::Ingress]),
            workloads_up: workloads,
            workloads_running: workloads,
            cronjobs: of(&[Kind::CronJob]),
            flux: of(&[Kind::Kustomization, Kind::HelmRelease]),
            volume_spec: volumes,
            volume_status: volumes,
        },
        ..ClusterState::SERVING
    }
}

/// How far `step` got on each kind it works on, from `members` as last listed: one line
/// per kind with members, such as `scaled down 7/12 Deployments` (the group's status
/// shows them for the failover in flight). Steps that do not work on the cluster give
/// none.
pub fn step_progress(step: failover_model::Step, members: &Members) -> Vec<String> {
    let Some((resource, verb)) = measure(step) else {
        return Vec::new();
    };
    Kind::of(resource)
        .iter()
        .filter_map(|kind| {
            let found = members.get(kind).filter(|m| !m.is_empty())?;
            let n = found.iter().filter(|m| step_done(step, &m.state)).count();
            let plural = match kind {
                Kind::Ingress => "Ingresses".to_string(),
                k => format!("{}s", k.name()),
            };
            Some(format!("{verb} {n}/{} {plural}", found.len()))
        })
        .collect()
}

/// What `step` works on, and the word for a member it is done with.
fn measure(step: failover_model::Step) -> Option<(failover_model::Resource, &'static str)> {
    use failover_model::{Desired, Resource, Step};
    Some(match step {
        Step::AwaitWorkloadsDown => (Resource::Workloads, "pods gone"),
        Step::AwaitWorkloadsReady => (Resource::Workloads, "ready"),
        Step::AwaitVolumesSecondary => (Resource::Volumes, "secondary"),
        Step::AwaitVolumesPrimary => (Resource::Volumes, "primary"),
        _ => {
            let effect = step.effect()?;
            let stop = effect.desired() == Desired::Stop;
            let verb = match (effect.resource(), stop) {
                (Resource::Workloads, true) => "scaled down",
                (Resource::Workloads, false) => "scaled up",
                (Resource::Volumes, true) => "demoted",
                (Resource::Volumes, false) => "promoted",
                (Resource::Network, true) => "closed",
                (Resource::Network, false) => "opened",
                (_, true) => "suspended",
                (_, false) => "resumed",
            };
            (effect.resource(), verb)
        }
    })
}

/// `step` is done with a member in `state`.
fn step_done(step: failover_model::Step, state: &MemberState) -> bool {
    use failover_model::{Step, VolumeRole};
    match step {
        Step::AwaitWorkloadsDown => matches!(state, MemberState::Workload { pods: 0, .. }),
        Step::AwaitWorkloadsReady => matches!(state, MemberState::Workload { ready: true, .. }),
        Step::AwaitVolumesSecondary => matches!(
            state,
            MemberState::Volume {
                status: Some(VolumeRole::Secondary),
                ..
            }
        ),
        Step::AwaitVolumesPrimary => matches!(
            state,
            MemberState::Volume {
                status: Some(VolumeRole::Primary),
                ..
            }
        ),
        _ => step
            .effect()
            .is_some_and(|e| crate::member::is_set(state, e.desired())),
    }
}
