//! The stateright model: two operators running [`crate::decide`] against a model of
//! DynamoDB (linearizable conditional writes, or a last-writer-wins multi-region table
//! in the `lww-store` variant) and both clusters' resources, with bounded clock drift.
//!
//! Environment and faults: the kubelet, the csi-addons driver and Flux move each
//! cluster's state; a failover request may arrive at any moment (also while one is in
//! flight); an operator may crash and restart at any point, losing its memory; a store
//! call may fail, or time out with an unknown outcome (applied or not); a Kubernetes call
//! may fail; an operator may be cut off from DynamoDB (and healed); the active cluster
//! may disappear for good (a disaster).
//!
//! Time: a global tick advances every operator's two clocks: a monotonic one (`tick +
//! offset`; `Act::Skew` makes one gain the drift bound) that leases, back-offs and the
//! observation of the peer use, and a wall clock (`tick + wall`; `Act::StepClock` steps
//! it by more than a lease) that only stamps writes. A tick happens only when no live
//! operator has anything to do now and every controller has converged. Decisions, store
//! calls and the fence take no time; a Kubernetes call may be slow (`Fault::Slow`: it
//! ends up to `call_ticks` later, lease keeping going on beside it), and an operator may
//! be down (`Act::Down`, its cluster serving on) for up to the fence margin, or for ever
//! in `outage-beyond-lease`. The engine makes the rest true: its call deadlines are
//! shares of the fence margin, so the fence, started when the lease runs low, completes
//! within it (README, "Timing"). The csi-addons driver's demotion is the exception the
//! model times (issue 17): with `demotion_ticks` it may lag across ticks, a fence's
//! demotion lands as late as the fence margin, and the fence starts `fence_margin +
//! driver_demotion` before the lease ends (`ci/demotion-lag`). A Kubernetes call abandoned for the fence never lands
//! in the model; the engine drops its future, and the fence re-asserts every stop step
//! on each attempt should the API server still apply it.

pub mod run;
pub mod trace;

use stateright::{Model, Property};

use crate::core::decide::{
    Action, Decision, Inputs, Memory, PeerSeen, Purpose, Reply, Wake, decide, lease_ok, refusal,
    stamp, write,
};
use crate::core::hooks::{HookRun, HookSpot, Hooks, OnFailure};
use crate::core::invariants::{Audit, Invariant, Snapshot};
use crate::core::plan::{Effect, EffectSet, Resource, STOP, Variant, stopped};
use crate::core::store::{Intervention, Op, Write, apply};
use crate::core::types::{
    AbortReason, Agreement, Agreements, Cluster, ClusterState, FailoverId, Identity, Instance,
    Mode, Outcome, PlanKind, Record, Request, SpecPrint, Stage, Time, Timing, Trace, VolumeRole,
};

/// A configuration of the model: bounds on time and faults, and the protocol variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Name, for output.
    pub name: String,
    /// Protocol variant.
    pub variant: Variant,
    /// Modes a request may ask for.
    pub modes: Vec<Mode>,
    /// Timing, in ticks.
    pub timing: Timing,
    /// Time stops here.
    pub max_ticks: u8,
    /// Failover requests that may arrive (each at either cluster's operator).
    pub requests: u8,
    /// A request may ask for either cluster (also the active one, a no-op); otherwise
    /// each asks for the cluster that is not active when it arrives.
    pub any_direction: bool,
    /// Requests withdrawn (their `Failover` object deleted) after they arrived.
    pub withdrawals: u8,
    /// The clusters whose `Failover` objects requests arrive as (both, or one to keep a
    /// scenario's interleavings few: `A` is the active cluster at the start).
    pub request_at: Vec<Cluster>,
    /// Operator crashes (with restart).
    pub crashes: u8,
    /// Store calls that fail or time out.
    pub store_faults: u8,
    /// Kubernetes calls that fail.
    pub kube_faults: u8,
    /// Times an operator is cut off from DynamoDB.
    pub partitions: u8,
    /// Disasters (the active cluster gone for good).
    pub disasters: u8,
    /// Kinds that start failing every change for good (in one cluster): see
    /// [`STUCK_RESOURCES`].
    pub stuck_kinds: u8,
    /// Bounded progress: this many calm ticks after the last disturbance, all is settled.
    pub progress_ticks: u8,
    /// Kubernetes calls that are slow: the operator's work waits up to `call_ticks`
    /// for the call (which then succeeds or times out) while lease keeping goes on.
    pub slow_calls: u8,
    /// How long a slow call may take: the engine's `stepTimeout`, in ticks.
    pub call_ticks: u8,
    /// Operator outages: the operator is down (not restarted) while its cluster keeps
    /// serving, then starts again with empty memory.
    pub outages: u8,
    /// An outage ends within this many ticks (`None`: it may last for ever). The
    /// deployment rule: [`Config::outage_bound`].
    pub outage_ticks: Option<u8>,
    /// Wall-clock steps (either sign) of `clock_step` ticks.
    pub clock_steps: u8,
    /// Size of a wall-clock step, far beyond the drift bound.
    pub clock_step: Time,
    /// Monotonic clock skews: one operator's clock gains `clock_drift_max` at once
    /// (the most two clocks may disagree over a lease).
    pub skews: u8,
    /// Times the group's record goes missing (deleted, the table re-created); an
    /// operator action re-creates it from what the clusters kept ([`Record::recreated`]).
    pub deletions: u8,
    /// Misconfigured restarts: an operator process starts configured as the other
    /// cluster (a wrong `--cluster-name`, or a copy of the spec listing the clusters in
    /// another order); a restart with the right configuration follows at any time.
    pub misconfigs: u8,
    /// Spec drifts: one cluster's copy of the spec changes (and may change back).
    pub drifts: u8,
    /// The active cluster's volumes lack the group's label from the start: its operator
    /// finds none, the standby's finds them (until a person labels them).
    pub unlabelled: bool,
    /// The group's first start: no slot bound or owned yet, both operators just started,
    /// and the standby's operator configured as the active cluster (the deployment
    /// rule's counterexample: nothing can check a slot's first claim).
    pub first_start_misconfigured: bool,
    /// Leader hand-overs: a new process of one cluster's operator starts (a second
    /// replica won the leader election) while the old one, paused or cut off from its
    /// API server's Lease, may still act later on what it last saw ([`Ghost`]).
    pub handovers: u8,
    /// Clusters whose csi-addons driver stops reporting volume roles for good: a
    /// VolumeReplication never reports the role it was set to (issue 10, part 3).
    pub stuck_volumes: u8,
    /// How many ticks the csi-addons driver may take to demote a volume once its spec
    /// says `secondary` (0: within the tick, as every controller). When positive, a
    /// fence's demotion also lands up to `timing.fence_margin` after the fence starts,
    /// as the engine's sequential fence does. The deployment rule is
    /// `timing.driver_demotion`; `demotion-beyond-bound` breaks it.
    pub demotion_ticks: u8,
    /// A person's actions on a failover in flight ([`Intervention`]), each whenever the
    /// record allows it.
    pub interventions: u8,
    /// Keep the clusters' health reports in the record ([`Record::health`]). The
    /// exhaustive configurations leave them out: no store condition and no decision
    /// reads them (`no_decision_depends_on_the_health_report`), so states that differ
    /// only in them behave alike, and without them the state space stays what it was
    /// before heartbeats carried them (22% fewer states). The simulator's replay keeps
    /// them, to compare whole records with the engine's.
    pub health_reports: bool,
    /// The group's hooks (both clusters' copies of the spec have them).
    pub hooks: Hooks,
    /// Hook runs that fail (an error, or no success within the hook's timeout; a hook
    /// that hangs is a slow call that ends failed at its timeout, `slow_calls`).
    pub hook_faults: u8,
    /// Turns that observe the cluster through watch caches that have not caught up
    /// (issue 15): what others changed (the kubelet, the csi-addons driver, Flux) is
    /// not seen until the caches catch up, at any later moment, while the operator's
    /// own writes are seen at once (the engine's rule). The engine observes afresh
    /// when the model asks for the self-fence; `fence-on-stale-view` does not.
    pub stale_views: u8,
}

/// A database team's hooks (`ci/hooks`; `ci/planned` has the first two): a quiesce on the source before its volumes are
/// demoted and a verify on the target before it promotes, both aborting the failover if
/// they fail, and a notification once the target serves, which only warns.
pub fn planned_hooks() -> Hooks {
    Hooks::of(&planned_spots()).unwrap_or_default()
}

fn planned_spots() -> [HookSpot; 3] {
    use crate::core::plan::Step;
    use crate::core::types::Role;
    let spot = |anchor, after, side, on_failure| HookSpot {
        anchor,
        after,
        side,
        on_failure,
    };
    [
        spot(Step::DemoteVolumes, false, Role::Source, OnFailure::Abort),
        spot(Step::PromoteVolumes, false, Role::Target, OnFailure::Abort),
        spot(Step::ResumeFlux, true, Role::Target, OnFailure::Continue),
    ]
}

/// The kinds the model lets fail for good. A workload or CronJob kind the operator
/// cannot change leaves pods running, but the fence still demotes the volumes, so
/// nothing writes. A volume kind that cannot be changed leaves a volume primary beside
/// a forced promotion (`no-two-primaries` fails); a network or Flux kind leaves traffic
/// open to stopped pods, which `traffic-only-when-ready` exempts for as long as the
/// fence cannot finish, so injecting it would only widen that exemption. README states
/// these limits.
pub const STUCK_RESOURCES: [Resource; 2] = [Resource::Workloads, Resource::CronJobs];

impl Config {
    /// Timing used by the named configurations: lease of 3 ticks, drift of 1, fence with
    /// 1 tick to spare, heartbeat and retry every tick.
    pub const TIMING: Timing = Timing {
        lease_ttl: 3,
        clock_drift_max: 1,
        fence_margin: 1,
        driver_demotion: 0,
        heartbeat_every: 1,
        retry_after: 1,
        stage_deadline: [Config::NO_DEADLINE; 6],
    };

    /// A stage deadline beyond every configuration's time: the scenarios without a
    /// stuck resource keep the interleavings a deadline would add out of their budget
    /// (a deadline's outcomes are safe at any time, the store's conditions make them
    /// so); the `deadline` scenarios set one.
    pub const NO_DEADLINE: Time = 1_000;

    /// The longest operator outage the model's deployment rule allows, in ticks: the
    /// fence margin. The model's fence takes no time; the engine's takes up to three
    /// quarters of the margin, which leaves a quarter for downtime (README, "Timing").
    pub fn outage_bound(timing: &Timing) -> Time {
        timing.fence_margin
    }

