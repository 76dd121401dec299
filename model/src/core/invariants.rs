//! The safety invariants of the design, as named pure predicates over a snapshot of both
//! clusters, the record and the operators' memories, plus the [`Audit`]: the facts about
//! the past that a single snapshot cannot show (was a stale write ever accepted?), kept
//! by whoever drives the protocol (the stateright model, the simulator) through the
//! `on_*` hooks, so that all drivers judge runs the same way.

use super::store::{Op, Write};
use super::types::{Cluster, ClusterState, FailoverId, Mode, PlanKind, Record, VolumeRole};

/// Facts about the run so far that invariants need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Audit {
    /// A write carrying an older token than the record's was accepted.
    pub stale_write_accepted: bool,
    /// A record's token went down.
    pub token_regressed: bool,
    /// Volumes were promoted while the peer's were not confirmed secondary (and the
    /// peer was alive) outside an uptime failover.
    pub bad_promotion: bool,
    /// A journal step was accepted twice.
    pub step_applied_twice: bool,
    /// A plan step not yet journaled changed a cluster while the store did not name that
    /// cluster's operator as the lock holder.
    pub effect_without_lock: bool,
    /// Journal steps accepted so far: (failover, plan, position). A forced takeover
    /// restarts the journal under the forced plan, hence the plan in the key.
    pub journaled: Vec<(FailoverId, PlanKind, u32)>,
    /// Per cluster: a self-fence attempt is running (drivers that can see inside one).
    pub fencing: [bool; 2],
    /// Per cluster: the last self-fence attempt could not apply every step, so traffic
    /// may still reach what it stopped. A fence puts stopping writers before keeping
    /// traffic away from them (the simulator found traffic open to stopped pods after a
    /// failed network step). Cleared by a complete attempt, a deliberate change of the
    /// cluster's traffic, or once the cluster is consistent again (`settle_fences`).
    pub fence_incomplete: [bool; 2],
    /// A hook started on a cluster that the store did not name as the lock's holder
    /// with the failover at the hook's step.
    pub hook_without_lock: bool,
    /// A hook step whose policy is to abort was journaled (passed) while its latest run
    /// had failed.
    pub failed_hook_passed: bool,
    /// Hook steps that ran so far, (failover, plan, position), and whether the latest
    /// run of each failed where its policy is to abort.
    pub hooks_ran: Vec<(FailoverId, PlanKind, u32, bool)>,
    /// Some hook step ran more than once (a crash after it ran, before the journal
    /// recorded it): hooks run at least once, not exactly once.
    pub hook_ran_twice: bool,
}

impl Audit {
    /// A hook of `by` starts for failover `id` (of plan `kind`) at journal position
    /// `at`, while the store holds `record`.
    pub fn on_hook_start(
        &mut self,
        record: &Record,
        by: Cluster,
        (id, kind, at): (FailoverId, PlanKind, u32),
    ) {
        let here = record
            .failover
            .is_some_and(|f| f.id == id && f.kind == kind && f.done == at);
        if !here || record.holder() != Some(by) {
            self.hook_without_lock = true;
        }
        if self
            .hooks_ran
            .iter()
            .any(|h| (h.0, h.1, h.2) == (id, kind, at))
        {
            self.hook_ran_twice = true;
        }
    }

    /// That hook's run ended: `ok`, or failed; `aborts`: its policy is to abort.
    pub fn on_hook_end(
        &mut self,
        (id, kind, at): (FailoverId, PlanKind, u32),
        ok: bool,
        aborts: bool,
    ) {
        let failed = !ok && aborts;
        match self
            .hooks_ran
            .iter_mut()
            .find(|h| (h.0, h.1, h.2) == (id, kind, at))
        {
            Some(h) => h.3 = failed,
            None => self.hooks_ran.push((id, kind, at, failed)),
        }
    }

    /// The store accepted `w`, turning `before` into `after`.
    pub fn on_write_accepted(&mut self, before: &Record, after: &Record, w: &Write) {
        if w.op.token().is_some_and(|t| t < before.token) {
            self.stale_write_accepted = true;
        }
        if after.token < before.token {
            self.token_regressed = true;
        }
        let kind = after.failover.or(before.failover).map(|f| f.kind);
        if let (Some((id, at)), Some(kind)) = (w.op.journal_key(), kind) {
            let key = (id, kind, at);
            if self.journaled.contains(&key) {
                self.step_applied_twice = true;
            } else {
                self.journaled.push(key);
            }
            if matches!(w.op, Op::Journal { .. })
                && self.hooks_ran.iter().any(|h| (h.0, h.1, h.2) == key && h.3)
            {
                self.failed_hook_passed = true;
            }
        }
    }

