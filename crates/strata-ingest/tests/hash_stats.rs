//! Event and series identity hashes, and unknown-field statistics batching.

use std::borrow::Cow;

use strata_core::{JsonKind, Limits, Value};
use strata_core::{MetricId, TenantId};
use strata_ingest::{
    content_hash, normalize, series_hash, series_hash_of_text, split_body, BodyFormat, EventObject,
    Field, StatsAccumulator, StatsDelta, TimestampConfig, MAX_SAMPLES, MAX_SAMPLE_CHARS, NO_SERIES,
};

type Fields = Vec<Field<'static>>;

fn fields_of(body: &str) -> (i64, Fields) {
    let events = split_body(body.as_bytes(), BodyFormat::Json, &Limits::default()).unwrap();
    let map: EventObject<'_> = events[0].parsed.clone().unwrap();
    let event = normalize(
        0,
        map,
        None,
        &TimestampConfig::default(),
        &Limits::default(),
    )
    .unwrap();
    let fields = event
        .fields
        .into_iter()
        .map(|(name, value, kind)| (Cow::Owned(name.into_owned()), value, kind))
        .collect();
    (event.timestamp_ms, fields)
}

fn one(name: &str, value: Value, kind: JsonKind) -> Fields {
    vec![(name.to_string().into(), value, kind)]
}

