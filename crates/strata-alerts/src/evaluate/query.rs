//! Query rules: the rule's SQL run in the tenant's sealed session under the query deadline;
//! each result row is one instance, labelled by every column but `value`.

use datafusion::arrow::record_batch::RecordBatch;
use strata_core::TenantId;
use strata_query::{QueryEngine, TenantSession};

use super::condition::Condition;
use super::{cell_f64, cell_text, Observation};
use crate::error::{invalid, AlertError};

/// The result column holding an instance's value.
pub(crate) const VALUE_COLUMN: &str = "value";

/// Plans the SQL and the condition without running them; errors are 400s with the planner's
/// message.
pub(crate) async fn validate(
    engine: &QueryEngine,
    tenant: TenantId,
    sql: &str,
    condition: Option<&str>,
) -> Result<(), AlertError> {
    let session = session(engine, tenant).await?;
    let statement = TenantSession::parse(sql).map_err(|e| invalid("sql", e))?;
    let described = session
        .describe(statement)
        .await
        .map_err(|e| invalid("sql", e))?;
    if let Some(condition) = condition {
        if described.schema.index_of(VALUE_COLUMN).is_err() {
            return Err(invalid(
                "sql",
                "a rule with a condition needs a result column named `value`",
            ));
        }
        Condition::compile(condition, described.schema).map_err(|e| invalid("condition", e))?;
    }
    Ok(())
}

/// Runs the rule once. `Err` is the message shown as the rule's last error.
pub(crate) async fn run(
    engine: &QueryEngine,
    tenant: TenantId,
    sql: &str,
    condition: Option<&str>,
) -> Result<Vec<Observation>, String> {
    let session = session(engine, tenant).await.map_err(|e| e.to_string())?;
    let result = session.execute(sql).await.map_err(|e| e.to_string())?;
    let schema = result.schema.clone();
    let batches = result.collect().await.map_err(|e| e.to_string())?;
    let compiled = match condition {
        Some(c) => Some(Condition::compile(c, schema.clone())?),
        None => None,
    };
    let mut observations = Vec::new();
    for batch in &batches {
        observe_batch(batch, compiled.as_ref(), &mut observations)?;
    }
    Ok(observations)
}

fn observe_batch(
    batch: &RecordBatch,
    condition: Option<&Condition>,
    out: &mut Vec<Observation>,
) -> Result<(), String> {
    let schema = batch.schema();
    let value_at = schema.index_of(VALUE_COLUMN).ok();
    let active = match condition {
        Some(c) => c.evaluate(batch)?,
        None => vec![true; batch.num_rows()],
    };
    for (row, active) in active.into_iter().enumerate() {
        let mut labels = crate::labels::Labels::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if Some(i) != value_at {
                labels.insert(field.name().clone(), cell_text(batch.column(i), row));
            }
        }
        let value = value_at.and_then(|i| cell_f64(batch.column(i), row));
        out.push(Observation {
            labels,
            active,
            value,
        });
    }
    Ok(())
}

async fn session(engine: &QueryEngine, tenant: TenantId) -> Result<TenantSession, AlertError> {
    engine
        .session(tenant)
        .await
        .map_err(|e| AlertError::Internal(format!("could not open a query session: {e}")))
}
