//! One live query's task: follows the committed-event stream until the client goes away, the
//! client falls behind, or an update fails (each ends it with a reason). When the task itself
//! falls behind the stream, it re-reads the rows it missed from the hot tier (a re-run query
//! just runs again), so a burst of writes never makes a live query inexact.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use strata_catalog::TenantSchema;
use strata_core::{MetricId, TenantId};
use strata_format::model::MetricModel;
use strata_format::recombine::RawBatchBuilder;
use strata_query::derived::DerivedColumns;
use strata_query::TenantSession;
use strata_storage::HotEvent;
use strata_write::CommittedBatch;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use super::buckets::Buckets;
use super::plan::{self, Shape};
use super::seen::SeenEvents;
use super::{read_snapshot, Inner, LiveEvent, LiveMode, Slot};

/// A metric's model prepared from one schema snapshot (see [`Live::prepared`]).
pub(crate) struct PreparedModel {
    schema: Arc<TenantSchema>,
    model: MetricModel,
    derived: DerivedColumns,
}

pub(crate) struct Live {
    pub(crate) inner: Arc<Inner>,
    pub(crate) tenant: TenantId,
    pub(crate) sql: String,
    pub(crate) session: TenantSession,
    pub(crate) plan: LogicalPlan,
    pub(crate) shape: Shape,
    /// A grouped query kept incrementally (its shape is then `Rerun`, which it replaces).
    pub(crate) buckets: Option<Buckets>,
    /// Rows at or below this sequence number were committed before the first answer.
    pub(crate) floor_seq: u64,
    pub(crate) min_interval: Duration,
    pub(crate) out: mpsc::Sender<LiveEvent>,
    pub(crate) ended: Arc<Mutex<Option<String>>>,
    /// The tailed metric's model, compiled once per schema snapshot.
    pub(crate) prepared: Mutex<Option<Arc<PreparedModel>>>,
    /// Events already taken in, so a re-send is shown and counted once.
    pub(crate) seen: SeenEvents,
    pub(crate) _slot: Slot,
}

/// Why a live query stops.
enum Stop {
    /// The client went away: nothing to tell.
    Gone,
    Failed(String),
}

