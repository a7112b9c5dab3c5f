//! Planning a metric merge (`POST /api/v1/schema/metrics/{a}/merge {"from":"b"}`): which of the
//! merged metric's fields join a field of the target, which are added to it, and which clash.
//!
//! Pure, so every backend shares the rules. A field of `from` joins the target field that holds
//! any of its names (its other names become that field's lowest-precedence aliases, the rule for
//! aliases); with none it is added whole. A merge is refused, with the clash named, when one field
//! would join two target fields, two fields would join one, declared types differ, derived
//! expressions differ, or a field name is a timestamp alias on the other side.

use std::collections::HashMap;

use strata_core::{FieldId, FieldType};

use crate::model::{Field, Metric};
use crate::validate::{MAX_NAMES_PER_FIELD, MAX_TIMESTAMP_ALIASES};
use crate::CatalogError;

/// What happens to one field of the merged metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldMerge {
    /// Joins the target's field `target`; `new_names` are the names it does not have yet, in
    /// precedence order.
    Join {
        target: FieldId,
        display: String,
        new_names: Vec<String>,
    },
    /// A field the target lacks, added with the same names, type, hidden flag and expression.
    Add {
        name: String,
        field_type: Option<FieldType>,
        hidden: bool,
        names: Vec<String>,
        expression: Option<String>,
    },
}

/// The whole change to the target's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MergePlan {
    pub(crate) fields: Vec<FieldMerge>,
    /// Timestamp aliases of `from` that the target gains.
    pub(crate) timestamp_aliases: Vec<String>,
}

impl MergePlan {
    /// The readable part of the history entry.
    pub(crate) fn describe(&self) -> String {
        let joined: Vec<String> = self
            .fields
            .iter()
            .filter_map(|f| match f {
                FieldMerge::Join { display, .. } => Some(format!("{display:?}")),
                FieldMerge::Add { .. } => None,
            })
            .collect();
        let added: Vec<String> = self
            .fields
            .iter()
            .filter_map(|f| match f {
                FieldMerge::Add { name, .. } => Some(format!("{name:?}")),
                FieldMerge::Join { .. } => None,
            })
            .collect();
        let mut parts = Vec::new();
        if !joined.is_empty() {
            parts.push(format!("joined fields {}", joined.join(", ")));
        }
        if !added.is_empty() {
            parts.push(format!("added fields {}", added.join(", ")));
        }
        parts.join("; ")
    }
}

fn clash(message: String) -> CatalogError {
    CatalogError::Conflict(format!("the merge would clash: {message}"))
}

/// Plans merging `from` into `into`, or names the first clash.
pub(crate) fn plan_merge(into: &Metric, from: &Metric) -> Result<MergePlan, CatalogError> {
    let mut plan = MergePlan::default();
    let mut joined_by: HashMap<FieldId, &str> = HashMap::new();
    for field in &from.fields {
        if let Some(alias) = field
            .names
            .iter()
            .find(|n| into.timestamp_aliases.contains(n))
        {
            return Err(clash(format!(
                "{alias:?} is field {:?} of {:?} but a timestamp alias of {:?}",
                field.name, from.name, into.name
            )));
        }
        let owners = owners_of(into, field);
        match owners.as_slice() {
            [] => plan.fields.push(FieldMerge::Add {
                name: field.name.clone(),
                field_type: field.field_type,
                hidden: field.hidden,
                names: field.names.clone(),
                expression: field.expression.clone(),
            }),
            [target] => {
                if let Some(other) = joined_by.insert(target.id, &field.name) {
                    return Err(clash(format!(
                        "fields {other:?} and {:?} of {:?} would both join field {:?} of {:?}",
                        field.name, from.name, target.name, into.name
                    )));
                }
                plan.fields.push(join(into, from, target, field)?);
            }
            [first, second, ..] => {
                return Err(clash(format!(
                    "field {:?} of {:?} answers to names of two fields of {:?}: {:?} and {:?}",
                    field.name, from.name, into.name, first.name, second.name
                )))
            }
        }
    }
    for alias in &from.timestamp_aliases {
        if let Some(field) = into.field(alias) {
            return Err(clash(format!(
                "{alias:?} is a timestamp alias of {:?} but names field {:?} of {:?}",
                from.name, field.name, into.name
            )));
        }
        if !into.timestamp_aliases.contains(alias) {
            plan.timestamp_aliases.push(alias.clone());
        }
    }
    if into.timestamp_aliases.len() + plan.timestamp_aliases.len() > MAX_TIMESTAMP_ALIASES {
        return Err(CatalogError::Invalid(format!(
            "metric {:?} would have more than {MAX_TIMESTAMP_ALIASES} timestamp aliases",
            into.name
        )));
    }
    Ok(plan)
}

