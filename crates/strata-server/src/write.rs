//! `POST /api/v1/write`: parse, resolve metrics and incoming names through the catalog, store in
//! the hot tier, and answer only after the accepted events (and the rejected ones, in the error
//! log) are durable.
//!
//! Each event is accepted or rejected on its own; only a body that cannot be split into events
//! at all (malformed JSON, too large) is refused whole. Nothing is rejected for its schema:
//! unknown metrics are created, unknown fields are stored under their incoming names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::Uri;
use axum::Json;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use strata_catalog::Metric;
use strata_core::{MetricId, NameId, Role, Value, ERROR_LOG_REQUEST_BYTES};
use strata_ingest::{
    content_hash, metric_name, normalize, series_hash, split_body, BodyFormat, EventError,
    MetricKeyConfig, NormalizedEvent, StatsAccumulator, TimestampConfig,
};
use strata_storage::{ErrorRecord, HotEvent, HotWrite};

use crate::auth::TenantCaller;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    metric: Option<String>,
}

/// One rejected event: its index in the body and why.
struct Rejection {
    index: usize,
    stage: &'static str,
    reason: String,
    payload: String,
    metric: Option<String>,
}

fn is_ndjson(content_type: Option<&str>) -> bool {
    content_type
        .map(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/x-ndjson")
                || ct.starts_with("application/ndjson")
                || ct.starts_with("application/jsonl")
                || ct.starts_with("application/x-jsonlines")
        })
        .unwrap_or(false)
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
fn cap(text: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(text);
    if text.len() <= limit {
        return text.into_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes in all]", &text[..end], text.len())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub async fn write(
    State(state): State<AppState>,
    caller: TenantCaller,
    uri: Uri,
    request: Request,
) -> Result<Json<JsonValue>, ApiError> {
    caller.require(Role::Write)?;
    let Query(query) = Query::<WriteQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let tenant = caller.tenant.id;
    let limits = state.limits().clone();
    let format = if is_ndjson(
        request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    ) {
        BodyFormat::Ndjson
    } else {
        BodyFormat::Json
    };

    let body = match read_limited(request, limits.write_body_bytes).await {
        Ok(body) => body,
        Err(err) => {
            log_body_failure(&state, tenant, "body", &err.message, b"").await;
            return Err(err);
        }
    };

    let events = match split_body(&body, format, &limits) {
        Ok(events) => events,
        Err(err) => {
            let message = err.to_string();
            log_body_failure(&state, tenant, "parse", &message, &body).await;
            return Err(ApiError::bad_request(message));
        }
    };

    let settings = state.catalog().settings(tenant).await?;
    let key_config = MetricKeyConfig {
        query_metric: query.metric.as_deref(),
        metric_keys: &settings.metric_keys,
    };

    let mut rejections: Vec<Rejection> = Vec::new();
    // (index, raw bytes, metric name as sent, consumed metric key, event)
    let mut named = Vec::with_capacity(events.len());
    for event in events {
        let map = match event.parsed {
            Ok(map) => map,
            Err(err) => {
                rejections.push(Rejection {
                    index: event.index,
                    stage: err.stage(),
                    reason: err.to_string(),
                    payload: cap(event.raw, limits.error_payload_bytes),
                    metric: None,
                });
                continue;
            }
        };
        match metric_name(&map, &key_config) {
            Ok((name, key)) => {
                let name = name.to_string();
                let key = key.map(str::to_string);
                named.push((event.index, event.raw, name, key, map));
            }
            Err(err) => rejections.push(Rejection {
                index: event.index,
                stage: err.stage(),
                reason: err.to_string(),
                payload: cap(event.raw, limits.error_payload_bytes),
                metric: None,
            }),
        }
    }

    // Resolve every metric the body names, creating the unknown ones.
    let mut schema = state.catalog().schema(tenant).await?;
    let mut metric_failures: HashMap<String, String> = HashMap::new();
    let mut created_any = false;
    let mut missing: Vec<&str> = named
        .iter()
        .map(|(_, _, name, _, _)| name.as_str())
        .filter(|name| schema.metric(name).is_none())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    for name in missing {
        match state.catalog().ensure_metric(tenant, name).await {
            Ok(_) => created_any = true,
            Err(err) => {
                metric_failures.insert(name.to_string(), ApiError::from(err).message);
            }
        }
    }
    if created_any {
        schema = state.catalog().schema(tenant).await?;
    }

    // Each event keeps its raw bytes until its names are admitted, for the error log.
    type Pending<'b> = Vec<(NormalizedEvent, &'b [u8])>;
    let mut by_metric: BTreeMap<MetricId, (Arc<Metric>, Pending<'_>)> = BTreeMap::new();
    for (index, raw, name, key, map) in named {
        let Some(metric) = schema.metric(&name) else {
            let reason = metric_failures
                .get(&name)
                .cloned()
                .unwrap_or_else(|| format!("metric {name:?} could not be resolved"));
            rejections.push(Rejection {
                index,
                stage: "metric",
                reason,
                payload: cap(raw, limits.error_payload_bytes),
                metric: Some(name),
            });
            continue;
        };
        let ts_config = TimestampConfig {
            aliases: &metric.timestamp_aliases,
            metric_patterns: &metric.timestamp_patterns,
            tenant_patterns: &settings.timestamp_patterns,
        };
        match normalize(index, map, key.as_deref(), &ts_config, &limits) {
            Ok(event) => by_metric
                .entry(metric.id)
                .or_insert_with(|| (metric.clone(), Vec::new()))
                .1
                .push((event, raw)),
            Err(err) => rejections.push(Rejection {
                index,
                stage: err.stage(),
                reason: err.to_string(),
                payload: cap(raw, limits.error_payload_bytes),
                metric: Some(metric.name.clone()),
            }),
        }
    }

    // Give every incoming name an id, registering the new ones durably before data uses them.
    let mut hot_events = Vec::new();
    // Collected per request and merged into the shared statistics only once the data is
    // durable, so statistics never count events that were not stored.
    let seen_ms = now_ms();
    let mut pending_stats = StatsAccumulator::default();
    for (metric_id, (metric, events)) in by_metric {
        // Looked up twice for every field of every event. Fx rather than the default SipHash,
        // which was a measurable share of ingest CPU; the names come from the request, but only
        // names already registered for this metric (or registered just below) are ever in the
        // map, so crafting colliding ones costs a catalog registration each and slows only
        // this tenant's writes to this metric.
        let mut ids: FxHashMap<&str, NameId> = metric
            .incoming
            .iter()
            .map(|n| (n.name.as_str(), n.id))
            .collect();
        let events = admit_names(
            &metric,
            &ids,
            events,
            limits.field_names_per_metric,
            &mut rejections,
            limits.error_payload_bytes,
        );
        let mut new_names: Vec<String> = events
            .iter()
            .flat_map(|e| e.fields.iter().map(|(name, _, _)| name))
            .filter(|name| !ids.contains_key(name.as_str()))
            .cloned()
            .collect();
        new_names.sort_unstable();
        new_names.dedup();
        let new_ids = if new_names.is_empty() {
            Vec::new()
        } else {
            state
                .catalog()
                .register_incoming_names(tenant, metric_id, &new_names)
                .await?
        };
        if new_ids.len() != new_names.len() {
            return Err(ApiError::internal(
                "catalog returned the wrong number of incoming-name ids",
            ));
        }
        for (name, id) in new_names.iter().zip(&new_ids) {
            ids.insert(name.as_str(), *id);
        }

        let series_fields = metric.series_key_fields();
        for event in events {
            // Hashes read the fields by reference; afterwards the values move into the row.
            let series = if series_fields.is_empty() {
                0
            } else {
                let key_values: Vec<Option<&Value>> = series_fields
                    .iter()
                    .map(|field| first_non_null(&event.fields, &field.names))
                    .collect();
                series_hash(&key_values)
            };
            let hash = content_hash(metric_id, event.timestamp_ms, &event.fields);
            let mut values: Vec<(NameId, Value)> = Vec::with_capacity(event.fields.len());
            for (name, value, kind) in event.fields {
                let Some(&id) = ids.get(name.as_str()) else {
                    return Err(ApiError::internal(format!(
                        "incoming name {name:?} has no id after registration"
                    )));
                };
                pending_stats.observe(tenant, metric_id, id, kind, &value, seen_ms);
                values.push((id, value));
            }
            values.sort_unstable_by_key(|(id, _)| *id);
            hot_events.push(HotEvent {
                metric: metric_id,
                timestamp_ms: event.timestamp_ms,
                series,
                content_hash: hash,
                values,
            });
        }
    }

    rejections.sort_by_key(|r| r.index);
    let error_records = error_records(&rejections, now_ms());

    let accepted = hot_events.len();
    if !hot_events.is_empty() || !error_records.is_empty() {
        state
            .hot()
            .write(HotWrite {
                tenant,
                events: hot_events,
                errors: error_records,
            })
            .await?;
    }

    if let Ok(mut stats) = state.stats().lock() {
        stats.merge(pending_stats);
    }

    let errors: Vec<JsonValue> = rejections
        .iter()
        .map(|r| json!({ "index": r.index, "error": r.reason }))
        .collect();
    Ok(Json(json!({
        "accepted": accepted,
        "rejected": rejections.len(),
        "errors": errors,
    })))
}