    /// A named configuration: `smoke` (both modes, no faults, a second), `ci`
    /// (exhaustive, under a minute on 2 cores) or `deep` (larger budgets, minutes).
    pub fn named(name: &str) -> Option<Vec<Config>> {
        let base = Config {
            name: String::new(),
            variant: Variant::Correct,
            modes: vec![Mode::Consistency, Mode::Uptime],
            timing: Config::TIMING,
            max_ticks: 6,
            requests: 1,
            any_direction: false,
            withdrawals: 0,
            request_at: vec![Cluster::A, Cluster::B],
            crashes: 1,
            store_faults: 1,
            kube_faults: 0,
            partitions: 0,
            disasters: 0,
            stuck_kinds: 0,
            progress_ticks: 6,
            slow_calls: 0,
            call_ticks: 5,
            outages: 0,
            outage_ticks: Some(Config::outage_bound(&Config::TIMING) as u8),
            clock_steps: 0,
            clock_step: 5,
            skews: 0,
            handovers: 0,
            deletions: 0,
            misconfigs: 0,
            drifts: 0,
            unlabelled: false,
            first_start_misconfigured: false,
            stuck_volumes: 0,
            demotion_ticks: 0,
            interventions: 0,
            health_reports: false,
            hooks: Hooks::NONE,
            hook_faults: 0,
            stale_views: 0,
        };
        let scenario = |label: &str, f: &dyn Fn(&mut Config)| {
            let mut c = base.clone();
            c.name = format!("{name}/{label}");
            f(&mut c);
            c
        };
        // One consistency failover, 7 ticks, no crash, no store fault: the base of the
        // scenarios whose own faults multiply the interleavings.
        let lean = |label: &str, f: &dyn Fn(&mut Config)| {
            scenario(label, &|c| {
                c.modes = vec![Mode::Consistency];
                c.crashes = 0;
                c.store_faults = 0;
                c.max_ticks = 7;
                f(c);
            })
        };
        // A cut-off active cluster whose csi-addons driver takes up to `ticks` to demote
        // where the timing's `driver_demotion` says one (a lease of 4 ticks, a fence lead
        // of 2), a skewed clock, the request at the standby, 8 ticks.
        let driver = |label: &str, ticks: u8| {
            lean(label, &|c| {
                c.partitions = 1;
                c.skews = 1;
                c.demotion_ticks = ticks;
                c.timing.driver_demotion = 1;
                c.timing.lease_ttl = 4;
                c.max_ticks = 8;
                c.request_at = vec![Cluster::B];
            })
        };
        // A workload or CronJob kind failing for good, an API error and a partition.
        let stuck_kind = |ticks: u8| {
            lean("stuck-kind", &|c| {
                c.stuck_kinds = 1;
                c.kube_faults = 1;
                c.partitions = 1;
                c.request_at = vec![Cluster::A];
                c.max_ticks = ticks;
            })
        };
        // A csi-addons driver that stops for good in either cluster, deadlines of a
        // tick, and one action of a person (abort, retry or resolve).
        let deadline = |mode: Mode| {
            scenario(&format!("deadline-{mode}"), &|c| {
                c.modes = vec![mode];
                c.crashes = 1;
                c.store_faults = 0;
                c.stuck_volumes = 1;
                c.interventions = 1;
                c.timing.stage_deadline = [1; 6];
                c.request_at = vec![Cluster::B];
                c.max_ticks = 5;
                // An uptime failover hands over three times, a tick each; a request
                // reaches the active cluster with its next heartbeat.
                c.progress_ticks = if mode == Mode::Uptime { 4 } else { 3 };
            })
        };
        let deep_deadline = |mode: Mode| {
            let mut c = deadline(mode);
            c.store_faults = 1;
            // A failed request write or heartbeat is retried a tick later.
            c.progress_ticks += 1;
            c
        };
        // Hooks that fail, or hang for longer than the lease (their timeout), with a
        // failover in either mode.
        let hooks = |partitions: u8, ticks: u8| {
            scenario(
                if partitions > 0 {
                    "hooks-partition"
                } else {
                    "hooks"
                },
                &|c| {
                    c.crashes = 0;
                    c.store_faults = 0;
                    c.hooks = planned_hooks();
                    c.hook_faults = 1;
                    c.slow_calls = 1;
                    c.call_ticks = 3;
                    c.partitions = partitions;
                    c.request_at = vec![Cluster::B];
                    c.max_ticks = ticks;
                    c.progress_ticks = 7;
                },
            )
        };
        match name {
            "ci" => Some(vec![
                // The request arrives at the standby (issue 10: it writes the request
                // into the record, the active cluster starts it); `requests` has both.
                // With a database team's hooks (issue 13): a quiesce and a verify that
                // abort the failover if they fail (the notification, and failing and
                // hanging hooks, are `hooks`'s: each hook here adds 11% to the states).
                scenario("planned", &|c| {
                    c.max_ticks = 5;
                    c.progress_ticks = 5;
                    c.request_at = vec![Cluster::B];
                    c.hooks = Hooks::of(&planned_spots()[..2]).unwrap_or_default();
                }),
                // Hooks that fail or hang until their timeout (issue 13), while an
                // operator may be cut off: an abort hook's failure rolls back, a
                // notification's only warns, and a hook never runs without the lock.
                hooks(0, 6),
                // A person's abort while the target runs its verify hook, before its
                // promotion (a place only hooks make: the target holds the lock where a
                // roll back is still possible), in uptime mode.
                scenario("hooks-person", &|c| {
                    c.modes = vec![Mode::Uptime];
                    c.crashes = 0;
                    c.store_faults = 0;
                    c.hooks = Hooks::of(&planned_spots()[1..2]).unwrap_or_default();
                    c.interventions = 1;
                    c.request_at = vec![Cluster::B];
                    c.max_ticks = 6;
                    // Three hand-overs, a tick each, and the request's.
                    c.progress_ticks = 4;
                }),
                // A failed Kubernetes call is retried after the back-off, a tick later:
                // with a crash on top as well this scenario alone took longer than
                // `ci`'s minute, so `deep` keeps that combination.
                scenario("kube-error", &|c| {
                    c.kube_faults = 1;
                    c.crashes = 0;
                    c.request_at = vec![Cluster::A];
                }),
                scenario("disaster", &|c| {
                    c.disasters = 1;
                    c.store_faults = 0;
                    c.max_ticks = 7;
                }),
                scenario("partition", &|c| {
                    c.partitions = 1;
                    c.crashes = 0;
                    c.store_faults = 0;
                    c.max_ticks = 7;
                }),
                // A kind that fails for good while an operator is cut off: its fence
                // must still demote the volumes; one more fence step may fail once.
                stuck_kind(5),
                // Issue 17 (the simulator's seed 15978): the csi-addons driver takes
                // up to a tick to demote after the spec says so, as the timing's
                // `driver_demotion` allows, while the active cluster is cut off and a
                // monotonic clock gains the drift bound: the fence starts early enough
                // for its steps and the driver's demotion both.
                driver("demotion-lag", 1),
                // Issue 15 (the simulator with `--watch-lag-ms 5000`): turns observe
                // through watch caches that may not show yet what the kubelet, the
                // driver or Flux changed since the tick began, while the active
                // cluster is cut off and a fence step may fail (Flux, not suspended
                // yet, starts what the fence stopped): the fence observes afresh.
                lean("stale-view", &|c| {
                    c.stale_views = 1;
                    c.partitions = 1;
                    c.kube_faults = 1;
                    c.request_at = vec![Cluster::A];
                    c.max_ticks = 5;
                }),
                // Real time (issue 9). A Kubernetes call that takes longer than the
                // lease, while the operator may be cut off: lease keeping goes on beside
                // it, and the call is abandoned for the fence once the lease runs low.
                lean("time-lease", &|c| {
                    c.slow_calls = 1;
                    c.partitions = 1;
                    c.request_at = vec![Cluster::A];
                }),
                // A wall clock stepped by more than a lease, a monotonic clock skewed by
                // the drift bound, and an operator outage as long as the deployment rule
                // allows. (Each time fault multiplies the interleavings; `deep` combines
                // them with a partition.)
                lean("time-clock", &|c| {
                    c.clock_steps = 1;
                    c.skews = 1;
                    c.outages = 1;
                    c.request_at = vec![Cluster::B];
                }),
                // A second process of one operator: the old leader stays behind as a
                // ghost that may act at any later moment on its old memory.
                lean("stale-leader", &|c| {
                    c.handovers = 1;
                    c.requests = 2;
                    c.max_ticks = 6;
                    c.request_at = vec![Cluster::B];
                }),
                // The old process had a slow call in progress at the hand-over: it lands
                // or is abandoned before the new process acts.
                lean("stale-call", &|c| {
                    c.handovers = 1;
                    c.slow_calls = 1;
                    c.max_ticks = 4;
                    c.request_at = vec![Cluster::A];
                }),
                // Issue 10: requests arrive at either operator, for either cluster,
                // concurrently, one may be withdrawn, and a write may fail or time out:
                // one is accepted, a second refused, a request for the active cluster is
                // a no-op.
                lean("requests", &|c| {
                    c.requests = 2;
                    c.any_direction = true;
                    c.withdrawals = 1;
                    c.max_ticks = 5;
                    c.progress_ticks = 4;
                }),
                // Issue 10: the record goes missing (during or after a failover) and is
                // never created again from the spec: both clusters fence once their
                // leases run out, until the operator action re-creates it above every
                // token either cluster saw, with the newest trace's active cluster.
                lean("record-lost", &|c| {
                    c.deletions = 1;
                    c.request_at = vec![Cluster::B];
                }),
                // Two requests for the standby, one at each operator, with a write that
                // fails or times out (a copy delayed in transit may land at any time).
                lean("request-faults", &|c| {
                    c.requests = 2;
                    c.store_faults = 1;
                    c.max_ticks = 4;
                    c.progress_ticks = 3;
                }),
                // Issue 10: an operator restarts configured as the other cluster (its
                // claim is refused: the slot is bound to the other cluster's identity),
                // and one cluster's copy of the spec drifts from the other's, while a
                // request for the standby is made at either cluster.
                // Issue 10: the active cluster's volumes lack the group's label (its
                // operator finds none); a request for the standby and a partition: no
                // failover starts, none is forced, until a person labels them.
                lean("empty-selection", &|c| {
                    c.unlabelled = true;
                    c.partitions = 1;
                    c.request_at = vec![Cluster::B];
                    c.max_ticks = 6;
                }),
                lean("identity", &|c| {
                    c.misconfigs = 1;
                    c.drifts = 1;
                    c.max_ticks = 4;
                    c.progress_ticks = 3;
                    c.request_at = vec![Cluster::B];
                }),
                // Issue 10: a cluster's volumes stop reporting their role, a tick's
                // deadline, a person's action: before the target's promotion the
                // failover rolls back, after it the record flags `needs-operator`.
                deadline(Mode::Consistency),
                deadline(Mode::Uptime),
            ]),
            // What no lease survives: an operator down for longer than the deployment
            // rule allows while its cluster keeps serving (`--example
            // operator-outage-beyond-lease` prints the counterexample).
            // What the identity binding cannot check: the first claim of a slot (the
            // `misconfigured-first-start` example).
            "first-start" => Some(vec![lean("misconfigured", &|c| {
                c.first_start_misconfigured = true;
                c.request_at = vec![];
                c.max_ticks = 3;
            })]),
            // A csi-addons driver slower than the timing's `driver_demotion` says (the
            // `driver-slower-than-bound` example).
            "demotion-beyond-bound" => Some(vec![driver("slow-driver", 3)]),
            "outage-beyond-lease" => Some(vec![lean("unbounded", &|c| {
                c.outages = 1;
                c.outage_ticks = None;
            })]),
            "smoke" => Some(vec![scenario("no-faults", &|c| {
                c.crashes = 0;
                c.store_faults = 0;
                c.max_ticks = 4;
            })]),
            // Issue 18: an uptime failover whose source is lost after the hand-off; the
            // target forces, its `ForceTakeLock` stays in transit while it is cut off,
            // and it retries after the delayed copy's lock has lapsed. That needs two
            // lease periods after the disaster (force once the lease is provably over,
            // retry once the delayed lock is), hence 9 ticks, more than `ci` (7) and
            // `deep` (8) allow; clocks agree (drift 0, which the bug does not need) to
            // keep the run short.
            "handback" => Some(vec![scenario("uptime-lost-source", &|c| {
                c.modes = vec![Mode::Uptime];
                c.timing.clock_drift_max = 0;
                c.crashes = 0;
                c.disasters = 1;
                c.partitions = 1;
                c.max_ticks = 9;
                c.request_at = vec![Cluster::B];
            })]),
            // Each mode on its own for the planned failovers: both in one scenario do
            // not fit 24 GB since issue 9.
            "deep" => Some(vec![
                // `ci`'s hooks with a partition on top: a hook and a forced takeover.
                hooks(1, 7),
                // Requests at one cluster each (both at once would not fit 24 GB):
                // the standby's for consistency, the active's for uptime.
                scenario("planned-consistency", &|c| {
                    c.modes = vec![Mode::Consistency];
                    c.requests = 2;
                    c.kube_faults = 1;
                    c.request_at = vec![Cluster::B];
                }),
                scenario("planned-uptime", &|c| {
                    c.modes = vec![Mode::Uptime];
                    c.requests = 2;
                    c.kube_faults = 1;
                    c.request_at = vec![Cluster::A];
                }),
                scenario("disaster", &|c| {
                    c.disasters = 1;
                    c.max_ticks = 8;
                }),
                scenario("partition", &|c| {
                    c.partitions = 1;
                    c.crashes = 0;
                    c.max_ticks = 7;
                }),
                lean("time-lease", &|c| {
                    c.slow_calls = 1;
                    c.partitions = 1;
                    c.skews = 1;
                    c.request_at = vec![Cluster::A];
                }),
                lean("time-clock", &|c| {
                    c.clock_steps = 1;
                    c.outages = 1;
                    c.partitions = 1;
                    c.request_at = vec![Cluster::B];
                }),
                // `ci`'s two hand-over scenarios in one: a failback and a slow call.
                lean("stale-leader", &|c| {
                    c.handovers = 1;
                    c.requests = 2;
                    c.slow_calls = 1;
                    c.max_ticks = 6;
                    c.request_at = vec![Cluster::B];
                }),
                // `ci/record-lost` with a crash (with a store fault as well it passed
                // 15 GB in 4 minutes, and with both modes 21 GB).
                lean("record-lost", &|c| {
                    c.deletions = 1;
                    c.crashes = 1;
                    c.request_at = vec![Cluster::B];
                }),
                // `ci/stuck-kind` with 6 ticks (`ci` runs 5 since issue 10).
                stuck_kind(6),
                // `ci/identity` with a crash, requests at either cluster, 5 ticks.
                lean("identity", &|c| {
                    c.misconfigs = 1;
                    c.drifts = 1;
                    c.crashes = 1;
                    c.max_ticks = 5;
                    c.progress_ticks = 4;
                }),
                // `ci/empty-selection` with a crash (with a store fault as well it
                // passed 23 GB in seven minutes).
                lean("empty-selection", &|c| {
                    c.unlabelled = true;
                    c.partitions = 1;
                    c.crashes = 1;
                    c.request_at = vec![Cluster::B];
                    c.max_ticks = 6;
                }),
                // `ci`'s deadline scenarios with a store fault and 6 ticks.
                deep_deadline(Mode::Consistency),
                deep_deadline(Mode::Uptime),
                // `ci`'s two request scenarios in one: either cluster, either
                // direction, a withdrawal and a store fault, 5 ticks.
                lean("requests", &|c| {
                    c.requests = 2;
                    c.any_direction = true;
                    c.withdrawals = 1;
                    c.store_faults = 1;
                    c.max_ticks = 5;
                    c.progress_ticks = 4;
                }),
            ]),
            _ => None,
        }
    }

