//! `strata source ...`: a thin client of /api/v1/sources. The server checks the
//! configuration and names a wrong field; `add` builds the body from flags or takes it whole.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Map, Value};
use strata_client::Client;

use super::{items, object_table, show};
use crate::cli::{SourceAddArgs, SourceCommand};

/// The columns of `list` and `show`, in this order.
const COLUMNS: &[&str] = &[
    "id",
    "kind",
    "status",
    "messages",
    "accepted",
    "rejected",
    "lag",
    "last_error",
    "created",
];

pub fn run(client: &Client, as_json: bool, command: SourceCommand) -> anyhow::Result<ExitCode> {
    match command {
        SourceCommand::Add(args) => {
            let answer = client.post(&["api", "v1", "sources"], &add_body(*args)?)?;
            show(as_json, &answer, |a| {
                println!("added {} source {}", a["kind"], a["id"]);
            });
        }
        SourceCommand::List => {
            let answer = client.get(&["api", "v1", "sources"])?;
            show(as_json, &answer, |a| {
                print!("{}", object_table(&rows(items(a, "sources")), COLUMNS));
            });
        }
        SourceCommand::Show { id } => {
            let answer = client.get(&["api", "v1", "sources", &id])?;
            show(as_json, &answer, |a| {
                print!("{}", object_table(&rows(std::slice::from_ref(a)), COLUMNS));
                println!("config: {}", a["config"]);
            });
        }
        SourceCommand::Remove { id } => {
            let answer = client.delete(&["api", "v1", "sources", &id])?;
            show(as_json, &answer, |_| println!("removed source {id}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The sources without their nested configuration (a table cell cannot show it well).
fn rows(sources: &[Value]) -> Vec<Value> {
    sources
        .iter()
        .map(|source| {
            let mut row = source.clone();
            if let Some(object) = row.as_object_mut() {
                object.remove("config");
            }
            row
        })
        .collect()
}

/// The POST /api/v1/sources body: `--config` as it is, or the flags that were given.
fn add_body(args: SourceAddArgs) -> anyhow::Result<Value> {
    if let Some(config) = args.config {
        return serde_json::from_str(&config).context("--config is not JSON");
    }
    let mut body = Map::new();
    if let Some(kind) = args.kind {
        body.insert("kind".into(), json!(kind.as_str()));
    }
    let texts = [
        ("url", args.source_url),
        ("stream", args.stream),
        ("subject", args.subject),
        ("durable", args.durable),
        ("username", args.username),
        ("password", args.password),
        ("token", args.token),
        ("client_id", args.client_id),
        ("ca_file", args.ca_file),
        ("metric", args.metric),
    ];
    for (field, value) in texts {
        if let Some(value) = value {
            body.insert(field.into(), json!(value));
        }
    }
    if !args.topic.is_empty() {
        body.insert("topics".into(), json!(args.topic));
    }
    Ok(Value::Object(body))
}
