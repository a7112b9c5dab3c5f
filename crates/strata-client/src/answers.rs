//! The JSON answers of the API calls Strata's own tools decode, as the server writes them.

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Answer of `POST /api/v1/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAnswer {
    pub accepted: u64,
    pub rejected: u64,
    #[serde(default)]
    pub errors: Vec<WriteRejection>,
}

/// One rejected event of a [`WriteAnswer`]: its position in the body and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRejection {
    pub index: u64,
    pub error: String,
}

/// Answer of `POST /api/v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCreated {
    pub tenant: String,
    pub admin_key: String,
    pub key_id: String,
}

/// Answer of `POST /api/v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub id: String,
    pub key: String,
    pub role: String,
}

/// Answer of `POST /api/v1/compact`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactAnswer {
    /// The lowest watermark over the tenant's metrics after the run (RFC 3339), if any.
    #[serde(default)]
    pub watermark: Option<String>,
    pub files_written: u64,
    pub rows: u64,
    #[serde(default)]
    pub metrics: Vec<MetricCompactAnswer>,
    /// Files rewritten by lazy re-typing in the same run.
    #[serde(default)]
    pub retyped_files: u64,
}

/// One metric's part of a [`CompactAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCompactAnswer {
    pub metric: String,
    #[serde(default)]
    pub watermark: Option<String>,
    pub files_written: u64,
    pub rows: u64,
    #[serde(default)]
    pub duplicates_skipped: u64,
}

/// Answer of `POST /api/v1/sql` in the `json` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlAnswer {
    pub columns: Vec<SqlColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A column of a [`SqlAnswer`]: its name and Strata's type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

impl SqlAnswer {
    /// The single integer of a `SELECT count(*) ...` answer.
    pub fn single_count(&self) -> Result<u64, ApiError> {
        let cell = match self.rows.as_slice() {
            [row] if row.len() == 1 => &row[0],
            _ => {
                return Err(ApiError::Decode(format!(
                    "expected one row with one column, got {} rows",
                    self.rows.len()
                )))
            }
        };
        // Servers may render 64-bit integers as strings to keep them exact in JSON.
        let count = match cell {
            serde_json::Value::Number(number) => number.as_u64(),
            serde_json::Value::String(text) => text.parse().ok(),
            _ => None,
        };
        count.ok_or_else(|| ApiError::Decode(format!("expected a count, got {cell}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decode_from_numbers_and_strings() {
        let answer: SqlAnswer = serde_json::from_str(
            r#"{"columns":[{"name":"count(*)","type":"Int64"}],"rows":[[42]]}"#,
        )
        .unwrap();
        assert_eq!(answer.single_count().unwrap(), 42);
        let answer: SqlAnswer =
            serde_json::from_str(r#"{"columns":[{"name":"c","type":"Int64"}],"rows":[["7"]]}"#)
                .unwrap();
        assert_eq!(answer.single_count().unwrap(), 7);
        let empty: SqlAnswer = serde_json::from_str(r#"{"columns":[],"rows":[]}"#).unwrap();
        assert!(empty.single_count().is_err());
        let text: SqlAnswer =
            serde_json::from_str(r#"{"columns":[{"name":"c","type":"Utf8"}],"rows":[["x"]]}"#)
                .unwrap();
        assert!(text.single_count().is_err());
    }

    #[test]
    fn compact_answer_decodes_the_server_shape() {
        let answer: CompactAnswer = serde_json::from_str(
            r#"{"watermark":"2026-01-01T03:00:00.000Z","files_written":3,"rows":120,
                "metrics":[{"metric":"readings","watermark":"2026-01-01T03:00:00.000Z",
                "files_written":2,"rows":60,"duplicates_skipped":0}],"retyped_files":0}"#,
        )
        .unwrap();
        assert_eq!(answer.rows, 120);
        assert_eq!(answer.metrics[0].metric, "readings");
        assert_eq!(answer.metrics[0].files_written, 2);
        let nothing: CompactAnswer =
            serde_json::from_str(r#"{"watermark":null,"files_written":0,"rows":0}"#).unwrap();
        assert!(nothing.metrics.is_empty());
    }

    #[test]
    fn write_answer_tolerates_missing_errors() {
        let ack: WriteAnswer = serde_json::from_str(r#"{"accepted":3,"rejected":0}"#).unwrap();
        assert_eq!(ack.accepted, 3);
        assert!(ack.errors.is_empty());
    }
}
