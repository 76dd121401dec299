//! The DynamoDB adapter of [`StorePort`]: every group's global record in one table, each
//! protocol write one conditional `UpdateItem` or `TransactWriteItems` whose condition is
//! exactly the one of [`failover_model::apply`].
//!
//! # Table
//!
//! One table (created by [`create_table`], on-demand billing), key `pk` (S) + `sk` (S).
//! It must be a single-region table or a multi-region *strongly consistent* global table:
//! a last-writer-wins global table breaks the lock (README: the `lww-store` variant, which
//! the model catches moving the fencing token back).
//!
//! | `pk`  | `sk`                     | attributes                                           |
//! |-------|--------------------------|------------------------------------------------------|
//! | group | `record`                 | `active` (S `A`/`B`), `token` (N), `lock_holder` (S), `lock_until` (N), `fo_id` (N), `fo_kind` (S `consistency`/`uptime`/`forced`), `fo_source` (S), `fo_target` (S), `fo_done` (N), `hb_A` (N), `hb_B` (N), `inst_A` (N), `inst_B` (N), `req_id` (N), `req_to` (S), `req_mode` (S `consistency`/`uptime`), `req_by` (S), `req_at` (N), `id_A` (N), `id_B` (N), `con_A` (N), `con_B` (N), `spec_A` (S), `spec_B` (S), `hl_A` (N), `hl_B` (N), `fo_stuck` (N, `needs-operator`), `fo_abort` (N), `fo_resolve` (N) (a person's action asked for), `hk_A` (N), `hk_B` (N) (each print's hooks, `Hooks::bits`), `fo_hooks` (N, the hooks the failover in flight runs, copied from the acquirer's `hk_X` when it starts) |
//! | group | `history#<id, 20 digits>` | `id` (N), `outcome` (S `completed-consistency`/`completed-uptime`/`completed-forced`/`aborted-target-silent`/`aborted-deadline-<stage>`/`aborted-person`/`resolved`/`no-op`/`withdrawn`; `aborted` before issue 10), `token` (N), `by` (S), `at` (N) |
//!
//! The main item maps [`Record`] one to one: the lock's two attributes exist exactly while
//! there is a lock, the five `fo_*` attributes exactly while a failover is in flight, and
//! `hb_X` from the record's creation on (set to the creator's time, see
//! [`StorePort::init`]; a record created by an older version lacks them until the
//! cluster's first heartbeat, and then reads as never heartbeating). `inst_X` names the
//! operator process that owns cluster X's slot (its last `Claim`); absent until the
//! first. The four `req_*` attributes besides `req_at` exist exactly while a request is
//! pending (`req_at`, the writer's stamp, is for people and not part of the record).
//! `id_X` is the identity slot X is bound to (its first claim's), `con_X` an identity
//! whose claim of slot X was refused, `spec_X` slot X's spec fingerprint
//! (`clusters=<hex>;timing=<hex>;members=<hex>;inventory=<hex>`); each absent until
//! first written. `hl_X` is cluster X's health report from its last heartbeat (bit 1:
//! workloads ready, bit 2: traffic open), absent from a claim until the next heartbeat.
//! Times are the writer's local milliseconds.
//! A history item is written in the same transaction that ends its failover; `token` is
//! the record's token then, `by` and `at` the writer and its local time.
//!
//! **The trail** ([`crate::trail`], for people; no condition reads it): `trail` (L of M
//! `{e, by, at, n, to, mode}`) on the main item from a `Request` (`SET trail = [request
//! mark]`) until the failover ends. `Acquire`, `ForceTakeLock`, `TakeOver`, `Journal`,
//! `Stuck` and a person's `Intervene` each append a mark in the same update
//! (`trail = list_append(if_not_exists(trail, :empty), :mark)`, which cannot fail, so the
//! trail never changes whether a protocol write applies). `Complete`, `Abort`, `Resolve`
//! and `Withdraw` remove it and copy it into the history item they write, with `kind`,
//! `source`, `target` and `hooks` of the failover (from the main item read before them):
//! [`DynamoStore::ended`] reads them back, [`DynamoStore::read_with_trail`] the one in
//! flight.
//!
//! # Reads
//!
//! [`StorePort::read`] is a consistent `GetItem` of the main item followed by a
//! consistent `Query` of the `history#` items (all pages). The order matters: DynamoDB
//! gives a `Query` only read-committed isolation against transactions, so a single read
//! of everything could see a `Complete` or `Abort` half: the failover gone from the main
//! item but its history item not yet there, which would make an ended id look unknown.
//! Reading the main item first means every history item its state depends on is already
//! committed when the `Query` runs; the `Query` can only add entries that ended later
//! (a failover both in flight and in the history), which `Record::knows` treats the same.
//! Such a torn read is repeated (up to five times) so that a read returns a record some
//! write left: the integration monitor, which judges every record it reads with the
//! invariants, once saw one (`one-history-record`).
//!
//! History is returned in write order: sorted by `token`, then `id`. Every history item
//! is written by a `Complete` or `Abort` conditional on the record's token, or by an
//! `AlreadyActive` or `Withdraw` that raises it; at most one ends per token (ending
//! clears the failover; a new one needs `Acquire` or `ForceTakeLock`, which raise the
//! token), so the token orders them as they were written.
//!
//! # Writes
//!
//! `X` is the writer (`write.by`), `P` its peer, `:now` the writer's time, `:until` =
//! `now + lease_ttl` (the lock a write takes or renews; shown, never compared), `:next` =
//! `at + 1`. No condition compares a time with a clock: `:now` is the writer's stamp
//! (`failover_model::stamp`), and the only time condition, a heartbeat's `hb_X < :now`,
//! orders one cluster's own stamps. Every condition starts with `attribute_exists(pk)`, so no write ever
//! creates a record, and every condition but `Claim`'s and `Contest`'s ends with `AND inst_X = :inst`
//! (`:inst` is `write.instance`, the sending process): a process another one replaced
//! changes nothing (left out of the table below).
//!
//! | op | request | condition (main item) | update (main item) |
//! |----|---------|-----------------------|--------------------|
//! | `Claim{prev,identity}` | `UpdateItem` | `attribute_exists(pk) AND inst_X = :prev` (`attribute_not_exists(inst_X)` for none) `AND (attribute_not_exists(id_X) OR id_X = :ident) AND (attribute_not_exists(hb_X) OR hb_X < :now)` | `SET inst_X = :inst, hb_X = :now, id_X = :ident REMOVE hl_X` |
//! | `Contest{identity}` | `UpdateItem` | `attribute_exists(pk) AND attribute_exists(id_X) AND id_X <> :ident` | `SET con_X = :ident` |
//! | `Uncontest{identity}` | `UpdateItem` | `attribute_exists(pk) AND con_P = :ident` | `REMOVE con_P` |
//! | `Spec{print}` | `UpdateItem` | `attribute_exists(pk)` | `SET spec_X = :print, hk_X = :hooks` |
//! | `Heartbeat{health}` | `UpdateItem` | `attribute_exists(pk) AND (attribute_not_exists(hb_X) OR hb_X < :now)` | `SET hb_X = :now, hl_X = :health` |
//! | `Request{id,to,mode}` | transaction | `attribute_exists(pk) AND attribute_not_exists(req_id) AND attribute_not_exists(fo_id) AND active <> :to`; `ConditionCheck` `attribute_not_exists(pk)` on `history#id` | `SET req = (id, to, mode, X, :now)` |
//! | `AlreadyActive{id,to}` | read, then transaction | `attribute_exists(pk) AND attribute_not_exists(req_id) AND attribute_not_exists(fo_id) AND active = :to AND token = :token` (the token read); `Put` `history#id` (`no-op`, token + 1) if `attribute_not_exists(pk)` | `SET token = :token + 1` |
//! | `Withdraw{id}` | read, then transaction | `attribute_exists(pk) AND req_id = :id AND token = :token`; `Put` `history#id` (`withdrawn`, token + 1) if `attribute_not_exists(pk)` | `SET token = :token + 1 REMOVE req_*` |
//! | `Acquire{id,mode}` | transaction | `attribute_exists(pk) AND active = :X AND attribute_not_exists(fo_id) AND attribute_not_exists(lock_until) AND req_id = :id AND req_mode = :mode AND req_to = :P AND ((attribute_not_exists(spec_A) AND attribute_not_exists(spec_B)) OR spec_A = spec_B)`; `ConditionCheck` `attribute_not_exists(pk)` on `history#id` | `SET token = token + 1, lock = (X, :until), fo = (id, mode, X, P, 1), fo_hooks = if_not_exists(hk_X, 0) REMOVE req_*` |
//! | `ForceTakeLock{id,seen}` | transaction | `attribute_exists(pk) AND active = :P AND hb_P = :seen` (`attribute_not_exists(hb_P)` for no heartbeat) `AND ((attribute_not_exists(fo_id) AND req_id = :id AND req_to = :X) OR (fo_id = :id AND fo_kind <> forced))`; `ConditionCheck` `attribute_not_exists(pk)` on `history#id` | `SET token = token + 1, lock = (X, :until), fo = (id, forced, P, X, 1), fo_hooks = if_not_exists(hk_X, 0) REMOVE req_*` |
//! | `TakeOver{id,at}` | `UpdateItem` | `attribute_exists(pk) AND fo_id = :id AND fo_done = :at AND attribute_not_exists(lock_until)` | `SET token = token + 1, lock = (X, :until), fo_done = :next` |
//! | `Journal{id,token,at,release}` | `UpdateItem` | `attribute_exists(pk) AND fo_id = :id AND fo_done = :at AND token = :token AND attribute_not_exists(fo_abort)` | `SET fo_done = :next` and `REMOVE lock_holder, lock_until` (release) or `SET lock = (X, :until)` |
//! | `Complete{id,token,at}` | transaction | `attribute_exists(pk) AND fo_id = :id AND fo_done = :at AND token = :token AND fo_kind = :kind AND fo_target = :target`; `Put` `history#id` (`completed-<kind>`) if `attribute_not_exists(pk)` | `SET active = :target REMOVE lock_*, fo_*` |
//! | `Abort{id,token,at}` | transaction | `attribute_exists(pk) AND fo_id = :id AND fo_done = :at AND token = :token`; `Put` `history#id` (`aborted`) if `attribute_not_exists(pk)` | `REMOVE lock_*, fo_*` |
//!
//! (`active = :P` is the model's `active != X`: there are two clusters.)
//!
//! [`StorePort::init`] puts the main item (`active`, `token` 0, nothing else) if
//! `attribute_not_exists(pk)`, then reads: whatever the put answered (created, existed,
//! failed, unknown), the read decides.
//!
//! Two places differ in form from [`failover_model::apply`] but not in outcome:
//! - `Acquire` and `ForceTakeLock` require `history#id` to be absent; the model asks for
//!   `!knows(id)`, and for `ForceTakeLock` only when no failover is in flight. A failover
//!   in flight is never in the history (only `Complete`/`Abort` write history, and they
//!   clear the failover; starting one requires its id unknown), so the check is the same.
//! - `AlreadyActive` and `Withdraw` write a history item carrying the record's next
//!   token, which the op does not carry: the adapter reads the record first, answers
//!   [`Reply::ConditionFailed`] with it if the model's condition is false on it, and
//!   otherwise sends the transaction conditional on the token it read (as `Complete`).
//! - `Complete` must write the outcome (the plan kind) and the new active cluster, which
//!   the op does not carry: the adapter first reads the record. If the read record already
//!   fails the model's condition, the write answers [`Reply::ConditionFailed`] with it
//!   (the write is linearized at that read: tokens and journal positions never go back,
//!   and the condition was false then). Otherwise it sends the transaction with the kind
//!   and target it read as two more conditions; they cannot change the outcome, because a
//!   failover's kind and target change only with the token, which is in the condition.
//!
//! # Replies
//!
//! `UpdateItem` writes use `ReturnValues=ALL_NEW` and
//! `ReturnValuesOnConditionCheckFailure=ALL_OLD`; the main item they return is completed
//! with a history `Query` (after the write, as for reads) into the [`Reply::Applied`] or
//! [`Reply::ConditionFailed`] record. A transaction returns no item: after it applied, the
//! adapter reads the record; when it is cancelled because the main item's condition was
//! false, the cancellation reason carries the old main item (the update asks for
//! `ALL_OLD`), completed with a history `Query`; when only the history item's condition
//! was false, the adapter reads the record. The record of a reply is therefore the one the
//! write left (or found) or a later one, never an earlier one: what a consistent read
//! right after would give the protocol.
//!
//! If that read fails after an applied write, the reply is [`Reply::Ambiguous`]: the
//! protocol forgets its view, re-reads and finds the write applied (every op is
//! conditional, so nothing is ever applied twice). If it fails after a false condition,
//! the reply is [`Reply::Unavailable`], and if the record does not exist,
//! [`Reply::Missing`]: nothing was applied.
//!
//! # Failures and retries
//!
//! | failure | meaning | reply |
//! |---------|---------|-------|
//! | `ProvisionedThroughputExceededException`, `ThrottlingException`, `RequestLimitExceeded`, `LimitExceededException`, `TransactionConflictException`, `ReplicatedWriteConflictException`, `ResourceNotFoundException`, `ValidationException`, authentication and authorization errors | refused before executing | `Unavailable` |
//! | `TransactionCanceledException` without a `ConditionalCheckFailed` reason (`TransactionConflict`, `ThrottlingError`, ...) | the whole transaction was cancelled | `Unavailable` |
//! | the request could not be built (`ConstructionFailure`) | never sent | `Unavailable` |
//! | `DispatchFailure` while connecting (DNS, connection refused, connect timeout) | never sent | `Unavailable` |
//! | `InternalServerError`, other server errors, unknown errors | may have applied | `Ambiguous` |
//! | `DispatchFailure` after connecting (reset, I/O), `TimeoutError`, `ResponseError` | may have applied | `Ambiguous` |
//!
//! Definite failures are retried inside the adapter, [`ATTEMPTS`] attempts in all with
//! jittered exponential backoff from [`BACKOFF_BASE`] (half fixed, half random: xorshift
//! seeded from the clock). An ambiguous write is never retried here: it is answered
//! `Ambiguous` at once, and the protocol re-reads before deciding anything. Reads change
//! nothing: every read failure is [`StoreUnavailable`], after the same retries.
//!
//! For the same reason [`DynamoStore::new`] reconfigures the client it is given: the SDK's
//! own retries are disabled (its standard strategy re-sends after timeouts and server
//! errors, which would turn "may have applied" into a `ConditionFailed` reply for a write
//! that did apply, and would hide throttling from the back-off above), and each call is
//! bounded by [`CONNECT_TIMEOUT`] and [`CALL_TIMEOUT`], well inside any sane lease, so a
//! hung call cannot keep an operator from fencing itself in time. A connect timeout
//! shorter than the call timeout makes an unreachable endpoint a definite failure.
//!
//! # Use
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use failover_engine::dynamo::{DynamoStore, create_table, local_client};
//! use failover_engine::ports::StorePort;
//! use failover_model::Cluster;
//!
//! // Against AWS: `Client::new(&aws_config::load_defaults(BehaviorVersion::latest()).await)`.
//! let client = local_client("http://127.0.0.1:8000").await;
//! create_table(&client, "failover").await?; // idempotent
//! let store = DynamoStore::new(client, "failover");
//! let record = store.init("shop", Cluster::A, 0).await?;
//! assert_eq!(record.active, Cluster::A);
//! # Ok(())
//! # }
//! ```
//!
//! `scripts/dynamodb-local.sh start` starts a DynamoDB Local and prints its endpoint.

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck,
    KeySchemaElement, KeyType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TableStatus, TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use failover_model::{
    AbortReason, Cluster, FailoverId, Health, HistoryEntry, Hooks, InFlight, Intervention, Lock,
    MAX_HOOKS, Mode, Op, Outcome, Pending, PlanKind, Record, Reply, SpecPrint, Stage, Time, Timing,
    Token, Variant, Write,
};

