//! Schema suggestions (issue 17): what Strata proposes from what devices sent (ingest
//! profiles) and how the tenant queries (query usage) — a type for an unknown field, aliases
//! for renamed or abbreviated names, an alias for a name queries use that does not exist,
//! hiding a field devices stopped sending, merging two metrics that are one under two names. Every suggestion carries its evidence; applying one
//! goes through the normal versioned schema path. Nothing here scans stored data.
//!
//! Must never import the write path, the storage tiers or a front door.

mod aliases;
mod error;
mod merges;
pub mod names;
mod queried;
mod service;
mod stale;
mod suggestion;
mod types;

pub use error::AdvisorError;
pub use service::{Advisor, AdvisorCatalog, Applied, SuggestOptions};
pub use stale::DEFAULT_STALE_DAYS;
pub use suggestion::{Change, Suggestion, SuggestionKind};
pub use types::{best_type, TYPE_THRESHOLD};

use strata_catalog::Metric;
use strata_ingest::MetricProfile;
use strata_query::UsageSnapshot;

/// Every suggestion for one metric, before dismissals: pure, so the quality test runs it on
/// generated data with known answers.
pub fn suggest_metric(
    metric: &Metric,
    profile: Option<&MetricProfile>,
    usage: &UsageSnapshot,
    now_ms: i64,
    stale_after_ms: i64,
) -> Vec<Suggestion> {
    let mut suggestions = Vec::new();
    if let Some(profile) = profile {
        suggestions.extend(types::suggest(metric, profile));
        suggestions.extend(aliases::suggest(metric, profile, usage));
    }
    suggestions.extend(queried::suggest(metric, usage));
    suggestions.extend(stale::suggest(metric, now_ms, stale_after_ms));
    dedup_by_id(suggestions)
}

/// One suggestion per id (an alias seen in data and in queries alike), the surer one kept.
fn dedup_by_id(mut suggestions: Vec<Suggestion>) -> Vec<Suggestion> {
    suggestions.sort_by(|a, b| a.id.cmp(&b.id).then(b.confidence.total_cmp(&a.confidence)));
    suggestions.dedup_by(|later, earlier| later.id == earlier.id);
    suggestions
}
