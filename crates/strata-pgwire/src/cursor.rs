//! SQL-level cursors: `DECLARE name CURSOR FOR query`, `FETCH`, `CLOSE`.
//!
//! Drivers read large results in chunks this way (psycopg's server-side cursors, for one), so a
//! cursor keeps its query's record-batch stream open and each `FETCH n` pulls only the rows it
//! returns. Cursors belong to one connection and are forward-only. Like Postgres, a cursor
//! without `WITH HOLD` lives until the end of its transaction block; any cursor ends at `CLOSE`
//! or when the connection closes. The query's memory limit and deadline keep applying while
//! the cursor is open, so an abandoned cursor cannot pin resources past the query timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{FetchDirection, Ident, Value};
use futures::StreamExt;
use pgwire::error::PgWireError;
use strata_query::QueryError;
use tokio::sync::watch;

use crate::cancel::cancelled;
use crate::errors::{
    cancelled as cancelled_error, pg_error, query_error, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR,
};

/// Open cursors per connection; each holds a running query.
pub const MAX_CURSORS: usize = 64;

pub const DUPLICATE_CURSOR: &str = "42P03";
pub const INVALID_CURSOR_NAME: &str = "34000";
pub const NO_ACTIVE_TRANSACTION: &str = "25P01";
pub const TOO_MANY_CURSORS: &str = "54000";

/// The key of a cursor name: unquoted identifiers fold to lower case, as in Postgres.
pub fn cursor_key(name: &Ident) -> String {
    if name.quote_style.is_some() {
        name.value.clone()
    } else {
        name.value.to_lowercase()
    }
}

/// How many rows a `FETCH` asks for: `None` is all the remaining rows. Only forward fetches
/// exist, since results are streamed and never kept.
pub fn fetch_count(direction: &FetchDirection) -> Result<Option<u64>, PgWireError> {
    let count = |value: &Value| -> Result<u64, PgWireError> {
        match value {
            Value::Number(text, _) => text.parse::<u64>().map_err(|_| {
                pg_error(
                    FEATURE_NOT_SUPPORTED,
                    format!("FETCH count {text} is not supported; use a non-negative integer"),
                )
            }),
            other => Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                format!("FETCH count {other} is not supported; use an integer literal"),
            )),
        }
    };
    match direction {
        FetchDirection::Next => Ok(Some(1)),
        FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            count(&limit.value).map(Some)
        }
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        other => Err(pg_error(
            FEATURE_NOT_SUPPORTED,
            format!("FETCH {other} is not supported: Strata cursors only move forward"),
        )),
    }
}

/// One open cursor: its result stream and the rows read from it but not yet returned.
pub struct Cursor {
    schema: SchemaRef,
    stream: Option<SendableRecordBatchStream>,
    pending: Option<RecordBatch>,
    hold: bool,
    /// Declared inside the current transaction block (a ROLLBACK closes it even WITH HOLD).
    in_this_transaction: bool,
}

