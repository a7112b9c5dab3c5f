//! Issue 20, the Arrow Flight SQL door (`strata serve --flight`): the Rust `arrow-flight` Flight
//! SQL client and Python's ADBC driver (`adbc-driver-flightsql` with pyarrow, PyPI) against the
//! real server. Logins, roles, statement queries with alias expansion, prepared statements
//! with parameters, the metadata commands and their tenant isolation, and the gRPC status of
//! each refusal. Data goes in through HTTP `/api/v1/write`; answers are compared with
//! `/api/v1/sql`.

use std::process::{Command, Stdio};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetDbSchemas, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo, HandshakeRequest, IpcMessage};
use base64::Engine;
use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use prost::Message;
use serde_json::{json, Value};
use strata_testkit::available;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::cloud::{clients_dir, probe, python};
use crate::common::{have_openssl, self_signed, thermostat_tenant, TestServer};

const FLIGHT: &[&str] = &["--flight", "127.0.0.1:0"];
const T0: i64 = 1_700_000_000_000;

/// `acme`'s thermostat: six events, `temp` sent as itself or under its alias `tmp`.
fn seed(server: &TestServer) -> String {
    let key = thermostat_tenant(server, "acme");
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let mut event = json!({
                "metrictype": "thermostat",
                "timestamp": T0 + i * 1000,
                "name": format!("t{}", i % 3),
            });
            let field = if i % 2 == 0 { "temp" } else { "tmp" };
            event[field] = json!(20.0 + i as f64);
            event
        })
        .collect();
    let written = server.post("/api/v1/write", &key, &Value::Array(events));
    assert_eq!(written.body["accepted"], 6, "{}", written.text);
    key
}

/// Another tenant with a metric of its own, to check that nothing of it shows to `acme`.
fn other_tenant(server: &TestServer) -> String {
    let key = server.create_tenant("globex");
    let event = json!({"metrictype": "globex_secret", "timestamp": T0, "value": 1});
    let written = server.post("/api/v1/write", &key, &event);
    assert_eq!(written.body["accepted"], 1, "{}", written.text);
    key
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.flight_addr()))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the Flight SQL port")
}

/// A Flight SQL client logged in as `tenant` with `key`.
async fn login(server: &TestServer, tenant: &str, key: &str) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(channel(server).await);
    client.handshake(tenant, key).await.expect("handshake");
    assert!(
        client.token().is_some(),
        "the handshake answers a bearer token"
    );
    client
}

/// The raw handshake's status, for the codes the Flight SQL client folds into text.
async fn raw_handshake(server: &TestServer, tenant: &str, key: &str) -> Result<String, Status> {
    let mut raw = FlightServiceClient::new(channel(server).await);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{tenant}:{key}"));
    let mut request = Request::new(futures::stream::iter([HandshakeRequest::default()]));
    let header = format!("Basic {basic}").parse().expect("header");
    request.metadata_mut().insert("authorization", header);
    let response = raw.handshake(request).await?;
    let bearer = response.metadata().get("authorization").cloned();
    Ok(bearer
        .and_then(|value| value.to_str().ok().map(str::to_string))
        .unwrap_or_default())
}

fn with_bearer<T>(message: T, bearer: &str) -> Request<T> {
    let mut request = Request::new(message);
    let header = format!("Bearer {bearer}").parse().expect("header");
    request.metadata_mut().insert("authorization", header);
    request
}

/// `GetFlightInfo` of a statement, with its gRPC status.
async fn raw_query(server: &TestServer, bearer: &str, sql: &str) -> Result<FlightInfo, Status> {
    let mut raw = FlightServiceClient::new(channel(server).await);
    let command = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    Ok(raw
        .get_flight_info(with_bearer(descriptor, bearer))
        .await?
        .into_inner())
}

