//! `strata channel|alert|silence ...`: thin clients of /api/v1/channels, /api/v1/alerts and
//! /api/v1/silences. The server validates every rule, channel and silence; the only checks here
//! are the ones that need no server (which flags belong to which kind), so a mistake costs no
//! request.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Map, Value};
use strata_client::Client;

use super::{connect, items, object_table, show};
use crate::cli::{
    AlertCommand, AlertCreateArgs, ChannelCommand, ChannelCreateArgs, ChannelKindArg, RuleFlags,
    RuleKindArg, ServerConnection, SilenceCommand, SilenceCreateArgs,
};
use crate::output;

/// Largest rule file `alert create --file` reads; the server's admin bodies are far smaller.
const MAX_RULE_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub fn channel(
    client: &Client,
    as_json: bool,
    command: ChannelCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ChannelCommand::Create(args) => {
            let kind = args.kind.as_str();
            let name = args.name.clone();
            let answer = client.post(&["api", "v1", "channels"], &channel_body(args)?)?;
            show(as_json, &answer, |_| {
                println!("created {kind} channel {name}")
            });
        }
        ChannelCommand::List => {
            let answer = client.get(&["api", "v1", "channels"])?;
            show(as_json, &answer, print_channels);
        }
        ChannelCommand::Delete { name } => {
            let answer = client.delete(&["api", "v1", "channels", &name])?;
            show(as_json, &answer, |_| println!("deleted channel {name}"));
        }
        ChannelCommand::Test { name } => {
            let answer = client.post(&["api", "v1", "channels", &name, "test"], &json!({}))?;
            let delivered = answer.get("delivered").and_then(Value::as_bool) == Some(true);
            show(as_json, &answer, |a| {
                if delivered {
                    println!("test notification delivered through {name}");
                } else {
                    println!("test notification not delivered through {name}: {a}");
                }
            });
            if !delivered {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The POST /api/v1/channels body; refuses flags that do not belong to the kind.
fn channel_body(args: ChannelCreateArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    body.insert("kind".into(), json!(args.kind.as_str()));
    match args.kind {
        ChannelKindArg::Webhook => {
            if !args.to.is_empty() {
                bail!("--to is for email and sms channels; a webhook channel takes --webhook-url");
            }
            let url = args
                .webhook_url
                .ok_or_else(|| anyhow!("a webhook channel needs --webhook-url URL"))?;
            body.insert("url".into(), json!(url));
            if let Some(secret) = args.secret {
                body.insert("secret".into(), json!(secret));
            }
            if let Some(timeout) = args.timeout {
                body.insert("timeout".into(), json!(timeout));
            }
        }
        ChannelKindArg::Email | ChannelKindArg::Sms => {
            if args.webhook_url.is_some() || args.secret.is_some() || args.timeout.is_some() {
                bail!("--webhook-url, --secret and --timeout are for webhook channels only");
            }
            if args.to.is_empty() {
                let what = match args.kind {
                    ChannelKindArg::Sms => "+15550100",
                    _ => "ADDRESS",
                };
                bail!(
                    "an {} channel needs at least one --to {what}",
                    args.kind.as_str()
                );
            }
            body.insert("to".into(), json!(args.to));
        }
    }
    Ok(Value::Object(body))
}

fn print_channels(answer: &Value) {
    let channels = items(answer, "channels");
    if channels.is_empty() {
        println!("(no channels: create one with `strata channel create`)");
        return;
    }
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            let target = match c.get("url") {
                Some(Value::String(url)) => url.clone(),
                _ => output::list(c.get("to")),
            };
            let secret = if c.get("has_secret").and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                ""
            };
            vec![
                field(c, "name"),
                field(c, "kind"),
                target,
                secret.to_string(),
                field(c, "timeout"),
                field(c, "created_at"),
            ]
        })
        .collect();
    let headers = ["name", "kind", "target", "secret", "timeout", "created_at"];
    print!("{}", output::table(&strings(&headers), &[], &rows));
}