/// Keeps the events (in body order) whose new incoming names fit under the metric's limit of
/// distinct names, and rejects the others: each name is a column of `SELECT *` and a catalog
/// row, and a metric of 60,000 names made `SELECT *` hang the server. The count comes from the
/// request's schema snapshot, so concurrent requests can pass the limit by at most their own
/// new names (each bounded by the body size).
fn admit_names(
    metric: &Metric,
    known: &FxHashMap<&str, NameId>,
    events: Vec<(NormalizedEvent, &[u8])>,
    limit: usize,
    rejections: &mut Vec<Rejection>,
    payload_bytes: usize,
) -> Vec<NormalizedEvent> {
    let mut admitted: rustc_hash::FxHashSet<String> = Default::default();
    let mut kept = Vec::with_capacity(events.len());
    for (event, raw) in events {
        let adding: Vec<&String> = event
            .fields
            .iter()
            .map(|(name, _, _)| name)
            .filter(|name| !known.contains_key(name.as_str()) && !admitted.contains(*name))
            .collect();
        let holds = known.len() + admitted.len();
        if !adding.is_empty() && holds + adding.len() > limit {
            let err = EventError::TooManyFieldNames {
                metric: metric.name.clone(),
                known: holds,
                adding: adding.len(),
                limit,
            };
            rejections.push(Rejection {
                index: event.index,
                stage: err.stage(),
                reason: err.to_string(),
                payload: cap(raw, payload_bytes),
                metric: Some(metric.name.clone()),
            });
            continue;
        }
        let adding: Vec<String> = adding.into_iter().cloned().collect();
        admitted.extend(adding);
        kept.push(event);
    }
    kept
}

