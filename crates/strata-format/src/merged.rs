//! The table of a metric that other metrics were merged into: one SQL shape, read from the rows
//! of each metric under that metric's own incoming names (no data rewrite, issue 17).
//!
//! [`merged_models`] returns the target's model, grown by the merged metrics' names no field of
//! the target claims, and per merged metric a model with the same columns whose sources are that
//! metric's incoming names. A field's names keep their precedence in every member, so a merged
//! metric's rows combine by the same rule as the target's.

use strata_catalog::Metric;
use strata_core::RESERVED_FIELD_NAME;

use crate::model::{arrow_type_of, ColumnSpec, Conversion, MetricModel, Source};

/// The target's model and one parallel model per member (same columns, in the same order).
pub fn merged_models(target: &Metric, members: &[&Metric]) -> (MetricModel, Vec<MetricModel>) {
    let mut model = MetricModel::from_catalog(target);
    for member in members {
        for incoming in &member.incoming {
            let name = incoming.name.as_str();
            let taken = name == RESERVED_FIELD_NAME
                || target.field(name).is_some()
                || model.columns.iter().any(|c| c.name == name);
            if !taken {
                model.columns.push(ColumnSpec {
                    name: name.to_string(),
                    data_type: arrow_type_of(None),
                    sources: Vec::new(),
                    aliases: Vec::new(),
                    field_type: None,
                    expression: None,
                });
            }
        }
    }
    let member_models = members
        .iter()
        .map(|member| member_model(&model, target, member))
        .collect();
    (model, member_models)
}

/// `model`'s columns read from `member`'s incoming names. Series seeks and series pruning are off:
/// the member's rows were hashed under its own keys.
fn member_model(model: &MetricModel, target: &Metric, member: &Metric) -> MetricModel {
    let columns = model
        .columns
        .iter()
        .map(|column| {
            let names: Vec<&str> = match target.field(&column.name) {
                Some(field) if field.expression.is_none() => {
                    field.names.iter().map(String::as_str).collect()
                }
                Some(_) => Vec::new(),
                None => vec![column.name.as_str()],
            };
            let sources = names
                .iter()
                .filter_map(|name| {
                    member.incoming(name).map(|incoming| Source {
                        id: incoming.id,
                        name: incoming.name.clone(),
                        conversion: Conversion::of(
                            target
                                .field(&column.name)
                                .and_then(|field| field.conversions.get(*name)),
                        ),
                    })
                })
                .collect();
            ColumnSpec {
                sources,
                ..column.clone()
            }
        })
        .collect();
    let incoming = crate::model::incoming_sources(member);
    MetricModel {
        id: member.id,
        name: format!("{} (merged from {})", model.name, member.name),
        table_names: Vec::new(),
        columns,
        series_key_columns: Vec::new(),
        series_keys_complete: false,
        series_keys_visible: false,
        series_generation: member.series_generation,
        incoming,
    }
}
