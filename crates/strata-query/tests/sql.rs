//! End-to-end SQL over a real SqliteCatalog and a real HotStore.

mod common;

use common::*;
use strata_catalog::SchemaChange;
use strata_core::TenantId;
use strata_core::{FieldType, Value};
use strata_query::{QueryError, TenantSession};

#[tokio::test]
async fn new_machine_strings_are_queryable_before_any_schema() {
    let h = harness().await;
    let tenant = h.tenant("dpi").await;
    h.write(
        tenant,
        "new machine",
        &[(
            T0,
            vec![
                ("temperature", s("15")),
                ("pressure", s("4")),
                ("gallons", s("5")),
            ],
        )],
    )
    .await;
    let session = h.session(tenant).await;
    assert_eq!(
        rows(
            &session,
            r#"SELECT CAST(gallons AS INT) AS g, gallons FROM "new machine""#
        )
        .await,
        strings(&[&["5", "5"]])
    );
    let batches = run(&session, r#"SELECT * FROM "new machine""#)
        .await
        .unwrap();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names[0], "timestamp");
    let mut fields = names[1..].to_vec();
    fields.sort();
    assert_eq!(fields, vec!["gallons", "pressure", "temperature"]);
    assert!(schema
        .fields()
        .iter()
        .skip(1)
        .all(|f| f.data_type() == &datafusion::arrow::datatypes::DataType::Utf8));
    assert_eq!(
        rows(&session, r#"SELECT timestamp FROM "new machine""#).await,
        strings(&[&["2015-01-12T10:12:15Z"]])
    );
}

async fn thermostat(h: &Harness) -> i64 {
    let tenant = h.tenant("acme").await;
    h.declare(
        tenant,
        "thermostat",
        "temperature",
        Some(FieldType::Double),
        &["temp", "tmp"],
        false,
    )
    .await;
    h.write(
        tenant,
        "thermostat",
        &[
            (
                T0,
                vec![("temperature", Value::Float(20.5)), ("name", s("a"))],
            ),
            // Two names set in one row: precedence (temperature, temp, tmp) decides.
            (
                T0 + 1000,
                vec![("tmp", Value::Int(99)), ("temp", s("21")), ("name", s("b"))],
            ),
            (T0 + 2000, vec![("tmp", Value::Int(22)), ("name", s("a"))]),
            (T0 + 3000, vec![("name", s("b"))]),
        ],
    )
    .await;
    tenant.0
}

#[tokio::test]
async fn alias_reads_first_non_null_name_in_precedence_and_keeps_its_output_name() {
    let h = harness().await;
    let tenant = thermostat(&h).await;
    let session = h.session(TenantId(tenant)).await;
    let batches = run(&session, "SELECT temp FROM thermostat ORDER BY timestamp")
        .await
        .unwrap();
    assert_eq!(batches[0].schema().field(0).name(), "temp");
    assert_eq!(
        rows(&session, "SELECT temp FROM thermostat ORDER BY timestamp").await,
        strings(&[&["20.5"], &["21.0"], &["22.0"], &[""]])
    );
    // SELECT * shows the field once, under its display name, typed.
    let all = run(&session, "SELECT * FROM thermostat").await.unwrap();
    let schema = all[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["timestamp", "temperature", "name"]);
}

#[tokio::test]
async fn rename_keeps_old_queries_working_and_never_changes_values() {
    let h = harness().await;
    let tenant = thermostat(&h).await;
    let before = rows(
        &h.session(TenantId(tenant)).await,
        "SELECT temperature FROM thermostat ORDER BY timestamp",
    )
    .await;
    h.change(
        TenantId(tenant),
        SchemaChange::UpdateField {
            metric: "thermostat".into(),
            field: "temperature".into(),
            rename_to: Some("celsius".into()),
            field_type: None,
            add_aliases: vec![],
            remove_aliases: vec![],
            hidden: None,
        },
    )
    .await;
    h.change(
        TenantId(tenant),
        SchemaChange::UpdateMetric {
            metric: "thermostat".into(),
            rename_to: Some("thermo".into()),
            add_aliases: vec![],
            remove_aliases: vec![],
            timestamp_aliases: None,
            timestamp_patterns: None,
            series_keys: None,
            retention_days: None,
            timestamp_unit: None,
        },
    )
    .await;
    let session = h.session(TenantId(tenant)).await;
    for sql in [
        "SELECT temperature FROM thermostat ORDER BY timestamp",
        "SELECT celsius FROM thermo ORDER BY timestamp",
        "SELECT tmp FROM thermostat ORDER BY timestamp",
    ] {
        assert_eq!(rows(&session, sql).await, before, "{sql}");
    }
    let all = run(&session, "SELECT * FROM thermo").await.unwrap();
    let schema = all[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["timestamp", "celsius", "name"]);
}

#[tokio::test]
async fn aliases_work_in_every_clause() {
    let h = harness().await;
    let tenant = thermostat(&h).await;
    let cases: &[(&str, &[&[&str]])] = &[
        ("SELECT name FROM thermostat WHERE temp > 21 ORDER BY name", &[&["a"]]),
        (
            "SELECT tmp, count(*) AS c FROM thermostat GROUP BY tmp ORDER BY tmp",
            &[&["20.5", "1"], &["21.0", "1"], &["22.0", "1"], &["", "1"]],
        ),
        (
            "SELECT name, round(avg(temp)) AS a FROM thermostat GROUP BY name ORDER BY name",
            &[&["a", "21.0"], &["b", "21.0"]],
        ),
        (
            "SELECT temp FROM thermostat WHERE temp IS NOT NULL ORDER BY temp DESC LIMIT 1",
            &[&["22.0"]],
        ),
        (
            "SELECT count(*) AS c FROM thermostat t JOIN machine1 m ON t.tmp = m.temp",
            &[&["3"]],
        ),
        (
            "SELECT name FROM thermostat WHERE temp = (SELECT max(tmp) FROM thermostat)",
            &[&["a"]],
        ),
        (
            "WITH hot AS (SELECT name, temp FROM thermostat WHERE temp >= 21) SELECT name, temp FROM hot ORDER BY temp",
            &[&["b", "21.0"], &["a", "22.0"]],
        ),
        (
            "SELECT x FROM (SELECT tmp AS x FROM thermostat) AS sub WHERE x < 21",
            &[&["20.5"]],
        ),
    ];
    // `machine1` is a metric alias added below.
    h.change(
        TenantId(tenant),
        SchemaChange::UpdateMetric {
            metric: "thermostat".into(),
            rename_to: None,
            add_aliases: vec!["machine1".into()],
            remove_aliases: vec![],
            timestamp_aliases: None,
            timestamp_patterns: None,
            series_keys: None,
            retention_days: None,
            timestamp_unit: None,
        },
    )
    .await;
    let session = h.session(TenantId(tenant)).await;
    for (sql, expected) in cases {
        assert_eq!(rows(&session, sql).await, strings(expected), "{sql}");
    }
}

#[tokio::test]
async fn hidden_fields_are_absent_and_unknown_fields_become_typed_after_declare() {
    let h = harness().await;
    let tenant = h.tenant("acme").await;
    h.write(
        tenant,
        "pump",
        &[
            (T0, vec![("rpm", s("1500")), ("secret", s("x"))]),
            (T0 + 1, vec![("rpm", Value::Int(1600)), ("secret", s("y"))]),
        ],
    )
    .await;
    let session = h.session(tenant).await;
    assert_eq!(
        rows(&session, "SELECT rpm, secret FROM pump ORDER BY timestamp").await,
        strings(&[&["1500", "x"], &["1600", "y"]])
    );
    h.declare(tenant, "pump", "rpm", Some(FieldType::Integer), &[], false)
        .await;
    h.declare(tenant, "pump", "secret", None, &[], true).await;
    let session = h.session(tenant).await;
    assert_eq!(
        rows(&session, "SELECT rpm + 1 AS r FROM pump ORDER BY timestamp").await,
        strings(&[&["1501"], &["1601"]])
    );
    let all = run(&session, "SELECT * FROM pump").await.unwrap();
    let schema = all[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["timestamp", "rpm"]);
    assert_eq!(
        schema.field(1).data_type(),
        &datafusion::arrow::datatypes::DataType::Int64
    );
    assert!(matches!(
        run(&session, "SELECT secret FROM pump").await,
        Err(QueryError::Sql(_))
    ));
}

#[tokio::test]
async fn failed_casts_read_null_are_counted_and_raw_text_stays_retrievable() {
    let h = harness().await;
    let tenant = thermostat(&h).await;
    h.write(
        TenantId(tenant),
        "thermostat",
        &[(T0 + 5000, vec![("temp", s("warm")), ("name", s("c"))])],
    )
    .await;
    let session = h.session(TenantId(tenant)).await;
    assert_eq!(
        rows(&session, "SELECT temp FROM thermostat WHERE name = 'c'").await,
        strings(&[&[""]])
    );
    let explain = table(
        &session,
        "EXPLAIN ANALYZE SELECT temperature FROM thermostat",
    )
    .await;
    assert!(explain.contains("cast_failures=1"), "{explain}");
    assert_eq!(
        rows(
            &session,
            r#"SELECT "temp" FROM strata_raw('thermostat') WHERE "temp" IS NOT NULL ORDER BY timestamp"#
        )
        .await,
        strings(&[&["21"], &["warm"]])
    );
    let raw = run(&session, "SELECT * FROM strata_raw('thermostat')")
        .await
        .unwrap();
    let schema = raw[0].schema();
    let mut names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["name", "temp", "temperature", "timestamp", "tmp"]
    );
    assert!(matches!(
        run(&session, "SELECT * FROM strata_raw('nope')").await,
        Err(QueryError::Sql(m)) if m.contains("no metric named 'nope'")
    ));
}

