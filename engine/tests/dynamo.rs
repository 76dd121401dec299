//! The DynamoDB adapter against a real DynamoDB (Local): every op's condition and update,
//! contention between the two clusters, and a differential test against the model's
//! `apply` on a long pseudo-random sequence of writes.
//!
//! Where DynamoDB Local comes from (see [`dynamodb_container::endpoint`], shared with the
//! integration harness):
//!
//! - `FAILOVER_DYNAMODB=container`: a container started through testcontainers on the
//!   Docker-compatible engine `DOCKER_HOST` names (podman's API service), from the local
//!   image `localhost/dynamodb-local:<version>` (`FAILOVER_DYNAMODB_IMAGE` overrides
//!   it); a missing engine or image fails the tests;
//! - else `DYNAMODB_ENDPOINT` if set;
//! - else (`FAILOVER_DYNAMODB` unset) such a container if the engine answers and has the
//!   image, and otherwise the process `scripts/dynamodb-local.sh start` runs
//!   (`FAILOVER_DYNAMODB=process` skips the container).
//!
//! ```text
//! export DYNAMODB_ENDPOINT="$(scripts/dynamodb-local.sh start)"
//! cargo test -p failover-engine --test dynamo
//!
//! scripts/podman.sh setup && scripts/podman.sh dynamodb-image
//! export DOCKER_HOST="$(scripts/podman.sh service start)"
//! FAILOVER_DYNAMODB=container cargo test -p failover-engine --test dynamo
//! ```
//!
//! One container serves the whole test binary; a reaper process
//! (`scripts/podman.sh reap`) removes it when the binary exits, however it exits.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use failover_engine::dynamo::{ATTEMPTS, CALL_TIMEOUT, DynamoStore, create_table, local_client};
use failover_engine::ports::StorePort;
use failover_model::{
    AbortReason, Cluster, Health, HistoryEntry, InFlight, Intervention, Lock, Mode, Op, Outcome,
    PlanKind, Record, Reply, SpecPrint, Stage, Timing, Variant, Write, apply,
};

/// A heartbeat (its health report is carried as it is; the store compares none).
const HB: Op = Op::Heartbeat {
    health: Health {
        workloads_ready: false,
        traffic_open: false,
    },
};

/// When the tests' records are created (both clusters count as heartbeating then); the
/// tests' writes come later.
const INIT_AT: failover_model::Time = 1;

const TIMING: Timing = Timing {
    lease_ttl: 1000,
    clock_drift_max: 100,
    fence_margin: 200,
    driver_demotion: 0,
    heartbeat_every: 300,
    retry_after: 500,
    stage_deadline: [600_000; 6],
};

const A: Cluster = Cluster::A;
const B: Cluster = Cluster::B;

/// Where the tests' DynamoDB Local comes from: the harness's code, shared with it.
#[allow(dead_code)]
#[path = "../../integration/src/dynamodb_container.rs"]
mod dynamodb_container;

/// The endpoint of the DynamoDB under test (see the module's documentation), resolved
/// once for the test binary; a missing one fails the test.
fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            dynamodb_container::endpoint(&root, |why| {
                eprintln!("no DynamoDB Local container ({why}): starting the process");
            })
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .clone()
}

