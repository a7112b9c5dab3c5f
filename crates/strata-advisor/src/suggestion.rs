//! What a suggestion is: its kind, the schema change it proposes, how sure it is and why, and
//! an id that stays the same while the proposal does (so a dismissal sticks).

use serde::Serialize;
use strata_core::{FieldType, MetricId};
use xxhash_rust::xxh3::xxh3_64;

/// What kind of schema change a suggestion proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// A type for an unknown or untyped field.
    Type,
    /// Two names of one field (seen in data, or one that queries use).
    Alias,
    /// Hiding a field devices stopped sending.
    Hide,
    /// Two metrics that are one under two names.
    MetricMerge,
}

impl SuggestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionKind::Type => "type",
            SuggestionKind::Alias => "alias",
            SuggestionKind::Hide => "hide",
            SuggestionKind::MetricMerge => "metric_merge",
        }
    }
}

/// The change, in the terms of the schema API: `field` is a field's display name or an unknown
/// field's incoming name (which applying declares).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    SetType {
        field: String,
        #[serde(rename = "type")]
        field_type: FieldType,
    },
    AddAlias {
        field: String,
        alias: String,
    },
    Hide {
        field: String,
    },
    /// `from` merges into the suggestion's metric (`POST .../metrics/{metric}/merge`).
    MergeMetric {
        from: String,
    },
}

/// One suggestion as `GET /api/v1/schema/suggestions` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: String,
    pub kind: SuggestionKind,
    /// The metric's display name.
    pub metric: String,
    #[serde(skip)]
    pub metric_id: MetricId,
    pub change: Change,
    /// 0 to 1.
    pub confidence: f64,
    /// A sentence a person can check, then the numbers behind it.
    pub reason: String,
    pub evidence: serde_json::Value,
}

impl Suggestion {
    pub fn new(
        kind: SuggestionKind,
        metric: (MetricId, &str),
        change: Change,
        confidence: f64,
        reason: String,
        evidence: serde_json::Value,
    ) -> Self {
        Suggestion {
            id: suggestion_id(kind, metric.0, &change),
            kind,
            metric: metric.1.to_string(),
            metric_id: metric.0,
            change,
            confidence: round3(confidence.clamp(0.0, 1.0)),
            reason,
            evidence,
        }
    }
}

/// `<kind>-<metric id>-<16 hex digits of the change>`: the same proposal keeps its id however
/// its evidence grows; a different proposal (another type, another target) gets a new one.
fn suggestion_id(kind: SuggestionKind, metric: MetricId, change: &Change) -> String {
    let canonical = serde_json::to_string(change).unwrap_or_default();
    format!(
        "{}-{}-{:016x}",
        kind.as_str(),
        metric,
        xxh3_64(canonical.as_bytes())
    )
}

pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
