use thiserror::Error;

/// Longest metric, field, alias or tenant name accepted, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// Every metric has this column; no field may take its name.
pub const RESERVED_FIELD_NAME: &str = "timestamp";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name {name:?} is {len} bytes; the limit is {MAX_NAME_BYTES}")]
    TooLong {
        kind: &'static str,
        name: String,
        len: usize,
    },
    #[error("{kind} name {name:?} contains a control character at byte {offset}")]
    ControlCharacter {
        kind: &'static str,
        name: String,
        offset: usize,
    },
}

/// Checks the rules every user-supplied name follows. `kind` ("metric", "field", "alias",
/// "tenant") only shapes the error message so the caller's user learns which input was wrong.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_BYTES {
        // Keep the echoed name short so an oversized input does not produce an oversized error.
        let shown: String = name.chars().take(32).collect();
        return Err(NameError::TooLong {
            kind,
            name: format!("{shown}..."),
            len: name.len(),
        });
    }
    // Printable ASCII (nearly every name) has no control character: checking bytes first skips
    // the char decoding, and this runs for every field of every event (issue 14).
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    if let Some((offset, _)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(NameError::ControlCharacter {
            kind,
            name: name.escape_debug().to_string(),
            offset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert!(validate_name("field", "gps.lat").is_ok());
        assert!(validate_name("metric", "new machine").is_ok());
        assert!(validate_name("field", &"x".repeat(MAX_NAME_BYTES)).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_reason() {
        assert_eq!(
            validate_name("field", ""),
            Err(NameError::Empty { kind: "field" })
        );
        let long = "é".repeat(200);
        assert!(matches!(
            validate_name("alias", &long),
            Err(NameError::TooLong { len: 400, .. })
        ));
        assert!(matches!(
            validate_name("metric", "a\nb"),
            Err(NameError::ControlCharacter { offset: 1, .. })
        ));
        // Past the printable-ASCII fast path: DEL, and a C1 control after a multi-byte char.
        assert!(matches!(
            validate_name("field", "a\u{7f}"),
            Err(NameError::ControlCharacter { offset: 1, .. })
        ));
        assert!(matches!(
            validate_name("field", "é\u{85}"),
            Err(NameError::ControlCharacter { offset: 2, .. })
        ));
        assert!(validate_name("field", "température ~").is_ok());
    }
}