    /// The configuration used to hunt a broken variant: the `ci` scenarios, plus (for
    /// `no-token-check`) a partition with a delayed write, the fault a stale token needs;
    /// for `repeatable-force`, the `handback` scenario that needs a delayed force.
    pub fn for_bug(variant: Variant) -> Vec<Config> {
        let mut configs = match variant {
            Variant::RepeatableForce => Config::named("handback").unwrap_or_default(),
            // Two failovers within the tick of a hand-over (the new process, not held
            // back, acts on a view the old one made stale): two ticks suffice.
            Variant::StaleLeader => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/stale-leader"))
                .map(|mut c| {
                    c.max_ticks = 2;
                    c
                })
                .collect(),
            // A record re-created from the spec after a failover moved the application.
            Variant::RecreateMissingRecord => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/record-lost"))
                .collect(),
            // A source whose volumes its operator cannot see.
            Variant::EmptySelectionDone => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/empty-selection"))
                .collect(),
            // A volume that never reports its new role.
            Variant::NoStageDeadline => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.contains("/deadline-"))
                .collect(),
            // A person's abort while the target runs a hook before its promotion.
            Variant::JournalPastAbort => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/hooks-person"))
                .collect(),
            // A fence on a watch cache that does not show yet what Flux restarted.
            Variant::FenceOnStaleView => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/stale-view"))
                .collect(),
            // A driver that takes its time to demote (the simulator's seed 15978).
            Variant::FenceIgnoresDemotion => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/demotion-lag"))
                .collect(),
            // An operator restarted as the wrong cluster.
            Variant::NoIdentityCheck => Config::named("ci")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name.ends_with("/identity"))
                .collect(),
            _ => Config::named("ci").unwrap_or_default(),
        };
        if variant == Variant::NoTokenCheck {
            let deep = Config::named("deep").unwrap_or_default();
            configs.extend(deep.into_iter().filter(|c| c.name.ends_with("partition")));
        }
        for c in &mut configs {
            c.variant = variant;
            c.name = format!("{}+{}", c.name, variant.name());
        }
        configs
    }
}

/// A fault outside what any lease survives, shown by the model as a counterexample
/// (`failover-check --example <name>`), with the deployment rule that prevents it.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// The example's name.
    pub name: &'static str,
    /// The named configuration that shows it.
    pub config: &'static str,
    /// The property it violates.
    pub violates: &'static str,
    /// What it is and the rule that prevents it.
    pub why: &'static str,
}

/// Every such limit.
pub const LIMITS: [Limit; 3] = [
    Limit {
        name: "operator-outage-beyond-lease",
        config: "outage-beyond-lease",
        violates: "no-two-primaries",
        why: "an operator down for longer than the lease while its cluster keeps serving: \
          nothing fences the cluster, and the peer may force once the lease is over. \
          Deployment rule (README, Timing): downtime below fenceMarginSeconds / 4, met \
          with a second operator replica that takes over within it.",
    },
    Limit {
        name: "driver-slower-than-bound",
        config: "demotion-beyond-bound",
        violates: "no-two-primaries",
        why: "a csi-addons driver that takes longer to demote a volume than \
              driverDemotionSeconds, while its cluster is cut off from DynamoDB: the fence \
              wrote the demotion in time, but the volume is still primary when the peer \
              forces. Deployment rule (README, Timing): driverDemotionSeconds at least \
              the driver's demotion time under load.",
    },
    Limit {
        name: "misconfigured-first-start",
        config: "first-start",
        violates: "no-two-primaries",
        why: "at a group's first start no slot is bound yet: an operator configured as the \
              other cluster may claim that cluster's slot first, bind it to its own \
              cluster and start it beside the one that serves (the real operator is \
              refused and fences, but maybe too late). Deployment rule (README, identity): \
              start each cluster's operator for a new group with the right configuration.",
    },
];

/// What is left of each fault budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Requests.
    pub requests: u8,
    /// Withdrawals.
    pub withdrawals: u8,
    /// Crashes.
    pub crashes: u8,
    /// Store faults.
    pub store_faults: u8,
    /// Kubernetes faults.
    pub kube_faults: u8,
    /// Partitions.
    pub partitions: u8,
    /// Disasters.
    pub disasters: u8,
    /// Kinds stuck for good.
    pub stuck_kinds: u8,
    /// Slow calls.
    pub slow_calls: u8,
    /// Operator outages.
    pub outages: u8,
    /// Wall-clock steps.
    pub clock_steps: u8,
    /// Monotonic clock skews.
    pub skews: u8,
    /// Leader hand-overs.
    pub handovers: u8,
    /// Record deletions.
    pub deletions: u8,
    /// Misconfigured restarts.
    pub misconfigs: u8,
    /// Spec drifts.
    pub drifts: u8,
    /// Stuck csi-addons drivers.
    pub stuck_volumes: u8,
    /// A person's actions.
    pub interventions: u8,
    /// Hook runs that fail.
    pub hook_faults: u8,
    /// Turns on a stale watch cache.
    pub stale_views: u8,
}

/// Facts recorded only so `sometimes` properties can see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Marks {
    /// Bit `i` set: an operator crashed while its next action belonged to stage `i`.
    pub crash_stages: u8,
    /// A write with an ambiguous outcome was sent again.
    pub ambiguous_retried: bool,
    /// An operator fenced its cluster.
    pub fenced: bool,
    /// A tick passed while a cluster's driver had not demoted its volume yet.
    pub demotion_lagged: bool,
    /// A partition, a disaster or a stuck kind happened (uptime's guarantee assumes none).
    pub disrupted: bool,
    /// A slow call was abandoned for the self-fence.
    pub call_abandoned: bool,
    /// A replaced process (a [`Ghost`]) had a write refused and stopped.
    pub ghost_shut_out: bool,
    /// Per cluster: its operator was kept from heartbeating for a while (cut off from
    /// the store, down, or its cluster lost), so the peer may rightly force.
    pub silenced: [bool; 2],
    /// A request was refused because another one held the group.
    pub refused: bool,
    /// The record went missing and was re-created by the operator action.
    pub recreated: bool,
    /// An operator configured as the wrong cluster had its claim refused, and the
    /// slot's owner saw the contest in the record: detected by both.
    pub contest_seen: bool,
    /// A pending request waited because the two copies of the spec differed.
    pub drift_held: bool,
    /// The record flagged a failover `needs-operator`.
    pub flagged: bool,
    /// A person retried a `needs-operator` failover.
    pub retried: bool,
    /// A person asked to abort a failover.
    pub aborted_by_person: bool,
}

/// A request as one cluster has it (its `Failover` object), until the record decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Asked {
    /// The request.
    pub request: Request,
    /// A reply showed it refused: another request held the group. Its status says so for
    /// good; the operator writes it no more.
    pub refused: bool,
    /// It was withdrawn (the object deleted): the operator withdraws it from the record
    /// while it is pending there.
    pub withdrawn: bool,
}

impl Asked {
    /// The request its operator writes into the record ([`Inputs::request`]): unless
    /// refused or withdrawn.
    pub fn to_write(&self) -> Option<Request> {
        (!self.refused && !self.withdrawn).then_some(self.request)
    }

    /// The request its operator withdraws from the record ([`Inputs::withdraw`]).
    pub fn to_withdraw(&self) -> Option<FailoverId> {
        self.withdrawn.then_some(self.request.id)
    }

    /// The record ended this request (or refused it, or it was withdrawn before the
    /// record had it): nothing is left to do for it.
    pub fn settled(&self, record: &Record) -> bool {
        let id = self.request.id;
        self.refused || record.outcome_of(id).is_some() || (self.withdrawn && !record.accepted(id))
    }
}

/// The old process of one cluster's operator after a leader hand-over: it kept its
/// memory and may act at any later moment (a pause ends, a partition heals), alongside
/// the new process, until it learns it was replaced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Its cluster.
    pub cluster: Cluster,
    /// Its memory as it was when the new process started, and since.
    pub memory: Memory,
    /// What it was about to do when it stopped (paused between deciding and sending):
    /// it does this first if it resumes within the tick (pauses are bounded by the
    /// deployment rule, README "Timing"), on its old view, after checking only its lease
    /// for a start step, as the engine checks just before sending.
    pub pending: Option<Decision>,
    /// Its Kubernetes call still in progress at the hand-over (a slow call): it may
    /// still land, until the old process abandons it (its lease ran low, or it learned it
    /// was replaced) or its deadline passes. A process with a call in progress is not
    /// paused: it keeps its lease-keeping duties, like any operator.
    pub busy: Option<Busy>,
}

