//! The workload generator: determinism, exact accounting of every kind of mess, and shares.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use strata_bench::generator::{
    DIAGNOSTICS_FIELDS, EXTRA_FIELDS, READINGS_FIELDS, RENAMED_FIELDS, TAG_FIELDS,
};
use strata_bench::{write_ndjson, Generator, GeneratorConfig, GeneratorStats, Shares};

fn ndjson(config: &GeneratorConfig) -> (Vec<u8>, GeneratorStats) {
    let mut out = Vec::new();
    let stats = write_ndjson(config, &mut out).unwrap();
    (out, stats)
}

fn lines(bytes: &[u8]) -> Vec<&str> {
    std::str::from_utf8(bytes).unwrap().lines().collect()
}

/// A workload big enough that every share shows up many times.
fn scale_config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 20_260_101,
        trucks: 400,
        intervals: 250,
        ..GeneratorConfig::default()
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let config = GeneratorConfig {
        trucks: 30,
        intervals: 40,
        ..GeneratorConfig::default()
    };
    let (first, first_stats) = ndjson(&config);
    let (second, second_stats) = ndjson(&config);
    assert!(!first.is_empty());
    assert_eq!(first, second);
    assert_eq!(first_stats, second_stats);

    let (other, _) = ndjson(&GeneratorConfig {
        seed: config.seed + 1,
        ..config.clone()
    });
    assert_ne!(first, other);
}

#[test]
fn iterator_and_batches_yield_the_same_lines_as_the_writer() {
    let config = GeneratorConfig {
        trucks: 7,
        intervals: 30,
        ..GeneratorConfig::default()
    };
    let (bytes, stats) = ndjson(&config);
    let from_iterator: Vec<String> = Generator::new(config.clone()).unwrap().collect();
    assert_eq!(from_iterator, lines(&bytes));

    let mut generator = Generator::new(config).unwrap();
    let mut joined = String::new();
    let mut batches = 0;
    loop {
        let mut body = String::new();
        let added = generator.next_batch(50, &mut body);
        if added == 0 {
            break;
        }
        assert!(added <= 50);
        assert_eq!(body.lines().count(), added);
        joined.push_str(&body);
        batches += 1;
    }
    assert_eq!(joined.as_bytes(), bytes.as_slice());
    assert_eq!(batches, stats.lines.div_ceil(50));
    assert_eq!(generator.stats(), &stats);
}

/// Everything the test can observe in the output, counted independently of the generator.
#[derive(Debug, Default)]
struct Observed {
    lines: u64,
    bytes: u64,
    adjacent_duplicates: u64,
    distinct_lines: u64,
    distinct_keys: u64,
    readings: u64,
    diagnostics: u64,
    off_grid: u64,
    grid_inversions: u64,
    renamed_trucks: u64,
    renamed_events: u64,
    extra_events: u64,
    numeric_values: u64,
    string_numbers: u64,
}

fn observe(config: &GeneratorConfig, bytes: &[u8]) -> Observed {
    let all = lines(bytes);
    let mut observed = Observed {
        lines: all.len() as u64,
        bytes: bytes.len() as u64,
        ..Observed::default()
    };
    let mut distinct_lines = HashSet::new();
    let mut keys = HashSet::new();
    let mut last_grid_ts: HashMap<(String, String), i64> = HashMap::new();
    let mut renamed_trucks = HashSet::new();
    let mut previous: Option<&str> = None;
    for line in all {
        let is_duplicate = previous == Some(line);
        previous = Some(line);
        if is_duplicate {
            observed.adjacent_duplicates += 1;
            continue;
        }
        assert!(distinct_lines.insert(line), "a non-adjacent repeat: {line}");
        let event: Value = serde_json::from_str(line).unwrap();
        let metric = event["metrictype"].as_str().unwrap().to_string();
        let name = event["name"].as_str().unwrap().to_string();
        let ts = event["timestamp"].as_i64().unwrap();
        for tag in TAG_FIELDS {
            assert!(event[tag].is_string(), "tag {tag} missing in {line}");
        }
        assert!(keys.insert((name.clone(), metric.clone(), ts)));
        let numeric: &[&str] = match metric.as_str() {
            "readings" => {
                observed.readings += 1;
                &READINGS_FIELDS
            }
            "diagnostics" => {
                observed.diagnostics += 1;
                &DIAGNOSTICS_FIELDS
            }
            other => panic!("unexpected metric {other}"),
        };
        let mut renamed = false;
        for field in numeric {
            let sent_as = RENAMED_FIELDS
                .iter()
                .find(|(canonical, alias)| canonical == field && event.get(*alias).is_some())
                .map_or(*field, |(_, alias)| *alias);
            renamed |= sent_as != *field;
            let value = &event[sent_as];
            observed.numeric_values += 1;
            match value {
                Value::Number(_) => {}
                Value::String(text) => {
                    text.parse::<f64>().unwrap();
                    observed.string_numbers += 1;
                }
                other => panic!("{field} is {other}"),
            }
        }
        if renamed {
            observed.renamed_events += 1;
            renamed_trucks.insert(name.clone());
        }
        if event.get(EXTRA_FIELDS[0]).is_some() {
            assert!(event[EXTRA_FIELDS[1]].is_u64());
            observed.extra_events += 1;
        }
        if config.is_on_grid(ts) {
            let last = last_grid_ts.entry((name, metric)).or_insert(i64::MIN);
            if ts < *last {
                observed.grid_inversions += 1;
            }
            *last = ts;
        } else {
            observed.off_grid += 1;
        }
    }
    observed.distinct_lines = distinct_lines.len() as u64;
    observed.distinct_keys = keys.len() as u64;
    observed.renamed_trucks = renamed_trucks.len() as u64;
    observed
}

