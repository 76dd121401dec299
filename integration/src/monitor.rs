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
//!
//! Every complete sample is kept: [`Report::picture`] draws them (state bands, stages from
//! the journal, the record lane, the uptime window, the first violation), and
//! [`Report::assert_clean`] writes that picture next to the operators' logs when a test
//! fails, naming the file in the failure message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use failover_engine::executor::Operator;
use failover_engine::observe::fold;
use failover_engine::pictures;
use failover_engine::ports::{ClusterPort, StorePort, SystemClock};
use failover_engine::spec::Group;
use failover_engine::timeline::{self, ClusterLane, Ms, Timeline, Violation as TimelineViolation};
use failover_model::{
    Audit, Cluster, ClusterState, Invariant, Mode, Outcome, PlanKind, Record, Snapshot,
};
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
    /// The first violation: when (ms since the monitor started) and which invariant.
    pub first_violation: Option<(u64, String)>,
    /// Every complete sample, in order.
    pub observed: Vec<Observed>,
}

/// One complete sample: both clusters (in slot order, A then B) and the record read
/// after them.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Milliseconds since the monitor started.
    pub at: u64,
    /// Each cluster's resources, folded as the operators fold them.
    pub clusters: [ClusterState; 2],
    /// The record.
    pub record: Record,
}

impl Report {
    fn violate(&mut self, at: u64, invariant: &str, text: String) {
        if self.first_violation.is_none() {
            self.first_violation = Some((at, invariant.to_string()));
        }
        self.violations.push(text);
    }

    /// The samples as one picture ([`failover_engine::timeline`]).
    pub fn picture(&self, title: &str) -> Timeline {
        let end = self.observed.last().map_or(1, |o| o.at as Ms + 1);
        let mut t = Timeline::new(title);
        t.subtitle = vec![format!(
            "{} samples ({} skipped); {}",
            self.samples,
            self.skipped,
            if self.violations.is_empty() {
                "no violation".to_string()
            } else {
                format!("{} violations", self.violations.len())
            }
        )];
        t.start = 0;
        t.end = end;
        for c in Cluster::ALL {
            let i = c.index();
            let mut lane = ClusterLane::new(pictures::cluster_name(c));
            let samples: Vec<(Ms, bool, ClusterState)> = self
                .observed
                .iter()
                .map(|o| (o.at as Ms, true, o.clusters[i]))
                .collect();
            pictures::state_bands(&mut lane, &samples, end);
            t.clusters.push(lane);
        }
        let records: Vec<(Ms, &Record)> = self
            .observed
            .iter()
            .map(|o| (o.at as Ms, &o.record))
            .collect();
        pictures::journal_stages(&mut t.clusters, &records, end);
        t.record = pictures::record_spans(&records, end);
        t.record_marks = pictures::journal_marks(&records);
        let maybe: Vec<(Ms, Option<&Record>)> =
            records.iter().map(|(at, r)| (*at, Some(*r))).collect();
        t.accepted = pictures::uptime_windows(&maybe, end);
        t.violation = self.first_violation.as_ref().map(|(at, invariant)| {
            TimelineViolation::new(
                *at as Ms,
                invariant.clone(),
                self.violations.first().cloned().unwrap_or_default(),
            )
        });
        t
    }

    /// Write the picture as HTML next to the operators' logs (the system's temporary
    /// directory), as `<name>-timeline.html`; its path.
    pub fn write_picture(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("{name}-timeline.html"));
        std::fs::write(&path, timeline::html(&self.picture(name)))?;
        Ok(path)
    }

    /// Panic unless no sample showed a violation; the message names the picture of the
    /// samples written by [`Report::write_picture`].
    pub fn assert_clean(&self, name: &str) {
        if self.violations.is_empty() {
            return;
        }
        let picture = match self.write_picture(name) {
            Ok(path) => format!("timeline: {}", path.display()),
            Err(e) => format!("(the timeline could not be written: {e})"),
        };
        panic!(
            "{name}: the monitor saw {} violations; {picture}\n{:#?}",
            self.violations.len(),
            self.violations
        );
    }
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
            let started = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let at = started.elapsed().as_millis() as u64;
                sample(&source, &target, &store, &key, &audit, &mut seen, at).await;
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
    at: u64,
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
            report.violate(
                at,
                "tokens-increase",
                format!("tokens-increase: token {} after {}", r.token, token),
            );
        }
        *token = (*token).max(r.token);
        if let Some(lock) = r.lock {
            let first = *holders.entry(r.token).or_insert(lock.holder);
            if first != lock.holder {
                report.violate(
                    at,
                    "lock-exclusive",
                    format!(
                        "lock-exclusive: token {} held by {first:?}, then by {:?}",
                        r.token, lock.holder
                    ),
                );
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
    report.observed.push(Observed {
        at,
        clusters: [*clusters[0], *clusters[1]],
        record: last.clone(),
    });
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
            report.violate(
                at,
                inv.name(),
                format!(
                    "{}: source {s:?}, target {t:?}, record {last:?}",
                    inv.name()
                ),
            );
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
