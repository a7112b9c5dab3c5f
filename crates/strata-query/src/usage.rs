//! How tenants query their metrics, kept in bounded memory: which fields queries read and
//! filter on, and which names they used that resolved to nothing. Schema suggestions (issue 17)
//! read it ("`temperature_c` was queried 40 times"); it is lost on restart, like a cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use strata_core::{MetricId, TenantId};

/// Distinct (metric, name) entries kept per tenant in each of the two maps; further names are
/// not counted (the busiest names are counted from their first use, which is what ranks them).
pub const USAGE_NAMES_PER_TENANT: usize = 4096;
/// Longest name recorded: a query cannot fill memory with one giant identifier.
const MAX_RECORDED_NAME_CHARS: usize = 128;

/// How often one field was read and filtered on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldUse {
    pub reads: u64,
    pub filters: u64,
}

/// One tenant's usage at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageSnapshot {
    /// (metric, name as written) → queries that failed because the name does not exist.
    pub unresolved: HashMap<(MetricId, String), u64>,
    /// (metric, column) → how it was used by queries that ran.
    pub fields: HashMap<(MetricId, String), FieldUse>,
}

/// Usage of every tenant. One per query engine.
#[derive(Debug, Default)]
pub struct QueryUsage {
    tenants: Mutex<HashMap<TenantId, UsageSnapshot>>,
}

impl QueryUsage {
    pub fn snapshot(&self, tenant: TenantId) -> UsageSnapshot {
        self.tenants
            .lock()
            .map(|tenants| tenants.get(&tenant).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Counts a scan of `metric` reading `columns` and filtering on `filtered`.
    pub fn record_scan<'a>(
        &self,
        tenant: TenantId,
        metric: MetricId,
        columns: impl Iterator<Item = &'a str>,
        filtered: &[String],
    ) {
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        let usage = tenants.entry(tenant).or_default();
        for column in columns {
            if let Some(entry) = bounded_entry(&mut usage.fields, metric, column) {
                entry.reads += 1;
            }
        }
        for column in filtered {
            if let Some(entry) = bounded_entry(&mut usage.fields, metric, column) {
                entry.filters += 1;
            }
        }
    }

    /// Counts a name a query used on `metric` that does not exist.
    pub fn record_unresolved(&self, tenant: TenantId, metric: MetricId, name: &str) {
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        let usage = tenants.entry(tenant).or_default();
        if let Some(count) = bounded_entry(&mut usage.unresolved, metric, name) {
            *count += 1;
        }
    }
}

fn bounded_entry<'m, V: Default>(
    map: &'m mut HashMap<(MetricId, String), V>,
    metric: MetricId,
    name: &str,
) -> Option<&'m mut V> {
    if name.chars().count() > MAX_RECORDED_NAME_CHARS {
        return None;
    }
    let key = (metric, name.to_string());
    if !map.contains_key(&key) && map.len() >= USAGE_NAMES_PER_TENANT {
        return None;
    }
    Some(map.entry(key).or_default())
}

/// The columns a scan's filters refer to.
pub(crate) fn filter_columns(filters: &[Expr]) -> Vec<String> {
    let mut names: Vec<String> = filters
        .iter()
        .flat_map(|filter| filter.column_refs())
        .map(|column| column.name.clone())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// What a session records its queries' usage into.
#[derive(Debug, Clone)]
pub(crate) struct SessionUsage {
    pub(crate) usage: Arc<QueryUsage>,
    pub(crate) tenant: TenantId,
    /// Table name (display name or alias) → metric.
    pub(crate) metrics: HashMap<String, MetricId>,
}

impl SessionUsage {
    /// Records the name behind a "no field named ..." planning error, against the one metric
    /// table the failed column could belong to (the qualifier, or the only table in scope).
    pub(crate) fn record_failure(&self, error: &DataFusionError) {
        let Some((name, tables)) = missing_field(error) else {
            return;
        };
        let mut metrics: Vec<MetricId> = tables
            .iter()
            .filter_map(|table| self.metrics.get(table).copied())
            .collect();
        metrics.sort_unstable();
        metrics.dedup();
        if let [metric] = metrics.as_slice() {
            self.usage.record_unresolved(self.tenant, *metric, &name);
        }
    }
}

/// The missing name and the tables it was looked for in.
fn missing_field(error: &DataFusionError) -> Option<(String, Vec<String>)> {
    match error {
        DataFusionError::SchemaError(schema_error, _) => {
            let SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = schema_error.as_ref()
            else {
                return None;
            };
            let tables = match &field.relation {
                Some(relation) => vec![relation.table().to_string()],
                None => valid_fields
                    .iter()
                    .filter_map(|column| column.relation.as_ref())
                    .map(|relation| relation.table().to_string())
                    .collect(),
            };
            Some((field.name.clone(), tables))
        }
        DataFusionError::Context(_, inner) => missing_field(inner),
        DataFusionError::Diagnostic(_, inner) => missing_field(inner),
        _ => None,
    }
}
