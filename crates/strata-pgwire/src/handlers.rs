//! The handlers pgwire calls for one server: startup, simple and extended query (one
//! [`QueryService`]), cancel and errors.

use std::sync::Arc;

use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::api::{ClientInfo, ErrorHandler, RandomPidSecretKeyGenerator};
use pgwire::error::PgWireError;
use strata_catalog::TenantDirectory;
use strata_query::QueryEngine;

use crate::cancel::{CancelRegistry, StrataCancelHandler};
use crate::limits::Sessions;
use crate::pg_catalog::PgCatalog;
use crate::socket::Handlers;
use crate::startup::StrataStartupHandler;
use crate::statement::{Prepared, StrataParser};

pub struct StrataHandlers {
    query: Arc<QueryService>,
    startup: Arc<StrataStartupHandler>,
    cancel: Arc<StrataCancelHandler>,
}

impl StrataHandlers {
    /// `allow_insecure`: accept connections without TLS from other hosts
    /// ([`crate::startup::may_send_password`]). Fails only if the static `pg_catalog` tables do
    /// not decode.
    pub fn new(
        engine: QueryEngine,
        catalog: Arc<dyn TenantDirectory>,
        allow_insecure: bool,
    ) -> Result<Self, datafusion::error::DataFusionError> {
        let registry = Arc::new(CancelRegistry::default());
        Ok(StrataHandlers {
            query: Arc::new(QueryService {
                parser: Arc::new(StrataParser {
                    sql: PostgresCompatibilityParser::new(),
                }),
            }),
            startup: Arc::new(StrataStartupHandler {
                engine,
                catalog,
                registry: registry.clone(),
                keys: RandomPidSecretKeyGenerator::default(),
                allow_insecure,
                sessions: Arc::new(Sessions::default()),
                pg_catalog: PgCatalog::new()?,
            }),
            cancel: Arc::new(StrataCancelHandler { registry }),
        })
    }
}

impl Handlers for StrataHandlers {
    type Statement = Prepared;
    type Startup = StrataStartupHandler;
    type Simple = QueryService;
    type Extended = QueryService;
    type Cancel = StrataCancelHandler;
    type Errors = LoggingErrorHandler;

    fn startup(&self) -> Arc<StrataStartupHandler> {
        self.startup.clone()
    }

    fn simple(&self) -> Arc<QueryService> {
        self.query.clone()
    }

    fn extended(&self) -> Arc<QueryService> {
        self.query.clone()
    }

    fn cancel(&self) -> Arc<StrataCancelHandler> {
        self.cancel.clone()
    }

    fn errors(&self) -> Arc<LoggingErrorHandler> {
        Arc::new(LoggingErrorHandler)
    }
}

pub struct LoggingErrorHandler;

impl ErrorHandler for LoggingErrorHandler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(%error, "Postgres error response");
    }
}

pub struct QueryService {
    pub(crate) parser: Arc<StrataParser>,
}
