//! The series key of a row: the hash of the first non-null value of each series-key field, over
//! that field's incoming names in precedence order. The hot key orders rows by it, and the
//! compactor and the table scan must compute exactly what the writer did, so every site calls
//! these functions (`strata_ingest::series_hash` is the hash itself).

use std::collections::HashMap;

use strata_catalog::Metric;
use strata_core::{NameId, Value};
use strata_ingest::series_hash_of;

/// Series hash of a stored row, whose `values` are sorted by name id (as the hot tier stores
/// them). `series_ids` holds, per series-key field, its name ids in precedence order.
pub fn series_of_row(values: &[(NameId, Value)], series_ids: &[Vec<NameId>]) -> u64 {
    series_hash_of(series_ids.iter().map(|ids| {
        ids.iter().find_map(|id| {
            values
                .binary_search_by_key(id, |(name, _)| *name)
                .ok()
                .and_then(|at| non_null(&values[at].1))
        })
    }))
}

/// Per series-key field, the ids of its incoming names in precedence order, from the metric's
/// registered names (`known`) and the ones a write just registered (`new`). A name with neither
/// is in no row, so leaving it out hashes alike.
pub fn series_name_ids<S: std::hash::BuildHasher>(
    metric: &Metric,
    known: &HashMap<&str, NameId, S>,
    new: &HashMap<String, NameId, S>,
) -> Vec<Vec<NameId>> {
    metric
        .series_key_fields()
        .iter()
        .map(|field| {
            field
                .names
                .iter()
                .filter_map(|name| known.get(name.as_str()).or_else(|| new.get(name)).copied())
                .collect()
        })
        .collect()
}

fn non_null(value: &Value) -> Option<&Value> {
    (!matches!(value, Value::Null)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_ingest::series_hash;

    #[test]
    fn a_row_hashes_its_first_non_null_series_value_by_precedence() {
        let row = vec![
            (1, Value::Null),
            (2, Value::Str("a1".into())),
            (3, Value::Int(7)),
        ];
        // Name 1 precedes 2 for the first key but is null; name 9 is in no row.
        let ids = vec![vec![1, 2], vec![9, 3]];
        assert_eq!(
            series_of_row(&row, &ids),
            series_hash(&[Some(&Value::Str("a1".into())), Some(&Value::Int(7))])
        );
        assert_eq!(
            series_of_row(&row, &[vec![4]]),
            series_hash(&[None]),
            "an absent series value hashes as absent"
        );
        // No series keys: the metric's single series.
        assert_eq!(series_of_row(&row, &[]), series_hash(&[]));
    }
}
