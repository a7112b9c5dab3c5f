//! Type suggestions: the narrowest type that at least [`TYPE_THRESHOLD`] of a field's values
//! read as, with the values that do not as counter-examples.

use serde_json::json;
use strata_catalog::Metric;
use strata_core::{FieldType, NameId};
use strata_ingest::{Candidate, MetricProfile, NameProfile};

use crate::suggestion::{round3, Change, Suggestion, SuggestionKind};

/// Share of non-null values that must read as a type for it to be suggested. Lower would null
/// out too many values on read (a failed cast reads as null); 0.95 still lets through the usual
/// `n/a`, `ERR` and empty strings of a dirty numeric field.
pub const TYPE_THRESHOLD: f64 = 0.95;
/// A narrower type is preferred when it covers all but this share of what a wider one covers:
/// 99.8% integer beside 99.8% double is integer, 97% integer beside 99.8% double is double.
const NARROWER_SLACK: f64 = 0.005;
/// Share of tested strings that must look encoded (not only decode) for binary: ids such as
/// `dev00001` decode as base64 too.
const MIN_BASE64_LOOKING: f64 = 0.5;
/// Values needed for full confidence grow as `n / (n + PRIOR_VALUES)`.
const PRIOR_VALUES: f64 = 5.0;

/// The type suggestion of every unknown name and every untyped declared field of `metric`.
pub fn suggest(metric: &Metric, profile: &MetricProfile) -> Vec<Suggestion> {
    let series_keys: Vec<&str> = metric
        .series_key_fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let mut targets: Vec<(String, Vec<NameId>)> = metric
        .unknown_incoming()
        .map(|name| (name.name.clone(), vec![name.id]))
        .collect();
    for field in &metric.fields {
        if field.field_type.is_some() || field.hidden || series_keys.contains(&field.name.as_str())
        {
            continue;
        }
        let ids = field
            .names
            .iter()
            .filter_map(|name| metric.incoming(name).map(|i| i.id))
            .collect();
        targets.push((field.name.clone(), ids));
    }
    targets
        .into_iter()
        .filter_map(|(field, ids)| {
            let mut combined = NameProfile::default();
            for id in ids {
                if let Some(name) = profile.names.get(&id) {
                    combined.merge(name);
                }
            }
            suggest_one(metric, &field, &combined)
        })
        .collect()
}

/// Values of the profile that read as `candidate`, estimated for the strings not tested.
fn reading_as(profile: &NameProfile, candidate: Candidate) -> f64 {
    let kinds = &profile.kinds;
    let from_json = match candidate {
        Candidate::Boolean => kinds.boolean,
        Candidate::Integer => profile.integers,
        Candidate::Double => kinds.number,
        Candidate::Timestamp | Candidate::Base64 => 0,
    } as f64;
    let tested = profile.strings_tested as f64;
    let looks_binary = profile.base64_looking as f64 >= MIN_BASE64_LOOKING * tested;
    let from_strings = if profile.strings_tested == 0
        || (candidate == Candidate::Base64 && !looks_binary)
    {
        0.0
    } else {
        kinds.string as f64 * *profile.parsed.get(candidate) as f64 / profile.strings_tested as f64
    };
    from_json + from_strings
}

/// The narrowest candidate over the threshold, and the share of values it covers.
pub fn best_type(profile: &NameProfile) -> Option<(Candidate, f64)> {
    let values = profile.kinds.non_null() as f64;
    if values == 0.0 {
        return None;
    }
    let shares: Vec<(Candidate, f64)> = Candidate::ALL
        .iter()
        .map(|c| (*c, reading_as(profile, *c) / values))
        .collect();
    let best = shares.iter().map(|(_, share)| *share).fold(0.0, f64::max);
    if best < TYPE_THRESHOLD {
        return None;
    }
    shares
        .into_iter()
        .find(|(_, share)| *share >= best - NARROWER_SLACK)
}

fn field_type_of(candidate: Candidate) -> FieldType {
    match candidate {
        Candidate::Boolean => FieldType::Boolean,
        Candidate::Integer => FieldType::Integer,
        Candidate::Double => FieldType::Double,
        Candidate::Timestamp => FieldType::Timestamp,
        Candidate::Base64 => FieldType::Binary,
    }
}

fn suggest_one(metric: &Metric, field: &str, profile: &NameProfile) -> Option<Suggestion> {
    let (candidate, share) = best_type(profile)?;
    let field_type = field_type_of(candidate);
    let values = profile.kinds.non_null();
    let confidence = share * values as f64 / (values as f64 + PRIOR_VALUES);
    let examples = profile.counter_examples.get(candidate);
    let mut reason = format!(
        "{:.1}% of {} values read as {}",
        share * 100.0,
        values,
        field_type.as_str()
    );
    if share < 1.0 && !examples.is_empty() {
        reason.push_str(&format!("; counter-examples: {}", examples.join(", ")));
    }
    let evidence = json!({
        "values": values,
        "share": round3(share),
        "kinds": profile.kinds,
        "strings_tested": profile.strings_tested,
        "counter_examples": examples,
        "min": profile.min,
        "max": profile.max,
        "samples": profile.reservoir.iter().take(5).collect::<Vec<_>>(),
    });
    let change = Change::SetType {
        field: field.to_string(),
        field_type,
    };
    let metric = (metric.id, metric.name.as_str());
    Some(Suggestion::new(
        SuggestionKind::Type,
        metric,
        change,
        confidence,
        reason,
        evidence,
    ))
}