#[tokio::test]
async fn explain_shows_pruned_weeks_series_seek_and_alias_expansion() {
    let h = harness().await;
    let tenant = h.tenant("acme").await;
    h.declare(tenant, "truck", "name", None, &[], false).await;
    h.declare(
        tenant,
        "truck",
        "speed",
        Some(FieldType::Double),
        &["spd"],
        false,
    )
    .await;
    h.change(
        tenant,
        SchemaChange::UpdateMetric {
            metric: "truck".into(),
            rename_to: None,
            add_aliases: vec![],
            remove_aliases: vec![],
            timestamp_aliases: None,
            timestamp_patterns: None,
            series_keys: Some(vec!["name".into()]),
            retention_days: None,
            timestamp_unit: None,
        },
    )
    .await;
    // Three consecutive weeks (T0 is Monday 2015-01-12).
    let mut events = Vec::new();
    for week in 0..3 {
        for (i, truck) in ["truck_1", "truck_7"].iter().enumerate() {
            events.push((
                T0 + week * WEEK + i as i64,
                vec![("name", s(truck)), ("spd", Value::Float(week as f64))],
            ));
        }
    }
    h.write(tenant, "truck", &events).await;
    let session = h.session(tenant).await;
    let sql = "SELECT spd FROM truck WHERE timestamp >= '2015-01-19T00:00:00Z' AND timestamp < to_timestamp_millis(1422230400000) AND name = 'truck_7'";
    assert_eq!(rows(&session, sql).await, strings(&[&["1.0"]]));
    let plan = table(&session, &format!("EXPLAIN {sql}")).await;
    // Weeks of 2015 are far from now, so they are weeks of the shared archive keyspace.
    assert!(
        plan.contains("partitions=[hot_2015-01-19@archive]"),
        "{plan}"
    );
    assert!(
        plan.contains("time=[2015-01-19T00:00:00Z, 2015-01-26T00:00:00Z)"),
        "{plan}"
    );
    assert!(plan.contains("series=seek(1 series)"), "{plan}");
    // Only names that ever received data are read: `speed` itself never did.
    assert!(plan.contains("speed <- (spd) as Float64"), "{plan}");
    let everything = table(&session, "EXPLAIN SELECT count(spd) FROM truck").await;
    assert!(
        everything.contains(
            "partitions=[hot_2015-01-12@archive, hot_2015-01-19@archive, hot_2015-01-26@archive]"
        ),
        "{everything}"
    );
    assert!(everything.contains("series=all"), "{everything}");
    assert_eq!(
        rows(&session, "SELECT count(*) FROM truck WHERE name IN ('truck_1', 'truck_7') AND timestamp BETWEEN '2015-01-12T00:00:00Z' AND '2015-01-25T00:00:00Z'").await,
        strings(&[&["4"]])
    );
}

