//! One module per subcommand. Client commands are plain blocking code; only `serve` starts a
//! tokio runtime.

mod admin;
mod alerts;
#[cfg(feature = "bench")]
pub mod bench;
mod docs;
mod rollups;
mod schema;
mod serve;
mod sources;
mod sql;
mod write;

use std::process::ExitCode;

use serde_json::Value;

use strata_client::Client;

use crate::cli::{Command, Connection};
use crate::output;

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Tenant { conn, command } => {
            let conn = conn.into_connection();
            admin::tenant(&connect(&conn)?, conn.json, command)
        }
        Command::Key { conn, command } => admin::key(&connect(&conn)?, conn.json, command),
        Command::Settings { conn, command } => {
            admin::settings(&connect(&conn)?, conn.json, command)
        }
        Command::Schema { conn, command } => schema::run(&connect(&conn)?, conn.json, command),
        Command::Write(args) => write::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Compact { conn } => admin::compact(&connect(&conn)?, conn.json),
        Command::Channel { conn, command } => alerts::channel(&connect(&conn)?, conn.json, command),
        Command::Alert { conn, command } => alerts::alert(conn, command),
        Command::Rollup { conn, command } => rollups::run(&connect(&conn)?, conn.json, command),
        Command::Silence { conn, command } => alerts::silence(&connect(&conn)?, conn.json, command),
        Command::Source { conn, command } => sources::run(&connect(&conn)?, conn.json, command),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { out_dir } => docs::man(out_dir.as_deref()),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::run(*args),
    }
}

/// The client of a client command: the connection's server and key.
pub(crate) fn connect(conn: &Connection) -> anyhow::Result<Client> {
    Ok(Client::new(&conn.url, conn.key.clone())?)
}

/// Prints `answer` as JSON when `json` is set, else with `human`.
pub(crate) fn show(json: bool, answer: &Value, human: impl FnOnce(&Value)) {
    if json {
        println!("{}", output::json(answer));
    } else {
        human(answer);
    }
}

/// The list in an answer that is either a bare array or an object holding one under `key`.
pub(crate) fn items<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    match answer {
        Value::Array(items) => items,
        Value::Object(map) => match map.get(key) {
            Some(Value::Array(items)) => items,
            _ => &[],
        },
        _ => &[],
    }
}

/// A table of JSON objects: columns are the objects' keys in order of first appearance, or
/// `preferred` first when given.
pub(crate) fn object_table(objects: &[Value], preferred: &[&str]) -> String {
    let mut columns: Vec<String> = preferred.iter().map(|c| c.to_string()).collect();
    for object in objects {
        if let Value::Object(map) = object {
            for key in map.keys() {
                if !columns.iter().any(|c| c == key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|object| {
            columns
                .iter()
                .map(|c| match object.get(c) {
                    Some(Value::Array(_)) => output::list(object.get(c)),
                    Some(Value::Null) | None => String::new(),
                    Some(v) => output::cell(v),
                })
                .collect()
        })
        .collect();
    output::table(&columns, &[], &rows)
}
