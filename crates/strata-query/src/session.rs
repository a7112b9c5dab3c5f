//! One tenant's SQL session, the statement API both front doors call: a statement is parsed once
//! ([`TenantSession::parse`]), then described (its parameter and result types, for the Postgres
//! extended protocol) or executed. Both go through the same checks (sandbox, alias rewrite and
//! case-insensitive names, read-only plan, result width) and run on the query runtime under the
//! session's deadline.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::QueryError;
use crate::limits;
use crate::meter::QueryMeter;
use crate::result_stream::{AbortOnDrop, DeadlineStream, Event, ReceivedStream};
use crate::rewrite::AliasResolver;
use crate::rollup_table::{PlannedRollup, RollupRouting, RoutableRollup};
use crate::runtime::QueryRuntime;
use crate::sandbox;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;

/// Batches buffered between the query task and the reader: enough to overlap encoding with
/// execution, few enough that a slow reader holds little memory.
const BATCHES_IN_FLIGHT: usize = 2;

/// Most positional parameters (`$1..$n`) a statement may use: the Postgres protocol counts
/// them in 16 bits, and a larger `$n` would size the described type list from input.
pub const MAX_PARAMETERS: usize = u16::MAX as usize;

/// One tenant's SQL session.
pub struct TenantSession {
    planner: Planner,
    timeout: Duration,
    runtime: Option<QueryRuntime>,
    /// Which door's statements these are, for the query metrics.
    door: &'static str,
}

/// What a session needs to plan a statement, cheap to clone into the query task. The resolver
/// is built from the same schema snapshot as the session's tables, so describing and executing
/// always agree.
#[derive(Clone)]
pub(crate) struct Planner {
    pub(crate) ctx: SessionContext,
    pub(crate) resolver: Arc<AliasResolver>,
    /// Where failed names are counted; `None` for sessions nobody learns from.
    pub(crate) usage: Option<crate::usage::SessionUsage>,
    /// Rollups this session's queries may be answered from; `None` when there are none, or for
    /// sessions that must read raw rows (live queries, rollup maintenance).
    pub(crate) routing: Option<Routing>,
}

/// What routing a session's queries to rollups needs.
#[derive(Clone)]
pub(crate) struct Routing {
    pub(crate) tenant: strata_core::TenantId,
    pub(crate) router: Arc<dyn RollupRouting>,
    pub(crate) rollups: Vec<RoutableRollup>,
}

/// A running query: its schema and the stream of its batches. Stream errors convert to
/// [`QueryError`] with `QueryError::from`.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
}

impl QueryResult {
    /// Reads the whole result.
    pub async fn collect(
        self,
    ) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, QueryError> {
        use futures::TryStreamExt;
        Ok(self.stream.try_collect().await?)
    }
}

/// What describing a statement learns without running it.
#[derive(Debug, Clone)]
pub struct Described {
    /// The types of `$1..$n` in order; `None` where planning could not infer one.
    pub parameter_types: Vec<Option<DataType>>,
    pub schema: SchemaRef,
}

/// What the query task starts from: text from the HTTP door (parsed on the query runtime's big
/// stacks), or a statement a door already parsed.
enum Input {
    Text(String),
    Parsed(DfStatement),
    /// A plan [`TenantSession::plan`] made, possibly with its scans replaced (live queries).
    Planned(LogicalPlan),
}

impl TenantSession {
    pub(crate) fn new(planner: Planner, timeout: Duration, runtime: Option<QueryRuntime>) -> Self {
        TenantSession {
            planner,
            timeout,
            runtime,
            door: strata_core::telemetry::door::INTERNAL,
        }
    }

    /// Labels this session's statements in the query metrics with the front door (or internal
    /// caller) running them: a `strata_core::telemetry::door` value. Sessions are `internal`
    /// until told otherwise.
    pub fn for_door(mut self, door: &'static str) -> Self {
        self.door = door;
        self
    }

    /// Checks the text limits (size, expression depth, literal size; before the parser sees
    /// the text, issue 24 defect 1) and parses exactly one statement.
    pub fn parse(sql: &str) -> Result<DfStatement, QueryError> {
        limits::check_text(sql)?;
        parse_checked(sql)
    }

    /// A statement another parser produced (the Postgres door's), in the form the session plans.
    pub fn statement(statement: Statement) -> DfStatement {
        DfStatement::Statement(Box::new(statement))
    }

    /// Parses and executes one statement: see [`TenantSession::execute_statement`].
    pub async fn execute(&self, sql: &str) -> Result<QueryResult, QueryError> {
        limits::check_text(sql)?;
        self.start(Input::Text(sql.to_owned())).await
    }

