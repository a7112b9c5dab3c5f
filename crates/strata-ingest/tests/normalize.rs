//! Metric resolution, timestamps in every accepted form, flattening and validation.

use serde_json::{json, Value as JsonValue};
use strata_core::{JsonKind, Limits, Value};
use strata_ingest::{
    metric_name, normalize, parse_timestamp, split_body, validate_timestamp_pattern, BodyFormat,
    EventError, EventObject, Field, MetricKeyConfig, NormalizedEvent, TimestampConfig,
    MAX_NESTING_DEPTH,
};

/// 2015-01-12T10:12:15Z, the seed's "new machine" timestamp.
const SEED_MS: i64 = 1_421_057_535_000;
/// 2015-01-12T00:00:00Z.
const SEED_MIDNIGHT_MS: i64 = 1_421_020_800_000;

fn object(value: JsonValue) -> EventObject<'static> {
    match value {
        JsonValue::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn norm(value: JsonValue) -> Result<NormalizedEvent<'static>, EventError> {
    normalize(
        0,
        object(value),
        None,
        &TimestampConfig::default(),
        &Limits::default(),
    )
}

fn ts(value: JsonValue) -> Result<i64, EventError> {
    parse_timestamp(&value, &[], &[])
}

/// The fields with owned names, to compare against literals.
fn owned(fields: &[Field<'_>]) -> Vec<(String, Value, JsonKind)> {
    fields
        .iter()
        .map(|(name, value, kind)| (name.to_string(), value.clone(), *kind))
        .collect()
}

fn field<'e>(event: &'e NormalizedEvent<'_>, name: &str) -> &'e Field<'e> {
    event
        .fields
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name} in {event:?}"))
}

#[test]
fn seed_new_machine_record_end_to_end() {
    let body = br#"{
        "source": "new machine",
        "timestamp": "January 12, 2015 10:12:15",
        "temperature": "15",
        "pressure": "4",
        "gallons": "5"
    }"#;
    let events = split_body(body, BodyFormat::Json, &Limits::default()).unwrap();
    let event = events[0].parsed.clone().unwrap();
    let keys = strings(&["metrictype", "source"]);
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &keys,
    };
    let (metric, key) = metric_name(&event, &cfg).unwrap();
    assert_eq!((metric, key), ("new machine", Some("source")));
    let key = key.map(str::to_string);

    let normalized = normalize(
        events[0].index,
        event.clone(),
        key.as_deref(),
        &TimestampConfig::default(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(normalized.timestamp_ms, SEED_MS);
    assert_eq!(
        owned(&normalized.fields),
        vec![
            (
                "gallons".to_string(),
                Value::Str("5".into()),
                JsonKind::String
            ),
            (
                "pressure".to_string(),
                Value::Str("4".into()),
                JsonKind::String
            ),
            (
                "temperature".to_string(),
                Value::Str("15".into()),
                JsonKind::String
            ),
        ],
        "metric key and timestamp are consumed; string numbers stay strings"
    );
}

// ---- metric names ----

#[test]
fn query_metric_wins_over_event_keys() {
    let event = object(json!({"metrictype": "a", "source": "b"}));
    let keys = strings(&["metrictype", "source"]);
    let cfg = MetricKeyConfig {
        query_metric: Some("from_query"),
        metric_keys: &keys,
    };
    assert_eq!(metric_name(&event, &cfg).unwrap(), ("from_query", None));
}

#[test]
fn first_metric_key_holding_a_non_empty_string_wins() {
    let keys = strings(&["metrictype", "source"]);
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &keys,
    };
    let both = object(json!({"metrictype": "a", "source": "b"}));
    assert_eq!(metric_name(&both, &cfg).unwrap(), ("a", Some("metrictype")));
    let second = object(json!({"source": "b"}));
    assert_eq!(metric_name(&second, &cfg).unwrap(), ("b", Some("source")));
    let empty_first = object(json!({"metrictype": "", "source": "b"}));
    assert_eq!(
        metric_name(&empty_first, &cfg).unwrap(),
        ("b", Some("source"))
    );
    let number_first = object(json!({"metrictype": 5, "source": "b"}));
    assert_eq!(
        metric_name(&number_first, &cfg).unwrap(),
        ("b", Some("source"))
    );
}