/// A call of the operator's work still in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Busy {
    /// What it does.
    pub call: Call,
    /// Why.
    pub purpose: Purpose,
    /// It ends (succeeds or times out) by this tick.
    pub until: Time,
}

/// The work of a call in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// A Kubernetes change.
    Effect(Effect),
    /// A hook's run: the hook, and its step (failover, plan, journal position).
    Hook(u8, (FailoverId, PlanKind, u32)),
}

/// The model's state: both clusters, both operators, the store, the environment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// Global tick.
    pub tick: Time,
    /// Per-cluster monotonic clock offsets (0, or `clock_drift_max` after a skew).
    pub offset: [Time; 2],
    /// Per-cluster wall clock offsets (start at `clock_step`, moved by clock steps).
    pub wall: [Time; 2],
    /// A slow call in progress, per operator.
    pub busy: [Option<Busy>; 2],
    /// Operators that are down (not running) since this tick, their clusters serving on.
    pub down: [Option<Time>; 2],
    /// Per-cluster resources.
    pub clusters: [ClusterState; 2],
    /// Clusters that still exist.
    pub alive: [bool; 2],
    /// Operators cut off from DynamoDB.
    pub cut_off: [bool; 2],
    /// A kind whose every change fails, per cluster.
    pub stuck: [Option<Resource>; 2],
    /// The csi-addons driver stopped reporting volume roles, per cluster.
    pub csi_stuck: [bool; 2],
    /// While a cluster's volume spec says `secondary` and the driver still reports
    /// `primary`: the tick by which the driver reports the demotion (only under
    /// [`Config::demotion_ticks`]).
    pub demoting: [Option<Time>; 2],
    /// What an operator's watch caches show while others' changes have not reached
    /// them (only under [`Config::stale_views`]): the cluster before those changes,
    /// with the operator's own writes since.
    pub cached: [Option<ClusterState>; 2],
    /// Operators' memories.
    pub memories: [Memory; 2],
    /// The replaced process of a leader hand-over, while it may still act.
    pub ghost: Option<Box<Ghost>>,
    /// The last operator process id issued.
    pub instances: Instance,
    /// The record: one item, or one replica per cluster's region (`lww-store`). While
    /// [`World::gone`], the last state it had.
    pub records: Vec<Record>,
    /// The record is missing (deleted): reads find nothing, writes are refused.
    pub gone: bool,
    /// What each cluster kept of the record ([`Trace`]), beside the group in the cluster.
    pub traces: [Option<Trace>; 2],
    /// Each cluster's request (its `Failover` object), if any.
    pub asked: [Option<Asked>; 2],
    /// The slot each cluster's operator is configured as (its own, unless misconfigured).
    pub slot: [Cluster; 2],
    /// Each cluster's identity ([`identity`] in the model; the simulator's replay uses
    /// the engine's).
    pub identity: [Identity; 2],
    /// Each cluster's copy of the spec, as its fingerprint.
    pub specs: [SpecPrint; 2],
    /// A write that timed out and is still in transit.
    pub in_transit: Option<Write>,
    /// Audit for the invariants.
    pub audit: Audit,
    /// Fault budgets left.
    pub budget: Budget,
    /// Tick of the last disturbance (fault, heal, request).
    pub calm_since: Time,
    /// Marks for `sometimes` properties.
    pub marks: Marks,
}

/// A fault injected into an operator's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No fault.
    None,
    /// The store call fails without applying.
    StoreUnavailable,
    /// The store call times out after applying.
    AmbiguousApplied,
    /// The store call times out; the request stays in transit and may apply at any later
    /// moment (or never), long after the sender moved on.
    AmbiguousDelayed,
    /// The Kubernetes call fails without applying.
    KubeError,
    /// One step of a self-fence attempt fails; the attempt goes on with the others.
    FenceStepError(Effect),
    /// The Kubernetes call is slow: it ends (succeeds or times out) up to `call_ticks`
    /// later. For a hook: it hangs, and fails at its timeout unless it ends first.
    Slow,
    /// The hook's run fails.
    HookFails,
    /// The turn observes through watch caches that have not caught up
    /// ([`World::cached`]).
    StaleView,
}

/// The model's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// Time passes.
    Tick,
    /// An operator executes its decision, with a fault.
    Operator(Cluster, Fault),
    /// The kubelet (and the Deployment controller) converge pods to the desired scale.
    Kubelet(Cluster),
    /// The csi-addons driver converges the volumes' reported state.
    Csi(Cluster),
    /// Flux (not suspended) reapplies git: workloads up, traffic open, CronJobs on.
    Flux(Cluster),
    /// The operator's watch caches catch up with its cluster ([`World::cached`]).
    CatchUp(Cluster),
    /// A failover request arrives at the first cluster's operator, for the second.
    Request(Cluster, Cluster, Mode),
    /// A cluster's request is withdrawn (its object deleted).
    Withdraw(Cluster),
    /// An operator crashes and restarts with empty memory.
    Crash(Cluster),
    /// The cluster is gone for good.
    Disaster(Cluster),
    /// The operator loses DynamoDB.
    CutOff(Cluster),
    /// The operator reaches DynamoDB again.
    Heal(Cluster),
    /// Every change to one kind of the cluster fails from now on.
    Stick(Cluster, Resource),
    /// A slow call ends: applied (`true`) or timed out without applying.
    Finish(Cluster, bool),
    /// The operator goes down; its cluster keeps serving.
    Down(Cluster),
    /// The operator starts again, with empty memory.
    Up(Cluster),
    /// The wall clock steps forward (`true`) or back by `clock_step`.
    StepClock(Cluster, bool),
    /// The monotonic clock gains `clock_drift_max` at once.
    Skew(Cluster),
    /// A new process of the operator starts (it won the leader election); the old one
    /// stays behind as the [`Ghost`].
    Handover(Cluster),
    /// The ghost acts on its memory.
    Ghost,
    /// The ghost's call in progress ends: applied (`true`) or timed out.
    GhostFinish(bool),
    /// Multi-region replication copies replica `from` over the other one.
    Replicate(usize),
    /// A delayed write reaches the store.
    Deliver,
    /// The group's record goes missing (deleted, or the table re-created).
    Delete,
    /// The operator action re-creates the missing record from the clusters' traces.
    Recreate,
    /// The operator restarts configured as the other cluster.
    Misconfigure(Cluster),
    /// The operator restarts with its configuration fixed.
    Reconfigure(Cluster),
    /// The cluster's copy of the spec changes its members (or changes them back).
    Drift(Cluster),
    /// A person gives the cluster's unlabelled objects the group's label.
    Relabel(Cluster),
    /// The cluster's csi-addons driver stops reporting volume roles for good.
    StickVolumes(Cluster),
    /// A person acts on the failover in flight, through the record.
    Intervene(Intervention),
}

/// The stateright model of the protocol under one configuration.
#[derive(Clone, Debug)]
pub struct FailoverModel {
    /// The configuration.
    pub config: Config,
}

impl FailoverModel {
    /// Monotonic clock of `c`.
    pub fn now(&self, w: &World, c: Cluster) -> Time {
        w.tick + w.offset[c.index()]
    }

    /// Wall clock of `c`.
    pub fn wall(&self, w: &World, c: Cluster) -> Time {
        w.tick + w.wall[c.index()]
    }

    fn replica(&self, w: &World, c: Cluster) -> usize {
        c.index().min(w.records.len() - 1)
    }

    /// What `c`'s operator would do in `w`.
    pub fn decision(&self, w: &World, c: Cluster) -> Decision {
        self.decide_with(w, c, &w.memories[c.index()], w.busy[c.index()].is_some())
    }

    /// What the ghost would do in `w`, if there is one.
    pub fn ghost_decision(&self, w: &World) -> Option<Decision> {
        let g = w.ghost.as_ref()?;
        g.pending
            .clone()
            .or_else(|| Some(self.decide_with(w, g.cluster, &g.memory, g.busy.is_some())))
    }

    /// What `c`'s operator would do in `w` if its view of the record were current (its
    /// next heartbeat reply makes it so): "nothing to do" must not hide behind a stale view.
    pub fn decision_informed(&self, w: &World, c: Cluster) -> Decision {
        let mut memory = w.memories[c.index()].clone();
        if memory.view.is_some() {
            memory.view = Some(w.records[self.replica(w, c)].clone());
        }
        self.decide_with(w, c, &memory, w.busy[c.index()].is_some())
    }

    fn decide_with(&self, w: &World, c: Cluster, memory: &Memory, busy: bool) -> Decision {
        decide(&self.inputs(w, c, busy), memory)
    }

    fn inputs<'a>(&'a self, w: &'a World, c: Cluster, busy: bool) -> Inputs<'a> {
        Inputs {
            me: w.slot[c.index()],
            identity: w.identity[c.index()],
            spec: w.specs[c.index()],
            now: self.now(w, c),
            wall: self.wall(w, c),
            busy,
            cluster: &w.clusters[c.index()],
            request: w.asked[c.index()].and_then(|a| a.to_write()),
            withdraw: w.asked[c.index()].and_then(|a| a.to_withdraw()),
            timing: &self.config.timing,
            variant: self.config.variant,
        }
    }