#[test]
fn every_kind_of_mess_is_counted_exactly() {
    let config = scale_config();
    let (bytes, stats) = ndjson(&config);
    let observed = observe(&config, &bytes);

    assert_eq!(stats.lines, observed.lines);
    assert_eq!(stats.bytes, observed.bytes);
    assert_eq!(stats.duplicates, observed.adjacent_duplicates);
    assert_eq!(stats.lines, stats.distinct_events + stats.duplicates);
    assert_eq!(stats.late_events, observed.off_grid);
    assert_eq!(stats.out_of_order_swaps, observed.grid_inversions);
    assert_eq!(stats.renamed_trucks, observed.renamed_trucks);
    assert_eq!(stats.events_from_renamed_trucks, observed.renamed_events);
    assert_eq!(stats.events_with_extra_fields, observed.extra_events);
    assert_eq!(stats.numeric_values, observed.numeric_values);
    assert_eq!(stats.string_numbers, observed.string_numbers);
    // Each mess actually happened, so the equalities above are not 0 == 0.
    for count in [
        stats.duplicates,
        stats.late_events,
        stats.out_of_order_swaps,
        stats.renamed_trucks,
        stats.events_with_extra_fields,
        stats.string_numbers,
    ] {
        assert!(count > 0, "{stats:?}");
    }
}

#[test]
fn distinct_count_is_exact_and_known_up_front() {
    let config = scale_config();
    let (bytes, stats) = ndjson(&config);
    let observed = observe(&config, &bytes);
    let expected = u64::from(config.trucks) * config.intervals * 2;
    assert_eq!(config.distinct_events(), expected);
    assert_eq!(stats.distinct_events, expected);
    assert_eq!(observed.distinct_lines, expected);
    // Distinct even by (truck, metric, timestamp), which is stricter than by content.
    assert_eq!(observed.distinct_keys, expected);
    assert_eq!(observed.readings, config.distinct_events_per_metric());
    assert_eq!(observed.diagnostics, config.distinct_events_per_metric());
    assert_eq!(stats.readings, observed.readings);
    assert_eq!(stats.diagnostics, observed.diagnostics);
}

fn assert_share(label: &str, observed: u64, total: u64, share: f64) {
    let actual = observed as f64 / total as f64;
    // Loose enough for sampling noise at these sizes, tight enough to catch a wrong share.
    assert!(
        (actual - share).abs() <= share * 0.25,
        "{label}: {observed}/{total} = {actual:.4}, configured {share}"
    );
}