/// The target fields holding any name of `field`, each once, in the target's order.
fn owners_of<'a>(into: &'a Metric, field: &Field) -> Vec<&'a Field> {
    into.fields
        .iter()
        .filter(|target| target.names.iter().any(|n| field.names.contains(n)))
        .collect()
}

fn join(
    into: &Metric,
    from: &Metric,
    target: &Field,
    field: &Field,
) -> Result<FieldMerge, CatalogError> {
    if let (Some(a), Some(b)) = (target.field_type, field.field_type) {
        if a != b {
            return Err(clash(format!(
                "field {:?} is {b} in {:?} but {:?} is {a} in {:?}",
                field.name, from.name, target.name, into.name
            )));
        }
    }
    if target.expression != field.expression {
        return Err(clash(format!(
            "field {:?} of {:?} and field {:?} of {:?} are computed differently",
            field.name, from.name, target.name, into.name
        )));
    }
    let new_names: Vec<String> = field
        .names
        .iter()
        .filter(|n| !target.names.contains(n))
        .cloned()
        .collect();
    if target.names.len() + new_names.len() > MAX_NAMES_PER_FIELD {
        return Err(CatalogError::Invalid(format!(
            "field {:?} of {:?} would have more than {MAX_NAMES_PER_FIELD} names",
            target.name, into.name
        )));
    }
    Ok(FieldMerge::Join {
        target: target.id,
        display: target.name.clone(),
        new_names,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use strata_core::MetricId;

    use super::*;

    fn field(id: i64, names: &[&str], field_type: Option<FieldType>) -> Field {
        Field {
            id: FieldId(id),
            name: names[0].to_string(),
            field_type,
            names: names.iter().map(|n| n.to_string()).collect(),
            hidden: false,
            hidden_since_ms: None,
            expression: None,
            conversions: Default::default(),
        }
    }

    fn metric(name: &str, fields: Vec<Field>) -> Metric {
        Metric {
            id: MetricId(1),
            name: name.into(),
            aliases: Vec::new(),
            timestamp_aliases: Vec::new(),
            timestamp_patterns: Vec::new(),
            series_keys: Vec::new(),
            series_hashes_exact: true,
            series_generation: 0,
            fields,
            incoming: Vec::new(),
            created_at: Utc::now(),
            retention_days: None,
            timestamp_unit: Default::default(),
            merged_into: None,
        }
    }

    #[test]
    fn a_field_sharing_a_name_joins_and_brings_its_other_names() {
        let into = metric("a", vec![field(1, &["temp", "temperature"], None)]);
        let from = metric("b", vec![field(9, &["temperature", "tmp"], None)]);
        let plan = plan_merge(&into, &from).unwrap();
        assert_eq!(
            plan.fields,
            vec![FieldMerge::Join {
                target: FieldId(1),
                display: "temp".into(),
                new_names: vec!["tmp".into()],
            }]
        );
    }

    #[test]
    fn a_field_the_target_lacks_is_added_whole() {
        let into = metric("a", vec![field(1, &["temp"], None)]);
        let from = metric("b", vec![field(9, &["rpm"], Some(FieldType::Integer))]);
        let plan = plan_merge(&into, &from).unwrap();
        assert!(
            matches!(&plan.fields[0], FieldMerge::Add { name, field_type: Some(FieldType::Integer), .. } if name == "rpm")
        );
    }

    #[test]
    fn clashes_are_refused_and_named() {
        let into = metric(
            "a",
            vec![
                field(1, &["temp"], Some(FieldType::Double)),
                field(2, &["tmp"], None),
            ],
        );
        let typed = metric("b", vec![field(9, &["temp"], Some(FieldType::Integer))]);
        let err = plan_merge(&into, &typed).unwrap_err().to_string();
        assert!(err.contains("\"temp\" is integer in \"b\""), "{err}");
        let two_targets = metric("b", vec![field(9, &["temp", "tmp"], None)]);
        let err = plan_merge(&into, &two_targets).unwrap_err().to_string();
        assert!(err.contains("two fields of \"a\""), "{err}");
        let into = metric("a", vec![field(1, &["temp", "tmp"], None)]);
        let two_sources = metric(
            "b",
            vec![field(8, &["temp"], None), field(9, &["tmp"], None)],
        );
        let err = plan_merge(&into, &two_sources).unwrap_err().to_string();
        assert!(err.contains("would both join field \"temp\""), "{err}");
    }
}