/// A store on a fresh table of its own.
async fn fresh(test: &str) -> DynamoStore {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let client = local_client(&endpoint()).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let table = format!(
        "failover-{test}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    create_table(&client, &table)
        .await
        .expect("create the test table");
    DynamoStore::new(client, table)
}

/// The process that owns each slot in these tests: A is 1, B is 2.
fn owner(by: Cluster) -> failover_model::Instance {
    if by == A { 1 } else { 2 }
}

/// Send `op` from `by`'s owner at local time `now`.
async fn send(store: &DynamoStore, group: &str, by: Cluster, now: u64, op: Op) -> Reply {
    let w = Write {
        by,
        instance: owner(by),
        now,
        op,
    };
    store.write(group, &TIMING, &w).await
}

/// Create the group with `active` owning the application, and let each cluster's first
/// process claim its slot at `INIT_AT` (its first heartbeat): the record after.
async fn init(store: &DynamoStore, group: &str, active: Cluster) -> Record {
    store.init(group, active, INIT_AT - 1).await.expect("init");
    applied(send(store, group, A, INIT_AT, claim(A, None)).await);
    applied(send(store, group, B, INIT_AT, claim(B, None)).await)
}

/// The identity of cluster `c` in these tests.
fn ident(c: Cluster) -> u64 {
    c.index() as u64 + 1
}

/// A claim of `c`'s slot from cluster `c`, replacing `prev`.
fn claim(c: Cluster, prev: Option<u64>) -> Op {
    Op::Claim {
        prev,
        identity: ident(c),
    }
}

fn applied(reply: Reply) -> Record {
    match reply {
        Reply::Applied(record) => record,
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn refused(reply: Reply) -> Record {
    match reply {
        Reply::ConditionFailed(record) => record,
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
}

async fn read(store: &DynamoStore, group: &str) -> Record {
    store
        .read(group)
        .await
        .expect("read")
        .expect("the group exists")
}

/// `by`'s operator writes request `id` for `to` (applied), as the protocol does before
/// any failover starts.
async fn ask(store: &DynamoStore, group: &str, by: Cluster, id: u64, to: Cluster, mode: Mode) {
    applied(send(store, group, by, 5, Op::Request { id, to, mode }).await);
}

fn acquire(id: u64) -> Op {
    Op::Acquire {
        id,
        mode: Mode::Consistency,
    }
}

fn journal(id: u64, token: u64, at: u32, release: bool) -> Op {
    Op::Journal {
        id,
        token,
        at,
        release,
    }
}

#[tokio::test]
async fn create_table_is_idempotent() {
    let store = fresh("table").await;
    let client = local_client(&endpoint()).await;
    create_table(&client, store.table())
        .await
        .expect("creating an existing table succeeds");
}

#[tokio::test]
async fn init_is_idempotent() {
    let store = fresh("init").await;
    let first = store.init("g", A, INIT_AT).await.expect("init");
    assert_eq!(first, Record::new(A, [Some(INIT_AT); 2]));
    let second = store.init("g", B, INIT_AT).await.expect("init again");
    assert_eq!(second, first, "a second init changes nothing");
    assert_eq!(read(&store, "g").await, first);
    let other = store
        .init("h", B, INIT_AT)
        .await
        .expect("init another group");
    assert_eq!(other.active, B);
}

#[tokio::test]
async fn missing_group_reads_none_and_refuses_writes() {
    let store = fresh("missing").await;
    assert_eq!(store.read("nope").await.expect("read"), None);
    for op in [HB, acquire(1), journal(1, 0, 1, false)] {
        assert_eq!(send(&store, "nope", A, 10, op).await, Reply::Missing);
    }
    assert_eq!(
        store.read("nope").await.expect("read"),
        None,
        "no write creates a record"
    );
}

#[tokio::test]
async fn heartbeats_only_move_forward() {
    let store = fresh("heartbeat").await;
    init(&store, "g", A).await;
    let r = applied(send(&store, "g", A, 100, HB).await);
    assert_eq!(r.heartbeat, [Some(100), Some(INIT_AT)]);
    let r = refused(send(&store, "g", A, 50, HB).await);
    assert_eq!(
        r.heartbeat,
        [Some(100), Some(INIT_AT)],
        "the current record comes back"
    );
    refused(send(&store, "g", A, 100, HB).await);
    let r = applied(send(&store, "g", B, 20, HB).await);
    assert_eq!(
        r.heartbeat,
        [Some(100), Some(20)],
        "each cluster has its own"
    );
    let r = applied(send(&store, "g", A, 150, HB).await);
    assert_eq!(r.heartbeat, [Some(150), Some(20)]);
    assert_eq!(read(&store, "g").await, r);
}

#[tokio::test]
async fn acquire_takes_lock_and_journal() {
    let store = fresh("acquire").await;
    init(&store, "g", A).await;
    ask(&store, "g", B, 1, B, Mode::Uptime).await;
    refused(send(&store, "g", B, 10, acquire(1)).await);
    let r = applied(
        send(
            &store,
            "g",
            A,
            10,
            Op::Acquire {
                id: 1,
                mode: Mode::Uptime,
            },
        )
        .await,
    );
    assert_eq!(r.token, 1);
    assert_eq!(
        r.lock,
        Some(Lock {
            holder: A,
            until: 10 + TIMING.lease_ttl
        })
    );
    assert_eq!(
        r.failover,
        Some(InFlight {
            id: 1,
            kind: PlanKind::Planned(Mode::Uptime),
            source: A,
            target: B,
            done: 1,
            stuck: false,
            asked: None,
            hooks: failover_model::Hooks::NONE,
        })
    );
    assert_eq!(read(&store, "g").await, r);
    let again = refused(send(&store, "g", A, 20, acquire(2)).await);
    assert_eq!(again, r, "a second acquire fails while one is in flight");
}

#[tokio::test]
async fn racing_clusters_get_the_lock_once() {
    let store = fresh("race").await;
    for round in 0..10 {
        let group = format!("g{round}");
        init(&store, &group, A).await;
        // Both operators write a request at once (a `Failover` object in each
        // cluster): the record accepts one, and refuses the other naming it.
        let request = |id| Op::Request {
            id,
            to: B,
            mode: Mode::Consistency,
        };
        let (a, b) = tokio::join!(
            send(&store, &group, A, 4000, request(1)),
            send(&store, &group, B, 4000, request(2)),
        );
        let (accepted, refused_id, refusal) = match (&a, &b) {
            (Reply::Applied(_), Reply::ConditionFailed(r)) => (1, 2, r),
            (Reply::ConditionFailed(r), Reply::Applied(_)) => (2, 1, r),
            _ => panic!("round {round}: one request must win: {a:?} / {b:?}"),
        };
        assert_eq!(refusal.refuses(refused_id), Some(accepted), "round {round}");
        // A's heartbeat is still the record's creation, which B saw stand: both
        // conditions hold, and the force takes the request before A starts it, or
        // takes over the failover A started (a planned one whose source is silent).
        let (a, b) = tokio::join!(
            send(&store, &group, A, 5000, acquire(accepted)),
            send(
                &store,
                &group,
                B,
                5000,
                Op::ForceTakeLock {
                    id: accepted,
                    seen: Some(INIT_AT)
                }
            ),
        );
        assert!(
            matches!(b, Reply::Applied(_)),
            "round {round}: the force applies either way: {b:?}"
        );
        let r = read(&store, &group).await;
        let acquired = matches!(a, Reply::Applied(_));
        assert_eq!(r.token, if acquired { 2 } else { 1 }, "round {round}");
        let winner = B;
        assert_eq!(r.holder(), Some(winner));

        // Both clusters race to take the lock at a hand-off.
        let token = r.token;
        let id = r.failover.expect("in flight").id;
        applied(send(&store, &group, winner, 5001, journal(id, token, 1, true)).await);
        let (a, b) = tokio::join!(
            send(&store, &group, A, 5002, Op::TakeOver { id, at: 2 }),
            send(&store, &group, B, 5002, Op::TakeOver { id, at: 2 }),
        );
        let winners = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Reply::Applied(_)))
            .count();
        assert_eq!(winners, 1, "round {round}: {a:?} / {b:?}");
        assert_eq!(read(&store, &group).await.token, token + 1);
    }
}

#[tokio::test]
async fn stale_token_is_refused_after_takeover() {
    let store = fresh("stale").await;
    init(&store, "g", A).await;
    ask(&store, "g", A, 1, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 10, acquire(1)).await);
    let r = applied(send(&store, "g", A, 20, journal(1, 1, 1, true)).await);
    assert_eq!(r.lock, None);
    assert_eq!(r.failover.map(|f| f.done), Some(2));
    refused(send(&store, "g", B, 30, Op::TakeOver { id: 1, at: 3 }).await);
    let r = applied(send(&store, "g", B, 30, Op::TakeOver { id: 1, at: 2 }).await);
    assert_eq!(r.token, 2);
    assert_eq!(
        r.lock,
        Some(Lock {
            holder: B,
            until: 30 + TIMING.lease_ttl
        })
    );
    assert_eq!(r.failover.map(|f| f.done), Some(3));
    refused(send(&store, "g", B, 35, Op::TakeOver { id: 1, at: 3 }).await);
    let stale = refused(send(&store, "g", A, 40, journal(1, 1, 3, false)).await);
    assert_eq!(stale, r, "the stale writer sees the current record");
    let r = applied(send(&store, "g", B, 40, journal(1, 2, 3, false)).await);
    assert_eq!(r.failover.map(|f| f.done), Some(4));
}

#[tokio::test]
async fn journal_renews_or_releases_the_lock() {
    let store = fresh("journal").await;
    init(&store, "g", A).await;
    ask(&store, "g", A, 1, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 10, acquire(1)).await);
    refused(send(&store, "g", A, 20, journal(1, 1, 2, false)).await);
    refused(send(&store, "g", A, 20, journal(2, 1, 1, false)).await);
    let r = applied(send(&store, "g", A, 20, journal(1, 1, 1, false)).await);
    assert_eq!(
        r.lock,
        Some(Lock {
            holder: A,
            until: 20 + TIMING.lease_ttl
        })
    );
    let r = applied(send(&store, "g", A, 30, journal(1, 1, 2, true)).await);
    assert_eq!(r.lock, None);
    assert_eq!(r.failover.map(|f| f.done), Some(3));
    assert_eq!(read(&store, "g").await, r);
}

