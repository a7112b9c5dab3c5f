//! The metadata commands, answered from the tenant session's own `information_schema` through
//! the statement API (so exactly the tables the tenant's SQL sees: its metrics under every
//! name, its system tables, never another tenant's), and `GetSqlInfo` from constants.

use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
    SqlSupportedTransaction,
};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use strata_query::TenantSession;
use tonic::Status;

use crate::errors::query_status;
use crate::statement::{describe, parse};

/// One row of `information_schema.tables`.
struct TableRow {
    catalog: String,
    schema: String,
    name: String,
    kind: String,
}

/// Runs a metadata query and reads its columns as text, row by row.
async fn text_rows(session: &TenantSession, sql: &str) -> Result<Vec<Vec<String>>, Status> {
    let batches = session
        .execute(sql)
        .await
        .map_err(query_status)?
        .collect()
        .await
        .map_err(query_status)?;
    let mut rows = Vec::new();
    for batch in &batches {
        let columns = batch
            .columns()
            .iter()
            .map(|column| cast(column, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(format!("reading metadata: {e}")))?;
        for row in 0..batch.num_rows() {
            let values = columns.iter().map(|column| {
                let text = column.as_string::<i32>();
                if text.is_null(row) {
                    String::new()
                } else {
                    text.value(row).to_string()
                }
            });
            rows.push(values.collect());
        }
    }
    Ok(rows)
}

/// A SQL string literal of client text (quoted by the same code as bound parameters).
fn literal(text: &str) -> Result<String, Status> {
    strata_query::params::literal(&ScalarValue::Utf8(Some(text.to_string())))
        .map(|expr| expr.to_string())
        .map_err(crate::errors::bind_status)
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables a `GetTables` asks for, narrowed in SQL (the builder applies the same filters
/// again), so `include_schema` describes only the tables answered.
async fn tables(
    session: &TenantSession,
    query: &CommandGetTables,
) -> Result<Vec<TableRow>, Status> {
    let mut conditions = Vec::new();
    if let Some(catalog) = &query.catalog {
        conditions.push(format!("table_catalog = {}", literal(catalog)?));
    }
    if let Some(pattern) = &query.db_schema_filter_pattern {
        conditions.push(format!("table_schema LIKE {}", literal(pattern)?));
    }
    if let Some(pattern) = &query.table_name_filter_pattern {
        conditions.push(format!("table_name LIKE {}", literal(pattern)?));
    }
    if !query.table_types.is_empty() {
        let kinds = query
            .table_types
            .iter()
            .map(|kind| literal(kind))
            .collect::<Result<Vec<_>, _>>()?;
        conditions.push(format!("table_type IN ({})", kinds.join(", ")));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT table_catalog, table_schema, table_name, table_type \
         FROM information_schema.tables{filter} ORDER BY 1, 2, 3"
    );
    let rows = text_rows(session, &sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match <[String; 4]>::try_from(row) {
            Ok([catalog, schema, name, kind]) => Some(TableRow {
                catalog,
                schema,
                name,
                kind,
            }),
            Err(_) => None,
        })
        .collect())
}

/// `GetTables`: with `include_schema`, each table's Arrow schema as `SELECT *` describes it.
pub(crate) async fn get_tables(
    session: &TenantSession,
    query: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let rows = tables(session, &query).await?;
    let include_schema = query.include_schema;
    let mut builder = query.into_builder();
    for row in rows {
        let schema = if include_schema {
            let sql = format!(
                "SELECT * FROM {}.{}.{}",
                identifier(&row.catalog),
                identifier(&row.schema),
                identifier(&row.name)
            );
            let described = describe(session, parse(&sql)?).await?;
            described.schema.as_ref().clone()
        } else {
            datafusion::arrow::datatypes::Schema::empty()
        };
        builder
            .append(&row.catalog, &row.schema, &row.name, &row.kind, &schema)
            .map_err(|e| Status::internal(format!("building the table list: {e}")))?;
    }
    builder
        .build()
        .map_err(|e| Status::internal(format!("building the table list: {e}")))
}

/// `GetDbSchemas`: every schema of the session's catalog.
pub(crate) async fn get_schemas(
    session: &TenantSession,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, Status> {
    let sql = "SELECT catalog_name, schema_name FROM information_schema.schemata ORDER BY 1, 2";
    let mut builder = query.into_builder();
    for row in text_rows(session, sql).await? {
        if let [catalog, schema] = row.as_slice() {
            builder.append(catalog, schema);
        }
    }
    builder
        .build()
        .map_err(|e| Status::internal(format!("building the schema list: {e}")))
}

/// `GetCatalogs`: the session's one catalog.
pub(crate) async fn get_catalogs(
    session: &TenantSession,
    query: CommandGetCatalogs,
) -> Result<RecordBatch, Status> {
    let sql = "SELECT DISTINCT catalog_name FROM information_schema.schemata ORDER BY 1";
    let mut builder = query.into_builder();
    for row in text_rows(session, sql).await? {
        if let Some(catalog) = row.first() {
            builder.append(catalog);
        }
    }
    builder
        .build()
        .map_err(|e| Status::internal(format!("building the catalog list: {e}")))
}

/// `GetTableTypes`: the kinds of table the session has.
pub(crate) async fn get_table_types(
    session: &TenantSession,
    query: CommandGetTableTypes,
) -> Result<RecordBatch, Status> {
    let sql = "SELECT DISTINCT table_type FROM information_schema.tables ORDER BY 1";
    let mut builder = query.into_builder();
    for row in text_rows(session, sql).await? {
        if let Some(kind) = row.first() {
            builder.append(kind);
        }
    }
    builder
        .build()
        .map_err(|e| Status::internal(format!("building the table types: {e}")))
}

/// What `GetSqlInfo` answers: who the server is and that it only reads.
pub(crate) fn sql_info() -> Result<SqlInfoData, Status> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Strata");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_VERSION);
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlDdlCatalog, false);
    builder.append(SqlInfo::SqlDdlSchema, false);
    builder.append(SqlInfo::SqlDdlTable, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder
        .build()
        .map_err(|e| Status::internal(format!("building the server information: {e}")))
}

/// The Arrow line this server links (DataFusion 55's), as `GetSqlInfo` reports it.
const ARROW_VERSION: &str = "59";
