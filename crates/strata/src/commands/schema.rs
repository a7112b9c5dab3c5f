//! `strata schema ...`: show the schema and change it as metadata.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};
use strata_client::{ApiError, Client, StatusCode};
use strata_core::{FieldType, RESERVED_FIELD_NAME};

use super::{items, show};
use crate::cli::{AlterFieldArgs, AlterMetricArgs, DeclareFieldArgs, SchemaCommand};
use crate::output::{self, Align};

/// Largest sample event read by `schema create --from-sample`; a sample is one event, and the
/// server refuses events above 1 MiB by default.
const MAX_SAMPLE_BYTES: u64 = 16 * 1024 * 1024;

pub fn run(client: &Client, as_json: bool, command: SchemaCommand) -> anyhow::Result<ExitCode> {
    match command {
        SchemaCommand::Show { metric } => show_schema(client, as_json, metric.as_deref())?,
        SchemaCommand::History => {
            let answer = client.get(&["api", "v1", "schema", "history"])?;
            show(as_json, &answer, print_history);
        }
        SchemaCommand::Suggest {
            apply,
            dismiss,
            stale_days,
        } => suggest(client, as_json, apply, dismiss, stale_days)?,
        SchemaCommand::CreateMetric { name, aliases } => {
            let answer = client.post(
                &["api", "v1", "schema", "metrics"],
                &json!({ "name": name, "aliases": aliases }),
            )?;
            show(as_json, &answer, |a| {
                print_change(a, &format!("created metric {name}"))
            });
        }
        SchemaCommand::Create {
            from_sample,
            metric,
        } => create_from_sample(client, as_json, &from_sample, metric)?,
        SchemaCommand::AlterMetric(args) => alter_metric(client, as_json, args)?,
        SchemaCommand::DeleteMetric { metric } => {
            let answer = client.delete(&["api", "v1", "schema", "metrics", &metric])?;
            show(as_json, &answer, |a| {
                print_change(a, &format!("deleted metric {metric}"))
            });
        }
        SchemaCommand::DropField { metric, field } => {
            let answer = client.delete(&field_path(&metric, &field))?;
            show(as_json, &answer, |a| {
                print_change(a, &format!("dropped field {field} of {metric}"))
            });
        }
        SchemaCommand::MergeMetric { metric, from } => {
            let answer = client.post(
                &["api", "v1", "schema", "metrics", &metric, "merge"],
                &json!({ "from": from }),
            )?;
            show(as_json, &answer, |a| {
                print_change(a, &format!("merged metric {from} into {metric}"))
            });
        }
        SchemaCommand::DeclareField(args) => declare_field(client, as_json, args)?,
        SchemaCommand::AlterField(args) => alter_field(client, as_json, args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn show_schema(client: &Client, as_json: bool, only: Option<&str>) -> anyhow::Result<()> {
    let answer = client.get(&["api", "v1", "schema"])?;
    let metrics = items(&answer, "metrics");
    let selected: Vec<&Value> = match only {
        None => metrics.iter().collect(),
        Some(name) => {
            let found: Vec<&Value> = metrics
                .iter()
                .filter(|m| metric_has_name(m, name))
                .collect();
            if found.is_empty() {
                bail!("no metric is named {name:?} (by name or alias)");
            }
            found
        }
    };
    if as_json {
        let shown = match only {
            None => answer.clone(),
            Some(_) => json!({ "version": answer.get("version"), "metrics": selected }),
        };
        println!("{}", output::json(&shown));
        return Ok(());
    }
    if selected.is_empty() {
        println!("(no metrics yet: write events or run `strata schema create-metric`)");
        return Ok(());
    }
    for (i, metric) in selected.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", render_metric(metric));
    }
    Ok(())
}

fn metric_has_name(metric: &Value, name: &str) -> bool {
    metric.get("name").and_then(Value::as_str) == Some(name)
        || matches!(metric.get("aliases"), Some(Value::Array(a)) if a.iter().any(|x| x.as_str() == Some(name)))
}

/// One metric as text: a heading, its settings, its declared fields and its unknown fields,
/// each list as an indented aligned table.
fn render_metric(metric: &Value) -> String {
    let mut out = String::new();
    let name = metric.get("name").map(output::cell).unwrap_or_default();
    out.push_str(&format!("metric {name}\n"));
    for (label, key) in [
        ("aliases", "aliases"),
        ("series keys", "series_keys"),
        ("timestamp aliases", "timestamp_aliases"),
        ("timestamp patterns", "timestamp_patterns"),
        ("merged from", "merged_from"),
    ] {
        let list = output::list(metric.get(key));
        if !list.is_empty() {
            out.push_str(&format!("  {label}: {list}\n"));
        }
    }
    if let Some(days) = metric.get("retention_days").and_then(Value::as_u64) {
        out.push_str(&format!("  retention: {days} days of raw data\n"));
    }
    match metric.get("timestamp_unit").and_then(Value::as_str) {
        Some("ms") | None => {}
        Some(unit) => out.push_str(&format!("  numeric timestamps: {unit}\n")),
    }
    out.push_str(&render_declared_fields(items(metric, "fields")));
    out.push_str(&render_unknown_fields(items(metric, "unknown_fields")));
    out
}

fn render_declared_fields(fields: &[Value]) -> String {
    if fields.is_empty() {
        return "  fields: (none declared)\n".to_string();
    }
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|f| {
            vec![
                f.get("name").map(output::cell).unwrap_or_default(),
                match f.get("type") {
                    Some(Value::String(t)) => t.clone(),
                    _ => "(unknown)".to_string(),
                },
                output::list(f.get("aliases")),
                if f.get("hidden").and_then(Value::as_bool) == Some(true) {
                    "hidden".to_string()
                } else {
                    String::new()
                },
                computed(f),
            ]
        })
        .collect();
    let table = output::table(
        &[
            "name".into(),
            "type".into(),
            "aliases".into(),
            "hidden".into(),
            "computed".into(),
        ],
        &[],
        &rows,
    );
    format!("  fields:\n{}", indent(&table))
}

/// How a field is computed on read: `= expression` for a derived field, `name = expression`
/// per converted name.
fn computed(field: &Value) -> String {
    if let Some(expression) = field.get("expression").and_then(Value::as_str) {
        return format!("= {expression}");
    }
    let Some(conversions) = field.get("conversions").and_then(Value::as_object) else {
        return String::new();
    };
    conversions
        .iter()
        .map(|(name, expression)| format!("{name} = {}", expression.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Nothing when there are none: most metrics have no unknown fields.
fn render_unknown_fields(unknown: &[Value]) -> String {
    if unknown.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = unknown
        .iter()
        .map(|u| {
            let types = match u.get("types").or_else(|| u.get("observed_types")) {
                Some(v) => output::list(Some(v)),
                None => String::new(),
            };
            vec![
                u.get("name").map(output::cell).unwrap_or_default(),
                u.get("count").map(output::cell).unwrap_or_default(),
                types,
                optional_cell(u.get("first_seen")),
                optional_cell(u.get("last_seen")),
            ]
        })
        .collect();
    let table = output::table(
        &[
            "name".into(),
            "count".into(),
            "types".into(),
            "first seen".into(),
            "last seen".into(),
        ],
        &[Align::Left, Align::Right],
        &rows,
    );
    format!(
        "  unknown fields (not declared yet; read as strings):\n{}",
        indent(&table)
    )
}

fn optional_cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(v) => output::cell(v),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn print_history(answer: &Value) {
    let versions = items(answer, "versions");
    if versions.is_empty() {
        println!("(no schema changes yet)");
        return;
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.get("version").map(output::cell).unwrap_or_default(),
                v.get("time").map(output::cell).unwrap_or_default(),
                v.get("change").map(output::cell).unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["version".into(), "time".into(), "change".into()],
            &[Align::Right],
            &rows
        )
    );
}

/// Lists suggestions, or applies or dismisses one.
fn suggest(
    client: &Client,
    as_json: bool,
    apply: Option<String>,
    dismiss: Option<String>,
    stale_days: Option<u32>,
) -> anyhow::Result<()> {
    let days = stale_days.map(|d| d.to_string());
    let query: Vec<(&str, &str)> = days.iter().map(|d| ("stale_days", d.as_str())).collect();
    let path = ["api", "v1", "schema", "suggestions"];
    if let Some(id) = apply {
        let segments = [&path[..], &[id.as_str(), "apply"]].concat();
        let answer = client.post_with_query(&segments, &query, &json!({}))?;
        show(as_json, &answer, |a| {
            print_change(a, &format!("applied suggestion {id}"))
        });
        return Ok(());
    }
    if let Some(id) = dismiss {
        let segments = [&path[..], &[id.as_str(), "dismiss"]].concat();
        let answer = client.post_with_query(&segments, &query, &json!({}))?;
        show(as_json, &answer, |_| println!("dismissed suggestion {id}"));
        return Ok(());
    }
    let answer = client.get_with_query(&path, &query)?;
    show(as_json, &answer, print_suggestions);
    Ok(())
}

fn print_suggestions(answer: &Value) {
    let suggestions = items(answer, "suggestions");
    if suggestions.is_empty() {
        println!("(no suggestions)");
        return;
    }
    let rows: Vec<Vec<String>> = suggestions
        .iter()
        .map(|s| {
            let text = |key: &str| s.get(key).map(output::cell).unwrap_or_default();
            let change = s.get("change").map(|c| c.to_string()).unwrap_or_default();
            vec![
                text("id"),
                text("metric"),
                text("confidence"),
                change,
                text("reason"),
            ]
        })
        .collect();
    let header = ["id", "metric", "confidence", "change", "why"].map(String::from);
    print!(
        "{}",
        output::table(&header, &[Align::Left, Align::Left, Align::Right], &rows)
    );
    println!("apply one with: strata schema suggest --apply ID");
}

/// Confirms a schema change with the version it made, as the server describes it.
fn print_change(answer: &Value, fallback: &str) {
    match (answer.get("version"), answer.get("change")) {
        (Some(version), Some(change)) => {
            println!(
                "schema version {}: {}",
                output::cell(version),
                output::cell(change)
            )
        }
        _ => println!("{fallback}"),
    }
}

fn alter_metric(client: &Client, as_json: bool, args: AlterMetricArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(name) = args.rename_to {
        body.insert("rename_to".into(), json!(name));
    }
    insert_list(&mut body, "add_aliases", args.add_aliases);
    insert_list(&mut body, "remove_aliases", args.remove_aliases);
    insert_list(&mut body, "timestamp_aliases", args.timestamp_aliases);
    insert_list(&mut body, "timestamp_patterns", args.timestamp_patterns);
    insert_list(&mut body, "series_keys", args.series_keys);
    if let Some(days) = args.retention_days {
        body.insert("retention_days".into(), json!(days));
    }
    if let Some(unit) = args.timestamp_unit {
        body.insert("timestamp_unit".into(), json!(unit));
    }
    if body.is_empty() {
        bail!("nothing to change: give at least one of --rename-to, --add-alias, --remove-alias, --timestamp-alias, --timestamp-pattern, --series-key, --retention-days, --timestamp-unit");
    }
    let answer = client.patch(
        &["api", "v1", "schema", "metrics", &args.metric],
        &Value::Object(body),
    )?;
    show(as_json, &answer, |a| {
        print_change(a, &format!("changed metric {}", args.metric))
    });
    Ok(())
}

/// Only options the user gave are sent: an absent key leaves the setting alone, while an empty
/// list would clear it.
fn insert_list(body: &mut Map<String, Value>, key: &str, values: Vec<String>) {
    if !values.is_empty() {
        body.insert(key.into(), json!(values));
    }
}

fn declare_field(client: &Client, as_json: bool, args: DeclareFieldArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(field_type) = args.field_type {
        body.insert("type".into(), json!(field_type.as_str()));
    }
    body.insert("aliases".into(), json!(args.aliases));
    body.insert("hidden".into(), json!(args.hidden));
    if let Some(expression) = args.expression {
        body.insert("expression".into(), json!(expression));
    }
    if !args.conversions.is_empty() {
        let conversions: Map<String, Value> = args
            .conversions
            .into_iter()
            .map(|(name, sql)| (name, json!(sql)))
            .collect();
        body.insert("conversions".into(), Value::Object(conversions));
    }
    let answer = client.put(&field_path(&args.metric, &args.field), &Value::Object(body))?;
    show(as_json, &answer, |a| {
        print_change(
            a,
            &format!("declared field {} of {}", args.field, args.metric),
        )
    });
    Ok(())
}

fn alter_field(client: &Client, as_json: bool, args: AlterFieldArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(name) = args.rename_to {
        body.insert("rename_to".into(), json!(name));
    }
    if let Some(field_type) = args.field_type {
        body.insert("type".into(), json!(field_type.as_str()));
    }
    insert_list(&mut body, "add_aliases", args.add_aliases);
    insert_list(&mut body, "remove_aliases", args.remove_aliases);
    if let Some(hidden) = args.hidden {
        body.insert("hidden".into(), json!(hidden));
    }
    if body.is_empty() {
        bail!("nothing to change: give at least one of --rename-to, --type, --add-alias, --remove-alias, --hidden");
    }
    let answer = client.patch(&field_path(&args.metric, &args.field), &Value::Object(body))?;
    show(as_json, &answer, |a| {
        print_change(
            a,
            &format!("changed field {} of {}", args.field, args.metric),
        )
    });
    Ok(())
}

fn field_path<'a>(metric: &'a str, field: &'a str) -> [&'a str; 7] {
    ["api", "v1", "schema", "metrics", metric, "fields", field]
}

/// What `schema create --from-sample` decided for one flattened key of the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleField {
    pub name: String,
    /// None when the sample's value is null, so no type can be inferred.
    pub field_type: Option<FieldType>,
}

/// Flattens a sample event with ingest's own flattening (`strata_ingest::flatten_leaves`:
/// nested objects to dotted names, arrays kept as JSON text, the same refusals) and infers each
/// field's type from its value. `timestamp` and `metric_key` are skipped at the top level
/// because they are not fields.
pub fn infer_fields(
    sample: &Map<String, Value>,
    metric_key: Option<&str>,
) -> anyhow::Result<Vec<SampleField>> {
    let mut out = Vec::new();
    for (key, value) in sample {
        if key == RESERVED_FIELD_NAME || Some(key.as_str()) == metric_key {
            continue;
        }
        strata_ingest::flatten_leaves(key.into(), value.clone(), 1, &mut |name, value| {
            let field_type = inferred_type(&value);
            out.push(SampleField {
                name: name.into_owned(),
                field_type,
            });
            Ok(())
        })
        .with_context(|| format!("the sample's member {key:?} would be refused at ingest"))?;
    }
    Ok(out)
}

/// The type a sample's leaf value suggests; None for null.
fn inferred_type(value: &Value) -> Option<FieldType> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(FieldType::Boolean),
        Value::Number(n) if n.is_i64() => Some(FieldType::Integer),
        // u64 beyond i64 does not fit an integer field; a double keeps its magnitude.
        Value::Number(_) => Some(FieldType::Double),
        Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {
            Some(FieldType::Timestamp)
        }
        // Objects never reach here: flattening turns them into leaves.
        Value::String(_) | Value::Array(_) | Value::Object(_) => Some(FieldType::String),
    }
}

