//! Query rules: the rule's SQL run in the tenant's sealed session under the query deadline;
//! each result row is one instance, labelled by every column but `value`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::record_batch::RecordBatch;
use strata_catalog::{SchemaRegistry, TenantSchema};
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

/// One query session per tenant for rule evaluations, rebuilt when the catalog hands out a new
/// schema snapshot (any schema change, new incoming names, statistics): building a session (a
/// DataFusion context with every metric registered) takes milliseconds, too much to repeat for
/// a thousand rules a second.
pub(crate) struct Sessions {
    engine: QueryEngine,
    schemas: Arc<dyn SchemaRegistry>,
    cache: Mutex<HashMap<TenantId, CachedSession>>,
}

/// A session and the schema snapshot it was built from.
type CachedSession = (Arc<TenantSchema>, Arc<TenantSession>);

impl Sessions {
    pub(crate) fn new(engine: QueryEngine, schemas: Arc<dyn SchemaRegistry>) -> Sessions {
        Sessions {
            engine,
            schemas,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    async fn get(&self, tenant: TenantId) -> Result<Arc<TenantSession>, String> {
        let snapshot = self
            .schemas
            .schema(tenant)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(session) = self.cached(tenant, &snapshot) {
            return Ok(session);
        }
        let session = session(&self.engine, tenant)
            .await
            .map_err(|e| e.to_string())?;
        let session = Arc::new(session);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert(tenant, (snapshot, session.clone()));
        Ok(session)
    }

    fn cached(&self, tenant: TenantId, snapshot: &Arc<TenantSchema>) -> Option<Arc<TenantSession>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, session) = cache.get(&tenant)?;
        Arc::ptr_eq(at, snapshot).then(|| session.clone())
    }
}

/// Runs the rule once. `Err` is the message shown as the rule's last error.
pub(crate) async fn run(
    sessions: &Sessions,
    tenant: TenantId,
    sql: &str,
    condition: Option<&str>,
) -> Result<Vec<Observation>, String> {
    let session = sessions.get(tenant).await?;
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
        Some(c) => {
            let matches = c.evaluate(batch)?;
            (0..matches.len()).map(|row| matches.at(row)).collect()
        }
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
        .map(|session| session.for_door(strata_core::telemetry::door::ALERTS))
        .map_err(|e| AlertError::Internal(format!("could not open a query session: {e}")))
}
