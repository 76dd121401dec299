//! A safety monitor for failovers on real clusters: it samples both clusters and the
//! record while operators run and judges each sample with the model's invariants, the
//! same predicates the model checker and the simulator use.
//!
//! A sample is not atomic: the clusters are read one after the other, kind by kind. It
//! is taken in an order that makes every reported violation real for a failover from
//! `source` to `target`:
//! 1. the record, 2. the target, 3. the source, 4. the record again.
//!
//! During a failover the target's resources only come up and the source's only go down
//! (until it ends). A target reading "writer" was one when its read ended; a source
//! reading "writer" still was one when its read began, later: both wrote at that moment.
//! The same holds for primary volumes. An uptime failover is exempt (its two-writer
//! window is by design) when either record read shows it in flight, or when a failover
//! ended between the two reads. The argument needs resources to move one way, so the
//! monitor is for failovers that complete: an uptime failover that aborts after the
//! target came up would be reported.
//!
//! Checked per sample: `no-two-writers`, `no-two-primaries`, `one-history-record`; and
//! across all samples, the fencing token never going down (`tokens-increase`) and one
//! lock holder per token (`lock-exclusive`: the lock changes hands only with a new
//! token). `traffic-only-when-ready` needs an atomic read of one
//! cluster's kinds, and the audit invariants (stale writes, steps applied twice,
//! promotion order) need the stream of accepted writes; those are checked by the model
//! and the simulator, where both exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use failover_engine::executor::Operator;
use failover_engine::observe::fold;
use failover_engine::ports::{ClusterPort, StorePort, SystemClock};
use failover_engine::spec::Group;
use failover_model::{Audit, Cluster, Invariant, Mode, Outcome, PlanKind, Record, Snapshot};
use tokio::task::JoinHandle;

/// What the monitor saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Complete samples judged.
    pub samples: usize,
    /// Samples skipped because a cluster or the store could not be read.
    pub skipped: usize,
    /// Violations, each with the sample that showed it.
    pub violations: Vec<String>,
}

/// A running monitor; [`Monitor::stop`] ends it and returns its report.
#[derive(Debug)]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Report>,
}

impl Monitor {
    /// Start sampling every `every`. `source` and `target` observe the group in the two
    /// clusters (observers only: they never take a turn).
    pub fn start<C, S>(
        source: Operator<C, S, SystemClock>,
        target: Operator<C, S, SystemClock>,
        store: S,
        key: String,
        every: Duration,
    ) -> Monitor
    where
        C: ClusterPort + 'static,
        S: StorePort + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Seen::default();
            let audit = Audit::default();
            while !flag.load(Ordering::Relaxed) {
                sample(&source, &target, &store, &key, &audit, &mut seen).await;
                tokio::time::sleep(every).await;
            }
            seen.report
        });
        Monitor { stop, task }
    }

    /// Stop sampling (after the sample in progress, if any) and return the report.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_else(|e| Report {
            violations: vec![format!("the monitor failed: {e}")],
            ..Report::default()
        })
    }
}

/// What the monitor carries from sample to sample.
#[derive(Default)]
struct Seen {
    /// The highest fencing token seen.
    token: u64,
    /// The lock holder seen with each token.
    holders: BTreeMap<u64, Cluster>,
    /// The report so far.
    report: Report,
}

fn uptime(r: &Record) -> bool {
    r.failover
        .is_some_and(|f| f.kind == PlanKind::Planned(Mode::Uptime))
}

async fn sample<C: ClusterPort, S: StorePort>(
    source: &Operator<C, S, SystemClock>,
    target: &Operator<C, S, SystemClock>,
    store: &S,
    key: &str,
    audit: &Audit,
    seen: &mut Seen,
) {
    let Seen {
        token,
        holders,
        report,
    } = seen;
    let Ok(Some(first)) = store.read(key).await else {
        report.skipped += 1;
        return;
    };
    let (Ok(t), Ok(s)) = (target.members().await, source.members().await) else {
        report.skipped += 1;
        return;
    };
    let Ok(Some(last)) = store.read(key).await else {
        report.skipped += 1;
        return;
    };
    let (t, s) = (fold(&t), fold(&s));
    report.samples += 1;
    for r in [&first, &last] {
        if r.token < *token {
            report.violations.push(format!(
                "tokens-increase: token {} after {}",
                r.token, token
            ));
        }
        *token = (*token).max(r.token);
        if let Some(lock) = r.lock {
            let first = *holders.entry(r.token).or_insert(lock.holder);
            if first != lock.holder {
                report.violations.push(format!(
                    "lock-exclusive: token {} held by {first:?}, then by {:?}",
                    r.token, lock.holder
                ));
            }
        }
    }
    let uptime_ended = last.history.iter().any(|h| {
        !first.history.contains(h)
            && h.outcome == Outcome::Completed(PlanKind::Planned(Mode::Uptime))
    });
    let exempt = uptime(&first) || uptime(&last) || uptime_ended;
    let mut clusters = [&s, &t];
    if target.group().me == Cluster::A {
        clusters.swap(0, 1);
    }
    let snapshot = Snapshot {
        clusters,
        alive: [true, true],
        records: std::slice::from_ref(&last),
        audit,
    };
    for inv in [
        Invariant::NoTwoWriters,
        Invariant::NoTwoPrimaries,
        Invariant::OneHistoryRecord,
    ] {
        let two_writers = matches!(inv, Invariant::NoTwoWriters | Invariant::NoTwoPrimaries);
        if !(inv.holds(&snapshot) || exempt && two_writers) {
            report.violations.push(format!(
                "{}: source {s:?}, target {t:?}, record {last:?}",
                inv.name()
            ));
        }
    }
}

/// An observer of `group` in a cluster: an operator that only ever observes.
pub fn observer<C: ClusterPort, S: StorePort>(
    cluster: C,
    store: S,
    group: Group,
) -> Operator<C, S, SystemClock> {
    Operator::new(cluster, store, SystemClock, group)
}
