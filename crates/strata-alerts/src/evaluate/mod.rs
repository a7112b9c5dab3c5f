//! Turning data into observations: a query rule's result rows (`query.rs`), a committed batch
//! for event and absence rules (`batch.rs`), and the SQL boolean expressions both compile
//! (`condition.rs`).

pub(crate) mod batch;
pub(crate) mod condition;
pub(crate) mod query;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;

use crate::labels::Labels;

/// What one evaluation saw of one instance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    pub labels: Labels,
    pub active: bool,
    pub value: Option<f64>,
}

/// A cell as label text; NULL is the empty string, as in Prometheus.
pub(crate) fn cell_text(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return String::new();
    }
    array_value_to_string(array, row).unwrap_or_default()
}

/// A numeric cell as a double; anything else (text, NULL) is no value.
pub(crate) fn cell_f64(array: &ArrayRef, row: usize) -> Option<f64> {
    if array.is_null(row) || !array.data_type().is_numeric() {
        return None;
    }
    let cast = cast(&array.slice(row, 1), &DataType::Float64).ok()?;
    let doubles = cast
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float64Array>()?;
    (!doubles.is_null(0)).then(|| doubles.value(0))
}
