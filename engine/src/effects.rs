//! Effects: how the engine carries out the model's [`Effect`]s on its own cluster.
//!
//! An effect names a class of objects and a direction; carrying it out sets every
//! member of the group of those kinds ([`Kind::of`]) to stopped or started, with
//! bounded parallelism. It is an idempotent "ensure": members already as wanted are
//! not written.

use std::fmt;

use failover_model::{Effect, Stage};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::member::is_set;
use crate::observe::Members;
use crate::ports::{ClusterError, ClusterPort, FieldChange, Kind};
use crate::spec::Group;

/// An effect that failed, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{stage}/{effect}: {source}")]
pub struct EffectError {
    /// The stage the effect belongs to (`fence` and `steady` effects carry the stage of
    /// the plan position they stand for, or none).
    pub stage: StageName,
    /// The effect.
    pub effect: Effect,
    /// The cluster error.
    pub source: ClusterError,
}

/// A stage, or the context of an effect outside a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageName {
    /// A failover stage.
    Stage(Stage),
    /// Outside a failover (keeping the cluster at rest, fencing).
    Outside,
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageName::Stage(s) => write!(f, "{s}"),
            StageName::Outside => f.write_str("at-rest"),
        }
    }
}

/// Carry out `effect` on `cluster`: every member of its kinds that is not yet as it
/// wants is set, `group.parallelism` at a time (at most; the adapter's
/// [`ClusterPort::write_parallelism`] when the group does not say, and never more); returns the fields changed, in order.
/// `listed`: the members this turn's observation found (listed again when `None`, or
/// when the observation has no entry for a kind).
pub async fn carry_out<C: ClusterPort>(
    cluster: &C,
    group: &Group,
    effect: Effect,
    listed: Option<&Members>,
) -> Result<Vec<FieldChange>, ClusterError> {
    let desired = effect.desired();
    let mut objects = Vec::new();
    for kind in Kind::of(effect.resource()) {
        let unset = |m: &crate::ports::Member| !is_set(&m.state, desired);
        match listed.and_then(|l| l.get(kind)) {
            Some(members) => {
                objects.extend(
                    members
                        .iter()
                        .filter(|m| unset(m))
                        .map(|m| m.object.clone()),
                );
            }
            None => {
                for selector in group.members.get(kind).into_iter().flatten() {
                    let members = retried(|| cluster.members(*kind, selector)).await?;
                    objects.extend(members.into_iter().filter(unset).map(|m| m.object));
                }
            }
        }
    }
    let bound = cluster.write_parallelism();
    let parallelism = group.parallelism.map_or(bound, |p| p.min(bound));
    let changes: Vec<Vec<FieldChange>> = stream::iter(objects)
        .map(|o| async move { retried(|| cluster.set(&o, desired)).await })
        .buffer_unordered(parallelism.max(1))
        .try_collect()
        .await?;
    let mut changes: Vec<FieldChange> = changes.into_iter().flatten().collect();
    changes.sort();
    Ok(changes)
}

/// Attempts of one call inside an effect before the effect fails.
pub const CALL_ATTEMPTS: usize = 3;

/// Run a Kubernetes call, retrying it at once on a conflict or an unavailable API
/// (every call is an idempotent read or "ensure", so a retry never applies twice). A
/// self-fence must finish within the fence margin: one flaky call must not cost it a
/// whole retry round of the executor.
pub async fn retried<T, F, Fut>(mut call: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(ClusterError::Unavailable(_) | ClusterError::Conflict(_))
                if attempt < CALL_ATTEMPTS =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}