/// `CreatePreparedStatement`, with its gRPC status; the handle.
async fn raw_prepare(server: &TestServer, bearer: &str, sql: &str) -> Result<Bytes, Status> {
    let mut raw = FlightServiceClient::new(channel(server).await);
    let command = ActionCreatePreparedStatementRequest {
        query: sql.to_string(),
        transaction_id: None,
    };
    let action = Action {
        r#type: "CreatePreparedStatement".to_string(),
        body: command.as_any().encode_to_vec().into(),
    };
    let mut results = raw
        .do_action(with_bearer(action, bearer))
        .await?
        .into_inner();
    let result = results.message().await?.expect("a result");
    let any = Any::decode(&*result.body).expect("an Any");
    let created: ActionCreatePreparedStatementResult = any
        .unpack()
        .expect("unpack")
        .expect("the prepared statement");
    Ok(created.prepared_statement_handle)
}

/// `GetFlightInfo` of a prepared statement's handle, with its gRPC status.
async fn raw_prepared_info(
    server: &TestServer,
    bearer: &str,
    handle: &Bytes,
) -> Result<FlightInfo, Status> {
    let mut raw = FlightServiceClient::new(channel(server).await);
    let command = CommandPreparedStatementQuery {
        prepared_statement_handle: handle.clone(),
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    Ok(raw
        .get_flight_info(with_bearer(descriptor, bearer))
        .await?
        .into_inner())
}

/// `ClosePreparedStatement`, with its gRPC status.
async fn raw_close(server: &TestServer, bearer: &str, handle: &Bytes) -> Result<(), Status> {
    let mut raw = FlightServiceClient::new(channel(server).await);
    let command = ActionClosePreparedStatementRequest {
        prepared_statement_handle: handle.clone(),
    };
    let action = Action {
        r#type: "ClosePreparedStatement".to_string(),
        body: command.as_any().encode_to_vec().into(),
    };
    let mut results = raw
        .do_action(with_bearer(action, bearer))
        .await?
        .into_inner();
    while results.message().await?.is_some() {}
    Ok(())
}

/// Every batch behind a `FlightInfo`.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    batches
}

/// One column of every batch as text (NULL as "<null>").
fn column_text(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let column = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
        let text = cast(column, &DataType::Utf8).expect("cast to text");
        let text = text.as_string::<i32>();
        for row in 0..text.len() {
            out.push(if text.is_null(row) {
                "<null>".to_string()
            } else {
                text.value(row).to_string()
            });
        }
    }
    out
}

/// One column of an HTTP `/api/v1/sql` answer as text, to compare with the Flight answer.
fn http_column(server: &TestServer, key: &str, sql: &str, index: usize) -> Vec<String> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| match &row[index] {
            Value::String(text) => text.clone(),
            Value::Null => "<null>".to_string(),
            other => other.to_string(),
        })
        .collect()
}

async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = client.execute(sql.to_string(), None).await.expect(sql);
    fetch(client, info).await
}

#[test]
fn logins_need_the_tenant_and_a_key_that_may_read() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    let globex = other_tenant(&server);
    let writer = server.create_key(&admin, "write");
    let reader = server.create_key(&admin, "read");
    runtime().block_on(async {
        for (tenant, key) in [
            ("acme", "wrong"),
            ("acme", globex.as_str()),
            ("nobody", reader.as_str()),
        ] {
            let refused = raw_handshake(&server, tenant, key).await.unwrap_err();
            assert_eq!(
                refused.code(),
                Code::Unauthenticated,
                "{tenant}: {refused:?}"
            );
            assert!(!refused.message().contains("globex"), "{refused:?}");
        }
        // A write-only key logs in to nothing that reads, by handshake or as a bearer.
        let refused = raw_handshake(&server, "acme", &writer).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        let refused = raw_query(&server, &writer, "SELECT 1").await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        // No credentials, or a token nobody issued.
        let refused = raw_query(&server, "not-a-token", "SELECT 1")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        // The handshake's token works; so does the key itself as the bearer.
        let bearer = raw_handshake(&server, "acme", &reader)
            .await
            .expect("login");
        let token = bearer.strip_prefix("Bearer ").expect("a bearer token");
        assert_ne!(token, reader, "the token is not the key");
        raw_query(&server, token, "SELECT 1").await.expect("token");
        raw_query(&server, &reader, "SELECT 1")
            .await
            .expect("key as bearer");
    });
}