use crate::ports::{StorePort, StoreUnavailable};
use crate::trail::{Ended, Mark, MarkEvent};

/// Attempts per request for failures that certainly did not apply (the first included).
pub const ATTEMPTS: u32 = 3;

/// The first back-off after a definite failure; it doubles with every attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);

/// Time allowed to open a connection to DynamoDB.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time allowed for one DynamoDB call, from sending to the parsed response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long [`create_table`] waits for a new table to become active.
const TABLE_WAIT: Duration = Duration::from_secs(60);

/// The IAM actions the operator needs on its table, and nothing more: the policy
/// `deploy/examples/iam-policy.json` (resource: the table's ARN; no index, no stream).
/// A person's `kubectl failover` commands that read or write records (`status`,
/// `history`, `abort`, `retry`, `resolve`, `recreate-record`) use this adapter too and
/// need the same. IAM has no action for `TransactWriteItems`: a transaction needs the
/// actions of its parts. Each is needed by:
/// - `ConditionCheckItem`: the `ConditionCheck` part of a transaction, that the
///   failover's history item is absent (`Request`, `Acquire`, `ForceTakeLock`);
/// - `GetItem`: the consistent read of the main item (every read, and the reply of
///   every write);
/// - `PutItem`: the main item's creation ([`StorePort::init`], [`StorePort::recreate`])
///   and the `Put` part of a transaction, a new history item (`Complete`, `Abort`,
///   `AlreadyActive`, `Withdraw`);
/// - `Query`: the history items of a group (sort keys `history#...`, on the table
///   itself);
/// - `UpdateItem`: every other protocol write of the main item, alone or as the
///   `Update` part of a transaction.
///
/// A unit test checks this list against the requests this file sends, and against
/// the example policy.
pub const OPERATOR_IAM_ACTIONS: &[&str] = &[
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
];

/// The IAM actions of the table's one-time set-up by an administrator, [`create_table`]
/// (`kubectl failover create-table`): `CreateTable`, and `DescribeTable` to wait until
/// it is active and check its key schema. The policy
/// `deploy/examples/iam-policy-admin.json`.
pub const TABLE_ADMIN_IAM_ACTIONS: &[&str] = &["dynamodb:CreateTable", "dynamodb:DescribeTable"];

/// Sort key of a group's main item.
const RECORD_SK: &str = "record";

/// Sort key prefix of a group's history items.
const HISTORY_PREFIX: &str = "history#";

/// An item, as the SDK represents it.
type Item = HashMap<String, AttributeValue>;

/// The client of the operator and the CLI: [`local_client`] for an endpoint (DynamoDB
/// Local), otherwise the AWS SDK's configuration from the environment, in `region` if
/// one is given.
pub async fn client(endpoint_url: Option<&str>, region: Option<&str>) -> Client {
    match endpoint_url {
        Some(url) => local_client(url).await,
        None => {
            let mut loader = aws_config::from_env();
            if let Some(region) = region {
                loader = loader.region(Region::new(region.to_owned()));
            }
            Client::new(&loader.load().await)
        }
    }
}

/// A DynamoDB client built for DynamoDB Local (or any other endpoint): region
/// `us-east-1`, static dummy credentials, the latest behavior version.
pub async fn local_client(endpoint_url: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "dynamodb-local",
        ))
        .endpoint_url(endpoint_url)
        .load()
        .await;
    Client::new(&config)
}

/// Why [`create_table`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DynamoDB table {table}: {message}")]
pub struct TableError {
    /// The table.
    pub table: String,
    /// What went wrong.
    pub message: String,
}

