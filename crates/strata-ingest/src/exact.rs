//! Numbers that neither i64 nor f64 holds exactly keep the text the device sent.
//!
//! serde_json reads `18446744073709551615` as a u64 and `0.10000000000000000001` as the f64
//! `0.1`; stored as `Value::Int`/`Value::Float` they would silently change. Like any value that
//! does not fit its type, such a number is stored as its sent text instead (JSON kind still
//! `number`), so `strata_raw` and text reads return it unchanged and casts fail visibly.
//!
//! Detecting them costs one byte scan per event: a number token with at most 15 significant
//! digits and no exponent always fits (any such decimal survives f64 and back, DBL_DIG = 15, and
//! any such integer fits i64). Only an event holding a longer token or an exponent is walked
//! again through `RawValue` to find the dotted path of each inexact number.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// Significant decimal digits every f64 round trip keeps (DBL_DIG).
const F64_EXACT_DIGITS: usize = 15;

/// `(dotted field path, sent text)` pairs.
pub(crate) type SentNumbers = Vec<(String, String)>;

/// `(dotted field path, sent text)` of every number (or array holding one) that i64/f64 would
/// change, for an event's raw bytes. Empty for nearly every event.
pub(crate) fn inexact_numbers(raw: &[u8]) -> SentNumbers {
    let mut out = Vec::new();
    if !any_number_token(raw, is_inexact_token) {
        return out;
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return out;
    };
    walk(text.trim(), "", &mut out);
    out
}

/// Calls `found` on each number token outside strings; true as soon as it answers true.
fn any_number_token(raw: &[u8], mut found: impl FnMut(&[u8]) -> bool) -> bool {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => i = string_end(raw, i + 1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < raw.len()
                    && matches!(raw[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if found(&raw[start..i]) {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

/// The position after the closing quote of the string whose text starts at `from`. Jumps from
/// quote or backslash to the next with `memchr2`: walking text byte by byte was the largest part
/// of this scan, which runs on every event (issue 14's parse profile).
fn string_end(raw: &[u8], mut from: usize) -> usize {
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &raw[from.min(raw.len())..]) {
        let at = from + offset;
        if raw[at] == b'"' {
            return at + 1;
        }
        // An escape consumes the next byte, whatever it is (`\"` included).
        from = at + 2;
    }
    raw.len()
}

/// Whether a token is inexact: one that could be (more than 15 digits, or an exponent) and is.
fn is_inexact_token(token: &[u8]) -> bool {
    let could_be = token.iter().any(|b| matches!(b, b'e' | b'E'))
        || token.iter().filter(|b| b.is_ascii_digit()).count() > F64_EXACT_DIGITS;
    // Number tokens are ASCII, so the conversion cannot fail.
    could_be && std::str::from_utf8(token).is_ok_and(|text| !is_exact(text))
}

/// Whether the value serde_json makes of `token` (i64, else f64) equals the decimal sent.
pub(crate) fn is_exact(token: &str) -> bool {
    if token.parse::<i64>().is_ok() {
        return true;
    }
    if !token.contains(['.', 'e', 'E']) {
        // An integer beyond i64: a u64 or f64 is not a `Value::Int`.
        return false;
    }
    match token.parse::<f64>() {
        Ok(float) if float.is_finite() => {
            let shortest = format!("{float:e}");
            matches!((decimal(token), decimal(&shortest)), (Some(a), Some(b)) if a == b)
        }
        _ => false,
    }
}

/// A decimal as (negative, significant digits, power of ten); zero is `(false, "", 0)`.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    let trimmed = digits.trim_end_matches('0');
    let frac_len = i64::try_from(frac.len()).ok()?;
    let zeros = i64::try_from(digits.len() - trimmed.len()).ok()?;
    let power = exponent.checked_sub(frac_len)?.checked_add(zeros)?;
    Some((negative, trimmed.to_string(), power))
}

/// Records the inexact numbers under `text` (one JSON value) at `path`.
fn walk(text: &str, path: &str, out: &mut Vec<(String, String)>) {
    match text.as_bytes().first() {
        Some(b'{') => {
            // A map keeps the last value of a repeated key, as the event object does.
            let Ok(members) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) else {
                return;
            };
            for (key, value) in members {
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                walk(value.get(), &child, out);
            }
        }
        // Arrays are kept as JSON text; re-serializing would change the number, so the array
        // keeps its sent text instead.
        Some(b'[') if any_number_token(text.as_bytes(), is_inexact_token) => {
            out.push((path.to_string(), text.to_string()));
        }
        Some(b'-' | b'0'..=b'9') if !is_exact(text) => {
            out.push((path.to_string(), text.to_string()))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactness_of_number_tokens() {
        for exact in [
            "0",
            "-0",
            "1",
            "-9223372036854775808",
            "9223372036854775807",
            "0.1",
            "1.50",
            "1e3",
            "2.5E-3",
            "123456789012345.6",
            "1.7976931348623157e308",
            "-0.0",
        ] {
            assert!(is_exact(exact), "{exact}");
        }
        for inexact in [
            "9223372036854775808",
            "18446744073709551615",
            "123456789012345678901234567890",
            "0.10000000000000000001",
            "3.14159265358979323846",
            "1e-400",
        ] {
            assert!(!is_exact(inexact), "{inexact}");
        }
    }

    #[test]
    fn finds_paths_of_inexact_numbers_only() {
        let raw = br#"{"a":18446744073709551615,"b":{"c":0.10000000000000000001,"d":1.5},
            "s":"18446744073709551615","e":[1,2.00000000000000000001],"f":[1,2],"g":12}"#;
        let found = inexact_numbers(raw);
        assert_eq!(
            found,
            vec![
                ("a".to_string(), "18446744073709551615".to_string()),
                ("b.c".to_string(), "0.10000000000000000001".to_string()),
                ("e".to_string(), "[1,2.00000000000000000001]".to_string()),
            ]
        );
        assert!(inexact_numbers(br#"{"x":"\"12345678901234567890","y":1.25}"#).is_empty());
    }
}
