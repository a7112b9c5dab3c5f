//! The maintenance task: one per process, for every tenant's rollups.
//!
//! A cycle (1) reads `settled_seq`, a write sequence below which every row has been published
//! on the stream, (2) lists the rollups and, for a version it has not seen yet (a new version,
//! or every version after a restart), re-reads the source's hot rows above the rollup's
//! watermark, (3) drains the stream, marking the bucket of each row of a source metric dirty,
//! (4) per rollup, recomputes the dirty buckets and one backfill chunk in a session that reads
//! every row committed so far, and (5) commits the buckets with the watermark `settled_seq` in
//! one catalog transaction. A kill -9 anywhere loses only marks above the persisted watermark,
//! and step (2) finds those again at the next start.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use strata_catalog::rollups::{RollupCommit, RollupRow, RollupVersion, VersionBuckets};
use strata_catalog::{CatalogError, TenantSchema};
use strata_cold::retention_floor_ms;
use strata_core::{now_ms, MetricId, TenantId};
use strata_query::rollup_table::decode_schema;
use strata_query::{QueryError, TenantSession};
use strata_storage::ScanRequest;
use strata_write::CommittedBatch;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::chunks::{self, Recomputed};
use super::definition::{Bucketing, Definition};
use super::{fingerprint, frozen, Shared};
use crate::error::StreamingError;

/// A rollup version being maintained: `(rollup id, version)`.
type VersionKey = (i64, i64);

/// What maintenance knows of one version.
struct Known {
    tenant: TenantId,
    source: MetricId,
    bucketing: Bucketing,
    /// Buckets (start ms) whose rows changed since they were last computed.
    dirty: BTreeSet<i64>,
}

pub(crate) struct Maintainer {
    shared: Arc<Shared>,
    events: broadcast::Receiver<Arc<CommittedBatch>>,
    requests: mpsc::Receiver<oneshot::Sender<()>>,
    known: HashMap<VersionKey, Known>,
    /// When each rollup's watermark was last written with nothing else to commit.
    idle_commits: HashMap<i64, Instant>,
    /// When each failing rollup was last tried.
    retries: HashMap<i64, Instant>,
    /// The stream dropped batches for this task since the last drain.
    missed_batches: bool,
}

/// Sessions of one cycle, one per tenant, all reading every row committed before the cycle
/// started working.
struct CycleSessions {
    upto_seq: u64,
    by_tenant: HashMap<TenantId, (TenantSession, Arc<TenantSchema>)>,
}

/// Background maintenance uses at most 1/10 of a core between backfills (1/2 during one).
const IDLE_SHARE_DIVISOR: u32 = 10;

/// How often a rollup with no dirty bucket still records its watermark, so a restart re-reads
/// little.
const IDLE_WATERMARK_INTERVAL_SECS: u64 = 5;

