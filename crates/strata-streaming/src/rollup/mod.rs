//! Rollups (continuous aggregates): `POST /api/v1/rollups`. A rollup is one time-bucketed
//! aggregate over one metric (`definition.rs`), kept as the final rows of each bucket in the
//! catalog and read as a table of its name.
//!
//! Exact by construction: maintenance never merges partial state. The committed-event stream
//! only marks buckets dirty; a dirty bucket is recomputed by the rollup's own SQL over the raw
//! rows of its time range (`maintain.rs`), so late events, identical re-sends (one stored row),
//! aliases and compaction give the answer the SQL gives over raw data. A new version (creation,
//! `PATCH`, a change of the source metric's definition) is backfilled in chunks while the
//! served one stays what queries read.

mod chunks;
mod definition;
mod frozen;
mod maintain;
mod route;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::logical_expr::LogicalPlan;
use futures::TryStreamExt;
use strata_catalog::rollups::{Backfill, RollupRow, RollupVersion};
use strata_catalog::{Metric, RollupStore, SchemaRegistry};
use strata_core::TenantId;
use strata_query::rollup_table::{
    encode_schema, rollup_state, PlannedRollup, RollupRefresh, RollupRouting,
};
use strata_query::{QueryEngine, TenantSession};
use strata_storage::HotStore;
use strata_write::EventStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::StreamingError;
pub use definition::{Bucketing, Definition, BUCKET_COLUMN};

/// How rollups are maintained.
#[derive(Debug, Clone)]
pub struct RollupConfig {
    /// Time between maintenance cycles when no backfill runs: the lag of a rollup behind the
    /// writes (a read with `sync` waits for the next cycle instead).
    pub cycle_interval: Duration,
    /// Least time span one backfill step recomputes (rounded up to whole buckets).
    pub backfill_chunk_ms: i64,
    /// Dirty buckets closer than this many buckets are recomputed in one query (recomputing
    /// a clean bucket is harmless; a query per bucket is slow).
    pub merge_gap_buckets: i64,
    /// How long a synchronous read waits for the rollup to be current.
    pub sync_timeout: Duration,
}

impl Default for RollupConfig {
    fn default() -> Self {
        RollupConfig {
            cycle_interval: Duration::from_millis(500),
            backfill_chunk_ms: 86_400_000,
            merge_gap_buckets: 16,
            sync_timeout: Duration::from_secs(120),
        }
    }
}

/// A rollup as the API shows it.
#[derive(Debug, Clone)]
pub struct RollupInfo {
    pub name: String,
    /// The SQL being maintained (the new one while a change backfills).
    pub sql: String,
    /// `backfilling`, `current` or `error`.
    pub state: &'static str,
    /// Share of the backfill done (1.0 when current).
    pub progress: f64,
    /// The version queries read; `None` until the first backfill completes.
    pub served_version: Option<i64>,
    /// The SQL queries read, when it differs from `sql`.
    pub served_sql: Option<String>,
    pub error: Option<String>,
    pub applied_seq: u64,
    pub created_at_ms: i64,
}

impl From<&RollupRow> for RollupInfo {
    fn from(row: &RollupRow) -> Self {
        let sql = row.maintained().map(|v| v.sql.clone()).unwrap_or_default();
        let served_sql = row.served.as_ref().map(|v| v.sql.clone());
        RollupInfo {
            name: row.name.clone(),
            served_sql: served_sql.filter(|served| *served != sql),
            sql,
            state: rollup_state(row),
            progress: row.pending.as_ref().map_or(1.0, |(_, b)| b.progress()),
            served_version: row.served.as_ref().map(|v| v.version),
            error: row.error.clone(),
            applied_seq: row.applied_seq,
            created_at_ms: row.created_at_ms,
        }
    }
}

/// The rollup service: definitions through the catalog, maintenance in one background task.
/// Cheap to clone.
#[derive(Clone)]
pub struct Rollups {
    shared: Arc<Shared>,
    sync_requests: mpsc::Sender<oneshot::Sender<()>>,
}

pub(crate) struct Shared {
    pub(crate) query: QueryEngine,
    pub(crate) schemas: Arc<dyn SchemaRegistry>,
    pub(crate) store: Arc<dyn RollupStore>,
    pub(crate) hot: Arc<HotStore>,
    pub(crate) stream: EventStream,
    pub(crate) config: RollupConfig,
    /// Tenants whose committed batches the stream publishes to maintenance. Never shrinks in a
    /// process's life: a stale interest costs only publishing rows nobody marks.
    interested: Mutex<HashSet<TenantId>>,
}

