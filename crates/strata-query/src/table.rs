//! `MetricTable` (a metric as a SQL table) and the `strata_raw('<metric>')` table function.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use strata_core::TenantId;
use strata_format::model::MetricModel;
use strata_storage::HotStore;

use datafusion::common::DFSchema;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::derived::{DerivedColumn, DerivedColumns};
use crate::federated::{plan_federated, ColdContext};
use crate::pushdown::{equality_values, TimeRange};
use crate::scan::{MetricScanExec, ScanSpec};

/// Most series a single query seeks; an IN list producing more scans whole buckets instead.
pub const MAX_SERIES_SEEKS: usize = 1024;

/// One metric as a table: `timestamp`, declared visible fields, unknown fields.
#[derive(Debug)]
pub struct MetricTable {
    tenant: TenantId,
    model: Arc<MetricModel>,
    schema: SchemaRef,
    hot: Arc<HotStore>,
    /// The cold tier, when the server has one: scans then cover compacted rows too.
    cold: Option<ColdContext>,
    raw: bool,
    /// See [`ScanSpec::upto_seq`].
    upto_seq: Option<u64>,
    /// Where scans count the fields they read and filter on.
    usage: Option<Arc<crate::usage::QueryUsage>>,
    /// Metrics merged into this one, each read into the same columns from its own rows and files
    /// (see `strata_format::merged`); scans of all of them are unioned.
    members: Vec<Arc<MetricModel>>,
    /// The model's derived columns, computed above the scan of the stored ones.
    derived: Arc<DerivedColumns>,
}

impl MetricTable {
    /// Leaves out hot rows committed after `upto_seq` (see [`ScanSpec::upto_seq`]).
    pub fn with_upto_seq(mut self, upto_seq: Option<u64>) -> Self {
        self.upto_seq = upto_seq;
        self
    }

    /// Counts each scan's fields in `usage` (schema suggestions rank by it).
    pub fn with_usage(mut self, usage: Option<Arc<crate::usage::QueryUsage>>) -> Self {
        self.usage = usage;
        self
    }

    /// Computes the model's derived columns (resolved by [`crate::derived::resolve`]).
    pub fn with_derived(mut self, derived: Arc<DerivedColumns>) -> Self {
        self.derived = derived;
        self
    }

    /// Reads the rows of the metrics merged into this one as well; each member model has this
    /// table's columns, in the same order.
    pub fn with_members(mut self, members: Vec<Arc<MetricModel>>) -> Self {
        debug_assert!(members
            .iter()
            .all(|m| m.columns.len() == self.model.columns.len()));
        self.members = members;
        self
    }

    /// Reads compacted rows from the cold tier as well (see [`crate::federated`]).
    pub fn with_cold(mut self, cold: Option<ColdContext>) -> Self {
        self.cold = cold;
        self
    }

    pub fn new(tenant: TenantId, model: Arc<MetricModel>, hot: Arc<HotStore>) -> Self {
        let schema = model.schema();
        MetricTable {
            tenant,
            model,
            schema,
            hot,
            cold: None,
            raw: false,
            upto_seq: None,
            usage: None,
            members: Vec::new(),
            derived: Arc::default(),
        }
    }

    /// The `strata_raw` view: every incoming name as uncast text.
    pub fn raw(tenant: TenantId, model: &MetricModel, hot: Arc<HotStore>) -> Self {
        let model = Arc::new(model.raw_view());
        let schema = model.schema();
        MetricTable {
            tenant,
            model,
            schema,
            hot,
            cold: None,
            raw: true,
            upto_seq: None,
            usage: None,
            members: Vec::new(),
            derived: Arc::default(),
        }
    }

    /// Whether the scan can use this filter: a time range, a series-key equality, or (with a
    /// cold tier) a filter on fields that the cold branch may push into its Parquet scan.
    fn usable(&self, filter: &Expr) -> bool {
        if TimeRange::default().apply(filter) || self.file_filter(filter) {
            return true;
        }
        self.series_columns(false)
            .iter()
            .any(|name| equality_values(filter, name).is_some())
    }

    /// A deterministic filter on fields only (no `timestamp`, which the time range covers), a
    /// candidate for the cold branch's Parquet predicate (see `federated::cold_scan`).
    fn file_filter(&self, filter: &Expr) -> bool {
        if self.cold.is_none() || self.raw || filter.is_volatile() {
            return false;
        }
        let columns = filter.column_refs();
        !columns.is_empty()
            && columns.iter().all(|c| {
                c.name != strata_format::cold_file::TIMESTAMP_COLUMN
                    && self
                        .model
                        .columns
                        .iter()
                        .any(|m| m.name == c.name && m.reads_as_stored())
            })
    }

