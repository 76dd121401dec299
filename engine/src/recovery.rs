//! The explicit re-creation of a group's record that went missing (deleted, or the
//! table re-created): never done by an operator on its own, only by this operator
//! action (`failover-admin recreate-record`), and only when it is safe.
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

use failover_model::{Cluster, Record, Reply, Trace, stopped};

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