#[test]
fn content_hash_ignores_key_order_of_the_json() {
    let (ts_a, a) = fields_of(r#"{"timestamp":5,"b":{"y":2,"x":1},"a":"s","c":[1,2]}"#);
    let (ts_b, b) = fields_of(r#"{"c":[1,2],"a":"s","b":{"x":1,"y":2},"timestamp":5}"#);
    assert_eq!(ts_a, ts_b);
    assert_eq!(a, b);
    assert_eq!(
        content_hash(MetricId(7), ts_a, &a),
        content_hash(MetricId(7), ts_b, &b)
    );
}

#[test]
fn content_hash_is_pinned() {
    // Content hashes live inside stored keys; a change here silently breaks dedup of re-sends
    // against data written by an older build.
    let fields = vec![
        ("a".into(), Value::Int(1), JsonKind::Number),
        ("b".into(), Value::Str("x".into()), JsonKind::String),
        ("c".into(), Value::Null, JsonKind::Null),
        ("d".into(), Value::Float(1.5), JsonKind::Number),
        ("e".into(), Value::Bool(true), JsonKind::Boolean),
    ];
    assert_eq!(
        content_hash(MetricId(1), 1_421_057_535_000, &fields),
        PINNED_CONTENT_HASH
    );
    assert_eq!(
        series_hash_of_text(&[Some("truck_7"), None]),
        PINNED_SERIES_HASH
    );
}

const PINNED_CONTENT_HASH: u64 = 11_447_946_421_323_460_770;
const PINNED_SERIES_HASH: u64 = 16_574_022_692_983_491_374;

#[test]
fn content_hash_differs_when_anything_differs() {
    let base = one("a", Value::Int(1), JsonKind::Number);
    let h = content_hash(MetricId(1), 100, &base);
    let variants: Vec<(&str, u64)> = vec![
        ("metric", content_hash(MetricId(2), 100, &base)),
        ("timestamp", content_hash(MetricId(1), 101, &base)),
        (
            "value",
            content_hash(MetricId(1), 100, &one("a", Value::Int(2), JsonKind::Number)),
        ),
        (
            "name",
            content_hash(MetricId(1), 100, &one("b", Value::Int(1), JsonKind::Number)),
        ),
        (
            "string one",
            content_hash(
                MetricId(1),
                100,
                &one("a", Value::Str("1".into()), JsonKind::String),
            ),
        ),
        (
            "float one",
            content_hash(
                MetricId(1),
                100,
                &one("a", Value::Float(1.0), JsonKind::Number),
            ),
        ),
        (
            "bool",
            content_hash(
                MetricId(1),
                100,
                &one("a", Value::Bool(true), JsonKind::Boolean),
            ),
        ),
        (
            "null",
            content_hash(MetricId(1), 100, &one("a", Value::Null, JsonKind::Null)),
        ),
        ("no fields", content_hash(MetricId(1), 100, &[])),
        (
            "extra field",
            content_hash(
                MetricId(1),
                100,
                &[
                    ("a".into(), Value::Int(1), JsonKind::Number),
                    ("b".into(), Value::Null, JsonKind::Null),
                ],
            ),
        ),
    ];
    for (what, other) in &variants {
        assert_ne!(h, *other, "changing the {what} must change the hash");
    }
    // An array's JSON text is not the same event as a string holding that text.
    assert_ne!(
        content_hash(
            MetricId(1),
            100,
            &one("a", Value::Str("[1]".into()), JsonKind::String)
        ),
        content_hash(
            MetricId(1),
            100,
            &one("a", Value::Str("[1]".into()), JsonKind::Array)
        ),
    );
    // Length prefixes keep name/value boundaries apart.
    assert_ne!(
        content_hash(
            MetricId(1),
            100,
            &one("ab", Value::Str("c".into()), JsonKind::String)
        ),
        content_hash(
            MetricId(1),
            100,
            &one("a", Value::Str("bc".into()), JsonKind::String)
        ),
    );
    // Identical re-sends hash identically.
    assert_eq!(h, content_hash(MetricId(1), 100, &base.clone()));
}

#[test]
fn series_hash_agrees_with_its_text_form() {
    let truck = Value::Str("truck_7".into());
    let int = Value::Int(-3);
    let float = Value::Float(1.5);
    let whole_float = Value::Float(2.0);
    let flag = Value::Bool(true);
    let values = [
        Some(&truck),
        Some(&int),
        Some(&float),
        Some(&whole_float),
        Some(&flag),
        None,
        Some(&Value::Null),
    ];
    let texts: Vec<Option<String>> = values.iter().map(|v| v.and_then(Value::to_text)).collect();
    let text_refs: Vec<Option<&str>> = texts.iter().map(|t| t.as_deref()).collect();
    assert_eq!(series_hash(&values), series_hash_of_text(&text_refs));

    // Each single value too, since the SQL layer hashes one-key series from a literal.
    for value in values {
        let text = value.and_then(Value::to_text);
        assert_eq!(
            series_hash(&[value]),
            series_hash_of_text(&[text.as_deref()]),
            "{value:?}"
        );
    }
}

#[test]
fn series_hash_separates_series_and_reserves_zero() {
    assert_eq!(series_hash(&[]), NO_SERIES);
    assert_eq!(series_hash_of_text(&[]), NO_SERIES);
    assert_ne!(series_hash_of_text(&[None]), NO_SERIES);
    assert_ne!(series_hash_of_text(&[Some("")]), NO_SERIES);

    let distinct = [
        series_hash_of_text(&[Some("a"), Some("b")]),
        series_hash_of_text(&[Some("b"), Some("a")]),
        series_hash_of_text(&[Some("ab"), Some("")]),
        series_hash_of_text(&[Some("a"), None]),
        series_hash_of_text(&[Some("a"), Some("")]),
        series_hash_of_text(&[Some("a")]),
    ];
    for (i, a) in distinct.iter().enumerate() {
        assert_ne!(*a, NO_SERIES);
        for b in &distinct[i + 1..] {
            assert_ne!(a, b, "series {i} collides");
        }
    }
}

#[test]
fn stats_accumulate_per_name_and_drain_by_tenant() {
    let mut stats = StatsAccumulator::default();
    assert!(stats.is_empty());
    stats.observe(
        TenantId(1),
        MetricId(10),
        100,
        JsonKind::String,
        &Value::Str("15".into()),
        500,
    );
    stats.observe(
        TenantId(1),
        MetricId(10),
        100,
        JsonKind::Number,
        &Value::Int(15),
        200,
    );
    stats.observe(
        TenantId(1),
        MetricId(10),
        100,
        JsonKind::String,
        &Value::Str("15".into()),
        900,
    );
    stats.observe(
        TenantId(1),
        MetricId(10),
        100,
        JsonKind::Null,
        &Value::Null,
        300,
    );
    stats.observe(
        TenantId(2),
        MetricId(20),
        100,
        JsonKind::Boolean,
        &Value::Bool(false),
        7,
    );
    stats.observe(
        TenantId(1),
        MetricId(10),
        99,
        JsonKind::Array,
        &Value::Str("[1]".into()),
        1,
    );
    stats.observe(
        TenantId(1),
        MetricId(9),
        100,
        JsonKind::Number,
        &Value::Float(0.5),
        1,
    );
    assert_eq!(stats.len(), 4);

    let drained = stats.drain();
    assert!(stats.is_empty());
    assert!(stats.drain().is_empty());

    assert_eq!(drained.len(), 2);
    let (tenant, deltas) = &drained[0];
    assert_eq!(*tenant, TenantId(1));
    assert_eq!(
        deltas
            .iter()
            .map(|d| (d.metric.0, d.name))
            .collect::<Vec<_>>(),
        vec![(9, 100), (10, 99), (10, 100)],
        "ordered by metric then name"
    );
    assert_eq!(
        deltas[2],
        StatsDelta {
            metric: MetricId(10),
            name: 100,
            count: 4,
            first_seen_ms: 200,
            last_seen_ms: 900,
            kinds: JsonKind::String.bit() | JsonKind::Number.bit() | JsonKind::Null.bit(),
            // "15" as a string and 15 as a number read the same; nulls give no sample.
            samples: vec!["15".to_string()],
        }
    );
    assert_eq!(
        JsonKind::from_bits(deltas[2].kinds),
        vec![JsonKind::Null, JsonKind::Number, JsonKind::String]
    );
    assert_eq!(deltas[1].samples, vec!["[1]".to_string()]);
    assert_eq!(deltas[0].samples, vec!["0.5".to_string()]);
    assert_eq!(drained[1].0, TenantId(2));
    assert_eq!(drained[1].1[0].samples, vec!["false".to_string()]);
}

#[test]
fn stats_samples_are_few_distinct_and_short() {
    let mut stats = StatsAccumulator::new();
    let long = "é".repeat(MAX_SAMPLE_CHARS + 50);
    stats.observe(
        TenantId(1),
        MetricId(1),
        1,
        JsonKind::String,
        &Value::Str(long.clone()),
        0,
    );
    for i in 0..20 {
        stats.observe(
            TenantId(1),
            MetricId(1),
            1,
            JsonKind::Number,
            &Value::Int(i),
            i,
        );
    }
    let drained = stats.drain();
    let delta = &drained[0].1[0];
    assert_eq!(delta.count, 21);
    assert_eq!(delta.samples.len(), MAX_SAMPLES);
    assert_eq!(delta.samples[0].chars().count(), MAX_SAMPLE_CHARS);
    assert!(long.starts_with(&delta.samples[0]));
    assert_eq!(&delta.samples[1..], &["0", "1", "2", "3"]);
}

#[test]
fn stats_accumulators_merge() {
    let mut a = StatsAccumulator::new();
    a.observe(
        TenantId(1),
        MetricId(1),
        1,
        JsonKind::String,
        &Value::Str("x".into()),
        50,
    );
    a.observe(
        TenantId(1),
        MetricId(1),
        2,
        JsonKind::String,
        &Value::Str("only in a".into()),
        5,
    );
    let mut b = StatsAccumulator::new();
    b.observe(
        TenantId(1),
        MetricId(1),
        1,
        JsonKind::Number,
        &Value::Int(3),
        10,
    );
    b.observe(
        TenantId(1),
        MetricId(1),
        1,
        JsonKind::String,
        &Value::Str("x".into()),
        80,
    );
    b.observe(TenantId(3), MetricId(1), 1, JsonKind::Null, &Value::Null, 1);
    a.merge(b);
    assert_eq!(a.len(), 3);

    let drained = a.drain();
    assert_eq!(
        drained.iter().map(|(t, _)| t.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let merged = &drained[0].1[0];
    assert_eq!(merged.count, 3);
    assert_eq!((merged.first_seen_ms, merged.last_seen_ms), (10, 80));
    assert_eq!(
        merged.kinds,
        JsonKind::String.bit() | JsonKind::Number.bit()
    );
    assert_eq!(merged.samples, vec!["x".to_string(), "3".to_string()]);
    assert_eq!(drained[0].1[1].samples, vec!["only in a".to_string()]);
    assert_eq!(drained[1].1[0].samples, Vec::<String>::new());
    assert_eq!(drained[1].1[0].kinds, JsonKind::Null.bit());
}