    /// Refuses anything but a query (DDL, DML, COPY, SET, ...), rewrites field aliases, plans
    /// and starts executing on the query runtime. The timeout covers planning and the stream;
    /// dropping the result (or the timeout) aborts the query task.
    pub async fn execute_statement(
        &self,
        statement: DfStatement,
    ) -> Result<QueryResult, QueryError> {
        self.start(Input::Parsed(statement)).await
    }

    /// Parses and plans `sql` with every check [`TenantSession::execute`] applies, without
    /// running it (not yet optimized: scans carry no pushed-down filters).
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let statement = TenantSession::parse(sql)?;
        let planner = self.planner.clone();
        self.on_runtime(async move { planner.plan(statement).await })
            .await
    }

    /// Executes a plan from [`TenantSession::plan`] under the session's timeout and limits.
    pub async fn execute_plan(&self, plan: LogicalPlan) -> Result<QueryResult, QueryError> {
        self.start(Input::Planned(plan)).await
    }

    /// Plans `statement` with every check [`TenantSession::execute_statement`] applies, to learn
    /// its parameter and result types without running it.
    pub async fn describe(&self, statement: DfStatement) -> Result<Described, QueryError> {
        let planner = self.planner.clone();
        self.on_runtime(async move {
            let plan = planner.plan(statement).await?;
            Ok(Described {
                parameter_types: parameter_types(&plan)?,
                schema: Arc::new(plan.schema().as_arrow().clone()),
            })
        })
        .await
    }

    /// The underlying DataFusion session, only for registering more catalogs in it (the Postgres
    /// door's `pg_catalog`). Statements must go through [`TenantSession::execute_statement`].
    pub fn context(&self) -> &SessionContext {
        &self.planner.ctx
    }

    async fn start(&self, input: Input) -> Result<QueryResult, QueryError> {
        let mut meter = QueryMeter::start(self.door);
        let deadline = Instant::now() + self.timeout;
        let (events, mut received) = mpsc::channel(BATCHES_IN_FLIGHT);
        let task = self.spawn(self.planner.clone().produce(input, events));
        let first = tokio::time::timeout_at(deadline, received.recv()).await;
        let schema = match first {
            Ok(Some(Event::Schema(schema))) => schema,
            failed => {
                meter.fail();
                return Err(self.start_failure(failed));
            }
        };
        let received = ReceivedStream::new(received, task, schema.clone());
        Ok(QueryResult {
            schema: schema.clone(),
            stream: Box::pin(DeadlineStream::new(
                Box::pin(received),
                (deadline, self.timeout),
                schema,
                meter,
            )),
        })
    }

    /// Why a statement produced no schema: the deadline, its own error, or a broken task.
    fn start_failure(
        &self,
        first: Result<Option<Event>, tokio::time::error::Elapsed>,
    ) -> QueryError {
        match first {
            Err(_) => QueryError::Timeout(self.timeout),
            Ok(Some(Event::Failed(error))) => error,
            Ok(_) => QueryError::Internal("the query ended without a result schema".to_string()),
        }
    }

    /// Runs `work` on the query runtime under the session's timeout; a panic in it becomes an
    /// internal error.
    async fn on_runtime<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let (sender, receiver) = oneshot::channel();
        let _task = self.spawn(async move {
            let outcome = AssertUnwindSafe(work).catch_unwind().await;
            let _ = sender.send(outcome.unwrap_or_else(|panic| Err(panicked(panic.as_ref()))));
        });
        match tokio::time::timeout(self.timeout, receiver).await {
            Err(_) => Err(QueryError::Timeout(self.timeout)),
            Ok(Err(_)) => Err(QueryError::Internal(
                "the planning task ended without an answer".to_string(),
            )),
            Ok(Ok(outcome)) => outcome,
        }
    }

    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> AbortOnDrop {
        AbortOnDrop(match &self.runtime {
            Some(runtime) => runtime.spawn(work),
            None => tokio::spawn(work),
        })
    }
}

/// Parses exactly one statement from text whose limits were already checked.
fn parse_checked(sql: &str) -> Result<DfStatement, QueryError> {
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(QueryError::from)?;
    if statements.len() != 1 {
        return Err(QueryError::Sql(format!(
            "expected exactly one statement, got {}",
            statements.len()
        )));
    }
    statements
        .pop_front()
        .ok_or_else(|| QueryError::Sql("empty statement".to_string()))
}

/// The message of a panic goes to the log (it can name internals: paths, offsets), the client
/// gets a generic internal error.
fn panicked(panic: &(dyn std::any::Any + Send)) -> QueryError {
    let message = strata_core::panic_text(panic);
    tracing::error!(panic = %message, "a query panicked");
    QueryError::Internal("the query failed unexpectedly".to_string())
}