#[tokio::test]
async fn complete_moves_the_application_once() {
    let store = fresh("complete").await;
    init(&store, "g", A).await;
    ask(&store, "g", A, 7, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 10, acquire(7)).await);
    applied(send(&store, "g", A, 20, journal(7, 1, 1, true)).await);
    applied(send(&store, "g", B, 30, Op::TakeOver { id: 7, at: 2 }).await);
    let complete = Op::Complete {
        id: 7,
        token: 2,
        at: 3,
    };
    refused(
        send(
            &store,
            "g",
            B,
            40,
            Op::Complete {
                id: 7,
                token: 1,
                at: 3,
            },
        )
        .await,
    );
    let r = applied(send(&store, "g", B, 40, complete).await);
    assert_eq!(r.active, B);
    assert_eq!(r.lock, None);
    assert_eq!(r.failover, None);
    assert_eq!(r.token, 2);
    assert_eq!(
        r.history,
        vec![HistoryEntry {
            id: 7,
            outcome: Outcome::Completed(PlanKind::Planned(Mode::Consistency)),
        }]
    );
    assert_eq!(read(&store, "g").await, r);
    let again = refused(send(&store, "g", B, 50, complete).await);
    assert_eq!(again, r, "a repeated Complete changes nothing");
}

/// The trail (issue 14): who asked and when, every journal entry with its writer and
/// time while the failover runs, kept in its history item with the plan when it ends;
/// a withdrawn request keeps its request mark; a failover never started has none.
#[tokio::test]
async fn trails_keep_who_asked_and_when_each_step_was_journaled() {
    use failover_engine::trail::MarkEvent;
    let store = fresh("trail").await;
    init(&store, "g", A).await;
    ask(&store, "g", B, 7, B, Mode::Consistency).await;
    let (_, trail, _) = store
        .read_with_trail("g")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].event, MarkEvent::Requested);
    assert_eq!(
        (trail[0].by, trail[0].at, trail[0].to),
        (Some(B), 5, Some(B))
    );
    assert_eq!(trail[0].kind, Some(PlanKind::Planned(Mode::Consistency)));
    applied(send(&store, "g", A, 10, acquire(7)).await);
    applied(send(&store, "g", A, 20, journal(7, 1, 1, true)).await);
    applied(send(&store, "g", B, 30, Op::TakeOver { id: 7, at: 2 }).await);
    let (record, trail, _) = store
        .read_with_trail("g")
        .await
        .expect("read")
        .expect("record");
    assert!(record.failover.is_some());
    let events: Vec<(MarkEvent, Option<Cluster>, u64, Option<u32>)> = trail
        .iter()
        .map(|m| (m.event, m.by, m.at, m.done))
        .collect();
    assert_eq!(
        events,
        [
            (MarkEvent::Requested, Some(B), 5, None),
            (MarkEvent::Acquired, Some(A), 10, Some(1)),
            (
                MarkEvent::Journaled { released: true },
                Some(A),
                20,
                Some(2)
            ),
            (MarkEvent::TookOver, Some(B), 30, Some(3)),
        ]
    );
    applied(
        send(
            &store,
            "g",
            B,
            40,
            Op::Complete {
                id: 7,
                token: 2,
                at: 3,
            },
        )
        .await,
    );
    let (_, trail, kept) = store
        .read_with_trail("g")
        .await
        .expect("read")
        .expect("record");
    assert!(
        trail.is_empty(),
        "the trail leaves the main item with the failover"
    );
    let ended = store.ended("g").await.expect("history");
    assert_eq!(kept, ended, "one read gives the history `ended` gives");
    assert_eq!(ended.len(), 1);
    let e = &ended[0];
    assert_eq!(e.id, 7);
    assert_eq!(e.kind, Some(PlanKind::Planned(Mode::Consistency)));
    assert_eq!((e.source, e.target), (Some(A), Some(B)));
    assert_eq!((e.ended_by, e.ended_at), (B, 40));
    assert_eq!(e.request().map(|m| m.by), Some(Some(B)));
    assert_eq!(e.started_at(), Some(10));
    assert_eq!(e.trail.len(), 4);
    let stages = e.stages();
    assert!(!stages.is_empty());
    assert_eq!(stages[0].from, 10);
    assert_eq!(stages.last().and_then(|s| s.to), Some(40));

    // A withdrawn request keeps its request mark; an already-active no-op has none.
    ask(&store, "g", A, 8, A, Mode::Uptime).await;
    applied(send(&store, "g", A, 50, Op::Withdraw { id: 8 }).await);
    applied(send(&store, "g", B, 60, Op::AlreadyActive { id: 9, to: B }).await);
    let ended = store.ended("g").await.expect("history");
    assert_eq!(ended.len(), 3);
    assert_eq!(ended[1].outcome, Outcome::Withdrawn);
    assert_eq!(ended[1].trail.len(), 1);
    assert_eq!(ended[1].kind, None);
    assert_eq!(ended[2].outcome, Outcome::NoOp);
    assert!(ended[2].trail.is_empty());
}

