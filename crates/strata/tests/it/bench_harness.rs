//! The benchmark harness (`crates/strata-bench`) against the real `strata serve` on ephemeral
//! ports: that ingest tallies every batch it sends, that the schema calls are applied, that the
//! count check compares with what the server stores, that freshness polls until each probe is
//! visible, and that a failing write surfaces (a read-only key: counted failures; a revoked
//! key: an error). Then `strata bench all --spawn` end to end at a tiny size, with its plots,
//! the free-disk refusal, and the shape of the reports of `strata bench isolation` and
//! `strata bench alerts`. Sizes are small enough for a debug build; no timing is asserted.

use std::path::Path;

use crate::common::{bench, json_stdout, TestServer};
use serde_json::{json, Value};
use strata_bench::{
    apply_schema, check_counts, run_freshness, run_ingest, workload_schema, BenchTarget,
    FreshnessConfig, GeneratorConfig, IngestConfig,
};

fn small_ingest(pregenerate: bool) -> IngestConfig {
    IngestConfig {
        workload: GeneratorConfig {
            trucks: 20,
            intervals: 30,
            ..GeneratorConfig::default()
        },
        clients: 3,
        // Not a divisor of anything in the workload, so the last batch is a partial one.
        batch_size: 97,
        pregenerate,
        ..IngestConfig::default()
    }
}

fn count(server: &TestServer, key: &str, sql: &str) -> u64 {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"][0][0].as_u64().unwrap()
}

/// Creates a key with `role` and returns (id, secret).
fn create_key(server: &TestServer, admin: &str, role: &str) -> (String, String) {
    let answer = server.post("/api/v1/keys", admin, &json!({ "role": role }));
    assert_eq!(answer.status, 201, "{}", answer.text);
    (
        answer.body["id"].as_str().unwrap().to_string(),
        answer.body["key"].as_str().unwrap().to_string(),
    )
}

#[test]
fn ingest_tallies_every_batch_and_the_server_stores_the_distinct_events() {
    let server = TestServer::start();
    // Pregenerated in several small chunks (the per-second series must stay continuous across
    // them), then streamed by a generator thread.
    for (pregenerate, chunk_bytes) in [(true, 40_000), (false, 1 << 30)] {
        let admin = server.create_tenant(&format!("tallies_{pregenerate}"));
        let target = BenchTarget::with_admin_key(server.url(), &admin);
        let config = IngestConfig {
            chunk_bytes,
            server_pid: Some(server.pid()),
            ..small_ingest(pregenerate)
        };
        let report = run_ingest(&target, &config).unwrap();

        let generated = &report.generated;
        assert!(
            generated.duplicates > 0,
            "the workload must hold duplicates"
        );
        assert_eq!(report.lines_sent, generated.lines);
        assert_eq!(report.bytes_sent, generated.bytes);
        // The server acknowledges exact duplicates too (and stores them once).
        assert_eq!(report.accepted, generated.lines);
        assert_eq!(report.rejected, 0);
        assert_eq!(report.batches, generated.lines.div_ceil(97));
        assert_eq!(report.failed_batches, 0, "{:?}", report.failures);
        if pregenerate {
            assert!(report.chunks > 1, "{} chunks", report.chunks);
        } else {
            assert_eq!(report.chunks, 0);
        }
        let plotted: u64 = report.rate_per_second.iter().map(|s| s.events).sum();
        assert_eq!(plotted, report.accepted);
        let latency = report.batch_latency.as_ref().unwrap();
        assert_eq!(latency.samples as u64, report.batches);
        // Every round trip is kept for the plots.
        assert_eq!(latency.sorted_ms.len() as u64, report.batches);
        assert!(report.server_peak_rss_kib.unwrap() > 0);

        let counts = report.counts.as_ref().unwrap();
        assert!(counts.ok, "{counts:?}");
        assert_eq!(counts.total, config.workload.distinct_events());
        assert!(report.passed());
        // Independently of the benchmark's own check.
        let per_metric = config.workload.distinct_events_per_metric();
        assert_eq!(
            count(&server, &admin, "SELECT count(*) FROM readings"),
            per_metric
        );
        assert_eq!(
            count(&server, &admin, "SELECT count(*) FROM diagnostics"),
            per_metric
        );

        // The report carries its parameters and never the key.
        let serialized = serde_json::to_string(&report).unwrap();
        assert!(serialized.contains("\"batch_size\":97"));
        assert!(!serialized.contains(&admin));
    }
}