    /// Series-key column names when series hashes can be computed at all: every series key must
    /// be a visible field read as text, so the literal's text is the text ingest hashed. With
    /// `hot_exact`, also every hot row must have been hashed from the current keys (for seeks).
    fn series_columns(&self, hot_exact: bool) -> Vec<&str> {
        let usable = if hot_exact {
            self.model.series_keys_complete
        } else {
            self.model.series_keys_visible
        };
        if !usable {
            return Vec::new();
        }
        let columns: Vec<&str> = self
            .model
            .series_key_columns
            .iter()
            .filter_map(|i| self.model.columns.get(*i))
            .filter(|c| c.data_type == DataType::Utf8 && c.reads_as_stored())
            .map(|c| c.name.as_str())
            .collect();
        if columns.len() == self.model.series_key_columns.len() {
            columns
        } else {
            Vec::new()
        }
    }

    /// Series hashes when every series key has an equality / IN filter.
    fn series_hashes(&self, filters: &[Expr], hot_exact: bool) -> Option<Vec<u64>> {
        let keys = self.series_columns(hot_exact);
        if keys.is_empty() {
            return None;
        }
        let mut per_key: Vec<Vec<String>> = Vec::with_capacity(keys.len());
        for key in &keys {
            // Several filters on one key intersect; keep the shortest list (still a superset).
            let values = filters
                .iter()
                .filter_map(|f| equality_values(f, key))
                .min_by_key(|v| v.len())?;
            per_key.push(values);
        }
        let mut combinations: Vec<Vec<&str>> = vec![Vec::new()];
        for values in &per_key {
            let mut next = Vec::with_capacity(combinations.len() * values.len());
            for prefix in &combinations {
                for value in values {
                    let mut combination = prefix.clone();
                    combination.push(value.as_str());
                    next.push(combination);
                }
            }
            if next.len() > MAX_SERIES_SEEKS {
                return None;
            }
            combinations = next;
        }
        let mut hashes: Vec<u64> = combinations
            .iter()
            .map(|values| {
                let texts: Vec<Option<&str>> = values.iter().map(|v| Some(*v)).collect();
                strata_ingest::series_hash_of_text(&texts)
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        Some(hashes)
    }
}

#[async_trait]
impl TableProvider for MetricTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.usable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        if projection
            .iter()
            .any(|index| self.derived_at(*index).is_some())
        {
            return self.scan_derived(state, projection, filters, limit).await;
        }
        self.scan_stored(state, projection, filters, limit).await
    }
}

impl MetricTable {
    /// The derived column at table column `index` (0 is `timestamp`).
    fn derived_at(&self, index: usize) -> Option<&DerivedColumn> {
        index.checked_sub(1).and_then(|at| self.derived.at(at))
    }

    /// Scans the stored columns the projection and its derived columns read, then computes the
    /// derived ones in a projection above (which EXPLAIN shows with their expressions).
    async fn scan_derived(
        &self,
        state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut stored: Vec<usize> = Vec::new();
        for index in projection {
            let reads = match self.derived_at(*index) {
                Some(derived) => derived
                    .expr
                    .column_refs()
                    .iter()
                    .map(|c| self.schema.index_of(&c.name))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
                None => vec![*index],
            };
            for at in reads {
                if !stored.contains(&at) {
                    stored.push(at);
                }
            }
        }
        let input = self.scan_stored(state, &stored, filters, limit).await?;
        let input_schema = input.schema();
        let df_schema = DFSchema::try_from(input_schema.as_ref().clone())?;
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(projection.len());
        for index in projection {
            let name = self.schema.field(*index).name().clone();
            let expr = match self.derived_at(*index) {
                Some(derived) => state.create_physical_expr(derived.expr.clone(), &df_schema)?,
                None => Arc::new(Column::new(&name, input_schema.index_of(&name)?)),
            };
            exprs.push((expr, name));
        }
        let projected = self.schema.project(projection)?;
        Ok(Arc::new(ProjectionExec::try_new_with_schema_metadata(
            exprs, input, &projected,
        )?))
    }

