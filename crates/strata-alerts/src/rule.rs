//! A rule's definition: parsing and checking the JSON of `POST /api/v1/alerts` (everything that
//! needs no data), and showing it back. Checks that need the tenant's schema or the planner are
//! in `evaluate`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::duration::{parse_ms, show};
use crate::error::{invalid, AlertError};
use crate::labels::Labels;

const SECOND_MS: i64 = 1_000;
const DAY_MS: i64 = 86_400_000;
/// Longest pending time, keep-firing time and absence: a week.
const MAX_WAIT_MS: i64 = 7 * DAY_MS;
/// Longest group wait: an hour; grouping is for bursts, not for digests.
const MAX_GROUP_WAIT_MS: i64 = 3_600_000;
/// Default repeat interval while firing, Alertmanager's.
const DEFAULT_REPEAT_MS: i64 = 4 * 3_600_000;
/// Default query rule interval.
const DEFAULT_EVERY_MS: i64 = 10 * SECOND_MS;
/// Longest SQL text or condition of a rule.
const MAX_SQL_BYTES: usize = 16 * 1024;
/// Most `by` fields and static labels of a rule.
const MAX_LABELS: usize = 16;
/// Longest rule or channel name.
pub(crate) const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoData {
    /// A rule-level instance `{}` in state `nodata`, the others resolve.
    Mark,
    /// Every instance resolves.
    Resolve,
    /// Instance `{}` fires.
    Fire,
    KeepLast,
}

#[derive(Debug, Clone)]
pub(crate) enum RuleKind {
    Query {
        sql: String,
        condition: Option<String>,
        every_ms: i64,
        no_data: NoData,
    },
    Event {
        metric: String,
        condition: String,
        by: Option<Vec<String>>,
        value: Option<String>,
    },
    Absence {
        metric: String,
        by: Vec<String>,
        field: Option<String>,
        silence_ms: i64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// Pending time before firing.
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub repeat_interval_ms: i64,
    pub group_wait_ms: i64,
    pub send_resolved: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub kind: RuleKind,
    pub channels: Vec<String>,
    pub timing: Timing,
    /// Static labels added to every instance.
    pub labels: Labels,
}

impl RuleSpec {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.kind {
            RuleKind::Query { .. } => "query",
            RuleKind::Event { .. } => "event",
            RuleKind::Absence { .. } => "absence",
        }
    }

    /// Parses a definition; every error names the key at fault.
    pub(crate) fn parse(body: &Value) -> Result<RuleSpec, AlertError> {
        let object = body
            .as_object()
            .ok_or_else(|| AlertError::Invalid("the rule must be a JSON object".into()))?;
        const KEYS: &[&str] = &[
            "name",
            "kind",
            "sql",
            "condition",
            "every",
            "for",
            "channels",
            "metric",
            "by",
            "field",
            "value",
            "repeat_interval",
            "no_data",
            "keep_firing_for",
            "group_wait",
            "send_resolved",
            "labels",
        ];
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(invalid(
                key,
                format!("unknown key; a rule takes {}", KEYS.join(", ")),
            ));
        }
        let name = parse_name("name", object.get("name"))?;
        let kind = match text(object, "kind")?.as_deref() {
            Some("query") => parse_query(object)?,
            Some("event") => parse_event(object)?,
            Some("absence") => parse_absence(object)?,
            Some(other) => {
                return Err(invalid(
                    "kind",
                    format!("{other:?} is not one of query, event, absence"),
                ))
            }
            None => return Err(invalid("kind", "missing; one of query, event, absence")),
        };
        let timing = parse_timing(object, &kind)?;
        Ok(RuleSpec {
            name,
            kind,
            channels: names_list(object, "channels")?,
            timing,
            labels: static_labels(object)?,
        })
    }

    /// The definition as stored and shown: every key, durations as text.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("kind".into(), json!(self.kind_name()));
        match &self.kind {
            RuleKind::Query {
                sql,
                condition,
                every_ms,
                no_data,
            } => {
                out.insert("sql".into(), json!(sql));
                out.insert("condition".into(), json!(condition));
                out.insert("every".into(), json!(show(*every_ms)));
                out.insert("no_data".into(), json!(no_data_name(*no_data)));
            }
            RuleKind::Event {
                metric,
                condition,
                by,
                value,
            } => {
                out.insert("metric".into(), json!(metric));
                out.insert("condition".into(), json!(condition));
                out.insert("by".into(), json!(by));
                out.insert("value".into(), json!(value));
            }
            RuleKind::Absence {
                metric, by, field, ..
            } => {
                out.insert("metric".into(), json!(metric));
                out.insert("by".into(), json!(by));
                out.insert("field".into(), json!(field));
            }
        }
        let t = &self.timing;
        let for_ms = match self.kind {
            RuleKind::Absence { silence_ms, .. } => silence_ms,
            _ => t.for_ms,
        };
        out.insert("for".into(), json!(show(for_ms)));
        out.insert("keep_firing_for".into(), json!(show(t.keep_firing_for_ms)));
        out.insert("repeat_interval".into(), json!(show(t.repeat_interval_ms)));
        out.insert("group_wait".into(), json!(show(t.group_wait_ms)));
        out.insert("send_resolved".into(), json!(t.send_resolved));
        out.insert("channels".into(), json!(self.channels));
        out.insert("labels".into(), json!(self.labels));
        Value::Object(out)
    }
}