#[test]
fn schema_calls_are_applied_and_a_second_run_finds_them_present() {
    let server = TestServer::start();
    let admin = server.create_tenant("schema");
    let client = server.client();
    let ops = workload_schema();
    let first = apply_schema(&client, &admin, &ops).unwrap();
    assert_eq!(first.applied, ops.len());
    assert!(first.already_present.is_empty(), "{first:?}");

    let schema = server.get("/api/v1/schema", &admin);
    assert_eq!(schema.status, 200, "{}", schema.text);
    let metric = |name: &str| {
        schema.body["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name}: {}", schema.text))
            .clone()
    };
    let field = |metric: &Value, name: &str| {
        metric["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name}: {metric}"))
            .clone()
    };
    let readings = metric("readings");
    let diagnostics = metric("diagnostics");
    for declared in [&readings, &diagnostics] {
        assert_eq!(declared["series_keys"], json!(["name"]), "{declared}");
        assert_eq!(field(declared, "fleet")["type"], "string");
    }
    let latitude = field(&readings, "latitude");
    assert_eq!(latitude["type"], "double");
    assert_eq!(latitude["aliases"], json!(["lat"]));
    assert_eq!(field(&readings, "longitude")["aliases"], json!(["lon"]));
    assert_eq!(field(&readings, "velocity")["type"], "double");
    assert_eq!(
        field(&diagnostics, "fuel_state")["aliases"],
        json!(["fuel"])
    );
    // The unknown extras stay undeclared.
    assert!(readings["fields"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["name"] != "firmware_note"));

    // A second benchmark against the same tenant: what exists already is tolerated (409),
    // the rest re-applied, nothing fails.
    let second = apply_schema(&client, &admin, &ops).unwrap();
    assert_eq!(second.applied + second.already_present.len(), ops.len());
    assert!(
        second
            .already_present
            .contains(&"POST /api/v1/schema/metrics".to_string()),
        "{second:?}"
    );
}

#[test]
fn count_check_compares_with_what_the_server_stores() {
    let server = TestServer::start();
    let admin = server.create_tenant("counts");
    let target = BenchTarget::with_admin_key(server.url(), &admin);
    let config = IngestConfig {
        verify_counts: false,
        ..small_ingest(true)
    };
    let report = run_ingest(&target, &config).unwrap();
    assert!(report.counts.is_none());

    let client = server.client();
    let exact = check_counts(&client, &admin, &config.workload).unwrap();
    assert!(exact.ok, "{exact:?}");
    assert_eq!(exact.readings, config.workload.distinct_events_per_metric());
    // Against a workload one interval longer, the same store is short by one interval.
    let longer = GeneratorConfig {
        intervals: config.workload.intervals + 1,
        ..config.workload.clone()
    };
    let short = check_counts(&client, &admin, &longer).unwrap();
    assert!(!short.ok);
    assert_eq!(short.readings, exact.readings);
    assert_eq!(
        short.expected_per_metric,
        exact.expected_per_metric + u64::from(config.workload.trucks)
    );
}