/// Create the table (key `pk` + `sk`, both strings, on-demand billing) unless it exists,
/// and wait until it is active. Fails if a table of that name exists with another key.
pub async fn create_table(client: &Client, table: &str) -> Result<(), TableError> {
    let error = |message: String| TableError {
        table: table.to_owned(),
        message,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    let request = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute("pk").map_err(|e| error(e.to_string()))?)
        .attribute_definitions(attribute("sk").map_err(|e| error(e.to_string()))?)
        .key_schema(key("pk", KeyType::Hash).map_err(|e| error(e.to_string()))?)
        .key_schema(key("sk", KeyType::Range).map_err(|e| error(e.to_string()))?)
        .billing_mode(BillingMode::PayPerRequest);
    match request.send().await {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => return Err(error(DisplayErrorContext(&e).to_string())),
    }
    let deadline = Instant::now() + TABLE_WAIT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
        if let Some(description) = described.table() {
            let keys: Vec<(&str, &KeyType)> = description
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name(), k.key_type()))
                .collect();
            if keys != [("pk", &KeyType::Hash), ("sk", &KeyType::Range)] {
                return Err(error(format!(
                    "exists with key schema {keys:?}, expected pk (hash) + sk (range)"
                )));
            }
            if description.table_status() == Some(&TableStatus::Active) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(error(format!("not active after {TABLE_WAIT:?}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The global store in a DynamoDB table. See the [module documentation](self) for the
/// item layout, the exact condition of every write and the failure classification.
#[derive(Debug)]
pub struct DynamoStore {
    /// The client, with the adapter's retry and timeout configuration.
    client: Client,
    /// The table.
    table: String,
    /// Xorshift state for the back-off jitter.
    jitter: AtomicU64,
}

impl Clone for DynamoStore {
    /// Another handle on the same table and client; its jitter sequence differs.
    fn clone(&self) -> DynamoStore {
        let seed = self.jitter.load(Ordering::Relaxed).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
        DynamoStore {
            client: self.client.clone(),
            table: self.table.clone(),
            jitter: AtomicU64::new(seed | 1),
        }
    }
}

impl DynamoStore {
    /// A store in `table`. The client is reconfigured: SDK retries off, every call bounded
    /// by [`CONNECT_TIMEOUT`] and [`CALL_TIMEOUT`] (see the [module documentation](self)).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(CALL_TIMEOUT)
                    .operation_timeout(CALL_TIMEOUT)
                    .build(),
            )
            .build();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        DynamoStore {
            client: Client::from_conf(config),
            table: table.into(),
            jitter: AtomicU64::new(seed | 1),
        }
    }

    /// The table this store uses.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The group's record with the trail of its request or failover in flight (empty
    /// when there is none) and every ended failover with what the record kept about it
    /// (oldest first): [`crate::trail`]. One consistent read, as [`StorePort::read`].
    pub async fn read_with_trail(
        &self,
        group: &str,
    ) -> Result<Option<(Record, Vec<Mark>, Vec<Ended>)>, StoreUnavailable> {
        let Some(read) = self.read_item(group).await.map_err(StoreUnavailable)? else {
            return Ok(None);
        };
        let trail = parse_trail(read.main.get(TRAIL))
            .map_err(|e| StoreUnavailable(format!("group {group}: malformed trail: {e}")))?;
        let ended = ended_of(group, &read.history).map_err(StoreUnavailable)?;
        Ok(Some((read.record, trail, ended)))
    }

    /// Every ended failover of the group with what the record kept about it, in write
    /// order (oldest first).
    pub async fn ended(&self, group: &str) -> Result<Vec<Ended>, StoreUnavailable> {
        let items = self.history_items(group).await.map_err(StoreUnavailable)?;
        ended_of(group, &items).map_err(StoreUnavailable)
    }

    /// The group's history items (with retries).
    async fn history_items(&self, group: &str) -> Result<Vec<Item>, String> {
        self.retrying("query history", || self.query_history(group))
            .await
            .map_err(|f| f.to_string())
    }

    /// Run `call` until it succeeds, fails other than definitely, or [`ATTEMPTS`] ran out,
    /// sleeping a jittered exponential back-off between attempts.
    async fn retrying<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(Failure::Definite(message)) if attempt + 1 < ATTEMPTS => {
                    let pause = self.backoff(attempt);
                    tracing::debug!(what, attempt, ?pause, %message, "DynamoDB refused; retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The pause after failed attempt `attempt` (0-based): half of `base * 2^attempt`
    /// plus a random part of the other half.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = BACKOFF_BASE.saturating_mul(1 << attempt.min(16));
        let half = cap / 2;
        let previous = self
            .jitter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(xorshift(x)))
            .unwrap_or(1);
        let random = xorshift(previous);
        let range = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(random % range.saturating_add(1))
    }

    /// A consistent read of the main item, once.
    async fn get_main(&self, group: &str) -> Result<Option<Item>, Failure> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(group, RECORD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| classify(&e))
    }

    /// A consistent query of the history items, all pages, once.
    async fn query_history(&self, group: &str) -> Result<Vec<Item>, Failure> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(group))
                .expression_attribute_values(":prefix", s(HISTORY_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => return Ok(items),
            }
        }
    }

    /// The record whose main item is `main`: queries the history (with retries).
    async fn complete_record(&self, group: &str, main: &Item) -> Result<Record, String> {
        let items = self.history_items(group).await?;
        record_of(group, main, &items)
    }

    /// A strongly consistent read of the whole record: main item first, then history.
    /// A read that met a `Complete` or `Abort` half way (the failover still in the main
    /// item, already in the history) is read again, so the record returned is one some
    /// write left (the integration monitor saw such a half once); after a few tries it
    /// is returned as it is (`Record::knows` treats it the same).
    async fn read_record(&self, group: &str) -> Result<Option<Record>, String> {
        Ok(self.read_item(group).await?.map(|read| read.record))
    }

    /// [`Self::read_record`] with the items it parsed.
    async fn read_item(&self, group: &str) -> Result<Option<Read>, String> {
        let mut tries = 0;
        loop {
            let main = self
                .retrying("read record", || self.get_main(group))
                .await
                .map_err(|f| f.to_string())?;
            let Some(main) = main else {
                return Ok(None);
            };
            let history = self.history_items(group).await?;
            let record = record_of(group, &main, &history)?;
            let torn = record
                .failover
                .is_some_and(|f| record.history.iter().any(|h| h.id == f.id));
            tries += 1;
            if !torn || tries >= 5 {
                return Ok(Some(Read {
                    record,
                    main,
                    history,
                }));
            }
        }
    }

    /// The reply to a write whose condition was false; `main` is the main item returned
    /// with the failure, if any.
    async fn condition_failed(&self, group: &str, main: Option<Item>) -> Reply {
        let record = match main {
            Some(main) => match self.complete_record(group, &main).await {
                // Met a `Complete` or `Abort` half way: read the whole record again.
                Ok(r)
                    if r.failover
                        .is_some_and(|f| r.history.iter().any(|h| h.id == f.id)) =>
                {
                    self.read_record(group).await
                }
                other => other.map(Some),
            },
            None => self.read_record(group).await,
        };
        match record {
            Ok(Some(record)) => Reply::ConditionFailed(record),
            Ok(None) => Reply::Missing,
            Err(message) => {
                tracing::warn!(group, %message, "condition failed, then reading failed");
                Reply::Unavailable
            }
        }
    }

    /// One conditional `UpdateItem` of the main item, once; the item after it.
    async fn update_once(&self, group: &str, update: &MainUpdate) -> Result<Item, Failure> {
        let expressions = [update.condition.as_str(), update.update.as_str()];
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(group, RECORD_SK)))
            .condition_expression(&update.condition)
            .update_expression(&update.update)
            .set_expression_attribute_names(names(&expressions))
            .set_expression_attribute_values(values(&expressions, &update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out
                .attributes
                .ok_or_else(|| Failure::Ambiguous("UpdateItem returned no item".to_owned())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Err(Failure::Condition(failed.item().cloned()))
                }
                _ => Err(classify(&e)),
            },
        }
    }

    /// A write sent as one `UpdateItem`.
    async fn update(&self, group: &str, update: &MainUpdate) -> Reply {
        match self
            .retrying("update record", || self.update_once(group, update))
            .await
        {
            Ok(main) => applied(group, self.complete_record(group, &main).await.map(Some)),
            Err(Failure::Condition(main)) => self.condition_failed(group, main).await,
            Err(failure) => failure.reply(group),
        }
    }

    /// One `TransactWriteItems` of the main item's update and a history item, once.
    async fn transact_once(
        &self,
        group: &str,
        update: &MainUpdate,
        history: &HistoryWrite,
    ) -> Result<(), Failure> {
        let construction = |e: aws_smithy_types::error::operation::BuildError| {
            Failure::Definite(format!("building the transaction: {e}"))
        };
        let expressions = [update.condition.as_str(), update.update.as_str()];
        let main = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(group, RECORD_SK)))
            .condition_expression(&update.condition)
            .update_expression(&update.update)
            .set_expression_attribute_names(names(&expressions))
            .set_expression_attribute_values(values(&expressions, &update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(construction)?;
        let absent = "attribute_not_exists(#pk)";
        let history = match history {
            HistoryWrite::Unknown(id) => TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(group, &history_sk(*id))))
                        .condition_expression(absent)
                        .set_expression_attribute_names(names(&[absent]))
                        .build()
                        .map_err(construction)?,
                )
                .build(),
            HistoryWrite::Append(entry) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(entry.item(group)))
                        .condition_expression(absent)
                        .set_expression_attribute_names(names(&[absent]))
                        .build()
                        .map_err(construction)?,
                )
                .build(),
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(main).build())
            .transact_items(history)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons = cancelled.cancellation_reasons();
                    let failed =
                        |r: &&CancellationReason| r.code() == Some("ConditionalCheckFailed");
                    if reasons.iter().any(|r| failed(&r)) {
                        // The main item's reason carries its old image (the update asks
                        // for it); without it, for instance when only the history check
                        // failed, the record is read again.
                        Err(Failure::Condition(
                            reasons
                                .first()
                                .filter(failed)
                                .and_then(|r| r.item().cloned()),
                        ))
                    } else {
                        let codes: Vec<&str> =
                            reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
                        Err(Failure::Definite(format!(
                            "transaction cancelled: {codes:?}"
                        )))
                    }
                }
                _ => Err(classify(&e)),
            },
        }
    }

    /// A write sent as one `TransactWriteItems`.
    async fn transact(&self, group: &str, update: &MainUpdate, history: &HistoryWrite) -> Reply {
        match self
            .retrying("transaction", || self.transact_once(group, update, history))
            .await
        {
            Ok(()) => applied(group, self.read_record(group).await),
            Err(Failure::Condition(main)) => self.condition_failed(group, main).await,
            Err(failure) => failure.reply(group),
        }
    }

    /// `Complete`: read the failover's kind and target, then the transaction.
    async fn complete(
        &self,
        group: &str,
        w: &Write,
        id: FailoverId,
        token: Token,
        at: u32,
    ) -> Reply {
        let (record, main) = match self.read_before(group, "Complete").await {
            Ok(read) => read,
            Err(reply) => return reply,
        };
        match record.failover {
            Some(f)
                if f.id == id
                    && f.done == at
                    && record.token == token
                    && record.instance[w.by.index()] == Some(w.instance) =>
            {
                let (update, history) = complete_update(w, id, token, at, &f, Some(&main));
                self.transact(group, &update, &history).await
            }
            _ => Reply::ConditionFailed(record),
        }
    }

    /// The record read before a write that needs it (`what`), or the write's reply if
    /// there is none (missing) or the read failed (nothing was applied).
    async fn read_before(&self, group: &str, what: &str) -> Result<(Record, Item), Reply> {
        match self.read_item(group).await {
            Ok(Some(read)) => Ok((read.record, read.main)),
            Ok(None) => Err(Reply::Missing),
            Err(message) => {
                tracing::warn!(group, %message, "reading before {what} failed");
                Err(Reply::Unavailable)
            }
        }
    }

    /// `AlreadyActive` or `Withdraw`: read the record; if the model's condition is false
    /// on it, that is the answer (the write is linearized at the read); otherwise the
    /// transaction of [`ended_update`], conditional on the token read (every change of
    /// what the condition looks at but a new request raises it, and the transaction
    /// checks the pending request itself).
    async fn after_read(&self, group: &str, timing: &Timing, w: &Write) -> Reply {
        let (record, main) = match self.read_before(group, "the write").await {
            Ok(read) => read,
            Err(reply) => return reply,
        };
        if failover_model::apply(&record, w, timing, Variant::Correct).is_err() {
            return Reply::ConditionFailed(record);
        }
        if let Some((update, history)) = failover_update(w, &record, Some(&main)) {
            return match history {
                Some(history) => self.transact(group, &update, &history).await,
                None => self.update(group, &update).await,
            };
        }
        match ended_update(w, &record, Some(&main)) {
            Some((update, history)) => self.transact(group, &update, &history).await,
            None => Reply::ConditionFailed(record),
        }
    }

    /// Put the initial main item unless it exists, once.
    async fn put_initial(&self, group: &str, active: Cluster, now: Time) -> Result<(), Failure> {
        let mut item = key(group, RECORD_SK);
        item.insert("active".to_owned(), cluster(active));
        item.insert("token".to_owned(), n(0));
        item.insert("hb_A".to_owned(), n(now));
        item.insert("hb_B".to_owned(), n(now));
        self.put_new(item).await
    }

    /// Put the main item of a re-created record (active and token; no lock, failover,
    /// request, heartbeat or owner) unless one exists, once.
    async fn put_recreated(&self, group: &str, record: &Record) -> Result<(), Failure> {
        let mut item = key(group, RECORD_SK);
        item.insert("active".to_owned(), cluster(record.active));
        item.insert("token".to_owned(), n(record.token));
        self.put_new(item).await
    }

    /// Put a new main item if none exists.
    async fn put_new(&self, item: Item) -> Result<(), Failure> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(Failure::Condition(None))
                }
                _ => Err(classify(&e)),
            },
        }
    }
}

/// The reply to a write that applied, given the read of the record after it: the record,
/// or (if it cannot be read) Ambiguous, since the caller must re-read before deciding.
fn applied(group: &str, read: Result<Option<Record>, String>) -> Reply {
    match read {
        Ok(Some(record)) => Reply::Applied(record),
        Ok(None) => {
            tracing::error!(group, "write applied, then the record was gone");
            Reply::Ambiguous
        }
        Err(message) => {
            tracing::warn!(group, %message, "write applied, then reading failed");
            Reply::Ambiguous
        }
    }
}