/// Issue 17: a metric a device named `MY_TABLE` with a field `Temp` reads without quotes, through
/// DataFusion's planning (the rewrite's table alias, qualifiers, joins, describe), and a name that
/// matches two tables ignoring case is refused naming them.
#[tokio::test]
async fn unquoted_names_resolve_ignoring_case_through_planning() {
    let h = harness().await;
    let tenant = h.tenant("acme").await;
    h.declare(
        tenant,
        "MY_TABLE",
        "Temp",
        Some(FieldType::Double),
        &[],
        false,
    )
    .await;
    h.write(
        tenant,
        "MY_TABLE",
        &[
            (T0, vec![("Temp", Value::Float(1.5))]),
            (T0 + 1000, vec![("Temp", Value::Float(2.5))]),
        ],
    )
    .await;
    let session = h.session(tenant).await;
    let batches = run(&session, "SELECT temp FROM MY_TABLE ORDER BY temp")
        .await
        .unwrap();
    assert_eq!(batches[0].schema().field(0).name(), "temp");
    assert_eq!(
        rows(&session, "SELECT temp FROM MY_TABLE ORDER BY temp").await,
        strings(&[&["1.5"], &["2.5"]])
    );
    assert_eq!(
        rows(&session, "select TEMP from my_table WHERE temp > 2").await,
        strings(&[&["2.5"]])
    );
    assert_eq!(
        rows(
            &session,
            "SELECT my_table.temp, count(*) FROM MY_TABLE JOIN (SELECT temp AS t2 FROM my_table) s \
             ON MY_TABLE.TEMP = s.t2 GROUP BY my_table.temp ORDER BY 1"
        )
        .await,
        strings(&[&["1.5", "1"], &["2.5", "1"]])
    );
    // The Postgres door's extended protocol describes through the same rewrite.
    let described = session
        .describe(TenantSession::parse("SELECT temp FROM my_table WHERE temp > $1").unwrap())
        .await
        .unwrap();
    assert_eq!(described.schema.field(0).name(), "temp");
    // Quoted names stay exact.
    let error = run(&session, r#"SELECT "temp" FROM MY_TABLE"#)
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::Sql(_)), "{error:?}");

    // A second metric differing only in case makes `my_table` ambiguous; `MY_TABLE`, written
    // as registered, still names the first.
    h.write(
        tenant,
        "My_Table",
        &[(T0, vec![("Temp", Value::Float(9.0))])],
    )
    .await;
    let session = h.session(tenant).await;
    match run(&session, "SELECT count(*) FROM my_table").await {
        Err(QueryError::Sql(message)) => assert_eq!(
            message,
            r#"table name my_table is ambiguous: ignoring case it matches "MY_TABLE", "My_Table"; write the one you mean in double quotes"#
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rows(&session, "SELECT count(*) FROM MY_TABLE").await,
        strings(&[&["2"]])
    );
}