/// The error-log records of a request's rejections. One request adds at most
/// [`ERROR_LOG_REQUEST_BYTES`]: past that, one record counts the rejections not kept (the
/// response still lists every one), so a 16 MiB body of tiny bad events cannot add gigabytes.
fn error_records(rejections: &[Rejection], time_ms: i64) -> Vec<ErrorRecord> {
    // Key, JSON punctuation and the stage/metric fields of one record, roughly.
    const RECORD_OVERHEAD: usize = 128;
    let mut records = Vec::with_capacity(rejections.len());
    let mut bytes = 0usize;
    for (kept, r) in rejections.iter().enumerate() {
        bytes += r.reason.len() + r.payload.len() + RECORD_OVERHEAD;
        if bytes > ERROR_LOG_REQUEST_BYTES {
            let left = rejections.len() - kept;
            records.push(ErrorRecord {
                time_ms,
                stage: "log".to_string(),
                reason: format!(
                    "{left} further rejected events of this request (from index {}) are not kept \
                     in the error log: one request may add at most {ERROR_LOG_REQUEST_BYTES} \
                     bytes to it; the write response lists them all",
                    r.index
                ),
                payload: String::new(),
                index: Some(r.index as u64),
                metric: None,
            });
            break;
        }
        records.push(ErrorRecord {
            time_ms,
            stage: r.stage.to_string(),
            reason: r.reason.clone(),
            payload: r.payload.clone(),
            index: Some(r.index as u64),
            metric: r.metric.clone(),
        });
    }
    records
}

/// The first non-null value among a field's names, in precedence order. `fields` is sorted by
/// name (normalize guarantees it), so each lookup is a binary search.
fn first_non_null<'a>(
    fields: &'a [(String, Value, strata_core::JsonKind)],
    names: &[String],
) -> Option<&'a Value> {
    names.iter().find_map(|name| {
        fields
            .binary_search_by(|(n, _, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &fields[i].1)
            .filter(|v| !matches!(v, Value::Null))
    })
}

/// Records a body that could not be split into events. Best effort: the client gets its 4xx
/// either way, and a failing error log must not turn a 400 into a 500.
async fn log_body_failure(state: &AppState, tenant: i64, stage: &str, reason: &str, body: &[u8]) {
    let record = ErrorRecord {
        time_ms: now_ms(),
        stage: stage.to_string(),
        reason: reason.to_string(),
        payload: cap(body, state.limits().error_payload_bytes),
        index: None,
        metric: None,
    };
    let write = HotWrite {
        tenant,
        events: Vec::new(),
        errors: vec![record],
    };
    if let Err(err) = state.hot().write(write).await {
        tracing::error!("could not record a rejected body in the error log: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(index: usize, payload_bytes: usize) -> Rejection {
        Rejection {
            index,
            stage: "parse",
            reason: "the event must be a JSON object, but it is a JSON number".to_string(),
            payload: "1".repeat(payload_bytes),
            metric: None,
        }
    }

    #[test]
    fn one_request_adds_a_bounded_share_to_the_error_log() {
        // 20,000 rejections of 1 KiB each: about 23 MiB of records without the budget.
        let rejections: Vec<Rejection> = (0..20_000).map(|i| rejection(i, 1024)).collect();
        let records = error_records(&rejections, 7);
        let bytes: usize = records
            .iter()
            .map(|r| r.reason.len() + r.payload.len())
            .sum();
        assert!(bytes <= ERROR_LOG_REQUEST_BYTES, "{bytes}");
        let summary = records.last().expect("records");
        assert_eq!(summary.stage, "log");
        let kept = records.len() - 1;
        assert_eq!(summary.index, Some(kept as u64));
        assert!(
            summary
                .reason
                .starts_with(&format!("{} further rejected events", 20_000 - kept)),
            "{}",
            summary.reason
        );
        // A small request keeps every record and adds no summary.
        let few = error_records(&rejections[..3], 7);
        assert_eq!(few.len(), 3);
        assert!(few.iter().all(|r| r.stage == "parse"));
    }
}
