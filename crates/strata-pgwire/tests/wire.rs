//! The Postgres wire server against real clients: psql and tokio-postgres.

mod common;

use common::*;
use strata_core::{FieldType, Role, Value};
use strata_query::QueryConfig;
use tokio_postgres::SimpleQueryMessage;

fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_select_returns_the_rows() {
    let (server, acme, _) = seeded().await;
    let Some(out) = server
        .psql(
            "acme",
            &acme.admin_key,
            &[
                "-A",
                "-t",
                "-F",
                "|",
                "-c",
                "SELECT timestamp, name, temp, reading, gallons FROM thermostat ORDER BY timestamp",
            ],
        )
        .await
    else {
        return;
    };
    assert!(out.success, "{out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec![
            "2015-01-12 10:12:15.000000+00|kitchen|21.5|10|3",
            "2015-01-12 10:13:15.000000+00|garage|12.25|20|",
            "2015-01-12 10:14:15.000000+00|it's attic|30.0|30|",
        ],
        "{out:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_get_28p01_and_nothing_more() {
    let (server, acme, globex) = seeded().await;
    let write_only = server.key(acme.id, Role::Write).await;
    let read = server.key(acme.id, Role::Read).await;
    for (user, password) in [
        ("acme", "not-a-key"),
        ("acme", globex.admin_key.as_str()),
        ("globex", acme.admin_key.as_str()),
        ("nobody", acme.admin_key.as_str()),
        ("acme", write_only.as_str()),
        ("acme", ""),
    ] {
        let error = server
            .connect(user, password)
            .await
            .err()
            .unwrap_or_else(|| {
                panic!("{user} logged in with a wrong password");
            });
        assert_eq!(code(&error), "28P01", "{user}: {error:?}");
        let message = error.as_db_error().unwrap().message().to_string();
        assert_eq!(message, "password authentication failed");
    }
    let client = server.connect("acme", &read).await.unwrap();
    let rows = client
        .simple_query("SELECT count(*) FROM thermostat")
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows), vec![vec![Some("3".to_string())]]);

    if let Some(out) = server.psql("acme", "wrong", &["-c", "SELECT 1"]).await {
        assert!(!out.success);
        assert!(
            out.stderr.contains("password authentication failed"),
            "{out:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_carry_their_sqlstate() {
    let (server, acme, _) = seeded().await;
    let client = server.connect("acme", &acme.admin_key).await.unwrap();
    for (sql, expected) in [
        ("SELECT * FROM nope", "42P01"),
        ("SELECT nope FROM thermostat", "42703"),
        ("SELEC 1", "42601"),
        ("SELECT * FROM secret_plant", "42P01"),
        ("DROP TABLE thermostat", "42501"),
        ("CREATE TABLE x (a INT)", "42501"),
        ("INSERT INTO thermostat (name) VALUES ('x')", "42501"),
        ("DELETE FROM thermostat", "42501"),
        ("COPY thermostat TO '/tmp/strata-leak.csv'", "42501"),
        // Not Postgres syntax: refused by the parser before the sandbox sees it.
        (
            "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
            "42601",
        ),
        ("SET datafusion.execution.target_partitions = 1", "0A000"),
    ] {
        let error = client.simple_query(sql).await.err().unwrap_or_else(|| {
            panic!("{sql} succeeded");
        });
        assert_eq!(code(&error), expected, "{sql}: {error:?}");
    }
    assert!(!std::path::Path::new("/tmp/strata-leak.csv").exists());
    // The connection is still usable after errors.
    let rows = client.simple_query("SELECT 1 + 1").await.unwrap();
    assert_eq!(simple_rows(&rows), vec![vec![Some("2".to_string())]]);
    server.stop().await;
}

/// Issue 17: the Postgres door plans through the same session, so unquoted names resolve
/// ignoring case there too, in the simple and the extended protocol, and an ambiguous one is
/// an error naming the candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquoted_names_resolve_ignoring_case_on_the_wire() {
    let (server, acme, _) = seeded().await;
    server
        .declare(
            acme.id,
            "MY_TABLE",
            "Temp",
            Some(FieldType::Double),
            &[],
            false,
        )
        .await;
    server
        .write(
            acme.id,
            "MY_TABLE",
            &[
                (T0, vec![("Temp", Value::Float(0.5))]),
                (T0 + MINUTE, vec![("Temp", Value::Float(2.5))]),
            ],
        )
        .await;
    let client = server.connect("acme", &acme.admin_key).await.unwrap();
    let simple = client
        .simple_query("select TEMP from my_table WHERE temp > 1")
        .await
        .unwrap();
    assert_eq!(simple_rows(&simple), vec![vec![Some("2.5".to_string())]]);
    let typed = client
        .query(
            "SELECT temp FROM MY_TABLE WHERE temp > $1 ORDER BY temp",
            &[&0.0_f64],
        )
        .await
        .unwrap();
    assert_eq!(typed[0].columns()[0].name(), "temp");
    let values: Vec<f64> = typed.iter().map(|row| row.get(0)).collect();
    assert_eq!(values, vec![0.5, 2.5]);

    server
        .write(acme.id, "My_Table", &[(T0, vec![("x", Value::Int(1))])])
        .await;
    // A connection's session is built from the schema at login.
    let client = server.connect("acme", &acme.admin_key).await.unwrap();
    let error = client
        .simple_query("SELECT count(*) FROM my_table")
        .await
        .unwrap_err();
    let message = error
        .as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_default();
    assert!(
        message.contains(
            r#"table name my_table is ambiguous: ignoring case it matches "MY_TABLE", "My_Table""#
        ),
        "{error:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_client_settings_are_accepted() {
    let (server, acme, _) = seeded().await;
    let client = server.connect("acme", &acme.admin_key).await.unwrap();
    client
        .batch_execute(
            "SET client_encoding TO 'UTF8'; SET DateStyle = 'ISO, MDY'; \
             SET extra_float_digits = 3; SET application_name = 'grafana'; \
             SET search_path TO public; SET TIME ZONE 'UTC'",
        )
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    let rows = client
        .simple_query("SELECT name FROM thermostat WHERE reading = 20")
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows), vec![vec![Some("garage".to_string())]]);
    client.batch_execute("COMMIT").await.unwrap();
    client
        .batch_execute("START TRANSACTION; ROLLBACK")
        .await
        .unwrap();
    let show = client.simple_query("SHOW server_version").await.unwrap();
    assert_eq!(simple_rows(&show), vec![vec![Some("16.6".to_string())]]);
    // A driver-style transaction wrapper.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let row = tx
        .query_one("SELECT count(*) FROM thermostat", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    tx.commit().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_binds_typed_parameters() {
    let (server, acme, _) = seeded().await;
    let client = server.connect("acme", &acme.admin_key).await.unwrap();

    // float + text, through an alias column name.
    let rows = client
        .query(
            "SELECT name, temp FROM thermostat WHERE temp > $1 AND name <> $2 ORDER BY timestamp",
            &[&15.0f64, &"kitchen"],
        )
        .await
        .unwrap();
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![("it's attic".to_string(), 30.0)]);

    // int, and a string needing quoting.
    let rows = client
        .query(
            "SELECT reading FROM thermostat WHERE reading >= $1 AND name = $2",
            &[&20i64, &"it's attic"],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 30);

    // timestamp parameter and timestamp results in binary format.
    let since = chrono::DateTime::from_timestamp_millis(T0 + MINUTE).unwrap();
    let rows = client
        .query(
            "SELECT timestamp, name FROM thermostat WHERE timestamp >= $1 ORDER BY timestamp",
            &[&since],
        )
        .await
        .unwrap();
    let got: Vec<(chrono::DateTime<chrono::Utc>, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (since, "garage".to_string()),
            (
                chrono::DateTime::from_timestamp_millis(T0 + 2 * MINUTE).unwrap(),
                "it's attic".to_string()
            ),
        ]
    );
    // A parameter typed by the client (timestamp without time zone), read as UTC.
    let naive = since.naive_utc();
    let typed = client
        .prepare_typed(
            "SELECT count(*) FROM thermostat WHERE timestamp < $1",
            &[tokio_postgres::types::Type::TIMESTAMP],
        )
        .await
        .unwrap();
    let rows = client.query(&typed, &[&naive]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);

    // An injection attempt stays a string value.
    let rows = client
        .query(
            "SELECT count(*) FROM thermostat WHERE name = $1",
            &[&"x' OR '1'='1"],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);

    // A prepared statement reused with different values.
    let statement = client
        .prepare("SELECT name FROM thermostat WHERE reading = $1")
        .await
        .unwrap();
    for (reading, name) in [(10i64, "kitchen"), (20, "garage"), (30, "it's attic")] {
        let row = client.query_one(&statement, &[&reading]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), name);
    }

    // Refused statements are refused on the extended path too.
    let error = client
        .query("DELETE FROM thermostat WHERE reading = $1", &[&10i64])
        .await
        .unwrap_err();
    assert_eq!(code(&error), "42501");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_fetch_in_pieces() {
    let (server, acme, _) = seeded().await;
    let mut client = server.connect("acme", &acme.admin_key).await.unwrap();
    let tx = client.transaction().await.unwrap();
    let statement = tx
        .prepare("SELECT reading FROM thermostat WHERE reading > $1 ORDER BY reading")
        .await
        .unwrap();
    let portal = tx.bind(&statement, &[&0i64]).await.unwrap();
    let first = tx.query_portal(&portal, 2).await.unwrap();
    let second = tx.query_portal(&portal, 2).await.unwrap();
    let third = tx.query_portal(&portal, 2).await.unwrap();
    let values =
        |rows: &[tokio_postgres::Row]| -> Vec<i64> { rows.iter().map(|r| r.get(0)).collect() };
    assert_eq!(values(&first), vec![10, 20]);
    assert_eq!(values(&second), vec![30]);
    assert!(third.is_empty());
    tx.commit().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_only_the_tenants_tables() {
    let (server, acme, globex) = seeded().await;
    let Some(out) = server.psql("acme", &acme.admin_key, &["-c", "\\dt"]).await else {
        return;
    };
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("thermostat"), "{out:?}");
    assert!(!out.stdout.contains("secret_plant"), "{out:?}");

    let out = server
        .psql("acme", &acme.admin_key, &["-c", "\\d thermostat"])
        .await
        .unwrap();
    assert!(out.success, "{out:?}");
    for column in ["timestamp", "name", "temperature", "reading", "gallons"] {
        assert!(out.stdout.contains(column), "{column}: {out:?}");
    }

    let out = server
        .psql("globex", &globex.admin_key, &["-c", "\\dt"])
        .await
        .unwrap();
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("secret_plant"), "{out:?}");
    assert!(!out.stdout.contains("thermostat"), "{out:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_queries_see_only_the_tenant() {
    let (server, _, globex) = seeded().await;
    let client = server.connect("globex", &globex.admin_key).await.unwrap();
    for sql in [
        "SELECT relname FROM pg_catalog.pg_class",
        "SELECT table_name FROM information_schema.tables",
        "SELECT tablename FROM pg_catalog.pg_tables",
        "SELECT attname FROM pg_catalog.pg_attribute",
        "SELECT column_name FROM information_schema.columns",
    ] {
        let rows = simple_rows(&client.simple_query(sql).await.unwrap());
        let names: Vec<String> = rows.into_iter().filter_map(|r| r[0].clone()).collect();
        assert!(
            !names
                .iter()
                .any(|n| n == "thermostat" || n == "temperature" || n == "reading"),
            "{sql}: {names:?}"
        );
        if sql.contains("class") || sql.contains("tables") {
            assert!(
                names.iter().any(|n| n == "secret_plant"),
                "{sql}: {names:?}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_long_query() {
    let config = QueryConfig {
        timeout: std::time::Duration::from_secs(600),
        ..QueryConfig::default()
    };
    let (server, acme, _) = seeded_with(config).await;
    let client = server.connect("acme", &acme.admin_key).await.unwrap();
    let token = client.cancel_token();
    let query = tokio::spawn(async move {
        let result = client
            .simple_query(
                "SELECT count(*) FROM generate_series(1, 1000000000000) AS t(v) WHERE v % 7 = 3",
            )
            .await;
        (client, result)
    });
    // Cancel requests before the query started are ignored (as in Postgres), so keep asking
    // until the query ends.
    while !query.is_finished() {
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (client, result) = query.await.unwrap();
    let error = result.unwrap_err();
    assert_eq!(code(&error), "57014", "{error:?}");
    assert!(
        error
            .as_db_error()
            .unwrap()
            .message()
            .contains("user request"),
        "{error:?}"
    );
    let rows = client.simple_query("SELECT 42").await.unwrap();
    assert_eq!(simple_rows(&rows), vec![vec![Some("42".to_string())]]);
    server.stop().await;
}