impl StorePort for DynamoStore {
    async fn init(
        &self,
        group: &str,
        active: Cluster,
        now: Time,
    ) -> Result<Record, StoreUnavailable> {
        let put = self
            .retrying("create record", || self.put_initial(group, active, now))
            .await;
        // Whatever the put answered (created, existed, failed, unknown), the read decides.
        match self.read_record(group).await.map_err(StoreUnavailable)? {
            Some(record) => Ok(record),
            None => Err(StoreUnavailable(match put {
                Err(failure) => format!("creating group {group}: {failure}"),
                Ok(()) => format!("group {group} vanished after its creation"),
            })),
        }
    }

    async fn read(&self, group: &str) -> Result<Option<Record>, StoreUnavailable> {
        self.read_record(group).await.map_err(StoreUnavailable)
    }

    async fn recreate(&self, group: &str, record: &Record) -> Reply {
        let fresh = record.lock.is_none()
            && record.failover.is_none()
            && record.request.is_none()
            && record.heartbeat == [None, None]
            && record.instance == [None, None]
            && record.bound == [None, None]
            && record.contested == [None, None]
            && record.spec == [None, None];
        if !fresh {
            tracing::error!(
                group,
                "a re-created record has only an active cluster and a token"
            );
            return Reply::Unavailable;
        }
        let put = self
            .retrying("re-create record", || self.put_recreated(group, record))
            .await;
        match put {
            Ok(()) => applied(group, self.read_record(group).await),
            Err(Failure::Condition(_)) => self.condition_failed(group, None).await,
            Err(failure) => failure.reply(group),
        }
    }

    async fn write(&self, group: &str, timing: &Timing, write: &Write) -> Reply {
        let reply = match encode(timing, write) {
            Request::Update(update) => self.update(group, &update).await,
            Request::Transact(update, history) => self.transact(group, &update, &history).await,
            Request::Complete { id, token, at } => self.complete(group, write, id, token, at).await,
            Request::AfterRead => self.after_read(group, timing, write).await,
        };
        tracing::debug!(
            group,
            by = %write.by,
            now = write.now,
            op = ?write.op,
            reply = reply_kind(&reply),
            "DynamoDB write"
        );
        reply
    }
}

/// The reply's kind, for logs.
fn reply_kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Applied(_) => "applied",
        Reply::ConditionFailed(_) => "condition-failed",
        Reply::Ambiguous => "ambiguous",
        Reply::Unavailable => "unavailable",
        Reply::Missing => "missing",
    }
}

/// Why one DynamoDB call did not succeed.
#[derive(Clone, Debug, PartialEq)]
enum Failure {
    /// The condition was false; the main item as it was, if DynamoDB returned it.
    Condition(Option<Item>),
    /// Certainly not applied.
    Definite(String),
    /// May or may not have applied.
    Ambiguous(String),
}

impl Failure {
    /// The reply to a write that failed this way (not for [`Failure::Condition`]).
    fn reply(self, group: &str) -> Reply {
        match self {
            Failure::Definite(message) => {
                tracing::warn!(group, %message, "DynamoDB write not applied");
                Reply::Unavailable
            }
            Failure::Ambiguous(message) => {
                tracing::warn!(group, %message, "DynamoDB write may or may not have applied");
                Reply::Ambiguous
            }
            Failure::Condition(_) => Reply::Unavailable,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Condition(_) => f.write_str("condition failed"),
            Failure::Definite(message) => write!(f, "refused: {message}"),
            Failure::Ambiguous(message) => write!(f, "outcome unknown: {message}"),
        }
    }
}

/// Error codes with which DynamoDB refuses a request before executing it.
const DEFINITE_CODES: [&str; 15] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionConflictException",
    "ReplicatedWriteConflictException",
    "ResourceNotFoundException",
    "ValidationException",
    "UnrecognizedClientException",
    "AccessDeniedException",
    "MissingAuthenticationTokenException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "ExpiredTokenException",
    "InvalidEndpointException",
];

/// Classify a failed call (other than a false condition): see the module documentation.
fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let message = DisplayErrorContext(err).to_string();
    let definite = match err {
        SdkError::ConstructionFailure(_) => true,
        SdkError::DispatchFailure(_) => connect_failed(err),
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .is_some_and(|code| DEFINITE_CODES.contains(&code)),
        _ => false,
    };
    if definite {
        Failure::Definite(message)
    } else {
        Failure::Ambiguous(message)
    }
}

/// The error happened while connecting, so the request was never sent: DNS resolution,
/// a refused connection, a connect timeout, or the HTTP client's connect stage.
fn connect_failed(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<ResolveDnsError>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        let text = e.to_string();
        // aws-smithy-http-client's connect timeout, hyper-util's connect-stage error.
        if text.starts_with("HTTP connect timeout") || text.starts_with("client error (Connect)") {
            return true;
        }
        next = e.source();
    }
    false
}

