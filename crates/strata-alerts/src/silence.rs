//! Silences: parsing `POST /api/v1/silences` and deciding whether one covers an instance now.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use strata_catalog::alerting::SilenceRow;
use strata_core::TenantId;

use crate::error::{invalid, AlertError};
use crate::labels::{self, Labels};

/// Most matchers of one silence, and the longest comment.
const MAX_MATCHERS: usize = 16;
const MAX_COMMENT_CHARS: usize = 1_000;

/// Parses a creation body into a row with a fresh id.
pub(crate) fn parse(tenant: TenantId, body: &Value, now_ms: i64) -> Result<SilenceRow, AlertError> {
    let object = body
        .as_object()
        .ok_or_else(|| AlertError::Invalid("the silence must be a JSON object".into()))?;
    const KEYS: &[&str] = &["matchers", "starts", "until", "comment"];
    if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(
            key,
            format!("unknown key; a silence takes {}", KEYS.join(", ")),
        ));
    }
    let matchers = object
        .get("matchers")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "matchers",
                "missing; an object of label name to exact value, such as {\"alert\":\"hot\"}",
            )
        })?;
    if matchers.is_empty() || matchers.len() > MAX_MATCHERS {
        return Err(invalid(
            "matchers",
            format!("expected 1 to {MAX_MATCHERS} matchers"),
        ));
    }
    let mut parsed = Labels::new();
    for (name, value) in matchers {
        let text = value
            .as_str()
            .ok_or_else(|| invalid("matchers", format!("the value of {name:?} must be text")))?;
        parsed.insert(name.clone(), text.to_string());
    }
    let starts_ms = match object.get("starts") {
        None | Some(Value::Null) => now_ms,
        Some(v) => time_ms("starts", v)?,
    };
    let until_ms = time_ms("until", object.get("until").unwrap_or(&Value::Null))?;
    if until_ms <= starts_ms {
        return Err(invalid("until", "must be after the start"));
    }
    let comment = match object.get("comment") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= MAX_COMMENT_CHARS => s.clone(),
        Some(_) => {
            return Err(invalid(
                "comment",
                format!("expected text of at most {MAX_COMMENT_CHARS} characters"),
            ))
        }
    };
    Ok(SilenceRow {
        id: crate::service::new_id(),
        tenant,
        matchers: json!(parsed),
        starts_ms,
        until_ms,
        comment,
        created_ms: now_ms,
    })
}

fn time_ms(field: &str, value: &Value) -> Result<i64, AlertError> {
    let text = value.as_str().ok_or_else(|| {
        invalid(
            field,
            "expected an RFC 3339 time such as 2026-12-06T12:00:00Z",
        )
    })?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| invalid(field, format!("{text:?} is not an RFC 3339 time: {e}")))
}

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn view(row: &SilenceRow, now_ms: i64) -> Value {
    json!({
        "id": row.id,
        "matchers": row.matchers,
        "starts": rfc3339(row.starts_ms),
        "until": rfc3339(row.until_ms),
        "comment": row.comment,
        "active": covers_time(row, now_ms),
    })
}

fn covers_time(row: &SilenceRow, now_ms: i64) -> bool {
    row.starts_ms <= now_ms && now_ms < row.until_ms
}

/// Whether any of `silences` (of the rule's tenant) covers this instance now.
pub(crate) fn silenced(
    silences: &[SilenceRow],
    rule_name: &str,
    labels: &Labels,
    now_ms: i64,
) -> bool {
    silences.iter().any(|s| {
        let matchers: Labels = serde_json::from_value(s.matchers.clone()).unwrap_or_default();
        covers_time(s, now_ms)
            && !matchers.is_empty()
            && labels::matches(&matchers, rule_name, labels)
    })
}
