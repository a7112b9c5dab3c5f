//! Tenants, keys, settings and on-demand compaction: thin wrappers over one HTTP call each.

use std::process::ExitCode;

use serde_json::{json, Map, Value};
use strata_client::Client;

use super::{items, object_table, show};
use crate::cli::{KeyCommand, SettingsCommand, TenantCommand};
use crate::output;

pub fn tenant(client: &Client, as_json: bool, command: TenantCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Create { name } => {
            let answer = client.post(&["api", "v1", "tenants"], &json!({ "name": name }))?;
            show(as_json, &answer, |a| {
                println!("tenant:    {}", text(a, "tenant").unwrap_or(&name));
                println!(
                    "admin key: {}",
                    text(a, "admin_key").unwrap_or("(not returned)")
                );
                eprintln!(
                    "The admin key is shown only once; store it (e.g. export STRATA_KEY=...)."
                );
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn key(client: &Client, as_json: bool, command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Create { role } => {
            let answer = client.post(
                &["api", "v1", "keys"],
                &json!({ "role": role.as_role().as_str() }),
            )?;
            show(as_json, &answer, |a| {
                println!("id:   {}", scalar(a, "id"));
                println!("role: {}", scalar(a, "role"));
                println!("key:  {}", scalar(a, "key"));
                eprintln!("The key is shown only once; store it.");
            });
        }
        KeyCommand::List => {
            let answer = client.get(&["api", "v1", "keys"])?;
            show(as_json, &answer, |a| {
                let keys = items(a, "keys");
                if keys.is_empty() {
                    println!("(no keys)");
                } else {
                    print!("{}", object_table(keys, &["id", "role"]));
                }
            });
        }
        KeyCommand::Revoke { id } => {
            let answer = client.delete(&["api", "v1", "keys", &id])?;
            show(as_json, &answer, |_| println!("revoked key {id}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn settings(
    client: &Client,
    as_json: bool,
    command: SettingsCommand,
) -> anyhow::Result<ExitCode> {
    let path = ["api", "v1", "settings"];
    match command {
        SettingsCommand::Show => {
            let answer = client.get(&path)?;
            show(as_json, &answer, print_settings);
        }
        SettingsCommand::Set(args) => {
            let mut body = Map::new();
            if let Some(keys) = args.metric_keys {
                body.insert("metric_keys".into(), json!(keys));
            }
            if let Some(patterns) = args.timestamp_patterns {
                body.insert("timestamp_patterns".into(), json!(patterns));
            }
            if let Some(days) = args.cold_retention_days {
                body.insert("cold_retention_days".into(), json!(days));
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --metric-keys, --timestamp-patterns or \
                     --cold-retention-days"
                );
            }
            let answer = client.patch(&path, &Value::Object(body))?;
            show(as_json, &answer, |a| {
                if a.is_object() {
                    print_settings(a);
                } else {
                    println!("settings updated");
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_settings(answer: &Value) {
    let shown = |key: &str| {
        let list = output::list(answer.get(key));
        if list.is_empty() {
            "(none)".to_string()
        } else {
            list
        }
    };
    println!("metric keys:        {}", shown("metric_keys"));
    println!("timestamp patterns: {}", shown("timestamp_patterns"));
    match answer.get("cold_retention_days").and_then(Value::as_u64) {
        Some(days) => println!("cold retention:     {days} days"),
        None => println!("cold retention:     forever"),
    }
}

pub fn compact(client: &Client, as_json: bool) -> anyhow::Result<ExitCode> {
    let answer = client.post(&["api", "v1", "compact"], &json!({}))?;
    show(as_json, &answer, |a| match a {
        Value::Object(_) => {
            println!("watermark:     {}", scalar(a, "watermark"));
            println!("files written: {}", scalar(a, "files_written"));
            println!("rows:          {}", scalar(a, "rows"));
        }
        other => println!("{}", output::cell(other)),
    });
    Ok(ExitCode::SUCCESS)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A field of an answer for display; ids may be numbers or strings depending on the server.
fn scalar(value: &Value, key: &str) -> String {
    value.get(key).map(output::cell).unwrap_or_default()
}