impl Rollups {
    /// Subscribes to the stream, finds what changed since each rollup's watermark (a restart
    /// or kill -9 resumes exactly) and starts maintenance. Call before the doors take writes.
    pub async fn start(
        query: QueryEngine,
        schemas: Arc<dyn SchemaRegistry>,
        store: Arc<dyn RollupStore>,
        hot: Arc<HotStore>,
        stream: EventStream,
        config: RollupConfig,
    ) -> Result<Rollups, StreamingError> {
        let shared = Arc::new(Shared {
            query,
            schemas,
            store,
            hot,
            stream,
            config,
            interested: Mutex::new(HashSet::new()),
        });
        let events = shared.stream.subscribe_interested();
        for row in shared.store.all_rollups().await? {
            shared.ensure_interest(row.tenant);
        }
        let (sync_requests, requests) = mpsc::channel(256);
        tokio::spawn(maintain::Maintainer::new(shared.clone(), events, requests).run());
        let rollups = Rollups {
            shared,
            sync_requests,
        };
        rollups
            .shared
            .query
            .set_rollup_refresh(Arc::new(rollups.clone()));
        rollups
            .shared
            .query
            .set_rollup_routing(Arc::new(rollups.clone()));
        Ok(rollups)
    }

    /// Waits for one maintenance cycle that starts after this call.
    async fn one_cycle(&self, deadline: tokio::time::Instant) -> Result<(), StreamingError> {
        let stopped = || StreamingError::Internal("rollup maintenance stopped".into());
        let (reply, done) = oneshot::channel();
        self.sync_requests
            .send(reply)
            .await
            .map_err(|_| stopped())?;
        tokio::time::timeout_at(deadline, done)
            .await
            .map_err(|_| StreamingError::Timeout("rollup maintenance is behind".into()))?
            .map_err(|_| stopped())
    }

    /// Defines a rollup and starts its backfill. 400 for SQL that is not a rollup, 409 for a
    /// taken name.
    pub async fn create(
        &self,
        tenant: TenantId,
        name: &str,
        sql: &str,
    ) -> Result<RollupInfo, StreamingError> {
        let (version, backfill) = self.shared.prepare(tenant, sql).await?;
        let row = self
            .shared
            .store
            .create_rollup(tenant, name, version, backfill)
            .await?;
        Ok(RollupInfo::from(&row))
    }

    /// Changes a rollup's SQL: the new version backfills while queries read the old one.
    pub async fn alter(
        &self,
        tenant: TenantId,
        name: &str,
        sql: &str,
    ) -> Result<RollupInfo, StreamingError> {
        self.shared.store.rollup(tenant, name).await?;
        let (version, backfill) = self.shared.prepare(tenant, sql).await?;
        let row = self
            .shared
            .store
            .restart_rollup(tenant, name, version, backfill)
            .await?;
        Ok(RollupInfo::from(&row))
    }

    pub async fn get(&self, tenant: TenantId, name: &str) -> Result<RollupInfo, StreamingError> {
        Ok(RollupInfo::from(
            &self.shared.store.rollup(tenant, name).await?,
        ))
    }

    pub async fn list(&self, tenant: TenantId) -> Result<Vec<RollupInfo>, StreamingError> {
        let rows = self.shared.store.rollups(tenant).await?;
        Ok(rows.iter().map(RollupInfo::from).collect())
    }

    pub async fn delete(&self, tenant: TenantId, name: &str) -> Result<(), StreamingError> {
        Ok(self.shared.store.delete_rollup(tenant, name).await?)
    }

    /// The rollup once it reflects every write acknowledged before this call and its backfill
    /// is complete (maintenance cycles run back to back meanwhile).
    pub async fn sync(&self, tenant: TenantId, name: &str) -> Result<RollupInfo, StreamingError> {
        let deadline = tokio::time::Instant::now() + self.shared.config.sync_timeout;
        loop {
            self.one_cycle(deadline)
                .await
                .map_err(|error| match error {
                    StreamingError::Timeout(_) => self.too_slow(name),
                    other => other,
                })?;
            let row = self.shared.store.rollup(tenant, name).await?;
            if row.pending.is_none() || row.error.is_some() {
                return Ok(RollupInfo::from(&row));
            }
        }
    }

    fn too_slow(&self, name: &str) -> StreamingError {
        StreamingError::Timeout(format!(
            "rollup {name:?} did not become current within {} s; its progress is in \
             GET /api/v1/rollups/{name}",
            self.shared.config.sync_timeout.as_secs()
        ))
    }
}

