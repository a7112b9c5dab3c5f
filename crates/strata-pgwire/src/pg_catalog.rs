//! `pg_catalog` for each connection's session, without the memory leak of
//! `datafusion_pg_catalog::setup_pg_catalog`.
//!
//! `setup_pg_catalog` gives the `pg_catalog` schema a strong reference to the session's catalog
//! list, and the list holds the catalog that holds that schema: a reference cycle, so no
//! session (its tables, functions, memory pool) was ever freed. It also decoded about 5 MB of
//! static Postgres catalog tables for every login. Here the static tables are decoded once per
//! process and the schema reaches the catalog list through a weak reference.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProviderList;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use datafusion_pg_catalog::pg_catalog::{
    self as pg, array_bounds_udf, format_type, has_privilege_udf, pg_get_expr_udf, quote_ident_udf,
    PgCatalogSchemaProvider, PgCatalogStaticTables,
};

/// The process-wide part of `pg_catalog`: Postgres's static catalog tables, decoded once.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    static_tables: Arc<PgCatalogStaticTables>,
}

impl PgCatalog {
    pub fn new() -> Result<Self, DataFusionError> {
        Ok(PgCatalog {
            static_tables: Arc::new(PgCatalogStaticTables::try_new()?),
        })
    }

    /// Registers the `pg_catalog` schema in `catalog_name` and the Postgres functions clients
    /// call, as `setup_pg_catalog` (datafusion-pg-catalog 0.19) does.
    pub fn install(&self, ctx: &SessionContext, catalog_name: &str) -> Result<(), DataFusionError> {
        let list = WeakCatalogList(Arc::downgrade(ctx.state().catalog_list()));
        let schema = PgCatalogSchemaProvider::try_new(
            list,
            self.static_tables.clone(),
            EmptyContextProvider,
        )?;
        ctx.catalog(catalog_name)
            .ok_or_else(|| {
                DataFusionError::Configuration(format!("catalog {catalog_name} not found"))
            })?
            .register_schema("pg_catalog", Arc::new(schema))?;
        register_functions(ctx, catalog_name);
        ctx.register_udtf(
            "pg_get_keywords",
            self.static_tables.pg_get_keywords.clone(),
        );
        // Postgres oid-alias type names (`regclass`, ...) in casts.
        let state = ctx.state_ref();
        let existing = state.read().clone();
        *state.write() = SessionStateBuilder::new_from_existing(existing)
            .with_type_planner(Arc::new(PgOidTypePlanner))
            .build();
        CoerceIntArgsToBigInt::widen(ctx);
        Ok(())
    }
}

fn register_functions(ctx: &SessionContext, catalog_name: &str) {
    for privilege in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_any_column_privilege",
    ] {
        ctx.register_udf(has_privilege_udf::create_has_privilege_udf(privilege));
    }
    for udf in [
        pg::create_current_database_udf(catalog_name),
        pg::create_current_schema_udf(),
        pg::create_current_schemas_udf(),
        pg::create_pg_get_userbyid_udf(),
        pg::create_pg_table_is_visible(),
        format_type::create_format_type_udf(),
        pg::create_session_user_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        pg::create_pg_get_partkeydef_udf(),
        pg::create_pg_relation_is_publishable_udf(),
        pg::create_pg_get_statisticsobjdef_columns_udf(),
        pg::create_pg_encoding_to_char_udf(),
        pg::create_pg_backend_pid_udf(),
        pg::create_pg_relation_size_udf(),
        pg::create_pg_total_relation_size_udf(),
        pg::create_pg_stat_get_numscans(),
        pg::create_pg_get_constraintdef(),
        pg::create_pg_get_partition_ancestors_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ] {
        ctx.register_udf(udf);
    }
}

/// The session's catalog list seen through a weak reference (see the module comment). Once the
/// session is gone there is nothing left to list.
#[derive(Debug, Clone)]
struct WeakCatalogList(Weak<dyn CatalogProviderList>);

impl WeakCatalogList {
    fn get(&self) -> Option<Arc<dyn CatalogProviderList>> {
        self.0.upgrade()
    }
}

#[async_trait]
impl CatalogInfo for WeakCatalogList {
    async fn catalog_names(&self) -> Result<Vec<String>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::catalog_names(&list).await,
            None => Ok(Vec::new()),
        }
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::schema_names(&list, catalog).await,
            None => Ok(None),
        }
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> Result<Option<Vec<String>>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_names(&list, catalog, schema).await,
            None => Ok(None),
        }
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_schema(&list, catalog, schema, table).await,
            None => Ok(None),
        }
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_type(&list, catalog, schema, table).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_with_pg_catalog_is_freed() {
        let pg_catalog = PgCatalog::new().unwrap();
        let ctx = SessionContext::new();
        pg_catalog.install(&ctx, "datafusion").unwrap();
        let rows = ctx
            .sql("SELECT count(*) FROM pg_catalog.pg_type")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows[0].num_rows(), 1);
        let list = Arc::downgrade(ctx.state().catalog_list());
        drop(ctx);
        // With setup_pg_catalog the schema kept the list (and the whole session) alive.
        assert!(
            list.upgrade().is_none(),
            "the session's catalog list leaked"
        );
    }

    #[tokio::test]
    async fn the_upstream_setup_leaks_the_session() {
        // Documents why `install` exists: if a new datafusion-pg-catalog stops leaking, this
        // fails and `setup_pg_catalog` can be used again.
        let ctx = SessionContext::new();
        datafusion_pg_catalog::setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider).unwrap();
        let list = Arc::downgrade(ctx.state().catalog_list());
        drop(ctx);
        assert!(list.upgrade().is_some());
    }
}
