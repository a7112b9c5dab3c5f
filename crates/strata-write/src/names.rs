//! Incoming names of a metric: the cap on distinct names per metric, and ids for new names,
//! registered durably in the catalog before any data uses them.

use rustc_hash::{FxHashMap, FxHashSet};
use strata_catalog::{IncomingNames, Metric};
use strata_core::{NameId, TenantId};
use strata_ingest::{EventError, NormalizedEvent};

use crate::error_log::cap;
use crate::{Rejection, WriteError};

/// Keeps the events (in body order) whose new incoming names fit under the metric's limit of
/// distinct names, and rejects the others: each name is a column of `SELECT *` and a catalog
/// row, and a metric of 60,000 names made `SELECT *` hang the server. The count comes from the
/// request's schema snapshot, so concurrent requests can pass the limit by at most their own
/// new names (each bounded by the body size).
pub(crate) fn admit_names<'a>(
    metric: &Metric,
    known: &FxHashMap<&str, NameId>,
    events: Vec<(NormalizedEvent<'a>, &[u8])>,
    limit: usize,
    rejections: &mut Vec<Rejection>,
    payload_bytes: usize,
) -> Vec<NormalizedEvent<'a>> {
    let mut admitted: FxHashSet<String> = Default::default();
    let mut kept = Vec::with_capacity(events.len());
    for (event, raw) in events {
        let adding: Vec<&str> = event
            .fields
            .iter()
            .map(|(name, _, _)| name.as_ref())
            .filter(|name| !known.contains_key(name) && !admitted.contains(*name))
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
        admitted.extend(adding.into_iter().map(str::to_string));
        kept.push(event);
    }
    kept
}

/// Ids for the names in `events` that `known` lacks, registered in the catalog first (committed
/// before any data uses them, so a crash never leaves data under an unknown id). Owned keys, so
/// the events can move into rows afterwards.
pub(crate) async fn register_new_names(
    catalog: &dyn IncomingNames,
    tenant: TenantId,
    metric: &Metric,
    events: &[NormalizedEvent<'_>],
    known: &FxHashMap<&str, NameId>,
) -> Result<FxHashMap<String, NameId>, WriteError> {
    let mut new_names: Vec<String> = events
        .iter()
        .flat_map(|e| e.fields.iter().map(|(name, _, _)| name.as_ref()))
        .filter(|name| !known.contains_key(name))
        .map(str::to_string)
        .collect();
    if new_names.is_empty() {
        return Ok(FxHashMap::default());
    }
    new_names.sort_unstable();
    new_names.dedup();
    let new_ids = catalog
        .register_incoming_names(tenant, metric.id, &new_names)
        .await?;
    if new_ids.len() != new_names.len() {
        return Err(WriteError::Internal(
            "the catalog returned the wrong number of incoming-name ids".to_string(),
        ));
    }
    Ok(new_names.into_iter().zip(new_ids).collect())
}
