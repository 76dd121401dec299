//! Readable traces: one numbered line per action with tick, cluster, stage, step, effect
//! and the global record after it.

use std::fmt::Write as _;

use stateright::Model;

use super::{Act, FailoverModel, Fault, World};
use crate::core::decide::{Action, Purpose};
use crate::core::types::{Cluster, ClusterState, Record, VolumeRole};

/// Compact one-line form of a record.
pub fn record_line(r: &Record) -> String {
    let mut s = format!("active={} token={}", r.active, r.token);
    match r.lock {
        Some(l) => {
            let _ = write!(s, " lock={}<{}", l.holder, l.until);
        }
        None => s.push_str(" lock=-"),
    }
    match r.failover {
        Some(f) => {
            let _ = write!(
                s,
                " failover=#{}:{}:{}->{}@{}",
                f.id, f.kind, f.source, f.target, f.done
            );
            if f.stuck {
                s.push_str("(needs-operator)");
            }
        }
        None => s.push_str(" failover=-"),
    }
    if let Some(p) = r.request {
        let _ = write!(s, " request=#{}:{}->{}({})", p.id, p.by, p.to, p.mode);
    }
    let hb = |h: Option<u64>| h.map_or("-".to_string(), |t| t.to_string());
    let _ = write!(s, " hb=[{},{}]", hb(r.heartbeat[0]), hb(r.heartbeat[1]));
    if !r.history.is_empty() {
        let items: Vec<String> = r
            .history
            .iter()
            .map(|h| format!("#{}:{:?}", h.id, h.outcome))
            .collect();
        let _ = write!(s, " history=[{}]", items.join(","));
    }
    s
}

/// Compact one-line form of a cluster's resources.
pub fn cluster_line(c: &ClusterState) -> String {
    let role = |v: VolumeRole| match v {
        VolumeRole::Primary => "P",
        VolumeRole::Secondary => "S",
    };
    format!(
        "net={} scale={} pods={} cron={} flux={} vol={}/{}",
        on(c.network_open),
        if c.workloads_up { "up" } else { "0" },
        on(c.workloads_running),
        on(!c.cronjobs_suspended),
        on(!c.flux_suspended),
        role(c.volume_spec),
        role(c.volume_status),
    )
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn fault_suffix(f: Fault) -> &'static str {
    match f {
        Fault::None => "",
        Fault::StoreUnavailable => " !! store unavailable",
        Fault::AmbiguousApplied => " !! timed out (applied)",
        Fault::AmbiguousDelayed => " !! timed out (still in transit)",
        Fault::KubeError => " !! API error (not applied)",
        Fault::HookFails => " !! the hook fails",
        Fault::FenceStepError(_) => " !! one fence step failed (the others applied)",
        Fault::Slow => " !! slow: the call is still in progress",
        Fault::StaleView => " !! on watch caches that do not show yet what others changed",
    }
}

/// What an operator's action does, in a few words.
fn effect(action: &Action) -> String {
    match action {
        Action::Read => "read record".to_string(),
        Action::Write(op) => format!("write {op:?}"),
        Action::Effect(s) => format!("kube {s}"),
        Action::Hook(i) => format!("hook #{i}"),
        Action::Fence(steps) => format!("kube {steps}"),
        Action::Wait(w) => format!("wait {w:?}"),
    }
}

