//! The shape of one metric as SQL sees it, computed from the catalog's metadata.
//!
//! Kept free of the catalog's own types so the recombinator, the scan and the alias rewriter can
//! be exercised on hand-built models; [`MetricModel::from_catalog`] is the only bridge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::physical_expr::PhysicalExpr;
use strata_core::{FieldId, FieldType, MetricId, NameId, RESERVED_FIELD_NAME};

/// The time zone every timestamp column carries; storage keeps epoch milliseconds in UTC.
pub const UTC: &str = "UTC";

/// The Arrow type of the `timestamp` column and of fields declared `timestamp`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

/// The SQL type a declared field reads as. An undeclared type reads as text, so data sent before
/// any schema is still queryable.
pub fn arrow_type_of(field_type: Option<FieldType>) -> DataType {
    match field_type {
        None | Some(FieldType::String) => DataType::Utf8,
        Some(FieldType::Boolean) => DataType::Boolean,
        Some(FieldType::Integer) => DataType::Int64,
        Some(FieldType::Double) => DataType::Float64,
        Some(FieldType::Timestamp) => timestamp_type(),
        Some(FieldType::Binary) => DataType::Binary,
    }
}

/// One incoming name a column reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: NameId,
    pub name: String,
    /// How this name's values are converted into the column's unit, if they are.
    pub conversion: Option<Conversion>,
}

/// A name's conversion (issue 17): its SQL text from the catalog, and the physical expression
/// `strata-query` compiled it to, over one column holding the name's values already cast to the
/// column's type. A conversion that is not compiled reads NULL, never the value as sent: a
/// Fahrenheit reading must not pass for Celsius.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub text: String,
    pub compiled: Option<Arc<dyn PhysicalExpr>>,
}

impl PartialEq for Conversion {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.compiled.is_some() == other.compiled.is_some()
    }
}

impl Eq for Conversion {}

impl Conversion {
    pub fn of(text: Option<&String>) -> Option<Conversion> {
        text.map(|text| Conversion {
            text: text.clone(),
            compiled: None,
        })
    }
}

/// One visible column after `timestamp`.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Display name: the column's name in SQL.
    pub name: String,
    pub data_type: DataType,
    /// Incoming names in precedence order (first non-null wins). Names that never received data
    /// have no id yet and are absent; a column may therefore have no source and read all NULL.
    pub sources: Vec<Source>,
    /// Every other name the field answers to in SQL (rewritten to `name` before planning).
    pub aliases: Vec<String>,
    /// Declared type, `None` for unknown fields and untyped declarations.
    pub field_type: Option<FieldType>,
    /// A derived field's SQL expression over other columns: it has no sources and is computed
    /// on read (`strata_query::derived`); `data_type` is then what the expression yields.
    pub expression: Option<String>,
}

impl ColumnSpec {
    pub fn is_derived(&self) -> bool {
        self.expression.is_some()
    }

    /// How EXPLAIN shows the column: `temperature <- (temperature, tempF converted by (tempF -
    /// 32) * 5 / 9) as Float64`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .sources
            .iter()
            .map(|source| match &source.conversion {
                Some(conversion) => format!("{} converted by {}", source.name, conversion.text),
                None => source.name.clone(),
            })
            .collect();
        format!(
            "{} <- ({}) as {}",
            self.name,
            names.join(", "),
            self.data_type
        )
    }

    /// Whether some name's values are converted on read.
    pub fn has_conversions(&self) -> bool {
        self.sources.iter().any(|s| s.conversion.is_some())
    }

    /// Whether the column's values are the stored ones: not derived and no name converted.
    /// Only then do stored statistics (Parquet pruning) and series hashes say anything about
    /// them.
    pub fn reads_as_stored(&self) -> bool {
        !self.is_derived() && !self.has_conversions()
    }
}

/// A metric's SQL shape: `timestamp`, then `columns` in order.
#[derive(Debug, Clone)]
pub struct MetricModel {
    pub id: MetricId,
    /// Display name, shown in EXPLAIN.
    pub name: String,
    /// Every name the table is registered under (display name first, then aliases).
    pub table_names: Vec<String>,
    pub columns: Vec<ColumnSpec>,
    /// Indices into `columns` of the series-key fields, in key order. Empty when the metric has no
    /// series keys or when one of them is hidden (then no seek is possible through SQL).
    pub series_key_columns: Vec<usize>,
    /// Whether every series-key field is declared with at least one visible column *and* every
    /// hot row was hashed from the current keys; when false the hot scan never seeks by series.
    pub series_keys_complete: bool,
    /// Whether every series-key field has a visible column, whatever the rows were hashed with:
    /// cold files of the current [`MetricModel::series_generation`] may then be pruned by series.
    pub series_keys_visible: bool,
    /// The metric's series generation (see `strata_catalog::Metric::series_generation`).
    pub series_generation: i64,
    /// Every incoming name of the metric (for `strata_raw`), in id order.
    pub incoming: Vec<Source>,
}