    /// The record went missing while it was `before` and was created again as
    /// `after`: its token must not go down (a stale write of the old record would then
    /// be accepted). The journal starts over: the failover in flight, if any, is gone,
    /// and a request re-submitted with its id runs its steps again.
    pub fn on_recreated(&mut self, before: &Record, after: &Record) {
        if after.token < before.token {
            self.token_regressed = true;
        }
        self.journaled.clear();
    }

    /// A replica of the record was overwritten (multi-region replication).
    pub fn on_replicated(&mut self, before: &Record, after: &Record) {
        if after.token < before.token {
            self.token_regressed = true;
        }
    }

    /// The effect of plan step `at` changed `by`'s cluster while `record` was the
    /// store's state. Re-applying a step the journal already recorded is a restore and
    /// allowed; acting on an unrecorded step without holding the lock is not.
    pub fn on_plan_effect(&mut self, record: &Record, by: super::types::Cluster, at: u32) {
        let recorded = record.failover.is_some_and(|f| f.done > at);
        if !recorded && record.holder() != Some(by) {
            self.effect_without_lock = true;
        }
    }

    /// A self-fence attempt of `cluster` starts.
    pub fn on_fence_start(&mut self, cluster: Cluster) {
        self.fencing[cluster.index()] = true;
    }

    /// A self-fence attempt of `cluster` ended; `complete`: every step applied.
    pub fn on_fence_end(&mut self, cluster: Cluster, complete: bool) {
        self.fencing[cluster.index()] = false;
        self.fence_incomplete[cluster.index()] = !complete;
    }

    /// After any event: a cluster that serves (traffic open to ready workloads on
    /// primary volumes), or whose traffic is closed with Flux suspended (nothing will
    /// reopen it), is consistent again, whatever a fence left undone before. (Closed
    /// traffic alone is not enough: the model found Flux, left running by a failed
    /// fence step, reopening it to demoted volumes.)
    pub fn settle_fences(&mut self, clusters: [&ClusterState; 2]) {
        for (i, c) in clusters.iter().enumerate() {
            let serves = c.network_open && c.ready_for_traffic();
            let closed = !c.network_open && c.flux_suspended;
            if self.fence_incomplete[i] && (serves || closed) {
                self.fence_incomplete[i] = false;
            }
        }
    }

    /// `cluster`'s traffic was deliberately disabled or enabled by a step.
    pub fn on_network_set(&mut self, cluster: Cluster) {
        self.fence_incomplete[cluster.index()] = false;
    }

    /// `cluster`'s volumes were set to primary; `peer` is the other cluster's state and
    /// `uptime_in_flight` says an uptime failover (which gives this guarantee up) runs.
    pub fn on_promoted(&mut self, peer: &ClusterState, peer_alive: bool, uptime_in_flight: bool) {
        let peer_secondary = peer.volume_spec == VolumeRole::Secondary
            && peer.volume_status == VolumeRole::Secondary;
        if peer_alive && !peer_secondary && !uptime_in_flight {
            self.bad_promotion = true;
        }
    }
}

/// Everything the invariants look at: both clusters, the store, the audit.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Both clusters' resources.
    pub clusters: [&'a ClusterState; 2],
    /// Which clusters still exist (a disaster removes one for good).
    pub alive: [bool; 2],
    /// The record (each replica, for a multi-region store).
    pub records: &'a [Record],
    /// The audit of the run so far.
    pub audit: &'a Audit,
}

impl Snapshot<'_> {
    /// An uptime failover is in flight in some replica: its window of two writers is open.
    pub fn uptime_in_flight(&self) -> bool {
        self.records.iter().any(|r| {
            r.failover
                .is_some_and(|f| f.kind == PlanKind::Planned(Mode::Uptime))
        })
    }

    fn live(&self) -> impl Iterator<Item = &ClusterState> + '_ {
        Cluster::ALL
            .into_iter()
            .filter(|c| self.alive[c.index()])
            .map(|c| self.clusters[c.index()])
    }
}