fn parse_query(object: &Map<String, Value>) -> Result<RuleKind, AlertError> {
    let sql = required_sql(object, "sql")?;
    let condition = text(object, "condition")?;
    if let Some(condition) = &condition {
        check_sql_text("condition", condition)?;
    }
    let every_ms = match object.get("every") {
        Some(v) => parse_ms("every", v, SECOND_MS, DAY_MS)?,
        None => DEFAULT_EVERY_MS,
    };
    let no_data = match text(object, "no_data")?.as_deref() {
        None | Some("nodata") => NoData::Mark,
        Some("ok") => NoData::Resolve,
        Some("firing") => NoData::Fire,
        Some("keep_last") => NoData::KeepLast,
        Some(other) => {
            return Err(invalid(
                "no_data",
                format!("{other:?} is not one of nodata, ok, firing, keep_last"),
            ))
        }
    };
    only_for(object, "query", &["metric", "by", "field", "value"])?;
    Ok(RuleKind::Query {
        sql,
        condition,
        every_ms,
        no_data,
    })
}

fn parse_event(object: &Map<String, Value>) -> Result<RuleKind, AlertError> {
    only_for(object, "event", &["sql", "every", "no_data", "field"])?;
    let by = match object.get("by") {
        None | Some(Value::Null) => None,
        Some(_) => Some(names_list(object, "by")?),
    };
    Ok(RuleKind::Event {
        metric: required_text(object, "metric")?,
        condition: required_sql(object, "condition")?,
        by,
        value: text(object, "value")?,
    })
}

fn parse_absence(object: &Map<String, Value>) -> Result<RuleKind, AlertError> {
    only_for(
        object,
        "absence",
        &["sql", "every", "no_data", "condition", "value"],
    )?;
    let silence = object.get("for").ok_or_else(|| {
        invalid(
            "for",
            "missing; how long a series may stay silent, such as \"30s\"",
        )
    })?;
    Ok(RuleKind::Absence {
        metric: required_text(object, "metric")?,
        by: names_list(object, "by")?,
        field: text(object, "field")?,
        silence_ms: parse_ms("for", silence, SECOND_MS, MAX_WAIT_MS)?,
    })
}

fn parse_timing(object: &Map<String, Value>, kind: &RuleKind) -> Result<Timing, AlertError> {
    let duration = |key: &str, default: i64, min: i64, max: i64| match object.get(key) {
        Some(v) => parse_ms(key, v, min, max),
        None => Ok(default),
    };
    // An absence rule's `for` is its silence; it fires as soon as the silence is long enough.
    let for_ms = match kind {
        RuleKind::Absence { .. } => 0,
        _ => duration("for", 0, 0, MAX_WAIT_MS)?,
    };
    let send_resolved = match object.get("send_resolved") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(
                "send_resolved",
                format!("expected true or false, got {other}"),
            ))
        }
    };
    Ok(Timing {
        for_ms,
        keep_firing_for_ms: duration("keep_firing_for", 0, 0, MAX_WAIT_MS)?,
        repeat_interval_ms: duration("repeat_interval", DEFAULT_REPEAT_MS, SECOND_MS, MAX_WAIT_MS)?,
        group_wait_ms: duration("group_wait", 0, 0, MAX_GROUP_WAIT_MS)?,
        send_resolved,
    })
}

/// Keys that make no sense for this kind are refused rather than ignored.
fn only_for(object: &Map<String, Value>, kind: &str, foreign: &[&str]) -> Result<(), AlertError> {
    match foreign.iter().find(|key| object.contains_key(**key)) {
        Some(key) => Err(invalid(key, format!("not a key of {kind} rules"))),
        None => Ok(()),
    }
}

pub(crate) fn parse_name(field: &str, value: Option<&Value>) -> Result<String, AlertError> {
    let name = value
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(field, "missing; a name of letters, digits, '_', '-' or '.'"))?;
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(invalid(
            field,
            format!("{name:?} is not a valid name: 1 to {MAX_NAME_CHARS} letters, digits, '_', '-' or '.'"),
        ));
    }
    Ok(name.to_string())
}

fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, AlertError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(key, format!("expected a string, got {other}"))),
    }
}

fn required_text(object: &Map<String, Value>, key: &str) -> Result<String, AlertError> {
    match text(object, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(key, "missing")),
    }
}

fn required_sql(object: &Map<String, Value>, key: &str) -> Result<String, AlertError> {
    let sql = required_text(object, key)?;
    check_sql_text(key, &sql)?;
    Ok(sql)
}

fn check_sql_text(key: &str, sql: &str) -> Result<(), AlertError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(invalid(key, format!("longer than {MAX_SQL_BYTES} bytes")));
    }
    Ok(())
}

fn names_list(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, AlertError> {
    let value = match object.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(value) => value,
    };
    let items = value
        .as_array()
        .ok_or_else(|| invalid(key, "expected a list of names"))?;
    if items.len() > MAX_LABELS {
        return Err(invalid(key, format!("at most {MAX_LABELS} names")));
    }
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(key, format!("{item} is not a name")))?;
        if !names.iter().any(|n: &String| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

fn static_labels(object: &Map<String, Value>) -> Result<Labels, AlertError> {
    let Some(value) = object.get("labels") else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_object()
        .ok_or_else(|| invalid("labels", "expected an object of text values"))?;
    if map.len() > MAX_LABELS {
        return Err(invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(invalid("labels", format!("label {k:?} must be text"))),
        })
        .collect()
}

fn no_data_name(no_data: NoData) -> &'static str {
    match no_data {
        NoData::Mark => "nodata",
        NoData::Resolve => "ok",
        NoData::Fire => "firing",
        NoData::KeepLast => "keep_last",
    }
}