impl Cursor {
    pub fn new(
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        hold: bool,
        in_transaction: bool,
    ) -> Self {
        Cursor {
            schema,
            stream: Some(stream),
            pending: None,
            hold,
            in_this_transaction: in_transaction,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Everything not fetched yet: the batch left over from the last FETCH and the rest of the
    /// stream. The cursor is exhausted afterwards. `FETCH ALL` streams this instead of holding
    /// the whole remainder in memory.
    pub fn take_rest(&mut self) -> (Option<RecordBatch>, Option<SendableRecordBatchStream>) {
        (self.pending.take(), self.stream.take())
    }

    /// The next `count` rows (all remaining ones for `None`) as batches. A cancel request that
    /// arrives while it waits ends the fetch with 57014; a query error ends the cursor.
    pub async fn fetch(
        &mut self,
        count: Option<u64>,
        cancel: &mut watch::Receiver<u64>,
    ) -> Result<Vec<RecordBatch>, PgWireError> {
        let mut wanted = count.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        while wanted > 0 {
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => {
                    let Some(stream) = self.stream.as_mut() else {
                        break;
                    };
                    let next = tokio::select! {
                        biased;
                        _ = cancelled(cancel) => return Err(cancelled_error()),
                        next = stream.next() => next,
                    };
                    match next {
                        Some(Ok(batch)) => batch,
                        Some(Err(error)) => {
                            self.stream = None;
                            return Err(query_error(QueryError::from(error)));
                        }
                        None => {
                            // Drop the finished plan now rather than at CLOSE.
                            self.stream = None;
                            break;
                        }
                    }
                }
            };
            let rows = batch.num_rows() as u64;
            if rows <= wanted {
                wanted -= rows;
                if rows > 0 {
                    out.push(batch);
                }
            } else {
                // `wanted < rows <= usize::MAX`, so both conversions are exact.
                let take = usize::try_from(wanted)
                    .map_err(|_| pg_error(INTERNAL_ERROR, "fetch size overflow"))?;
                out.push(batch.slice(0, take));
                self.pending = Some(batch.slice(take, batch.num_rows() - take));
                wanted = 0;
            }
        }
        Ok(out)
    }
}

/// One open cursor, locked while a FETCH reads it.
type SharedCursor = Arc<tokio::sync::Mutex<Cursor>>;

/// The open cursors of one connection, by name.
#[derive(Default)]
pub struct Cursors {
    open: Mutex<HashMap<String, SharedCursor>>,
}

impl Cursors {
    fn map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, SharedCursor>>, PgWireError> {
        self.open
            .lock()
            .map_err(|_| pg_error(INTERNAL_ERROR, "cursor registry unavailable"))
    }

