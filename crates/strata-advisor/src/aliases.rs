//! Alias suggestions: names of one metric that never occur in the same event, are alike in
//! name, hold values in the same range and, where a series shows it, hand over from one to the
//! other at one time (a firmware rename). Names alike in a chain (`tmp`, `temp`, `temperature`)
//! become one field under one canonical name.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use strata_catalog::Metric;
use strata_core::{FieldType, NameId};
use strata_ingest::{Candidate, MetricProfile, NameProfile};
use strata_query::UsageSnapshot;

use crate::names::{parts, similarity};
use crate::suggestion::{round3, Change, Suggestion, SuggestionKind};
use crate::types::best_type;

/// Events two names may share, as a share of the rarer one's events, and still be one field
/// (a device replaying an old buffer after its upgrade sends a few events with both).
const MAX_SHARED_SHARE: f64 = 0.01;
/// Name similarity an alias needs. Value ranges and hand-over add confidence but never make
/// unlike names one field: unrelated fields also never co-occur when a firmware adds one.
const MIN_NAME_SIMILARITY: f64 = 0.75;
/// Overlap of two numeric ranges (intersection over union) below which they are two quantities.
const MIN_RANGE_OVERLAP: f64 = 0.2;
/// Names of one metric compared pairwise (the most-sent ones): about half a million pairs at
/// most, so a metric at the 10,000-name cap cannot make a suggestions request take minutes.
const MAX_ALIAS_NAMES: usize = 1024;
/// Suggestions below this confidence are not shown.
const MIN_CONFIDENCE: f64 = 0.6;

/// What a name holds, coarsely: aliases must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueClass {
    Number,
    Boolean,
    Timestamp,
    Text,
}

/// A declared type decides; otherwise what the values read as.
fn value_class(declared: Option<FieldType>, profile: &NameProfile) -> ValueClass {
    match declared {
        Some(FieldType::Integer | FieldType::Double) => return ValueClass::Number,
        Some(FieldType::Boolean) => return ValueClass::Boolean,
        Some(FieldType::Timestamp) => return ValueClass::Timestamp,
        Some(FieldType::String | FieldType::Binary) => return ValueClass::Text,
        None => {}
    }
    match best_type(profile) {
        Some((Candidate::Integer | Candidate::Double, _)) => ValueClass::Number,
        Some((Candidate::Boolean, _)) => ValueClass::Boolean,
        Some((Candidate::Timestamp, _)) => ValueClass::Timestamp,
        _ => ValueClass::Text,
    }
}

/// One name of the metric as alias detection sees it.
struct Name<'a> {
    id: NameId,
    name: &'a str,
    /// The declared field the name belongs to, by display name.
    field: Option<&'a str>,
    /// What the name holds, from its field's type or its values; computed once, compared for
    /// every pair.
    class: ValueClass,
    profile: &'a NameProfile,
    events: u64,
}

/// Two names judged to be one field.
struct Pair {
    a: usize,
    b: usize,
    confidence: f64,
    evidence: serde_json::Value,
    why: &'static str,
}

pub fn suggest(metric: &Metric, profile: &MetricProfile, usage: &UsageSnapshot) -> Vec<Suggestion> {
    let names = names_of(metric, profile);
    let mut pairs = Vec::new();
    for a in 0..names.len() {
        for b in a + 1..names.len() {
            if let Some(pair) = judge(&names, a, b, profile) {
                pairs.push(pair);
            }
        }
    }
    let groups = groups(names.len(), &pairs);
    let judged = Judged {
        metric,
        names: &names,
        pairs: &pairs,
        profile,
        usage,
    };
    groups
        .values()
        .filter(|members| members.len() > 1)
        .flat_map(|members| judged.group_suggestions(members))
        .collect()
}

/// A metric's names and the pairs judged alike, with what ranks them.
struct Judged<'a> {
    metric: &'a Metric,
    names: &'a [Name<'a>],
    pairs: &'a [Pair],
    profile: &'a MetricProfile,
    usage: &'a UsageSnapshot,
}

