//! The alerting system tables in schema `strata`: `alerts` (every instance and its state),
//! `alert_history` (every transition) and `notifications` (the outbox and delivery log). Each
//! is read from the catalog when a query scans it, and holds the session's tenant's rows only.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use strata_catalog::AlertStore;
use strata_core::TenantId;
use strata_format::model::{timestamp_type, UTC};

use crate::error::BackendFailure;

/// Most rows one scan of `strata.alert_history` or `strata.notifications` returns: the latest.
pub const MAX_ALERT_LOG_ROWS: u32 = 100_000;

/// Which alerting table.
#[derive(Debug, Clone, Copy)]
pub enum AlertTableKind {
    Alerts,
    History,
    Notifications,
}

pub struct AlertTable {
    kind: AlertTableKind,
    tenant: TenantId,
    store: Arc<dyn AlertStore>,
    schema: SchemaRef,
}

impl std::fmt::Debug for AlertTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertTable")
            .field("kind", &self.kind)
            .finish()
    }
}

fn ts(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

impl AlertTable {
    pub fn new(kind: AlertTableKind, tenant: TenantId, store: Arc<dyn AlertStore>) -> Self {
        let fields = match kind {
            AlertTableKind::Alerts => vec![
                text("alert"),
                text("kind"),
                text("labels"),
                text("state"),
                Field::new("value", DataType::Float64, true),
                ts("state_since"),
                ts("active_since"),
                Field::new("acknowledged", DataType::Boolean, true),
            ],
            AlertTableKind::History => vec![
                ts("time"),
                text("alert"),
                text("labels"),
                text("from_state"),
                text("to_state"),
                Field::new("value", DataType::Float64, true),
            ],
            AlertTableKind::Notifications => vec![
                text("id"),
                ts("time"),
                text("alert"),
                text("channel"),
                text("state"),
                text("labels"),
                text("status"),
                Field::new("attempts", DataType::Int64, true),
                text("last_error"),
                ts("delivered_at"),
            ],
        };
        AlertTable {
            kind,
            tenant,
            store,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    async fn batch(&self) -> Result<RecordBatch> {
        let columns = match self.kind {
            AlertTableKind::Alerts => self.alerts().await?,
            AlertTableKind::History => self.history().await?,
            AlertTableKind::Notifications => self.notifications().await?,
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    async fn alerts(&self) -> Result<Vec<ArrayRef>> {
        let rows = self
            .store
            .tenant_instances(self.tenant)
            .await
            .map_err(backend)?;
        Ok(vec![
            strings(rows.iter().map(|(rule, _, _)| Some(rule.clone()))),
            strings(rows.iter().map(|(_, kind, _)| Some(kind.clone()))),
            strings(rows.iter().map(|(_, _, i)| Some(i.labels.clone()))),
            strings(rows.iter().map(|(_, _, i)| Some(i.state.clone()))),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|(_, _, i)| i.value),
            )),
            times(rows.iter().map(|(_, _, i)| Some(i.state_since_ms))),
            times(rows.iter().map(|(_, _, i)| i.active_since_ms)),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, _, i)| Some(i.acknowledged)),
            )),
        ])
    }

    async fn history(&self) -> Result<Vec<ArrayRef>> {
        let rows = self
            .store
            .alert_history(self.tenant, MAX_ALERT_LOG_ROWS)
            .await
            .map_err(backend)?;
        Ok(vec![
            times(rows.iter().map(|r| Some(r.time_ms))),
            strings(rows.iter().map(|r| Some(r.rule_name.clone()))),
            strings(rows.iter().map(|r| Some(r.labels.clone()))),
            strings(rows.iter().map(|r| Some(r.from_state.clone()))),
            strings(rows.iter().map(|r| Some(r.to_state.clone()))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.value))),
        ])
    }

    async fn notifications(&self) -> Result<Vec<ArrayRef>> {
        let rows = self
            .store
            .notifications(self.tenant, MAX_ALERT_LOG_ROWS)
            .await
            .map_err(backend)?;
        let labels = |alerts: &serde_json::Value| {
            let list: Vec<serde_json::Value> = alerts
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| e.get("labels").cloned().unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            serde_json::Value::Array(list).to_string()
        };
        Ok(vec![
            strings(rows.iter().map(|r| Some(r.id.clone()))),
            times(rows.iter().map(|r| Some(r.created_ms))),
            strings(rows.iter().map(|r| Some(r.rule_name.clone()))),
            strings(rows.iter().map(|r| Some(r.channel.clone()))),
            strings(rows.iter().map(|r| Some(r.state.clone()))),
            strings(rows.iter().map(|r| Some(labels(&r.alerts)))),
            strings(rows.iter().map(|r| Some(r.status.clone()))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| Some(r.attempts)))),
            strings(rows.iter().map(|r| r.last_error.clone())),
            times(rows.iter().map(|r| r.delivered_ms)),
        ])
    }
}

fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone(UTC))
}

fn backend(error: strata_catalog::CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(BackendFailure(error.to_string())))
}

#[async_trait]
impl TableProvider for AlertTable {
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
