//! `strata.sources` (issue 19): the tenant's sources (NATS JetStream consumers, MQTT bridges)
//! with their live status. The status lives in the process that runs them, not in the catalog,
//! so the table reads it through [`SourceListing`], filled in once at startup by the node
//! (this crate cannot import the sources' crate, which sits beside the front doors).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use strata_core::TenantId;
use strata_format::model::{timestamp_type, UTC};

use crate::error::BackendFailure;

/// One row of `strata.sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub id: String,
    pub kind: String,
    /// `connecting`, `running`, `failed`, `stopped`.
    pub status: String,
    pub messages: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Messages the broker still holds for the source; `None` where it does not say.
    pub lag: Option<u64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
}

/// The tenant's sources and their status, as the process running them reports them.
#[async_trait]
pub trait SourceListing: Send + Sync + 'static {
    async fn tenant_sources(&self, tenant: TenantId)
        -> std::result::Result<Vec<SourceRow>, String>;
}

pub type SourceListingSlot = Arc<OnceLock<Arc<dyn SourceListing>>>;

pub struct SourcesTable {
    tenant: TenantId,
    listing: Arc<dyn SourceListing>,
    schema: SchemaRef,
}

impl std::fmt::Debug for SourcesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcesTable").finish()
    }
}

impl SourcesTable {
    pub fn new(tenant: TenantId, listing: Arc<dyn SourceListing>) -> Self {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let count = |name: &str, nullable: bool| Field::new(name, DataType::Int64, nullable);
        let schema = Arc::new(Schema::new(vec![
            text("id", false),
            text("kind", false),
            text("status", false),
            count("messages", false),
            count("accepted", false),
            count("rejected", false),
            count("lag", true),
            text("last_error", true),
            Field::new("created", timestamp_type(), false),
        ]));
        SourcesTable {
            tenant,
            listing,
            schema,
        }
    }

    async fn batch(&self) -> Result<RecordBatch> {
        let rows = self
            .listing
            .tenant_sources(self.tenant)
            .await
            .map_err(|e| DataFusionError::External(Box::new(BackendFailure(e))))?;
        let text = |f: fn(&SourceRow) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
        };
        let count = |f: fn(&SourceRow) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX)),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            text(|r| &r.id),
            text(|r| &r.kind),
            text(|r| &r.status),
            count(|r| r.messages),
            count(|r| r.accepted),
            count(|r| r.rejected),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| {
                r.lag.map(|lag| i64::try_from(lag).unwrap_or(i64::MAX))
            }))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.last_error.clone()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.created_ms))
                    .with_timezone(UTC),
            ),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for SourcesTable {
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
