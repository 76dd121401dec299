//! Folding a group's members into the model's [`ClusterState`], and what a stop or start
//! does to one member's state.
//!
//! The model keeps one value per resource kind; a real group has many objects. The fold
//! keeps, per field, the value that errs towards "still writing" (any pod running, any
//! route open, any volume primary, any CronJob or Flux object not suspended) and says in
//! [`Agreements`] where members disagree, so a half-applied step never counts as done in
//! either direction, and where a kind has no members, so steps on it count as done.

use std::collections::BTreeMap;

use failover_model::{Agreement, Agreements, ClusterState, Step, VolumeRole};

use crate::ports::{Desired, Kind, Member, MemberState};

/// The members a step changes and how: the resource kinds and the direction.
pub fn step_target(step: Step) -> Option<(&'static [Kind], Desired)> {
    const WORKLOADS: &[Kind] = &[Kind::Deployment, Kind::StatefulSet];
    const NETWORK: &[Kind] = &[Kind::VirtualService, Kind::Ingress];
    const CRON: &[Kind] = &[Kind::CronJob];
    const VOLUMES: &[Kind] = &[Kind::VolumeReplication];
    const FLUX: &[Kind] = &[Kind::Kustomization, Kind::HelmRelease];
    Some(match step {
        Step::SuspendFlux => (FLUX, Desired::Stop),
        Step::ResumeFlux => (FLUX, Desired::Start),
        Step::DisableNetwork => (NETWORK, Desired::Stop),
        Step::EnableNetwork => (NETWORK, Desired::Start),
        Step::ScaleDownWorkloads => (WORKLOADS, Desired::Stop),
        Step::ScaleUpWorkloads => (WORKLOADS, Desired::Start),
        Step::SuspendCronJobs => (CRON, Desired::Stop),
        Step::ResumeCronJobs => (CRON, Desired::Start),
        Step::DemoteVolumes => (VOLUMES, Desired::Stop),
        Step::PromoteVolumes => (VOLUMES, Desired::Start),
        _ => return None,
    })
}

/// The member's spec is already as `desired` wants it (status may still follow).
pub fn is_set(state: &MemberState, desired: Desired) -> bool {
    let stop = desired == Desired::Stop;
    match state {
        MemberState::Workload { replicas, .. } => (*replicas == 0) == stop,
        MemberState::CronJob { suspended } | MemberState::Flux { suspended } => *suspended == stop,
        MemberState::Network { disabled } => *disabled == stop,
        MemberState::Volume { spec, .. } => (*spec == VolumeRole::Secondary) == stop,
    }
}

/// The member's state right after `set(desired)`: the spec changes, the status (pods,
/// readiness, volume state) is left for the controllers to move.
pub fn after_set(state: &MemberState, desired: Desired) -> MemberState {
    let stop = desired == Desired::Stop;
    match state.clone() {
        MemberState::Workload {
            replicas,
            remembered,
            pods,
            ready,
        } => {
            if stop {
                let remembered = if replicas > 0 {
                    Some(replicas)
                } else {
                    remembered
                };
                MemberState::Workload {
                    replicas: 0,
                    remembered,
                    pods,
                    ready: ready && pods == 0,
                }
            } else if replicas > 0 {
                MemberState::Workload {
                    replicas,
                    remembered,
                    pods,
                    ready,
                }
            } else {
                MemberState::Workload {
                    replicas: remembered.unwrap_or(1),
                    remembered,
                    pods,
                    ready: false,
                }
            }
        }
        MemberState::CronJob { .. } => MemberState::CronJob { suspended: stop },
        MemberState::Flux { .. } => MemberState::Flux { suspended: stop },
        MemberState::Network { .. } => MemberState::Network { disabled: stop },
        MemberState::Volume { status, .. } => MemberState::Volume {
            spec: if stop {
                VolumeRole::Secondary
            } else {
                VolumeRole::Primary
            },
            status,
        },
    }
}