/// One step of xorshift64 (never maps a non-zero state to zero).
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A conditional update of the main item.
#[derive(Clone, Debug, PartialEq)]
struct MainUpdate {
    /// The `ConditionExpression`.
    condition: String,
    /// The `UpdateExpression`.
    update: String,
    /// Values of the placeholders (those the expressions do not use are left out).
    values: Vec<(&'static str, AttributeValue)>,
}

/// The history item part of a transaction.
#[derive(Clone, Debug, PartialEq)]
enum HistoryWrite {
    /// A `ConditionCheck` that the failover's history item does not exist.
    Unknown(FailoverId),
    /// A `Put` of a new history item (if it does not exist).
    Append(HistoryItem),
}

/// A history item to write.
#[derive(Clone, Debug, PartialEq)]
struct HistoryItem {
    /// The failover.
    id: FailoverId,
    /// How it ended.
    outcome: Outcome,
    /// The record's token when it ended.
    token: Token,
    /// The writer.
    by: Cluster,
    /// The writer's local time.
    at: Time,
    /// What the record kept about the failover for people, copied from the main item
    /// read before the write (`kind`, `source`, `target`, `hooks`, `trail`):
    /// [`crate::trail`].
    kept: Vec<(&'static str, AttributeValue)>,
}

impl HistoryItem {
    /// The item.
    fn item(&self, group: &str) -> Item {
        let mut item = key(group, &history_sk(self.id));
        item.insert("id".to_owned(), n(self.id));
        item.insert("outcome".to_owned(), s(&outcome_name(self.outcome)));
        item.insert("token".to_owned(), n(self.token));
        item.insert("by".to_owned(), cluster(self.by));
        item.insert("at".to_owned(), n(self.at));
        for (name, value) in &self.kept {
            item.insert((*name).to_owned(), value.clone());
        }
        item
    }
}

/// What a history item keeps of the failover `f` (if it started) and of the main item
/// read before its end (`main`, for the trail): never part of the protocol's record.
fn kept(f: Option<&InFlight>, main: Option<&Item>) -> Vec<(&'static str, AttributeValue)> {
    let mut kept = Vec::new();
    if let Some(f) = f {
        kept.push(("kind", s(kind_name(f.kind))));
        kept.push(("source", cluster(f.source)));
        kept.push(("target", cluster(f.target)));
        kept.push(("hooks", n(f.hooks.bits())));
    }
    if let Some(trail) = main.and_then(|m| m.get(TRAIL)) {
        kept.push((TRAIL, trail.clone()));
    }
    kept
}

/// The attribute holding the trail of the request or failover in flight
/// ([`crate::trail`]): set by `Request`, appended to by every write on the failover,
/// removed when it ends (copied into its history item).
const TRAIL: &str = "trail";

/// Append `:mark` to the trail (created if absent, so an advisory attribute can never
/// make a protocol write fail).
const APPEND: &str = "#trail = list_append(if_not_exists(#trail, :empty), :mark)";

/// A trail mark as a one-element list (for `list_append`): the event, the writer (none
/// for a person), its local time, the journal position after the write.
fn mark(event: MarkEvent, by: Option<Cluster>, at: Time, done: Option<u64>) -> AttributeValue {
    marked(event, by, at, done, [])
}

/// [`mark`] with more attributes (a request's `to` and `mode`).
fn marked<const N: usize>(
    event: MarkEvent,
    by: Option<Cluster>,
    at: Time,
    done: Option<u64>,
    more: [(&str, AttributeValue); N],
) -> AttributeValue {
    let mut m = HashMap::new();
    m.insert("e".to_owned(), s(event.name()));
    if let Some(by) = by {
        m.insert("by".to_owned(), cluster(by));
    }
    m.insert("at".to_owned(), n(at));
    if let Some(done) = done {
        m.insert("n".to_owned(), n(done));
    }
    m.extend(more.map(|(k, v)| (k.to_owned(), v)));
    AttributeValue::L(vec![AttributeValue::M(m)])
}

/// The pending request's attributes, removed when it starts or ends.
const REQUEST_CLEAR: &str = "REMOVE #req_id, #req_to, #req_mode, #req_by, #req_at";

/// The lock and failover attributes `Complete` and `Abort` remove (and the trail, which
/// the history item keeps).
const CLEAR: &str = "REMOVE #lock_holder, #lock_until, #fo_id, #fo_kind, #fo_source, \
                     #fo_target, #fo_done, #fo_stuck, #fo_abort, #fo_resolve, #fo_hooks, \
                     #trail";

/// How a write is sent.
#[derive(Clone, Debug, PartialEq)]
enum Request {
    /// One `UpdateItem` of the main item.
    Update(MainUpdate),
    /// One `TransactWriteItems`: the main item's update and the history part.
    Transact(MainUpdate, HistoryWrite),
    /// `AlreadyActive` and `Withdraw`, whose history item carries the record's next
    /// token: a read, then the transaction of [`ended_update`].
    AfterRead,
    /// `Complete`, which needs the failover's kind and target first: a read, then the
    /// transaction of [`complete_update`].
    Complete {
        /// The failover.
        id: FailoverId,
        /// The writer's fencing token.
        token: Token,
        /// The journal position of the `Complete` step.
        at: u32,
    },
}

/// The request that sends `w`.
fn encode(timing: &Timing, w: &Write) -> Request {
    let me = w.by;
    let peer = me.peer();
    let until = w.now.saturating_add(timing.lease_ttl);
    let mut values = vec![
        (":by", cluster(me)),
        (":peer", cluster(peer)),
        (":now", n(w.now)),
        (":until", n(until)),
        (":one", n(1)),
        (":zero", n(0)),
        (":inst", n(w.instance)),
        (":empty", AttributeValue::L(Vec::new())),
    ];
    let take_lock = "#token = #token + :one, #lock_holder = :by, #lock_until = :until";
    let progress = |id: FailoverId, token: Token, at: u32| {
        [
            (":id", n(id)),
            (":token", n(token)),
            (":at", n(u64::from(at))),
            (":next", n(u64::from(at) + 1)),
        ]
    };
    let in_flight = "attribute_exists(#pk) AND #fo_id = :id AND #fo_done = :at";
    let (condition, update, history) = match w.op {
        Op::Claim { prev, identity } => {
            let hb = hb_name(me);
            let inst = inst_name(me);
            let id = ident_name(me);
            values.push((":ident", n(identity)));
            let owner = match prev {
                Some(p) => {
                    values.push((":prev", n(p)));
                    format!("#{inst} = :prev")
                }
                None => format!("attribute_not_exists(#{inst})"),
            };
            let update = MainUpdate {
                condition: format!(
                    "attribute_exists(#pk) AND {owner} \
                     AND (attribute_not_exists(#{id}) OR #{id} = :ident) \
                     AND (attribute_not_exists(#{hb}) OR #{hb} < :now)"
                ),
                update: format!(
                    "SET #{inst} = :inst, #{hb} = :now, #{id} = :ident REMOVE #{}",
                    health_name(me)
                ),
                values,
            };
            return Request::Update(update);
        }
        // The sender owns nothing: no instance condition.
        Op::Contest { identity } => {
            let id = ident_name(me);
            values.push((":ident", n(identity)));
            return Request::Update(MainUpdate {
                condition: format!(
                    "attribute_exists(#pk) AND attribute_exists(#{id}) AND #{id} <> :ident"
                ),
                update: format!("SET #{} = :ident", contest_name(me)),
                values,
            });
        }
        Op::Uncontest { identity } => {
            values.push((":ident", n(identity)));
            (
                format!("attribute_exists(#pk) AND #{} = :ident", contest_name(peer)),
                format!("REMOVE #{}", contest_name(peer)),
                None,
            )
        }
        Op::Spec { print } => {
            values.push((":print", s(&print_text(&print))));
            values.push((":hooks", n(print.hooks.bits())));
            (
                "attribute_exists(#pk)".to_owned(),
                format!(
                    "SET #{} = :print, #{} = :hooks",
                    spec_name(me),
                    hooks_name(me)
                ),
                None,
            )
        }
        Op::Heartbeat { health } => {
            let hb = hb_name(me);
            values.push((":health", n(health_bits(health))));
            (
                format!("attribute_exists(#pk) AND (attribute_not_exists(#{hb}) OR #{hb} < :now)"),
                format!("SET #{hb} = :now, #{} = :health", health_name(me)),
                None,
            )
        }
        Op::Request { id, to, mode } => {
            values.push((":id", n(id)));
            values.push((":to", cluster(to)));
            values.push((":mode", s(kind_name(PlanKind::Planned(mode)))));
            let first = marked(
                MarkEvent::Requested,
                Some(me),
                w.now,
                None,
                [
                    ("to", cluster(to)),
                    ("mode", s(kind_name(PlanKind::Planned(mode)))),
                ],
            );
            values.push((":first", first));
            (
                "attribute_exists(#pk) AND attribute_not_exists(#req_id) \
                 AND attribute_not_exists(#fo_id) AND #active <> :to"
                    .to_owned(),
                "SET #req_id = :id, #req_to = :to, #req_mode = :mode, #req_by = :by, \
                 #req_at = :now, #trail = :first"
                    .to_owned(),
                Some(HistoryWrite::Unknown(id)),
            )
        }
        // Their history item carries the new token: the record is read first. (A
        // create is never sent as a write: the executor creates a record with
        // `init`; on a record that exists it is refused like any false condition.)
        //
        // Since issue 10 the deadline's and a person's writes are read first as well:
        // their conditions depend on the failover's plan (where its promotion is) and
        // the transaction is conditional on everything they look at.
        Op::AlreadyActive { .. }
        | Op::Withdraw { .. }
        | Op::Create { .. }
        | Op::Abort { .. }
        | Op::Stuck { .. }
        | Op::Resolve { .. }
        | Op::Intervene { .. } => {
            return Request::AfterRead;
        }
        Op::Acquire { id, mode } => {
            values.push((":mark", mark(MarkEvent::Acquired, Some(me), w.now, Some(1))));
            values.push((":id", n(id)));
            values.push((":kind", s(kind_name(PlanKind::Planned(mode)))));
            (
                "attribute_exists(#pk) AND #active = :by AND attribute_not_exists(#fo_id) \
                 AND attribute_not_exists(#lock_until) AND #req_id = :id \
                 AND #req_mode = :kind AND #req_to = :peer \
                 AND ((attribute_not_exists(#spec_A) AND attribute_not_exists(#spec_B)) \
                 OR #spec_A = #spec_B)"
                    .to_owned(),
                // The failover keeps the hooks of the acquirer's print (which the
                // condition makes the peer's too).
                format!(
                    "SET {take_lock}, #fo_id = :id, #fo_kind = :kind, #fo_source = :by, \
                     #fo_target = :peer, #fo_done = :one, \
                     #fo_hooks = if_not_exists(#{}, :zero), {APPEND} {REQUEST_CLEAR}",
                    hooks_name(me)
                ),
                Some(HistoryWrite::Unknown(id)),
            )
        }
        Op::ForceTakeLock { id, seen } => {
            let hb = hb_name(peer);
            values.push((":mark", mark(MarkEvent::Forced, Some(me), w.now, Some(1))));
            values.push((":id", n(id)));
            values.push((":kind", s(kind_name(PlanKind::Forced))));
            // The peer's heartbeat is still the one the writer saw stand for lease +
            // drift of its own monotonic clock: no clock is compared.
            let standing = match seen {
                Some(t) => {
                    values.push((":seen", n(t)));
                    format!("#{hb} = :seen")
                }
                None => format!("attribute_not_exists(#{hb})"),
            };
            (
                format!(
                    "attribute_exists(#pk) AND #active = :peer AND {standing} \
                     AND ((attribute_not_exists(#fo_id) AND #req_id = :id AND #req_to = :by) \
                     OR (#fo_id = :id AND #fo_kind <> :kind))"
                ),
                format!(
                    "SET {take_lock}, #fo_id = :id, #fo_kind = :kind, #fo_source = :peer, \
                     #fo_target = :by, #fo_done = :one, \
                     #fo_hooks = if_not_exists(#{}, :zero), {APPEND} {REQUEST_CLEAR}, \
                     #fo_stuck, #fo_abort, #fo_resolve",
                    hooks_name(me)
                ),
                Some(HistoryWrite::Unknown(id)),
            )
        }
        Op::TakeOver { id, at } => {
            values.extend(progress(id, 0, at));
            let next = Some(u64::from(at) + 1);
            values.push((":mark", mark(MarkEvent::TookOver, Some(me), w.now, next)));
            (
                format!(
                    "{in_flight} AND attribute_not_exists(#lock_until) \
                     AND attribute_not_exists(#fo_abort)"
                ),
                format!("SET {take_lock}, #fo_done = :next, {APPEND} REMOVE #fo_stuck"),
                None,
            )
        }
        Op::Journal {
            id,
            token,
            at,
            release,
        } => {
            values.extend(progress(id, token, at));
            let event = MarkEvent::Journaled { released: release };
            let next = Some(u64::from(at) + 1);
            values.push((":mark", mark(event, Some(me), w.now, next)));
            let update = if release {
                format!(
                    "SET #fo_done = :next, {APPEND} \
                     REMOVE #lock_holder, #lock_until, #fo_stuck, #fo_resolve"
                )
            } else {
                format!(
                    "SET #fo_done = :next, #lock_holder = :by, #lock_until = :until, {APPEND} \
                     REMOVE #fo_stuck"
                )
            };
            // No journal entry while a person's abort is asked (issue 13): the holder
            // carries the abort out instead.
            (
                format!("{in_flight} AND #token = :token AND attribute_not_exists(#fo_abort)"),
                update,
                None,
            )
        }
        Op::Complete { id, token, at } => return Request::Complete { id, token, at },
    };
    let update = MainUpdate {
        condition: format!("{condition} AND #{} = :inst", inst_name(me)),
        update,
        values,
    };
    match history {
        None => Request::Update(update),
        Some(history) => Request::Transact(update, history),
    }
}

/// A write on the failover in flight by `w` on `record` (as read just before, where the
/// model's condition held): `Abort`, `Stuck`, `Resolve` or a person's `Intervene`,
/// conditional on the failover's id, kind, position and token as read and on the flags
/// it looks at (an intervention sets `fo_asked` without raising the token).
fn failover_update(
    w: &Write,
    record: &Record,
    main: Option<&Item>,
) -> Option<(MainUpdate, Option<HistoryWrite>)> {
    let f = record.failover?;
    let (id, token, at) = match w.op {
        Op::Abort { id, token, at, .. }
        | Op::Stuck { id, token, at }
        | Op::Resolve { id, token, at }
        | Op::Intervene { id, token, at, .. } => (id, token, at),
        _ => return None,
    };
    let mut values = vec![
        (":id", n(id)),
        (":at", n(u64::from(at))),
        (":token", n(token)),
        (":kind", s(kind_name(f.kind))),
        (":inst", n(w.instance)),
        (":one", n(1)),
        (":empty", AttributeValue::L(Vec::new())),
    ];
    let mut condition = "attribute_exists(#pk) AND #fo_id = :id AND #fo_done = :at \
                         AND #token = :token AND #fo_kind = :kind"
        .to_owned();
    let item = |outcome| {
        HistoryWrite::Append(HistoryItem {
            id,
            outcome,
            token,
            by: w.by,
            at: w.now,
            kept: kept(Some(&f), main),
        })
    };
    let person = matches!(w.op, Op::Intervene { .. });
    let by = (!person).then_some(w.by);
    let event = match w.op {
        Op::Stuck { .. } => Some(MarkEvent::Stuck),
        Op::Intervene { action, .. } => Some(MarkEvent::Asked(action)),
        _ => None,
    };
    if let Some(event) = event {
        values.push((":mark", mark(event, by, w.now, Some(u64::from(at)))));
    }
    let (extra, update, history) = match w.op {
        Op::Abort { reason, .. } => ("", CLEAR.to_owned(), Some(item(Outcome::Aborted(reason)))),
        Op::Stuck { .. } => (
            " AND attribute_not_exists(#fo_stuck)",
            format!("SET #fo_stuck = :one, {APPEND}"),
            None,
        ),
        Op::Resolve { .. } => {
            values.push((":target", cluster(f.target)));
            (
                " AND attribute_exists(#fo_resolve)",
                format!("SET #active = :target {CLEAR}"),
                Some(item(Outcome::Resolved)),
            )
        }
        Op::Intervene { action, .. } => match action {
            Intervention::Retry => {
                values.push((":next", n(token + 1)));
                (
                    " AND #fo_stuck = :one",
                    format!("SET #token = :next, {APPEND} REMOVE #fo_stuck"),
                    None,
                )
            }
            Intervention::Abort => (
                " AND attribute_not_exists(#fo_abort) AND attribute_not_exists(#fo_resolve)",
                format!("SET #fo_abort = :one, {APPEND}"),
                None,
            ),
            Intervention::Resolve => (
                " AND attribute_not_exists(#fo_abort) AND attribute_not_exists(#fo_resolve) \
                 AND #fo_stuck = :one",
                format!("SET #fo_resolve = :one, {APPEND}"),
                None,
            ),
        },
        _ => return None,
    };
    condition.push_str(extra);
    // Every write but a person's comes from the slot's owner (unused values are not
    // sent: `values`).
    if !person {
        condition.push_str(&format!(" AND #{} = :inst", inst_name(w.by)));
    }
    Some((
        MainUpdate {
            condition,
            update,
            values,
        },
        history,
    ))
}

/// `AlreadyActive` or `Withdraw` by `w` on `record` (as read just before, where the
/// model's condition held): the record's token, unchanged since, is raised, and the
/// history item carries the new one.
fn ended_update(
    w: &Write,
    record: &Record,
    main: Option<&Item>,
) -> Option<(MainUpdate, HistoryWrite)> {
    let (id, outcome, condition, update) = match w.op {
        Op::AlreadyActive { id, .. } => (
            id,
            Outcome::NoOp,
            "attribute_not_exists(#req_id) AND attribute_not_exists(#fo_id) AND #active = :to",
            "SET #token = :next",
        ),
        Op::Withdraw { id } => (
            id,
            Outcome::Withdrawn,
            "#req_id = :id",
            "SET #token = :next REMOVE #req_id, #req_to, #req_mode, #req_by, #req_at, #trail",
        ),
        _ => return None,
    };
    let to = match w.op {
        Op::AlreadyActive { to, .. } => to,
        _ => record.active,
    };
    let update = MainUpdate {
        condition: format!(
            "attribute_exists(#pk) AND {condition} AND #token = :token AND #{} = :inst",
            inst_name(w.by)
        ),
        update: update.to_owned(),
        values: vec![
            (":id", n(id)),
            (":to", cluster(to)),
            (":token", n(record.token)),
            (":next", n(record.token + 1)),
            (":inst", n(w.instance)),
        ],
    };
    let history = HistoryWrite::Append(HistoryItem {
        id,
        outcome,
        token: record.token + 1,
        by: w.by,
        at: w.now,
        kept: match w.op {
            Op::Withdraw { .. } => kept(None, main),
            _ => Vec::new(),
        },
    });
    Some((update, history))
}

/// `Complete` of the in-flight failover `f` (as read just before).
fn complete_update(
    w: &Write,
    id: FailoverId,
    token: Token,
    at: u32,
    f: &InFlight,
    main: Option<&Item>,
) -> (MainUpdate, HistoryWrite) {
    let update = MainUpdate {
        condition: format!(
            "attribute_exists(#pk) AND #fo_id = :id AND #fo_done = :at AND #token = :token \
             AND #fo_kind = :kind AND #fo_target = :target AND #{} = :inst",
            inst_name(w.by)
        ),
        update: format!("SET #active = :target {CLEAR}"),
        values: vec![
            (":id", n(id)),
            (":at", n(u64::from(at))),
            (":token", n(token)),
            (":kind", s(kind_name(f.kind))),
            (":target", cluster(f.target)),
            (":inst", n(w.instance)),
        ],
    };
    let history = HistoryWrite::Append(HistoryItem {
        id,
        outcome: Outcome::Completed(f.kind),
        token,
        by: w.by,
        at: w.now,
        kept: kept(Some(f), main),
    });
    (update, history)
}

/// The placeholders (`#name` or `:value`) an expression uses, without duplicates.
fn placeholders(expressions: &[&str], sigil: char) -> Vec<String> {
    let mut found = Vec::new();
    for expression in expressions {
        let mut rest = *expression;
        while let Some(start) = rest.find(sigil) {
            let tail = &rest[start + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let placeholder = format!("{sigil}{}", &tail[..end]);
            if end > 0 && !found.contains(&placeholder) {
                found.push(placeholder);
            }
            rest = &tail[end..];
        }
    }
    found
}

/// `ExpressionAttributeNames` for the expressions: `#name` stands for attribute `name`.
fn names(expressions: &[&str]) -> Option<HashMap<String, String>> {
    let names: HashMap<String, String> = placeholders(expressions, '#')
        .into_iter()
        .map(|p| {
            let name = p[1..].to_owned();
            (p, name)
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

/// `ExpressionAttributeValues`: the given values the expressions use (DynamoDB rejects
/// unused ones).
fn values(
    expressions: &[&str],
    values: &[(&'static str, AttributeValue)],
) -> Option<HashMap<String, AttributeValue>> {
    let used = placeholders(expressions, ':');
    let values: HashMap<String, AttributeValue> = values
        .iter()
        .filter(|(p, _)| used.iter().any(|u| u == p))
        .map(|(p, v)| ((*p).to_owned(), v.clone()))
        .collect();
    (!values.is_empty()).then_some(values)
}

/// The key of one of a group's items.
fn key(group: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(group)), ("sk".to_owned(), s(sk))])
}

/// Sort key of the history item of failover `id`.
fn history_sk(id: FailoverId) -> String {
    format!("{HISTORY_PREFIX}{id:020}")
}

/// The attribute of the process that owns `cluster`'s slot.
fn inst_name(cluster: Cluster) -> &'static str {
    ["inst_A", "inst_B"][cluster.index()]
}

/// The attribute of the identity `cluster`'s slot is bound to.
fn ident_name(cluster: Cluster) -> &'static str {
    ["id_A", "id_B"][cluster.index()]
}

/// The attribute of an identity that contested `cluster`'s slot.
fn contest_name(cluster: Cluster) -> &'static str {
    ["con_A", "con_B"][cluster.index()]
}

/// The attribute of `cluster`'s spec fingerprint.
fn spec_name(cluster: Cluster) -> &'static str {
    ["spec_A", "spec_B"][cluster.index()]
}

/// The attribute of `cluster`'s hooks (the `hooks` part of its print, as a number a
/// failover's start copies into `fo_hooks`).
fn hooks_name(cluster: Cluster) -> &'static str {
    ["hk_A", "hk_B"][cluster.index()]
}