    pub fn declare(&self, name: String, cursor: Cursor) -> Result<(), PgWireError> {
        let mut map = self.map()?;
        if map.contains_key(&name) {
            return Err(pg_error(
                DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        if map.len() >= MAX_CURSORS {
            return Err(pg_error(
                TOO_MANY_CURSORS,
                format!("too many open cursors (at most {MAX_CURSORS}); CLOSE some first"),
            ));
        }
        map.insert(name, Arc::new(tokio::sync::Mutex::new(cursor)));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<SharedCursor, PgWireError> {
        self.map()?.get(name).cloned().ok_or_else(|| {
            pg_error(
                INVALID_CURSOR_NAME,
                format!("cursor \"{name}\" does not exist"),
            )
        })
    }

    /// The result schema of an open cursor, for describing a `FETCH` before it runs.
    pub async fn schema(&self, name: &str) -> Result<SchemaRef, PgWireError> {
        let cursor = self.get(name)?;
        let schema = cursor.lock().await.schema().clone();
        Ok(schema)
    }

    pub fn close(&self, name: &str) -> Result<(), PgWireError> {
        match self.map()?.remove(name) {
            Some(_) => Ok(()),
            None => Err(pg_error(
                INVALID_CURSOR_NAME,
                format!("cursor \"{name}\" does not exist"),
            )),
        }
    }

    /// Closes every cursor; returns their names.
    pub fn close_all(&self) -> Vec<String> {
        match self.open.lock() {
            Ok(mut map) => map.drain().map(|(name, _)| name).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// At COMMIT: cursors without `WITH HOLD` end; held ones outlive the transaction.
    /// At ROLLBACK: held cursors declared in the rolled-back transaction end too.
    /// Returns the names of the closed cursors.
    pub fn end_transaction(&self, committed: bool) -> Vec<String> {
        let Ok(mut map) = self.open.lock() else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        map.retain(|name, cursor| {
            // A cursor in use by a FETCH right now is kept; the statement order on one
            // connection makes that impossible in practice.
            let Ok(mut cursor) = cursor.try_lock() else {
                return true;
            };
            let keep = cursor.hold && (committed || !cursor.in_this_transaction);
            if keep {
                cursor.in_this_transaction = false;
            } else {
                closed.push(name.clone());
            }
            keep
        });
        closed
    }

    pub fn len(&self) -> usize {
        self.open.lock().map(|map| map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn cursor(batches: Vec<Vec<i64>>, hold: bool, in_transaction: bool) -> Cursor {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batches: Vec<_> = batches
            .into_iter()
            .map(|values| {
                let column: ArrayRef = Arc::new(Int64Array::from(values));
                Ok(RecordBatch::try_new(schema.clone(), vec![column]).unwrap())
            })
            .collect();
        let stream = RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(batches));
        Cursor::new(schema, Box::pin(stream), hold, in_transaction)
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn fetch_slices_batches_and_keeps_the_rest() {
        let mut c = cursor(vec![vec![1, 2, 3], vec![], vec![4, 5]], false, true);
        let signal = watch::Sender::new(0u64);
        let mut cancel = signal.subscribe();
        assert_eq!(
            values(&c.fetch(Some(2), &mut cancel).await.unwrap()),
            [1, 2]
        );
        assert_eq!(
            values(&c.fetch(Some(2), &mut cancel).await.unwrap()),
            [3, 4]
        );
        assert_eq!(
            values(&c.fetch(Some(0), &mut cancel).await.unwrap()),
            [0i64; 0]
        );
        assert_eq!(values(&c.fetch(None, &mut cancel).await.unwrap()), [5]);
        assert!(c.fetch(Some(5), &mut cancel).await.unwrap().is_empty());
        assert!(c.stream.is_none(), "a drained cursor drops its plan");

        let mut c = cursor(vec![vec![1, 2, 3], vec![4]], false, true);
        assert_eq!(values(&c.fetch(Some(1), &mut cancel).await.unwrap()), [1]);
        let (pending, rest) = c.take_rest();
        assert_eq!(values(&[pending.unwrap()]), [2, 3]);
        let rest: Vec<_> = rest.unwrap().map(|b| b.unwrap()).collect().await;
        assert_eq!(values(&rest), [4]);
        assert!(c.fetch(None, &mut cancel).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn transactions_end_cursors_like_postgres() {
        let cursors = Cursors::default();
        cursors
            .declare("plain".into(), cursor(vec![vec![1]], false, true))
            .unwrap();
        cursors
            .declare("held".into(), cursor(vec![vec![1]], true, true))
            .unwrap();
        let duplicate = cursors.declare("held".into(), cursor(vec![], false, true));
        assert!(duplicate.is_err());
        assert_eq!(cursors.end_transaction(true), vec!["plain".to_string()]);
        assert!(cursors.get("held").is_ok());
        // Committed, so a later ROLLBACK keeps it.
        assert!(cursors.end_transaction(false).is_empty());
        cursors
            .declare("held2".into(), cursor(vec![], true, true))
            .unwrap();
        assert_eq!(cursors.end_transaction(false), vec!["held2".to_string()]);
        assert!(cursors.close("nope").is_err());
        cursors.close("held").unwrap();
        assert!(cursors.is_empty());
        for i in 0..MAX_CURSORS {
            cursors
                .declare(format!("c{i}"), cursor(vec![], true, false))
                .unwrap();
        }
        assert!(cursors
            .declare("one_more".into(), cursor(vec![], true, false))
            .is_err());
        assert_eq!(cursors.close_all().len(), MAX_CURSORS);
    }

    #[test]
    fn fetch_forms_and_names() {
        let parse = |sql: &str| {
            PostgresCompatibilityParser::new()
                .parse(sql)
                .unwrap()
                .remove(0)
        };
        let count = |sql: &str| match parse(sql) {
            Statement::Fetch { direction, .. } => fetch_count(&direction),
            other => panic!("{other:?}"),
        };
        assert_eq!(count("FETCH FORWARD 100 FROM \"c1\"").unwrap(), Some(100));
        assert_eq!(count("FETCH 3 IN c").unwrap(), Some(3));
        assert_eq!(count("FETCH NEXT FROM c").unwrap(), Some(1));
        assert_eq!(count("FETCH ALL FROM c").unwrap(), None);
        assert_eq!(count("FETCH FORWARD ALL FROM c").unwrap(), None);
        assert!(count("FETCH BACKWARD 1 FROM c").is_err());
        assert!(count("FETCH PRIOR FROM c").is_err());
        match parse("FETCH 1 FROM \"MiXed\"") {
            Statement::Fetch { name, .. } => assert_eq!(cursor_key(&name), "MiXed"),
            other => panic!("{other:?}"),
        }
        match parse("FETCH 1 FROM MiXed") {
            Statement::Fetch { name, .. } => assert_eq!(cursor_key(&name), "mixed"),
            other => panic!("{other:?}"),
        }
    }
}