/// The state the controllers converge a member to (kubelet and Deployment controller,
/// CSI driver): pods follow replicas and become ready, volume status follows spec.
pub fn settled(state: &MemberState) -> MemberState {
    match state.clone() {
        MemberState::Workload {
            replicas,
            remembered,
            ..
        } => MemberState::Workload {
            replicas,
            remembered,
            pods: replicas,
            ready: true,
        },
        MemberState::Volume { spec, .. } => MemberState::Volume {
            spec,
            status: Some(spec),
        },
        other => other,
    }
}

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
pub fn fold_states<'a>(
    states: impl Iterator<Item = (Kind, &'a MemberState)> + Clone,
) -> ClusterState {
    let of = |kinds: &[Kind]| -> Vec<&MemberState> {
        states
            .clone()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(_, s)| s)
            .collect()
    };
    let workloads: Vec<(bool, bool, bool)> = of(&[Kind::Deployment, Kind::StatefulSet])
        .into_iter()
        .filter_map(|s| match s {
            MemberState::Workload {
                replicas,
                pods,
                ready,
                ..
            } => Some((*replicas > 0, *pods > 0, *replicas > 0 && *ready)),
            _ => None,
        })
        .collect();
    let cron: Vec<bool> = flags(&of(&[Kind::CronJob]));
    let flux: Vec<bool> = flags(&of(&[Kind::Kustomization, Kind::HelmRelease]));
    let network: Vec<bool> = of(&[Kind::VirtualService, Kind::Ingress])
        .into_iter()
        .filter_map(|s| match s {
            MemberState::Network { disabled } => Some(!disabled),
            _ => None,
        })
        .collect();
    let volumes: Vec<(VolumeRole, Option<VolumeRole>)> = of(&[Kind::VolumeReplication])
        .into_iter()
        .filter_map(|s| match s {
            MemberState::Volume { spec, status } => Some((*spec, *status)),
            _ => None,
        })
        .collect();

    let (up, up_agree) = any_of(workloads.iter().map(|w| w.0));
    let running = workloads.iter().any(|w| w.1);
    let running_agree = if workloads.is_empty() {
        Agreement::NoMembers
    } else if !running || workloads.iter().all(|w| w.0 && w.2) {
        Agreement::All
    } else {
        Agreement::Some
    };
    // "Suspended" is safe: the fold says suspended only if every member is.
    let (cron_on, cron_agree) = any_of(cron.iter().map(|s| !s));
    let (flux_on, flux_agree) = any_of(flux.iter().map(|s| !s));
    let (open, net_agree) = any_of(network.iter().copied());
    let (spec_primary, spec_agree) = any_of(volumes.iter().map(|v| v.0 == VolumeRole::Primary));
    let status_primary = volumes.iter().any(|v| v.1 != Some(VolumeRole::Secondary));
    let status_agree = if volumes.is_empty() {
        Agreement::NoMembers
    } else if volumes.iter().all(|v| v.1 == volumes[0].1 && v.1.is_some()) {
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
    ClusterState {
        network_open: open,
        workloads_up: up,
        workloads_running: running,
        cronjobs_suspended: !cron_on,
        flux_suspended: !flux_on,
        volume_spec: role(spec_primary),
        volume_status: role(status_primary && !volumes.is_empty()),
        agreement: Agreements {
            network: net_agree,
            workloads_up: up_agree,
            workloads_running: running_agree,
            cronjobs: cron_agree,
            flux: flux_agree,
            volume_spec: spec_agree,
            volume_status: status_agree,
        },
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

fn flags(states: &[&MemberState]) -> Vec<bool> {
    states
        .iter()
        .filter_map(|s| match s {
            MemberState::CronJob { suspended } | MemberState::Flux { suspended } => {
                Some(*suspended)
            }
            _ => None,
        })
        .collect()
}

/// "Any member on", and whether the members agree.
fn any_of(values: impl Iterator<Item = bool>) -> (bool, Agreement) {
    let (mut any, mut all, mut n) = (false, true, 0);
    for v in values {
        any |= v;
        all &= v;
        n += 1;
    }
    let agreement = match (n, any == all) {
        (0, _) => Agreement::NoMembers,
        (_, true) => Agreement::All,
        (_, false) => Agreement::Some,
    };
    (any, agreement)
}
