//! Event and absence rules read committed rows: this builds a metric's rows into one Arrow
//! batch exactly as SQL sees them (fields recombined from their incoming names and cast), plus
//! one column per alias so a condition may name a field by any of its names.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use strata_format::model::MetricModel;
use strata_format::recombine::RawBatchBuilder;
use strata_storage::HotEvent;

use super::condition::Condition;
use super::{cell_f64, cell_text, Observation};
use crate::labels::Labels;

/// A metric's columns for expressions: `timestamp`, every visible column, then each alias that
/// is not also a column name, pointing at its column.
#[derive(Debug, Clone)]
pub(crate) struct ExpressionShape {
    pub schema: SchemaRef,
    /// For each alias column, the index of the column it repeats.
    alias_of: Vec<usize>,
}

impl ExpressionShape {
    pub(crate) fn of(model: &MetricModel) -> ExpressionShape {
        let base = model.schema();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut alias_of = Vec::new();
        for (i, column) in model.columns.iter().enumerate() {
            for alias in &column.aliases {
                if fields.iter().all(|f| f.name() != alias) {
                    fields.push(Field::new(alias, column.data_type.clone(), true));
                    alias_of.push(i + 1);
                }
            }
        }
        ExpressionShape {
            schema: Arc::new(Schema::new(fields)),
            alias_of,
        }
    }

    /// The index of the column named `name` (a display name or an alias).
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.schema.index_of(name).ok()
    }

    /// The rows as one batch of this shape.
    pub(crate) fn batch(
        &self,
        model: &MetricModel,
        rows: &[&HotEvent],
    ) -> Result<RecordBatch, String> {
        let mut builder = RawBatchBuilder::new(&model.columns, rows.len());
        for row in rows {
            builder.push(row.timestamp_ms, row.values.clone());
        }
        let (base, _cast_failures) = builder
            .finish(&model.schema(), Some(0), &model.columns)
            .map_err(|e| e.to_string())?;
        self.extend(base)
    }

    /// Adds the alias columns to a batch of the metric's SQL shape (`SELECT *`).
    pub(crate) fn extend(&self, base: RecordBatch) -> Result<RecordBatch, String> {
        let mut columns: Vec<ArrayRef> = base.columns().to_vec();
        for &source in &self.alias_of {
            columns.push(base.column(source).clone());
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }
}

/// Label name and column index of each instance label.
pub(crate) type LabelColumns = Vec<(String, usize)>;

pub(crate) fn labels_at(batch: &RecordBatch, columns: &LabelColumns, row: usize) -> Labels {
    columns
        .iter()
        .map(|(name, at)| (name.clone(), cell_text(batch.column(*at), row)))
        .collect()
}

/// An event rule over one batch: per instance, active if any row matched (with the value of
/// its last matching row), then inactive again if its latest row did not match. With no match
/// and no existing instance (`has_instances` false) nothing can change, so no labels are built:
/// that is the common case on the ingest path (the benchmark measured label building for every
/// row and rule at 9% of a loaded server's CPU).
pub(crate) fn event_observations(
    batch: &RecordBatch,
    condition: &Condition,
    labels: &LabelColumns,
    value_column: Option<usize>,
    has_instances: bool,
) -> Result<Vec<Observation>, String> {
    let matched = condition.evaluate(batch)?;
    if !has_instances && !matched.iter().any(|m| *m) {
        return Ok(Vec::new());
    }
    // Per instance: (value of the last match, whether any matched, whether the latest matched).
    let mut seen: BTreeMap<Labels, (Option<f64>, bool, bool, i64)> = BTreeMap::new();
    let timestamps = batch
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>();
    for (row, matches) in matched.iter().enumerate() {
        let key = labels_at(batch, labels, row);
        let time = timestamps.map_or(0, |t| t.value(row));
        let entry = seen.entry(key).or_insert((None, false, false, i64::MIN));
        if *matches {
            entry.0 = value_column.and_then(|c| cell_f64(batch.column(c), row));
            entry.1 = true;
        }
        if time >= entry.3 {
            entry.2 = *matches;
            entry.3 = time;
        }
    }
    let mut out = Vec::new();
    for (labels, (value, any, latest, _)) in seen {
        if any {
            out.push(Observation {
                labels: labels.clone(),
                active: true,
                value,
            });
        }
        if !latest {
            out.push(Observation {
                labels,
                active: false,
                value: None,
            });
        }
    }
    Ok(out)
}

/// An absence rule over one batch: every instance present (a series that sends events is an
/// instance, whatever fields it sends), and those that showed life (any row, or with `field` a
/// row where the watched field is non-null under any of its names).
pub(crate) fn presence(
    batch: &RecordBatch,
    labels: &LabelColumns,
    field: Option<usize>,
) -> (Vec<Labels>, Vec<Labels>) {
    let mut present = std::collections::BTreeSet::new();
    let mut alive = std::collections::BTreeSet::new();
    for row in 0..batch.num_rows() {
        let key = labels_at(batch, labels, row);
        if !field.is_some_and(|f| batch.column(f).is_null(row)) {
            alive.insert(key.clone());
        }
        present.insert(key);
    }
    (present.into_iter().collect(), alive.into_iter().collect())
}
