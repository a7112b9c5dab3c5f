//! `strata rollup ...`: a thin client of /api/v1/rollups. The server checks the SQL; `--wait`
//! polls the rollup and draws its backfill progress.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use strata_client::Client;

use super::{items, object_table, show};
use crate::cli::RollupCommand;

/// Time between two progress reads while waiting for a backfill.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

pub fn run(client: &Client, as_json: bool, command: RollupCommand) -> anyhow::Result<ExitCode> {
    match command {
        RollupCommand::Create { name, sql, wait } => {
            let body = json!({"name": name, "sql": sql});
            let answer = client.post(&["api", "v1", "rollups"], &body)?;
            finish(client, as_json, &name, answer, wait, "created")
        }
        RollupCommand::Alter { name, sql, wait } => {
            let answer = client.patch(&["api", "v1", "rollups", &name], &json!({"sql": sql}))?;
            finish(client, as_json, &name, answer, wait, "altered")
        }
        RollupCommand::List => {
            let answer = client.get(&["api", "v1", "rollups"])?;
            show(as_json, &answer, |a| {
                let rows = items(a, "rollups");
                print!(
                    "{}",
                    object_table(
                        rows,
                        &["name", "state", "progress", "version", "sql", "error"]
                    )
                );
            });
            Ok(ExitCode::SUCCESS)
        }
        RollupCommand::Show { name, wait, sync } => {
            let answer = if sync {
                client.get_with_query(&["api", "v1", "rollups", &name], &[("sync", "true")])?
            } else {
                client.get(&["api", "v1", "rollups", &name])?
            };
            finish(client, as_json, &name, answer, wait, "")
        }
        RollupCommand::Delete { name } => {
            let answer = client.delete(&["api", "v1", "rollups", &name])?;
            show(as_json, &answer, |_| println!("deleted rollup {name}"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the rollup (after its backfill with `wait`); fails when it is in error.
fn finish(
    client: &Client,
    as_json: bool,
    name: &str,
    mut answer: Value,
    wait: bool,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    if wait {
        answer = wait_for_backfill(client, name, answer)?;
    }
    show(as_json, &answer, |a| {
        if !verb.is_empty() {
            println!("{verb} rollup {name}");
        }
        print!(
            "{}",
            object_table(
                std::slice::from_ref(a),
                &["name", "state", "progress", "version", "sql", "error"]
            )
        );
    });
    if answer["state"] == "error" {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls until the rollup is current (or in error), with a progress bar on stderr.
fn wait_for_backfill(client: &Client, name: &str, mut answer: Value) -> anyhow::Result<Value> {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("backfilling {name}"));
    loop {
        let progress = answer["progress"].as_f64().unwrap_or(0.0);
        bar.set_position((progress * 1000.0) as u64);
        match answer["state"].as_str() {
            Some("current") | Some("error") => break,
            Some("backfilling") => {}
            other => bail!("unexpected rollup state {other:?} in {answer}"),
        }
        std::thread::sleep(WAIT_POLL_INTERVAL);
        answer = client.get(&["api", "v1", "rollups", name])?;
    }
    bar.finish_and_clear();
    Ok(answer)
}
