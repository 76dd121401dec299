//! A person's actions through the record: the explicit re-creation of a group's record
//! that went missing, and abort, retry and resolve of a failover in flight
//! ([`intervene`]).
//!
//! The re-creation of a record that went missing (deleted, or the table re-created) is
//! never done by an operator on its own, only by this operator action
//! (`kubectl failover recreate-record`), and only when it is safe.
//!
//! Each cluster keeps a trace of the record ([`Trace`]: the last token, history length
//! and active cluster its operator saw). An operator that finds the record missing
//! drops its lease at once, so it starts nothing on what the old record said, fences
//! its cluster, and marks its trace `missing`. The re-creation requires, for each
//! cluster not declared lost: the trace marked missing and the cluster observed
//! stopped. Then it writes [`Record::recreated`] from both traces: the newest trace's
//! active cluster, a token above every token either cluster saw, no owner (each
//! operator claims its slot again) and nothing in flight. A failover that was in flight
//! is gone; its request, if its `Failover` object remains, is written again.
//!
//! The model checks this action with exactly these preconditions (`Act::Recreate`);
//! without the first one it found two primaries: a target that had not noticed the
//! missing record yet promoted on its old view while the source, named active by the
//! re-created record, started.

use failover_model::{
    Cluster, Intervention, PlanKind, Record, Reply, Timing, Trace, Variant, stopped,
};

use crate::executor::Operator;
use crate::ports::{Clock, ClusterPort, StorePort};

/// Why the re-creation was refused; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecreateRefused {
    /// The record exists: there is nothing to re-create.
    #[error("the group's record exists (token {}); nothing to re-create", .0.token)]
    Exists(Box<Record>),
    /// Neither cluster kept a trace: the group never had a record, and its operators
    /// create it themselves.
    #[error("neither cluster kept a trace of the group's record: it never had one")]
    NoTrace,
    /// A cluster's operator has not found the record missing yet: it may still act on
    /// the old record until it does (it drops its lease then).
    #[error(
        "cluster {0}'s operator has not found the record missing yet (its trace is not \
         marked): wait for it (its next heartbeat finds it), or declare the cluster lost"
    )]
    NotNoticed(String),
    /// A cluster is not stopped yet (its fence is still running or a step keeps
    /// failing).
    #[error(
        "cluster {0} is not stopped yet: its operator fences it after finding the record \
         missing; wait, or stop it by hand, or declare the cluster lost"
    )]
    NotStopped(String),
    /// A cluster or the store could not be read or written.
    #[error("{0}")]
    Unavailable(String),
}

/// Re-create the missing record of the group the two operators (one per cluster, in
/// slot order, used only to observe) run, unless a precondition fails. `lost`: a
/// cluster declared gone for good, whose trace and state are not required.
pub async fn recreate_record<C, S, K>(
    ops: [&Operator<C, S, K>; 2],
    store: &S,
    lost: Option<Cluster>,
) -> Result<Record, RecreateRefused>
where
    C: ClusterPort,
    S: StorePort,
    K: Clock,
{
    let key = ops[0].group().key.clone();
    let read = store
        .read(&key)
        .await
        .map_err(|e| RecreateRefused::Unavailable(e.to_string()))?;
    if let Some(record) = read {
        return Err(RecreateRefused::Exists(Box::new(record)));
    }
    let mut traces: [Option<Trace>; 2] = [None, None];
    for c in Cluster::ALL {
        let op = ops[c.index()];
        let name = op.group().name_of(c).to_string();
        if lost == Some(c) {
            continue;
        }
        let trace = op
            .recall_trace()
            .await
            .map_err(|e| RecreateRefused::Unavailable(format!("cluster {name}: {e}")))?;
        if trace.is_none_or(|t| !t.missing) {
            return Err(RecreateRefused::NotNoticed(name));
        }
        if !stopped(&op.observe().await) {
            return Err(RecreateRefused::NotStopped(name));
        }
        traces[c.index()] = trace;
    }
    let record = Record::recreated(traces).ok_or(RecreateRefused::NoTrace)?;
    match store.recreate(&key, &record).await {
        Reply::Applied(r) => {
            tracing::warn!(
                group = %key,
                token = r.token,
                active = %ops[0].group().name_of(r.active),
                "the missing record was re-created"
            );
            Ok(r)
        }
        Reply::ConditionFailed(r) => Err(RecreateRefused::Exists(Box::new(r))),
        other => Err(RecreateRefused::Unavailable(format!(
            "the store did not re-create the record: {other:?}"
        ))),
    }
}

