//! `strata bench` against the real server: quick mode's correctness checks (exact stored counts
//! against an independent replay of the generator, compaction of every stored row, the same
//! analytics answers from Strata, DataFusion and DuckDB, and one of them against the replay),
//! the generator's determinism, and `--spawn`. Timings are printed by the command but never
//! asserted.

use std::collections::{BTreeMap, HashSet};

use crate::common::{bench, json_stdout, TestServer};
use serde_json::Value;
use strata_bench::normalize::normalize_float;
use strata_bench::{Generator, QuickConfig};

/// What the server must hold after quick mode's ingest, computed by replaying the generator
/// here and deduplicating whole lines (the generator's only repeats are exact duplicates).
struct Expected {
    readings: u64,
    diagnostics: u64,
    /// Rows of the recent-window query: the device's `readings` newer than the window start.
    recent_rows: u64,
    /// The last-loc answer: per truck of the analytics fleet, (name, driver, latitude,
    /// longitude) of its newest reading, normalized as the benchmark normalizes.
    last_loc: Vec<Vec<String>>,
}

/// A JSON number or numeric text (5% of the generator's numbers are sent as text) as f64.
fn number(value: &Value) -> f64 {
    match value {
        Value::String(text) => text.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

fn expected(config: &QuickConfig) -> Expected {
    let workload = &config.ingest.workload;
    let window_start = config.recent.window_end_ms - config.recent.window_ms;
    let mut seen = HashSet::new();
    let mut expected = Expected {
        readings: 0,
        diagnostics: 0,
        recent_rows: 0,
        last_loc: Vec::new(),
    };
    // name -> (timestamp, row) of the newest reading of each truck of the fleet.
    let mut newest: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for line in Generator::new(workload.clone()).unwrap() {
        if !seen.insert(line.clone()) {
            continue;
        }
        let event: Value = serde_json::from_str(&line).unwrap();
        match event["metrictype"].as_str().unwrap() {
            "readings" => {
                expected.readings += 1;
                let timestamp = event["timestamp"].as_i64().unwrap();
                if event["name"] == config.recent.device.as_str() && timestamp > window_start {
                    expected.recent_rows += 1;
                }
                if event["fleet"] == config.analytics.fleet.as_str() {
                    // Renamed trucks send lat/lon: the alias merge the engines must do.
                    let latitude = event.get("latitude").or(event.get("lat")).unwrap();
                    let longitude = event.get("longitude").or(event.get("lon")).unwrap();
                    let name = event["name"].as_str().unwrap().to_string();
                    let row = vec![
                        name.clone(),
                        event["driver"].as_str().unwrap().to_string(),
                        normalize_float(number(latitude)),
                        normalize_float(number(longitude)),
                    ];
                    let entry = newest.entry(name).or_insert((i64::MIN, Vec::new()));
                    if timestamp > entry.0 {
                        *entry = (timestamp, row);
                    }
                }
            }
            "diagnostics" => expected.diagnostics += 1,
            other => panic!("unexpected metric {other}"),
        }
    }
    expected.last_loc = newest.into_values().map(|(_, row)| row).collect();
    expected.last_loc.sort();
    expected
}

#[test]
fn quick_mode_stores_exactly_the_generated_events() {
    // As `--spawn` does for the cold-tier scenarios: compact everything, and only on request,
    // so no background compaction races the benchmark's.
    let server =
        TestServer::start_with(&["--compact-after-secs", "0", "--compact-interval-secs", "0"]);
    let data_dir = server.data_dir().to_str().unwrap().to_string();
    // The test owns the tenant, so it can check what is stored with its own queries.
    let admin = server.create_tenant("bench_quick");
    let output = bench(&[
        "quick",
        "--url",
        server.url(),
        "--data-dir",
        &data_dir,
        "--key",
        &admin,
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench quick failed:\n{stderr}");
    let answer = json_stdout(&output);
    let report = &answer["report"];
    assert_eq!(report["failures"], serde_json::json!([]), "{report:#}");

    let config = QuickConfig::default();
    let expected = expected(&config);
    // The replay agrees with the generator's own arithmetic, so both can be trusted.
    assert_eq!(
        expected.readings,
        config.ingest.workload.distinct_events_per_metric()
    );
    assert_eq!(expected.diagnostics, expected.readings);

    let ingest = &report["ingest"];
    assert_eq!(ingest["counts"]["readings"], expected.readings);
    assert_eq!(ingest["counts"]["diagnostics"], expected.diagnostics);
    assert_eq!(ingest["counts"]["ok"], true);
    assert_eq!(ingest["rejected"], 0);
    assert_eq!(ingest["failed_batches"], 0);
    // Every line was acknowledged, duplicates included.
    assert_eq!(ingest["accepted"], ingest["generated"]["lines"]);
    assert_eq!(
        ingest["generated"]["distinct_events"],
        expected.readings + expected.diagnostics
    );
    assert!(ingest["generated"]["duplicates"].as_u64().unwrap() > 0);

    let recent = &report["recent"];
    assert_eq!(recent["rows"], expected.recent_rows);
    assert_eq!(recent["rows_stable"], true);

    let aliases = &report["aliases"];
    assert_eq!(aliases["answers_equal"], true);
    assert_eq!(aliases["rejected"], 0);
    // count(aliased) over the alias metric: every row holds the field under one of 4 names.
    assert_eq!(aliases["aliased_answer"][0][0], config.aliases.rows);

    // Compaction moved every stored row (both workload metrics and the alias metric) into cold
    // files, and the hot and cold answers of its query agree.
    let compaction = &report["compaction"];
    let stored = expected.readings + expected.diagnostics + config.aliases.rows;
    assert_eq!(compaction["answer"]["rows"], stored, "{compaction:#}");
    assert_eq!(compaction["rows_stored"], stored);
    assert_eq!(compaction["complete"], true);
    assert_eq!(compaction["answers_equal"], true);
    assert!(compaction["cold_plan"]
        .as_str()
        .unwrap()
        .contains("FederatedScanExec"));
    let files = &compaction["files"]["metrics"];
    assert_eq!(files.as_array().unwrap().len(), 2, "{files:#}");
    for metric in files.as_array().unwrap() {
        assert_eq!(metric["rows"], expected.readings);
    }

    // Analytics: every query answered the same in every engine that ran, on files holding
    // exactly what Strata counts, and most answers are not empty (an empty answer proves
    // little).
    let analytics = &report["analytics"];
    assert_eq!(analytics["coverage_ok"], true, "{analytics:#}");
    let queries = analytics["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 8);
    let mut non_empty = 0;
    for query in queries {
        assert_eq!(query["same_result"], true, "{query:#}");
        assert_eq!(query["strata"]["error"], Value::Null, "{query:#}");
        assert_eq!(query["datafusion"]["rows"], query["strata"]["rows"]);
        if query["strata"]["rows"].as_u64().unwrap() > 0 {
            non_empty += 1;
        }
    }
    assert!(
        non_empty >= 7,
        "only {non_empty} of 8 analytics answers have rows"
    );
    match analytics["duckdb_version"].as_str() {
        Some(_) => {
            for query in queries {
                assert_eq!(
                    query["duckdb"]["rows"], query["strata"]["rows"],
                    "{query:#}"
                );
            }
        }
        None => {
            // Without STRATA_REQUIRE_CLIENTS=1 a missing DuckDB is a note, never silent.
            assert!(
                !strata_testkit::require_clients(),
                "DuckDB was required but did not run"
            );
            let notes = report["notes"].as_array().unwrap();
            assert!(
                notes.iter().any(|n| n.as_str().unwrap().contains("DuckDB")),
                "{notes:?}"
            );
            eprintln!("note: DuckDB did not run; analytics compared Strata and DataFusion only");
        }
    }
    // Independently of every engine: last-loc equals the generator replay.
    let last_loc = &queries[0];
    assert_eq!(last_loc["name"], "last-loc");
    let last_loc_rows: Vec<Vec<String>> =
        serde_json::from_value(last_loc["strata"]["answer"].clone()).expect("last-loc answer");
    assert!(!expected.last_loc.is_empty());
    assert_eq!(last_loc_rows, expected.last_loc);

    let freshness = &report["freshness"];
    assert_eq!(freshness["timeouts"], 0);
    assert_eq!(freshness["overcounted"], 0);
    assert_eq!(
        freshness["ack_to_visible"]["samples"],
        config.freshness.samples
    );

    // The server was found from its data directory, and its RSS read.
    assert_eq!(answer["server"]["pid"], server.pid());
    assert!(answer["server"]["peak_rss_kib"].as_u64().unwrap() > 0);
    assert!(answer["command"]
        .as_str()
        .unwrap()
        .starts_with("strata bench quick --url"));

    // Independently of the bench's own count check. Freshness probes (name fresh_probe, one
    // per warm-up and measured sample) land in `readings` after the count check.
    let probes = (config.freshness.samples + config.freshness.warmup_samples) as u64;
    let count = |sql: &str| {
        let answer = server.sql(&admin, sql);
        assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
        answer.body["rows"][0][0].as_u64().unwrap()
    };
    assert_eq!(
        count("SELECT count(*) FROM readings"),
        expected.readings + probes
    );
    assert_eq!(
        count("SELECT count(*) FROM readings WHERE name = 'fresh_probe'"),
        probes
    );
    assert_eq!(
        count("SELECT count(*) FROM diagnostics"),
        expected.diagnostics
    );
    assert_eq!(
        count("SELECT count(*) FROM bench_aliases"),
        config.aliases.rows
    );

    // Without a key the bench creates its own tenant with the operator token from the data
    // directory; a second full run there passes too, and prints markdown.
    let again = bench(&["quick", "--url", server.url(), "--data-dir", &data_dir]);
    assert!(
        again.status.success(),
        "second quick run failed:\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let markdown = String::from_utf8_lossy(&again.stdout);
    assert!(
        markdown.contains("| ingest | events/s durable |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Command: `strata bench quick"),
        "{markdown}"
    );
}

#[test]
fn gen_is_deterministic_and_counts_its_lines() {
    let args = ["gen", "--trucks", "7", "--events", "700", "--seed", "9"];
    let first = bench(&args);
    let second = bench(&args);
    assert!(first.status.success());
    assert_eq!(first.stdout, second.stdout);
    let other_seed = bench(&["gen", "--trucks", "7", "--events", "700", "--seed", "10"]);
    assert_ne!(first.stdout, other_seed.stdout);

    let text = String::from_utf8(first.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let distinct: HashSet<&str> = lines.iter().copied().collect();
    // 700 events = 50 intervals x 7 trucks x 2 metrics, all distinct, plus exact duplicates.
    assert_eq!(distinct.len(), 700);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.starts_with(&format!("{} lines (700 distinct events", lines.len())),
        "{stderr}"
    );
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap();
        assert!(event["name"].as_str().unwrap().starts_with("truck_"));
    }
}

#[test]
fn spawn_starts_and_stops_its_own_server() {
    let output = bench(&["freshness", "--spawn", "--samples", "5", "--json"]);
    assert!(
        output.status.success(),
        "bench freshness --spawn failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = json_stdout(&output);
    assert_eq!(answer["server"]["spawned"], true);
    assert!(answer["server"]["peak_rss_kib"].as_u64().unwrap() > 0);
    assert_eq!(answer["report"]["timeouts"], 0);
    assert_eq!(answer["report"]["ack_to_visible"]["samples"], 5);
    // The spawned server is gone: SIGTERM was sent and it exited cleanly before the command
    // returned (a failed stop makes the command fail).
    let pid = answer["server"]["pid"].as_u64().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
