//! The schema the benchmark declares before ingest, as plain contract calls, so a reader can
//! see exactly what was sent and a test can check it without a server.

use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_client::{ApiError, Client, Method, StatusCode};

use crate::generator::{
    DIAGNOSTICS, DIAGNOSTICS_FIELDS, READINGS, READINGS_FIELDS, RENAMED_FIELDS, SERIES_KEY,
    TAG_FIELDS,
};
use crate::BenchError;

/// One schema call of the HTTP contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaOp {
    /// `POST`, `PUT` or `PATCH`.
    pub method: String,
    /// Path below the base URL, e.g. `/api/v1/schema/metrics/readings/fields/latitude`.
    pub path: String,
    pub body: serde_json::Value,
}

impl SchemaOp {
    fn new(method: &Method, path: String, body: serde_json::Value) -> SchemaOp {
        SchemaOp {
            method: method.to_string(),
            path,
            body,
        }
    }
}

/// What applying a schema did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSetupReport {
    pub applied: usize,
    /// Calls answered 409 Conflict (already declared by an earlier run); tolerated so a
    /// benchmark can run twice against one tenant.
    pub already_present: Vec<String>,
}

/// `POST /api/v1/schema/metrics` for a metric.
pub fn create_metric_op(metric: &str) -> SchemaOp {
    debug_assert!(is_path_safe(metric));
    SchemaOp::new(
        &Method::POST,
        "/api/v1/schema/metrics".to_string(),
        json!({ "name": metric }),
    )
}

/// `PUT /api/v1/schema/metrics/{metric}/fields/{field}` declaring a type and aliases.
pub fn declare_field_op(metric: &str, field: &str, field_type: &str, aliases: &[&str]) -> SchemaOp {
    debug_assert!(is_path_safe(metric) && is_path_safe(field));
    SchemaOp::new(
        &Method::PUT,
        format!("/api/v1/schema/metrics/{metric}/fields/{field}"),
        json!({ "type": field_type, "aliases": aliases }),
    )
}

/// `PATCH /api/v1/schema/metrics/{metric}` setting the series keys.
pub fn series_keys_op(metric: &str, series_keys: &[&str]) -> SchemaOp {
    debug_assert!(is_path_safe(metric));
    SchemaOp::new(
        &Method::PATCH,
        format!("/api/v1/schema/metrics/{metric}"),
        json!({ "series_keys": series_keys }),
    )
}

/// The IoT workload's schema: both metrics, string tags, double sensors, the aliases renamed
/// devices need (`latitude` ← `lat`, `longitude` ← `lon`, `fuel_state` ← `fuel`) and the
/// series key `name`. The unknown extras (`firmware_note`, `debug_code`) stay undeclared.
pub fn workload_schema() -> Vec<SchemaOp> {
    let mut ops = Vec::new();
    for (metric, numeric_fields) in [
        (READINGS, READINGS_FIELDS.as_slice()),
        (DIAGNOSTICS, DIAGNOSTICS_FIELDS.as_slice()),
    ] {
        ops.push(create_metric_op(metric));
        for tag in TAG_FIELDS {
            ops.push(declare_field_op(metric, tag, "string", &[]));
        }
        for field in numeric_fields {
            let aliases: Vec<&str> = RENAMED_FIELDS
                .iter()
                .filter(|(canonical, _)| canonical == field)
                .map(|(_, alias)| *alias)
                .collect();
            ops.push(declare_field_op(metric, field, "double", &aliases));
        }
        ops.push(series_keys_op(metric, &[SERIES_KEY]));
    }
    ops
}

/// Applies schema calls in order with an admin key. 409 Conflict counts as already present;
/// any other failure stops and is returned.
pub fn apply_schema(
    client: &Client,
    admin_key: &str,
    ops: &[SchemaOp],
) -> Result<SchemaSetupReport, BenchError> {
    let mut report = SchemaSetupReport::default();
    for op in ops {
        let method = Method::from_bytes(op.method.as_bytes()).map_err(|_| {
            BenchError::InvalidConfig(format!("schema call has no valid method: {:?}", op.method))
        })?;
        let (status, text) = client.send_json_raw(method.clone(), &op.path, admin_key, &op.body)?;
        if status == StatusCode::CONFLICT {
            tracing::warn!(path = %op.path, answer = %text, "schema call conflicts; assuming an earlier run declared it");
            report
                .already_present
                .push(format!("{} {}", op.method, op.path));
        } else if status.is_success() {
            report.applied += 1;
        } else {
            let url = format!("{}{}", client.base_url(), op.path);
            return Err(BenchError::Context {
                context: format!("{method} {url}"),
                cause: Box::new(ApiError::from_answer(status, &text).into()),
            });
        }
    }
    Ok(report)
}

/// Names put into URL paths unescaped must not need escaping.
fn is_path_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(ops: &'a [SchemaOp], method: &str, path: &str) -> &'a SchemaOp {
        ops.iter()
            .find(|op| op.method == method && op.path == path)
            .unwrap_or_else(|| panic!("no {method} {path}"))
    }

    #[test]
    fn workload_schema_declares_types_aliases_and_series_keys() {
        let ops = workload_schema();
        let latitude = find(
            &ops,
            "PUT",
            "/api/v1/schema/metrics/readings/fields/latitude",
        );
        assert_eq!(latitude.body, json!({"type": "double", "aliases": ["lat"]}));
        let longitude = find(
            &ops,
            "PUT",
            "/api/v1/schema/metrics/readings/fields/longitude",
        );
        assert_eq!(
            longitude.body,
            json!({"type": "double", "aliases": ["lon"]})
        );
        let fuel = find(
            &ops,
            "PUT",
            "/api/v1/schema/metrics/diagnostics/fields/fuel_state",
        );
        assert_eq!(fuel.body, json!({"type": "double", "aliases": ["fuel"]}));
        let velocity = find(
            &ops,
            "PUT",
            "/api/v1/schema/metrics/readings/fields/velocity",
        );
        assert_eq!(velocity.body, json!({"type": "double", "aliases": []}));
        let fleet = find(
            &ops,
            "PUT",
            "/api/v1/schema/metrics/diagnostics/fields/fleet",
        );
        assert_eq!(fleet.body, json!({"type": "string", "aliases": []}));
        for metric in [READINGS, DIAGNOSTICS] {
            let keys = find(&ops, "PATCH", &format!("/api/v1/schema/metrics/{metric}"));
            assert_eq!(keys.body, json!({"series_keys": ["name"]}));
            // The metric must exist before its fields are declared.
            let create = ops
                .iter()
                .position(|op| op.method == "POST" && op.body == json!({"name": metric}))
                .unwrap();
            let first_field = ops
                .iter()
                .position(|op| {
                    op.path
                        .starts_with(&format!("/api/v1/schema/metrics/{metric}/"))
                })
                .unwrap();
            assert!(create < first_field);
        }
        // 2 metrics x (create + 5 tags + series keys) + 7 readings + 3 diagnostics fields.
        assert_eq!(ops.len(), 2 * 7 + 7 + 3);
        assert!(!ops.iter().any(|op| op.path.contains("firmware_note")));
    }

    #[test]
    fn path_safety() {
        assert!(is_path_safe("fuel_state"));
        assert!(!is_path_safe("a/b"));
        assert!(!is_path_safe(""));
        assert!(!is_path_safe("new machine"));
    }
}
