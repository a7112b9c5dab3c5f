//! Rollups as tables: the encoding of a rollup's schema and bucket rows (Arrow IPC, written by
//! `strata-streaming`'s maintenance and read here), the table a rollup's name resolves to (its
//! served version's buckets), and `strata.rollups`.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use strata_catalog::rollups::RollupRow;
use strata_catalog::RollupStore;
use strata_core::{TenantId, RESERVED_FIELD_NAME};

use crate::error::BackendFailure;
use crate::pushdown::TimeRange;

/// Every row of the bucket blob stored under key `k` has its `timestamp` in `[k, k + this)`:
/// buckets narrower than an hour are stored an hour to a blob (`strata-streaming`'s
/// `rollup/chunks.rs`), wider ones one to a blob under their own start.
pub const ROLLUP_CHUNK_SPAN_MS: i64 = 3_600_000;

/// A schema as IPC bytes (a stream with no batches).
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    Ok(StreamReader::try_new(Cursor::new(bytes), None)?.schema())
}

/// One bucket's rows as IPC bytes.
pub fn encode_rows(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

pub fn decode_rows(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    StreamReader::try_new(Cursor::new(bytes), None)?
        .map(|batch| batch.map_err(DataFusionError::from))
        .collect()
}

fn backend(error: strata_catalog::CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(BackendFailure(error.to_string())))
}

/// Brings every rollup up to date with the writes acknowledged before the call (one
/// maintenance cycle). Implemented by `strata-streaming`, which plans with this crate, so the
/// engine holds it in a slot filled once at startup.
#[async_trait]
pub trait RollupRefresh: Send + Sync + 'static {
    async fn refresh(&self) -> std::result::Result<(), String>;
}

/// Shared by every clone of the engine; empty until the maintenance service starts.
pub type RollupRefreshSlot = Arc<OnceLock<Arc<dyn RollupRefresh>>>;

/// A rollup a query may be answered from: its served version's answer equals its SQL over raw
/// data (nothing pending, no maintenance error).
#[derive(Debug, Clone)]
pub struct RoutableRollup {
    pub name: String,
    pub sql: String,
    /// The source metric's fingerprint the served version was built under.
    pub source_fingerprint: String,
}

/// A rollup's SQL, planned in the querying session, with a scan of the rollup's table.
#[derive(Debug, Clone)]
pub struct PlannedRollup {
    pub rollup: RoutableRollup,
    pub plan: LogicalPlan,
    pub scan: LogicalPlan,
}

/// Query routing (issue 16): replaces the parts of a query over raw data that a rollup answers
/// exactly by reads of the rollup. Implemented by `strata-streaming`, which knows what a
/// rollup's SQL means (its buckets); filled in once at startup, like [`RollupRefresh`].
#[async_trait]
pub trait RollupRouting: Send + Sync + 'static {
    /// `query` with what `rollups` answer routed to them; `query` itself when none applies.
    async fn route(
        &self,
        tenant: TenantId,
        query: LogicalPlan,
        rollups: Vec<PlannedRollup>,
    ) -> std::result::Result<LogicalPlan, String>;
}

pub type RollupRoutingSlot = Arc<OnceLock<Arc<dyn RollupRouting>>>;

impl RoutableRollup {
    /// `Some` for a rollup queries may be routed to.
    pub fn of(row: &RollupRow) -> Option<Self> {
        let served = row.served.as_ref()?;
        if row.pending.is_some() || row.error.is_some() {
            return None;
        }
        Some(RoutableRollup {
            name: row.name.clone(),
            sql: served.sql.clone(),
            source_fingerprint: served.source_fingerprint.clone(),
        })
    }
}

/// A rollup's served version, read from the catalog at each scan after a refresh, so a query
/// sees every write acknowledged before it started.
pub struct RollupTable {
    rollup: i64,
    tenant: TenantId,
    name: String,
    version: i64,
    schema: SchemaRef,
    store: Arc<dyn RollupStore>,
    refresh: RollupRefreshSlot,
    /// Set while the first version is still backfilling (its share done): the name resolves,
    /// with that version's columns, so a query says why it cannot be read yet instead of
    /// "table not found".
    first_backfill: Option<f64>,
}

impl std::fmt::Debug for RollupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupTable")
            .field("rollup", &self.rollup)
            .field("version", &self.version)
            .finish()
    }
}

impl RollupTable {
    /// The served version; during the first backfill, the pending version, whose scans fail
    /// with the progress. `None` only when the rollup has neither.
    pub fn served(
        row: &RollupRow,
        store: Arc<dyn RollupStore>,
        refresh: RollupRefreshSlot,
    ) -> Result<Option<Self>> {
        let (version, first_backfill) = match (&row.served, &row.pending) {
            (Some(served), _) => (served, None),
            (None, Some((pending, backfill))) => (pending, Some(backfill.progress())),
            (None, None) => return Ok(None),
        };
        Ok(Some(RollupTable {
            rollup: row.id,
            tenant: row.tenant,
            name: row.name.clone(),
            version: version.version,
            schema: decode_schema(&version.schema)?,
            store,
            refresh,
            first_backfill,
        }))
    }

