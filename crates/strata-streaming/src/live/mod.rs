//! Live queries: `POST /api/v1/sql/live`. Starting one plans the SQL (a 400 for bad SQL),
//! subscribes to the tenant's committed batches, takes the answer now, and hands the rest to a
//! task per query (`task.rs`) that sends updates until the client goes away.
//!
//! Exactly once: the tail follows rows whose sequence number is above the highest one committed
//! when the query subscribed (`floor_seq`), and the first answer reads only rows at or below it
//! (`QueryEngine::session_upto`), so each committed row is in exactly one of them.

mod buckets;
mod plan;
mod seen;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use strata_catalog::SchemaRegistry;
use strata_core::TenantId;
use strata_query::{QueryEngine, QueryError, QueryResult};
use strata_storage::HotStore;
use strata_write::EventStream;
use tokio::sync::mpsc;

use crate::error::StreamingError;
pub(crate) use plan::metric_of;
use plan::Shape;
use seen::SeenEvents;

/// Limits and defaults of live queries.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Live queries one tenant may run at once.
    pub per_tenant_max: usize,
    /// Updates waiting for a slow client before it is dropped with a final error.
    pub client_buffer_events: usize,
    /// Rows in one `snapshot` event; a larger answer is cut there and says so.
    pub snapshot_rows_max: usize,
    /// Least time between two re-runs when nothing says otherwise.
    pub min_interval_default: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            per_tenant_max: 16,
            client_buffer_events: 256,
            snapshot_rows_max: 10_000,
            min_interval_default: Duration::from_secs(1),
        }
    }
}

/// Shortest and longest `min_interval` a client may ask for.
pub const MIN_INTERVAL_RANGE_MS: (u64, u64) = (100, 3_600_000);

/// How a live query follows new data; each event names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// New matching rows as they are committed.
    Tail,
    /// A grouped query kept incrementally: the groups each committed batch changed.
    Buckets,
    /// The whole answer again when its data changed, at most once per interval.
    Rerun,
}

impl LiveMode {
    pub fn name(self) -> &'static str {
        match self {
            LiveMode::Tail => "tail",
            LiveMode::Buckets => "buckets",
            LiveMode::Rerun => "rerun",
        }
    }
}

/// What a live query sends.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// The whole answer: first, and after each re-run. `truncated` when it had more than
    /// [`LiveConfig::snapshot_rows_max`] rows.
    Snapshot {
        mode: LiveMode,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        truncated: bool,
    },
    /// Rows appended to a tail.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// The new values of the groups a committed batch changed (mode `buckets`).
    Update {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// The last event: why the live query ended.
    Error(String),
}

/// Starts live queries; cheap to clone.
#[derive(Clone)]
pub struct LiveQueries {
    inner: Arc<Inner>,
}

struct Inner {
    query: QueryEngine,
    schemas: Arc<dyn SchemaRegistry>,
    hot: Arc<HotStore>,
    stream: EventStream,
    config: LiveConfig,
    running: Mutex<HashMap<TenantId, usize>>,
}

/// A running live query: read it with [`LiveQuery::next`]; dropping it stops it.
pub struct LiveQuery {
    pub mode: LiveMode,
    events: mpsc::Receiver<LiveEvent>,
    /// Set by the task when it ends the query, read after the last buffered event.
    ended: Arc<Mutex<Option<String>>>,
    done: bool,
}

impl LiveQuery {
    /// The next event; `None` after the last. An ending for a reason (a slow client, a
    /// failed update) is sent as a final [`LiveEvent::Error`] even when the buffer was full.
    pub async fn next(&mut self) -> Option<LiveEvent> {
        if self.done {
            return None;
        }
        if let Some(event) = self.events.recv().await {
            return Some(event);
        }
        self.done = true;
        let reason = self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        reason.map(LiveEvent::Error)
    }
}

/// Frees the tenant's slot when the query's task ends.
struct Slot {
    inner: Arc<Inner>,
    tenant: TenantId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
        self.inner.stream.remove_interest(self.tenant);
    }
}

