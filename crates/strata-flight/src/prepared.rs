//! Prepared statements: the parsed statement and its bound parameter values, kept in memory
//! under a random handle for the key that created it. Bounded in all ([`MAX_PREPARED`]) and
//! per tenant ([`MAX_PREPARED_PER_TENANT`]); one unused for [`PREPARED_IDLE`] is forgotten
//! (clients that never close theirs cannot fill the server). Another key's handle is not
//! found, exactly like an unknown one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use rand::RngCore;
use tonic::Status;

use crate::auth::Caller;
use crate::errors::bind_status;

/// Prepared statements held at once, all tenants together.
pub const MAX_PREPARED: usize = 10_000;
/// Prepared statements one tenant may hold at once.
pub const MAX_PREPARED_PER_TENANT: usize = 1_000;
/// A prepared statement not used for this long is closed.
pub const PREPARED_IDLE: Duration = Duration::from_secs(60 * 60);

struct Entry {
    caller: Caller,
    statement: DfStatement,
    parameters: Vec<ScalarValue>,
    last_used: Instant,
}

#[derive(Default)]
pub(crate) struct PreparedStatements {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one map operation, so a poisoned map is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found() -> Status {
    Status::not_found("no such prepared statement (closed, expired, or never created)")
}

impl PreparedStatements {
    /// Keeps `statement` for `caller`; returns its handle.
    pub(crate) fn create(
        &self,
        caller: &Caller,
        statement: DfStatement,
    ) -> Result<Vec<u8>, Status> {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        entries.retain(|_, entry| now.duration_since(entry.last_used) < PREPARED_IDLE);
        if entries.len() >= MAX_PREPARED {
            return Err(Status::resource_exhausted(format!(
                "the server holds {MAX_PREPARED} prepared statements; close some"
            )));
        }
        let held = entries
            .values()
            .filter(|entry| entry.caller.tenant == caller.tenant)
            .count();
        if held >= MAX_PREPARED_PER_TENANT {
            return Err(Status::resource_exhausted(format!(
                "this tenant holds {MAX_PREPARED_PER_TENANT} prepared statements; close some"
            )));
        }
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let handle = hex::encode(bytes).into_bytes();
        let entry = Entry {
            caller: caller.clone(),
            statement,
            parameters: Vec::new(),
            last_used: now,
        };
        entries.insert(handle.clone(), entry);
        Ok(handle)
    }

    /// The statement of `handle` with its bound parameters as literals.
    pub(crate) fn bound(&self, caller: &Caller, handle: &[u8]) -> Result<DfStatement, Status> {
        let mut entries = lock(&self.entries);
        let entry = entries
            .get_mut(handle)
            .filter(|entry| entry.caller == *caller)
            .ok_or_else(not_found)?;
        entry.last_used = Instant::now();
        let statement = entry.statement.clone();
        let parameters = entry.parameters.clone();
        drop(entries);
        bind(statement, &parameters)
    }

    /// Replaces the bound parameters of `handle` with the one row of `batches`.
    pub(crate) fn set_parameters(
        &self,
        caller: &Caller,
        handle: &[u8],
        batches: &[RecordBatch],
    ) -> Result<(), Status> {
        let values = one_row(batches)?;
        let mut entries = lock(&self.entries);
        let entry = entries
            .get_mut(handle)
            .filter(|entry| entry.caller == *caller)
            .ok_or_else(not_found)?;
        entry.parameters = values;
        entry.last_used = Instant::now();
        Ok(())
    }

    pub(crate) fn close(&self, caller: &Caller, handle: &[u8]) -> Result<(), Status> {
        let mut entries = lock(&self.entries);
        match entries.get(handle) {
            Some(entry) if entry.caller == *caller => {
                entries.remove(handle);
                Ok(())
            }
            _ => Err(not_found()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

/// `statement` with `$n` replaced by the n-th value.
pub(crate) fn bind(statement: DfStatement, values: &[ScalarValue]) -> Result<DfStatement, Status> {
    match statement {
        DfStatement::Statement(mut inner) => {
            strata_query::params::bind(&mut inner, values).map_err(bind_status)?;
            Ok(DfStatement::Statement(inner))
        }
        other if values.is_empty() => Ok(other),
        _ => Err(Status::invalid_argument(
            "parameters can only be bound to a query",
        )),
    }
}

/// The values of the single row a client bound; a query runs once, so more rows are refused.
fn one_row(batches: &[RecordBatch]) -> Result<Vec<ScalarValue>, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != 1 {
        return Err(Status::invalid_argument(format!(
            "bind exactly one row of parameters to a query ({rows} given)"
        )));
    }
    let Some(batch) = batches.iter().find(|batch| batch.num_rows() == 1) else {
        return Err(Status::invalid_argument("no parameter row"));
    };
    batch
        .columns()
        .iter()
        .map(|column| {
            ScalarValue::try_from_array(column, 0)
                .map_err(|e| Status::invalid_argument(format!("a parameter value: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    use strata_core::TenantId;

    fn caller(tenant: i64, key: &str) -> Caller {
        Caller {
            tenant: TenantId(tenant),
            key_id: key.to_string(),
        }
    }

    fn row(n: i64, text: &str) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![n])),
                Arc::new(StringArray::from(vec![text])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_handle_is_its_creators_only() {
        let prepared = PreparedStatements::default();
        let owner = caller(1, "k1");
        let statement = crate::statement::parse("SELECT $1, $2").unwrap();
        let handle = prepared.create(&owner, statement).unwrap();
        assert!(
            prepared.bound(&owner, &handle).is_err(),
            "unbound parameters"
        );
        prepared
            .set_parameters(&owner, &handle, &[row(7, "it's")])
            .unwrap();
        let bound = prepared.bound(&owner, &handle).unwrap();
        assert_eq!(bound.to_string(), "SELECT 7, 'it''s'");
        for other in [caller(2, "k1"), caller(1, "k2")] {
            assert_eq!(
                prepared.bound(&other, &handle).unwrap_err().code(),
                tonic::Code::NotFound
            );
            assert!(prepared.close(&other, &handle).is_err());
        }
        prepared.close(&owner, &handle).unwrap();
        assert_eq!(prepared.len(), 0);
    }

    #[test]
    fn only_one_parameter_row_binds() {
        let prepared = PreparedStatements::default();
        let owner = caller(1, "k1");
        let handle = prepared
            .create(&owner, crate::statement::parse("SELECT $1").unwrap())
            .unwrap();
        let two = [row(1, "a"), row(2, "b")];
        let refused = prepared.set_parameters(&owner, &handle, &two).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(prepared.set_parameters(&owner, &handle, &[]).is_err());
    }

    #[test]
    fn a_tenant_cannot_hold_more_than_its_share() {
        let prepared = PreparedStatements::default();
        let owner = caller(1, "k1");
        for _ in 0..MAX_PREPARED_PER_TENANT {
            prepared
                .create(&owner, crate::statement::parse("SELECT 1").unwrap())
                .unwrap();
        }
        let refused = prepared
            .create(&owner, crate::statement::parse("SELECT 1").unwrap())
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(prepared
            .create(
                &caller(2, "k"),
                crate::statement::parse("SELECT 1").unwrap()
            )
            .is_ok());
    }
}