/// `$1..$n` in order, as far as planning could infer them.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    let mut numbered: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .filter_map(|(name, ty)| Some((name.strip_prefix('$')?.parse::<usize>().ok()?, ty)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map_or(0, |(n, _)| *n);
    if count > MAX_PARAMETERS {
        return Err(QueryError::Sql(format!(
            "parameter ${count} is beyond the limit of {MAX_PARAMETERS} parameters"
        )));
    }
    let mut types = vec![None; count];
    for (n, ty) in numbered {
        if let Some(slot) = n.checked_sub(1).and_then(|i| types.get_mut(i)) {
            *slot = ty;
        }
    }
    Ok(types)
}

impl Planner {
    /// The query task: plans, then forwards batches until the reader goes away. A panic anywhere
    /// in planning or execution (DataFusion re-raises its workers' panics here) becomes an
    /// internal error for the reader instead of a dropped connection.
    async fn produce(self, input: Input, events: mpsc::Sender<Event>) {
        let outcome = AssertUnwindSafe(self.forward(input, &events))
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(panic) => panicked(panic.as_ref()),
        };
        let _ = events.send(Event::Failed(failure)).await;
    }

    async fn forward(&self, input: Input, events: &mpsc::Sender<Event>) -> Result<(), QueryError> {
        let plan = match input {
            // `execute` checked the text limits before spawning.
            Input::Text(sql) => self.route(self.plan(parse_checked(&sql)?).await?).await?,
            Input::Parsed(statement) => self.route(self.plan(statement).await?).await?,
            Input::Planned(plan) => plan,
        };
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let mut stream = frame.execute_stream().await?;
        if events.send(Event::Schema(stream.schema())).await.is_err() {
            return Ok(());
        }
        while let Some(batch) = stream.next().await {
            let failed = batch.is_err();
            if events.send(Event::Batch(batch)).await.is_err() || failed {
                break;
            }
        }
        Ok(())
    }

    /// The sandbox check, alias rewrite, planning, the read-only check of the plan and the
    /// result-width limit: what both describing and executing a statement go through.
    async fn plan(&self, mut statement: DfStatement) -> Result<LogicalPlan, QueryError> {
        sandbox::check(&statement)?;
        self.rewrite(&mut statement)?;
        let plan = match self.ctx.state().statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(error) => {
                if let Some(usage) = &self.usage {
                    usage.record_failure(&error);
                }
                return Err(error.into());
            }
        };
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                QueryError::Refused(format!(
                    "statement not allowed: {} (Strata SQL is read-only)",
                    crate::error::clean_message(&e.strip_backtrace())
                ))
            })?;
        limits::check_result_width(plan.schema().fields().len())?;
        Ok(plan)
    }

    /// `plan` with what a rollup answers exactly read from it (issue 16's query routing).
    /// A rollup whose SQL no longer plans is skipped: the query still runs over raw data.
    async fn route(&self, plan: LogicalPlan) -> Result<LogicalPlan, QueryError> {
        let Some(routing) = &self.routing else {
            return Ok(plan);
        };
        // Only an aggregate can be routed: every other query skips planning the rollups' SQL
        // (up to 100 per tenant) on its way to execution.
        let aggregates = plan.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_))))?;
        if !aggregates {
            return Ok(plan);
        }
        let mut planned = Vec::new();
        for rollup in &routing.rollups {
            let Ok(statement) = parse_checked(&rollup.sql) else {
                continue;
            };
            let Ok(rollup_plan) = self.plan(statement).await else {
                continue;
            };
            let reference =
                TableReference::partial(crate::rewrite::METRIC_SCHEMA, rollup.name.as_str());
            let Ok(provider) = self.ctx.table_provider(reference.clone()).await else {
                continue;
            };
            let scan =
                LogicalPlanBuilder::scan(reference, provider_as_source(provider), None)?.build()?;
            planned.push(PlannedRollup {
                rollup: rollup.clone(),
                plan: rollup_plan,
                scan,
            });
        }
        routing
            .router
            .route(routing.tenant, plan, planned)
            .await
            .map_err(QueryError::Internal)
    }

    /// Field aliases and unquoted names that match only ignoring case (`rewrite.rs`); a name
    /// matching several that way is a 400 naming them.
    fn rewrite(&self, statement: &mut DfStatement) -> Result<(), QueryError> {
        match statement {
            DfStatement::Statement(inner) => self.resolver.rewrite(inner.as_mut())?,
            DfStatement::Explain(explain) => self.rewrite(explain.statement.as_mut())?,
            _ => {}
        }
        Ok(())
    }
}
