//! How tenants query their metrics, kept in bounded memory: which fields queries read and
//! filter on, and which names they used that resolved to nothing. Schema suggestions (issue 17)
//! read it ("`temperature_c` was queried 40 times"). The statistics flusher saves each changed
//! tenant's usage to the catalog ([`QueryUsage::take_changed`], [`UsageSnapshot::encode`]) and
//! startup restores it ([`QueryUsage::restore`]), so it outlives a restart; a crash loses at
//! most one flush interval of counts.

use std::collections::{HashMap, HashSet};
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

/// The saved form of a [`UsageSnapshot`]: JSON has no tuple keys.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SavedUsage {
    /// (metric, name, queries).
    unresolved: Vec<(MetricId, String, u64)>,
    /// (metric, column, reads, filters).
    fields: Vec<(MetricId, String, u64, u64)>,
}

impl UsageSnapshot {
    /// The document the catalog keeps.
    pub fn encode(&self) -> String {
        let mut saved = SavedUsage::default();
        for ((metric, name), count) in &self.unresolved {
            saved.unresolved.push((*metric, name.clone(), *count));
        }
        for ((metric, name), uses) in &self.fields {
            saved
                .fields
                .push((*metric, name.clone(), uses.reads, uses.filters));
        }
        saved.unresolved.sort_unstable();
        saved.fields.sort_unstable();
        serde_json::to_string(&saved).unwrap_or_default()
    }

    pub fn decode(document: &str) -> Result<Self, serde_json::Error> {
        let saved: SavedUsage = serde_json::from_str(document)?;
        let mut snapshot = UsageSnapshot::default();
        for (metric, name, count) in saved.unresolved {
            snapshot.unresolved.insert((metric, name), count);
        }
        for (metric, name, reads, filters) in saved.fields {
            snapshot
                .fields
                .insert((metric, name), FieldUse { reads, filters });
        }
        Ok(snapshot)
    }
}

/// Usage of every tenant. One per query engine.
#[derive(Debug, Default)]
pub struct QueryUsage {
    state: Mutex<UsageState>,
}

#[derive(Debug, Default)]
struct UsageState {
    tenants: HashMap<TenantId, UsageSnapshot>,
    /// Tenants whose usage changed since the last [`QueryUsage::take_changed`].
    changed: HashSet<TenantId>,
}

impl QueryUsage {
    pub fn snapshot(&self, tenant: TenantId) -> UsageSnapshot {
        self.state
            .lock()
            .map(|state| state.tenants.get(&tenant).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Adds saved counts to what this process counted, within the same caps.
    pub fn restore(&self, tenant: TenantId, saved: UsageSnapshot) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let usage = state.tenants.entry(tenant).or_default();
        for ((metric, name), count) in saved.unresolved {
            if let Some(entry) = bounded_entry(&mut usage.unresolved, metric, &name) {
                *entry += count;
            }
        }
        for ((metric, name), uses) in saved.fields {
            if let Some(entry) = bounded_entry(&mut usage.fields, metric, &name) {
                entry.reads += uses.reads;
                entry.filters += uses.filters;
            }
        }
    }

    /// The usage of every tenant that changed since the last call, to be saved.
    pub fn take_changed(&self) -> Vec<(TenantId, UsageSnapshot)> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let changed: Vec<TenantId> = state.changed.drain().collect();
        changed
            .into_iter()
            .filter_map(|tenant| Some((tenant, state.tenants.get(&tenant)?.clone())))
            .collect()
    }

    /// Marks `tenant` changed again, after its usage could not be saved.
    pub fn mark_changed(&self, tenant: TenantId) {
        if let Ok(mut state) = self.state.lock() {
            state.changed.insert(tenant);
        }
    }

    /// Counts a scan of `metric` reading `columns` and filtering on `filtered`.
    pub fn record_scan<'a>(
        &self,
        tenant: TenantId,
        metric: MetricId,
        columns: impl Iterator<Item = &'a str>,
        filtered: &[String],
    ) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.changed.insert(tenant);
        let usage = state.tenants.entry(tenant).or_default();
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
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.changed.insert(tenant);
        let usage = state.tenants.entry(tenant).or_default();
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