fn read_sample(path: &Path) -> anyhow::Result<Map<String, Value>> {
    use std::io::Read;
    let mut text = Vec::new();
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("opening sample {}", path.display()))?,
        )
    };
    reader
        .take(MAX_SAMPLE_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("reading sample {}", path.display()))?;
    if text.len() as u64 > MAX_SAMPLE_BYTES {
        bail!(
            "sample {} is larger than {MAX_SAMPLE_BYTES} bytes; give one event",
            path.display()
        );
    }
    match serde_json::from_slice::<Value>(&text)
        .with_context(|| format!("sample {} is not valid JSON", path.display()))?
    {
        Value::Object(map) => Ok(map),
        other => bail!(
            "sample {} must be one JSON object (an event), not {}",
            path.display(),
            json_kind(&other)
        ),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Which key names the sample's metric, and the metric's name.
fn sample_metric(
    client: &Client,
    sample: &Map<String, Value>,
    explicit: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    if let Some(name) = explicit {
        // The key is still not a field, so it is skipped when present.
        let key = metric_keys(client)?
            .into_iter()
            .find(|k| sample.contains_key(k));
        return Ok((name, key));
    }
    let keys = metric_keys(client)?;
    for key in &keys {
        match sample.get(key) {
            Some(Value::String(name)) => return Ok((name.clone(), Some(key.clone()))),
            Some(other) => bail!(
                "the sample's metric key {key:?} holds {}, not a metric name; use --metric",
                json_kind(other)
            ),
            None => {}
        }
    }
    Err(anyhow!(
        "the sample names no metric (looked for {}); use --metric NAME",
        keys.iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The tenant's metric keys, in precedence order.
fn metric_keys(client: &Client) -> anyhow::Result<Vec<String>> {
    let settings = client
        .get(&["api", "v1", "settings"])
        .context("reading the tenant's metric keys")?;
    let keys: Vec<String> = items(&settings, "metric_keys")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    Ok(if keys.is_empty() {
        vec![strata_ingest::DEFAULT_METRIC_KEY.to_string()]
    } else {
        keys
    })
}

fn create_from_sample(
    client: &Client,
    as_json: bool,
    path: &Path,
    metric: Option<String>,
) -> anyhow::Result<()> {
    let sample = read_sample(path)?;
    let (metric, metric_key) = sample_metric(client, &sample, metric)?;
    let fields = infer_fields(&sample, metric_key.as_deref())?;

    let created = match client.post(
        &["api", "v1", "schema", "metrics"],
        &json!({ "name": metric, "aliases": [] }),
    ) {
        Ok(_) => true,
        Err(ApiError::Status { status, .. }) if status == StatusCode::CONFLICT => false,
        Err(err) => return Err(anyhow!(err).context(format!("creating metric {metric:?}"))),
    };
    let existing = declared_field_names(client, &metric)?;
    let mut report = Vec::new();
    for field in &fields {
        let outcome = declare_sample_field(client, &metric, field, &existing)?;
        report.push((field, outcome));
    }
    if as_json {
        print_sample_report_json(&metric, created, &report);
    } else {
        print_sample_report(&metric, created, &report);
    }
    Ok(())
}

/// The metric's declared fields, each with its aliases.
fn declared_field_names(
    client: &Client,
    metric: &str,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let schema = client.get(&["api", "v1", "schema"])?;
    Ok(items(&schema, "metrics")
        .iter()
        .find(|m| metric_has_name(m, metric))
        .map(|m| {
            items(m, "fields")
                .iter()
                .filter(|f| matches!(f.get("type"), Some(Value::String(_))))
                .map(|f| {
                    let name = f.get("name").map(output::cell).unwrap_or_default();
                    let aliases = items(f, "aliases")
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect();
                    (name, aliases)
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Declares one sample field unless its type is unknown or it is declared already; what
/// happened, in words. Fields already declared keep their declaration: re-declaring would
/// reset their aliases and hidden flag, which a sample knows nothing about.
fn declare_sample_field(
    client: &Client,
    metric: &str,
    field: &SampleField,
    existing: &[(String, Vec<String>)],
) -> anyhow::Result<String> {
    let already = existing
        .iter()
        .any(|(name, aliases)| name == &field.name || aliases.contains(&field.name));
    Ok(match field.field_type {
        None => "skipped: null in the sample, type unknown".to_string(),
        Some(_) if already => "skipped: already declared".to_string(),
        Some(field_type) => {
            client
                .put(
                    &field_path(metric, &field.name),
                    &json!({ "type": field_type.as_str() }),
                )
                .with_context(|| format!("declaring field {:?} of {metric:?}", field.name))?;
            "declared".to_string()
        }
    })
}

fn print_sample_report_json(metric: &str, created: bool, report: &[(&SampleField, String)]) {
    let fields: Vec<Value> = report
        .iter()
        .map(|(f, outcome)| {
            json!({
                "name": f.name,
                "type": f.field_type.map(FieldType::as_str),
                "outcome": outcome,
            })
        })
        .collect();
    let summary = json!({ "metric": metric, "created": created, "fields": fields });
    println!("{}", output::json(&summary));
}

fn print_sample_report(metric: &str, created: bool, report: &[(&SampleField, String)]) {
    if created {
        println!("created metric {metric}");
    } else {
        println!("metric {metric} already exists");
    }
    if report.is_empty() {
        println!("the sample has no fields besides the timestamp and the metric key");
        return;
    }
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|(f, outcome)| {
            vec![
                f.name.clone(),
                f.field_type
                    .map(FieldType::as_str)
                    .unwrap_or("-")
                    .to_string(),
                outcome.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["field".into(), "type".into(), "".into()], &[], &rows)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_types_and_flattens_like_ingest() {
        let sample = json!({
            "metrictype": "thermostat",
            "timestamp": 1420070400000i64,
            "on": true,
            "count": 3,
            "temp": 21.5,
            "huge": 18446744073709551615u64,
            "seen": "2015-01-12T10:12:15Z",
            "name": "kitchen",
            "tags": ["a", "b"],
            "gps": {"lat": 1.5, "fix": {"ok": false}},
            "nothing": null
        });
        let Value::Object(map) = sample else {
            unreachable!()
        };
        let mut got = infer_fields(&map, Some("metrictype")).unwrap();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let expect = |name: &str, t: Option<FieldType>| SampleField {
            name: name.to_string(),
            field_type: t,
        };
        assert_eq!(
            got,
            vec![
                expect("count", Some(FieldType::Integer)),
                expect("gps.fix.ok", Some(FieldType::Boolean)),
                expect("gps.lat", Some(FieldType::Double)),
                expect("huge", Some(FieldType::Double)),
                expect("name", Some(FieldType::String)),
                expect("nothing", None),
                expect("on", Some(FieldType::Boolean)),
                expect("seen", Some(FieldType::Timestamp)),
                expect("tags", Some(FieldType::String)),
                expect("temp", Some(FieldType::Double)),
            ]
        );
    }

    /// The CLI flattens exactly as ingest does: an empty key inside a nested object, which
    /// ingest rejects (stage `validate`), is refused here too instead of declaring `gps.`; an
    /// empty nested object declares nothing, as it stores nothing.
    #[test]
    fn sample_flattening_follows_ingest_on_empty_keys() {
        let Value::Object(bad) = json!({"timestamp": 1, "gps": {"": 1.5}}) else {
            unreachable!()
        };
        let error = format!("{:#}", infer_fields(&bad, None).unwrap_err());
        let ingest =
            strata_ingest::flatten_leaves("gps".into(), json!({"": 1.5}), 1, &mut |_, _| Ok(()))
                .unwrap_err()
                .to_string();
        assert!(error.contains(&ingest), "{error} / {ingest}");
        let Value::Object(empty) = json!({"gps": {}, "v": 1}) else {
            unreachable!()
        };
        let got = infer_fields(&empty, None).unwrap();
        assert_eq!(
            got,
            vec![SampleField {
                name: "v".into(),
                field_type: Some(FieldType::Integer)
            }]
        );
    }

    #[test]
    fn metric_rendering_lists_fields_and_unknowns() {
        let metric = json!({
            "name": "thermostat",
            "aliases": ["machine1"],
            "series_keys": [],
            "merged_from": ["thermo"],
            "fields": [{"name": "temperature", "type": "double", "aliases": ["temp"], "hidden": false},
                       {"name": "secret", "type": null, "aliases": [], "hidden": true},
                       {"name": "temp_k", "type": null, "aliases": [], "hidden": false,
                        "expression": "temperature + 273.15"},
                       {"name": "celsius", "type": "double", "aliases": ["tempF"], "hidden": false,
                        "conversions": {"tempF": "(tempF - 32) * 5 / 9"}}],
            "unknown_fields": [{"name": "gallons", "count": 12, "types": ["number", "string"],
                                "first_seen": null, "last_seen": "2015-01-12T10:12:15+00:00"}]
        });
        let text = render_metric(&metric);
        assert!(
            text.starts_with("metric thermostat\n  aliases: machine1\n"),
            "{text}"
        );
        assert!(!text.contains("series keys"), "{text}");
        assert!(text.contains("  merged from: thermo\n"), "{text}");
        assert!(text.contains("= temperature + 273.15"), "{text}");
        assert!(text.contains("tempF = (tempF - 32) * 5 / 9"), "{text}");
        assert!(text.contains("temperature  double     temp"), "{text}");
        assert!(
            text.contains("secret       (unknown)           hidden"),
            "{text}"
        );
        assert!(
            text.contains("gallons     12  number, string  -           2015-01-12T10:12:15+00:00"),
            "{text}"
        );
    }
}