#[tokio::test]
async fn abort_releases_and_records() {
    let store = fresh("abort").await;
    init(&store, "g", A).await;
    ask(&store, "g", A, 3, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 10, acquire(3)).await);
    refused(
        send(
            &store,
            "g",
            A,
            20,
            Op::Abort {
                id: 3,
                token: 0,
                at: 1,
                reason: AbortReason::TargetSilent,
            },
        )
        .await,
    );
    let r = applied(
        send(
            &store,
            "g",
            A,
            20,
            Op::Abort {
                id: 3,
                token: 1,
                at: 1,
                reason: AbortReason::TargetSilent,
            },
        )
        .await,
    );
    assert_eq!(r.active, A);
    assert_eq!((r.lock, r.failover), (None, None));
    assert_eq!(
        r.history,
        vec![HistoryEntry {
            id: 3,
            outcome: Outcome::Aborted(AbortReason::TargetSilent)
        }]
    );
    // A new failover starts with a new id, and its history comes after.
    ask(&store, "g", B, 1, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 30, acquire(1)).await);
    let r = applied(
        send(
            &store,
            "g",
            A,
            40,
            Op::Abort {
                id: 1,
                token: 2,
                at: 1,
                reason: AbortReason::TargetSilent,
            },
        )
        .await,
    );
    let ids: Vec<u64> = r.history.iter().map(|h| h.id).collect();
    assert_eq!(ids, [3, 1], "history in write order");
}

#[tokio::test]
async fn force_needs_the_heartbeat_it_saw_stand() {
    let store = fresh("force").await;
    init(&store, "g", A).await;
    applied(send(&store, "g", A, 1000, HB).await);
    ask(&store, "g", B, 9, B, Mode::Consistency).await;
    let force = |seen| Op::ForceTakeLock { id: 9, seen };
    // B saw the creation's heartbeat stand; A heartbeated since: refused, at any time.
    refused(send(&store, "g", B, 1_000_000, force(Some(INIT_AT))).await);
    refused(send(&store, "g", B, 1_000_000, force(None)).await);
    // The active cluster cannot force.
    refused(send(&store, "g", A, 1500, force(Some(1000))).await);
    // The heartbeat B saw stand: applied, whatever B's clock says (no clock compared).
    let r = applied(send(&store, "g", B, 1500, force(Some(1000))).await);
    assert_eq!(r.token, 1);
    assert_eq!(
        r.failover,
        Some(InFlight {
            id: 9,
            kind: PlanKind::Forced,
            source: A,
            target: B,
            done: 1,
            stuck: false,
            asked: None,
            hooks: failover_model::Hooks::NONE,
        })
    );
    assert_eq!(
        r.lock,
        Some(Lock {
            holder: B,
            until: 1500 + TIMING.lease_ttl
        })
    );

    // A stuck planned failover: only its own id, once.
    init(&store, "h", A).await;
    applied(send(&store, "h", A, 1000, HB).await);
    ask(&store, "h", A, 4, B, Mode::Consistency).await;
    applied(send(&store, "h", A, 1000, acquire(4)).await);
    let seen = Some(1000);
    refused(
        send(&store, "h", B, 2000, Op::ForceTakeLock { id: 5, seen }).await,
        // another id while one is in flight
    );
    let r = applied(send(&store, "h", B, 2000, Op::ForceTakeLock { id: 4, seen }).await);
    assert_eq!(r.token, 2);
    assert_eq!(
        r.failover.map(|f| (f.id, f.kind, f.target)),
        Some((4, PlanKind::Forced, B))
    );
    refused(send(&store, "h", B, 2001, Op::ForceTakeLock { id: 4, seen }).await);
}

