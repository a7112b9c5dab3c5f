//! [`Writer::write`]: one request's events from body to durable rows, in named steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use strata_core::now_ms;

use rustc_hash::FxHashMap;
use strata_catalog::{
    CatalogError, DynCatalog, IncomingNames, Metric, ProfileStore, SchemaChange, SchemaRegistry,
    SettingsStore, TenantSchema, TenantSettings,
};
use strata_core::{Limits, MetricId, NameId, TenantId, Value};
use strata_ingest::{
    content_hash, metric_name, normalize, split_body, BodyFormat, EventObject, MetricKeyConfig,
    MetricProfile, NormalizedEvent, ProfileAccumulator, StatsAccumulator, TimestampConfig,
};
use strata_storage::{ErrorRecord, HotEvent, HotStore, HotWrite};

use crate::error_log::{cap, error_records};
use crate::names::{admit_names, register_new_names};
use crate::series::{series_name_ids, series_of_row};
use crate::stream::{CommittedBatch, EventStream};
use crate::{Rejection, WriteError, WriteOutcome};

/// One decoded request: whose events, in which body format.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub tenant: TenantId,
    pub body: &'a [u8],
    pub format: BodyFormat,
    /// The metric every event belongs to unless it names one (`?metric=` over HTTP).
    pub metric: Option<&'a str>,
    /// `(field, value)` pairs every event carries unless it sends the field itself: an MQTT
    /// topic's placeholders (issue 19). Empty for the other doors.
    pub implied_fields: &'a [(String, String)],
    /// The front door it came through, for the ingest metrics: a `strata_core::telemetry::door`
    /// value.
    pub door: &'static str,
}

/// The write path. One per process, shared by every front door.
pub struct Writer {
    catalog: WriterCatalog,
    hot: Arc<HotStore>,
    limits: Limits,
    stats: Mutex<StatsAccumulator>,
    /// `None` when profiling is off (`strata serve --profiling off`).
    profiles: Option<Mutex<ProfileAccumulator>>,
    stream: EventStream,
}

/// What one request observed of its events, merged into the writer's shared accumulators only
/// once the events are durable.
struct Observed {
    stats: StatsAccumulator,
    profiles: Option<ProfileAccumulator>,
}

/// An event whose metric name is known, not yet resolved to a metric.
struct Named<'b> {
    index: usize,
    raw: &'b [u8],
    metric: String,
    metric_key: Option<String>,
    object: EventObject<'b>,
    /// The format's series names (line protocol tags), for a metric this write creates.
    series_keys: Vec<std::borrow::Cow<'b, str>>,
}

/// Normalized events of one metric, each with its raw bytes for the error log.
type ByMetric<'b> = BTreeMap<MetricId, (Arc<Metric>, Vec<(NormalizedEvent<'b>, &'b [u8])>)>;

/// What a rejected event says when its metric could not be created: the catalog's own words,
/// except for internal failures, which are logged and not shown to the client.
fn metric_failure_reason(err: CatalogError) -> String {
    match err {
        CatalogError::NotFound(m) | CatalogError::Conflict(m) | CatalogError::Invalid(m) => m,
        CatalogError::Internal(m) => {
            tracing::error!("catalog failure creating a metric: {m}");
            "internal catalog error; see the server log".to_string()
        }
    }
}

/// Counts a write for `GET /metrics`: what was stored, the bytes received and each rejection by
/// its stage. A body that could not be split counts as one `body` rejection; other failures
/// (storage, catalog) reject nothing and answer 5xx, so they are not counted here.
fn record_write(door: &'static str, bytes: usize, result: &Result<WriteOutcome, WriteError>) {
    use strata_core::telemetry::{
        DOOR_LABEL, INGEST_BYTES, INGEST_EVENTS, INGEST_REJECTED, REASON_LABEL,
    };
    metrics::counter!(INGEST_BYTES, DOOR_LABEL => door).increment(bytes as u64);
    match result {
        Ok(outcome) => {
            metrics::counter!(INGEST_EVENTS, DOOR_LABEL => door).increment(outcome.accepted as u64);
            for rejection in &outcome.rejections {
                metrics::counter!(INGEST_REJECTED, DOOR_LABEL => door, REASON_LABEL => rejection.stage)
                    .increment(1);
            }
        }
        Err(WriteError::Body(_)) => {
            metrics::counter!(INGEST_REJECTED, DOOR_LABEL => door, REASON_LABEL => "body")
                .increment(1);
        }
        Err(_) => {}
    }
}