/// A spec fingerprint as stored:
/// `clusters=<hex>;timing=<hex>;members=<hex>;inventory=<hex>` and `;hooks=<hex>` if the
/// group has hooks (so a print without hooks reads as before hooks existed).
fn print_text(p: &SpecPrint) -> String {
    let hooks = if p.hooks.is_empty() {
        String::new()
    } else {
        format!(";hooks={:016x}", p.hooks.bits())
    };
    format!(
        "clusters={:016x};timing={:016x};members={:016x};inventory={:016x}{hooks}",
        p.clusters, p.timing, p.members, p.inventory
    )
}

/// The inverse of [`print_text`].
fn parse_print(text: &str) -> Result<SpecPrint, String> {
    let mut parts = [None; 5];
    for part in text.split(';') {
        let (name, hex) = part
            .split_once('=')
            .ok_or_else(|| format!("spec print {text:?}"))?;
        let value =
            u64::from_str_radix(hex, 16).map_err(|e| format!("spec print {text:?}: {e}"))?;
        let slot = match name {
            "clusters" => 0,
            "timing" => 1,
            "members" => 2,
            "inventory" => 3,
            "hooks" => 4,
            _ => return Err(format!("spec print {text:?}")),
        };
        parts[slot] = Some(value);
    }
    match parts {
        [
            Some(clusters),
            Some(timing),
            Some(members),
            Some(inventory),
            hooks,
        ] => Ok(SpecPrint {
            clusters,
            timing,
            members,
            inventory,
            hooks: Hooks::from_bits(hooks.unwrap_or(0))
                .ok_or_else(|| format!("spec print {text:?}: hooks"))?,
        }),
        _ => Err(format!("spec print {text:?}")),
    }
}

/// The attribute of `cluster`'s last heartbeat.
fn hb_name(cluster: Cluster) -> &'static str {
    ["hb_A", "hb_B"][cluster.index()]
}

fn health_name(cluster: Cluster) -> &'static str {
    ["hl_A", "hl_B"][cluster.index()]
}

/// A string value.
fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number value.
fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A cluster value.
fn cluster(cluster: Cluster) -> AttributeValue {
    s(&cluster.to_string())
}

/// The stored name of a plan kind.
fn kind_name(kind: PlanKind) -> &'static str {
    match kind {
        PlanKind::Planned(Mode::Consistency) => "consistency",
        PlanKind::Planned(Mode::Uptime) => "uptime",
        PlanKind::Forced => "forced",
    }
}

/// The stored name of an outcome (an abort names its reason: `aborted-target-silent`,
/// `aborted-deadline-<stage>`, `aborted-person`).
fn outcome_name(outcome: Outcome) -> String {
    match outcome {
        Outcome::Completed(PlanKind::Planned(Mode::Consistency)) => "completed-consistency".into(),
        Outcome::Completed(PlanKind::Planned(Mode::Uptime)) => "completed-uptime".into(),
        Outcome::Completed(PlanKind::Forced) => "completed-forced".into(),
        Outcome::Aborted(reason) => format!("aborted-{reason}"),
        Outcome::Resolved => "resolved".into(),
        Outcome::NoOp => "no-op".into(),
        Outcome::Withdrawn => "withdrawn".into(),
    }
}

/// The outcome a stored name stands for (`aborted` alone, before issue 10: the target
/// was silent, the only reason then).
fn parse_outcome(name: &str) -> Option<Outcome> {
    let reasons = [AbortReason::TargetSilent, AbortReason::Person]
        .into_iter()
        .chain(Stage::ALL.map(AbortReason::Deadline))
        .chain((0..MAX_HOOKS as u8).map(AbortReason::Hook));
    let aborts = reasons.map(|r| (outcome_name(Outcome::Aborted(r)), Outcome::Aborted(r)));
    let others = [
        Outcome::Completed(PlanKind::Planned(Mode::Consistency)),
        Outcome::Completed(PlanKind::Planned(Mode::Uptime)),
        Outcome::Completed(PlanKind::Forced),
        Outcome::Resolved,
        Outcome::NoOp,
        Outcome::Withdrawn,
    ]
    .map(|o| (outcome_name(o), o));
    if name == "aborted" {
        return Some(Outcome::Aborted(AbortReason::TargetSilent));
    }
    aborts
        .chain(others)
        .find(|(n, _)| n == name)
        .map(|(_, o)| o)
}

/// A string attribute, if present.
fn get_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(other) => Err(format!("{name} is {other:?}, not a string")),
    }
}

/// A number attribute, if present.
fn get_n(item: &Item, name: &str) -> Result<Option<u64>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|e| format!("{name} = {value}: {e}")),
        Some(other) => Err(format!("{name} is {other:?}, not a number")),
    }
}

/// A required attribute.
fn required<T>(value: Result<Option<T>, String>, name: &str) -> Result<T, String> {
    value?.ok_or_else(|| format!("{name} is missing"))
}

/// A cluster attribute, if present.
fn get_cluster(item: &Item, name: &str) -> Result<Option<Cluster>, String> {
    get_s(item, name)?
        .map(|value| match value {
            "A" => Ok(Cluster::A),
            "B" => Ok(Cluster::B),
            other => Err(format!("{name} = {other:?}, not A or B")),
        })
        .transpose()
}

/// A journal position.
fn get_u32(item: &Item, name: &str) -> Result<Option<u32>, String> {
    get_n(item, name)?
        .map(|value| u32::try_from(value).map_err(|e| format!("{name} = {value}: {e}")))
        .transpose()
}