fn names_of<'a>(metric: &'a Metric, profile: &'a MetricProfile) -> Vec<Name<'a>> {
    let mut field_of: HashMap<&str, (&str, Option<FieldType>)> = HashMap::new();
    for field in &metric.fields {
        for name in &field.names {
            field_of.insert(name.as_str(), (field.name.as_str(), field.field_type));
        }
    }
    let mut names: Vec<Name<'a>> = metric
        .incoming
        .iter()
        .filter(|incoming| !metric.timestamp_aliases.contains(&incoming.name))
        .filter_map(|incoming| {
            let name_profile = profile.names.get(&incoming.id)?;
            let field = field_of.get(incoming.name.as_str()).copied();
            Some(Name {
                id: incoming.id,
                name: incoming.name.as_str(),
                field: field.map(|(name, _)| name),
                class: value_class(field.and_then(|(_, declared)| declared), name_profile),
                profile: name_profile,
                events: profile.events_with(incoming.id),
            })
        })
        .filter(|name| name.events > 0)
        .collect();
    // Pairs grow with the square of the names: keep the most-sent ones.
    names.sort_by(|x, y| y.events.cmp(&x.events).then(x.id.cmp(&y.id)));
    names.truncate(MAX_ALIAS_NAMES);
    names
}

/// Whether names `a` and `b` are one field, with how sure and why.
fn judge(names: &[Name<'_>], a: usize, b: usize, profile: &MetricProfile) -> Option<Pair> {
    let (x, y) = (&names[a], &names[b]);
    if x.field.is_some() && x.field == y.field {
        return None;
    }
    if x.field.is_some() && y.field.is_some() {
        return None; // two declared fields: merging fields is not an alias
    }
    // Cheapest checks first: most pairs fail on class or name before the shape scan.
    if x.class != y.class {
        return None;
    }
    let (name_score, why) = similarity(x.name, y.name)?;
    if name_score < MIN_NAME_SIMILARITY {
        return None;
    }
    let together = profile.events_with_both(x.id, y.id);
    let rarer = x.events.min(y.events);
    if together as f64 > MAX_SHARED_SHARE * rarer as f64 {
        return None;
    }
    let overlap = range_overlap(x.profile, y.profile);
    if overlap.is_some_and(|o| o < MIN_RANGE_OVERLAP) {
        return None;
    }
    let (hand_overs, shared_series) = hand_overs(profile, x.id, y.id);
    let hand_over_score = if shared_series == 0 {
        0.5
    } else {
        hand_overs as f64 / shared_series as f64
    };
    let strength = rarer as f64 / (rarer as f64 + 5.0);
    let confidence =
        (0.6 * name_score + 0.2 * overlap.unwrap_or(0.5) + 0.2 * hand_over_score) * strength;
    if confidence < MIN_CONFIDENCE {
        return None;
    }
    let evidence = json!({
        "names": [x.name, y.name],
        "events": [x.events, y.events],
        "events_with_both": together,
        "name_similarity": round3(name_score),
        "range_overlap": overlap.map(round3),
        "ranges": [[x.profile.min, x.profile.max], [y.profile.min, y.profile.max]],
        "series_handing_over": hand_overs,
        "series_with_both": shared_series,
    });
    Some(Pair {
        a,
        b,
        confidence,
        evidence,
        why,
    })
}

/// Intersection over union of two numeric ranges; `None` when either has no numbers.
fn range_overlap(a: &NameProfile, b: &NameProfile) -> Option<f64> {
    let (a_min, a_max, b_min, b_max) = (a.min?, a.max?, b.min?, b.max?);
    let union = a_max.max(b_max) - a_min.min(b_min);
    if union <= 0.0 {
        return Some(1.0);
    }
    let intersection = (a_max.min(b_max) - a_min.max(b_min)).max(0.0);
    // Two constant or near-constant ranges inside each other still overlap fully.
    let narrower = (a_max - a_min).min(b_max - b_min);
    if intersection >= narrower && narrower <= union * 0.05 {
        return Some(1.0);
    }
    Some(intersection / union)
}

/// In how many series that sent both names one stopped before the other started, and how many
/// series sent both.
fn hand_overs(profile: &MetricProfile, a: NameId, b: NameId) -> (usize, usize) {
    let spans_a = profile.series_spans(a);
    let spans_b = profile.series_spans(b);
    let mut handing = 0;
    let mut shared = 0;
    for (series, (first_a, last_a)) in &spans_a {
        let Some((first_b, last_b)) = spans_b.get(series) else {
            continue;
        };
        shared += 1;
        if last_a <= first_b || last_b <= first_a {
            handing += 1;
        }
    }
    (handing, shared)
}

/// Connected groups of names, keyed by their smallest member.
fn groups(count: usize, pairs: &[Pair]) -> BTreeMap<usize, Vec<usize>> {
    let mut parent: Vec<usize> = (0..count).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for pair in pairs {
        let (ra, rb) = (root(&mut parent, pair.a), root(&mut parent, pair.b));
        parent[ra.max(rb)] = ra.min(rb);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..count {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups
}

/// One suggestion per member of a group that is directly alike its canonical name. A group
/// whose members include two names that occur together is inconsistent (a chain through a
/// name alike both) and gives no suggestion.
impl Judged<'_> {
    fn group_suggestions(&self, members: &[usize]) -> Vec<Suggestion> {
        let Judged {
            metric,
            names,
            pairs,
            profile,
            ..
        } = *self;
        if !consistent(names, members, profile) {
            return Vec::new();
        }
        let mut declared: Vec<&str> = members.iter().filter_map(|m| names[*m].field).collect();
        declared.sort_unstable();
        declared.dedup();
        let (canonical, anchors): (String, Vec<usize>) = match declared.as_slice() {
            [field] => {
                let anchors = members
                    .iter()
                    .copied()
                    .filter(|m| names[*m].field == Some(field));
                (field.to_string(), anchors.collect())
            }
            [] => {
                let chosen = self.canonical_member(members);
                (names[chosen].name.to_string(), vec![chosen])
            }
            _ => return Vec::new(), // several declared fields: which one is not ours to guess
        };
        let mut suggestions = Vec::new();
        for member in members {
            if anchors.contains(member) || names[*member].field.is_some() {
                continue;
            }
            let direct = pairs
                .iter()
                .filter(|p| {
                    (p.a == *member && anchors.contains(&p.b))
                        || (p.b == *member && anchors.contains(&p.a))
                })
                .max_by(|p, q| p.confidence.total_cmp(&q.confidence));
            if let Some(pair) = direct {
                suggestions.push(alias_suggestion(metric, names, *member, pair, &canonical));
            }
        }
        suggestions
    }

    /// The member a group of unknown names is declared under: the one alike most others, then
    /// the one queries read most, then the least abbreviated, then the one sent most recently (the
    /// name after a rename).
    fn canonical_member(&self, members: &[usize]) -> usize {
        let Judged {
            metric,
            names,
            pairs,
            profile,
            usage,
        } = *self;
        let degree = |m: usize| pairs.iter().filter(|p| p.a == m || p.b == m).count();
        let reads = |name: &str| {
            usage
                .fields
                .get(&(metric.id, name.to_string()))
                .map_or(0, |u| u.reads)
        };
        let last_seen = |id: NameId| {
            profile
                .series_spans(id)
                .values()
                .map(|(_, last)| *last)
                .max()
                .unwrap_or(i64::MIN)
        };
        let key = |m: usize| {
            let name = &names[m];
            (
                degree(m),
                reads(name.name),
                stem_len(name.name),
                last_seen(name.id),
            )
        };
        members
            .iter()
            .copied()
            .max_by(|x, y| {
                key(*x)
                    .cmp(&key(*y))
                    .then(names[*y].name.cmp(names[*x].name))
            })
            .unwrap_or(members[0])
    }
}

/// No two members occur together in events (beyond the replay allowance).
fn consistent(names: &[Name<'_>], members: &[usize], profile: &MetricProfile) -> bool {
    members.iter().enumerate().all(|(i, a)| {
        members[i + 1..].iter().all(|b| {
            let (x, y) = (&names[*a], &names[*b]);
            let together = profile.events_with_both(x.id, y.id) as f64;
            together <= MAX_SHARED_SHARE * x.events.min(y.events) as f64
        })
    })
}

fn alias_suggestion(
    metric: &Metric,
    names: &[Name<'_>],
    member: usize,
    pair: &Pair,
    canonical: &str,
) -> Suggestion {
    let name = names[member].name;
    let other = names[if pair.a == member { pair.b } else { pair.a }].name;
    let reason = format!(
        "`{name}` and `{other}` never occur in one event, {}{}",
        pair.why,
        hand_over_text(&pair.evidence)
    );
    let change = Change::AddAlias {
        field: canonical.to_string(),
        alias: name.to_string(),
    };
    Suggestion::new(
        SuggestionKind::Alias,
        (metric.id, metric.name.as_str()),
        change,
        pair.confidence,
        reason,
        pair.evidence.clone(),
    )
}

fn hand_over_text(evidence: &serde_json::Value) -> String {
    let handing = evidence["series_handing_over"].as_u64().unwrap_or(0);
    let shared = evidence["series_with_both"].as_u64().unwrap_or(0);
    if shared == 0 {
        return String::new();
    }
    format!(", and {handing} of {shared} series switched from one to the other")
}

fn stem_len(name: &str) -> usize {
    parts(name).stem().len()
}
