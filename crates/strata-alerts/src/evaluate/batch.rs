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
use strata_query::derived::DerivedColumns;
use strata_storage::HotEvent;

use super::condition::Matches;
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

    /// The rows as one batch of this shape, with only the columns at `needed` (indices in
    /// this shape, alias columns included) filled and every other column null: building a
    /// column costs about as much per row as the rule's whole evaluation, and a rule reads few.
    pub(crate) fn batch(
        &self,
        model: &MetricModel,
        derived: &DerivedColumns,
        rows: &[&HotEvent],
        needed: &[usize],
    ) -> Result<RecordBatch, String> {
        let mut columns = model.columns.clone();
        for (i, column) in columns.iter_mut().enumerate() {
            if !needed.contains(&self.base_of(i + 1)) && !self.aliased_from(needed, i + 1) {
                column.sources.clear();
            }
        }
        let mut builder = RawBatchBuilder::new(&columns, rows.len());
        for row in rows {
            builder.push_borrowed(row.timestamp_ms, &row.values);
        }
        let (base, _cast_failures) = builder
            .finish(&model.schema(), Some(0), &columns)
            .map_err(|e| e.to_string())?;
        let base = derived.compute(base).map_err(|e| e.to_string())?;
        self.extend(base)
    }

    /// The column of the metric's SQL shape that shape column `index` shows.
    fn base_of(&self, index: usize) -> usize {
        let base_columns = self.schema.fields().len() - self.alias_of.len();
        match index.checked_sub(base_columns) {
            Some(alias) => self.alias_of[alias],
            None => index,
        }
    }

    /// Whether some needed column is an alias of base column `index`.
    fn aliased_from(&self, needed: &[usize], index: usize) -> bool {
        needed.iter().any(|&n| self.base_of(n) == index)
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
/// its last matching row), then inactive again if its latest row did not match. Callers skip
/// it when nothing matched and the rule has no instance, since nothing can change: that is the
/// common case on the ingest path (the benchmark measured label building for every row and
/// rule at 9% of a loaded server's CPU).
///
/// `matched` is the condition's answer for `batch`'s rows; `batch` must hold the label and
/// value columns.
pub(crate) fn event_observations(
    batch: &RecordBatch,
    matched: &Matches,
    labels: &LabelColumns,
    value_column: Option<usize>,
) -> Vec<Observation> {
    // Per instance: (value of the last match, whether any matched, whether the latest matched).
    let mut seen: BTreeMap<Labels, (Option<f64>, bool, bool, i64)> = BTreeMap::new();
    let timestamps = batch
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>();
    for row in 0..matched.len() {
        let matches = matched.at(row);
        let key = labels_at(batch, labels, row);
        let time = timestamps.map_or(0, |t| t.value(row));
        let entry = seen.entry(key).or_insert((None, false, false, i64::MIN));
        if matches {
            entry.0 = value_column.and_then(|c| cell_f64(batch.column(c), row));
            entry.1 = true;
        }
        if time >= entry.3 {
            entry.2 = matches;
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
    out
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use strata_core::{MetricId, Value};
    use strata_format::model::{ColumnSpec, Source};

    use super::*;

    /// `name` (string, from name id 1) and `temp` (double, from ids 2 and 3, alias `tmp`).
    fn model() -> MetricModel {
        let source = |id, name: &str| Source {
            id,
            name: name.into(),
            conversion: None,
        };
        let column = |name: &str, data_type, sources, aliases: &[&str]| ColumnSpec {
            name: name.into(),
            data_type,
            sources,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            field_type: None,
            expression: None,
        };
        MetricModel {
            id: MetricId(1),
            name: "thermostat".into(),
            table_names: vec!["thermostat".into()],
            columns: vec![
                column("name", DataType::Utf8, vec![source(1, "name")], &[]),
                column(
                    "temp",
                    DataType::Float64,
                    vec![source(2, "temp"), source(3, "tmp")],
                    &["tmp"],
                ),
            ],
            series_key_columns: vec![0],
            series_keys_complete: true,
            series_keys_visible: true,
            series_generation: 0,
            incoming: Vec::new(),
        }
    }

    fn event(name: &str, temp_id: u32, temp: f64) -> HotEvent {
        HotEvent {
            metric: MetricId(1),
            timestamp_ms: 1,
            series: 0,
            content_hash: 0,
            values: vec![(1, Value::Str(name.into())), (temp_id, Value::Float(temp))],
        }
    }

    #[test]
    fn a_projected_batch_fills_only_the_needed_columns_and_their_aliases() {
        let model = model();
        let shape = ExpressionShape::of(&model);
        let (name, temp, tmp) = (1, 2, shape.column("tmp").expect("alias column"));
        let rows = [event("a", 2, 70.0), event("b", 3, 80.0)];
        let rows: Vec<&HotEvent> = rows.iter().collect();

        // Only the alias is read: its column and the one it repeats are filled, recombined
        // from both incoming names; `name` is not built.
        let narrow = shape
            .batch(&model, &DerivedColumns::default(), &rows, &[tmp])
            .expect("batch");
        assert_eq!(narrow.schema(), shape.schema);
        let temps = Float64Array::from(vec![70.0, 80.0]);
        assert_eq!(narrow.column(temp).as_ref(), &temps as &dyn Array);
        assert_eq!(narrow.column(tmp).as_ref(), &temps as &dyn Array);
        assert_eq!(narrow.column(name).null_count(), 2);

        let wide = shape
            .batch(&model, &DerivedColumns::default(), &rows, &[name, temp])
            .expect("batch");
        let names = StringArray::from(vec!["a", "b"]);
        assert_eq!(wide.column(name).as_ref(), &names as &dyn Array);
        assert_eq!(wide.column(tmp).as_ref(), &temps as &dyn Array);
    }
}
