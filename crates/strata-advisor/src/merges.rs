//! Metric merge suggestions: two metrics whose field sets overlap and whose series overlap (or
//! whose names are alike) are most likely one metric under two names, the common case of two
//! firmware versions naming it differently. From names and profiles only, never stored data.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use strata_catalog::Metric;
use strata_core::{MetricId, RESERVED_FIELD_NAME};
use strata_ingest::MetricProfile;

use crate::names::similarity;
use crate::{Change, Suggestion, SuggestionKind};

/// Least Jaccard overlap of the two metrics' incoming names.
pub const MIN_FIELD_OVERLAP: f64 = 0.6;
/// Least share of the smaller metric's series that the other metric also has.
pub const MIN_SERIES_OVERLAP: f64 = 0.5;
/// Least similarity of the metric names when the series say nothing.
pub const MIN_NAME_SIMILARITY: f64 = 0.75;
/// Metrics compared pairwise, the most-sent first: the pass is quadratic (512 metrics are 130,816
/// pairs of set comparisons, a few milliseconds).
pub const MAX_MERGE_METRICS: usize = 512;
/// Fewest names a metric needs before its field set says anything.
const MIN_NAMES: usize = 2;

struct Candidate<'a> {
    metric: &'a Metric,
    names: BTreeSet<&'a str>,
    events: u64,
    series: BTreeSet<u64>,
}

/// Merge suggestions among `metrics` (tables only: merged metrics are no candidates).
pub fn suggest<'a>(
    metrics: impl Iterator<Item = &'a Metric>,
    profiles: &HashMap<MetricId, MetricProfile>,
) -> Vec<Suggestion> {
    let mut candidates: Vec<Candidate<'a>> = metrics
        .map(|metric| candidate(metric, profiles.get(&metric.id)))
        .filter(|c| c.names.len() >= MIN_NAMES)
        .collect();
    candidates.sort_by(|a, b| b.events.cmp(&a.events).then(a.metric.id.cmp(&b.metric.id)));
    candidates.truncate(MAX_MERGE_METRICS);
    let mut suggestions = Vec::new();
    for (at, first) in candidates.iter().enumerate() {
        for second in &candidates[at + 1..] {
            suggestions.extend(judge(first, second));
        }
    }
    suggestions
}

fn candidate<'a>(metric: &'a Metric, profile: Option<&MetricProfile>) -> Candidate<'a> {
    Candidate {
        metric,
        names: metric
            .incoming
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| *n != RESERVED_FIELD_NAME)
            .collect(),
        events: metric.incoming.iter().map(|n| n.count).max().unwrap_or(0),
        series: profile
            .map(|p| p.series.iter().map(|s| s.series).collect())
            .unwrap_or_default(),
    }
}

/// A suggestion to merge the less-sent metric into the more-sent one (`candidates` are sorted
/// that way), when the evidence is there.
fn judge(into: &Candidate, from: &Candidate) -> Option<Suggestion> {
    let shared: Vec<&str> = into.names.intersection(&from.names).copied().collect();
    let union = into.names.union(&from.names).count();
    let field_overlap = shared.len() as f64 / union.max(1) as f64;
    if field_overlap < MIN_FIELD_OVERLAP {
        return None;
    }
    let series_overlap = (!into.series.is_empty() && !from.series.is_empty()).then(|| {
        let common = into.series.intersection(&from.series).count();
        common as f64 / into.series.len().min(from.series.len()) as f64
    });
    let name_similarity = similarity(&into.metric.name, &from.metric.name).map_or(0.0, |s| s.0);
    let series_agree = series_overlap.is_some_and(|o| o >= MIN_SERIES_OVERLAP);
    if !series_agree && name_similarity < MIN_NAME_SIMILARITY {
        return None;
    }
    let support = series_overlap.unwrap_or(0.0).max(name_similarity);
    let confidence = 0.5 * field_overlap + 0.5 * support;
    let reason = format!(
        "metrics {:?} and {:?} share {} of {union} field names{}; {:?} is likely {:?} under \
         another name",
        into.metric.name,
        from.metric.name,
        shared.len(),
        series_overlap.map_or(String::new(), |o| format!(
            " and {:.0}% of their series",
            o * 100.0
        )),
        from.metric.name,
        into.metric.name,
    );
    Some(Suggestion::new(
        SuggestionKind::MetricMerge,
        (into.metric.id, &into.metric.name),
        Change::MergeMetric {
            from: from.metric.name.clone(),
        },
        confidence,
        reason,
        json!({
            "shared_names": shared,
            "field_overlap": crate::suggestion::round3(field_overlap),
            "series_overlap": series_overlap.map(crate::suggestion::round3),
            "name_similarity": crate::suggestion::round3(name_similarity),
            "events": {"into": into.events, "from": from.events},
        }),
    ))
}
