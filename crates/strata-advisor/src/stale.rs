//! Hide suggestions: a field none of whose names devices have sent for `stale_after_ms`, in a
//! metric that still receives events (a silent metric is a device problem, not a schema one).

use serde_json::json;
use strata_catalog::Metric;

use crate::suggestion::{Change, Suggestion, SuggestionKind};

/// Days without a value after which a field is suggested hidden, unless the request says.
pub const DEFAULT_STALE_DAYS: u32 = 30;

pub fn suggest(metric: &Metric, now_ms: i64, stale_after_ms: i64) -> Vec<Suggestion> {
    let last_seen_of = |name: &str| {
        metric
            .incoming(name)
            .and_then(|incoming| incoming.last_seen)
            .map(|time| time.timestamp_millis())
    };
    let metric_last_ms = metric
        .incoming
        .iter()
        .filter_map(|incoming| incoming.last_seen.map(|t| t.timestamp_millis()))
        .max();
    let Some(metric_last_ms) = metric_last_ms else {
        return Vec::new();
    };
    if now_ms - metric_last_ms >= stale_after_ms {
        return Vec::new();
    }
    let mut candidates: Vec<(String, Vec<&str>)> = metric
        .fields
        .iter()
        .filter(|field| !field.hidden)
        .map(|field| {
            (
                field.name.clone(),
                field.names.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    candidates.extend(
        metric
            .unknown_incoming()
            .map(|incoming| (incoming.name.clone(), vec![incoming.name.as_str()])),
    );
    let series_keys: Vec<&str> = metric
        .series_key_fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    candidates
        .into_iter()
        .filter(|(field, _)| !series_keys.contains(&field.as_str()))
        .filter_map(|(field, names)| {
            let last_ms = names.iter().filter_map(|n| last_seen_of(n)).max()?;
            let silent_ms = now_ms - last_ms;
            (silent_ms >= stale_after_ms).then(|| hide(metric, field, last_ms, silent_ms))
        })
        .collect()
}

fn hide(metric: &Metric, field: String, last_ms: i64, silent_ms: i64) -> Suggestion {
    let days = silent_ms / 86_400_000;
    let reason =
        format!("`{field}` has not been sent for {days} days; the metric still receives events");
    let evidence = json!({ "last_seen_ms": last_ms, "days_silent": days });
    // Surer the longer the silence: 0.85 at 30 days, approaching 1.
    let confidence = 1.0 - 0.3 / (1.0 + (days as f64 / 30.0));
    Suggestion::new(
        SuggestionKind::Hide,
        (metric.id, metric.name.as_str()),
        Change::Hide { field },
        confidence,
        reason,
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use strata_catalog::IncomingName;
    use strata_core::MetricId;

    use super::*;

    const DAY_MS: i64 = 86_400_000;
    const NOW_MS: i64 = 1_800_000_000_000;

    fn incoming(id: u32, name: &str, last_seen_ms: i64) -> IncomingName {
        IncomingName {
            id,
            name: name.to_string(),
            count: 10,
            first_seen: None,
            last_seen: Utc.timestamp_millis_opt(last_seen_ms).single(),
            kinds: Vec::new(),
            samples: Vec::new(),
        }
    }

    fn metric(incoming: Vec<IncomingName>) -> Metric {
        Metric {
            id: MetricId(1),
            name: "thermostat".into(),
            aliases: Vec::new(),
            timestamp_aliases: Vec::new(),
            timestamp_patterns: Vec::new(),
            timestamp_unit: Default::default(),
            merged_into: None,
            series_keys: Vec::new(),
            series_hashes_exact: true,
            series_generation: 0,
            fields: Vec::new(),
            incoming,
            created_at: Utc::now(),
            retention_days: None,
        }
    }

    #[test]
    fn a_field_silent_past_the_threshold_is_suggested_hidden() {
        let metric = metric(vec![
            incoming(1, "temp", NOW_MS - 40 * DAY_MS),
            incoming(2, "temperature", NOW_MS - DAY_MS),
        ]);
        let suggestions = suggest(&metric, NOW_MS, 30 * DAY_MS);
        assert_eq!(suggestions.len(), 1, "{suggestions:?}");
        assert_eq!(
            suggestions[0].change,
            Change::Hide {
                field: "temp".into()
            }
        );
        assert!(
            suggestions[0].reason.contains("40 days"),
            "{}",
            suggestions[0].reason
        );
        assert!(
            suggest(&metric, NOW_MS, 50 * DAY_MS).is_empty(),
            "not silent long enough"
        );
    }

    #[test]
    fn a_silent_metric_gets_no_hide_suggestions() {
        let metric = metric(vec![incoming(1, "temp", NOW_MS - 40 * DAY_MS)]);
        assert!(suggest(&metric, NOW_MS, 30 * DAY_MS).is_empty());
    }
}
