//! `strata bench` against the real server: quick mode's correctness checks (exact stored counts
//! against an independent replay of the generator), the generator's determinism, and `--spawn`.
//! Timings are printed by the command but never asserted.

mod common;

use std::collections::HashSet;
use std::process::{Command, Output};

use common::{TestServer, BIN};
use serde_json::Value;
use strata_bench::{Generator, QuickConfig};

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env_remove("STRATA_KEY")
        .env_remove("STRATA_URL")
        .env("NO_COLOR", "1")
        .output()
        .expect("run strata bench")
}

fn json_stdout(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// What the server must hold after quick mode's ingest, computed by replaying the generator
/// here and deduplicating whole lines (the generator's only repeats are exact duplicates).
struct Expected {
    readings: u64,
    diagnostics: u64,
    /// Rows of the recent-window query: the device's `readings` newer than the window start.
    recent_rows: u64,
}

fn expected(config: &QuickConfig) -> Expected {
    let workload = &config.ingest.workload;
    let window_start = config.recent.window_end_ms - config.recent.window_ms;
    let mut seen = HashSet::new();
    let mut expected = Expected {
        readings: 0,
        diagnostics: 0,
        recent_rows: 0,
    };
    for line in Generator::new(workload.clone()).unwrap() {
        if !seen.insert(line.clone()) {
            continue;
        }
        let event: Value = serde_json::from_str(&line).unwrap();
        match event["metrictype"].as_str().unwrap() {
            "readings" => {
                expected.readings += 1;
                if event["name"] == config.recent.device.as_str()
                    && event["timestamp"].as_i64().unwrap() > window_start
                {
                    expected.recent_rows += 1;
                }
            }
            "diagnostics" => expected.diagnostics += 1,
            other => panic!("unexpected metric {other}"),
        }
    }
    expected
}

#[test]
fn quick_mode_stores_exactly_the_generated_events() {
    let server = TestServer::start();
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