impl MetricModel {
    /// The Arrow schema of the full (unprojected) table.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = Vec::with_capacity(self.columns.len() + 1);
        fields.push(Field::new(RESERVED_FIELD_NAME, timestamp_type(), false));
        for column in &self.columns {
            fields.push(Field::new(&column.name, column.data_type.clone(), true));
        }
        Arc::new(Schema::new(fields))
    }

    /// The raw view used by `strata_raw`: every incoming name as its own text column, no
    /// recombination and no cast.
    pub fn raw_view(&self) -> MetricModel {
        let columns = self
            .incoming
            .iter()
            .filter(|source| source.name != RESERVED_FIELD_NAME)
            .map(|source| ColumnSpec {
                name: source.name.clone(),
                data_type: DataType::Utf8,
                sources: vec![source.clone()],
                aliases: Vec::new(),
                field_type: None,
                expression: None,
            })
            .collect();
        MetricModel {
            id: self.id,
            name: self.name.clone(),
            table_names: Vec::new(),
            columns,
            series_key_columns: Vec::new(),
            series_keys_complete: false,
            series_keys_visible: false,
            series_generation: self.series_generation,
            incoming: self.incoming.clone(),
        }
    }

    /// What the alias rewriter needs to know about this table.
    pub fn alias_map(&self) -> TableAliases {
        let mut columns: HashSet<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        columns.insert(RESERVED_FIELD_NAME.to_string());
        let mut aliases = HashMap::new();
        for column in &self.columns {
            for alias in &column.aliases {
                if !columns.contains(alias) {
                    aliases.insert(alias.clone(), column.name.clone());
                }
            }
        }
        TableAliases { columns, aliases }
    }

    /// Builds the model from the catalog's view of a live metric.
    pub fn from_catalog(metric: &strata_catalog::Metric) -> MetricModel {
        let (mut columns, column_of_field) = declared_columns(metric);
        columns.extend(unknown_columns(metric));
        let series_key_columns: Vec<usize> = metric
            .series_keys
            .iter()
            .filter_map(|field_id| column_of_field.get(field_id).copied())
            .collect();
        let series_keys_visible =
            !metric.series_keys.is_empty() && series_key_columns.len() == metric.series_keys.len();
        // A seek is only exact when every stored row was hashed from the current keys.
        let series_keys_complete = metric.series_hashes_exact && series_keys_visible;
        let incoming = incoming_sources(metric);
        let mut table_names = vec![metric.name.clone()];
        table_names.extend(metric.aliases.iter().cloned());
        MetricModel {
            id: metric.id,
            name: metric.name.clone(),
            table_names,
            columns,
            series_key_columns,
            series_keys_complete,
            series_keys_visible,
            series_generation: metric.series_generation,
            incoming,
        }
    }
}

/// Every incoming name of `metric` as a source, in name-id order.
pub fn incoming_sources(metric: &strata_catalog::Metric) -> Vec<Source> {
    let mut incoming: Vec<Source> = metric
        .incoming
        .iter()
        .map(|n| Source {
            id: n.id,
            name: n.name.clone(),
            conversion: None,
        })
        .collect();
    incoming.sort_by_key(|s| s.id);
    incoming
}

/// A column per visible declared field, in declaration order, and each field's column index.
fn declared_columns(metric: &strata_catalog::Metric) -> (Vec<ColumnSpec>, HashMap<FieldId, usize>) {
    let incoming_id: HashMap<&str, NameId> = metric
        .incoming
        .iter()
        .map(|name| (name.name.as_str(), name.id))
        .collect();
    let mut columns = Vec::new();
    let mut column_of_field = HashMap::new();
    for field in metric.fields.iter().filter(|f| !f.hidden) {
        if field.name == RESERVED_FIELD_NAME {
            continue;
        }
        // A derived field reads no incoming name: it is computed from other columns.
        let stored = field.expression.is_none();
        let sources = field
            .names
            .iter()
            .filter(|_| stored)
            .filter_map(|name| {
                incoming_id.get(name.as_str()).map(|id| Source {
                    id: *id,
                    name: name.clone(),
                    conversion: Conversion::of(field.conversions.get(name)),
                })
            })
            .collect();
        column_of_field.insert(field.id, columns.len());
        columns.push(ColumnSpec {
            name: field.name.clone(),
            data_type: arrow_type_of(field.field_type),
            sources,
            aliases: field
                .names
                .iter()
                .filter(|n| **n != field.name)
                .cloned()
                .collect(),
            field_type: field.field_type,
            expression: field.expression.clone(),
        });
    }
    (columns, column_of_field)
}

/// A text column per incoming name no field claims.
fn unknown_columns(metric: &strata_catalog::Metric) -> Vec<ColumnSpec> {
    metric
        .unknown_incoming()
        .filter(|name| name.name != RESERVED_FIELD_NAME)
        .map(|name| ColumnSpec {
            name: name.name.clone(),
            data_type: DataType::Utf8,
            sources: vec![Source {
                id: name.id,
                name: name.name.clone(),
                conversion: None,
            }],
            aliases: Vec::new(),
            field_type: None,
            expression: None,
        })
        .collect()
}

/// Column names and alias-to-display-name map of one metric table, for the alias rewriter.
#[derive(Debug, Clone, Default)]
pub struct TableAliases {
    /// Real column names (display names of visible fields, unknown names, `timestamp`).
    pub columns: HashSet<String>,
    /// Alias -> display name.
    pub aliases: HashMap<String, String>,
}