impl Live {
    pub(crate) async fn run(mut self, mut events: broadcast::Receiver<Arc<CommittedBatch>>) {
        let mut rerun =
            tokio::time::interval_at(Instant::now() + self.min_interval, self.min_interval);
        rerun.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dirty = false;
        // Every row at or below this was received (or is in the first answer).
        let mut received_seq = self.floor_seq;
        let mut lagged = false;
        let stop = loop {
            let step = tokio::select! {
                received = events.recv() => match received {
                    Ok(batch) => {
                        let caught_up = if std::mem::take(&mut lagged) {
                            self.catch_up(received_seq, batch.first_seq, &mut dirty).await
                        } else {
                            Ok(())
                        };
                        received_seq = received_seq.max(batch.first_seq + batch.rows.len() as u64 - 1);
                        match caught_up {
                            Ok(()) => self.on_batch(&batch, &mut dirty).await,
                            failed => failed,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "a live query fell behind the event stream; re-reading the rows it missed");
                        lagged = true;
                        Ok(())
                    }
                    Err(broadcast::error::RecvError::Closed) => Err(Stop::Failed("the server is shutting down".into())),
                },
                _ = rerun.tick(), if dirty => {
                    dirty = false;
                    self.rerun().await
                }
                _ = self.out.closed() => Err(Stop::Gone),
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        if let Stop::Failed(reason) = stop {
            tracing::debug!(tenant = %self.tenant, reason, "live query ended");
            *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
    }

    async fn on_batch(&mut self, batch: &CommittedBatch, dirty: &mut bool) -> Result<(), Stop> {
        if batch.tenant != self.tenant {
            return Ok(());
        }
        if self.buckets.is_some() {
            return self.update_buckets(batch).await;
        }
        match &self.shape {
            Shape::Rerun { metrics } => {
                *dirty |=
                    metrics.is_empty() || batch.rows.iter().any(|r| metrics.contains(&r.metric));
                Ok(())
            }
            Shape::Tail { .. } => self.tail(batch).await,
        }
    }

    /// After a lag: the rows committed in `(after_seq, before_seq)` that the stream dropped,
    /// re-read from the hot tier chunk by chunk, go through the same updates as a batch.
    async fn catch_up(
        &mut self,
        after_seq: u64,
        before_seq: u64,
        dirty: &mut bool,
    ) -> Result<(), Stop> {
        let metric = match (&self.buckets, &self.shape) {
            (Some(buckets), _) => buckets.metric,
            (None, Shape::Tail { metric, .. }) => *metric,
            (None, Shape::Rerun { .. }) => {
                *dirty = true;
                return Ok(());
            }
        };
        let (mut received, scan) =
            self.inner
                .stream
                .reread_chunks(self.tenant, metric, after_seq, before_seq);
        while let Some(chunk) = received.recv().await {
            let rows: Vec<&HotEvent> = chunk.iter().collect();
            if self.buckets.is_some() {
                self.update_buckets_with(rows).await?;
            } else {
                self.tail_rows(rows).await?;
            }
        }
        let scanned = match scan.await {
            Ok(scanned) => scanned.map_err(|e| e.to_string()),
            Err(panicked) => Err(panicked.to_string()),
        };
        scanned.map(drop).map_err(|error| {
            Stop::Failed(format!(
                "re-reading the rows the live query missed: {error}"
            ))
        })
    }

    /// Merges the batch's new rows of the grouped metric and sends the groups they changed.
    async fn update_buckets(&mut self, batch: &CommittedBatch) -> Result<(), Stop> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let rows = new_rows(batch, buckets.metric, self.floor_seq);
        self.update_buckets_with(rows).await
    }

    async fn update_buckets_with(&mut self, rows: Vec<&HotEvent>) -> Result<(), Stop> {
        let rows = self.seen.first_seen(rows);
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let built = self
            .build_current(buckets.metric, &buckets.partial, &rows)
            .await?;
        let (_, partials) = self
            .run_over(&buckets.partial, &buckets.table, built)
            .await?;
        let Some(buckets) = self.buckets.as_mut() else {
            return Ok(());
        };
        let changed = buckets
            .merge(&partials)
            .map_err(|e| Stop::Failed(e.to_string()))?;
        match changed {
            Some(batch) => self.send(LiveEvent::Update {
                schema: batch.schema(),
                batches: vec![batch],
            }),
            None => Ok(()),
        }
    }

    /// The rows as a batch of the columns `plan` scans, built with the metric's current model:
    /// a new incoming name or alias of a scanned column is read, a new column (a field a
    /// device just started sending) is left out, and a scanned column that is gone or changed
    /// type ends the query.
    /// The metric's model with its derived fields and conversions compiled, kept while the
    /// schema snapshot is the same: compiling parses SQL, which every committed batch would
    /// otherwise repeat.
    fn prepared(
        &self,
        current: &Arc<TenantSchema>,
        metric: MetricId,
    ) -> Result<Arc<PreparedModel>, Stop> {
        let mut cached = self.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(prepared) = cached.as_ref() {
            if Arc::ptr_eq(&prepared.schema, current) && prepared.model.id == metric {
                return Ok(prepared.clone());
            }
        }
        let mut model = current
            .metric_by_id(metric)
            .map(|m| MetricModel::from_catalog(m))
            .ok_or_else(|| Stop::Failed("the metric was deleted".into()))?;
        let derived = strata_query::derived::prepare(&mut model);
        let prepared = Arc::new(PreparedModel {
            schema: current.clone(),
            model,
            derived,
        });
        *cached = Some(prepared.clone());
        Ok(prepared)
    }

    async fn build_current(
        &self,
        metric: strata_core::MetricId,
        plan: &LogicalPlan,
        rows: &[&HotEvent],
    ) -> Result<RecordBatch, Stop> {
        let current = self
            .inner
            .schemas
            .schema(self.tenant)
            .await
            .map_err(|e| Stop::Failed(format!("reading the tenant schema: {e}")))?;
        let prepared = self.prepared(&current, metric)?;
        let (model, derived) = (&prepared.model, &prepared.derived);
        let scanned = scanned_schema(plan)
            .ok_or_else(|| Stop::Failed("the live query's plan scans no table".into()))?;
        let built = build(model, rows).map_err(Stop::Failed)?;
        let built = derived
            .compute(built)
            .map_err(|e| Stop::Failed(format!("computing derived fields: {e}")))?;
        conform(&built, &scanned).map_err(Stop::Failed)
    }

    /// Runs the plan over the batch's new rows of the tailed metric and sends what it returns.
    async fn tail(&mut self, batch: &CommittedBatch) -> Result<(), Stop> {
        let Shape::Tail { metric, .. } = &self.shape else {
            return Ok(());
        };
        let rows = new_rows(batch, *metric, self.floor_seq);
        self.tail_rows(rows).await
    }

    async fn tail_rows(&mut self, rows: Vec<&HotEvent>) -> Result<(), Stop> {
        let rows = self.seen.first_seen(rows);
        if rows.is_empty() {
            return Ok(());
        }
        let Shape::Tail { table, metric } = &self.shape else {
            return Ok(());
        };
        let built = self.build_current(*metric, &self.plan, &rows).await?;
        let (schema, batches) = self.run_over(&self.plan, table, built).await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        self.send(LiveEvent::Rows { schema, batches })
    }

    async fn rerun(&mut self) -> Result<(), Stop> {
        let session = self.new_session().await?;
        let result = session
            .execute(&self.sql)
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        let snapshot = read_snapshot(LiveMode::Rerun, result, self.inner.config.snapshot_rows_max)
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        self.send(snapshot)
    }

    /// Runs `plan` with its scan of `table` reading `rows`: its schema and batches.
    async fn run_over(
        &self,
        plan: &LogicalPlan,
        table: &datafusion::common::TableReference,
        rows: RecordBatch,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Stop> {
        let plan = plan::over_rows(plan, table, rows)
            .map_err(|e| Stop::Failed(format!("could not plan the update: {e}")))?;
        let result = self
            .session
            .execute_plan(plan)
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        let schema = result.schema.clone();
        let batches = result
            .collect()
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        Ok((schema, batches))
    }

    /// A session over the tenant's current schema.
    async fn new_session(&self) -> Result<TenantSession, Stop> {
        self.inner
            .query
            .session(self.tenant)
            .await
            .map(|session| session.for_door(strata_core::telemetry::door::LIVE))
            .map_err(|e| Stop::Failed(e.to_string()))
    }

    /// Queues an event; a client that let its buffer fill is dropped.
    fn send(&self, event: LiveEvent) -> Result<(), Stop> {
        match self.out.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Stop::Failed(format!(
                "the client read too slowly ({} updates waiting); start the live query again",
                self.inner.config.client_buffer_events
            ))),
        }
    }
}

/// The batch's rows of `metric` committed after `floor_seq`.
fn new_rows(
    batch: &CommittedBatch,
    metric: strata_core::MetricId,
    floor_seq: u64,
) -> Vec<&HotEvent> {
    batch
        .rows
        .iter()
        .enumerate()
        .filter(|(i, row)| row.metric == metric && batch.first_seq + *i as u64 > floor_seq)
        .map(|(_, row)| row)
        .collect()
}

/// `batch`'s columns named as `scanned`'s fields, which must be there with the same type.
fn conform(batch: &RecordBatch, scanned: &SchemaRef) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    let columns = scanned
        .fields()
        .iter()
        .map(|field| match schema.index_of(field.name()) {
            Ok(at) if schema.field(at).data_type() == field.data_type() => {
                Ok(batch.column(at).clone())
            }
            _ => Err(format!(
                "column {:?} of the metric was removed or changed type; start the live query again",
                field.name()
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(scanned.clone(), columns).map_err(|e| e.to_string())
}

/// The schema of the (one) table `plan` scans.
fn scanned_schema(plan: &LogicalPlan) -> Option<SchemaRef> {
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            found = Some(scan.source.schema());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

/// The rows as one batch of the metric's SQL shape (its table schema).
fn build(model: &MetricModel, rows: &[&HotEvent]) -> Result<RecordBatch, String> {
    let mut builder = RawBatchBuilder::new(&model.columns, rows.len());
    for row in rows {
        builder.push_borrowed(row.timestamp_ms, &row.values);
    }
    let (batch, _cast_failures) = builder
        .finish(&model.schema(), Some(0), &model.columns)
        .map_err(|e| format!("building the new rows: {e}"))?;
    Ok(batch)
}