    /// The invariants' view of `w`.
    pub fn snapshot<'a>(&self, w: &'a World) -> Snapshot<'a> {
        Snapshot {
            clusters: [&w.clusters[0], &w.clusters[1]],
            alive: w.alive,
            records: &w.records,
            audit: &w.audit,
        }
    }

    fn controllers_settled(&self, w: &World, c: Cluster) -> bool {
        let i = c.index();
        let s = &w.clusters[i];
        // A demotion may lag into later ticks, up to its bound.
        let lagging = w.demoting[i].is_some_and(|by| w.tick < by);
        !w.alive[i]
            || (s.workloads_running == s.workloads_up
                && (s.volume_status == s.volume_spec || w.csi_stuck[i] || lagging)
                && !flux_differs(s))
    }

    /// Every live operator has nothing to do now and every controller has converged:
    /// the end of a tick.
    fn quiescent(&self, w: &World) -> bool {
        // A ghost may stay paused across ticks, unless a call of its is in progress.
        let ghost_calm = w.ghost.as_ref().is_none_or(|g| {
            g.busy.is_none()
                || !w.alive[g.cluster.index()]
                || !self.ghost_decision(w).is_some_and(|d| d.is_urgent())
        });
        ghost_calm
            && Cluster::ALL.into_iter().all(|c| {
                !w.alive[c.index()]
                    || ((w.down[c.index()].is_some() || !self.decision(w, c).is_urgent())
                        && self.controllers_settled(w, c))
            })
    }

    fn can_tick(&self, w: &World) -> bool {
        let next = w.tick + 1;
        // A slow call ends by its deadline; a bounded outage ends by its bound.
        let ghost_call = w.ghost.as_ref().and_then(|g| g.busy);
        let calls_end = w
            .busy
            .iter()
            .flatten()
            .chain(ghost_call.as_ref())
            .all(|b| next <= b.until);
        let outages_end = self.config.outage_ticks.is_none_or(|bound| {
            w.down
                .iter()
                .flatten()
                .all(|since| next <= since + Time::from(bound))
        });
        w.tick < Time::from(self.config.max_ticks) && calls_end && outages_end && self.quiescent(w)
    }

    fn next_failover_id(&self, w: &World) -> FailoverId {
        FailoverId::from(self.config.requests - w.budget.requests + 1)
    }

    fn disturb(w: &mut World) {
        w.calm_since = w.tick;
    }

    /// A new process of `c`'s operator: empty memory, a new instance id, the right
    /// configuration.
    fn restart(w: &mut World, c: Cluster) {
        w.slot[c.index()] = c;
        w.instances += 1;
        w.memories[c.index()] = Memory::started(w.instances);
        w.busy[c.index()] = None;
    }

    /// The ghost takes its turn: the operator's code with the ghost's memory (and no
    /// call in progress). Once it learned it was replaced it is gone.
    fn ghost_turn(&self, w: &mut World) {
        let Some(ghost) = w.ghost.take() else {
            return;
        };
        let ghost = *ghost;
        let c = ghost.cluster;
        let i = c.index();
        let main = std::mem::replace(&mut w.memories[i], ghost.memory);
        let busy = std::mem::replace(&mut w.busy[i], ghost.busy);
        match ghost.pending {
            Some(d) => {
                let lease = lease_ok(&self.inputs(w, c, false), &w.memories[i]);
                let starts = matches!(d.action, Action::Effect(e) if !e.stops())
                    || matches!(d.action, Action::Hook(_));
                if lease || !starts {
                    self.execute(w, c, d, Fault::None);
                }
            }
            None => self.operator(w, c, Fault::None),
        }
        let memory = std::mem::replace(&mut w.memories[i], main);
        let ghost_busy = std::mem::replace(&mut w.busy[i], busy);
        // A replaced process stops, and drops its call in progress.
        if memory.superseded && self.config.variant != Variant::StaleLeader {
            w.marks.ghost_shut_out = true;
        } else {
            w.ghost = Some(Box::new(Ghost {
                cluster: c,
                memory,
                pending: None,
                busy: ghost_busy,
            }));
        }
    }

    /// The ghost's call in progress ends: applied or not.
    fn ghost_finish(&self, w: &mut World, applied: bool) {
        let Some(g) = w.ghost.as_mut() else {
            return;
        };
        let (c, call) = (g.cluster, g.busy.take());
        let Some(b) = call else {
            return;
        };
        let (now, ok) = self.end_call(w, c, b, applied);
        let timing = self.config.timing;
        if let Some(g) = w.ghost.as_mut() {
            match b.call {
                Call::Hook(_, (id, _, at)) => {
                    g.memory.on_hook(HookRun { id, at, ok }, now, &timing)
                }
                Call::Effect(_) => g.memory.on_kube(now, &timing, ok),
            }
        }
    }

    /// A slow call `b` of `c`'s operator ends, applied or not: the change it makes, if
    /// any; the time and whether it succeeded, for the caller's memory.
    fn end_call(&self, w: &mut World, c: Cluster, b: Busy, applied: bool) -> (Time, bool) {
        let ok = match b.call {
            Call::Effect(step) => {
                let ok = applied && self.change(w, c, step, b.purpose);
                if ok && step.resource() == Resource::Network {
                    w.audit.on_network_set(c);
                }
                ok
            }
            Call::Hook(index, key) => {
                self.end_hook(w, index, key, applied);
                applied
            }
        };
        (self.now(w, c), ok)
    }

    /// A hook's run ended: the audit notes it (with whether its policy is to abort).
    fn end_hook(&self, w: &mut World, index: u8, key: (FailoverId, PlanKind, u32), ok: bool) {
        let aborts = self
            .config
            .hooks
            .get(index)
            .is_some_and(|h| h.on_failure == OnFailure::Abort);
        w.audit.on_hook_end(key, ok, aborts);
    }

    /// The hook step `c`'s operator is about to run, from its view: (failover, plan,
    /// journal position).
    fn hook_key(w: &World, c: Cluster, purpose: Purpose) -> Option<(FailoverId, PlanKind, u32)> {
        let f = w.memories[c.index()].view.as_ref()?.failover?;
        match purpose {
            Purpose::Plan { at } => Some((f.id, f.kind, at)),
            _ => None,
        }
    }

    /// The store receives `wr` in replica `rep`.
    fn deliver(&self, w: &mut World, rep: usize, wr: &Write) -> Reply {
        let before = w.records[rep].clone();
        if w.gone {
            // Every write but a create needs the record; a create makes a new one.
            let Op::Create { active } = wr.op else {
                return Reply::Missing;
            };
            let after = Record::new(active, [Some(wr.now), Some(wr.now)]);
            w.audit.on_recreated(&before, &after);
            w.records[rep] = after.clone();
            w.gone = false;
            return Reply::Applied(after);
        }
        match apply(&before, wr, &self.config.timing, self.config.variant) {
            Ok(mut after) => {
                if !self.config.health_reports {
                    after.health = [None, None];
                }
                w.marks.flagged |= after.failover.is_some_and(|f| f.stuck);
                w.audit.on_write_accepted(&before, &after, wr);
                w.records[rep] = after.clone();
                Reply::Applied(after)
            }
            Err(_) => Reply::ConditionFailed(before),
        }
    }

    fn operator(&self, w: &mut World, c: Cluster, fault: Fault) {
        let d = match fault {
            Fault::StaleView => self.stale_decision(w, c),
            _ => self.decision(w, c),
        };
        let effect = match d.action {
            Action::Effect(e) => EffectSet::of([e]),
            Action::Fence(steps) => steps,
            _ => EffectSet::default(),
        };
        self.execute(w, c, d, fault);
        // The operator's own writes show in its caches at once, with what its cluster
        // was when they applied (the engine's rule: a write counts once the cache has
        // seen it).
        let i = c.index();
        if let Some(cached) = w.cached[i].as_mut() {
            let now = w.clusters[i];
            for e in effect.iter() {
                see(cached, &now, e.resource());
            }
        }
    }

    /// What `c`'s operator decides on a turn whose watch caches have not caught up
    /// ([`World::cached`]). The engine observes again, from the API server, when that
    /// asks for the self-fence, and decides on that (`fence-on-stale-view` fences on
    /// the stale view).
    pub fn stale_decision(&self, w: &World, c: Cluster) -> Decision {
        let i = c.index();
        let Some(cached) = w.cached[i] else {
            return self.decision(w, c);
        };
        let mut inputs = self.inputs(w, c, w.busy[i].is_some());
        inputs.cluster = &cached;
        let d = decide(&inputs, &w.memories[i]);
        if matches!(d.action, Action::Fence(_)) && self.config.variant != Variant::FenceOnStaleView
        {
            return self.decision(w, c);
        }
        d
    }

    /// Others changed `c`'s cluster: with stale views in play, its operator's caches
    /// may not show it yet (they keep what they showed before, until they catch up).
    fn by_others(&self, w: &mut World, c: Cluster, before: ClusterState) {
        if self.config.stale_views > 0 && w.cached[c.index()].is_none() {
            w.cached[c.index()] = Some(before);
        }
    }

    /// `c`'s operator carries out decision `d` (its memory is `w.memories[c]`); its
    /// cluster keeps a trace of the record it sees.
    fn execute(&self, w: &mut World, c: Cluster, d: Decision, fault: Fault) {
        self.execute_inner(w, c, d, fault);
        let i = c.index();
        let mem = &w.memories[i];
        if mem.sees_contest(w.slot[i]) {
            w.marks.contest_seen = true;
        }
        if let Some(v) = &mem.view
            && v.request.is_some()
            && !v.specs_agree()
        {
            w.marks.drift_held = true;
        }
        if let Some(v) = &w.memories[i].view {
            w.traces[i] = Some(Trace::newest(w.traces[i], v.trace()));
        }
    }

    fn execute_inner(&self, w: &mut World, c: Cluster, d: Decision, fault: Fault) {
        let now = self.now(w, c);
        let timing = self.config.timing;
        let variant = self.config.variant;
        let i = c.index();
        let rep = self.replica(w, c);
        let store_down = w.cut_off[i] || fault == Fault::StoreUnavailable;
        // The slot it is configured as (its own cluster's, unless misconfigured).
        let me = w.slot[i];
        match d.action {
            Action::Wait(_) => {}
            Action::Read if w.gone && !store_down => {
                w.memories[i].on_missing(now, &timing);
            }
            Action::Read => {
                let read = (!store_down).then(|| w.records[rep].clone());
                w.memories[i].on_read(me, now, &timing, read);
            }
            Action::Write(op) => {
                if w.memories[i].unsure == Some(op) {
                    w.marks.ambiguous_retried = true;
                }
                let mem = &w.memories[i];
                let wr = write(me, mem, stamp(me, self.wall(w, c), variant, mem), op);
                let reply = if store_down {
                    Reply::Unavailable
                } else if fault == Fault::AmbiguousDelayed {
                    w.in_transit = Some(wr);
                    Reply::Ambiguous
                } else {
                    self.deliver(w, rep, &wr)
                };
                let reply = if fault == Fault::AmbiguousApplied {
                    Reply::Ambiguous
                } else {
                    reply
                };
                // A reply that shows the request refused ends it for good (its
                // object's status says which request holds the group).
                if let Some((id, _)) = refusal(&op, &reply)
                    && let Some(a) = w.asked[i].as_mut()
                    && a.request.id == id
                {
                    a.refused = true;
                    w.marks.refused = true;
                }
                w.memories[i].on_write(&wr, now, &timing, variant, reply);
            }
            Action::Hook(index) => {
                let Some(key) = Self::hook_key(w, c, d.purpose) else {
                    return;
                };
                w.audit.on_hook_start(&w.records[rep], c, key);
                if fault == Fault::Slow {
                    w.busy[i] = Some(Busy {
                        call: Call::Hook(index, key),
                        purpose: d.purpose,
                        until: w.tick + Time::from(self.config.call_ticks),
                    });
                    return;
                }
                let ok = fault != Fault::HookFails;
                self.end_hook(w, index, key, ok);
                let (id, _, at) = key;
                w.memories[i].on_hook(HookRun { id, at, ok }, now, &timing);
            }
            Action::Effect(step) if fault == Fault::Slow => {
                w.busy[i] = Some(Busy {
                    call: Call::Effect(step),
                    purpose: d.purpose,
                    until: w.tick + Time::from(self.config.call_ticks),
                });
            }
            Action::Effect(step) => {
                let ok = fault != Fault::KubeError && self.change(w, c, step, d.purpose);
                if ok && step.resource() == Resource::Network {
                    w.audit.on_network_set(c);
                }
                w.memories[i].on_kube(now, &timing, ok);
            }
            Action::Fence(steps) => {
                if w.busy[i].take().is_some() {
                    w.marks.call_abandoned = true;
                }
                let mut ok = true;
                for step in steps.iter() {
                    ok &=
                        fault != Fault::FenceStepError(step) && self.change(w, c, step, d.purpose);
                }
                w.audit.on_fence_end(c, ok);
                w.memories[i].on_kube(now, &timing, ok);
            }
        }
    }
}

impl FailoverModel {
    /// Apply effect `step` to `c`'s cluster, unless its kind is stuck; whether it
    /// succeeded.
    fn change(&self, w: &mut World, c: Cluster, step: Effect, purpose: Purpose) -> bool {
        let i = c.index();
        if Some(step.resource()) == w.stuck[i] {
            return false;
        }
        let rep = self.replica(w, c);
        let uptime = self.snapshot(w).uptime_in_flight();
        let changed = step.apply(&mut w.clusters[i]);
        let s = &w.clusters[i];
        if self.config.demotion_ticks > 0
            && s.volume_spec == VolumeRole::Secondary
            && s.volume_status == VolumeRole::Primary
            && w.demoting[i].is_none()
        {
            // The model's fence is one action, the engine's takes up to the fence
            // margin: its demotion may land that much later, then the driver acts.
            let fence = if purpose == Purpose::Fence {
                self.config.timing.fence_margin
            } else {
                0
            };
            w.demoting[i] = Some(w.tick + fence + Time::from(self.config.demotion_ticks));
        } else if s.volume_spec == s.volume_status {
            w.demoting[i] = None;
        }
        if let (true, Purpose::Plan { at }) = (changed, purpose) {
            w.audit.on_plan_effect(&w.records[rep], c, at);
        }
        if changed && step == Effect::PromoteVolumes {
            let p = c.peer().index();
            w.audit.on_promoted(&w.clusters[p], w.alive[p], uptime);
        }
        if purpose == Purpose::Fence {
            w.marks.fenced = true;
        }
        true
    }
}

