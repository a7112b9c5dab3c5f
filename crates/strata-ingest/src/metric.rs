//! Which metric an event names.

use serde_json::Value as JsonValue;
use strata_core::{validate_name, RESERVED_FIELD_NAME};

use crate::error::EventError;
use crate::object::EventObject;

/// The metric key used when a tenant has configured none.
pub const DEFAULT_METRIC_KEY: &str = "metrictype";

/// Where an event's metric name comes from.
#[derive(Debug, Clone, Copy)]
pub struct MetricKeyConfig<'a> {
    /// `?metric=NAME` on the write request; names the metric of every event in the body.
    pub query_metric: Option<&'a str>,
    /// The tenant's metric keys in precedence order (e.g. `["metrictype", "source"]`). Empty means
    /// [`DEFAULT_METRIC_KEY`].
    pub metric_keys: &'a [String],
}

/// Which metric an event names: `?metric=` wins; otherwise the first of `metric_keys` present in
/// the event whose value is a non-empty string. Returns the metric name and the key it was read
/// from, which [`crate::normalize`] removes from the fields. Metric keys that did not win stay
/// ordinary fields.
pub fn metric_name<'m>(
    event: &'m EventObject<'_>,
    cfg: &MetricKeyConfig<'m>,
) -> Result<(&'m str, Option<&'m str>), EventError> {
    if let Some(name) = cfg.query_metric {
        validate_name("metric", name).map_err(|source| EventError::InvalidMetricName {
            key: "?metric=".to_string(),
            source,
        })?;
        refuse_reserved("?metric=", name)?;
        return Ok((name, None));
    }

    // An iterator rather than a collected list: this runs once per event.
    let fallback = cfg.metric_keys.is_empty().then_some(DEFAULT_METRIC_KEY);
    let keys = cfg.metric_keys.iter().map(String::as_str).chain(fallback);

    // A present key that holds no string is reported only if no later key names the metric.
    let mut first_non_string: Option<&str> = None;
    for key in keys.clone() {
        match event.get(key) {
            Some(JsonValue::String(name)) if !name.is_empty() => {
                validate_name("metric", name).map_err(|source| EventError::InvalidMetricName {
                    key: key.to_string(),
                    source,
                })?;
                refuse_reserved(key, name)?;
                return Ok((name.as_str(), Some(key)));
            }
            Some(JsonValue::String(_)) | Some(JsonValue::Null) | None => {}
            Some(_) => {
                first_non_string.get_or_insert(key);
            }
        }
    }
    match first_non_string {
        Some(key) => Err(EventError::MetricNotString {
            key: key.to_string(),
        }),
        None => Err(EventError::NoMetric {
            tried: keys.map(str::to_string).collect(),
        }),
    }
}

/// `timestamp` names the event-time column of every table, so a table of that name would be
/// ambiguous in SQL (`SELECT timestamp FROM timestamp`); the README lists it as reserved.
fn refuse_reserved(key: &str, name: &str) -> Result<(), EventError> {
    if name == RESERVED_FIELD_NAME {
        return Err(EventError::ReservedMetricName {
            key: key.to_string(),
            name: name.to_string(),
        });
    }
    Ok(())
}
