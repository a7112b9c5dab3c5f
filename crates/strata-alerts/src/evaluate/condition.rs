//! A rule's SQL boolean expression compiled once into a DataFusion physical expression over a
//! known schema, then evaluated on whole batches (never row by row in an interpreter).
//!
//! Compiled in a context with no tables: an expression cannot reach any data but the batch it
//! is given (no subqueries over other tables, let alone another tenant's).

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    expr: Arc<dyn PhysicalExpr>,
}

impl Condition {
    /// Plans `sql` against `schema`; the error is the planner's message.
    pub(crate) fn compile(sql: &str, schema: SchemaRef) -> Result<Condition, String> {
        let ctx = SessionContext::new();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        let logical = ctx
            .parse_sql_expr(sql, &df_schema)
            .map_err(|e| e.to_string())?;
        let expr = ctx
            .create_physical_expr(logical, &df_schema)
            .map_err(|e| e.to_string())?;
        let data_type = expr.data_type(&schema).map_err(|e| e.to_string())?;
        if data_type != datafusion::arrow::datatypes::DataType::Boolean {
            return Err(format!(
                "the condition must be true or false, but it is {data_type}"
            ));
        }
        Ok(Condition { expr })
    }

    /// One boolean per row; a row matches when it is true (NULL does not match).
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<Matches, String> {
        let value = self.expr.evaluate(batch).map_err(|e| e.to_string())?;
        let array = value
            .into_array(batch.num_rows())
            .map_err(|e| e.to_string())?;
        let booleans = array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| "the condition did not evaluate to booleans".to_string())?;
        Ok(Matches(booleans.clone()))
    }

    /// The indices of the schema's columns the expression reads.
    pub(crate) fn columns(&self) -> Vec<usize> {
        collect_columns(&self.expr)
            .into_iter()
            .map(|c| c.index())
            .collect()
    }
}

/// A condition's answer for each row of a batch.
#[derive(Debug, Clone)]
pub(crate) struct Matches(BooleanArray);

impl Matches {
    /// Rows that are true (NULL is not).
    pub(crate) fn count(&self) -> usize {
        self.0.true_count()
    }

    pub(crate) fn at(&self, row: usize) -> bool {
        self.0.is_valid(row) && self.0.value(row)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