/// Why a person's action on a failover was refused; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterveneRefused {
    /// No failover is in flight.
    #[error("no failover of the group is in flight (token {})", .0.token)]
    NothingInFlight(Box<Record>),
    /// The record does not allow it now; the reason says why and what to do instead.
    #[error("{0}")]
    NotAllowed(String),
    /// The record changed between the read and the write (the failover moved on): read
    /// again and decide again.
    #[error("the failover moved on since it was read (now token {}, position {}): look again", .0.token, .0.failover.map_or(0, |f| f.done))]
    Moved(Box<Record>),
    /// The record is missing.
    #[error("the group's record is missing (see recreate-record)")]
    Missing,
    /// The store could not be read or written.
    #[error("{0}")]
    Unavailable(String),
}

/// What a person's `action` on the failover `record` shows in flight would do, in one
/// line, or why the record does not allow it (the store's own condition,
/// [`Intervention::allowed`], explained).
pub fn explain(record: &Record, action: Intervention) -> Result<String, InterveneRefused> {
    let Some(f) = record.failover else {
        return Err(InterveneRefused::NothingInFlight(Box::new(record.clone())));
    };
    let step = f.next_step().map(|s| (s.stage, s.step));
    let at = match step {
        Some((stage, step)) => format!("stage {stage}, step {step} (journal position {})", f.done),
        None => format!("journal position {}", f.done),
    };
    if action.allowed(record, Variant::Correct) {
        return Ok(match action {
            Intervention::Abort => format!(
                "abort the {} failover {:016x} at {at}: its source's operator rolls it back \
                 and restores what it stopped; the target will not take over",
                f.kind, f.id
            ),
            Intervention::Retry => format!(
                "retry the needs-operator failover {:016x} at {at}: the flag clears and the \
                 stage's deadline starts again",
                f.id
            ),
            Intervention::Resolve => format!(
                "resolve the needs-operator failover {:016x} at {at}: the target's operator \
                 skips the rest of its phase (its state at rest converges the skipped steps)",
                f.id
            ),
        });
    }
    let why = match action {
        Intervention::Abort if f.asked.is_some() => format!(
            "a person already asked to {} it; the operator whose turn it is carries it out",
            f.asked.map_or("", Intervention::name)
        ),
        Intervention::Abort if f.kind == PlanKind::Forced => {
            "a forced failover cannot be rolled back: its source is gone or fenced".to_owned()
        }
        Intervention::Abort => format!(
            "the target may already have promoted volumes ({at}): a roll back could leave two \
             primaries; fix the stuck objects (the failover goes on by itself), or resolve it \
             once it is flagged needs-operator"
        ),
        Intervention::Retry | Intervention::Resolve if !f.stuck => format!(
            "the failover is not flagged needs-operator ({at}); its stage's deadline has not \
             passed"
        ),
        Intervention::Resolve if f.asked.is_some() => {
            "a person already asked for an action on it".to_owned()
        }
        Intervention::Resolve => format!(
            "only the target's steps after its promotion may be resolved ({at} is not one): \
             the source's steps are never skipped, its volumes might stay primary; fix the \
             stuck objects, or retry"
        ),
        Intervention::Retry => "not allowed".to_owned(),
    };
    Err(InterveneRefused::NotAllowed(format!(
        "cannot {} failover {:016x}: {why}",
        action.name(),
        f.id
    )))
}

/// Carry out a person's `action` on the group `key`'s failover in flight: read the
/// record, check the action is allowed ([`explain`]), and write it conditional on the
/// failover's position and token as read ([`failover_model::Op::Intervene`]).
pub async fn intervene<S: StorePort>(
    store: &S,
    key: &str,
    timing: &Timing,
    action: Intervention,
) -> Result<Record, InterveneRefused> {
    let record = match store.read(key).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(InterveneRefused::Missing),
        Err(e) => return Err(InterveneRefused::Unavailable(e.to_string())),
    };
    let what = explain(&record, action)?;
    // The person's local time: only the trail shows it (no condition looks at it).
    let now = crate::ports::SystemClock.now();
    let Some(w) = action.write(&record, now) else {
        return Err(InterveneRefused::NothingInFlight(Box::new(record)));
    };
    match store.write(key, timing, &w).await {
        Reply::Applied(r) => {
            tracing::warn!(group = %key, action = action.name(), "{what}");
            Ok(r)
        }
        Reply::ConditionFailed(r) => Err(InterveneRefused::Moved(Box::new(r))),
        Reply::Missing => Err(InterveneRefused::Missing),
        other => Err(InterveneRefused::Unavailable(format!(
            "the store did not take the action: {other:?}"
        ))),
    }
}