#[test]
fn revoking_a_key_ends_its_tokens() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    let created = server.post("/api/v1/keys", &admin, &json!({"role": "read"}));
    assert_eq!(created.status, 201, "{}", created.text);
    let (id, key) = (
        created.body["id"].as_str().expect("id").to_string(),
        created.body["key"].as_str().expect("key").to_string(),
    );
    let runtime = runtime();
    let token = runtime.block_on(async {
        let bearer = raw_handshake(&server, "acme", &key).await.expect("login");
        let token = bearer.strip_prefix("Bearer ").expect("token").to_string();
        raw_query(&server, &token, "SELECT 1")
            .await
            .expect("before");
        token
    });
    let revoked = server.delete(&format!("/api/v1/keys/{id}"), &admin);
    assert!(revoked.status < 300, "{}", revoked.text);
    runtime.block_on(async {
        let refused = raw_query(&server, &token, "SELECT 1").await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    });
}

#[test]
fn statement_queries_match_http_sql_with_aliases_expanded() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    let reader = server.create_key(&admin, "read");
    let sql = "SELECT name, tmp FROM thermostat ORDER BY timestamp";
    let expected_names = http_column(&server, &reader, sql, 0);
    let expected_tmp = http_column(&server, &reader, sql, 1);
    assert_eq!(expected_names.len(), 6);
    runtime().block_on(async {
        let mut client = login(&server, "acme", &reader).await;
        let batches = query(&mut client, sql).await;
        // `tmp` is an alias of `temp`: it reads every row's value, whichever name it came under.
        assert_eq!(column_text(&batches, "name"), expected_names);
        let tmp = column_text(&batches, "tmp");
        let tmp: Vec<f64> = tmp.iter().map(|v| v.parse().expect("a number")).collect();
        assert_eq!(tmp, (0..6).map(|i| 20.0 + i as f64).collect::<Vec<_>>());
        assert_eq!(
            expected_tmp
                .iter()
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>(),
            tmp
        );
        // SELECT * shows the field once, under its display name.
        let batches = query(&mut client, "SELECT * FROM thermostat").await;
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["timestamp", "name", "temp"]);
    });
}

#[test]
fn prepared_statements_bind_parameters() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    runtime().block_on(async {
        let mut client = login(&server, "acme", &admin).await;
        let sql =
            "SELECT name, temp FROM thermostat WHERE name = $1 AND temp > $2 ORDER BY timestamp";
        let mut prepared = client
            .prepare(sql.to_string(), None)
            .await
            .expect("prepare");
        let parameters = prepared
            .parameter_schema()
            .expect("parameter schema")
            .clone();
        assert_eq!(parameters.fields().len(), 2, "{parameters:?}");
        let dataset = prepared.dataset_schema().expect("dataset schema").clone();
        assert_eq!(dataset.field(1).name(), "temp");
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("min", DataType::Float64, false),
        ]);
        let bind = |name: &str, min: f64| {
            RecordBatch::try_new(
                std::sync::Arc::new(schema.clone()),
                vec![
                    std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec![name])),
                    std::sync::Arc::new(datafusion::arrow::array::Float64Array::from(vec![min])),
                ],
            )
            .expect("parameter batch")
        };
        // t1 is events 1 and 4: temps 21 and 24.
        prepared.set_parameters(bind("t1", 0.0)).expect("bind");
        let info = prepared.execute().await.expect("execute");
        let batches = fetch(&mut client, info).await;
        assert_eq!(column_text(&batches, "temp"), ["21.0", "24.0"]);
        // Re-bound, the same statement runs again with the new values; quotes stay data.
        prepared.set_parameters(bind("t1", 22.0)).expect("bind");
        let info = prepared.execute().await.expect("execute");
        assert_eq!(
            column_text(&fetch(&mut client, info).await, "temp"),
            ["24.0"]
        );
        prepared
            .set_parameters(bind("t1' OR '1'='1", 0.0))
            .expect("bind");
        let info = prepared.execute().await.expect("execute");
        assert!(column_text(&fetch(&mut client, info).await, "temp").is_empty());
        prepared.close().await.expect("close");
    });
}