#[tokio::test]
async fn ended_ids_cannot_start_again() {
    let store = fresh("ended").await;
    init(&store, "g", A).await;
    ask(&store, "g", A, 7, B, Mode::Consistency).await;
    applied(send(&store, "g", A, 10, acquire(7)).await);
    applied(
        send(
            &store,
            "g",
            A,
            20,
            Op::Abort {
                id: 7,
                token: 1,
                at: 1,
                reason: AbortReason::TargetSilent,
            },
        )
        .await,
    );
    let r = refused(send(&store, "g", A, 30, acquire(7)).await);
    assert_eq!(r.token, 1);
    // A's heartbeat stood: B could force, but not with an id that already ended.
    refused(
        send(
            &store,
            "g",
            B,
            5000,
            Op::ForceTakeLock {
                id: 7,
                seen: Some(INIT_AT),
            },
        )
        .await,
    );
    ask(&store, "g", A, 8, B, Mode::Consistency).await;
    let r = applied(send(&store, "g", A, 40, acquire(8)).await);
    assert_eq!(r.token, 2);
}

/// A fake DynamoDB endpoint on a free local port: it answers every request with
/// `response` (HTTP status, `__type` of the error body), or never if `None`, and counts
/// the requests it received.
fn fake_endpoint(response: Option<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || serve(stream, response, &counter));
        }
    });
    (url, requests)
}

/// Answer the requests of one connection.
fn serve(stream: TcpStream, response: Option<(u16, &'static str)>, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let Some((status, error)) = response else {
            std::thread::sleep(Duration::from_secs(60));
            return;
        };
        let body = format!(
            "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{error}\",\"message\":\"fake\"}}"
        );
        let reply = format!(
            "HTTP/1.1 {status} Fake\r\ncontent-type: application/x-amz-json-1.0\r\n\
             x-amzn-requestid: fake\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A store on `url`, for the failure classification tests.
async fn store_at(url: &str) -> DynamoStore {
    DynamoStore::new(local_client(url).await, "t")
}

/// The first write of a failover: a transaction.
fn acquire_write() -> Write {
    Write {
        by: A,
        instance: owner(A),
        now: 10,
        op: acquire(1),
    }
}

/// The write of a heartbeat: an `UpdateItem`.
fn heartbeat_write() -> Write {
    Write {
        by: A,
        instance: owner(A),
        now: 10,
        op: HB,
    }
}

#[tokio::test]
async fn refused_connection_is_definitely_not_applied() {
    // Bind a port, then free it: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = store_at(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(
        store.write("g", &TIMING, &heartbeat_write()).await,
        Reply::Unavailable
    );
    assert_eq!(
        store.write("g", &TIMING, &acquire_write()).await,
        Reply::Unavailable
    );
    assert!(store.read("g").await.is_err());
}

#[tokio::test]
async fn throttling_is_definite_and_retried() {
    for error in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    ] {
        let (url, requests) = fake_endpoint(Some((400, error)));
        let store = store_at(&url).await;
        assert_eq!(
            store.write("g", &TIMING, &heartbeat_write()).await,
            Reply::Unavailable,
            "{error}"
        );
        assert_eq!(
            requests.load(Ordering::SeqCst),
            ATTEMPTS as usize,
            "{error}: retried"
        );
    }
}

#[tokio::test]
async fn server_error_is_ambiguous_and_not_retried() {
    let (url, requests) = fake_endpoint(Some((500, "InternalServerError")));
    let store = store_at(&url).await;
    for write in [heartbeat_write(), acquire_write()] {
        let before = requests.load(Ordering::SeqCst);
        assert_eq!(
            store.write("g", &TIMING, &write).await,
            Reply::Ambiguous,
            "{write:?}"
        );
        assert_eq!(
            requests.load(Ordering::SeqCst),
            before + 1,
            "sent once: {write:?}"
        );
    }
}

#[tokio::test]
async fn timeout_is_ambiguous() {
    let (url, requests) = fake_endpoint(None);
    let store = store_at(&url).await;
    let started = std::time::Instant::now();
    assert_eq!(
        store.write("g", &TIMING, &heartbeat_write()).await,
        Reply::Ambiguous
    );
    assert!(started.elapsed() >= CALL_TIMEOUT);
    assert!(
        started.elapsed() < CALL_TIMEOUT * 2,
        "bounded by the call timeout"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1, "never re-sent");
}

/// Xorshift64: a deterministic pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn cluster(&mut self) -> Cluster {
        if self.chance(50) { A } else { B }
    }
}