/// Describe one action taken in `last`, leading to `next`.
pub fn describe_step(m: &FailoverModel, last: &World, action: Act, next: &World) -> String {
    let (who, what) = match action {
        Act::Tick => ("-".to_string(), format!("tick -> {}", next.tick)),
        Act::Operator(c, fault) => {
            let d = match fault {
                Fault::StaleView => m.stale_decision(last, c),
                _ => m.decision(last, c),
            };
            let stage = d.stage.map_or("-".to_string(), |s| s.to_string());
            let step = d.step.map_or("-".to_string(), |s| s.to_string());
            let purpose = match d.purpose {
                Purpose::Claim => "claim",
                Purpose::Heartbeat => "heartbeat",
                Purpose::Sync => "sync",
                Purpose::Request => "request",
                Purpose::Fence => "SELF-FENCE",
                Purpose::Steady => "at-rest",
                Purpose::Plan { .. } => "plan",
                Purpose::Restore { .. } => "restore",
            };
            let effect = effect(&d.action);
            (
                c.to_string(),
                format!(
                    "{stage} | {step} | {purpose}: {effect}{}",
                    fault_suffix(fault)
                ),
            )
        }
        Act::Kubelet(c) => (c.to_string(), "kubelet: pods follow scale".to_string()),
        Act::Csi(c) => (
            c.to_string(),
            "csi driver: volume status follows spec".to_string(),
        ),
        Act::Flux(c) => (c.to_string(), "flux reapplies git".to_string()),
        Act::CatchUp(c) => (c.to_string(), "watch caches catch up".to_string()),
        Act::Request(at, to, mode) => (
            at.to_string(),
            format!("REQUEST (a Failover object here): fail over to {to} ({mode})"),
        ),
        Act::Withdraw(at) => (
            at.to_string(),
            "WITHDRAW the request (its Failover object deleted)".to_string(),
        ),
        Act::Crash(c) => (c.to_string(), "CRASH and restart (memory lost)".to_string()),
        Act::Disaster(c) => (c.to_string(), "DISASTER: cluster gone for good".to_string()),
        Act::CutOff(c) => (c.to_string(), "CUT OFF from DynamoDB".to_string()),
        Act::Heal(c) => (c.to_string(), "reaches DynamoDB again".to_string()),
        Act::Stick(c, r) => (
            c.to_string(),
            format!("every change to {} fails from now on", r.name()),
        ),
        Act::Finish(c, true) => (c.to_string(), "slow call ends: applied".to_string()),
        Act::Finish(c, false) => (
            c.to_string(),
            "slow call ends: timed out, not applied".to_string(),
        ),
        Act::Down(c) => (
            c.to_string(),
            "OPERATOR DOWN (the cluster keeps serving)".to_string(),
        ),
        Act::Up(c) => (c.to_string(), "operator starts again".to_string()),
        Act::Misconfigure(c) => (
            c.to_string(),
            format!(
                "MISCONFIGURED RESTART: the operator starts configured as {}",
                c.peer()
            ),
        ),
        Act::Reconfigure(c) => (
            c.to_string(),
            "operator restarts with its configuration fixed".to_string(),
        ),
        Act::Relabel(c) => (
            c.to_string(),
            "a person labels the cluster's unlabelled objects".to_string(),
        ),
        Act::StickVolumes(c) => (
            c.to_string(),
            "csi-addons driver STOPS reporting volume roles".to_string(),
        ),
        Act::Intervene(a) => ("-".to_string(), format!("a person: {}", a.name())),
        Act::Drift(c) => (
            c.to_string(),
            "SPEC DRIFT: this cluster's copy of the spec changes its members".to_string(),
        ),
        Act::StepClock(c, forward) => (
            c.to_string(),
            format!(
                "WALL CLOCK STEPS {} by {}",
                if forward { "forward" } else { "back" },
                m.config.clock_step
            ),
        ),
        Act::Skew(c) => (
            c.to_string(),
            format!(
                "monotonic clock gains {} (drift bound)",
                m.config.timing.clock_drift_max
            ),
        ),
        Act::Handover(c) => (
            c.to_string(),
            "LEADER HAND-OVER: a new operator process starts; the old one may act later"
                .to_string(),
        ),
        Act::Ghost => {
            let g = last.ghost.as_ref().map_or(Cluster::A, |g| g.cluster);
            let effect = m
                .ghost_decision(last)
                .map_or("-".to_string(), |d| effect(&d.action));
            (
                format!("{g}'"),
                format!("OLD PROCESS acts on its old memory: {effect}"),
            )
        }
        Act::GhostFinish(applied) => {
            let g = last.ghost.as_ref().map_or(Cluster::A, |g| g.cluster);
            (
                format!("{g}'"),
                format!(
                    "old process's slow call ends: {}",
                    if applied {
                        "applied"
                    } else {
                        "timed out, not applied"
                    }
                ),
            )
        }
        Act::Deliver => (
            "-".to_string(),
            "delayed write reaches the store".to_string(),
        ),
        Act::Delete => (
            "-".to_string(),
            "RECORD DELETED (reads find nothing, writes are refused)".to_string(),
        ),
        Act::Recreate => (
            "-".to_string(),
            "operator action: RE-CREATE the record from the clusters' traces".to_string(),
        ),
        Act::Replicate(from) => (
            "-".to_string(),
            format!("replicate region {from} over the other"),
        ),
    };
    let record = if next.gone {
        "(missing)".to_string()
    } else {
        record_line(&next.records[0])
    };
    format!(
        "tick {} | {who} | {what}\n      record: {record}",
        last.tick
    )
}

/// A whole numbered trace from a path of actions.
pub fn render(m: &FailoverModel, init: &World, actions: &[Act]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  0. start: wall clocks A+{} B+{}; A: {}; B: {}",
        init.wall[0],
        init.wall[1],
        cluster_line(&init.clusters[0]),
        cluster_line(&init.clusters[1])
    );
    let mut w = init.clone();
    for (n, a) in actions.iter().enumerate() {
        let Some(next) = m.next_state(&w, *a) else {
            break;
        };
        let _ = writeln!(out, "{:3}. {}", n + 1, describe_step(m, &w, *a, &next));
        w = next;
    }
    let _ = writeln!(
        out,
        "     end: A{}: {}; B{}: {}",
        if w.alive[0] { "" } else { "(gone)" },
        cluster_line(&w.clusters[Cluster::A.index()]),
        if w.alive[1] { "" } else { "(gone)" },
        cluster_line(&w.clusters[Cluster::B.index()])
    );
    out
}