/// The identity of cluster `c` in the model (the engine's is a fingerprint of its
/// `kube-system` namespace UID).
pub fn identity(c: Cluster) -> Identity {
    c.index() as Identity + 1
}

/// `cached` shows what `now` says of `resource`'s objects (the operator wrote them).
fn see(cached: &mut ClusterState, now: &ClusterState, resource: Resource) {
    match resource {
        Resource::Network => {
            cached.network_open = now.network_open;
            cached.agreement.network = now.agreement.network;
        }
        Resource::Workloads => {
            cached.workloads_up = now.workloads_up;
            cached.workloads_running = now.workloads_running;
            cached.agreement.workloads_up = now.agreement.workloads_up;
            cached.agreement.workloads_running = now.agreement.workloads_running;
        }
        Resource::CronJobs => {
            cached.cronjobs_suspended = now.cronjobs_suspended;
            cached.agreement.cronjobs = now.agreement.cronjobs;
        }
        Resource::Flux => {
            cached.flux_suspended = now.flux_suspended;
            cached.agreement.flux = now.agreement.flux;
        }
        Resource::Volumes => {
            cached.volume_spec = now.volume_spec;
            cached.volume_status = now.volume_status;
            cached.agreement.volume_spec = now.agreement.volume_spec;
            cached.agreement.volume_status = now.agreement.volume_status;
        }
    }
}

/// Flux, if running, would change the cluster back to git's state.
fn flux_differs(s: &ClusterState) -> bool {
    !s.flux_suspended && (!s.workloads_up || !s.network_open || s.cronjobs_suspended)
}

impl Model for FailoverModel {
    type State = World;
    type Action = Act;

    fn init_states(&self) -> Vec<World> {
        // Each operator has heartbeated at tick 0 and seen the other's heartbeat then.
        // One start suffices: wall clocks matter only for stamps, and the monotonic
        // clocks' disagreement comes from `Act::Skew`.
        let timing = self.config.timing;
        let wall0 = self.config.clock_step;
        let records = if self.config.variant == Variant::LwwStore {
            2
        } else {
            1
        };
        let hb = [Some(wall0), Some(wall0)];
        let mut clusters = [ClusterState::SERVING, ClusterState::STANDBY];
        if self.config.unlabelled {
            let a = &mut clusters[0].agreement;
            a.volume_spec = Agreement::NoMembers;
            a.volume_status = Agreement::NoMembers;
        }
        let specs = clusters.map(|s| SpecPrint {
            inventory: s.inventory(),
            hooks: self.config.hooks,
            ..SpecPrint::default()
        });
        let lease_from = if self.config.variant == Variant::WallClockLease {
            wall0
        } else {
            0
        };
        let memory = Memory {
            claimed: Some(0),
            heartbeat_at: Some(0),
            lease_until: Some(lease_from + timing.lease_ttl),
            peer: Some(PeerSeen {
                heartbeat: Some(wall0),
                since: 0,
                changed: true,
            }),
            ..Memory::default()
        };
        let mut world = World {
            tick: 0,
            offset: [0, 0],
            wall: [wall0, wall0],
            busy: [None, None],
            down: [None, None],
            clusters,
            alive: [true, true],
            cut_off: [false, false],
            stuck: [None, None],
            csi_stuck: [false, false],
            demoting: [None, None],
            cached: [None, None],
            memories: [
                Memory {
                    instance: 1,
                    ..memory.clone()
                },
                Memory {
                    instance: 2,
                    ..memory
                },
            ],
            ghost: None,
            instances: 2,
            records: vec![
                Record {
                    instance: [Some(1), Some(2)],
                    bound: [Some(identity(Cluster::A)), Some(identity(Cluster::B))],
                    spec: specs.map(Some),
                    ..Record::new(Cluster::A, hb)
                };
                records
            ],
            gone: false,
            traces: [Some(Record::new(Cluster::A, hb).trace()); 2],
            asked: [None, None],
            slot: Cluster::ALL,
            identity: Cluster::ALL.map(identity),
            specs,
            in_transit: None,
            audit: Audit::default(),
            budget: Budget {
                requests: self.config.requests,
                withdrawals: self.config.withdrawals,
                crashes: self.config.crashes,
                store_faults: self.config.store_faults,
                kube_faults: self.config.kube_faults,
                partitions: self.config.partitions,
                disasters: self.config.disasters,
                stuck_kinds: self.config.stuck_kinds,
                slow_calls: self.config.slow_calls,
                outages: self.config.outages,
                clock_steps: self.config.clock_steps,
                skews: self.config.skews,
                handovers: self.config.handovers,
                deletions: self.config.deletions,
                misconfigs: self.config.misconfigs,
                drifts: self.config.drifts,
                stuck_volumes: self.config.stuck_volumes,
                interventions: self.config.interventions,
                hook_faults: self.config.hook_faults,
                stale_views: self.config.stale_views,
            },
            calm_since: 0,
            marks: Marks::default(),
        };
        if self.config.first_start_misconfigured {
            // A new group: nothing bound or owned, no heartbeat proved; both operators
            // just started, the standby's configured as the active cluster.
            for r in &mut world.records {
                r.bound = [None, None];
                r.instance = [None, None];
            }
            world.memories = [Memory::started(1), Memory::started(2)];
            world.slot = [Cluster::A, Cluster::A];
            world.marks.silenced = [false, true];
        }
        vec![world]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Act>) {
        if self.can_tick(w) {
            actions.push(Act::Tick);
        }
        let b = &w.budget;
        for c in Cluster::ALL {
            let i = c.index();
            if !w.alive[i] {
                continue;
            }
            self.environment(w, c, actions);
            if w.down[i].is_some() {
                actions.push(Act::Up(c));
                continue;
            }
            if let Some(busy) = w.busy[i] {
                actions.push(Act::Finish(c, true));
                if w.tick >= busy.until.saturating_sub(1) {
                    actions.push(Act::Finish(c, false));
                }
            }
            // Clock steps, skews and outages strike between ticks (within a tick every
            // action is instantaneous anyway), which keeps the interleavings few.
            let boundary = self.quiescent(w);
            if b.outages > 0 && boundary {
                actions.push(Act::Down(c));
            }
            let d = self.decision(w, c);
            // A turn on caches that have not caught up, where that changes the decision.
            if b.stale_views > 0 && w.cached[i].is_some() {
                let stale = self.stale_decision(w, c);
                if stale != d && !matches!(stale.action, Action::Wait(_)) {
                    actions.push(Act::Operator(c, Fault::StaleView));
                }
            }
            match d.action {
                Action::Wait(_) => {}
                Action::Read | Action::Write(_) => {
                    actions.push(Act::Operator(c, Fault::None));
                    if b.store_faults > 0 && !w.cut_off[i] {
                        actions.push(Act::Operator(c, Fault::StoreUnavailable));
                        if matches!(d.action, Action::Write(_)) {
                            actions.push(Act::Operator(c, Fault::AmbiguousApplied));
                            if w.in_transit.is_none() {
                                actions.push(Act::Operator(c, Fault::AmbiguousDelayed));
                            }
                        }
                    }
                }
                Action::Hook(_) => {
                    actions.push(Act::Operator(c, Fault::None));
                    if b.hook_faults > 0 {
                        actions.push(Act::Operator(c, Fault::HookFails));
                    }
                    if b.slow_calls > 0 {
                        actions.push(Act::Operator(c, Fault::Slow));
                    }
                }
                Action::Effect(_) => {
                    actions.push(Act::Operator(c, Fault::None));
                    if b.kube_faults > 0 {
                        actions.push(Act::Operator(c, Fault::KubeError));
                    }
                    if b.slow_calls > 0 {
                        actions.push(Act::Operator(c, Fault::Slow));
                    }
                }
                Action::Fence(steps) => {
                    actions.push(Act::Operator(c, Fault::None));
                    if b.kube_faults > 0 {
                        for step in steps.iter() {
                            actions.push(Act::Operator(c, Fault::FenceStepError(step)));
                        }
                    }
                }
            }
            if b.crashes > 0 {
                actions.push(Act::Crash(c));
            }
            if b.disasters > 0 && w.records[0].active == c {
                actions.push(Act::Disaster(c));
            }
            if b.partitions > 0 && !w.cut_off[i] {
                actions.push(Act::CutOff(c));
            }
            if w.cut_off[i] {
                actions.push(Act::Heal(c));
            }
            if b.stuck_kinds > 0 && w.stuck[i].is_none() {
                for r in STUCK_RESOURCES {
                    actions.push(Act::Stick(c, r));
                }
            }
            if b.clock_steps > 0 && boundary {
                actions.push(Act::StepClock(c, true));
                actions.push(Act::StepClock(c, false));
            }
            if b.skews > 0 && boundary {
                actions.push(Act::Skew(c));
            }
            // A hand-over may come at any moment: between a decision and its call, or
            // while a call is in progress.
            if b.handovers > 0 {
                actions.push(Act::Handover(c));
            }
            if b.misconfigs > 0 && w.slot[i] == c {
                actions.push(Act::Misconfigure(c));
            }
            if w.slot[i] != c {
                actions.push(Act::Reconfigure(c));
            }
            if b.drifts > 0 {
                actions.push(Act::Drift(c));
            }
            if w.clusters[i].inventory() != 0 {
                actions.push(Act::Relabel(c));
            }
            if b.stuck_volumes > 0 && !w.csi_stuck[i] {
                actions.push(Act::StickVolumes(c));
            }
        }
        if b.interventions > 0 && !w.gone {
            for a in Intervention::ALL {
                if a.allowed(&w.records[0], self.config.variant) {
                    actions.push(Act::Intervene(a));
                }
            }
        }
        // The ghost may act at any moment, or never: it does not hold up a tick.
        if let Some(g) = &w.ghost
            && w.alive[g.cluster.index()]
            && self.ghost_decision(w).is_some_and(|d| d.is_urgent())
        {
            actions.push(Act::Ghost);
        }
        if let Some(g) = &w.ghost
            && w.alive[g.cluster.index()]
            && let Some(b) = g.busy
        {
            actions.push(Act::GhostFinish(true));
            if w.tick >= b.until.saturating_sub(1) {
                actions.push(Act::GhostFinish(false));
            }
        }
        for &at in &self.config.request_at {
            let free = w.asked[at.index()].is_none_or(|a| a.settled(&w.records[0]));
            if b.requests == 0 || !w.alive[at.index()] || !free {
                continue;
            }
            let standby = w.records[0].active.peer();
            for to in Cluster::ALL {
                if to != standby && !self.config.any_direction {
                    continue;
                }
                for mode in &self.config.modes {
                    actions.push(Act::Request(at, to, *mode));
                }
            }
        }
        if b.withdrawals > 0 {
            for at in Cluster::ALL {
                let live =
                    w.asked[at.index()].is_some_and(|a| !a.withdrawn && !a.settled(&w.records[0]));
                if live && w.alive[at.index()] {
                    actions.push(Act::Withdraw(at));
                }
            }
        }
        if w.in_transit.is_some() {
            actions.push(Act::Deliver);
        }
        if b.deletions > 0 && !w.gone {
            actions.push(Act::Delete);
        }
        // The operator action waits until both operators found the record missing and
        // both clusters are stopped (or gone).
        let noticed = Cluster::ALL.into_iter().all(|c| {
            let i = c.index();
            !w.alive[i] || (w.down[i].is_none() && w.memories[i].missing && stopped(&w.clusters[i]))
        });
        if w.gone && noticed && Record::recreated(w.traces).is_some() {
            actions.push(Act::Recreate);
        }
        if w.records.len() == 2 && w.records[0] != w.records[1] {
            actions.push(Act::Replicate(0));
            actions.push(Act::Replicate(1));
        }
    }