/// A plausible or implausible write for the model's current `record` at time `clock`:
/// each argument is the one that fits the record (80 %) or a neighbouring or random one.
fn random_write(rng: &mut Rng, record: &Record, clock: u64, next_id: &mut u64) -> Write {
    let f = record.failover;
    let id = match (f, record.request) {
        (Some(f), _) if rng.chance(80) => f.id,
        (None, Some(p)) if rng.chance(80) => p.id,
        _ if rng.chance(50) => {
            *next_id += 1;
            *next_id
        }
        _ => 1 + rng.below((*next_id).max(1)),
    };
    let mode = match record.request {
        Some(p) if rng.chance(80) => p.mode,
        _ if rng.chance(50) => Mode::Consistency,
        _ => Mode::Uptime,
    };
    let token = if rng.chance(80) {
        record.token
    } else {
        (record.token + rng.below(3)).saturating_sub(1)
    };
    let at = match f {
        Some(f) if rng.chance(80) => f.done,
        Some(f) => (f.done + rng.below(3) as u32).saturating_sub(1),
        None => rng.below(4) as u32,
    };
    // A hand-off is open (journaled, lock released): often someone takes it.
    let hand_off = f.is_some() && record.lock.is_none() && rng.chance(30);
    // A pending request: sometimes withdrawn at once.
    let withdraw = record.request.is_some() && rng.chance(10);
    let roll = if hand_off {
        50
    } else if withdraw {
        20
    } else if f.is_some() && rng.chance(12) {
        // Issue 10: the deadline's and a person's writes on the failover in flight.
        200
    } else if f.is_some_and(|f| f.kind != PlanKind::Forced && f.done < 3) && rng.chance(15) {
        // A roll back while one is still allowed (before any plan's promotion).
        86
    } else {
        rng.below(100)
    };
    let (by, op) = match roll {
        0..=8 => (rng.cluster(), HB),
        9..=11 => {
            // Mostly the print the other slot wrote, sometimes another.
            let by = rng.cluster();
            let print = match record.spec[by.peer().index()] {
                Some(p) if rng.chance(70) => p,
                // With the hooks of the model's `planned` scenario half the time: a
                // failover keeps the acquirer's (`fo_hooks`), and they move its plan's
                // positions (where an abort is allowed).
                _ => SpecPrint {
                    members: rng.below(2),
                    hooks: if rng.chance(50) {
                        failover_model::check::planned_hooks()
                    } else {
                        failover_model::Hooks::NONE
                    },
                    ..SpecPrint::default()
                },
            };
            (by, Op::Spec { print })
        }
        12..=19 => {
            // A new request, mostly for the standby, sometimes for the active cluster.
            *next_id += 1;
            let to = if rng.chance(75) {
                record.active.peer()
            } else {
                record.active
            };
            let id = *next_id;
            if to == record.active && rng.chance(80) {
                (rng.cluster(), Op::AlreadyActive { id, to })
            } else {
                (rng.cluster(), Op::Request { id, to, mode })
            }
        }
        20..=25 => (rng.cluster(), Op::Withdraw { id }),
        26..=34 => {
            let by = if rng.chance(80) {
                record.active
            } else {
                rng.cluster()
            };
            (by, Op::Acquire { id, mode })
        }
        35..=44 => {
            let by = if rng.chance(80) {
                record.active.peer()
            } else {
                rng.cluster()
            };
            // Mostly the heartbeat the record holds, sometimes one it held before.
            let held = record.heartbeat[record.active.index()];
            let seen = if rng.chance(70) {
                held
            } else {
                held.map(|t| t.saturating_sub(1))
            };
            (by, Op::ForceTakeLock { id, seen })
        }
        45..=52 => (rng.cluster(), Op::TakeOver { id, at }),
        53..=76 => (
            rng.cluster(),
            Op::Journal {
                id,
                token,
                at,
                release: rng.chance(40),
            },
        ),
        77..=85 => (rng.cluster(), Op::Complete { id, token, at }),
        86..=91 => {
            let reason = match rng.below(4) {
                0 => AbortReason::TargetSilent,
                1 => AbortReason::Person,
                2 => AbortReason::Hook(rng.below(3) as u8),
                _ => AbortReason::Deadline(Stage::ALL[rng.below(6) as usize]),
            };
            (
                rng.cluster(),
                Op::Abort {
                    id,
                    token,
                    at,
                    reason,
                },
            )
        }
        200 => {
            let person = |action| Op::Intervene {
                id,
                token,
                at,
                action,
            };
            let stuck = f.is_some_and(|f| f.stuck);
            let asked = f.and_then(|f| f.asked);
            let op = match rng.below(10) {
                // Flagged: mostly a person's retry or resolve, then the holder's resolve.
                0..=3 if stuck => person(Intervention::Retry),
                4..=6 if stuck && asked.is_none() => person(Intervention::Resolve),
                _ if asked == Some(Intervention::Resolve) => Op::Resolve { id, token, at },
                // Else mostly the flag, or a person's abort and its execution.
                r if r <= 4 => Op::Stuck { id, token, at },
                5..=7 if asked.is_none() => person(Intervention::Abort),
                5..=7 => Op::Abort {
                    id,
                    token,
                    at,
                    reason: AbortReason::Person,
                },
                8 => Op::Resolve { id, token, at },
                _ => person(Intervention::ALL[rng.below(3) as usize]),
            };
            // Mostly the lock's holder (the one that flags or resolves).
            let by = match record.lock {
                Some(l) if rng.chance(80) => l.holder,
                _ => rng.cluster(),
            };
            (by, op)
        }
        92..=94 => (
            rng.cluster(),
            Op::Contest {
                identity: 1 + rng.below(3),
            },
        ),
        95..=96 => {
            // Mostly the identity that contests the peer's slot, if one does.
            let by = rng.cluster();
            let identity = match record.contested[by.peer().index()] {
                Some(i) if rng.chance(70) => i,
                _ => 1 + rng.below(3),
            };
            (by, Op::Uncontest { identity })
        }
        _ => {
            // A new process takes a slot, mostly from the owner the record names.
            let by = rng.cluster();
            let owner = record.instance[by.index()];
            let prev = if rng.chance(80) {
                owner
            } else {
                owner.map(|o| o + 1)
            };
            // Mostly from the cluster the slot is bound to, sometimes another one.
            let identity = if rng.chance(80) {
                ident(by)
            } else {
                1 + rng.below(3)
            };
            (by, Op::Claim { prev, identity })
        }
    };
    // The sender: mostly the process that owns its slot, sometimes another (a replaced
    // one); a claim comes from a new process.
    let instance = match op {
        Op::Claim { .. } => {
            *next_id += 1;
            1_000 + *next_id
        }
        Op::Spec { .. } | Op::Uncontest { .. } if rng.chance(60) => {
            record.instance[by.index()].unwrap_or(0)
        }
        Op::Spec { .. } | Op::Uncontest { .. } => 1 + rng.below(5),
        _ if rng.chance(90) => record.instance[by.index()].unwrap_or(0),
        _ => 1 + rng.below(5),
    };
    // Local times: mostly around the shared clock, sometimes well behind, often exactly
    // at or next to a boundary of the op's condition.
    let edges = boundaries(record, by, &op);
    let now = match rng.below(100) {
        0..=9 => clock.saturating_sub(rng.below(3000)),
        10..=49 if !edges.is_empty() => edges[rng.below(edges.len() as u64) as usize],
        _ => clock + rng.below(2 * TIMING.clock_drift_max),
    };
    Write {
        by,
        instance,
        now,
        op,
    }
}