#[tokio::test]
async fn write_and_definition_statements_are_refused_with_clear_messages() {
    let h = harness().await;
    let tenant = thermostat(&h).await;
    let session = h.session(TenantId(tenant)).await;
    for (sql, kind) in [
        ("CREATE TABLE t (a INT)", "CREATE TABLE"),
        ("INSERT INTO thermostat VALUES (1)", "INSERT"),
        ("COPY (SELECT 1) TO '/tmp/strata-copy-test.csv'", "COPY"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        ("DROP TABLE thermostat", "DROP TABLE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
    ] {
        match run(&session, sql).await {
            Err(QueryError::Refused(message)) => assert_eq!(
                message,
                format!("statement not allowed: {kind} (Strata SQL is read-only)"),
                "{sql}"
            ),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // SELECT ... INTO creates a table: refused by the plan check.
    assert!(matches!(
        run(&session, "SELECT 1 AS a INTO t2").await,
        Err(QueryError::Refused(_))
    ));
    // No URL tables: a file path is not a table.
    let error = run(&session, "SELECT * FROM '/etc/passwd'")
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::Sql(_)), "{error:?}");
    assert!(!error.to_string().contains("/etc/passwd"), "{error}");
    // The table is untouched.
    assert_eq!(
        rows(&session, "SELECT count(*) FROM thermostat").await,
        strings(&[&["4"]])
    );
}

#[tokio::test]
async fn tenants_are_sealed() {
    let h = harness().await;
    let a = thermostat(&h).await;
    h.hot
        .write(strata_storage::HotWrite {
            tenant: TenantId(a),
            events: vec![],
            errors: vec![strata_storage::ErrorRecord {
                time_ms: T0,
                stage: "parse".into(),
                reason: "not JSON".into(),
                payload: "{oops".into(),
                index: Some(3),
                metric: Some("thermostat".into()),
            }],
        })
        .await
        .unwrap();
    let b = h.tenant("other").await;
    h.write(b, "pump", &[(T0, vec![("rpm", s("1"))])]).await;

    let session_a = h.session(TenantId(a)).await;
    assert_eq!(
        rows(
            &session_a,
            "SELECT stage, reason, payload, event_index, metric FROM strata.errors"
        )
        .await,
        strings(&[&["parse", "not JSON", "{oops", "3", "thermostat"]])
    );
    assert_eq!(
        rows(
            &session_a,
            "SELECT metric, name FROM strata.unknown_fields ORDER BY name"
        )
        .await,
        strings(&[&["thermostat", "name"]])
    );

    let session_b = h.session(b).await;
    assert!(matches!(
        run(&session_b, "SELECT * FROM thermostat").await,
        Err(QueryError::Sql(_))
    ));
    assert!(matches!(
        run(&session_b, "SELECT * FROM strata.public.thermostat").await,
        Err(QueryError::Sql(_))
    ));
    assert!(matches!(
        run(&session_b, "SELECT * FROM strata_raw('thermostat')").await,
        Err(QueryError::Sql(_))
    ));
    assert_eq!(
        rows(&session_b, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name").await,
        // Every system table is the tenant's own view (issue 15 added the alert tables,
        // issue 16 `rollups`).
        strings(&[
            &["public", "pump"],
            &["strata", "alert_history"],
            &["strata", "alerts"],
            &["strata", "errors"],
            &["strata", "notifications"],
            &["strata", "rollups"],
            &["strata", "unknown_fields"],
        ])
    );
    let shown = table(&session_b, "SHOW TABLES").await;
    assert!(
        shown.contains("pump") && !shown.contains("thermostat"),
        "{shown}"
    );
    assert!(rows(&session_b, "SELECT * FROM strata.errors")
        .await
        .is_empty());
    assert_eq!(
        rows(&session_b, "SELECT metric, name FROM strata.unknown_fields").await,
        strings(&[&["pump", "rpm"]])
    );
    // Tenant A sees its metric in information_schema.
    assert_eq!(
        rows(
            &session_a,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .await,
        strings(&[&["thermostat"]])
    );
}

#[tokio::test]
async fn memory_limit_and_timeout_stop_heavy_queries() {
    let h = harness_with(strata_query::QueryConfig {
        memory_limit_bytes: 1024 * 1024,
        ..Default::default()
    })
    .await;
    let tenant = h.tenant("acme").await;
    let session = h.session(tenant).await;
    let error = run(
        &session,
        "SELECT value FROM generate_series(1, 5000000) ORDER BY value DESC",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, QueryError::ResourcesExhausted(_)),
        "{error:?}"
    );

    let h = harness_with(strata_query::QueryConfig {
        timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let tenant = h.tenant("acme").await;
    let session = h.session(tenant).await;
    let error = run(
        &session,
        "SELECT count(*) FROM generate_series(1, 100000000000)",
    )
    .await
    .unwrap_err();
    assert!(matches!(error, QueryError::Timeout(_)), "{error:?}");
}
