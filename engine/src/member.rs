//! What a stop or a start does to one member, in one place: whether it is already set
//! ([`is_set`]), its state right after the write ([`after_set`]) and once its
//! controllers converged ([`settled`]), and, for the in-memory clusters (the in-memory
//! adapter, the simulator's fakes), the write itself ([`set_member`]) with the fields
//! it changes ([`field_changes`], named as the Kubernetes adapter names them; the dry
//! run asks the adapter itself, see [`crate::ports::ClusterPort::preview`]).

use failover_model::VolumeRole;

use crate::ports::{Desired, FieldChange, Kind, MemberState, ObjectRef};

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

/// What `set(desired)` does to a member in `state`: its new spec and the fields that
/// change, or `None` if it already is as desired. Every in-memory cluster (this one, the
/// dry run's overlay, the simulator's fakes) applies a set through this.
pub fn set_member(
    object: &ObjectRef,
    state: &MemberState,
    desired: Desired,
) -> Option<(MemberState, Vec<FieldChange>)> {
    if is_set(state, desired) {
        return None;
    }
    let after = after_set(state, desired);
    let changes = field_changes(object, state, &after);
    Some((after, changes))
}

/// The fields a spec change from `before` to `after` touches, named as the Kubernetes
/// adapter names them.
pub fn field_changes(
    object: &ObjectRef,
    before: &MemberState,
    after: &MemberState,
) -> Vec<FieldChange> {
    let change = |field: &str, from: String, to: String| FieldChange {
        object: object.clone(),
        field: field.to_string(),
        from,
        to,
    };
    let opt = |v: Option<i32>| v.map_or("-".to_string(), |v| v.to_string());
    let mut out = Vec::new();
    match (before, after) {
        (
            MemberState::Workload {
                replicas: r0,
                remembered: m0,
                ..
            },
            MemberState::Workload {
                replicas: r1,
                remembered: m1,
                ..
            },
        ) => {
            if m0 != m1 {
                out.push(change(
                    "metadata.annotations[failover.rs/replicas]",
                    opt(*m0),
                    opt(*m1),
                ));
            }
            if r0 != r1 {
                out.push(change("spec.replicas", r0.to_string(), r1.to_string()));
            }
        }
        (MemberState::CronJob { suspended: a }, MemberState::CronJob { suspended: b })
        | (MemberState::Flux { suspended: a }, MemberState::Flux { suspended: b })
            if a != b =>
        {
            out.push(change("spec.suspend", a.to_string(), b.to_string()));
            if object.kind != Kind::CronJob && !b {
                out.push(change(
                    "metadata.annotations[reconcile.fluxcd.io/requestedAt]",
                    "-".into(),
                    "<now>".into(),
                ));
            }
        }
        (MemberState::Network { disabled: a }, MemberState::Network { disabled: b }) if a != b => {
            let (field, on, off) = if object.kind == Kind::Ingress {
                ("spec.ingressClassName", "<original>", "failover-disabled")
            } else {
                ("spec.http", "<original routes>", "503 directResponse")
            };
            let render = |disabled: &bool| if *disabled { off } else { on }.to_string();
            out.push(change(field, render(a), render(b)));
        }
        (MemberState::Volume { spec: a, .. }, MemberState::Volume { spec: b, .. }) if a != b => {
            let role = |r: &failover_model::VolumeRole| format!("{r:?}").to_lowercase();
            out.push(change("spec.replicationState", role(a), role(b)));
        }
        _ => {}
    }
    out
}