/// The named safety invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// At most one live cluster has primary volumes with pods, CronJobs or traffic.
    NoTwoWriters,
    /// At most one live cluster has primary volumes.
    NoTwoPrimaries,
    /// The store names at most one lock holder, and only the holder changes its cluster
    /// for a plan step the journal has not recorded yet. (A belief in holding the lock
    /// can always be stale under message delay; acting on it for new work while another
    /// holds the lock must never happen.)
    LockExclusive,
    /// Fencing tokens never go down.
    TokensIncrease,
    /// A write with a stale token is never accepted.
    NoStaleWrite,
    /// Volumes are promoted only once the peer's are confirmed secondary, or the peer is gone.
    PromoteAfterDemote,
    /// Traffic is open only where workloads are ready on primary volumes (except on a
    /// cluster whose self-fence is running or could not apply every step).
    TrafficOnlyWhenReady,
    /// Each journal step is accepted at most once, even when retried after an ambiguous outcome.
    StepAtMostOnce,
    /// Each ended failover has exactly one history record, and no record names one in flight.
    OneHistoryRecord,
    /// A hook starts only on the cluster the store names as the lock's holder, with the
    /// failover at the hook's step.
    HookOnlyWithLock,
    /// A hook whose policy is to abort is never passed after a failed run: its failure
    /// rolls the failover back (the source restores what it stopped), or, where no roll
    /// back is safe any more, the hook is retried until it succeeds or a person acts.
    FailedHookStops,
}

impl Invariant {
    /// All invariants.
    pub const ALL: [Invariant; 11] = [
        Invariant::NoTwoWriters,
        Invariant::NoTwoPrimaries,
        Invariant::LockExclusive,
        Invariant::TokensIncrease,
        Invariant::NoStaleWrite,
        Invariant::PromoteAfterDemote,
        Invariant::TrafficOnlyWhenReady,
        Invariant::StepAtMostOnce,
        Invariant::OneHistoryRecord,
        Invariant::HookOnlyWithLock,
        Invariant::FailedHookStops,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoTwoWriters => "no-two-writers",
            Invariant::NoTwoPrimaries => "no-two-primaries",
            Invariant::LockExclusive => "lock-exclusive",
            Invariant::TokensIncrease => "tokens-increase",
            Invariant::NoStaleWrite => "no-stale-write",
            Invariant::PromoteAfterDemote => "promote-after-demote",
            Invariant::TrafficOnlyWhenReady => "traffic-only-when-ready",
            Invariant::StepAtMostOnce => "step-at-most-once",
            Invariant::OneHistoryRecord => "one-history-record",
            Invariant::HookOnlyWithLock => "hook-only-with-lock",
            Invariant::FailedHookStops => "failed-hook-stops",
        }
    }

    /// Whether the invariant holds in `s`.
    pub fn holds(self, s: &Snapshot<'_>) -> bool {
        match self {
            Invariant::NoTwoWriters => {
                s.uptime_in_flight() || s.live().filter(|c| c.is_writer()).count() <= 1
            }
            Invariant::NoTwoPrimaries => {
                s.uptime_in_flight() || s.live().filter(|c| c.volumes_primary()).count() <= 1
            }
            Invariant::LockExclusive => {
                let holders: Vec<Cluster> = s.records.iter().filter_map(Record::holder).collect();
                !s.audit.effect_without_lock && holders.windows(2).all(|p| p[0] == p[1])
            }
            Invariant::TokensIncrease => !s.audit.token_regressed,
            Invariant::NoStaleWrite => !s.audit.stale_write_accepted,
            Invariant::PromoteAfterDemote => !s.audit.bad_promotion,
            Invariant::TrafficOnlyWhenReady => Cluster::ALL.into_iter().all(|c| {
                let i = c.index();
                let fence = s.audit.fencing[i] || s.audit.fence_incomplete[i];
                let st = s.clusters[i];
                !s.alive[i] || fence || !st.network_open || st.ready_for_traffic()
            }),
            Invariant::StepAtMostOnce => !s.audit.step_applied_twice,
            Invariant::OneHistoryRecord => s.records.iter().all(|r| {
                let ids: Vec<FailoverId> = r.history.iter().map(|h| h.id).collect();
                let unique = ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id));
                unique && r.failover.is_none_or(|f| !ids.contains(&f.id))
            }),
            Invariant::HookOnlyWithLock => !s.audit.hook_without_lock,
            Invariant::FailedHookStops => !s.audit.failed_hook_passed,
        }
    }

    /// The first invariant `s` violates, if any.
    pub fn first_violated(s: &Snapshot<'_>) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| !i.holds(s))
    }
}