/// The three catalog roles the write path uses, and no others.
#[derive(Clone)]
pub struct WriterCatalog {
    /// Metric resolution and auto-create.
    pub schemas: Arc<dyn SchemaRegistry>,
    /// Timestamp patterns and the other per-tenant ingest settings.
    pub settings: Arc<dyn SettingsStore>,
    /// Incoming-name ids and the unknown-field statistics.
    pub names: Arc<dyn IncomingNames>,
    /// The profiles behind schema suggestions.
    pub profiles: Arc<dyn ProfileStore>,
}

impl From<DynCatalog> for WriterCatalog {
    fn from(catalog: DynCatalog) -> Self {
        WriterCatalog {
            schemas: catalog.clone(),
            settings: catalog.clone(),
            names: catalog.clone(),
            profiles: catalog,
        }
    }
}

impl Writer {
    pub fn new(catalog: impl Into<WriterCatalog>, hot: Arc<HotStore>, limits: Limits) -> Self {
        Writer {
            catalog: catalog.into(),
            stream: EventStream::new(hot.clone(), limits.event_stream_batches),
            hot,
            limits,
            stats: Mutex::new(StatsAccumulator::default()),
            profiles: Some(Mutex::new(ProfileAccumulator::default())),
        }
    }

    /// Turns profiling of incoming values (issue 17's schema suggestions) on or off; on by
    /// default. Off, suggestions see only the unknown-field statistics.
    pub fn with_profiling(mut self, on: bool) -> Self {
        self.profiles = on.then(|| Mutex::new(ProfileAccumulator::default()));
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The committed-event stream, for consumers to subscribe to.
    pub fn events(&self) -> &EventStream {
        &self.stream
    }

    /// Stores a request's events. Returns once the accepted events and the rejections (in the
    /// error log) are durable; nothing is rejected for its schema: unknown metrics are created
    /// and unknown fields stored under their incoming names.
    pub async fn write(&self, request: WriteRequest<'_>) -> Result<WriteOutcome, WriteError> {
        let door = request.door;
        let bytes = request.body.len();
        let result = self.write_events(request).await;
        record_write(door, bytes, &result);
        result
    }

    async fn write_events(&self, request: WriteRequest<'_>) -> Result<WriteOutcome, WriteError> {
        let tenant = request.tenant;
        let events = match split_body(request.body, request.format, &self.limits) {
            Ok(events) => with_implied_fields(events, request.implied_fields),
            Err(err) => {
                let message = err.to_string();
                self.record_unreadable_body(tenant, "parse", &message, request.body)
                    .await;
                return Err(WriteError::Body(message));
            }
        };
        let settings = self.catalog.settings.settings(tenant).await?;
        let key_config = MetricKeyConfig {
            query_metric: request.metric,
            metric_keys: &settings.metric_keys,
        };
        let mut rejections = Vec::new();
        let mut named = Vec::with_capacity(events.len());
        for event in events {
            match self.name_event(event, &key_config) {
                Ok(event) => named.push(event),
                Err(rejection) => rejections.push(rejection),
            }
        }
        let (schema, failures) = self.resolve_metrics(tenant, &named).await?;
        let by_metric = self.normalize_all(named, &schema, &failures, &settings, &mut rejections);
        let mut observed = Observed {
            stats: StatsAccumulator::default(),
            profiles: self
                .profiles
                .as_ref()
                .map(|_| ProfileAccumulator::default()),
        };
        let mut rows = Vec::new();
        for (metric, events) in by_metric.into_values() {
            let metric_rows = self
                .rows_of_metric(tenant, &metric, events, &mut rejections, &mut observed)
                .await?;
            rows.extend(metric_rows);
        }
        rejections.sort_by_key(|r| r.index);
        let accepted = rows.len();
        self.commit(tenant, rows, &rejections).await?;
        self.merge_observed(observed);
        Ok(WriteOutcome {
            accepted,
            rejections,
        })
    }

    fn name_event<'b>(
        &self,
        event: strata_ingest::RawEvent<'b>,
        key_config: &MetricKeyConfig<'_>,
    ) -> Result<Named<'b>, Rejection> {
        let reject = |err: strata_ingest::EventError| Rejection {
            index: event.index,
            stage: err.stage(),
            reason: err.to_string(),
            payload: cap(event.raw, self.limits.error_payload_bytes),
            metric: None,
        };
        let object = match event.parsed {
            Ok(object) => object,
            Err(err) => return Err(reject(err)),
        };
        // A format that names the metric outside the object (line protocol's measurement)
        // takes the `?metric=` path: validated the same way, no key to remove.
        let own_config;
        let key_config = match event.metric.as_deref() {
            Some(name) => {
                own_config = MetricKeyConfig {
                    query_metric: Some(name),
                    metric_keys: &[],
                };
                &own_config
            }
            None => key_config,
        };
        let (metric, metric_key) = match metric_name(&object, key_config) {
            Ok((name, key)) => (name.to_string(), key.map(str::to_string)),
            Err(err) => return Err(reject(err)),
        };
        Ok(Named {
            index: event.index,
            raw: event.raw,
            metric,
            metric_key,
            object,
            series_keys: event.series_keys,
        })
    }

    /// The tenant's schema with every metric the events name, creating the unknown ones, and
    /// why a metric could not be created (its events are rejected with that reason).
    async fn resolve_metrics(
        &self,
        tenant: TenantId,
        named: &[Named<'_>],
    ) -> Result<(Arc<TenantSchema>, HashMap<String, String>), WriteError> {
        let schema = self.catalog.schemas.schema(tenant).await?;
        let mut missing: Vec<&str> = named
            .iter()
            .map(|n| n.metric.as_str())
            .filter(|name| schema.metric(name).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let mut failures = HashMap::new();
        let mut created_any = false;
        for name in missing {
            match self.catalog.schemas.ensure_metric(tenant, name).await {
                Ok(metric) => {
                    created_any = true;
                    self.declare_first_series_keys(tenant, &metric, named).await;
                }
                Err(err) => {
                    failures.insert(name.to_string(), metric_failure_reason(err));
                }
            }
        }
        if !created_any {
            return Ok((schema, failures));
        }
        Ok((self.catalog.schemas.schema(tenant).await?, failures))
    }

    /// A metric a line protocol write creates takes its first line's tags as series keys
    /// (issue 19: InfluxDB's series are measurement + tag set), so device queries seek from
    /// the first row. Best effort: a failure is logged and the write goes on without them.
    async fn declare_first_series_keys(
        &self,
        tenant: TenantId,
        metric: &Metric,
        named: &[Named<'_>],
    ) {
        if !metric.series_keys.is_empty() {
            return;
        }
        let Some(first) = named
            .iter()
            .find(|n| n.metric == metric.name && !n.series_keys.is_empty())
        else {
            return;
        };
        let keys: Vec<String> = first.series_keys.iter().map(|k| k.to_string()).collect();
        let change = SchemaChange::UpdateMetric {
            metric: metric.name.clone(),
            rename_to: None,
            add_aliases: Vec::new(),
            remove_aliases: Vec::new(),
            timestamp_aliases: None,
            timestamp_patterns: None,
            series_keys: Some(keys),
            retention_days: None,
            timestamp_unit: None,
        };
        if let Err(error) = self.catalog.schemas.apply(tenant, change).await {
            tracing::warn!(%tenant, metric = %metric.name, %error, "tags not declared as series keys");
        }
    }

    /// Normalizes each event against its metric's timestamp settings, grouped by metric.
    fn normalize_all<'b>(
        &self,
        named: Vec<Named<'b>>,
        schema: &TenantSchema,
        failures: &HashMap<String, String>,
        settings: &TenantSettings,
        rejections: &mut Vec<Rejection>,
    ) -> ByMetric<'b> {
        let payload_bytes = self.limits.error_payload_bytes;
        let mut by_metric = ByMetric::new();
        // `TenantSchema::metric` scans every metric and alias; a body names a few metrics.
        let mut resolved: FxHashMap<String, Option<&Arc<Metric>>> = FxHashMap::default();
        for event in named {
            let metric = match resolved.get(event.metric.as_str()) {
                Some(metric) => *metric,
                None => {
                    let metric = schema.metric(&event.metric);
                    resolved.insert(event.metric.clone(), metric);
                    metric
                }
            };
            let Some(metric) = metric else {
                let reason = failures
                    .get(&event.metric)
                    .cloned()
                    .unwrap_or_else(|| format!("metric {:?} could not be resolved", event.metric));
                rejections.push(Rejection {
                    index: event.index,
                    stage: "metric",
                    reason,
                    payload: cap(event.raw, payload_bytes),
                    metric: Some(event.metric),
                });
                continue;
            };
            let ts_config = TimestampConfig {
                aliases: &metric.timestamp_aliases,
                unit: metric.timestamp_unit,
                metric_patterns: &metric.timestamp_patterns,
                tenant_patterns: &settings.timestamp_patterns,
            };
            let key = event.metric_key.as_deref();
            match normalize(event.index, event.object, key, &ts_config, &self.limits) {
                Ok(normalized) => by_metric
                    .entry(metric.id)
                    .or_insert_with(|| (metric.clone(), Vec::new()))
                    .1
                    .push((normalized, event.raw)),
                Err(err) => rejections.push(Rejection {
                    index: event.index,
                    stage: err.stage(),
                    reason: err.to_string(),
                    payload: cap(event.raw, payload_bytes),
                    metric: Some(metric.name.clone()),
                }),
            }
        }
        by_metric
    }

    /// Folds one request's statistics and profiles into the shared ones, after its commit.
    fn merge_observed(&self, observed: Observed) {
        if let Ok(mut shared) = self.stats.lock() {
            shared.merge(observed.stats);
        }
        if let (Some(shared), Some(profiles)) = (&self.profiles, observed.profiles) {
            if let Ok(mut shared) = shared.lock() {
                shared.merge(profiles);
            }
        }
    }

    /// The hot rows of one metric's events: names admitted and registered, series and content
    /// hashed, values under name ids. Statistics and profiles go to `observed`, merged only
    /// after the commit.
    async fn rows_of_metric(
        &self,
        tenant: TenantId,
        metric: &Metric,
        events: Vec<(NormalizedEvent<'_>, &[u8])>,
        rejections: &mut Vec<Rejection>,
        observed: &mut Observed,
    ) -> Result<Vec<HotEvent>, WriteError> {
        // Looked up twice for every field of every event. Fx rather than the default SipHash,
        // which was a measurable share of ingest CPU; only names already registered for this
        // metric (or registered just below) are ever in the map, so crafting colliding ones
        // costs a catalog registration each and slows only this tenant's writes to it.
        let known: FxHashMap<&str, NameId> = metric
            .incoming
            .iter()
            .map(|n| (n.name.as_str(), n.id))
            .collect();
        let limit = self.limits.field_names_per_metric;
        let payload_bytes = self.limits.error_payload_bytes;
        let events = admit_names(metric, &known, events, limit, rejections, payload_bytes);
        let new = register_new_names(self.catalog.names.as_ref(), tenant, metric, &events, &known)
            .await?;
        let series_ids = series_name_ids(metric, &known, &new);
        let seen_ms = now_ms();
        let stats = &mut observed.stats;
        // Names of typed fields need no type inferred: their strings are not parsed.
        let typed: rustc_hash::FxHashSet<NameId> = metric
            .fields
            .iter()
            .filter(|field| field.field_type.is_some())
            .flat_map(|field| field.names.iter())
            .filter_map(|name| known.get(name.as_str()).copied())
            .collect();
        let mut profile: Option<&mut MetricProfile> = observed
            .profiles
            .as_mut()
            .map(|profiles| profiles.metric(tenant, metric.id));
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            // The content hash reads the fields by reference; then the values move into the row.
            let hash = content_hash(metric.id, event.timestamp_ms, &event.fields);
            let mut values: Vec<(NameId, Value)> = Vec::with_capacity(event.fields.len());
            for (name, value, kind) in event.fields {
                let id = *known
                    .get(name.as_ref())
                    .or_else(|| new.get(name.as_ref()))
                    .ok_or_else(|| {
                        WriteError::Internal(format!("incoming name {name:?} has no id"))
                    })?;
                stats.observe(tenant, metric.id, id, kind, &value, seen_ms);
                if let Some(profile) = profile.as_deref_mut() {
                    profile.observe_value(id, kind, &value, !typed.contains(&id));
                }
                values.push((id, value));
            }
            values.sort_unstable_by_key(|(id, _)| *id);
            // From the row, by name id, as the compactor computes it: integer compares instead
            // of the name compares that were the ingest workers' largest `memcmp` (issue 14).
            let series = series_of_row(&values, &series_ids);
            if let Some(profile) = profile.as_deref_mut() {
                let names = values.iter().map(|(id, _)| *id);
                profile.observe_event(series, event.timestamp_ms, names);
            }
            rows.push(HotEvent {
                metric: metric.id,
                timestamp_ms: event.timestamp_ms,
                series,
                content_hash: hash,
                values,
            });
        }
        Ok(rows)
    }

    /// Stores the rows and the rejections' error-log records in one durable group commit, then
    /// publishes the rows on the event stream.
    async fn commit(
        &self,
        tenant: TenantId,
        rows: Vec<HotEvent>,
        rejections: &[Rejection],
    ) -> Result<(), WriteError> {
        let errors = error_records(rejections, now_ms());
        if rows.is_empty() && errors.is_empty() {
            return Ok(());
        }
        let _publishing = self.stream.committing().await;
        let write = HotWrite {
            tenant,
            events: rows,
            errors,
        };
        if write.events.is_empty() {
            self.hot.write(write).await?;
            return Ok(());
        }
        // Published by the store's writer thread in commit order (consumers that lag re-read
        // by sequence number, so the order matters), from the rows it stored: no copy. Whether
        // anyone wants them is asked there, after the rows are scannable and `last_seq` is
        // raised: a live query registers interest before it reads its floor, so a row above
        // the floor is always published (asking before the write lost such rows). Unwanted
        // rows come back to be dropped here, off the serial writer thread.
        let stream = self.stream.clone();
        let (unwanted, returned) = std::sync::mpsc::sync_channel(1);
        self.hot
            .write_then(write, move |ack, rows| {
                if stream.wants(tenant) {
                    stream.publish(CommittedBatch {
                        tenant,
                        first_seq: ack.first_seq,
                        rows,
                    });
                } else {
                    let _ = unwanted.send(rows);
                }
            })
            .await?;
        drop(returned.try_recv());
        Ok(())
    }

    /// Records a body that could not be read or split into events. Best effort: the client
    /// gets its 4xx either way, and a failing error log must not turn a 400 into a 500.
    pub async fn record_unreadable_body(
        &self,
        tenant: TenantId,
        stage: &str,
        reason: &str,
        body: &[u8],
    ) {
        let record = ErrorRecord {
            time_ms: now_ms(),
            stage: stage.to_string(),
            reason: reason.to_string(),
            payload: cap(body, self.limits.error_payload_bytes),
            index: None,
            metric: None,
        };
        let write = HotWrite {
            tenant,
            events: Vec::new(),
            errors: vec![record],
        };
        if let Err(err) = self.hot.write(write).await {
            tracing::error!("could not record a rejected body in the error log: {err}");
        }
    }

    /// Writes the accumulated unknown-field statistics to the catalog. Called on an interval
    /// and at shutdown.
    pub async fn flush_stats(&self) {
        let drained = match self.stats.lock() {
            Ok(mut stats) => stats.drain(),
            Err(_) => return,
        };
        for (tenant, deltas) in drained {
            let deltas = deltas.into_iter().map(crate::stats::to_catalog).collect();
            if let Err(err) = self
                .catalog
                .names
                .record_incoming_stats(tenant, deltas)
                .await
            {
                tracing::warn!(tenant = %tenant, "could not record unknown-field statistics: {err}");
            }
        }
        self.flush_profiles().await;
    }

    /// Merges the accumulated profiles into the stored ones. The flusher is the only writer of
    /// profiles, so read, merge and store need no lock around them. A stored profile that does
    /// not decode (written by a newer version, or damaged) is replaced: profiles are evidence,
    /// not data, and rebuild from the next events.
    async fn flush_profiles(&self) {
        let Some(shared) = &self.profiles else { return };
        let drained = match shared.lock() {
            Ok(mut profiles) => profiles.drain(),
            Err(_) => return,
        };
        let store = &self.catalog.profiles;
        for (tenant, metric, delta) in drained {
            let stored = match store.metric_profile(tenant, metric).await {
                Ok(stored) => stored,
                Err(err) => {
                    tracing::warn!(tenant = %tenant, metric = %metric, "could not read a profile: {err}");
                    continue;
                }
            };
            let mut profile = stored
                .and_then(|text| MetricProfile::decode(&text).ok())
                .unwrap_or_default();
            profile.merge(&delta);
            if let Err(err) = store
                .store_metric_profile(tenant, metric, profile.encode())
                .await
            {
                tracing::warn!(tenant = %tenant, metric = %metric, "could not store a profile: {err}");
            }
        }
    }
}

/// Gives every parsed event the request's implied fields it does not send itself.
fn with_implied_fields<'a>(
    mut events: Vec<strata_ingest::RawEvent<'a>>,
    implied_fields: &'a [(String, String)],
) -> Vec<strata_ingest::RawEvent<'a>> {
    if implied_fields.is_empty() {
        return events;
    }
    for event in &mut events {
        if let Ok(object) = &mut event.parsed {
            *object = std::mem::take(object).with_implied_fields(implied_fields);
        }
    }
    events
}