#[test]
fn prepared_handles_belong_to_their_key_and_end_when_closed() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    let reader = server.create_key(&admin, "read");
    let globex = other_tenant(&server);
    runtime().block_on(async {
        let handle = raw_prepare(&server, &admin, "SELECT 1 AS one")
            .await
            .expect("prepare");
        raw_prepared_info(&server, &admin, &handle)
            .await
            .expect("the owner's handle");
        // Another key, of this tenant or another, finds no such statement.
        for other in [&reader, &globex] {
            let missing = raw_prepared_info(&server, other, &handle)
                .await
                .unwrap_err();
            assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
            let missing = raw_close(&server, other, &handle).await.unwrap_err();
            assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
        }
        raw_close(&server, &admin, &handle).await.expect("close");
        let gone = raw_prepared_info(&server, &admin, &handle)
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
        // A statement whose parameters were never bound says which one is missing.
        let handle = raw_prepare(&server, &admin, "SELECT $1 AS x")
            .await
            .expect("prepare");
        let unbound = raw_prepared_info(&server, &admin, &handle)
            .await
            .unwrap_err();
        assert_eq!(unbound.code(), Code::InvalidArgument, "{unbound:?}");
        assert!(unbound.message().contains("$1"), "{unbound:?}");
    });
}

#[test]
fn refused_and_wrong_statements_have_their_status() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    runtime().block_on(async {
        for sql in [
            "INSERT INTO thermostat (name) VALUES ('x')",
            "CREATE TABLE t (a INT)",
            "DROP TABLE thermostat",
            "COPY thermostat TO '/tmp/x.csv'",
        ] {
            let refused = raw_query(&server, &admin, sql).await.unwrap_err();
            assert_eq!(refused.code(), Code::PermissionDenied, "{sql}: {refused:?}");
            let refused = raw_prepare(&server, &admin, sql).await.unwrap_err();
            assert_eq!(refused.code(), Code::PermissionDenied, "{sql}: {refused:?}");
        }
        let syntax = raw_query(&server, &admin, "SELEC name FROM thermostat")
            .await
            .unwrap_err();
        assert_eq!(syntax.code(), Code::InvalidArgument, "{syntax:?}");
        assert!(syntax.message().contains("SELEC"), "{syntax:?}");
        let unknown = raw_query(&server, &admin, "SELECT nosuchfield FROM thermostat")
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
        assert!(unknown.message().contains("nosuchfield"), "{unknown:?}");
        let refused = raw_prepare(&server, &admin, "SELEC 1").await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    });
}

/// `GetTables` rows as (schema, table) pairs, and the table schemas when included.
fn tables(batches: &[RecordBatch]) -> Vec<(String, String)> {
    let schemas = column_text(batches, "db_schema_name");
    let names = column_text(batches, "table_name");
    schemas.into_iter().zip(names).collect()
}

fn table_schema(batches: &[RecordBatch], table: &str) -> Schema {
    for batch in batches {
        let names = column_text(std::slice::from_ref(batch), "table_name");
        let schemas = batch
            .column_by_name("table_schema")
            .expect("table_schema")
            .as_binary::<i32>()
            .clone();
        if let Some(row) = names.iter().position(|name| name == table) {
            return Schema::try_from(IpcMessage(schemas.value(row).to_vec().into()))
                .expect("an IPC schema");
        }
    }
    panic!("no table {table}");
}