impl LiveQueries {
    pub fn new(
        query: QueryEngine,
        schemas: Arc<dyn SchemaRegistry>,
        hot: Arc<HotStore>,
        stream: EventStream,
        config: LiveConfig,
    ) -> Self {
        LiveQueries {
            inner: Arc::new(Inner {
                query,
                schemas,
                hot,
                stream,
                config,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// Plans `sql` in `tenant`'s session, sends its answer now and follows new data.
    pub async fn start(
        &self,
        tenant: TenantId,
        sql: &str,
        min_interval: Option<Duration>,
    ) -> Result<LiveQuery, StreamingError> {
        let slot = self.take_slot(tenant)?;
        // Subscribe before reading the floor: every batch committed after it is received.
        let events = self.inner.stream.subscribe_interested();
        let floor_seq = self.inner.hot.last_seq();
        // Planned in a session whose tables stop at the floor, so the first answer (and a
        // grouped query's first state) hold exactly the rows the stream will not bring.
        let session = self
            .inner
            .query
            .session_upto(tenant, Some(floor_seq))
            .await?
            .for_door(strata_core::telemetry::door::LIVE);
        let plan = session.plan(sql).await?;
        let schema = self
            .inner
            .schemas
            .schema(tenant)
            .await
            .map_err(|e| StreamingError::Internal(format!("reading the tenant schema: {e}")))?;
        let shape = plan::shape_of(&plan, &schema);
        let buckets = match shape {
            Shape::Tail { .. } => None,
            Shape::Rerun { .. } => keep_buckets(&session, &plan, &schema).await?,
        };
        let mode = match (&shape, &buckets) {
            (Shape::Tail { .. }, _) => LiveMode::Tail,
            (_, Some(_)) => LiveMode::Buckets,
            _ => LiveMode::Rerun,
        };
        let first = session.execute_plan(plan.clone()).await?;
        let first = read_snapshot(mode, first, self.inner.config.snapshot_rows_max).await?;
        let (sender, receiver) = mpsc::channel(self.inner.config.client_buffer_events.max(1));
        let ended = Arc::new(Mutex::new(None));
        // Cannot fail: the buffer holds at least one event and nothing was sent yet.
        let _ = sender.try_send(first);
        let live = task::Live {
            inner: self.inner.clone(),
            tenant,
            sql: sql.to_owned(),
            session,
            plan,
            shape,
            buckets,
            floor_seq,
            min_interval: min_interval.unwrap_or(self.inner.config.min_interval_default),
            out: sender,
            ended: ended.clone(),
            seen: SeenEvents::default(),
            prepared: std::sync::Mutex::new(None),
            _slot: slot,
        };
        tokio::spawn(live.run(events));
        Ok(LiveQuery {
            mode,
            events: receiver,
            ended,
            done: false,
        })
    }

    fn take_slot(&self, tenant: TenantId) -> Result<Slot, StreamingError> {
        let limit = self.inner.config.per_tenant_max;
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(tenant).or_insert(0);
        if *count >= limit {
            return Err(StreamingError::TooManyLiveQueries { limit });
        }
        *count += 1;
        // Paired with `remove_interest` in `Slot::drop`.
        self.inner.stream.add_interest(tenant);
        Ok(Slot {
            inner: self.inner.clone(),
            tenant,
        })
    }
}

/// A grouped query's incremental state, loaded from all rows up to the floor; `None` when the
/// query cannot be kept incrementally (it is re-run instead).
async fn keep_buckets(
    session: &strata_query::TenantSession,
    plan: &datafusion::logical_expr::LogicalPlan,
    schema: &strata_catalog::TenantSchema,
) -> Result<Option<buckets::Buckets>, StreamingError> {
    let Some(mut buckets) = buckets::Buckets::of(plan, schema) else {
        return Ok(None);
    };
    let state = session
        .execute_plan(buckets.partial.clone())
        .await?
        .collect()
        .await?;
    // Too many groups: re-run instead.
    Ok(buckets.load(&state).is_ok().then_some(buckets))
}

/// Reads an answer up to `rows_max` rows (the rest is not read: dropping the stream stops the
/// query).
pub(crate) async fn read_snapshot(
    mode: LiveMode,
    result: QueryResult,
    rows_max: usize,
) -> Result<LiveEvent, StreamingError> {
    let QueryResult { schema, mut stream } = result;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(QueryError::from)?;
        let room = rows_max - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok(LiveEvent::Snapshot {
        mode,
        schema,
        batches,
        truncated,
    })
}
