//! Aliases for names queries use that do not exist: "`temperature_c` was queried 40 times;
//! `temperature` is likely". The target is the most alike existing name of the metric.

use serde_json::json;
use strata_catalog::Metric;
use strata_query::UsageSnapshot;

use crate::names::similarity;
use crate::suggestion::{round3, Change, Suggestion, SuggestionKind};

/// Name similarity a missing name needs to its target.
const MIN_NAME_SIMILARITY: f64 = 0.75;
/// Failed queries needed for full confidence grow as `n / (n + PRIOR_QUERIES)`.
const PRIOR_QUERIES: f64 = 2.0;

pub fn suggest(metric: &Metric, usage: &UsageSnapshot) -> Vec<Suggestion> {
    let mut suggestions = Vec::new();
    for ((metric_id, missing), count) in &usage.unresolved {
        if *metric_id != metric.id || exists(metric, missing) {
            continue;
        }
        let Some((target, score, why)) = best_target(metric, missing) else {
            continue;
        };
        let confidence = score * (*count as f64 / (*count as f64 + PRIOR_QUERIES));
        let reason = format!(
            "`{missing}` was queried {count} time{} and does not exist; `{target}` is likely ({why})",
            if *count == 1 { "" } else { "s" }
        );
        let evidence = json!({
            "queried_name": missing,
            "failed_queries": count,
            "target": target,
            "name_similarity": round3(score),
        });
        let change = Change::AddAlias {
            field: target,
            alias: missing.clone(),
        };
        suggestions.push(Suggestion::new(
            SuggestionKind::Alias,
            (metric.id, metric.name.as_str()),
            change,
            confidence,
            reason,
            evidence,
        ));
    }
    suggestions
}

/// Whether `name` already means something in the metric (it may have been added since).
fn exists(metric: &Metric, name: &str) -> bool {
    metric.field(name).is_some() || metric.incoming(name).is_some()
}

/// The existing field (display name) or unknown incoming name most like `missing`.
fn best_target(metric: &Metric, missing: &str) -> Option<(String, f64, &'static str)> {
    let declared = metric
        .fields
        .iter()
        .filter(|f| !f.hidden)
        .flat_map(|field| {
            field
                .names
                .iter()
                .map(move |name| (field.name.as_str(), name.as_str()))
        });
    let unknown = metric
        .unknown_incoming()
        .map(|incoming| (incoming.name.as_str(), incoming.name.as_str()));
    declared
        .chain(unknown)
        .filter_map(|(target, name)| {
            let (score, why) = similarity(missing, name)?;
            (score >= MIN_NAME_SIMILARITY).then_some((target, score, why))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(target, score, why)| (target.to_string(), score, why))
}
