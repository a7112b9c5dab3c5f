//! Key order and value encoding, without a database.

use strata_core::Value;
use strata_core::{MetricId, TenantId};
use strata_storage::codec::{decode_value, encode_value, ValueReader};
use strata_storage::key;

/// A small deterministic generator (xorshift), so the property test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Mostly values from a small interesting set, so ties and sign changes are common.
    fn pick_i64(&mut self) -> i64 {
        const INTERESTING: [i64; 9] = [
            i64::MIN,
            -3_600_001,
            -3_600_000,
            -1,
            0,
            1,
            3_599_999,
            3_600_000,
            i64::MAX,
        ];
        match self.next() % 3 {
            0 => INTERESTING[(self.next() % INTERESTING.len() as u64) as usize],
            1 => (self.next() % 20) as i64 - 10,
            _ => self.next() as i64,
        }
    }

    fn pick_u64(&mut self) -> u64 {
        match self.next() % 3 {
            0 => [0, 1, u64::MAX, 1 << 63][(self.next() % 4) as usize],
            1 => self.next() % 4,
            _ => self.next(),
        }
    }
}

#[test]
fn byte_order_equals_logical_order() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut keys = Vec::new();
    for _ in 0..4000 {
        let tenant = TenantId(rng.pick_i64());
        let metric = MetricId(rng.pick_i64());
        let series = rng.pick_u64();
        let timestamp = rng.pick_i64();
        let hash = rng.pick_u64();
        let encoded = key::encode(tenant, metric, series, timestamp, hash);
        let logical = (
            tenant,
            metric,
            key::hour_bucket(timestamp),
            series,
            timestamp,
            hash,
        );
        let decoded = key::decode(&encoded).unwrap();
        assert_eq!(
            (
                decoded.tenant,
                decoded.metric,
                decoded.hour,
                decoded.series,
                decoded.timestamp_ms,
                decoded.content_hash
            ),
            logical
        );
        keys.push((encoded, logical));
    }
    let mut by_bytes = keys.clone();
    by_bytes.sort_by_key(|k| k.0);
    let mut by_logic = keys;
    by_logic.sort_by_key(|k| k.1);
    let bytes_order: Vec<_> = by_bytes.iter().map(|k| k.1).collect();
    let logic_order: Vec<_> = by_logic.iter().map(|k| k.1).collect();
    assert_eq!(bytes_order, logic_order);
}

#[test]
fn negative_timestamps_sort_before_positive_within_a_series() {
    let ts = [-7_200_001, -3_600_000, -1, 0, 1, 3_600_000];
    let keys: Vec<_> = ts
        .iter()
        .map(|t| key::encode(TenantId(5), MetricId(9), 42, *t, 0))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(key::hour_bucket(-1), -1);
    assert_eq!(key::hour_bucket(-3_600_000), -1);
    assert_eq!(key::hour_bucket(-3_600_001), -2);
    assert!(key::decode(&[0u8; 47]).is_none());
}

#[test]
fn every_value_variant_round_trips() {
    let values = vec![
        (0, Value::Null),
        (1, Value::Bool(false)),
        (2, Value::Bool(true)),
        (3, Value::Int(0)),
        (4, Value::Int(i64::MIN)),
        (5, Value::Int(i64::MAX)),
        (6, Value::Int(-1)),
        (7, Value::Float(0.0)),
        (8, Value::Float(-0.0)),
        (9, Value::Float(f64::INFINITY)),
        (10, Value::Float(f64::NEG_INFINITY)),
        (11, Value::Float(f64::MIN_POSITIVE)),
        (12, Value::Str(String::new())),
        (13, Value::Str("température ° 温度 🌡️".to_string())),
        (300, Value::Str("x".repeat(100_000))),
        (u32::MAX, Value::Float(1.5)),
    ];
    let encoded = encode_value(u64::MAX, &values);
    let mut decoded = Vec::new();
    let seq = decode_value(&encoded, None, &mut decoded).unwrap();
    assert_eq!(seq, u64::MAX);
    assert_eq!(decoded, values);
    // -0.0 == 0.0 under PartialEq; check the sign survived too.
    assert!(matches!(decoded[8].1, Value::Float(f) if f.is_sign_negative()));
}

#[test]
fn nan_round_trips_bit_for_bit() {
    let nan = f64::from_bits(0x7ff8_0000_0000_1234);
    let encoded = encode_value(7, &[(1, Value::Float(nan))]);
    let mut decoded = Vec::new();
    decode_value(&encoded, None, &mut decoded).unwrap();
    match decoded[..] {
        [(1, Value::Float(f))] => assert_eq!(f.to_bits(), nan.to_bits()),
        ref other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn projection_skips_unwanted_names() {
    let values = vec![
        (1, Value::Str("skip me".into())),
        (2, Value::Int(20)),
        (5, Value::Float(2.5)),
        (9, Value::Str("keep".into())),
        (12, Value::Bool(true)),
    ];
    let encoded = encode_value(3, &values);
    let mut decoded = Vec::new();
    decode_value(&encoded, Some(&[2, 9, 10]), &mut decoded).unwrap();
    assert_eq!(
        decoded,
        vec![(2, Value::Int(20)), (9, Value::Str("keep".into()))]
    );
    decoded.clear();
    decode_value(&encoded, Some(&[]), &mut decoded).unwrap();
    assert!(decoded.is_empty());
}

#[test]
fn corrupt_values_are_errors_not_panics() {
    let good = encode_value(3, &[(1, Value::Str("hello".into())), (2, Value::Int(5))]);
    // Every truncation must fail cleanly.
    for len in 0..good.len() {
        let mut out = Vec::new();
        assert!(
            decode_value(&good[..len], None, &mut out).is_err(),
            "len {len}"
        );
    }
    let mut wrong_version = good.clone();
    wrong_version[0] = 99;
    assert!(ValueReader::new(&wrong_version).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(decode_value(&trailing, None, &mut Vec::new()).is_err());
    // Invalid UTF-8 inside a string.
    let mut bad_utf8 = encode_value(1, &[(1, Value::Str("ab".into()))]);
    let last = bad_utf8.len() - 1;
    bad_utf8[last] = 0xff;
    assert!(decode_value(&bad_utf8, None, &mut Vec::new()).is_err());
}