    /// Refreshes, then checks the planned version is still stored (served, or retired by a
    /// version that completed since the query was planned).
    async fn version_to_read(&self) -> Result<i64> {
        if let Some(refresh) = self.refresh.get() {
            refresh
                .refresh()
                .await
                .map_err(|e| DataFusionError::External(Box::new(BackendFailure(e))))?;
        }
        let row = self
            .store
            .rollup(self.tenant, &self.name)
            .await
            .map_err(backend)?;
        let served = row.served.map(|v| v.version);
        if served == Some(self.version) || row.retired_version == Some(self.version) {
            return Ok(self.version);
        }
        Err(DataFusionError::Plan(format!(
            "rollup {:?} changed twice while the query ran; run it again",
            self.name
        )))
    }
}

#[async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Filters on `timestamp` narrow the buckets read: a rollup row's `timestamp` is its
    /// bucket's start, the key its bucket is stored under. `Inexact`: they are applied again.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(TimeRange::pushdown_of(RESERVED_FIELD_NAME, filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(progress) = self.first_backfill {
            return Err(DataFusionError::Plan(format!(
                "rollup {:?} is still backfilling its first version ({:.0}% done); \
                 GET /api/v1/rollups/{}?sync=true waits until it can be read",
                self.name,
                progress * 100.0,
                self.name
            )));
        }
        let version = self.version_to_read().await?;
        let mut range = TimeRange::default();
        for filter in filters {
            range.apply(filter);
        }
        if range.is_empty() {
            return Ok(MemorySourceConfig::try_new_exec(
                &[vec![]],
                self.schema.clone(),
                projection.cloned(),
            )?);
        }
        let buckets = self
            .store
            .rollup_buckets(
                self.rollup,
                version,
                range
                    .start_ms
                    .map_or(i64::MIN, |start| start.saturating_sub(ROLLUP_CHUNK_SPAN_MS)),
                range.end_ms.unwrap_or(i64::MAX),
            )
            .await
            .map_err(backend)?;
        let batches = coalesced(&self.schema, &buckets)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// Rows of a bucket count with their bucket, so a 1-minute rollup holds a few rows per
/// stored blob; DataFusion pays a fixed cost per batch, which made a 30-day read of 43,200
/// one-bucket batches 2.7x slower than reading the raw rows (docs/benchmarks.md, streaming).
const COALESCED_BATCH_ROWS: usize = 8192;

/// The buckets' rows decoded and joined into batches of about [`COALESCED_BATCH_ROWS`].
fn coalesced(schema: &SchemaRef, buckets: &[(i64, Vec<u8>)]) -> Result<Vec<RecordBatch>> {
    let mut joined = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    for (_, bytes) in buckets {
        for batch in decode_rows(bytes)? {
            pending_rows += batch.num_rows();
            pending.push(batch);
            if pending_rows >= COALESCED_BATCH_ROWS {
                joined.push(concat_batches(schema, &pending)?);
                pending.clear();
                pending_rows = 0;
            }
        }
    }
    if !pending.is_empty() {
        joined.push(concat_batches(schema, &pending)?);
    }
    Ok(joined)
}

/// `strata.rollups`: the tenant's rollups, their state and backfill progress.
pub struct RollupsSystemTable {
    tenant: TenantId,
    store: Arc<dyn RollupStore>,
    schema: SchemaRef,
}

impl std::fmt::Debug for RollupsSystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupsSystemTable").finish()
    }
}

/// A rollup's state as the API and `strata.rollups` show it.
pub fn rollup_state(row: &RollupRow) -> &'static str {
    if row.error.is_some() {
        "error"
    } else if row.pending.is_some() {
        "backfilling"
    } else {
        "current"
    }
}

impl RollupsSystemTable {
    pub fn new(tenant: TenantId, store: Arc<dyn RollupStore>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("sql", DataType::Utf8, true),
            Field::new("state", DataType::Utf8, false),
            Field::new("progress", DataType::Float64, false),
            Field::new("version", DataType::Int64, true),
            Field::new("error", DataType::Utf8, true),
        ]));
        RollupsSystemTable {
            tenant,
            store,
            schema,
        }
    }

    async fn batch(&self) -> Result<RecordBatch> {
        let rows = self.store.rollups(self.tenant).await.map_err(backend)?;
        let sql = |r: &RollupRow| r.maintained().map(|v| v.sql.clone());
        let progress = |r: &RollupRow| r.pending.as_ref().map_or(1.0, |(_, b)| b.progress());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.name))),
            Arc::new(StringArray::from_iter(rows.iter().map(sql))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(rollup_state))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(progress))),
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.served.as_ref().map(|v| v.version)),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.error.clone()))),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for RollupsSystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