pub fn alert(conn: ServerConnection, command: AlertCommand) -> anyhow::Result<ExitCode> {
    let client = connect(&conn.with_json(false))?;
    match command {
        AlertCommand::Create(args) => create_alert(&client, *args)?,
        AlertCommand::List { output } => {
            let answer = client.get(&["api", "v1", "alerts"])?;
            show(output.json, &answer, print_alerts);
        }
        AlertCommand::Show { name, output } => {
            let answer = client.get(&["api", "v1", "alerts", &name])?;
            show(output.json, &answer, print_alert);
        }
        AlertCommand::Delete { name, output } => {
            let answer = client.delete(&["api", "v1", "alerts", &name])?;
            show(output.json, &answer, |_| println!("deleted alert {name}"));
        }
        AlertCommand::Test { name, output } => {
            let answer = client.post(&["api", "v1", "alerts", &name, "test"], &json!({}))?;
            show(output.json, &answer, |a| print_test(&name, a));
        }
        AlertCommand::Ack {
            name,
            labels,
            output,
        } => {
            let body = if labels.is_empty() {
                json!({})
            } else {
                json!({ "labels": object_of(labels, "--label")? })
            };
            let answer = client.post(&["api", "v1", "alerts", &name, "ack"], &body)?;
            show(output.json, &answer, |a| {
                println!(
                    "acknowledged {} instance(s) of {name}",
                    field(a, "acknowledged")
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_alert(client: &Client, args: AlertCreateArgs) -> anyhow::Result<()> {
    let mut rule = match (args.json, args.file) {
        (Some(text), _) => rule_from_json(text.as_bytes(), "--json")?,
        (None, Some(path)) => {
            let text = read_rule_file(&path)?;
            rule_from_json(&text, &path.display().to_string())?
        }
        (None, None) => {
            let name = args
                .name
                .clone()
                .ok_or_else(|| anyhow!("give the rule's NAME, or --json RULE or --file FILE"))?;
            rule_from_flags(&name, args.flags)?
        }
    };
    if let Some(name) = args.name {
        rule.insert("name".into(), json!(name));
    }
    let answer = client.post(&["api", "v1", "alerts"], &Value::Object(rule.clone()))?;
    let shown = |key: &str| match answer.get(key).or_else(|| rule.get(key)) {
        Some(value) => output::cell(value),
        None => String::new(),
    };
    println!("created {} alert {}", shown("kind"), shown("name"));
    Ok(())
}

fn rule_from_json(text: &[u8], origin: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(text)
        .with_context(|| format!("the rule in {origin} is not valid JSON"))?
    {
        Value::Object(rule) => Ok(rule),
        _ => bail!("the rule in {origin} must be a JSON object such as {{\"name\":\"hot\",\"kind\":\"query\",...}}"),
    }
}

fn read_rule_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("opening rule file {}", path.display()))?,
        )
    };
    let mut text = Vec::new();
    reader
        .take(MAX_RULE_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("reading rule file {}", path.display()))?;
    if text.len() as u64 > MAX_RULE_FILE_BYTES {
        bail!(
            "rule file {} is larger than {MAX_RULE_FILE_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// The POST /api/v1/alerts body of a rule given by flags.
fn rule_from_flags(name: &str, flags: RuleFlags) -> anyhow::Result<Map<String, Value>> {
    let kind = flags
        .kind
        .ok_or_else(|| anyhow!("give the rule's --kind (query, event or absence)"))?;
    check_rule_flags(kind, &flags)?;
    let mut rule = Map::new();
    rule.insert("name".into(), json!(name));
    rule.insert("kind".into(), json!(kind.as_str()));
    rule.insert("channels".into(), json!(flags.channels));
    let texts = [
        ("sql", flags.sql),
        ("condition", flags.condition),
        ("every", flags.every),
        ("metric", flags.metric),
        ("field", flags.field),
        ("value", flags.value),
        ("for", flags.for_),
        ("keep_firing_for", flags.keep_firing_for),
        ("repeat_interval", flags.repeat_interval),
        ("group_wait", flags.group_wait),
    ];
    for (key, text) in texts {
        if let Some(text) = text {
            rule.insert(key.into(), json!(text));
        }
    }
    if let Some(no_data) = flags.no_data {
        rule.insert("no_data".into(), json!(no_data.as_str()));
    }
    if !flags.by.is_empty() {
        rule.insert("by".into(), json!(flags.by));
    }
    if let Some(send_resolved) = flags.send_resolved {
        rule.insert("send_resolved".into(), json!(send_resolved));
    }
    if !flags.labels.is_empty() {
        rule.insert("labels".into(), object_of(flags.labels, "--label")?);
    }
    Ok(rule)
}

/// Refuses flags of another kind of rule and missing required ones, before any request.
fn check_rule_flags(kind: RuleKindArg, flags: &RuleFlags) -> anyhow::Result<()> {
    use RuleKindArg::{Absence, Event, Query};
    let given: [(&str, bool, &[RuleKindArg]); 8] = [
        ("--sql", flags.sql.is_some(), &[Query]),
        ("--condition", flags.condition.is_some(), &[Query, Event]),
        ("--every", flags.every.is_some(), &[Query]),
        ("--no-data", flags.no_data.is_some(), &[Query]),
        ("--metric", flags.metric.is_some(), &[Event, Absence]),
        ("--by", !flags.by.is_empty(), &[Event, Absence]),
        ("--field", flags.field.is_some(), &[Absence]),
        ("--value", flags.value.is_some(), &[Event]),
    ];
    for (flag, present, kinds) in given {
        if present && !kinds.contains(&kind) {
            bail!("{flag} does not apply to {} rules", kind.as_str());
        }
    }
    let required: Vec<(&str, bool)> = match kind {
        Query => vec![("--sql", flags.sql.is_some())],
        Event => vec![
            ("--metric", flags.metric.is_some()),
            ("--condition", flags.condition.is_some()),
        ],
        Absence => vec![
            ("--metric", flags.metric.is_some()),
            ("--for", flags.for_.is_some()),
        ],
    };
    match required.iter().find(|(_, present)| !present) {
        Some((flag, _)) => bail!("a{} {} rule needs {flag}", article(kind), kind.as_str()),
        None => Ok(()),
    }
}

fn article(kind: RuleKindArg) -> &'static str {
    match kind {
        RuleKindArg::Event | RuleKindArg::Absence => "n",
        RuleKindArg::Query => "",
    }
}

fn print_alerts(answer: &Value) {
    let alerts = items(answer, "alerts");
    if alerts.is_empty() {
        println!("(no alert rules: create one with `strata alert create`)");
        return;
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|rule| {
            let instances = items(rule, "instances");
            let firing = instances
                .iter()
                .filter(|i| i.get("state").and_then(Value::as_str) == Some("firing"))
                .count();
            vec![
                field(rule, "name"),
                field(rule, "kind"),
                field(rule, "health"),
                format!("{firing}/{}", instances.len()),
                output::list(rule.get("channels")),
                field(rule, "last_evaluated_at"),
                field(rule, "last_error"),
            ]
        })
        .collect();
    let headers = [
        "name",
        "kind",
        "health",
        "firing",
        "channels",
        "last_evaluated_at",
        "last_error",
    ];
    print!("{}", output::table(&strings(&headers), &[], &rows));
}

/// Definition keys in the order `alert show` prints them; any other key follows.
const RULE_KEYS: &[&str] = &[
    "sql",
    "condition",
    "metric",
    "by",
    "field",
    "value",
    "every",
    "for",
    "keep_firing_for",
    "repeat_interval",
    "group_wait",
    "no_data",
    "send_resolved",
    "channels",
    "labels",
    "created_at",
    "health",
    "last_error",
    "last_evaluated_at",
];

fn print_alert(rule: &Value) {
    println!("alert {} ({})", field(rule, "name"), field(rule, "kind"));
    let Value::Object(map) = rule else {
        return;
    };
    let others = map
        .keys()
        .map(String::as_str)
        .filter(|k| !RULE_KEYS.contains(k) && !["name", "kind", "instances"].contains(k));
    for key in RULE_KEYS.iter().copied().chain(others) {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(value) => println!("  {:<18} {}", format!("{key}:"), plain(value)),
        }
    }
    let instances = items(rule, "instances");
    if instances.is_empty() {
        println!("  instances: (none)");
        return;
    }
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                labels_text(i.get("labels")),
                field(i, "state"),
                field(i, "value"),
                field(i, "active_since"),
                field(i, "state_since"),
                field(i, "acknowledged"),
            ]
        })
        .collect();
    let headers = [
        "labels",
        "state",
        "value",
        "active_since",
        "state_since",
        "acknowledged",
    ];
    println!("  instances:");
    for line in output::table(&strings(&headers), &[], &rows).lines() {
        println!("    {line}");
    }
}