#[test]
fn metadata_lists_only_the_tenants_own_tables() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    let globex = other_tenant(&server);
    runtime().block_on(async {
        let mut acme = login(&server, "acme", &admin).await;
        let request = CommandGetTables {
            include_schema: true,
            ..Default::default()
        };
        let info = acme.get_tables(request.clone()).await.expect("get_tables");
        let listed = fetch(&mut acme, info).await;
        let names = tables(&listed);
        assert!(
            names.contains(&("public".into(), "thermostat".into())),
            "{names:?}"
        );
        assert!(
            names.iter().all(|(_, t)| !t.contains("globex")),
            "{names:?}"
        );
        let schema = table_schema(&listed, "thermostat");
        let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(fields, ["timestamp", "name", "temp"]);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);

        let mut globex_client = login(&server, "globex", &globex).await;
        let info = globex_client.get_tables(request).await.expect("get_tables");
        let names = tables(&fetch(&mut globex_client, info).await);
        assert!(
            names.contains(&("public".into(), "globex_secret".into())),
            "{names:?}"
        );
        assert!(names.iter().all(|(_, t)| t != "thermostat"), "{names:?}");

        let narrowed = CommandGetTables {
            db_schema_filter_pattern: Some("pub%".into()),
            table_name_filter_pattern: Some("thermo%".into()),
            ..Default::default()
        };
        let info = acme.get_tables(narrowed).await.expect("get_tables");
        assert_eq!(
            tables(&fetch(&mut acme, info).await),
            [("public".to_string(), "thermostat".to_string())]
        );

        let info = acme
            .get_db_schemas(CommandGetDbSchemas::default())
            .await
            .expect("schemas");
        let schemas = column_text(&fetch(&mut acme, info).await, "db_schema_name");
        assert!(schemas.contains(&"public".to_string()), "{schemas:?}");
        assert!(schemas.contains(&"strata".to_string()), "{schemas:?}");
        let info = acme.get_catalogs().await.expect("catalogs");
        assert_eq!(
            column_text(&fetch(&mut acme, info).await, "catalog_name"),
            ["strata"]
        );
    });
}

#[test]
fn sql_info_names_a_read_only_strata() {
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    runtime().block_on(async {
        let mut client = login(&server, "acme", &admin).await;
        let info = client
            .get_sql_info(vec![
                SqlInfo::FlightSqlServerName,
                SqlInfo::FlightSqlServerVersion,
                SqlInfo::FlightSqlServerReadOnly,
            ])
            .await
            .expect("get_sql_info");
        let batches = fetch(&mut client, info).await;
        let ids = column_text(&batches, "info_name");
        let values = batches[0].column_by_name("value").expect("value");
        let values = values.as_union();
        let mut seen = std::collections::HashMap::new();
        for (row, id) in ids.iter().enumerate() {
            let value = values.value(row);
            let text = if let Some(text) = value.as_string_opt::<i32>() {
                text.value(0).to_string()
            } else if let Some(flag) = value.as_boolean_opt() {
                flag.value(0).to_string()
            } else {
                format!("{value:?}")
            };
            seen.insert(id.clone(), text);
        }
        let name = (SqlInfo::FlightSqlServerName as u32).to_string();
        let read_only = (SqlInfo::FlightSqlServerReadOnly as u32).to_string();
        let version = (SqlInfo::FlightSqlServerVersion as u32).to_string();
        assert_eq!(
            seen.get(&name).map(String::as_str),
            Some("Strata"),
            "{seen:?}"
        );
        assert_eq!(
            seen.get(&read_only).map(String::as_str),
            Some("true"),
            "{seen:?}"
        );
        assert_eq!(
            seen.get(&version).map(String::as_str),
            Some(env!("CARGO_PKG_VERSION")),
            "{seen:?}"
        );
    });
}