/// A query reading a rollup first waits for a cycle, so it sees every acknowledged write.
#[async_trait::async_trait]
impl RollupRefresh for Rollups {
    async fn refresh(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.shared.config.sync_timeout;
        self.one_cycle(deadline).await.map_err(|e| e.to_string())
    }
}

/// Queries over raw data read the rollups that answer them exactly (`route.rs`). A failure to
/// route is logged and the query runs over raw data, as it would with no rollups.
#[async_trait::async_trait]
impl RollupRouting for Rollups {
    async fn route(
        &self,
        tenant: TenantId,
        query: LogicalPlan,
        rollups: Vec<PlannedRollup>,
    ) -> Result<LogicalPlan, String> {
        let schema = match self.shared.schemas.schema(tenant).await {
            Ok(schema) => schema,
            Err(error) => {
                tracing::warn!(%error, "rollup routing skipped: the tenant schema is unreadable");
                return Ok(query);
            }
        };
        match route::route(query.clone(), &rollups, &schema) {
            Ok(routed) => Ok(routed),
            Err(error) => {
                tracing::warn!(%error, "rollup routing failed; the query reads raw data");
                Ok(query)
            }
        }
    }
}

impl Shared {
    pub(crate) fn ensure_interest(&self, tenant: TenantId) {
        let mut interested = self
            .interested
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if interested.insert(tenant) {
            self.stream.add_interest(tenant);
        }
    }

    /// Checks `sql` and takes the backfill's starting point. The tenant's batches are
    /// published before the sequence number is read, so every row is either at or below it
    /// (read by the backfill) or on the stream.
    pub(crate) async fn prepare(
        &self,
        tenant: TenantId,
        sql: &str,
    ) -> Result<(RollupVersion, Backfill), StreamingError> {
        self.ensure_interest(tenant);
        let start_seq = self.stream.settled(|| self.hot.last_seq()).await;
        let session = self
            .query
            .session_upto(tenant, Some(start_seq))
            .await?
            .for_door(strata_core::telemetry::door::ROLLUPS);
        let plan = session.plan(sql).await?;
        let schema = self
            .schemas
            .schema(tenant)
            .await
            .map_err(StreamingError::Catalog)?;
        let definition = Definition::of(&plan, &schema)?;
        let source = schema
            .metric_by_id(definition.source)
            .ok_or_else(|| StreamingError::InvalidRollup("the source metric is gone".into()))?;
        let (from_ms, to_ms) = time_range(&session, &definition).await?;
        let version = RollupVersion {
            version: 0,
            sql: sql.to_owned(),
            schema: encode_schema(&definition::version_schema(&plan))?,
            source_fingerprint: fingerprint(source),
        };
        let backfill = Backfill {
            seq: start_seq,
            from_ms,
            to_ms,
            cursor_ms: from_ms,
        };
        Ok((version, backfill))
    }
}

/// Bucket-aligned `[first, last + 1 bucket)` of the source's rows (empty when it has none).
async fn time_range(
    session: &TenantSession,
    definition: &Definition,
) -> Result<(i64, i64), StreamingError> {
    let table = definition.source_table.to_quoted_string();
    let sql = format!("SELECT min({BUCKET_COLUMN}), max({BUCKET_COLUMN}) FROM {table}");
    let plan = session.plan(&sql).await?;
    let batches: Vec<_> = session
        .execute_plan(plan)
        .await?
        .stream
        .try_collect()
        .await
        .map_err(strata_query::QueryError::from)?;
    let millis = DataType::Timestamp(TimeUnit::Millisecond, None);
    let bound = |column: usize| -> Result<Option<i64>, StreamingError> {
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let values = cast(&cast(batch.column(column), &millis)?, &DataType::Int64)?;
        let values = values
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| StreamingError::Internal("min/max is not a time".into()))?;
        Ok(values.is_valid(0).then(|| values.value(0)))
    };
    match (bound(0)?, bound(1)?) {
        (Some(first), Some(last)) => {
            let bucketing = definition.bucketing;
            let end = bucketing.start_of(last).saturating_add(bucketing.width_ms);
            Ok((bucketing.start_of(first), end))
        }
        _ => Ok((0, 0)),
    }
}

/// What of the source metric a rollup's answer depends on, hashed: its names, fields, types
/// and time settings, not the incoming names ingest adds (a new name has no old rows).
pub(crate) fn fingerprint(metric: &Metric) -> String {
    let mut stable = metric.clone();
    stable.incoming.clear();
    // A retention change keeps every bucket: rebuilding would lose what only the rollup holds.
    stable.retention_days = None;
    let text = serde_json::to_string(&stable).unwrap_or_default();
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}
