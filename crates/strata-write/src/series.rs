//! The series key of a row: the hash of the first non-null value of each series-key field, over
//! that field's incoming names in precedence order. The hot key orders rows by it, and the
//! compactor and the table scan must compute exactly what the writer did, so every site calls
//! these functions (`strata_ingest::series_hash` is the hash itself).

use strata_core::{NameId, Value};
use strata_ingest::{series_hash, Field};

/// Series hash of a normalized event, whose `fields` are sorted by name (as `normalize`
/// guarantees). `series_names` holds, per series-key field, its names in precedence order.
pub fn series_of_event(fields: &[Field<'_>], series_names: &[Vec<String>]) -> u64 {
    let picked: Vec<Option<&Value>> = series_names
        .iter()
        .map(|names| {
            names.iter().find_map(|name| {
                fields
                    .binary_search_by(|(n, _, _)| n.as_ref().cmp(name.as_str()))
                    .ok()
                    .and_then(|at| non_null(&fields[at].1))
            })
        })
        .collect();
    series_hash(&picked)
}

/// Series hash of a stored row, whose `values` are sorted by name id (as the hot tier stores
/// them). `series_ids` holds, per series-key field, its name ids in precedence order.
pub fn series_of_row(values: &[(NameId, Value)], series_ids: &[Vec<NameId>]) -> u64 {
    let picked: Vec<Option<&Value>> = series_ids
        .iter()
        .map(|ids| {
            ids.iter().find_map(|id| {
                values
                    .binary_search_by_key(id, |(name, _)| *name)
                    .ok()
                    .and_then(|at| non_null(&values[at].1))
            })
        })
        .collect();
    series_hash(&picked)
}

fn non_null(value: &Value) -> Option<&Value> {
    (!matches!(value, Value::Null)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::JsonKind;

    #[test]
    fn an_event_and_its_stored_row_hash_alike_and_precedence_skips_nulls() {
        let fields = vec![
            ("dev".into(), Value::Null, JsonKind::Null),
            ("device".into(), Value::Str("a1".into()), JsonKind::String),
            ("site".into(), Value::Int(7), JsonKind::Number),
        ];
        let names = vec![
            vec!["dev".to_string(), "device".to_string()],
            vec!["site".to_string()],
        ];
        let row = vec![
            (1, Value::Null),
            (2, Value::Str("a1".into())),
            (3, Value::Int(7)),
        ];
        let ids = vec![vec![1, 2], vec![3]];
        let hash = series_of_event(&fields, &names);
        assert_eq!(hash, series_of_row(&row, &ids));
        assert_eq!(
            hash,
            series_hash(&[Some(&Value::Str("a1".into())), Some(&Value::Int(7))])
        );
        // No series keys: the metric's single series.
        assert_eq!(series_of_event(&fields, &[]), series_hash(&[]));
    }
}