    fn next_state(&self, last: &World, action: Act) -> Option<World> {
        let mut w = last.clone();
        self.step(&mut w, action);
        let [a, b] = &w.clusters;
        w.audit.settle_fences([a, b]);
        Some(w)
    }

    fn format_action(&self, action: &Act) -> String {
        format!("{action:?}")
    }

    fn format_step(&self, last: &World, action: Act) -> Option<String> {
        let next = self.next_state(last, action)?;
        Some(trace::describe_step(self, last, action, &next))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties()
    }
}

impl FailoverModel {
    /// The controllers of `c`'s cluster that have something to converge (they run
    /// whether or not the operator does).
    fn environment(&self, w: &World, c: Cluster, actions: &mut Vec<Act>) {
        let s = &w.clusters[c.index()];
        if s.workloads_running != s.workloads_up {
            actions.push(Act::Kubelet(c));
        }
        if s.volume_status != s.volume_spec && !w.csi_stuck[c.index()] {
            actions.push(Act::Csi(c));
        }
        if flux_differs(s) {
            actions.push(Act::Flux(c));
        }
        if w.cached[c.index()].is_some() {
            actions.push(Act::CatchUp(c));
        }
    }

    fn step(&self, w: &mut World, action: Act) {
        match action {
            Act::Tick => {
                w.tick += 1;
                w.marks.demotion_lagged |= w.demoting.iter().any(Option::is_some);
                // A pause between deciding and sending ends within the deployment rule's
                // bound (a quarter of the fence margin, less than a tick): a decision the
                // ghost has not sent by now is never sent.
                if let Some(g) = w.ghost.as_mut() {
                    g.pending = None;
                }
                // A process that replaced another holds back for a while on purpose
                // (`Memory::hold_until`): the calm that bounds progress starts after it.
                let timing = self.config.timing;
                let held = Cluster::ALL.into_iter().any(|c| {
                    w.memories[c.index()]
                        .hold_until(&timing)
                        .is_some_and(|until| self.now(w, c) < until)
                });
                if held {
                    Self::disturb(w);
                }
            }
            Act::Operator(c, fault) => {
                match fault {
                    Fault::None => {}
                    Fault::KubeError | Fault::FenceStepError(_) => w.budget.kube_faults -= 1,
                    Fault::HookFails => w.budget.hook_faults -= 1,
                    Fault::Slow => w.budget.slow_calls -= 1,
                    Fault::StaleView => w.budget.stale_views -= 1,
                    _ => w.budget.store_faults -= 1,
                }
                if fault != Fault::None {
                    Self::disturb(w);
                }
                self.operator(w, c, fault);
            }
            Act::Kubelet(c) => {
                let before = w.clusters[c.index()];
                let s = &mut w.clusters[c.index()];
                s.workloads_running = s.workloads_up;
                self.by_others(w, c, before);
            }
            Act::Csi(c) => {
                w.demoting[c.index()] = None;
                let before = w.clusters[c.index()];
                let s = &mut w.clusters[c.index()];
                s.volume_status = s.volume_spec;
                self.by_others(w, c, before);
            }
            Act::CatchUp(c) => w.cached[c.index()] = None,
            Act::Flux(c) => {
                let before = w.clusters[c.index()];
                let s = &mut w.clusters[c.index()];
                s.workloads_up = true;
                s.network_open = true;
                s.cronjobs_suspended = false;
                self.by_others(w, c, before);
            }
            Act::Request(at, to, mode) => {
                let id = self.next_failover_id(w);
                w.budget.requests -= 1;
                w.asked[at.index()] = Some(Asked {
                    request: Request { id, to, mode },
                    refused: false,
                    withdrawn: false,
                });
                Self::disturb(w);
            }
            Act::Withdraw(at) => {
                w.budget.withdrawals -= 1;
                if let Some(a) = w.asked[at.index()].as_mut() {
                    a.withdrawn = true;
                }
                Self::disturb(w);
            }
            Act::Crash(c) => {
                if let Some(stage) = self.decision(w, c).stage {
                    w.marks.crash_stages |= 1 << stage.index();
                }
                w.budget.crashes -= 1;
                Self::restart(w, c);
                Self::disturb(w);
            }
            Act::Disaster(c) => {
                w.budget.disasters -= 1;
                w.alive[c.index()] = false;
                w.memories[c.index()] = Memory::default();
                w.busy[c.index()] = None;
                w.down[c.index()] = None;
                w.marks.disrupted = true;
                w.marks.silenced[c.index()] = true;
                Self::disturb(w);
            }
            Act::CutOff(c) => {
                w.budget.partitions -= 1;
                w.cut_off[c.index()] = true;
                w.marks.disrupted = true;
                w.marks.silenced[c.index()] = true;
                Self::disturb(w);
            }
            Act::Heal(c) => {
                w.cut_off[c.index()] = false;
                Self::disturb(w);
            }
            Act::Stick(c, r) => {
                w.budget.stuck_kinds -= 1;
                w.stuck[c.index()] = Some(r);
                w.marks.disrupted = true;
                Self::disturb(w);
            }
            Act::Finish(c, applied) => {
                let i = c.index();
                if let Some(b) = w.busy[i].take() {
                    let (now, ok) = self.end_call(w, c, b, applied);
                    let timing = self.config.timing;
                    match b.call {
                        Call::Hook(_, (id, _, at)) => {
                            w.memories[i].on_hook(HookRun { id, at, ok }, now, &timing)
                        }
                        Call::Effect(_) => w.memories[i].on_kube(now, &timing, ok),
                    }
                }
                if !applied {
                    Self::disturb(w);
                }
            }
            Act::Down(c) => {
                let i = c.index();
                w.budget.outages -= 1;
                w.down[i] = Some(w.tick);
                Self::restart(w, c);
                w.marks.disrupted = true;
                w.marks.silenced[i] = true;
                Self::disturb(w);
            }
            Act::Up(c) => {
                w.down[c.index()] = None;
                Self::disturb(w);
            }
            Act::StepClock(c, forward) => {
                let i = c.index();
                w.budget.clock_steps -= 1;
                let k = self.config.clock_step;
                w.wall[i] = if forward {
                    w.wall[i] + k
                } else {
                    w.wall[i].saturating_sub(k)
                };
                Self::disturb(w);
            }
            Act::Skew(c) => {
                w.budget.skews -= 1;
                w.offset[c.index()] += self.config.timing.clock_drift_max;
                Self::disturb(w);
            }
            Act::Handover(c) => {
                w.budget.handovers -= 1;
                let busy = w.busy[c.index()].take();
                let pending = Some(self.decision(w, c))
                    .filter(|d| {
                        matches!(
                            d.action,
                            Action::Effect(_) | Action::Write(_) | Action::Fence(_)
                        )
                    })
                    .filter(|_| busy.is_none());
                w.ghost = Some(Box::new(Ghost {
                    cluster: c,
                    memory: w.memories[c.index()].clone(),
                    pending,
                    busy,
                }));
                Self::restart(w, c);
                w.marks.disrupted = true;
                Self::disturb(w);
            }
            Act::Ghost => {
                self.ghost_turn(w);
                Self::disturb(w);
            }
            Act::GhostFinish(applied) => {
                self.ghost_finish(w, applied);
                Self::disturb(w);
            }
            Act::Deliver => {
                if let Some(wr) = w.in_transit.take() {
                    let rep = self.replica(w, wr.by);
                    self.deliver(w, rep, &wr);
                }
                // A delayed heartbeat that lands is a sign of life the peer must wait
                // out again (a lease from then): the calm starts over.
                Self::disturb(w);
            }
            Act::Delete => {
                w.budget.deletions -= 1;
                w.gone = true;
                // Nobody can heartbeat: each side may see the other's lease run out.
                w.marks.silenced = [true, true];
                w.marks.disrupted = true;
                Self::disturb(w);
            }
            Act::Recreate => {
                if let Some(after) = Record::recreated(w.traces) {
                    let before = w.records[0].clone();
                    w.audit.on_recreated(&before, &after);
                    w.records[0] = after;
                    w.gone = false;
                    w.marks.recreated = true;
                }
                Self::disturb(w);
            }
            Act::Misconfigure(c) => {
                w.budget.misconfigs -= 1;
                Self::restart(w, c);
                w.slot[c.index()] = c.peer();
                // Its own slot's heartbeats stop.
                w.marks.silenced[c.index()] = true;
                Self::disturb(w);
            }
            Act::Reconfigure(c) => {
                Self::restart(w, c);
                Self::disturb(w);
            }
            Act::Drift(c) => {
                w.budget.drifts -= 1;
                let s = &mut w.specs[c.index()];
                s.members ^= 1;
                Self::disturb(w);
            }
            Act::Relabel(c) => {
                let i = c.index();
                w.clusters[i].agreement = Agreements::ALL;
                w.specs[i].inventory = w.clusters[i].inventory();
                Self::disturb(w);
            }
            Act::StickVolumes(c) => {
                w.budget.stuck_volumes -= 1;
                w.csi_stuck[c.index()] = true;
                w.marks.disrupted = true;
                Self::disturb(w);
            }
            Act::Intervene(action) => {
                w.budget.interventions -= 1;
                if let Some(wr) = action.write(&w.records[0], w.tick) {
                    let applied = matches!(self.deliver(w, 0, &wr), Reply::Applied(_));
                    w.marks.retried |= applied && action == Intervention::Retry;
                    w.marks.aborted_by_person |= applied && action == Intervention::Abort;
                }
                Self::disturb(w);
            }
            Act::Replicate(from) => {
                let to = 1 - from;
                let before = w.records[to].clone();
                w.records[to] = w.records[from].clone();
                w.audit.on_replicated(&before, &w.records[to]);
            }
        }
    }
}

macro_rules! invariant_props {
    ($($inv:ident),* $(,)?) => {
        vec![$(Property::always(Invariant::$inv.name(), |m: &FailoverModel, w: &World| {
            Invariant::$inv.holds(&m.snapshot(w))
        })),*]
    };
}

macro_rules! sometimes {
    ($($name:literal => |$w:ident| $seen:expr),* $(,)?) => {
        vec![$(Property::sometimes($name, |_: &FailoverModel, $w: &World| $seen)),*]
    };
}

macro_rules! crash_props {
    ($($name:literal => $stage:expr),* $(,)?) => {
        vec![$(Property::sometimes($name, |_: &FailoverModel, w: &World| {
            w.marks.crash_stages & (1 << $stage.index()) != 0
        })),*]
    };
}

fn completed(w: &World, pred: fn(Outcome) -> bool) -> bool {
    w.records
        .iter()
        .any(|r| r.history.iter().any(|h| pred(h.outcome)))
}