#[test]
fn shares_are_roughly_respected_at_scale() {
    let config = GeneratorConfig {
        trucks: 2000,
        ..scale_config()
    };
    let shares = Shares::default();
    let (_, stats) = ndjson(&config);
    let events = stats.distinct_events;
    assert_share(
        "renamed trucks",
        stats.renamed_trucks,
        u64::from(config.trucks),
        shares.renamed_trucks,
    );
    assert_share(
        "extra fields",
        stats.events_with_extra_fields,
        events,
        shares.extra_fields,
    );
    assert_share(
        "string numbers",
        stats.string_numbers,
        stats.numeric_values,
        shares.string_numbers,
    );
    assert_share("late", stats.late_events, events, shares.late);
    assert_share("duplicates", stats.duplicates, events, shares.duplicates);
    assert_share(
        "out of order",
        stats.out_of_order_swaps,
        events,
        shares.out_of_order,
    );
}

#[test]
fn late_events_are_one_to_three_days_early() {
    let config = scale_config();
    let (bytes, _) = ndjson(&config);
    let day = 86_400_000;
    let mut late = 0;
    for line in lines(&bytes) {
        let ts = serde_json::from_str::<Value>(line).unwrap()["timestamp"]
            .as_i64()
            .unwrap();
        if !config.is_on_grid(ts) {
            late += 1;
            // Shifted back 1-3 days from some grid point of the run.
            assert!(ts < config.last_timestamp_ms() - day + 1, "{ts}");
            assert!(ts >= config.start_ms - 3 * day - config.interval_ms, "{ts}");
        }
    }
    assert!(late > 0);
}

#[test]
fn a_clean_fleet_sends_in_order_without_mess() {
    let config = GeneratorConfig {
        trucks: 20,
        intervals: 50,
        shares: Shares::none(),
        ..GeneratorConfig::default()
    };
    let (bytes, stats) = ndjson(&config);
    let observed = observe(&config, &bytes);
    assert_eq!(observed.lines, config.distinct_events());
    assert_eq!(observed.adjacent_duplicates, 0);
    assert_eq!(observed.off_grid, 0);
    assert_eq!(observed.grid_inversions, 0);
    assert_eq!(observed.string_numbers, 0);
    assert_eq!(observed.extra_events, 0);
    assert_eq!(observed.renamed_trucks, 0);
    assert_eq!(stats.lines, config.distinct_events());
    // Timestamps never decrease across the whole stream.
    let timestamps: Vec<i64> = lines(&bytes)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(timestamps.windows(2).all(|pair| pair[0] <= pair[1]));
}

#[test]
fn all_mess_at_once_still_keeps_events_distinct() {
    let config = GeneratorConfig {
        trucks: 3,
        intervals: 400,
        // Smallest interval: late events must dodge a dense grid.
        interval_ms: 2,
        shares: Shares {
            renamed_trucks: 1.0,
            extra_fields: 1.0,
            string_numbers: 1.0,
            out_of_order: 1.0,
            late: 0.5,
            duplicates: 1.0,
        },
        ..GeneratorConfig::default()
    };
    let (bytes, stats) = ndjson(&config);
    let observed = observe(&config, &bytes);
    assert_eq!(observed.distinct_keys, config.distinct_events());
    assert_eq!(stats.duplicates, config.distinct_events());
    assert_eq!(observed.lines, 2 * config.distinct_events());
    assert_eq!(observed.string_numbers, observed.numeric_values);
    assert_eq!(observed.renamed_trucks, 3);
    assert_eq!(stats.late_events, observed.off_grid);
    assert_eq!(stats.out_of_order_swaps, observed.grid_inversions);
    assert!(stats.out_of_order_swaps > 0);
}

#[test]
fn invalid_configs_are_refused() {
    let base = GeneratorConfig::default();
    let invalid = [
        GeneratorConfig {
            trucks: 0,
            ..base.clone()
        },
        GeneratorConfig {
            intervals: 0,
            ..base.clone()
        },
        GeneratorConfig {
            interval_ms: 1,
            ..base.clone()
        },
        GeneratorConfig {
            start_ms: 0,
            ..base.clone()
        },
        GeneratorConfig {
            intervals: 100_000_000,
            interval_ms: 86_400_000,
            ..base.clone()
        },
        GeneratorConfig {
            shares: Shares {
                late: 1.5,
                ..Shares::default()
            },
            ..base.clone()
        },
        GeneratorConfig {
            shares: Shares {
                duplicates: f64::NAN,
                ..Shares::default()
            },
            ..base.clone()
        },
    ];
    for config in invalid {
        assert!(Generator::new(config.clone()).is_err(), "{config:?}");
        assert!(write_ndjson(&config, Vec::new()).is_err());
    }
    assert!(Generator::new(base).is_ok());
}