#[test]
fn freshness_polls_until_each_probe_is_visible() {
    let server = TestServer::start();
    let admin = server.create_tenant("fresh");
    let target = BenchTarget::with_admin_key(server.url(), &admin);
    let config = FreshnessConfig {
        samples: 10,
        warmup_samples: 2,
        ..FreshnessConfig::default()
    };
    let report = run_freshness(&target, &config).unwrap();
    assert!(report.passed(), "{report:?}");
    let visible = report.ack_to_visible.as_ref().unwrap();
    assert_eq!(visible.samples, 10);
    assert_eq!(visible.sorted_ms.len(), 10);
    assert_eq!(report.write_ack.as_ref().unwrap().samples, 10);
    // At least one SQL poll per probe; the server is read-your-writes, so usually exactly one.
    assert!(report.mean_polls >= 1.0, "{}", report.mean_polls);
    // Every probe, warm-ups included, is stored exactly once.
    assert_eq!(
        count(
            &server,
            &admin,
            "SELECT count(*) FROM readings WHERE name = 'fresh_probe'"
        ),
        12
    );
}

#[test]
fn writes_with_a_read_only_key_are_counted_as_failed_batches() {
    let server = TestServer::start();
    let admin = server.create_tenant("read_only");
    let (_, read_key) = create_key(&server, &admin, "read");
    let target = BenchTarget {
        write_key: read_key.clone(),
        read_key,
        ..BenchTarget::with_admin_key(server.url(), &admin)
    };
    let report = run_ingest(&target, &small_ingest(true)).unwrap();
    // Every batch was sent, none acknowledged; the failures say why; nothing is retried.
    assert!(report.batches > 0);
    assert_eq!(report.failed_batches, report.batches);
    assert_eq!(report.accepted, 0);
    assert_eq!(report.lines_sent, 0);
    assert!(report.failures[0].contains("403"), "{:?}", report.failures);
    let counts = report.counts.as_ref().unwrap();
    assert!(!counts.ok);
    assert_eq!(counts.total, 0);
    assert!(!report.passed());

    // A probe that cannot be written ends the freshness scenario with an error.
    let error = run_freshness(&target, &FreshnessConfig::default()).unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
}

#[test]
fn a_revoked_key_is_an_error_not_a_result() {
    let server = TestServer::start();
    let admin = server.create_tenant("revoked");
    let (id, secret) = create_key(&server, &admin, "admin");
    let revoked = server.delete(&format!("/api/v1/keys/{id}"), &admin);
    assert_eq!(revoked.status, 200, "{}", revoked.text);

    // The schema setup, the first call, is refused: the run stops before sending anything.
    let target = BenchTarget::with_admin_key(server.url(), &secret);
    let error = run_ingest(&target, &small_ingest(true)).unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    // With a good admin key for the schema but the revoked key for writes, every batch fails.
    let target = BenchTarget {
        write_key: secret,
        ..BenchTarget::with_admin_key(server.url(), &admin)
    };
    let report = run_ingest(&target, &small_ingest(false)).unwrap();
    assert_eq!(report.failed_batches, report.batches);
    assert!(report.failures[0].contains("401"), "{:?}", report.failures);
    assert!(!report.passed());
    assert_eq!(count(&server, &admin, "SELECT count(*) FROM readings"), 0);
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes[..8],
        [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']
    );
    assert!(
        bytes.len() > 10_000,
        "{}: {} bytes",
        path.display(),
        bytes.len()
    );
}

/// `strata bench all --spawn` on a tiny workload (10 trucks, 2,000 events, 1,000 alias rows,
/// 5 probes and recent queries, one run of each cold query), then `extra`.
fn bench_all_tiny(extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "all",
        "--spawn",
        "--trucks",
        "10",
        "--events",
        "2000",
        "--batch",
        "200",
        "--samples",
        "5",
        "--runs",
        "5",
        "--alias-rows",
        "1000",
        "--alias-runs",
        "2",
        "--compaction-runs",
        "1",
        "--analytics-runs",
        "1",
    ];
    args.extend_from_slice(extra);
    bench(&args)
}

/// Every scenario in `scenarios` has its rows in the markdown report.
fn assert_report_has(markdown: &str, scenarios: &[&str]) {
    for scenario in scenarios {
        let row = format!("| {scenario} |");
        assert!(markdown.contains(&row), "{scenario} missing:\n{markdown}");
    }
}