/// The record of a main item and its history (in write order).
fn parse_record(item: &Item, history: Vec<HistoryEntry>) -> Result<Record, String> {
    let lock = match (
        get_cluster(item, "lock_holder")?,
        get_n(item, "lock_until")?,
    ) {
        (Some(holder), Some(until)) => Some(Lock { holder, until }),
        (None, None) => None,
        _ => return Err("half a lock (lock_holder without lock_until or back)".to_owned()),
    };
    let failover = match get_n(item, "fo_id")? {
        None => None,
        Some(id) => Some(InFlight {
            id,
            kind: match required(get_s(item, "fo_kind"), "fo_kind")? {
                "consistency" => PlanKind::Planned(Mode::Consistency),
                "uptime" => PlanKind::Planned(Mode::Uptime),
                "forced" => PlanKind::Forced,
                other => return Err(format!("fo_kind = {other:?}")),
            },
            source: required(get_cluster(item, "fo_source"), "fo_source")?,
            target: required(get_cluster(item, "fo_target"), "fo_target")?,
            done: required(get_u32(item, "fo_done"), "fo_done")?,
            stuck: get_n(item, "fo_stuck")?.is_some(),
            asked: match (get_n(item, "fo_abort")?, get_n(item, "fo_resolve")?) {
                (Some(_), _) => Some(Intervention::Abort),
                (None, Some(_)) => Some(Intervention::Resolve),
                (None, None) => None,
            },
            hooks: Hooks::from_bits(get_n(item, "fo_hooks")?.unwrap_or(0))
                .ok_or("fo_hooks names a hook spot that does not exist")?,
        }),
    };
    let request = match get_n(item, "req_id")? {
        None => None,
        Some(id) => Some(Pending {
            id,
            to: required(get_cluster(item, "req_to"), "req_to")?,
            mode: match required(get_s(item, "req_mode"), "req_mode")? {
                "consistency" => Mode::Consistency,
                "uptime" => Mode::Uptime,
                other => return Err(format!("req_mode = {other:?}")),
            },
            by: required(get_cluster(item, "req_by"), "req_by")?,
        }),
    };
    Ok(Record {
        request,
        active: required(get_cluster(item, "active"), "active")?,
        token: required(get_n(item, "token"), "token")?,
        lock,
        failover,
        heartbeat: [get_n(item, "hb_A")?, get_n(item, "hb_B")?],
        history,
        instance: [get_n(item, "inst_A")?, get_n(item, "inst_B")?],
        bound: [get_n(item, "id_A")?, get_n(item, "id_B")?],
        contested: [get_n(item, "con_A")?, get_n(item, "con_B")?],
        spec: [
            get_s(item, "spec_A")?.map(parse_print).transpose()?,
            get_s(item, "spec_B")?.map(parse_print).transpose()?,
        ],
        health: [
            get_n(item, "hl_A")?.map(parse_health),
            get_n(item, "hl_B")?.map(parse_health),
        ],
    })
}

/// The attribute of a health report: bit 1 workloads ready, bit 2 traffic open.
fn health_bits(h: Health) -> u64 {
    u64::from(h.workloads_ready) | u64::from(h.traffic_open) << 1
}

fn parse_health(bits: u64) -> Health {
    Health {
        workloads_ready: bits & 1 != 0,
        traffic_open: bits & 2 != 0,
    }
}

/// A history item: the record's token when it was written, and the entry.
fn parse_history(item: &Item) -> Result<(Token, HistoryEntry), String> {
    let name = required(get_s(item, "outcome"), "outcome")?;
    let outcome = parse_outcome(name).ok_or_else(|| format!("outcome = {name:?}"))?;
    Ok((
        required(get_n(item, "token"), "token")?,
        HistoryEntry {
            id: required(get_n(item, "id"), "id")?,
            outcome,
        },
    ))
}

/// A consistent read of a group's items: the record they make, and the items.
struct Read {
    /// The record.
    record: Record,
    /// Its main item.
    main: Item,
    /// Its history items.
    history: Vec<Item>,
}

/// The record of main item `main` and history items `items` (history in write order).
fn record_of(group: &str, main: &Item, items: &[Item]) -> Result<Record, String> {
    let mut history = items
        .iter()
        .map(parse_history)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("group {group}: malformed history item: {e}"))?;
    history.sort_by_key(|(token, entry)| (*token, entry.id));
    parse_record(main, history.into_iter().map(|(_, entry)| entry).collect())
        .map_err(|e| format!("group {group}: malformed record: {e}"))
}

/// The ended failovers of history items `items`, in write order.
fn ended_of(group: &str, items: &[Item]) -> Result<Vec<Ended>, String> {
    let mut ended = items
        .iter()
        .map(parse_ended)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("group {group}: malformed history item: {e}"))?;
    ended.sort_by_key(|e| (e.token, e.id));
    Ok(ended)
}

/// A history item with what it kept ([`crate::trail::Ended`]).
fn parse_ended(item: &Item) -> Result<Ended, String> {
    let (token, entry) = parse_history(item)?;
    let kind = get_s(item, "kind")?
        .map(|k| parse_kind(k).ok_or_else(|| format!("kind = {k:?}")))
        .transpose()?;
    Ok(Ended {
        id: entry.id,
        outcome: entry.outcome,
        token,
        ended_by: required(get_cluster(item, "by"), "by")?,
        ended_at: get_n(item, "at")?.unwrap_or(0),
        kind,
        source: get_cluster(item, "source")?,
        target: get_cluster(item, "target")?,
        hooks: match get_n(item, "hooks")? {
            Some(bits) => Hooks::from_bits(bits).ok_or_else(|| format!("hooks = {bits}"))?,
            None => Hooks::default(),
        },
        trail: parse_trail(item.get(TRAIL))?,
    })
}

