//! Test harness: a real SqliteCatalog and a real HotStore in a tempdir.
#![allow(dead_code)]

use std::ops::Deref;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use strata_core::TenantId;
use strata_query::{QueryConfig, QueryEngine, QueryError, TenantSession};
use strata_testkit::Stores;
pub use strata_testkit::{s, T0};

/// The stores (`strata_testkit::Stores`: catalog, hot store, tempdir, `declare`, `write`,
/// `change`) and a query engine over them.
pub struct Harness {
    pub stores: Stores,
    pub engine: QueryEngine,
}

impl Deref for Harness {
    type Target = Stores;

    fn deref(&self) -> &Stores {
        &self.stores
    }
}

pub const HOUR: i64 = strata_core::HOUR_MS;
pub const DAY: i64 = strata_core::DAY_MS;
pub const WEEK: i64 = strata_core::WEEK_MS;

pub async fn harness() -> Harness {
    harness_with(QueryConfig::default()).await
}

pub async fn harness_with(config: QueryConfig) -> Harness {
    let stores = Stores::open().await;
    let engine = QueryEngine::new(stores.catalog.clone(), stores.hot.clone(), config);
    Harness { stores, engine }
}

impl Harness {
    pub async fn tenant(&self, name: &str) -> TenantId {
        self.stores.tenant(name).await.0
    }

    pub async fn session(&self, tenant: TenantId) -> TenantSession {
        self.engine.session(tenant).await.unwrap()
    }
}

pub async fn run(session: &TenantSession, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    session.execute(sql).await?.collect().await
}

/// The result as an aligned text table (what a human would read).
pub async fn table(session: &TenantSession, sql: &str) -> String {
    let batches = run(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The result's cells as text, row by row.
pub async fn rows(session: &TenantSession, sql: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::ArrayFormatter;
    let batches = run(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = Default::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

pub fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}