#[test]
fn losing_metric_keys_stay_fields() {
    let keys = strings(&["metrictype", "source"]);
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &keys,
    };
    let event = object(json!({"metrictype": "a", "source": "b", "timestamp": 1}));
    let (_, key) = metric_name(&event, &cfg).unwrap();
    let key = key.map(str::to_string);
    let normalized = normalize(
        0,
        event,
        key.as_deref(),
        &TimestampConfig::default(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        owned(&normalized.fields),
        vec![(
            "source".to_string(),
            Value::Str("b".into()),
            JsonKind::String
        )]
    );
}

#[test]
fn empty_metric_keys_mean_metrictype() {
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &[],
    };
    let event = object(json!({"metrictype": "thermostat"}));
    assert_eq!(
        metric_name(&event, &cfg).unwrap(),
        ("thermostat", Some("metrictype"))
    );
}

#[test]
fn metric_errors_name_the_keys() {
    let keys = strings(&["metrictype", "source"]);
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &keys,
    };
    let err = metric_name(&object(json!({"other": "x"})), &cfg).unwrap_err();
    assert_eq!(
        err,
        EventError::NoMetric {
            tried: strings(&["metrictype", "source"])
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("metrictype") && text.contains("source"),
        "{text}"
    );
    assert_eq!(err.stage(), "metric");

    let err = metric_name(&object(json!({"source": {"a": 1}})), &cfg).unwrap_err();
    assert_eq!(
        err,
        EventError::MetricNotString {
            key: "source".into()
        }
    );
    assert!(err.to_string().contains("\"source\""));
    assert_eq!(err.stage(), "metric");

    let err = metric_name(&object(json!({"metrictype": "bad\nname"})), &cfg).unwrap_err();
    assert!(
        matches!(&err, EventError::InvalidMetricName { key, .. } if key == "metrictype"),
        "{err:?}"
    );
    assert!(err.to_string().contains("metrictype"));
    assert_eq!(err.stage(), "metric");

    let err = metric_name(
        &object(json!({})),
        &MetricKeyConfig {
            query_metric: Some(""),
            metric_keys: &keys,
        },
    )
    .unwrap_err();
    assert!(matches!(err, EventError::InvalidMetricName { .. }));
}

// ---- timestamps ----

#[test]
fn numeric_timestamps_are_epoch_millis() {
    assert_eq!(ts(json!(SEED_MS)).unwrap(), SEED_MS);
    assert_eq!(ts(json!(-5)).unwrap(), -5);
    assert_eq!(ts(json!(0)).unwrap(), 0);
    // Fractions round down to the millisecond, like a sub-millisecond RFC 3339 fraction.
    assert_eq!(ts(json!(1.9)).unwrap(), 1);
    assert_eq!(ts(json!(-1.9)).unwrap(), -2);
    assert_eq!(ts(json!(1421057535000.75)).unwrap(), SEED_MS);
    assert_eq!(
        ts(json!("1969-12-31T23:59:59.9981Z")).unwrap(),
        ts(json!(-1.9)).unwrap()
    );
    // Not representable as i64 millis, or not by Arrow nanoseconds: out of range.
    for value in [
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(-8_334_632_851_200_001i64),
        json!(strata_core::MAX_TIMESTAMP_MS + 1),
        json!(strata_core::MIN_TIMESTAMP_MS - 1),
        json!("9223372036854775807"),
        json!("99999999999999999999999"),
        json!("2262-04-11T23:47:16.855Z"),
        json!("3000-01-01T00:00:00Z"),
        json!("1600-01-01 00:00:00"),
    ] {
        let err = ts(value.clone()).unwrap_err();
        assert!(
            matches!(err, EventError::TimestampOutOfRange { .. }),
            "{value}: {err:?}"
        );
        assert!(
            err.to_string().contains("1677-09-21T00:12:43.146Z"),
            "{err}"
        );
    }
    // The ends of the range are accepted.
    assert_eq!(
        ts(json!(strata_core::MAX_TIMESTAMP_MS)).unwrap(),
        strata_core::MAX_TIMESTAMP_MS
    );
    assert_eq!(
        ts(json!(strata_core::MIN_TIMESTAMP_MS)).unwrap(),
        strata_core::MIN_TIMESTAMP_MS
    );
}

