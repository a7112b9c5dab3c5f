//! Durations in rule and channel definitions: `"500ms"`, `"1s"`, `"5m"`, `"1h"`, `"1d"`, or a
//! JSON number of seconds.

use serde_json::Value;

use crate::error::{invalid, AlertError};

/// Parses `value` (the JSON of field `field`) into milliseconds within `[min_ms, max_ms]`.
pub(crate) fn parse_ms(
    field: &str,
    value: &Value,
    min_ms: i64,
    max_ms: i64,
) -> Result<i64, AlertError> {
    let ms = match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0).round() as i64)
            .ok_or_else(|| invalid(field, format!("{n} is not a non-negative number of seconds")))?,
        Value::String(text) => parse_text(text).ok_or_else(|| {
            invalid(field, format!("{text:?} is not a duration such as \"500ms\", \"10s\", \"5m\", \"1h\" or \"1d\""))
        })?,
        other => return Err(invalid(field, format!("expected a duration such as \"10s\", got {other}"))),
    };
    if ms < min_ms || ms > max_ms {
        return Err(invalid(
            field,
            format!(
                "{} is out of bounds: it must be between {} and {}",
                show(ms),
                show(min_ms),
                show(max_ms)
            ),
        ));
    }
    Ok(ms)
}

fn parse_text(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// The shortest exact text for `ms`, as listed back to users.
pub(crate) fn show(ms: i64) -> String {
    for (unit, unit_ms) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    if ms == 0 {
        "0s".to_string()
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_parse_in_every_unit_and_show_back() {
        for (text, ms) in [
            ("500ms", 500),
            ("1s", 1_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(parse_ms("every", &json!(text), 0, i64::MAX).unwrap(), ms);
            assert_eq!(show(ms), text);
        }
        assert_eq!(parse_ms("every", &json!(1.5), 0, i64::MAX).unwrap(), 1_500);
    }

    #[test]
    fn bad_durations_name_the_field_and_the_problem() {
        for bad in [json!("10"), json!("1w"), json!("s"), json!(-1), json!(true)] {
            let error = parse_ms("every", &bad, 0, i64::MAX)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("every: "), "{error}");
        }
        let error = parse_ms("every", &json!("0s"), 1_000, 86_400_000)
            .unwrap_err()
            .to_string();
        assert!(error.contains("between 1s and 1d"), "{error}");
    }
}