fn print_test(name: &str, answer: &Value) {
    let instances = items(answer, "instances");
    println!("alert {name} evaluated now (nothing notified, no state changed)");
    if instances.is_empty() {
        println!("(no instances)");
        return;
    }
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            let active = i.get("active").and_then(Value::as_bool) == Some(true);
            vec![
                labels_text(i.get("labels")),
                field(i, "value"),
                if active { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let headers = ["labels", "value", "active"];
    print!("{}", output::table(&strings(&headers), &[], &rows));
}

pub fn silence(
    client: &Client,
    as_json: bool,
    command: SilenceCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        SilenceCommand::Create(args) => {
            let answer = client.post(&["api", "v1", "silences"], &silence_body(args)?)?;
            show(as_json, &answer, |a| {
                println!("id:       {}", field(a, "id"));
                println!("matchers: {}", labels_text(a.get("matchers")));
                println!("starts:   {}", field(a, "starts"));
                println!("until:    {}", field(a, "until"));
            });
        }
        SilenceCommand::List => {
            let answer = client.get(&["api", "v1", "silences"])?;
            show(as_json, &answer, print_silences);
        }
        SilenceCommand::Delete { id } => {
            let answer = client.delete(&["api", "v1", "silences", &id])?;
            show(as_json, &answer, |_| println!("deleted silence {id}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The POST /api/v1/silences body; `--for` becomes `until` = start (or now) + the duration.
fn silence_body(args: SilenceCreateArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("matchers".into(), object_of(args.matchers, "--matcher")?);
    let until = match (args.until, args.for_) {
        (Some(until), _) => until,
        (None, Some(length)) => {
            let start = match &args.starts {
                Some(text) => DateTime::parse_from_rfc3339(text)
                    .with_context(|| format!("--starts {text:?} is not an RFC 3339 time"))?
                    .with_timezone(&Utc),
                None => DateTime::<Utc>::from(std::time::SystemTime::now()),
            };
            TimeDelta::from_std(length)
                .ok()
                .and_then(|length| start.checked_add_signed(length))
                .ok_or_else(|| anyhow!("--for is too long"))?
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        }
        (None, None) => bail!("give --until TIME or --for DURATION"),
    };
    body.insert("until".into(), json!(until));
    if let Some(starts) = args.starts {
        body.insert("starts".into(), json!(starts));
    }
    if let Some(comment) = args.comment {
        body.insert("comment".into(), json!(comment));
    }
    Ok(Value::Object(body))
}

fn print_silences(answer: &Value) {
    let silences = items(answer, "silences");
    if silences.is_empty() {
        println!("(no silences)");
        return;
    }
    let listed: Vec<Value> = silences
        .iter()
        .map(|s| {
            json!({
                "id": s.get("id"),
                "matchers": labels_text(s.get("matchers")),
                "starts": s.get("starts"),
                "until": s.get("until"),
                "active": s.get("active"),
                "comment": s.get("comment"),
            })
        })
        .collect();
    let columns = ["id", "matchers", "starts", "until", "active", "comment"];
    print!("{}", object_table(&listed, &columns));
}

/// `key=value` pairs as a JSON object; a key given twice is a mistake, not an override.
fn object_of(pairs: Vec<(String, String)>, flag: &str) -> anyhow::Result<Value> {
    let mut object = Map::new();
    for (key, value) in pairs {
        if object.contains_key(&key) {
            bail!("{flag} {key}=... is given twice");
        }
        object.insert(key, json!(value));
    }
    Ok(Value::Object(object))
}

/// Labels (or matchers) as `k=v, k=v`; `{}` for none.
fn labels_text(labels: Option<&Value>) -> String {
    match labels {
        Some(Value::Object(map)) if map.is_empty() => "{}".to_string(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", output::cell(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Null) | None => String::new(),
        Some(other) => output::cell(other),
    }
}

/// A value of `alert show`: lists joined, label objects as `k=v`, the rest as a cell.
fn plain(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => "(none)".to_string(),
        Value::Array(_) => output::list(Some(value)),
        Value::Object(_) => labels_text(Some(value)),
        other => output::cell(other),
    }
}

/// One key of an answer for display; missing and null are blank.
fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(v) => output::cell(v),
    }
}

fn strings(headers: &[&str]) -> Vec<String> {
    headers.iter().map(|h| h.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn create_args(args: &[&str]) -> AlertCreateArgs {
        let mut full = vec!["strata", "alert", "create"];
        full.extend(args);
        match Cli::try_parse_from(full).map(|cli| cli.command) {
            Ok(Command::Alert {
                command: AlertCommand::Create(args),
                ..
            }) => *args,
            other => panic!("parsed into {other:?}"),
        }
    }

    #[test]
    fn flags_make_the_documented_rule_body() {
        let args = create_args(&[
            "silent",
            "--kind",
            "absence",
            "--metric",
            "thermostat",
            "--by",
            "name",
            "--field",
            "temp",
            "--for",
            "30s",
            "--channel",
            "ops",
            "--label",
            "team=a",
        ]);
        let rule = rule_from_flags("silent", args.flags).unwrap();
        assert_eq!(
            Value::Object(rule),
            json!({"name": "silent", "kind": "absence", "metric": "thermostat", "by": ["name"],
                   "field": "temp", "for": "30s", "channels": ["ops"], "labels": {"team": "a"}})
        );
    }

    #[test]
    fn flags_of_another_kind_and_missing_flags_are_refused() {
        let args = create_args(&["f", "--kind", "event", "--metric", "m", "--sql", "SELECT 1"]);
        let err = rule_from_flags("f", args.flags).unwrap_err().to_string();
        assert_eq!(err, "--sql does not apply to event rules");
        let args = create_args(&["f", "--kind", "event", "--metric", "m"]);
        let err = rule_from_flags("f", args.flags).unwrap_err().to_string();
        assert_eq!(err, "an event rule needs --condition");
        let args = create_args(&["s", "--kind", "absence", "--metric", "m"]);
        let err = rule_from_flags("s", args.flags).unwrap_err().to_string();
        assert_eq!(err, "an absence rule needs --for");
    }

    #[test]
    fn json_and_flags_do_not_mix_and_the_name_may_override() {
        assert!(Cli::try_parse_from([
            "strata", "alert", "create", "--json", "{}", "--kind", "query"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["strata", "alert", "create", "hot"]).is_err());
        let args = create_args(&["--json", r#"{"name":"a","kind":"query","sql":"SELECT 1"}"#]);
        assert_eq!(args.name, None);
        let rule = rule_from_json(args.json.unwrap().as_bytes(), "--json").unwrap();
        assert_eq!(rule["name"], "a");
        assert!(rule_from_json(b"[1]", "--json").is_err());
        // `alert list --json` is the raw-output switch.
        let cli = Cli::try_parse_from(["strata", "alert", "list", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Alert { command: AlertCommand::List { output }, .. } if output.json
        ));
    }

    #[test]
    fn silence_for_becomes_until_after_the_start() {
        let cli = Cli::try_parse_from([
            "strata",
            "silence",
            "create",
            "--matcher",
            "alert=hot",
            "--starts",
            "2026-03-01T22:00:00Z",
            "--for",
            "90m",
        ])
        .unwrap();
        let Command::Silence {
            command: SilenceCommand::Create(args),
            ..
        } = cli.command
        else {
            panic!("parsed into the wrong command");
        };
        assert_eq!(
            silence_body(args).unwrap(),
            json!({"matchers": {"alert": "hot"}, "starts": "2026-03-01T22:00:00Z",
                   "until": "2026-03-01T23:30:00.000Z"})
        );
        // One of --until and --for is required, not both.
        let base = ["strata", "silence", "create", "--matcher", "a=b"];
        assert!(Cli::try_parse_from(base).is_err());
        let mut both = base.to_vec();
        both.extend(["--for", "1h", "--until", "2030-01-01T00:00:00Z"]);
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn labels_render_as_key_value_pairs() {
        assert_eq!(labels_text(Some(&json!({"name": "t7"}))), "name=t7");
        assert_eq!(labels_text(Some(&json!({"n": 1}))), "n=1");
        assert_eq!(labels_text(Some(&json!({}))), "{}");
        assert!(object_of(
            vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            "--label"
        )
        .is_err());
    }
}