#[test]
fn range_texts_name_the_range_ends() {
    use chrono::{DateTime, SecondsFormat};
    let text = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    assert_eq!(
        text(strata_core::MIN_TIMESTAMP_MS),
        strata_ingest::MIN_TIMESTAMP_TEXT
    );
    assert_eq!(
        text(strata_core::MAX_TIMESTAMP_MS),
        strata_ingest::MAX_TIMESTAMP_TEXT
    );
}

#[test]
fn an_out_of_range_alias_names_the_alias_key() {
    let aliases = ["ts".to_string()];
    let cfg = TimestampConfig {
        aliases: &aliases,
        ..TimestampConfig::default()
    };
    let event: EventObject = serde_json::from_str(r#"{"ts": 9223372036854775807}"#).unwrap();
    let err = normalize(0, event, None, &cfg, &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, EventError::TimestampOutOfRange { key, .. } if key == "ts"),
        "{err:?}"
    );
    assert_eq!(err.stage(), "timestamp");
}

#[test]
fn normalize_reads_numbers_in_the_metric_unit_under_an_alias() {
    let aliases = ["ts".to_string()];
    let cfg = TimestampConfig {
        aliases: &aliases,
        unit: strata_core::TimestampUnit::Seconds,
        ..TimestampConfig::default()
    };
    let event: EventObject = serde_json::from_str(r#"{"ts": 1421057535.25, "v": 1}"#).unwrap();
    let normalized = normalize(0, event, None, &cfg, &Limits::default()).unwrap();
    assert_eq!(normalized.timestamp_ms, SEED_MS + 250);
    let event: EventObject = serde_json::from_str(r#"{"ts": 1421057535000}"#).unwrap();
    let err = normalize(0, event, None, &cfg, &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, EventError::TimestampOutOfRange { key, read_as, .. }
            if key == "ts" && read_as.contains("epoch seconds")),
        "{err:?}"
    );
}

#[test]
fn numbers_that_i64_or_f64_would_change_keep_their_sent_text() {
    let body = br#"{"timestamp":1,"big":18446744073709551615,"pi":3.14159265358979323846,"n":{"x":1e-400},"list":[0.10000000000000000001],"fine":0.1,"int":-7}"#;
    let events =
        strata_ingest::split_body(body, strata_ingest::BodyFormat::Json, &Limits::default())
            .unwrap();
    let object = events.into_iter().next().unwrap().parsed.unwrap();
    let event = normalize(
        0,
        object,
        None,
        &TimestampConfig::default(),
        &Limits::default(),
    )
    .unwrap();
    let text = |s: &str| Value::Str(s.to_string());
    assert_eq!(field(&event, "big").1, text("18446744073709551615"));
    assert_eq!(field(&event, "big").2, JsonKind::Number);
    assert_eq!(field(&event, "pi").1, text("3.14159265358979323846"));
    assert_eq!(field(&event, "n.x").1, text("1e-400"));
    assert_eq!(field(&event, "list").1, text("[0.10000000000000000001]"));
    assert_eq!(field(&event, "list").2, JsonKind::Array);
    assert_eq!(field(&event, "fine").1, Value::Float(0.1));
    assert_eq!(field(&event, "int").1, Value::Int(-7));
}

#[test]
fn digit_strings_are_epoch_millis() {
    assert_eq!(ts(json!("1421057535000")).unwrap(), SEED_MS);
    assert_eq!(ts(json!(" 1421057535000 ")).unwrap(), SEED_MS);
    assert_eq!(ts(json!("-1000")).unwrap(), -1000);
    assert!(ts(json!("99999999999999999999")).is_err());
    assert!(ts(json!("-")).is_err());
    assert!(ts(json!("")).is_err());
}

#[test]
fn rfc3339_and_rfc2822_timestamps() {
    assert_eq!(ts(json!("2015-01-12T10:12:15Z")).unwrap(), SEED_MS);
    assert_eq!(ts(json!("2015-01-12t10:12:15z")).unwrap(), SEED_MS);
    assert_eq!(ts(json!("2015-01-12T12:12:15+02:00")).unwrap(), SEED_MS);
    assert_eq!(
        ts(json!("2015-01-12T10:12:15.123Z")).unwrap(),
        SEED_MS + 123
    );
    assert_eq!(
        ts(json!("2015-01-12 10:12:15-01:00")).unwrap(),
        SEED_MS + 3_600_000
    );
    assert_eq!(ts(json!("Mon, 12 Jan 2015 10:12:15 GMT")).unwrap(), SEED_MS);
    assert_eq!(
        ts(json!("Mon, 12 Jan 2015 11:12:15 +0100")).unwrap(),
        SEED_MS
    );
}

#[test]
fn plain_date_time_text_reads_as_utc() {
    for text in [
        "January 12, 2015 10:12:15",
        "Jan 12, 2015 10:12:15",
        "january 12, 2015 10:12:15",
        "2015-01-12 10:12:15",
        "2015-01-12T10:12:15",
        "2015/01/12 10:12:15",
    ] {
        assert_eq!(ts(json!(text)).unwrap(), SEED_MS, "{text}");
    }
    assert_eq!(ts(json!("2015-01-12 10:12:15.250")).unwrap(), SEED_MS + 250);
    assert_eq!(ts(json!("2015-01-12T10:12:15.5")).unwrap(), SEED_MS + 500);
    assert_eq!(ts(json!("2015-01-12")).unwrap(), SEED_MIDNIGHT_MS);
    assert_eq!(ts(json!("2015/01/12")).unwrap(), SEED_MIDNIGHT_MS);
    assert_eq!(ts(json!("2015-01-12 10:12")).unwrap(), SEED_MS - 15_000);
}

#[test]
fn configured_patterns_apply_after_builtins_metric_before_tenant() {
    let day_first = strings(&["%d/%m/%Y %H:%M"]);
    assert_eq!(
        parse_timestamp(&json!("12/01/2015 10:12"), &day_first, &[]).unwrap(),
        SEED_MS - 15_000
    );
    assert_eq!(
        parse_timestamp(&json!("12/01/2015 10:12"), &[], &day_first).unwrap(),
        SEED_MS - 15_000
    );
    // A pattern with a zone honours it.
    let zoned = strings(&["%d.%m.%Y %H:%M:%S %z"]);
    assert_eq!(
        parse_timestamp(&json!("12.01.2015 11:12:15 +0100"), &[], &zoned).unwrap(),
        SEED_MS
    );
    // A date-only pattern is midnight UTC.
    let date_only = strings(&["%d.%m.%Y"]);
    assert_eq!(
        parse_timestamp(&json!("12.01.2015"), &date_only, &[]).unwrap(),
        SEED_MIDNIGHT_MS
    );
    // Epoch seconds through %s.
    let seconds = strings(&["%s"]);
    assert_eq!(
        parse_timestamp(&json!("1421057535"), &seconds, &[]).unwrap(),
        1_421_057_535,
        "a digit string is epoch millis before any pattern is tried"
    );

    // The metric's pattern is tried before the tenant's.
    let month_first = strings(&["%m/%d/%Y"]);
    let day_first_date = strings(&["%d/%m/%Y"]);
    let feb_first = parse_timestamp(&json!("01/02/2015"), &day_first_date, &month_first).unwrap();
    let jan_second = parse_timestamp(&json!("01/02/2015"), &month_first, &day_first_date).unwrap();
    assert_eq!(feb_first, 1_422_748_800_000);
    assert_eq!(jan_second, 1_420_156_800_000);

    // An hour without minutes must not silently become midnight.
    let partial = strings(&["%d/%m/%Y %H"]);
    assert!(parse_timestamp(&json!("12/01/2015 10"), &partial, &[]).is_err());
}

#[test]
fn bad_timestamp_names_key_value_forms_and_patterns() {
    let patterns = strings(&["%d/%m/%Y %H:%M"]);
    let err = parse_timestamp(&json!("yesterday"), &patterns, &[]).unwrap_err();
    let EventError::BadTimestamp {
        ref key,
        ref value,
        patterns: ref tried,
        ..
    } = err
    else {
        panic!("expected BadTimestamp, got {err:?}");
    };
    assert_eq!(key, "timestamp");
    assert_eq!(value, "\"yesterday\"");
    assert_eq!(tried, &patterns);
    let text = err.to_string();
    assert!(text.contains("\"yesterday\""), "{text}");
    assert!(text.contains("RFC 3339"), "{text}");
    assert!(text.contains("January 12, 2015 10:12:15"), "{text}");
    assert!(text.contains("%d/%m/%Y %H:%M"), "{text}");
    assert_eq!(err.stage(), "timestamp");

    for not_a_time in [json!(true), json!(null), json!([1]), json!({"a": 1})] {
        assert!(
            matches!(ts(not_a_time.clone()), Err(EventError::BadTimestamp { .. })),
            "{not_a_time}"
        );
    }

    let long = "z".repeat(500);
    let Err(EventError::BadTimestamp { value, .. }) = ts(json!(long)) else {
        panic!("expected BadTimestamp");
    };
    assert!(value.chars().count() <= 103, "{}", value.len());
    assert!(value.ends_with("..."));
}

#[test]
fn timestamp_aliases_are_tried_after_timestamp_and_consumed() {
    let aliases = strings(&["ts", "time"]);
    let cfg = TimestampConfig {
        aliases: &aliases,
        ..TimestampConfig::default()
    };
    let limits = Limits::default();

    let event = normalize(
        3,
        object(json!({"time": SEED_MS, "a": 1})),
        None,
        &cfg,
        &limits,
    )
    .unwrap();
    assert_eq!(event.index, 3);
    assert_eq!(event.timestamp_ms, SEED_MS);
    assert_eq!(
        owned(&event.fields),
        vec![("a".to_string(), Value::Int(1), JsonKind::Number)]
    );

    // `timestamp` wins; the alias is then an ordinary field.
    let event = normalize(
        0,
        object(json!({"timestamp": SEED_MS, "ts": 5})),
        None,
        &cfg,
        &limits,
    )
    .unwrap();
    assert_eq!(event.timestamp_ms, SEED_MS);
    assert_eq!(
        owned(&event.fields),
        vec![("ts".to_string(), Value::Int(5), JsonKind::Number)]
    );

    let err = normalize(0, object(json!({"ts": "soon"})), None, &cfg, &limits).unwrap_err();
    assert!(
        matches!(&err, EventError::BadTimestamp { key, .. } if key == "ts"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"ts\""));

    let err = normalize(0, object(json!({"a": 1})), None, &cfg, &limits).unwrap_err();
    assert_eq!(
        err,
        EventError::MissingTimestamp {
            tried: strings(&["timestamp", "ts", "time"])
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("timestamp") && text.contains("\"ts\""),
        "{text}"
    );
    assert_eq!(err.stage(), "timestamp");
}

#[test]
fn normalize_uses_metric_then_tenant_patterns() {
    let metric_patterns = strings(&["%d/%m/%Y %H:%M"]);
    let tenant_patterns = strings(&["%Y.%m.%d"]);
    let cfg = TimestampConfig {
        aliases: &[],
        metric_patterns: &metric_patterns,
        tenant_patterns: &tenant_patterns,
        ..TimestampConfig::default()
    };
    let limits = Limits::default();
    let a = normalize(
        0,
        object(json!({"timestamp": "12/01/2015 10:12"})),
        None,
        &cfg,
        &limits,
    );
    assert_eq!(a.unwrap().timestamp_ms, SEED_MS - 15_000);
    let b = normalize(
        0,
        object(json!({"timestamp": "2015.01.12"})),
        None,
        &cfg,
        &limits,
    );
    assert_eq!(b.unwrap().timestamp_ms, SEED_MIDNIGHT_MS);
    let c = normalize(
        0,
        object(json!({"timestamp": "2015 01 12"})),
        None,
        &cfg,
        &limits,
    );
    assert!(c.is_err());
}

#[test]
fn timestamp_pattern_validation() {
    assert!(validate_timestamp_pattern("%d/%m/%Y %H:%M").is_ok());
    assert!(validate_timestamp_pattern("%Q").unwrap_err().contains("%Q"));
    assert!(validate_timestamp_pattern("  ").is_err());
}

// ---- fields ----

#[test]
fn nested_objects_flatten_to_sorted_dotted_names() {
    let event = norm(json!({
        "timestamp": 1,
        "gps": {"lat": 1.5, "lon": -2, "alt": {"m": 3}},
        "a-b": true,
        "gps2": "x",
        "meta": {"timestamp": 7},
        "empty": {}
    }))
    .unwrap();
    let names: Vec<&str> = event.fields.iter().map(|(n, _, _)| n.as_ref()).collect();
    assert_eq!(
        names,
        vec![
            "a-b",
            "gps.alt.m",
            "gps.lat",
            "gps.lon",
            "gps2",
            "meta.timestamp"
        ],
        "byte order, nested timestamp allowed, empty object gives no field"
    );
    assert_eq!(field(&event, "gps.lat").1, Value::Float(1.5));
    assert_eq!(field(&event, "gps.lon").1, Value::Int(-2));
    assert_eq!(field(&event, "gps.alt.m").1, Value::Int(3));
    assert_eq!(
        field(&event, "a-b"),
        &("a-b".into(), Value::Bool(true), JsonKind::Boolean)
    );
}

#[test]
fn arrays_nulls_numbers_and_strings_keep_what_was_sent() {
    let event = norm(json!({
        "timestamp": 1,
        "tags": [1, "a", {"b": null}],
        "gone": null,
        "big": u64::MAX,
        "whole_float": 1.0,
        "neg": i64::MIN,
        "text_number": "15"
    }))
    .unwrap();
    assert_eq!(
        field(&event, "tags"),
        &(
            "tags".into(),
            Value::Str(r#"[1,"a",{"b":null}]"#.into()),
            JsonKind::Array
        )
    );
    assert_eq!(
        field(&event, "gone"),
        &("gone".into(), Value::Null, JsonKind::Null)
    );
    assert_eq!(field(&event, "big").1, Value::Float(u64::MAX as f64));
    assert_eq!(field(&event, "big").2, JsonKind::Number);
    assert_eq!(field(&event, "whole_float").1, Value::Float(1.0));
    assert_eq!(field(&event, "neg").1, Value::Int(i64::MIN));
    assert_eq!(
        field(&event, "text_number"),
        &(
            "text_number".into(),
            Value::Str("15".into()),
            JsonKind::String
        )
    );
}

#[test]
fn duplicate_flattened_names_are_rejected() {
    let err = norm(json!({"timestamp": 1, "a.b": 1, "a": {"b": 2}})).unwrap_err();
    assert_eq!(err, EventError::DuplicateField { name: "a.b".into() });
    assert!(err.to_string().contains("\"a.b\""));
    assert_eq!(err.stage(), "validate");
}

#[test]
fn too_many_fields_counts_after_flattening() {
    let limits = Limits {
        fields_per_event: 3,
        ..Limits::default()
    };
    let cfg = TimestampConfig::default();
    let ok = normalize(
        0,
        object(json!({"timestamp": 1, "a": {"b": 1, "c": 2}, "d": 3})),
        None,
        &cfg,
        &limits,
    );
    assert_eq!(ok.unwrap().fields.len(), 3);
    let err = normalize(
        0,
        object(json!({"timestamp": 1, "a": {"b": 1, "c": 2}, "d": 3, "e": 4})),
        None,
        &cfg,
        &limits,
    )
    .unwrap_err();
    assert_eq!(err, EventError::TooManyFields { count: 4, limit: 3 });
    assert!(err.to_string().contains("limit is 3"));
    assert_eq!(err.stage(), "validate");
}

fn nested(depth: usize) -> JsonValue {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!({ "k": value });
    }
    value
}

#[test]
fn nesting_depth_is_limited() {
    // `nested(n)` under key "top" gives a name of n + 1 segments.
    let deepest_allowed =
        norm(json!({"timestamp": 1, "top": nested(MAX_NESTING_DEPTH - 1)})).unwrap();
    assert_eq!(
        deepest_allowed.fields[0].0.split('.').count(),
        MAX_NESTING_DEPTH
    );
    let err = norm(json!({"timestamp": 1, "top": nested(MAX_NESTING_DEPTH)})).unwrap_err();
    let EventError::TooDeep { ref key, limit } = err else {
        panic!("expected TooDeep, got {err:?}");
    };
    assert_eq!(limit, MAX_NESTING_DEPTH);
    assert!(key.starts_with("top.k.k"));
    assert!(err.to_string().contains("top.k"));
    assert_eq!(err.stage(), "validate");
}

#[test]
fn invalid_field_names_are_rejected_with_the_name() {
    let err = norm(json!({"timestamp": 1, "": 1})).unwrap_err();
    assert!(
        matches!(err, EventError::InvalidFieldName { .. }),
        "{err:?}"
    );
    assert_eq!(err.stage(), "validate");

    let err = norm(json!({"timestamp": 1, "bad\u{1}key": 1})).unwrap_err();
    assert!(
        matches!(&err, EventError::InvalidFieldName { name, .. } if name == "bad\u{1}key"),
        "{err:?}"
    );
    assert!(err.to_string().contains("control character"), "{err}");

    let long = "x".repeat(256);
    let err = norm(json!({"timestamp": 1, long: 1})).unwrap_err();
    assert!(err.to_string().contains("256 bytes"), "{err}");
    assert!(norm(json!({"timestamp": 1, "x".repeat(255): 1})).is_ok());

    // The length limit applies to the flattened name.
    let err = norm(json!({"timestamp": 1, "p".repeat(200): {"q".repeat(60): 1}})).unwrap_err();
    assert!(
        matches!(err, EventError::InvalidFieldName { .. }),
        "{err:?}"
    );

    let err = norm(json!({"timestamp": 1, "a": {"": 1}})).unwrap_err();
    assert_eq!(err, EventError::EmptyKeySegment { name: "a.".into() });
    assert!(err.to_string().contains("\"a.\""));
    assert_eq!(err.stage(), "validate");
}

#[test]
fn each_stage_is_reported() {
    assert_eq!(EventError::TooLarge { bytes: 2, limit: 1 }.stage(), "parse");
    assert_eq!(
        EventError::Malformed {
            line: 1,
            column: 1,
            message: String::new()
        }
        .stage(),
        "parse"
    );
    assert_eq!(
        EventError::MissingTimestamp { tried: vec![] }.stage(),
        "timestamp"
    );
}

#[test]
fn a_metric_cannot_be_named_timestamp() {
    let event = object(json!({"metrictype": "timestamp", "timestamp": 1}));
    let cfg = MetricKeyConfig {
        query_metric: None,
        metric_keys: &[],
    };
    let err = metric_name(&event, &cfg).unwrap_err();
    assert!(
        matches!(&err, EventError::ReservedMetricName { key, .. } if key == "metrictype"),
        "{err:?}"
    );
    assert_eq!(err.stage(), "metric");
    let by_query = MetricKeyConfig {
        query_metric: Some("timestamp"),
        metric_keys: &[],
    };
    assert!(matches!(
        metric_name(&event, &by_query),
        Err(EventError::ReservedMetricName { .. })
    ));
}