/// All properties, in report order.
pub fn properties() -> Vec<Property<FailoverModel>> {
    let mut props = invariant_props![
        NoTwoWriters,
        NoTwoPrimaries,
        LockExclusive,
        TokensIncrease,
        NoStaleWrite,
        PromoteAfterDemote,
        TrafficOnlyWhenReady,
        StepAtMostOnce,
        OneHistoryRecord,
    ];
    props.push(Property::always("settled-when-idle", settled_when_idle));
    props.push(Property::always("progress-when-calm", progress_when_calm));
    props.push(Property::always(
        "uptime-keeps-serving",
        uptime_keeps_serving,
    ));
    props.push(Property::always(
        "planned-never-forced",
        planned_never_forced,
    ));
    props.push(Property::always(
        "stuck-failover-surfaces",
        stuck_failover_surfaces,
    ));
    props.push(Property::always(
        "abort-ask-stays-possible",
        abort_ask_stays_possible,
    ));
    props.extend(sometimes![
        "consistency-failover-done" => |w| completed(w, |o| o == Outcome::Completed(PlanKind::Planned(Mode::Consistency))),
        "uptime-failover-done" => |w| completed(w, |o| o == Outcome::Completed(PlanKind::Planned(Mode::Uptime))),
        "forced-failover-done" => |w| completed(w, |o| o == Outcome::Completed(PlanKind::Forced)),
        "failover-aborted" => |w| completed(w, |o| matches!(o, Outcome::Aborted(_))),
        "deadline-rolled-back" => |w| completed(w, |o| matches!(o, Outcome::Aborted(AbortReason::Deadline(_)))),
        "needs-operator-flagged" => |w| w.marks.flagged,
        "person-retried" => |w| w.marks.retried,
        "person-resolved" => |w| completed(w, |o| o == Outcome::Resolved),
        "person-aborted" => |w| completed(w, |o| o == Outcome::Aborted(AbortReason::Person)),
    ]);
    props.extend(crash_props![
        "crash-in-initialization" => Stage::Initialization,
        "crash-in-source-preparation" => Stage::SourcePreparation,
        "crash-in-volume-demotion" => Stage::VolumeDemotion,
        "crash-in-volume-promotion" => Stage::VolumePromotion,
        "crash-in-target-activation" => Stage::TargetActivation,
        "crash-in-completion" => Stage::Completion,
    ]);
    props.extend(sometimes![
        "ambiguous-write-retried" => |w| w.marks.ambiguous_retried,
        "call-abandoned-for-fence" => |w| w.marks.call_abandoned,
        "stale-instance-shut-out" => |w| w.marks.ghost_shut_out,
        "request-refused" => |w| w.marks.refused,
        "request-withdrawn" => |w| completed(w, |o| o == Outcome::Withdrawn),
        "request-no-op" => |w| completed(w, |o| o == Outcome::NoOp),
        "record-recreated" => |w| w.marks.recreated,
        "misconfigured-operator-detected" => |w| w.marks.contest_seen,
        "drift-holds-request" => |w| w.marks.drift_held,
        "self-fenced" => |w| w.marks.fenced,
        "demotion-lagged" => |w| w.marks.demotion_lagged,
        "hook-failure-aborted" => |w| completed(w, |o| matches!(o, Outcome::Aborted(AbortReason::Hook(_)))),
        "hook-ran-twice" => |w| w.audit.hook_ran_twice,
    ]);
    props.push(Property::sometimes(
        "uptime-window-two-writers",
        |m: &FailoverModel, w: &World| {
            let s = m.snapshot(w);
            s.uptime_in_flight() && !Invariant::NoTwoWriters.holds(&Snapshot { records: &[], ..s })
        },
    ));
    props
}

/// Names of the properties that apply to a configuration: a `sometimes` property whose
/// ingredients the configuration lacks (no disaster, no partition...) is not expected.
pub fn expected(config: &Config, name: &str) -> bool {
    let has_mode = |m| config.modes.contains(&m);
    match name {
        "consistency-failover-done" => has_mode(Mode::Consistency),
        "uptime-failover-done" | "uptime-window-two-writers" => has_mode(Mode::Uptime),
        "forced-failover-done" => config.disasters > 0 || config.partitions > 0,
        "self-fenced" => config.partitions > 0,
        "demotion-lagged" => config.demotion_ticks > 0,
        "call-abandoned-for-fence" => {
            config.slow_calls > 0
                && config.partitions > 0
                && config.variant != Variant::HeartbeatBehindTasks
        }
        "failover-aborted" => config.partitions > 0,
        "stale-instance-shut-out" => config.handovers > 0 && config.variant != Variant::StaleLeader,
        "ambiguous-write-retried" => config.store_faults > 0,
        "request-refused" | "request-no-op" => config.any_direction && config.requests > 1,
        "request-withdrawn" => config.withdrawals > 0,
        "record-recreated" => config.deletions > 0,
        "needs-operator-flagged" | "person-retried" => {
            config.stuck_volumes > 0 && config.variant != Variant::NoStageDeadline
        }
        // Only consistency mode has a cluster step before the promotion (the source's
        // demotion); a `needs-operator` target phase is resolvable in consistency mode
        // (in uptime the source's demotion is what sticks after the promotion).
        "person-resolved" | "deadline-rolled-back" => {
            config.stuck_volumes > 0
                && config.variant != Variant::NoStageDeadline
                && config.modes.contains(&Mode::Consistency)
        }
        "person-aborted" => config.interventions > 0,
        "misconfigured-operator-detected" => {
            config.misconfigs > 0 && config.variant != Variant::NoIdentityCheck
        }
        "drift-holds-request" => {
            config.drifts > 0
                || (config.unlabelled && config.variant != Variant::EmptySelectionDone)
        }
        n if n.starts_with("crash-in-") => config.crashes > 0,
        "hook-failure-aborted" => !config.hooks.is_empty() && config.hook_faults > 0,
        "hook-ran-twice" => !config.hooks.is_empty() && config.crashes > 0,
        _ => true,
    }
}

/// Nothing left to do (every live operator waits for a change that nobody will make, the
/// controllers converged, the store reachable) means the failover ended and the lock is free.
/// An operator's wait is judged with a current view of the record: a stale view (the
/// `deep` check found one after a second request) is refreshed by the next heartbeat, so
/// it is not "nothing left to do".
fn settled_when_idle(m: &FailoverModel, w: &World) -> bool {
    // A `needs-operator` failover waits for its stuck objects or a person, by design.
    let settled = w
        .records
        .iter()
        .all(|r| r.failover.is_some_and(|f| f.stuck) || (r.failover.is_none() && r.lock.is_none()));
    // Judged first: it is cheap, and most states are settled or not quiet (the
    // decisions below clone both memories).
    if settled || w.cut_off.contains(&true) || w.gone || w.slot != Cluster::ALL {
        return true;
    }
    // An operator with a call in progress is not idle: the call ends (by its deadline).
    let idle = Cluster::ALL.into_iter().all(|c| {
        !w.alive[c.index()]
            || (m.controllers_settled(w, c)
                && w.busy[c.index()].is_none()
                && matches!(
                    m.decision_informed(w, c).action,
                    Action::Wait(Wake::Idle(_) | Wake::Change)
                ))
    });
    // An operator configured as the wrong cluster waits for a person to fix it (a
    // failover in flight waits for it too); a cut-off one for the store.
    !idle
}

/// No fault that keeps an operator from acting is in force: none cut off, the record
/// there, every operator up and configured as its own cluster, no kind stuck.
fn undisturbed(w: &World) -> bool {
    !w.cut_off.contains(&true)
        && !w.gone
        && w.down == [None, None]
        && w.stuck == [None, None]
        && w.slot == Cluster::ALL
}

/// A stuck resource (a volume that never reports its new role) never leaves a failover
/// in flight unnoticed: once the deadline and the calm bound have passed, the failover
/// has ended (rolled back, completed) or the record flags it `needs-operator`.
fn stuck_failover_surfaces(m: &FailoverModel, w: &World) -> bool {
    let deadline = m.config.timing.stage_deadline.iter().max().copied();
    let calm = undisturbed(w)
        && w.alive == [true, true]
        && w.tick
            >= w.calm_since + Time::from(m.config.progress_ticks) + deadline.unwrap_or_default();
    if !calm || !m.quiescent(w) {
        return true;
    }
    w.records[0].failover.is_none_or(|f| f.stuck)
}

/// Bounded progress: after `progress_ticks` calm ticks the failover is over, the lock
/// free, the request served, the active cluster (if alive) serving and the other at rest.
fn progress_when_calm(m: &FailoverModel, w: &World) -> bool {
    // An operator that is down is no calm either: since issue 10 a request made in its
    // cluster waits for it (`outage-beyond-lease`, down for ever, found this).
    let calm = undisturbed(w)
        && w.csi_stuck == [false, false]
        && w.specs[0] == w.specs[1]
        && w.clusters.iter().all(|s| s.inventory() == 0)
        && w.tick >= w.calm_since + Time::from(m.config.progress_ticks);
    // Judged at tick boundaries: once every live operator and controller is done for now.
    if !calm || !m.quiescent(w) {
        return true;
    }
    let r = &w.records[0];
    let active = r.active;
    // Every request ended (completed, aborted, a no-op, withdrawn) or was refused; a
    // request that never left a cluster now lost was never accepted.
    let served = r.request.is_none()
        && Cluster::ALL.into_iter().all(|c| {
            w.asked[c.index()]
                .is_none_or(|a| a.settled(r) || !w.alive[c.index()] && !r.accepted(a.request.id))
        });
    let active_ok = !w.alive[active.index()] || w.clusters[active.index()].serves();
    let passive = active.peer();
    let passive_ok = !w.alive[passive.index()]
        || STOP
            .iter()
            .all(|s| s.satisfied(&w.clusters[passive.index()]));
    r.failover.is_none() && r.lock.is_none() && served && active_ok && passive_ok
}

/// A person's abort, once the record accepted it, stays possible until it is carried
/// out: the failover never moves past the point where a roll back is safe while the ask
/// stands (else the ask stays for ever, and in uptime mode the source's hand-off is
/// refused on every try: the simulator found that livelock, issue 13).
fn abort_ask_stays_possible(m: &FailoverModel, w: &World) -> bool {
    w.records.iter().all(|r| {
        r.failover.is_none_or(|f| {
            f.asked != Some(Intervention::Abort)
                || f.plan(m.config.variant).abortable(f.kind, f.done)
        })
    })
}

/// A failover is forced (the target takes the lock without the source) only from a
/// source whose operator was kept from heartbeating (cut off, down, its cluster lost):
/// never while it heartbeats, whichever cluster had the request.
fn planned_never_forced(_: &FailoverModel, w: &World) -> bool {
    w.records.iter().all(|r| {
        let forced_in_flight = r
            .failover
            .filter(|f| f.kind == PlanKind::Forced)
            .map(|f| f.source);
        // A completed forced failover made its target active: its source is the other.
        let forced_done = r
            .history
            .iter()
            .any(|h| h.outcome == Outcome::Completed(PlanKind::Forced));
        let source_ok = |s: Cluster| w.marks.silenced[s.index()];
        forced_in_flight.is_none_or(source_ok) && (!forced_done || w.marks.silenced.contains(&true))
    })
}

/// What uptime mode still guarantees: while no partition or disaster happened, some
/// cluster serves at every step of an uptime failover.
fn uptime_keeps_serving(m: &FailoverModel, w: &World) -> bool {
    let s = m.snapshot(w);
    if !s.uptime_in_flight() || w.marks.disrupted || w.marks.fenced {
        return true;
    }
    Cluster::ALL
        .into_iter()
        .any(|c| w.alive[c.index()] && w.clusters[c.index()].serves())
}
