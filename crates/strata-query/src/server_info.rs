//! What Strata says it is to SQL clients (issue 20): `version()` in PostgreSQL's shape and
//! `current_setting(name)`, the same settings `SHOW` answers on the Postgres wire, and
//! `to_regtype(name)`, which psycopg calls to look up extension types such as hstore.
//!
//! SQLAlchemy, Metabase, DBeaver and Superset parse `version()` with a pattern for
//! `PostgreSQL <major>.<minor>`: DataFusion's own `Apache DataFusion 55.2.0, ...` made
//! SQLAlchemy refuse to connect. Grafana's PostgreSQL data source asks
//! `current_setting('server_version_num')` when it connects.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The PostgreSQL version the Postgres door speaks for (its `server_version` parameter).
pub const PG_SERVER_VERSION: &str = "16.6";
/// `server_version_num` of [`PG_SERVER_VERSION`].
pub const PG_SERVER_VERSION_NUM: &str = "160006";

/// `version()`'s text: PostgreSQL's shape, then what actually answers.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {PG_SERVER_VERSION} (Strata {}, Apache DataFusion {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// The value of a server setting clients read, or `None` for one Strata does not have.
/// Session-dependent settings (`application_name`) are the Postgres door's to answer.
pub fn setting(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => PG_SERVER_VERSION,
        "server_version_num" => PG_SERVER_VERSION_NUM,
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "timezone" | "time zone" => "UTC",
        "intervalstyle" => "postgres",
        "transaction_isolation" | "transaction isolation level" => "read committed",
        "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "search_path" => "public",
        "max_identifier_length" => "63",
        "bytea_output" => "hex",
        "extra_float_digits" => "1",
        "lc_collate" | "lc_ctype" => "C",
        "is_superuser" => "off",
        _ => return None,
    })
}

/// `version()`, `current_setting(text)` and `to_regtype(text)`, registered in every tenant
/// session.
pub fn server_info_functions() -> Vec<ScalarUDF> {
    let version = Arc::new(version_text());
    vec![
        create_udf(
            "version",
            vec![],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(move |_args: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    version.as_str().to_string(),
                ))))
            }),
        ),
        create_udf(
            "current_setting",
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(current_setting),
        ),
        // Always NULL: Strata has only PostgreSQL's built-in types, which clients know by
        // their fixed oids; psycopg (and so SQLAlchemy) asks this for extension types such
        // as hstore and goes on without them when the answer is NULL.
        create_udf(
            "to_regtype",
            vec![DataType::Utf8],
            DataType::Int32,
            Volatility::Stable,
            Arc::new(|_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
        ),
        // Always NULL: no column of a metric is backed by a sequence. SQLAlchemy's column
        // inspection asks it for every column.
        create_udf(
            "pg_get_serial_sequence",
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(|_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
        ),
        // Every collation is visible: Strata has no schemas that could hide one.
        create_udf(
            "pg_collation_is_visible",
            vec![DataType::Int32],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(|_args: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
            }),
        ),
        ScalarUDF::from(JsonBuildObject::new()),
    ]
}

/// `json_build_object(key, value, ...)`: PostgreSQL's JSON object of alternating keys and
/// values, as text. SQLAlchemy's column inspection builds identity and collation details with
/// it (in branches Strata's columns never take, but DataFusion plans them all).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        JsonBuildObject {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Execution(
                "json_build_object takes alternating keys and values".into(),
            ));
        }
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let objects = (0..args.number_rows)
            .map(|row| json_object_at(&columns, row).map(Some))
            .collect::<datafusion::common::Result<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(objects)))
    }
}

fn json_object_at(
    columns: &[datafusion::arrow::array::ArrayRef],
    row: usize,
) -> datafusion::common::Result<String> {
    let mut object = serde_json::Map::new();
    for pair in columns.chunks(2) {
        let key = ScalarValue::try_from_array(&pair[0], row)?;
        let value = ScalarValue::try_from_array(&pair[1], row)?;
        object.insert(scalar_text(&key).unwrap_or_default(), scalar_json(&value));
    }
    Ok(serde_json::Value::Object(object).to_string())
}

fn scalar_text(value: &ScalarValue) -> Option<String> {
    (!value.is_null()).then(|| match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    })
}

fn scalar_json(value: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        v if v.is_null() => Json::Null,
        ScalarValue::Boolean(Some(b)) => Json::Bool(*b),
        v if v.data_type().is_numeric() => {
            serde_json::from_str(&v.to_string()).unwrap_or_else(|_| Json::String(v.to_string()))
        }
        other => Json::String(scalar_text(other).unwrap_or_default()),
    }
}

/// PostgreSQL raises an error for an unknown setting, so a client learns the name is wrong.
fn current_setting(args: &[ColumnarValue]) -> datafusion::common::Result<ColumnarValue> {
    let lookup = |name: Option<&str>| -> datafusion::common::Result<Option<String>> {
        let Some(name) = name else {
            return Ok(None);
        };
        match setting(&name.to_ascii_lowercase()) {
            Some(value) => Ok(Some(value.to_string())),
            None => Err(DataFusionError::Execution(format!(
                "unrecognized configuration parameter \"{name}\""
            ))),
        }
    };
    match args.first() {
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(name))) => Ok(ColumnarValue::Scalar(
            ScalarValue::Utf8(lookup(name.as_deref())?),
        )),
        Some(ColumnarValue::Array(array)) => {
            let names = array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Execution("current_setting takes text".into()))?;
            let values = (0..names.len())
                .map(|i| lookup((!names.is_null(i)).then(|| names.value(i))))
                .collect::<datafusion::common::Result<StringArray>>()?;
            Ok(ColumnarValue::Array(Arc::new(values)))
        }
        _ => Err(DataFusionError::Execution(
            "current_setting takes one text argument".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_reads_as_postgresql_then_names_strata() {
        let text = version_text();
        assert!(text.starts_with("PostgreSQL 16.6 (Strata "), "{text}");
        assert!(text.contains("Apache DataFusion "), "{text}");
        assert_eq!(setting("server_version_num"), Some("160006"));
        assert_eq!(setting("no_such_thing"), None);
    }

    #[test]
    fn json_build_object_pairs_keys_with_values() {
        let columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["start", "start"])),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                Some(1),
                None,
            ])),
            Arc::new(StringArray::from(vec!["name", "name"])),
            Arc::new(StringArray::from(vec![Some("a\"b"), Some("c")])),
        ];
        assert_eq!(
            json_object_at(&columns, 0).unwrap(),
            r#"{"name":"a\"b","start":1}"#
        );
        assert_eq!(
            json_object_at(&columns, 1).unwrap(),
            r#"{"name":"c","start":null}"#
        );
    }
}