impl Maintainer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        events: broadcast::Receiver<Arc<CommittedBatch>>,
        requests: mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Self {
        Maintainer {
            shared,
            events,
            requests,
            known: HashMap::new(),
            idle_commits: HashMap::new(),
            retries: HashMap::new(),
            missed_batches: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut pause = Duration::ZERO;
        loop {
            if waiting.is_empty() && !pause.is_zero() {
                match self.pause(pause).await {
                    Ok(Some(reply)) => waiting.push(reply),
                    Ok(None) => {}
                    Err(Stopped) => return,
                }
            }
            while let Ok(reply) = self.requests.try_recv() {
                waiting.push(reply);
            }
            let started = Instant::now();
            match self.cycle().await {
                Ok(backfilling) => pause = self.pause_after(started.elapsed(), backfilling),
                Err(Stopped) => return,
            }
            for reply in waiting.drain(..) {
                let _ = reply.send(());
            }
            tokio::task::yield_now().await;
        }
    }

    /// Waits `pause`, or until a caller asks for a cycle (its reply slot), marking batches as
    /// they arrive: a batch waiting in the stream until the next cycle keeps its rows alive
    /// (every batch of a tenant with alert rules or live queries, rollups or not), and they
    /// were then dropped all at once (part 4 of `strata bench alerts`).
    async fn pause(&mut self, pause: Duration) -> Result<Option<oneshot::Sender<()>>, Stopped> {
        let deadline = Instant::now() + pause;
        loop {
            tokio::select! {
                request = self.requests.recv() => return request.map(Some).ok_or(Stopped),
                received = self.events.recv() => match received {
                    Ok(batch) => self.mark(&batch),
                    Err(RecvError::Lagged(missed)) => self.lagged(missed),
                    Err(RecvError::Closed) => return Err(Stopped),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    fn lagged(&mut self, missed: u64) {
        tracing::warn!(
            missed,
            "rollup maintenance fell behind the writes; re-reading the hot tier"
        );
        self.missed_batches = true;
    }

    /// The wait before the next cycle, so background maintenance takes at most a share of a
    /// core: a cycle that took `spent` is followed by [`IDLE_SHARE_DIVISOR`]` - 1` times as long
    /// (at least the configured interval), or by as long while a backfill runs. A read of a
    /// rollup does not wait: its request starts a cycle at once.
    fn pause_after(&self, spent: Duration, backfilling: bool) -> Duration {
        if backfilling {
            return spent;
        }
        let share = spent.saturating_mul(IDLE_SHARE_DIVISOR - 1);
        share.max(self.shared.config.cycle_interval)
    }

    /// One maintenance cycle; `Ok(true)` while a backfill is unfinished.
    async fn cycle(&mut self) -> Result<bool, Stopped> {
        let rows = match self.shared.store.all_rollups().await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "listing rollups for maintenance");
                return Ok(false);
            }
        };
        if rows.is_empty() {
            self.known.clear();
            return self.drain().map(|_| false);
        }
        let settled_seq = self
            .shared
            .stream
            .settled(|| self.shared.hot.last_seq())
            .await;
        self.learn(&rows).await;
        if self.drain()? {
            self.rescan_all(&rows);
        }
        let mut sessions = CycleSessions {
            upto_seq: self.shared.hot.last_seq(),
            by_tenant: HashMap::new(),
        };
        let mut backfilling = false;
        for row in &rows {
            backfilling |= row.pending.is_some() && row.error.is_none();
            if let Err(error) = self.maintain(row, settled_seq, &mut sessions).await {
                self.record_failure(row, error).await;
            }
        }
        Ok(backfilling)
    }

    /// Takes in new versions (and forgets removed ones); each new one re-reads the source's
    /// hot rows above the rollup's watermark.
    async fn learn(&mut self, rows: &[RollupRow]) {
        let live: std::collections::HashSet<VersionKey> = rows
            .iter()
            .flat_map(|row| versions(row).map(|v| (row.id, v.version)))
            .collect();
        self.known.retain(|key, _| live.contains(key));
        for row in rows {
            for version in versions(row) {
                let key = (row.id, version.version);
                if self.known.contains_key(&key) {
                    continue;
                }
                self.shared.ensure_interest(row.tenant);
                match self.definition(row.tenant, &version.sql).await {
                    Ok(definition) => {
                        let mut known = Known {
                            tenant: row.tenant,
                            source: definition.source,
                            bucketing: definition.bucketing,
                            dirty: BTreeSet::new(),
                        };
                        self.rescan(&mut known, row.applied_seq);
                        self.known.insert(key, known);
                    }
                    Err(error) => self.record_failure(row, error).await,
                }
            }
        }
    }

    async fn definition(&self, tenant: TenantId, sql: &str) -> Result<Definition, StreamingError> {
        let session = self.shared.query.session(tenant).await?;
        let schema = self.shared.schemas.schema(tenant).await?;
        Definition::of(&session.plan(sql).await?, &schema)
    }

    /// Marks the buckets of the source's hot rows written after `applied_seq`.
    fn rescan(&self, known: &mut Known, applied_seq: u64) {
        let request = ScanRequest::all(known.tenant, known.source);
        let scans = [
            self.shared.hot.scan(&request),
            self.shared.hot.scan_late(&request),
        ];
        for scan in scans {
            let mut scan = match scan {
                Ok(scan) => scan,
                Err(error) => {
                    tracing::error!(%error, "re-reading a rollup's source");
                    continue;
                }
            };
            while let Some(Ok(row)) = scan.next_raw() {
                if row.values().is_ok_and(|v| v.seq() > applied_seq) {
                    known
                        .dirty
                        .insert(known.bucketing.start_of(row.timestamp_ms()));
                }
            }
        }
    }

    /// After the stream dropped batches: every version re-reads its source.
    fn rescan_all(&mut self, rows: &[RollupRow]) {
        let watermarks: HashMap<i64, u64> = rows.iter().map(|r| (r.id, r.applied_seq)).collect();
        let mut known = std::mem::take(&mut self.known);
        for ((id, _), state) in known.iter_mut() {
            self.rescan(state, watermarks.get(id).copied().unwrap_or(0));
        }
        self.known = known;
    }

    /// Marks the buckets of every received row; `Ok(true)` when batches were dropped since
    /// the last drain.
    fn drain(&mut self) -> Result<bool, Stopped> {
        loop {
            match self.events.try_recv() {
                Ok(batch) => self.mark(&batch),
                Err(TryRecvError::Empty) => return Ok(std::mem::take(&mut self.missed_batches)),
                Err(TryRecvError::Lagged(missed)) => self.lagged(missed),
                Err(TryRecvError::Closed) => return Err(Stopped),
            }
        }
    }

    fn mark(&mut self, batch: &CommittedBatch) {
        for known in self.known.values_mut() {
            if known.tenant != batch.tenant {
                continue;
            }
            for row in batch.rows.iter().filter(|r| r.metric == known.source) {
                known
                    .dirty
                    .insert(known.bucketing.start_of(row.timestamp_ms));
            }
        }
    }

    /// Recomputes one rollup's dirty buckets (and a backfill chunk) and commits them.
    async fn maintain(
        &mut self,
        row: &RollupRow,
        settled_seq: u64,
        sessions: &mut CycleSessions,
    ) -> Result<(), StreamingError> {
        if row.error.is_some() && !self.retry_due(row) {
            return Ok(());
        }
        if self.source_changed(row).await? {
            return self.rebuild(row).await;
        }
        let mut commit = RollupCommit {
            rollup: row.id,
            applied_seq: Some(settled_seq),
            ..RollupCommit::default()
        };
        let mut taken: Vec<(VersionKey, BTreeSet<i64>)> = Vec::new();
        for version in versions(row) {
            let key = (row.id, version.version);
            let Some(known) = self.known.get(&key) else {
                continue;
            };
            let width_ms = known.bucketing.width_ms;
            let maintained = row.maintained().map(|v| v.version) == Some(version.version);
            let ranges = self.ranges_due(row, version, known, &mut commit).await?;
            taken.push((key, known.dirty.clone()));
            if ranges.is_empty() {
                continue;
            }
            let session = sessions.get(&self.shared, row.tenant).await?;
            match recompute(session, version, ranges).await {
                Ok(recomputed) => {
                    let store = self.shared.store.as_ref();
                    commit
                        .versions
                        .push(chunks::stored(store, row.id, width_ms, recomputed).await?);
                }
                Err(error) if maintained => return Err(error),
                // The served version while a new one backfills: it may no longer plan under
                // the source's new definition; queries read it as it is until the new one
                // completes.
                Err(error) => {
                    tracing::debug!(rollup = %row.name, %error, "the served version is frozen until its replacement completes");
                }
            }
        }
        if commit.complete {
            commit.versions.extend(self.frozen_history(row).await?);
        }
        let idle = commit.versions.is_empty() && !commit.complete && row.error.is_none();
        if idle && !self.idle_commit_due(row, settled_seq) {
            return Ok(());
        }
        match self.shared.store.commit_rollup(commit).await {
            Ok(()) => {
                self.forget(taken);
                if row.error.is_some() {
                    self.shared.store.set_rollup_error(row.id, None).await?;
                }
                Ok(())
            }
            // Altered or deleted meanwhile: the next cycle sees the new state.
            Err(CatalogError::NotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The ranges of `version` to recompute this cycle: its dirty buckets at or above the
    /// retention floor (below it the raw rows are gone or going, and recomputing would lose
    /// what the rollup keeps) and outside what its backfill reaches later, plus the next
    /// backfill step, which sets the commit's cursor and completion.
    async fn ranges_due(
        &self,
        row: &RollupRow,
        version: &RollupVersion,
        known: &Known,
        commit: &mut RollupCommit,
    ) -> Result<Vec<(i64, i64)>, StreamingError> {
        let mut dirty = known.dirty.clone();
        if !dirty.is_empty() {
            if let Some(floor_ms) = self.retention_floor_ms(row.tenant, known.source).await? {
                dirty.retain(|bucket| *bucket >= floor_ms);
            }
        }
        let mut chunk = None;
        if let Some((pending, backfill)) = &row.pending {
            if pending.version == version.version {
                // The backfill reaches these buckets later, at a later sequence number.
                dirty.retain(|b| *b < backfill.cursor_ms || *b >= backfill.to_ms);
                chunk = self.next_chunk(known.bucketing, backfill.cursor_ms, backfill.to_ms);
                commit.backfill_cursor_ms = chunk.map(|(_, end)| end);
                commit.complete = chunk.is_none_or(|(_, end)| end >= backfill.to_ms);
            }
        }
        Ok(self.ranges(&dirty, known.bucketing, chunk))
    }

    /// The start of the raw rows retention keeps for `source` (`None`: all of them).
    async fn retention_floor_ms(
        &self,
        tenant: TenantId,
        source: MetricId,
    ) -> Result<Option<i64>, StreamingError> {
        let schema = self.shared.schemas.schema(tenant).await?;
        let days = schema
            .metric_by_id(source)
            .map_or(schema.cold_retention_days, |m| schema.retention_days_of(m));
        Ok(retention_floor_ms(now_ms(), days))
    }

    /// For the commit that completes `row`'s pending version: the served version's buckets
    /// below the retention floor, which raw data can no longer give (see `frozen.rs`).
    async fn frozen_history(
        &self,
        row: &RollupRow,
    ) -> Result<Option<VersionBuckets>, StreamingError> {
        let (Some(old), Some((new, _))) = (&row.served, &row.pending) else {
            return Ok(None);
        };
        let known = |v: &RollupVersion| self.known.get(&(row.id, v.version));
        let (Some(old_known), Some(new_known)) = (known(old), known(new)) else {
            return Ok(None);
        };
        let same_buckets = old_known.bucketing == new_known.bucketing;
        if !same_buckets || old_known.source != new_known.source {
            tracing::warn!(rollup = %row.name, "the new version buckets another metric or another width; buckets older than the raw retention are not carried over");
            return Ok(None);
        }
        let Some(floor_ms) = self
            .retention_floor_ms(row.tenant, new_known.source)
            .await?
        else {
            return Ok(None);
        };
        let store = self.shared.store.as_ref();
        frozen::carried(store, row.id, old, new, floor_ms)
            .await
            .map(Some)
    }

    /// Whether the maintained version was built under another definition of its source.
    async fn source_changed(&self, row: &RollupRow) -> Result<bool, StreamingError> {
        let Some(version) = row.maintained() else {
            return Ok(false);
        };
        let Some(known) = self.known.get(&(row.id, version.version)) else {
            return Ok(false);
        };
        let schema = self.shared.schemas.schema(row.tenant).await?;
        let Some(source) = schema.metric_by_id(known.source) else {
            return Err(StreamingError::InvalidRollup(
                "its source metric was deleted; delete the rollup or change its SQL".into(),
            ));
        };
        Ok(fingerprint(source) != version.source_fingerprint)
    }

    /// Starts a new version of the same SQL under the source's new definition.
    async fn rebuild(&mut self, row: &RollupRow) -> Result<(), StreamingError> {
        let Some(version) = row.maintained() else {
            return Ok(());
        };
        tracing::info!(rollup = %row.name, "the source metric changed; rebuilding the rollup");
        let (next, backfill) = self.shared.prepare(row.tenant, &version.sql).await?;
        match self
            .shared
            .store
            .restart_rollup(row.tenant, &row.name, next, backfill)
            .await
        {
            Ok(_) | Err(CatalogError::NotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The next backfill step `[cursor, end)`, whole buckets, `None` when there is none.
    fn next_chunk(&self, bucketing: Bucketing, cursor_ms: i64, to_ms: i64) -> Option<(i64, i64)> {
        if cursor_ms >= to_ms {
            return None;
        }
        let width = bucketing.width_ms;
        let buckets = (self.shared.config.backfill_chunk_ms + width - 1) / width;
        let end = cursor_ms.saturating_add(buckets.max(1).saturating_mul(width));
        Some((cursor_ms, end.min(to_ms)))
    }

    /// Dirty buckets as `[start, end)` ranges, near ones merged, plus the backfill chunk.
    fn ranges(
        &self,
        dirty: &BTreeSet<i64>,
        bucketing: Bucketing,
        chunk: Option<(i64, i64)>,
    ) -> Vec<(i64, i64)> {
        let width = bucketing.width_ms;
        let gap = self.shared.config.merge_gap_buckets.saturating_mul(width);
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for bucket in dirty {
            let end = bucket.saturating_add(width);
            match ranges.last_mut() {
                Some(last) if *bucket <= last.1.saturating_add(gap) => last.1 = end,
                _ => ranges.push((*bucket, end)),
            }
        }
        ranges.extend(chunk);
        ranges
    }

    fn forget(&mut self, taken: Vec<(VersionKey, BTreeSet<i64>)>) {
        for (key, done) in taken {
            if let Some(known) = self.known.get_mut(&key) {
                known.dirty.retain(|bucket| !done.contains(bucket));
            }
        }
    }

    fn idle_commit_due(&mut self, row: &RollupRow, settled_seq: u64) -> bool {
        if settled_seq <= row.applied_seq {
            return false;
        }
        let now = Instant::now();
        let last = self.idle_commits.entry(row.id).or_insert(now);
        let due = now.duration_since(*last).as_secs() >= IDLE_WATERMARK_INTERVAL_SECS;
        if due {
            *last = now;
        }
        due
    }

    /// A failing rollup is retried every so often, not every cycle.
    fn retry_due(&mut self, row: &RollupRow) -> bool {
        let now = Instant::now();
        let last = self.retries.entry(row.id).or_insert(now);
        let due = now.duration_since(*last).as_secs() >= IDLE_WATERMARK_INTERVAL_SECS;
        if due {
            *last = now;
        }
        due
    }

    async fn record_failure(&mut self, row: &RollupRow, error: StreamingError) {
        if let StreamingError::SourceChanged(_) = error {
            if let Err(error) = self.rebuild(row).await {
                tracing::error!(rollup = %row.name, %error, "rebuilding a rollup");
            }
            return;
        }
        let reason = error.to_string();
        tracing::warn!(rollup = %row.name, reason, "rollup maintenance failed");
        if row.error.as_deref() != Some(reason.as_str()) {
            if let Err(error) = self
                .shared
                .store
                .set_rollup_error(row.id, Some(reason))
                .await
            {
                tracing::error!(%error, "recording a rollup's failure");
            }
        }
    }
}

/// The stream closed: the process is shutting down.
struct Stopped;

/// The versions of a rollup that are maintained: the served one and the pending one.
fn versions(row: &RollupRow) -> impl Iterator<Item = &RollupVersion> {
    row.served
        .iter()
        .chain(row.pending.as_ref().map(|(version, _)| version))
}

impl CycleSessions {
    async fn get(
        &mut self,
        shared: &Shared,
        tenant: TenantId,
    ) -> Result<&(TenantSession, Arc<TenantSchema>), StreamingError> {
        if !self.by_tenant.contains_key(&tenant) {
            let session = shared
                .query
                .session_upto(tenant, Some(self.upto_seq))
                .await?
                .for_door(strata_core::telemetry::door::ROLLUPS);
            let schema = shared.schemas.schema(tenant).await?;
            self.by_tenant.insert(tenant, (session, schema));
        }
        self.by_tenant
            .get(&tenant)
            .ok_or_else(|| StreamingError::Internal("a cycle session vanished".into()))
    }
}

/// The buckets of `ranges`, recomputed by the version's SQL over raw rows.
async fn recompute(
    (session, schema): &(TenantSession, Arc<TenantSchema>),
    version: &RollupVersion,
    ranges: Vec<(i64, i64)>,
) -> Result<Recomputed, StreamingError> {
    let plan = session.plan(&version.sql).await?;
    let definition = Definition::of(&plan, schema)?;
    let mut part = Recomputed {
        version: version.version,
        schema: decode_schema(&version.schema)?,
        buckets: Vec::new(),
        ranges,
    };
    for &(start_ms, end_ms) in &part.ranges {
        let restricted = definition.over_range(&plan, start_ms, end_ms)?;
        let batches: Vec<RecordBatch> = session
            .execute_plan(restricted)
            .await?
            .stream
            .try_collect()
            .await
            .map_err(QueryError::from)?;
        part.buckets
            .extend(definition.split(&part.schema, &batches)?);
    }
    Ok(part)
}