    /// A scan of stored columns only: this metric's and each merged metric's, unioned.
    async fn scan_stored(
        &self,
        state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = Arc::new(self.schema.project(projection)?);
        let timestamp_at = projection.iter().position(|i| *i == 0);
        let columns = projected_columns(&self.model, projection)?;
        if let Some(usage) = &self.usage {
            let filtered = crate::usage::filter_columns(filters);
            let read = columns.iter().map(|column| column.name.as_str());
            usage.record_scan(self.tenant, self.model.id, read, &filtered);
        }
        let target_partitions = state.config().target_partitions();
        let spec = self.spec(
            schema,
            columns,
            timestamp_at,
            filters,
            limit,
            target_partitions,
        );
        let mut plans = Vec::with_capacity(1 + self.members.len());
        for member in &self.members {
            let member_spec = ScanSpec {
                model: member.clone(),
                columns: projected_columns(member, projection)?,
                // The member's rows were hashed under its own series keys.
                series: None,
                cold_series: None,
                ..spec.clone()
            };
            plans.push(self.plan(member_spec).await?);
        }
        plans.insert(0, self.plan(spec).await?);
        if plans.len() == 1 {
            return Ok(plans.remove(0));
        }
        // Each member's rows live under its own metric id: the union reads every row once.
        datafusion::physical_plan::union::UnionExec::try_new(plans)
    }

    /// One metric's scan: the hot tier alone, or both tiers when the server has a cold one.
    async fn plan(&self, spec: ScanSpec) -> Result<Arc<dyn ExecutionPlan>> {
        match &self.cold {
            None => Ok(Arc::new(MetricScanExec::new(spec, self.hot.clone()))),
            Some(cold) => plan_federated(spec, self.hot.clone(), cold).await,
        }
    }

    fn spec(
        &self,
        schema: SchemaRef,
        columns: Vec<strata_format::model::ColumnSpec>,
        timestamp_at: Option<usize>,
        filters: &[Expr],
        limit: Option<usize>,
        target_partitions: usize,
    ) -> ScanSpec {
        let mut time = TimeRange::default();
        for filter in filters {
            time.apply(filter);
        }
        ScanSpec {
            tenant: self.tenant,
            model: self.model.clone(),
            columns,
            timestamp_at,
            schema,
            time,
            file_filters: filters
                .iter()
                .filter(|f| self.file_filter(f))
                .cloned()
                .collect(),
            series: self.series_hashes(filters, true),
            cold_series: self.series_hashes(filters, false),
            // Filters are re-applied above the scan, so a limit is only safe without them.
            limit: if filters.is_empty() { limit } else { None },
            raw: self.raw,
            target_partitions,
            upto_seq: self.upto_seq,
        }
    }
}

/// The model's columns at `projection` (index 0 is `timestamp`, which has no column spec).
fn projected_columns(
    model: &MetricModel,
    projection: &[usize],
) -> Result<Vec<strata_format::model::ColumnSpec>> {
    projection
        .iter()
        .filter(|index| **index != 0)
        .map(|index| {
            model.columns.get(index - 1).cloned().ok_or_else(|| {
                DataFusionError::Internal(format!("projection index {index} out of range"))
            })
        })
        .collect()
}

/// `strata_raw('<metric>')`: the rows of a metric exactly as devices sent them — `timestamp`
/// plus one text column per incoming name the metric ever received (including names claimed by
/// hidden fields), with no recombination and no cast. This is how a value that failed its
/// declared type stays retrievable:
/// `SELECT "temp" FROM strata_raw('thermostat') WHERE "temp" IS NOT NULL`.
#[derive(Debug)]
pub struct RawFunction {
    tenant: TenantId,
    models: HashMap<String, Arc<MetricModel>>,
    hot: Arc<HotStore>,
    cold: Option<ColdContext>,
}

impl RawFunction {
    pub fn new(
        tenant: TenantId,
        models: HashMap<String, Arc<MetricModel>>,
        hot: Arc<HotStore>,
        cold: Option<ColdContext>,
    ) -> Self {
        RawFunction {
            tenant,
            models,
            hot,
            cold,
        }
    }
}

impl TableFunctionImpl for RawFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [Expr::Literal(
                ScalarValue::Utf8(Some(name))
                | ScalarValue::LargeUtf8(Some(name))
                | ScalarValue::Utf8View(Some(name)),
                _,
            )] => name,
            _ => {
                return Err(DataFusionError::Plan(
                    "strata_raw takes one argument: the metric name as a string literal"
                        .to_string(),
                ))
            }
        };
        let model = self.models.get(name).ok_or_else(|| {
            DataFusionError::Plan(format!("strata_raw: no metric named '{name}'"))
        })?;
        Ok(Arc::new(
            MetricTable::raw(self.tenant, model, self.hot.clone()).with_cold(self.cold.clone()),
        ))
    }
}
