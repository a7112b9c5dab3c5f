//! System tables in schema `strata`: `errors` (the tenant's rejected events) and
//! `unknown_fields` (incoming names no field claims yet). Both are read when a query scans them,
//! so they are as fresh as the query.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use strata_catalog::TenantSchema;
use strata_core::TenantId;
use strata_format::model::{timestamp_type, UTC};
use strata_storage::HotStore;

use crate::error::BackendFailure;
use crate::pushdown::TimeRange;

/// Most error records one query of `strata.errors` returns (oldest first from the time filter's
/// start, so narrow with `WHERE time >= ...` to see recent ones).
pub const MAX_ERROR_ROWS: usize = 100_000;

#[derive(Debug)]
pub struct ErrorsTable {
    tenant: TenantId,
    hot: Arc<HotStore>,
    schema: SchemaRef,
}

impl ErrorsTable {
    pub fn new(tenant: TenantId, hot: Arc<HotStore>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", timestamp_type(), false),
            Field::new("stage", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("payload", DataType::Utf8, false),
            Field::new("event_index", DataType::Int64, true),
            Field::new("metric", DataType::Utf8, true),
        ]));
        ErrorsTable {
            tenant,
            hot,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for ErrorsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(TimeRange::pushdown_of("time", filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut range = TimeRange::default();
        for filter in filters {
            range.apply_to("time", filter);
        }
        let since = range.start_ms.unwrap_or(i64::MIN);
        let (hot, tenant) = (self.hot.clone(), self.tenant);
        let records =
            tokio::task::spawn_blocking(move || hot.read_errors(tenant, since, MAX_ERROR_ROWS))
                .await
                .map_err(|e| DataFusionError::External(Box::new(BackendFailure(e.to_string()))))?
                .map_err(|e| DataFusionError::External(Box::new(BackendFailure(e.to_string()))))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(
                    records.iter().map(|r| r.time_ms).collect::<Vec<_>>(),
                )
                .with_timezone(UTC),
            ),
            Arc::new(
                records
                    .iter()
                    .map(|r| Some(r.stage.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                records
                    .iter()
                    .map(|r| Some(r.reason.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                records
                    .iter()
                    .map(|r| Some(r.payload.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                records
                    .iter()
                    .map(|r| r.index.and_then(|i| i64::try_from(i).ok()))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                records
                    .iter()
                    .map(|r| r.metric.as_deref())
                    .collect::<StringArray>(),
            ),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

#[derive(Debug)]
pub struct UnknownFieldsTable {
    schema_snapshot: Arc<TenantSchema>,
    schema: SchemaRef,
}

impl UnknownFieldsTable {
    pub fn new(schema_snapshot: Arc<TenantSchema>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("metric", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("count", DataType::UInt64, false),
            Field::new("first_seen", timestamp_type(), true),
            Field::new("last_seen", timestamp_type(), true),
            Field::new("kinds", DataType::Utf8, false),
            Field::new("samples", DataType::Utf8, false),
        ]));
        UnknownFieldsTable {
            schema_snapshot,
            schema,
        }
    }

    fn batch(&self) -> Result<RecordBatch> {
        let mut metric = Vec::new();
        let mut name = Vec::new();
        let mut count = Vec::new();
        let mut first_seen = Vec::new();
        let mut last_seen = Vec::new();
        let mut kinds = Vec::new();
        let mut samples = Vec::new();
        for m in self.schema_snapshot.tables() {
            for incoming in m.unknown_incoming() {
                metric.push(m.name.clone());
                name.push(incoming.name.clone());
                count.push(incoming.count);
                first_seen.push(incoming.first_seen.map(|t| t.timestamp_millis()));
                last_seen.push(incoming.last_seen.map(|t| t.timestamp_millis()));
                kinds.push(
                    incoming
                        .kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                samples.push(incoming.samples.join(","));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(metric)),
            Arc::new(StringArray::from(name)),
            Arc::new(UInt64Array::from(count)),
            Arc::new(TimestampMillisecondArray::from(first_seen).with_timezone(UTC)),
            Arc::new(TimestampMillisecondArray::from(last_seen).with_timezone(UTC)),
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(samples)),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for UnknownFieldsTable {
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
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![self.batch()?]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