#[test]
fn bench_all_runs_six_scenarios_on_one_spawned_server_with_plots() {
    let out = tempfile::tempdir().unwrap();
    let plots = out.path().join("plots");
    let report_file = out.path().join("bench.md");
    let output = bench_all_tiny(&[
        "--plots",
        plots.to_str().unwrap(),
        "--report",
        report_file.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench all failed:\n{stderr}");
    let answer = json_stdout(&output);
    let report = &answer["report"];

    // The spawned server ran without background compaction, and compacted everything when
    // asked; it is gone afterwards.
    let serve_args = answer["server"]["serve_args"].as_array().unwrap();
    for flag in ["--compact-interval-secs=0", "--compact-after-secs=0"] {
        assert!(serve_args.contains(&json!(flag)), "{serve_args:?}");
    }
    let pid = answer["server"]["pid"].as_u64().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());

    // All six, with their checks passed.
    assert_eq!(report["ingest"]["counts"]["ok"], true, "{report:#}");
    assert_eq!(report["ingest"]["counts"]["total"], 2000);
    assert!(report["recent"]["rows"].as_u64().unwrap() > 0);
    assert_eq!(report["aliases"]["answers_equal"], true);
    let compaction = &report["compaction"];
    assert_eq!(compaction["complete"], true, "{compaction:#}");
    // Both workload metrics and the alias metric, every row.
    assert_eq!(compaction["answer"]["rows"], 2000 + 1000);
    let analytics = &report["analytics"];
    assert_eq!(analytics["coverage_ok"], true, "{analytics:#}");
    let queries = analytics["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 8);
    for query in queries {
        assert_eq!(query["same_result"], true, "{query:#}");
    }
    // Freshness ran last, after compaction, and saw every probe.
    assert_eq!(report["freshness"]["timeouts"], 0);
    assert_eq!(report["freshness"]["ack_to_visible"]["samples"], 5);
    // Raw samples stay out of the JSON.
    assert!(report["recent"]["latency"].get("sorted_ms").is_none());

    // Every scenario drew its plots into --plots, and the report links them relative to itself.
    let files: Vec<&str> = answer["plots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plot| plot["path"].as_str().unwrap())
        .collect();
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    for name in [
        "ingest-rate",
        "ingest-batch-latency",
        "recent-latency",
        "aliases-latency",
        "compaction-query-latency",
        "analytics-last-loc",
        "analytics-breakdown-frequency",
        "freshness-latency",
    ] {
        let path = plots.join(format!("{name}.png"));
        assert!(
            files.contains(&path.to_str().unwrap()),
            "{name} not in {files:?}"
        );
        assert_png(&path);
        assert!(
            markdown.contains(&format!("(plots/{name}.png)")),
            "{name} not linked in:\n{markdown}"
        );
    }
    assert_report_has(
        &markdown,
        &[
            "ingest",
            "recent",
            "aliases",
            "compaction",
            "analytics",
            "freshness",
        ],
    );
}

#[test]
fn a_run_that_cannot_fit_on_the_disk_refuses_to_start() {
    // About 12 TiB of hot tier for a hundred billion events: more than any test machine has.
    let output = bench(&[
        "ingest",
        "--spawn",
        "--trucks",
        "1000",
        "--events",
        "100000000000",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("is free"), "{stderr}");
    // The spawned server was stopped before the command returned.
    let pid: u32 = stderr
        .split("spawned strata serve (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in:\n{stderr}"));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// A stand-in for Python that passes the `import duckdb` probe but answers the analytics script
/// with what DuckDB's progress bar used to put on stdout, instead of JSON.
fn python_printing_a_progress_bar(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("python-with-progress-bar");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         case \"$2\" in\n\
         'import duckdb'*) echo 1.4.2; exit 0 ;;\n\
         esac\n\
         cat > /dev/null\n\
         printf '\\r 41%% \\342\\226\\225\\342\\226\\210\\342\\226\\210'\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_failed_analytics_step_fails_the_run_but_keeps_the_other_steps_in_the_report() {
    let out = tempfile::tempdir().unwrap();
    let python = python_printing_a_progress_bar(out.path());
    let report_file = out.path().join("bench.md");
    let output = bench_all_tiny(&[
        "--python",
        python.to_str().unwrap(),
        "--report",
        report_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a broken engine must fail the run:\n{stderr}"
    );
    // The error names the step and shows what the script printed instead of JSON.
    assert!(stderr.contains("analytics: the step failed"), "{stderr}");
    assert!(stderr.contains("no valid JSON"), "{stderr}");
    assert!(stderr.contains("41%"), "{stderr}");
    // Every other step, including freshness after analytics, is in the report.
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    assert_report_has(
        &markdown,
        &["ingest", "recent", "aliases", "compaction", "freshness"],
    );
    assert!(
        markdown.contains("analytics: the step failed"),
        "{markdown}"
    );
}

#[test]
fn isolation_reports_both_tenants_figures_in_both_phases() {
    // Tiny: 1 s alone, 2 s next to 1,000 x 1,000 cross joins (a million rows to sort, done in
    // about a second even in a debug build, so the run does not depend on how fast the server
    // cancels a query at its deadline), under a 5 s query limit. The exit status depends on
    // the machine's latencies (the target), so only the report's shape is checked.
    let output = bench(&[
        "isolation",
        "--spawn",
        "--json",
        "--baseline-secs",
        "1",
        "--loaded-secs",
        "2",
        "--heavy-rows",
        "1000",
        "--serve-arg=--query-timeout-secs=5",
    ]);
    let envelope = json_stdout(&output);
    let report = &envelope["report"];
    assert_eq!(report["run"]["scenario"], "isolation");
    assert_eq!(report["target_p99_ms"], 100.0);
    assert_eq!(report["parameters"]["loaded_secs"], 2);
    assert_eq!(report["parameters"]["heavy_rows"], 1000);
    assert!(envelope["server"]["serve_args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|arg| arg == "--query-timeout-secs=5"));
    for phase in ["baseline", "loaded"] {
        for measure in ["write_ack", "count"] {
            let summary = &report[phase][measure];
            assert!(
                summary["samples"].as_u64().unwrap() > 0,
                "{phase} {measure}"
            );
            for field in ["p50_ms", "p99_ms", "max_ms"] {
                assert!(summary[field].is_number(), "{phase} {measure} {field}");
            }
        }
        assert!(report[phase]["failed_writes"].is_number());
        assert!(report[phase]["errors"].is_array());
    }
    let heavy = &report["heavy"];
    assert!(heavy["queries"].as_u64().unwrap() >= 1, "{heavy}");
    assert!(heavy["outcomes"].is_object(), "{heavy}");
    assert!(heavy["elapsed"]["max_ms"].is_number(), "{heavy}");
}

#[test]
fn alerts_reports_its_four_parts() {
    // Tiny: 6 notifications, 2 silent devices (for 1 s), 5 query rules for 4 s, one pair of
    // 2,000-event ingest phases with 3 event rules. The exit status depends on the machine's
    // latencies (the targets), so only the report's shape is checked.
    let out = tempfile::tempdir().unwrap();
    let report_file = out.path().join("alerts.md");
    let output = bench(&[
        "alerts",
        "--spawn",
        "--json",
        "--report",
        report_file.to_str().unwrap(),
        "--event-samples",
        "6",
        "--event-warmup",
        "2",
        "--absence-samples",
        "2",
        "--absence-for-ms",
        "1000",
        "--absence-stagger-ms",
        "300",
        "--query-rules",
        "5",
        "--query-devices",
        "5",
        "--query-secs",
        "4",
        "--query-warmup-secs",
        "2",
        "--query-sample-secs",
        "1",
        "--ingest-rules",
        "3",
        "--ingest-rounds",
        "1",
        "--ingest-events",
        "2000",
        "--ingest-trucks",
        "10",
        "--batch",
        "200",
    ]);
    let envelope = json_stdout(&output);
    let report = &envelope["report"];
    assert_eq!(report["run"]["scenario"], "alerts");
    // The spawned server let webhooks reach the receiver on 127.0.0.1, and is gone.
    let serve_args = envelope["server"]["serve_args"].as_array().unwrap();
    assert!(
        serve_args.contains(&json!("--allow-private-webhooks")),
        "{serve_args:?}"
    );
    let pid = envelope["server"]["pid"].as_u64().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(report["webhook_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));

    let event = &report["event"];
    assert_eq!(event["writes"], 6, "{event:#}");
    assert_eq!(
        event["received"].as_u64().unwrap() + event["timeouts"].as_u64().unwrap(),
        6
    );
    for summary in ["ack_to_webhook", "firing", "resolved", "write_ack"] {
        for field in ["p50_ms", "p99_ms", "max_ms", "samples"] {
            assert!(event[summary][field].is_number(), "event {summary} {field}");
        }
    }
    let absence = &report["absence"];
    assert_eq!(absence["devices_stopped"], 2, "{absence:#}");
    assert_eq!(absence["for_ms"], 1000);
    assert!(absence["delay"]["max_ms"].is_number(), "{absence:#}");
    for count in ["missed", "early", "false_alarms", "heartbeats"] {
        assert!(absence[count].is_u64(), "absence {count}");
    }
    let query = &report["query"];
    assert_eq!(query["rules"], 5, "{query:#}");
    assert!(query["sql"].as_str().unwrap().contains("FROM thermostat"));
    assert!(
        !query["samples"].as_array().unwrap().is_empty(),
        "{query:#}"
    );
    assert!(query["lag"]["p99_ms"].is_number(), "{query:#}");
    assert!(query["ingest_events"].as_u64().unwrap() > 0, "{query:#}");
    let ingest = &report["ingest"];
    let phases = ingest["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "{ingest:#}");
    assert_eq!(phases[0]["rules"], 0);
    assert_eq!(phases[1]["rules"], 3);
    for phase in phases {
        // 2,000 distinct events, and the workload's deliberate duplicates.
        assert!(phase["accepted"].as_u64().unwrap() >= 2000, "{phase:#}");
        assert_eq!(phase["rejected"], 0, "{phase:#}");
        assert_eq!(phase["failed_batches"], 0, "{phase:#}");
    }
    assert!(ingest["ratio"].is_number(), "{ingest:#}");

    // The markdown report has a row per part, with its target.
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    for measure in [
        "write ack -> webhook p50 / p99 / max",
        "absence rule (for 1.0 s)",
        "5 query rules every 1 s over 5 devices: evaluation lag",
        "ingest with rules / without",
    ] {
        assert!(markdown.contains(measure), "{measure} missing:\n{markdown}");
    }
    assert!(markdown.contains("p99 <= 100 ms"), "{markdown}");
}

/// `strata bench alerts` against a running server, with part 1 only (2 notifications).
fn bench_alerts_event_only(server: &TestServer, key: &str) -> std::process::Output {
    bench(&[
        "alerts",
        "--url",
        server.url(),
        "--key",
        key,
        "--json",
        "--event-samples",
        "2",
        "--event-warmup",
        "0",
        "--absence-samples",
        "0",
        "--query-rules",
        "0",
        "--ingest-rounds",
        "0",
    ])
}

/// The names of the tenant's rules and channels.
fn alert_names(server: &TestServer, key: &str) -> (Vec<String>, Vec<String>) {
    let names = |path: &str, list: &str| -> Vec<String> {
        let answer = server.get(path, key);
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_string())
            .collect()
    };
    (
        names("/api/v1/alerts", "alerts"),
        names("/api/v1/channels", "channels"),
    )
}

#[test]
fn alerts_removes_its_own_rules_and_leftovers_but_not_the_tenants() {
    let server = TestServer::start_with(&["--allow-private-webhooks"]);
    let key = server.create_tenant("alerts_cleanup");
    let declare = server.post(
        "/api/v1/schema/metrics",
        &key,
        &json!({"name": "bench_alert_event"}),
    );
    assert_eq!(declare.status, 201, "{}", declare.text);
    // What an interrupted run leaves behind, and a rule of the tenant's own.
    let channel = json!({"name": "bench_alerts_hook", "kind": "webhook",
                         "url": "http://127.0.0.1:9/gone"});
    assert_eq!(server.post("/api/v1/channels", &key, &channel).status, 201);
    for (name, channels) in [
        ("bench_alerts_event", json!(["bench_alerts_hook"])),
        ("mine", json!([])),
    ] {
        let rule = json!({"name": name, "kind": "absence", "metric": "bench_alert_event",
                          "for": "1h", "channels": channels});
        let created = server.post("/api/v1/alerts", &key, &rule);
        assert_eq!(created.status, 201, "{}", created.text);
    }

    let output = bench_alerts_event_only(&server, &key);
    let report = &json_stdout(&output)["report"];
    assert_eq!(report["leftovers_removed"], 2, "{report:#}");
    assert_eq!(report["event"]["writes"], 2, "{report:#}");
    assert!(report["query"].is_null() && report["ingest"].is_null());
    // Only the tenant's own rule is left; the benchmark's channel is gone.
    assert_eq!(
        alert_names(&server, &key),
        (vec!["mine".to_string()], vec![])
    );
}

#[test]
fn alerts_against_a_server_that_refuses_private_webhooks_says_so() {
    let server = TestServer::start();
    let key = server.create_tenant("alerts_private");
    let output = bench_alerts_event_only(&server, &key);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--allow-private-webhooks"), "{stderr}");
}

#[test]
fn streaming_reports_its_three_parts_with_exact_counts() {
    // Tiny: 5 live updates, 5 rollup reads, one pair of 2,000-event ingest phases with 2
    // rollups. Only the report's shape and its exactness counts are checked, not timings.
    let out = tempfile::tempdir().unwrap();
    let report_file = out.path().join("streaming.md");
    let output = bench(&[
        "streaming",
        "--spawn",
        "--json",
        "--report",
        report_file.to_str().unwrap(),
        "--live-samples",
        "5",
        "--rollup-samples",
        "5",
        "--warmup",
        "1",
        "--ingest-rollups",
        "2",
        "--ingest-rounds",
        "1",
        "--ingest-events",
        "2000",
        "--ingest-trucks",
        "10",
        "--batch",
        "200",
        "--history-days",
        "1",
        "--history-devices",
        "3",
        "--query-runs",
        "2",
    ]);
    let envelope = json_stdout(&output);
    let report = &envelope["report"];
    assert_eq!(report["run"]["scenario"], "streaming");
    let history = &report["history"];
    assert_eq!(history["raw_rows"], 3 * 1_440, "{history:#}");
    assert_eq!(history["same_answer"], true, "{history:#}");
    let live = &report["live"];
    assert_eq!(live["writes"], 5, "{live:#}");
    assert_eq!(live["missed"], 0, "every live update arrived: {live:#}");
    assert!(live["latency"]["p99_ms"].is_number(), "{live:#}");
    let rollup = &report["rollup"];
    assert_eq!(rollup["writes"], 5, "{rollup:#}");
    assert_eq!(
        rollup["missed"], 0,
        "every rollup answer counted its write: {rollup:#}"
    );
    let phases = report["ingest"]["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["rules"], 0);
    assert_eq!(phases[1]["rules"], 2);
    for phase in phases {
        assert_eq!(phase["rejected"], 0, "{phase:#}");
        assert_eq!(phase["failed_batches"], 0, "{phase:#}");
    }
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    for measure in [
        "live tail: write ack -> SSE rows event",
        "rollup: write ack -> rollup answer counting it",
        "ingest with rollups / without",
    ] {
        assert!(markdown.contains(measure), "{measure} missing:\n{markdown}");
    }
}