/// The local times at which the condition of `op` from `by` on `record` changes its
/// value, and their neighbours: the writer's last heartbeat, the provable end of the
/// active cluster's lease, the lapse of the lock.
fn boundaries(record: &Record, by: Cluster, op: &Op) -> Vec<u64> {
    let mut edges = Vec::new();
    let mut around = |t: u64| edges.extend([t.saturating_sub(1), t, t + 1]);
    match op {
        Op::Heartbeat { .. } => {
            if let Some(heartbeat) = record.heartbeat[by.index()] {
                around(heartbeat);
            }
        }
        Op::ForceTakeLock { .. } => {
            if let Some(heartbeat) = record.heartbeat[record.active.index()] {
                around(heartbeat + TIMING.lease_ttl + TIMING.clock_drift_max);
            }
            if let Some(lock) = record.lock {
                around(lock.until + TIMING.clock_drift_max);
            }
        }
        _ => {}
    }
    edges
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Claim { .. } => "claim",
        Op::Heartbeat { .. } => "heartbeat",
        Op::Acquire { .. } => "acquire",
        Op::ForceTakeLock { .. } => "force",
        Op::TakeOver { .. } => "takeover",
        Op::Journal { .. } => "journal",
        Op::Complete { .. } => "complete",
        Op::Abort { .. } => "abort",
        Op::Request { .. } => "request",
        Op::AlreadyActive { .. } => "no-op",
        Op::Withdraw { .. } => "withdraw",
        Op::Create { .. } => "create",
        Op::Contest { .. } => "contest",
        Op::Uncontest { .. } => "uncontest",
        Op::Spec { .. } => "spec",
        Op::Stuck { .. } => "stuck",
        Op::Resolve { .. } => "resolve",
        Op::Intervene { .. } => "intervene",
    }
}

/// The encoding matches the specification: a few hundred pseudo-random writes (both
/// clusters, every op, plausible and implausible arguments, local times that move
/// forward, jump and lag) give the same replies and records from DynamoDB as from
/// `failover_model::apply`.
#[tokio::test]
async fn differential_against_the_model() {
    const WRITES: usize = 1_000;
    const SEEDS: [u64; 2] = [0x5eed_f00d_2026_1122, 0x0bad_cafe_1234_5678];
    let store = fresh("differential").await;
    let mut counts: std::collections::BTreeMap<(&str, bool), usize> = Default::default();
    let mut ended = 0;
    for seed in SEEDS {
        let group = format!("g{seed:x}");
        let mut rng = Rng(seed);
        let mut model = init(&store, &group, A).await;
        assert_eq!(
            model,
            Record {
                instance: [Some(owner(A)), Some(owner(B))],
                bound: [Some(ident(A)), Some(ident(B))],
                ..Record::new(A, [Some(INIT_AT); 2])
            }
        );
        let mut clock = 1_000_000;
        let mut next_id = 0;
        for step in 0..WRITES {
            clock += match rng.below(100) {
                0..=4 => 2 * (TIMING.lease_ttl + TIMING.clock_drift_max),
                _ => rng.below(300),
            };
            let write = random_write(&mut rng, &model, clock, &mut next_id);
            let expected = apply(&model, &write, &TIMING, Variant::Correct);
            let reply = store.write(&group, &TIMING, &write).await;
            let context = format!("seed {seed:x} step {step}: {write:?} on {model:?}");
            match (expected, reply) {
                (Ok(next), Reply::Applied(record)) => {
                    assert_eq!(record, next, "{context}: record after the write");
                    model = next;
                    *counts.entry((op_name(&write.op), true)).or_default() += 1;
                }
                (Err(_), Reply::ConditionFailed(record)) => {
                    assert_eq!(record, model, "{context}: record after the refusal");
                    *counts.entry((op_name(&write.op), false)).or_default() += 1;
                }
                (expected, reply) => {
                    panic!("{context}: model says {expected:?}, store {reply:?}")
                }
            }
            assert_eq!(read(&store, &group).await, model, "{context}: read back");
        }
        ended += model.history.len();
    }
    // The sequences exercised every op both ways, and many failovers ended.
    for op in [
        "heartbeat",
        "acquire",
        "force",
        "takeover",
        "journal",
        "complete",
        "request",
        "no-op",
        "withdraw",
        "claim",
        "contest",
        "uncontest",
        "spec",
        "stuck",
        "intervene",
    ] {
        for outcome in [true, false] {
            assert!(
                counts.get(&(op, outcome)).copied().unwrap_or(0) >= 5,
                "{op} {} too rarely: {counts:?}",
                if outcome { "applied" } else { "refused" }
            );
        }
    }
    assert!(ended >= 20, "too few failovers ended: {ended}");
    // A roll back is allowed only before the promotion of a planned failover, and a
    // resolve needs a flag, a person's ask and the target's phase: both rarer.
    assert!(
        counts.get(&("abort", true)).copied().unwrap_or(0) >= 2,
        "{counts:?}"
    );
    assert!(
        counts.get(&("abort", false)).copied().unwrap_or(0) >= 5,
        "{counts:?}"
    );
    assert!(
        counts.get(&("resolve", false)).copied().unwrap_or(0) >= 5,
        "{counts:?}"
    );
    println!("differential: {counts:?}, {ended} failovers ended");
}