#[test]
fn a_network_address_without_tls_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(crate::common::BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
        .args(["--flight", "0.0.0.0:0"])
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run strata serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--flight-allow-insecure"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// ADBC (Python)

fn have_adbc() -> bool {
    available(
        "python3 with adbc-driver-flightsql and pyarrow",
        probe(
            &python(),
            &["-c", "import adbc_driver_flightsql, pyarrow"],
            None,
        ),
    )
}

/// Runs `adbc_flight_sql.py` as `acme` with `key`; its JSON line.
fn adbc(server: &TestServer, scheme: &str, key: &str, ca: Option<&std::path::Path>) -> Value {
    let mut command = Command::new(python());
    command
        .arg(clients_dir().join("adbc_flight_sql.py"))
        .env(
            "STRATA_FLIGHT_URI",
            format!("{scheme}://{}", server.flight_addr()),
        )
        .env("STRATA_FLIGHT_USER", "acme")
        .env("STRATA_FLIGHT_PASSWORD", key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        command.env("STRATA_FLIGHT_CA", ca);
    }
    let out = command.output().expect("run adbc_flight_sql.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "adbc_flight_sql.py failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}"))
}

#[test]
fn adbc_flight_sql_driver_queries_binds_and_lists_objects() {
    if !have_adbc() {
        return;
    }
    let server = TestServer::start_with(FLIGHT);
    let admin = seed(&server);
    other_tenant(&server);
    let reader = server.create_key(&admin, "read");
    let seen = adbc(&server, "grpc", &reader, None);
    let temps: Vec<f64> = (0..6).map(|i| 20.0 + i as f64).collect();
    assert_eq!(seen["rows"]["tmp"], json!(temps), "{seen}");
    assert_eq!(
        seen["parameters"],
        json!([["t2", 22.0], ["t2", 25.0]]),
        "{seen}"
    );
    assert_eq!(seen["parameters_int"], json!([[3]]), "{seen}");
    let tables = seen["tables"].as_array().expect("tables");
    assert!(tables.contains(&json!(["public", "thermostat"])), "{seen}");
    assert!(tables.iter().all(|t| t[1] != "globex_secret"), "{seen}");
    assert_eq!(
        seen["thermostat_columns"],
        json!(["timestamp", "name", "temp"]),
        "{seen}"
    );
    assert_eq!(
        seen["table_schema"],
        json!(["timestamp", "name", "temp"]),
        "{seen}"
    );
    assert_eq!(seen["vendor_name"], "Strata", "{seen}");
    let wrong = seen["wrong_password"].as_str().expect("an error");
    assert!(wrong.to_lowercase().contains("unauthenticated"), "{seen}");
    let syntax = seen["syntax_error"].as_str().expect("an error");
    assert!(syntax.contains("SELEC"), "{seen}");
    let refused = seen["insert"].as_str().expect("an error");
    assert!(
        refused.to_lowercase().contains("read-only") || refused.contains("PERMISSION"),
        "{seen}"
    );
}

#[test]
fn with_a_certificate_the_port_speaks_only_tls() {
    if !have_adbc() || !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "server");
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let server = TestServer::start_with(&[
        "--flight",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
    ]);
    server.flight_addr();
    assert!(server.log().contains("Flight SQL listening on grpc+tls://"));
    let admin = seed(&server);
    let seen = adbc(&server, "grpc+tls", &admin, Some(&cert));
    assert_eq!(seen["tls_count"], 6, "{seen}");
    // A plain-text client gets no answer from the TLS port.
    runtime().block_on(async {
        let plain = Channel::from_shared(format!("http://{}", server.flight_addr()))
            .expect("uri")
            .connect()
            .await;
        if let Ok(channel) = plain {
            let mut client = FlightSqlServiceClient::new(channel);
            assert!(client.handshake("acme", &admin).await.is_err());
        }
    });
}