/// A stored plan kind.
fn parse_kind(name: &str) -> Option<PlanKind> {
    [
        PlanKind::Planned(Mode::Consistency),
        PlanKind::Planned(Mode::Uptime),
        PlanKind::Forced,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// A trail attribute (a list of marks), if present.
fn parse_trail(value: Option<&AttributeValue>) -> Result<Vec<Mark>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let AttributeValue::L(list) = value else {
        return Err(format!("trail is {value:?}, not a list"));
    };
    list.iter()
        .map(|m| {
            let AttributeValue::M(m) = m else {
                return Err(format!("trail mark {m:?} is not a map"));
            };
            let name = required(get_s(m, "e"), "e")?;
            Ok(Mark {
                event: MarkEvent::from_name(name).ok_or_else(|| format!("e = {name:?}"))?,
                by: get_cluster(m, "by")?,
                at: get_n(m, "at")?.unwrap_or(0),
                done: get_u32(m, "n")?,
                to: get_cluster(m, "to")?,
                kind: get_s(m, "mode")?.and_then(parse_kind),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        lease_ttl: 1000,
        clock_drift_max: 100,
        fence_margin: 200,
        driver_demotion: 0,
        heartbeat_every: 300,
        retry_after: 500,
        stage_deadline: [60_000; 6],
    };

    fn ops() -> Vec<Op> {
        vec![
            Op::Claim {
                prev: None,
                identity: 1,
            },
            Op::Claim {
                prev: Some(3),
                identity: 1,
            },
            Op::Heartbeat {
                health: Health {
                    workloads_ready: true,
                    traffic_open: false,
                },
            },
            Op::Acquire {
                id: 1,
                mode: Mode::Uptime,
            },
            Op::ForceTakeLock {
                id: 2,
                seen: Some(1),
            },
            Op::TakeOver { id: 3, at: 4 },
            Op::Journal {
                id: 3,
                token: 2,
                at: 5,
                release: true,
            },
            Op::Journal {
                id: 3,
                token: 2,
                at: 5,
                release: false,
            },
            Op::Request {
                id: 4,
                to: Cluster::A,
                mode: Mode::Consistency,
            },
        ]
    }

    /// Every placeholder an expression uses has a value and every name maps to itself;
    /// DynamoDB rejects a request with an unbound placeholder or an unused value.
    #[test]
    fn every_placeholder_is_bound() {
        let f = InFlight {
            id: 3,
            kind: PlanKind::Forced,
            source: Cluster::A,
            target: Cluster::B,
            done: 5,
            stuck: true,
            asked: None,
            hooks: Hooks::NONE,
        };
        let w = |op| Write {
            by: Cluster::B,
            instance: 4,
            now: 5000,
            op,
        };
        let mut updates: Vec<MainUpdate> = ops()
            .into_iter()
            .filter_map(|op| match encode(&TIMING, &w(op)) {
                Request::Update(update) | Request::Transact(update, _) => Some(update),
                Request::Complete { .. } | Request::AfterRead => None,
            })
            .collect();
        updates.push(
            complete_update(
                &w(Op::Heartbeat {
                    health: Health::default(),
                }),
                3,
                2,
                5,
                &f,
                None,
            )
            .0,
        );
        let record = Record::new(Cluster::A, [None, None]);
        for op in [
            Op::AlreadyActive {
                id: 5,
                to: Cluster::A,
            },
            Op::Withdraw { id: 5 },
        ] {
            updates.extend(ended_update(&w(op), &record, None).map(|(u, _)| u));
        }
        // The deadline's and a person's writes, on a failover in flight.
        let flying = Record {
            failover: Some(f),
            token: 2,
            ..record.clone()
        };
        let (id, token, at) = (3, 2, 5);
        let mut ops = vec![
            Op::Abort {
                id,
                token,
                at,
                reason: AbortReason::Deadline(Stage::VolumeDemotion),
            },
            Op::Stuck { id, token, at },
            Op::Resolve { id, token, at },
        ];
        ops.extend(Intervention::ALL.map(|action| Op::Intervene {
            id,
            token,
            at,
            action,
        }));
        let mut person = Vec::new();
        for op in ops {
            let (update, _) = failover_update(&w(op), &flying, None).expect("a failover write");
            if matches!(op, Op::Intervene { .. }) {
                person.push(update);
            } else {
                updates.push(update);
            }
        }

        for update in updates {
            let expressions = [update.condition.as_str(), update.update.as_str()];
            let bound = values(&expressions, &update.values).unwrap_or_default();
            for placeholder in placeholders(&expressions, ':') {
                assert!(
                    bound.contains_key(&placeholder),
                    "{placeholder} unbound in {update:?}"
                );
            }
            for (placeholder, name) in names(&expressions).unwrap_or_default() {
                assert_eq!(placeholder[1..], name);
            }
            assert!(update.condition.starts_with("attribute_exists(#pk) AND "));
            // Every write but a claim comes from the slot's owner.
            let claim = update.update.contains("#inst_B = :inst");
            assert_eq!(
                update.condition.ends_with(" AND #inst_B = :inst"),
                !claim,
                "{update:?}"
            );
        }
        // A person's write needs no ownership, and binds every value it sends.
        for update in person {
            let expressions = [update.condition.as_str(), update.update.as_str()];
            let bound = values(&expressions, &update.values).unwrap_or_default();
            for placeholder in placeholders(&expressions, ':') {
                assert!(bound.contains_key(&placeholder), "{placeholder} unbound");
            }
            assert!(!update.condition.contains(":inst"), "{update:?}");
        }
    }

    /// Every outcome's stored name parses back to it (and the name before issue 10).
    #[test]
    fn outcome_names_round_trip() {
        let reasons = [AbortReason::TargetSilent, AbortReason::Person]
            .into_iter()
            .chain(Stage::ALL.map(AbortReason::Deadline));
        for outcome in reasons.map(Outcome::Aborted).chain([
            Outcome::Resolved,
            Outcome::NoOp,
            Outcome::Withdrawn,
            Outcome::Completed(PlanKind::Forced),
        ]) {
            assert_eq!(parse_outcome(&outcome_name(outcome)), Some(outcome));
        }
        assert_eq!(
            outcome_name(Outcome::Aborted(AbortReason::Deadline(
                Stage::VolumeDemotion
            ))),
            "aborted-deadline-volume-demotion"
        );
        assert_eq!(
            parse_outcome("aborted"),
            Some(Outcome::Aborted(AbortReason::TargetSilent))
        );
    }

    /// The force compares no clock: its condition is the heartbeat the writer saw
    /// stand, whatever its time.
    #[test]
    fn force_take_lock_compares_the_seen_heartbeat_only() {
        let write = |now, seen| Write {
            by: Cluster::B,
            instance: 4,
            now,
            op: Op::ForceTakeLock { id: 1, seen },
        };
        let condition = |now, seen| match encode(&TIMING, &write(now, seen)) {
            Request::Transact(update, HistoryWrite::Unknown(1)) => {
                let seen = update
                    .values
                    .iter()
                    .find(|(name, _)| *name == ":seen")
                    .map(|(_, v)| v.clone());
                (update.condition, seen)
            }
            other => panic!("ForceTakeLock is a transaction with a history check: {other:?}"),
        };
        let (at_50, seen) = condition(50, Some(7));
        assert_eq!(seen, Some(n(7)));
        assert!(at_50.contains("#hb_A = :seen"), "{at_50}");
        assert_eq!(
            condition(5_000_000, Some(7)).0,
            at_50,
            "the time plays no part"
        );
        let (none, seen) = condition(50, None);
        assert_eq!(seen, None);
        assert!(none.contains("attribute_not_exists(#hb_A)"), "{none}");
    }

    #[test]
    fn placeholders_are_found_once() {
        assert_eq!(
            placeholders(&["#a = :x AND #b_1 < :x", "SET #a = :y"], ':'),
            vec![":x", ":y"]
        );
        assert_eq!(
            placeholders(&["#a = :x AND #b_1 < :x", "SET #a = :y"], '#'),
            vec!["#a", "#b_1"]
        );
    }

    #[test]
    fn records_parse_from_items() {
        let mut item = key("g", RECORD_SK);
        item.insert("active".to_owned(), s("B"));
        item.insert("token".to_owned(), n(7));
        item.insert("lock_holder".to_owned(), s("A"));
        item.insert("lock_until".to_owned(), n(99));
        item.insert("fo_id".to_owned(), n(4));
        item.insert("fo_kind".to_owned(), s("uptime"));
        item.insert("fo_source".to_owned(), s("B"));
        item.insert("fo_target".to_owned(), s("A"));
        item.insert("fo_done".to_owned(), n(3));
        let hooks = failover_model::check::planned_hooks();
        item.insert("fo_hooks".to_owned(), n(hooks.bits()));
        item.insert("hb_B".to_owned(), n(12));
        item.insert("inst_B".to_owned(), n(4));
        item.insert("id_A".to_owned(), n(u64::MAX));
        item.insert("con_B".to_owned(), n(9));
        let print = SpecPrint {
            clusters: 1,
            timing: u64::MAX,
            members: 0xabc,
            inventory: 7,
            hooks,
        };
        assert!(print_text(&print).ends_with(&format!(";hooks={:016x}", hooks.bits())));
        item.insert("spec_A".to_owned(), s(&print_text(&print)));
        let history = HistoryItem {
            id: 2,
            outcome: Outcome::Completed(PlanKind::Forced),
            token: 5,
            by: Cluster::A,
            at: 10,
            kept: kept(
                Some(&InFlight {
                    id: 2,
                    kind: PlanKind::Forced,
                    source: Cluster::B,
                    target: Cluster::A,
                    done: 3,
                    stuck: false,
                    asked: None,
                    hooks,
                }),
                Some(&HashMap::from([(
                    TRAIL.to_owned(),
                    mark(MarkEvent::Forced, Some(Cluster::A), 4, Some(1)),
                )])),
            ),
        };
        let ended = parse_ended(&history.item("g")).expect("history parses in full");
        assert_eq!(ended.kind, Some(PlanKind::Forced));
        assert_eq!(
            (ended.source, ended.target),
            (Some(Cluster::B), Some(Cluster::A))
        );
        assert_eq!(ended.hooks, hooks);
        assert_eq!(ended.started_at(), Some(4));
        assert_eq!(ended.trail.len(), 1);
        let (token, entry) = parse_history(&history.item("g")).expect("history parses");
        assert_eq!(token, 5);
        let record = parse_record(&item, vec![entry]).expect("record parses");
        assert_eq!(
            record,
            Record {
                request: None,
                active: Cluster::B,
                token: 7,
                lock: Some(Lock {
                    holder: Cluster::A,
                    until: 99
                }),
                failover: Some(InFlight {
                    id: 4,
                    kind: PlanKind::Planned(Mode::Uptime),
                    source: Cluster::B,
                    target: Cluster::A,
                    done: 3,
                    stuck: false,
                    asked: None,
                    hooks,
                }),
                heartbeat: [None, Some(12)],
                history: vec![HistoryEntry {
                    id: 2,
                    outcome: Outcome::Completed(PlanKind::Forced)
                }],
                instance: [None, Some(4)],
                bound: [Some(u64::MAX), None],
                contested: [None, Some(9)],
                spec: [Some(print), None],
                health: [None, None],
            }
        );
        item.remove("lock_until");
        assert!(parse_record(&item, Vec::new()).is_err());
    }

    #[test]
    fn history_sort_keys_sort_by_id() {
        assert_eq!(history_sk(42), "history#00000000000000000042");
        assert!(history_sk(9) < history_sk(10));
        assert_eq!(history_sk(u64::MAX).len(), HISTORY_PREFIX.len() + 20);
    }

    #[test]
    fn backoff_is_jittered_and_bounded() {
        let store = DynamoStore {
            client: Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .build(),
            ),
            table: "t".to_owned(),
            jitter: AtomicU64::new(12345),
        };
        for attempt in 0..4 {
            let cap = BACKOFF_BASE * (1 << attempt);
            let pauses: Vec<Duration> = (0..20).map(|_| store.backoff(attempt)).collect();
            assert!(pauses.iter().all(|p| *p >= cap / 2 && *p <= cap));
            assert!(pauses.iter().any(|p| *p != pauses[0]));
        }
    }
}

/// The IAM actions ([`OPERATOR_IAM_ACTIONS`], [`TABLE_ADMIN_IAM_ACTIONS`]) against the
/// requests this file sends and the example policies.
#[cfg(test)]
mod iam {
    use std::collections::BTreeSet;

    use super::{OPERATOR_IAM_ACTIONS, TABLE_ADMIN_IAM_ACTIONS};

    /// What a request, or a part of a transaction, looks like in this file, and the IAM
    /// action it needs.
    const NEEDS: &[(&str, &str)] = &[
        (".get_item()", "dynamodb:GetItem"),
        (".put_item()", "dynamodb:PutItem"),
        (".update_item()", "dynamodb:UpdateItem"),
        (".delete_item()", "dynamodb:DeleteItem"),
        (".query()", "dynamodb:Query"),
        (".scan()", "dynamodb:Scan"),
        (".batch_get_item()", "dynamodb:BatchGetItem"),
        (".batch_write_item()", "dynamodb:BatchWriteItem"),
        (".execute_statement()", "dynamodb:PartiQLSelect"),
        (".create_table()", "dynamodb:CreateTable"),
        (".describe_table()", "dynamodb:DescribeTable"),
        (".update_table()", "dynamodb:UpdateTable"),
        (".delete_table()", "dynamodb:DeleteTable"),
        (".update_time_to_live()", "dynamodb:UpdateTimeToLive"),
        (".describe_time_to_live()", "dynamodb:DescribeTimeToLive"),
        // The parts of `TransactWriteItems` and `TransactGetItems`, which have no
        // action of their own.
        ("ConditionCheck::builder()", "dynamodb:ConditionCheckItem"),
        ("Put::builder()", "dynamodb:PutItem"),
        ("Update::builder()", "dynamodb:UpdateItem"),
        ("Delete::builder()", "dynamodb:DeleteItem"),
        ("Get::builder()", "dynamodb:GetItem"),
    ];

    /// Requests whose actions are their parts'.
    const TRANSACTIONS: &[&str] = &[".transact_write_items()", ".transact_get_items()"];

    /// Methods of the client that send nothing.
    const NOT_REQUESTS: &[&str] = &["clone", "config"];

    /// This file without its tests and comments: what the adapter sends.
    fn code() -> String {
        let source = include_str!("dynamo.rs");
        let code = source
            .split("\n#[cfg(test)]\nmod ")
            .next()
            .expect("the file");
        assert!(
            code.contains("impl StorePort for DynamoStore"),
            "the non-test part of dynamo.rs is the adapter"
        );
        code.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The actions `code` needs; panics on a client call the table above does not know.
    fn needed(code: &str) -> BTreeSet<&'static str> {
        // Every method called on the client (`client.x(` or `client\n    .x(`).
        for (i, _) in code.match_indices("client") {
            let rest = code[i + "client".len()..].trim_start();
            let Some(call) = rest.strip_prefix('.') else {
                continue;
            };
            let method: String = call
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let known = NEEDS
                .iter()
                .map(|(p, _)| *p)
                .chain(TRANSACTIONS.iter().copied())
                .any(|p| p == format!(".{method}()"));
            assert!(
                known || NOT_REQUESTS.contains(&method.as_str()),
                "dynamo.rs calls client.{method}(): add the IAM action it needs to NEEDS \
                 (and to OPERATOR_IAM_ACTIONS or TABLE_ADMIN_IAM_ACTIONS and the example \
                 policies)"
            );
        }
        for t in TRANSACTIONS {
            if code.contains(t) {
                assert!(
                    NEEDS
                        .iter()
                        .any(|(p, _)| p.ends_with("::builder()") && code.contains(p)),
                    "a transaction ({t}) with no part this test knows"
                );
            }
        }
        NEEDS
            .iter()
            .filter(|(pattern, _)| code.contains(pattern))
            .map(|(_, action)| *action)
            .collect()
    }

    /// The adapter's code split into the table's set-up ([`super::create_table`]) and
    /// the rest (the operator's, and a person's record commands).
    fn split() -> (String, String) {
        let code = code();
        let start = code
            .find("pub async fn create_table(")
            .expect("create_table");
        let end = start
            + code[start..]
                .find("\n}\n")
                .expect("the end of create_table");
        let admin = code[start..end].to_string();
        let operator = format!("{}{}", &code[..start], &code[end..]);
        (admin, operator)
    }

    #[test]
    fn operator_iam_actions_are_the_requests_the_adapter_sends() {
        let (admin, operator) = split();
        let listed: BTreeSet<&str> = OPERATOR_IAM_ACTIONS.iter().copied().collect();
        assert_eq!(needed(&operator), listed, "OPERATOR_IAM_ACTIONS");
        let listed: BTreeSet<&str> = TABLE_ADMIN_IAM_ACTIONS.iter().copied().collect();
        assert_eq!(needed(&admin), listed, "TABLE_ADMIN_IAM_ACTIONS");
        // The policies grant the table only: nothing queries an index.
        assert!(!operator.contains(".index_name("), "a query of an index");
    }

    /// The actions of every statement of the policy in `deploy/examples/<file>`, which
    /// must all allow them on the table's ARN only.
    fn policy_actions(file: &str) -> Vec<String> {
        let path = format!("{}/../deploy/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let policy: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(policy["Version"], "2012-10-17", "{file}");
        let statements = policy["Statement"].as_array().expect("Statement");
        let mut actions = Vec::new();
        for st in statements {
            assert_eq!(st["Effect"], "Allow", "{file}");
            let list = |v: &serde_json::Value| -> Vec<String> {
                match v {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|s| s.as_str().expect("a string").to_string())
                        .collect(),
                    other => panic!("{file}: {other}"),
                }
            };
            assert_eq!(
                list(&st["Resource"]),
                ["arn:aws:dynamodb:REGION:ACCOUNT:table/failover"],
                "{file}: the table's ARN, nothing else (no index, no stream)"
            );
            actions.extend(list(&st["Action"]));
        }
        actions
    }

    #[test]
    fn example_iam_policies_grant_exactly_the_listed_actions() {
        assert_eq!(policy_actions("iam-policy.json"), OPERATOR_IAM_ACTIONS);
        assert_eq!(
            policy_actions("iam-policy-admin.json"),
            TABLE_ADMIN_IAM_ACTIONS
        );
    }
}