/// Issue 18 on the real store: B's `ForceTakeLock` sent at 1,200 stayed in transit and
/// lands late; B's retry at 2,400, and a force of a planned failover that was already
/// forced, are refused by DynamoDB exactly as by `failover_model::apply`, and the token
/// moves once.
#[tokio::test]
async fn a_delayed_force_and_its_retry_apply_once() {
    let store = fresh("force-once").await;
    for (group, planned) in [("g-idle", false), ("g-uptime", true)] {
        let mut model = init(&store, group, A).await;
        let send = |now, op| Write {
            by: B,
            instance: owner(B),
            now,
            op,
        };
        let mut writes = vec![Write {
            by: B,
            instance: owner(B),
            now: 50,
            op: Op::Request {
                id: 7,
                to: B,
                mode: Mode::Uptime,
            },
        }];
        if planned {
            // A starts an uptime failover and hands off; then A is lost.
            let id = 7;
            writes.push(Write {
                by: A,
                instance: owner(A),
                now: 100,
                op: Op::Acquire {
                    id,
                    mode: Mode::Uptime,
                },
            });
            writes.push(Write {
                by: A,
                instance: owner(A),
                now: 110,
                op: Op::Journal {
                    id,
                    token: 1,
                    at: 1,
                    release: true,
                },
            });
            let seen = Some(INIT_AT);
            writes.push(send(1_200, Op::ForceTakeLock { id, seen }));
            writes.push(send(2_400, Op::ForceTakeLock { id, seen }));
        } else {
            let seen = Some(INIT_AT);
            writes.push(send(1_200, Op::ForceTakeLock { id: 7, seen }));
            writes.push(send(2_400, Op::ForceTakeLock { id: 7, seen }));
        }
        let retry = writes.len() - 1;
        for (i, write) in writes.iter().enumerate() {
            let expected = apply(&model, write, &TIMING, Variant::Correct);
            let reply = store.write(group, &TIMING, write).await;
            match (expected, reply) {
                (Ok(next), Reply::Applied(record)) if i < retry => {
                    assert_eq!(record, next, "{group} write {i}");
                    model = next;
                }
                (Err(_), Reply::ConditionFailed(record)) if i == retry => {
                    assert_eq!(record, model, "{group}: the retry changed nothing");
                }
                (expected, reply) => {
                    panic!("{group} write {i}: model {expected:?}, store {reply:?}")
                }
            }
        }
        let after = read(&store, group).await;
        assert_eq!(
            after.failover.map(|f| (f.kind, f.done)),
            Some((PlanKind::Forced, 1))
        );
        assert_eq!(
            after.token,
            if planned { 2 } else { 1 },
            "{group}: one force"
        );
        // The protocol before the fix would have taken the retry.
        assert!(apply(&after, &writes[retry], &TIMING, Variant::RepeatableForce).is_ok());
    }
}

#[tokio::test]
async fn dynamo_store_passes_the_conformance_suite() {
    let store = fresh("conformance").await;
    failover_engine::conformance::store_port(&store, "shop/conformance").await;
}

/// Issue 10: the explicit re-creation of a missing record writes exactly the record
/// given (active cluster and token, nothing else), once.
#[tokio::test]
async fn a_missing_record_is_recreated_once() {
    let store = fresh("recreate").await;
    let recreated = Record {
        token: 8,
        ..Record::new(B, [None, None])
    };
    assert_eq!(
        store.recreate("g", &recreated).await,
        Reply::Applied(recreated.clone())
    );
    assert_eq!(read(&store, "g").await, recreated);
    let other = Record {
        token: 9,
        ..recreated.clone()
    };
    assert_eq!(
        store.recreate("g", &other).await,
        Reply::ConditionFailed(recreated)
    );
    // Each operator claims its slot again on it.
    applied(send(&store, "g", B, 10, claim(B, None)).await);
}

/// In container mode the tests' DynamoDB Local runs in a container testcontainers started,
/// and the adapter works against it.
#[tokio::test]
async fn testcontainers_dynamodb_local_serves_the_adapter() {
    let url = endpoint();
    let store = fresh("container").await;
    let record = store.init("g", A, INIT_AT).await.expect("init");
    assert_eq!(read(&store, "g").await, record);
    let Some(container) = dynamodb_container::container() else {
        assert!(
            !dynamodb_container::container_mode(),
            "FAILOVER_DYNAMODB=container but no container serves the tests"
        );
        eprintln!("DynamoDB Local is not a container here ({url}): nothing more to check");
        return;
    };
    let facts = container.inspect().await.expect("inspecting the container");
    assert!(
        facts.id.len() >= 12 && facts.id.chars().all(|c| c.is_ascii_hexdigit()),
        "a container id: {:?}",
        facts.id
    );
    assert_eq!(facts.id, container.id, "the engine knows the container");
    assert!(facts.running, "the container runs");
    assert_eq!(facts.image, container.image, "the container runs the image");
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}", facts.host_port),
        "the tests' endpoint is the container's mapped port"
    );
    assert_eq!(
        facts.label.as_deref(),
        Some("dynamodb"),
        "the container carries the label `scripts/podman.sh clean` removes"
    );
}
