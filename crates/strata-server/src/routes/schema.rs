//! The schema API: every change goes through `SchemaRegistry::apply`, which versions it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strata_catalog::{Field, Metric, SchemaChange, SchemaVersion};
use strata_core::{FieldType, Role, TimestampUnit};

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

/// Rejects strftime patterns chrono cannot use, naming the pattern, so a typo is caught when
/// it is configured rather than when events start being rejected.
pub fn validate_patterns(what: &str, patterns: &[String]) -> Result<(), ApiError> {
    use chrono::format::{Item, StrftimeItems};
    for (i, pattern) in patterns.iter().enumerate() {
        if pattern.is_empty() || StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error))
        {
            return Err(ApiError::bad_request(format!(
                "{what}[{i}]: {pattern:?} is not a valid strftime pattern (for example \"%d/%m/%Y %H:%M\")"
            )));
        }
    }
    Ok(())
}

fn parse_type(what: &str, text: Option<&str>) -> Result<Option<FieldType>, ApiError> {
    text.map(|t| {
        t.parse::<FieldType>()
            .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
    })
    .transpose()
}

pub fn field_json(field: &Field) -> Value {
    json!({
        "name": field.name,
        "type": field.field_type.map(FieldType::as_str),
        "aliases": field.aliases(),
        "hidden": field.hidden,
        "expression": field.expression,
        "conversions": field.conversions,
    })
}

pub fn metric_json(metric: &Metric) -> Value {
    let series_keys: Vec<&str> = metric
        .series_key_fields()
        .into_iter()
        .map(|f| f.name.as_str())
        .collect();
    let unknown: Vec<Value> = metric
        .unknown_incoming()
        .map(|u| {
            json!({
                "name": u.name,
                "count": u.count,
                "first_seen": u.first_seen.map(|t| t.to_rfc3339()),
                "last_seen": u.last_seen.map(|t| t.to_rfc3339()),
                "types": u.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "samples": u.samples,
            })
        })
        .collect();
    json!({
        "name": metric.name,
        "aliases": metric.aliases,
        "timestamp_aliases": metric.timestamp_aliases,
        "timestamp_patterns": metric.timestamp_patterns,
        "series_keys": series_keys,
        "retention_days": metric.retention_days,
        "timestamp_unit": metric.timestamp_unit.as_str(),
        "fields": metric.fields.iter().map(field_json).collect::<Vec<_>>(),
        "unknown_fields": unknown,
    })
}

fn version_json(v: &SchemaVersion) -> Value {
    json!({ "version": v.version, "time": v.at.to_rfc3339(), "change": v.change })
}

pub async fn show(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Read)?;
    let schema = state.schemas().schema(caller.tenant.id).await?;
    let metrics: Vec<Value> = schema
        .tables()
        .map(|m| {
            let mut shown = metric_json(m);
            let merged: Vec<&str> = schema.merged_into(m.id).map(|b| b.name.as_str()).collect();
            if !merged.is_empty() {
                shown["merged_from"] = json!(merged);
            }
            shown
        })
        .collect();
    Ok(Json(
        json!({ "version": schema.version, "metrics": metrics }),
    ))
}

pub async fn history(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let versions = state.schemas().history(caller.tenant.id).await?;
    Ok(Json(
        json!({ "versions": versions.iter().map(version_json).collect::<Vec<_>>() }),
    ))
}

/// Applies a change and answers with the new version and the metric as it now is.
async fn apply(
    state: &AppState,
    caller: &TenantCaller,
    change: SchemaChange,
    metric_after: Option<&str>,
) -> Result<Value, ApiError> {
    let version = state.schemas().apply(caller.tenant.id, change).await?;
    let mut answer = json!({ "version": version.version, "change": version.change });
    if let Some(name) = metric_after {
        let schema = state.schemas().schema(caller.tenant.id).await?;
        if let Some(metric) = schema.metric(name) {
            answer["metric"] = metric_json(metric);
        }
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMetric {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
}

pub async fn create_metric(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<CreateMetric>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let name = body.name.clone();
    let change = SchemaChange::CreateMetric {
        name: body.name,
        aliases: body.aliases,
    };
    let answer = apply(&state, &caller, change, Some(&name)).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchMetric {
    rename_to: Option<String>,
    #[serde(default)]
    add_aliases: Vec<String>,
    #[serde(default)]
    remove_aliases: Vec<String>,
    timestamp_aliases: Option<Vec<String>>,
    timestamp_patterns: Option<Vec<String>>,
    series_keys: Option<Vec<String>>,
    /// Days of raw data kept; 0 clears it (the tenant's cold retention alone).
    retention_days: Option<u32>,
    /// How numbers in later events' timestamps are read: `ms`, `s`, `us`, `ns` or `auto`. Text,
    /// so an unknown unit gets our message naming the allowed ones rather than serde's.
    timestamp_unit: Option<String>,
}

pub async fn patch_metric(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(metric): Path<String>,
    JsonBody(body): JsonBody<PatchMetric>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    if let Some(patterns) = &body.timestamp_patterns {
        validate_patterns("timestamp_patterns", patterns)?;
    }
    let timestamp_unit = body
        .timestamp_unit
        .as_deref()
        .map(|text| {
            text.parse::<TimestampUnit>()
                .map_err(|e| ApiError::bad_request(format!("timestamp_unit: {e}")))
        })
        .transpose()?;
    let after = body.rename_to.clone().unwrap_or_else(|| metric.clone());
    let change = SchemaChange::UpdateMetric {
        metric,
        rename_to: body.rename_to,
        add_aliases: body.add_aliases,
        remove_aliases: body.remove_aliases,
        timestamp_aliases: body.timestamp_aliases,
        timestamp_patterns: body.timestamp_patterns,
        series_keys: body.series_keys,
        retention_days: body.retention_days,
        timestamp_unit,
    };
    Ok(Json(apply(&state, &caller, change, Some(&after)).await?))
}

pub async fn delete_metric(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(metric): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        apply(&state, &caller, SchemaChange::DeleteMetric { metric }, None).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeMetric {
    from: String,
}

/// `POST /schema/metrics/{metric}/merge {"from":"b"}`: `b` becomes an alias of `metric`, whose
/// table then reads both metrics' data in place (409 naming the clash when names would clash).
pub async fn merge_metric(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(metric): Path<String>,
    JsonBody(body): JsonBody<MergeMetric>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let change = SchemaChange::MergeMetric {
        metric: metric.clone(),
        from: body.from,
    };
    Ok(Json(apply(&state, &caller, change, Some(&metric)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareField {
    #[serde(rename = "type")]
    field_type: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    hidden: bool,
    /// A derived field: the SQL expression over other fields it is computed from on read.
    expression: Option<String>,
    /// Name of the field -> the SQL expression its values are converted by on read.
    #[serde(default)]
    conversions: std::collections::BTreeMap<String, String>,
}

pub async fn declare_field(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path((metric, field)): Path<(String, String)>,
    JsonBody(body): JsonBody<DeclareField>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let field_type = parse_type("type", body.field_type.as_deref())?;
    if let Some(expression) = &body.expression {
        // Refused at declaration, with the place named, rather than read as NULL later.
        state
            .query()
            .check_derived(caller.tenant.id, &metric, &field, field_type, expression)
            .await?;
    }
    // Without a type the catalog refuses conversions, with that reason.
    for (name, conversion) in body.conversions.iter().filter(|_| field_type.is_some()) {
        strata_query::derived::check_conversion(name, conversion, field_type)
            .map_err(ApiError::bad_request)?;
    }
    let change = SchemaChange::DeclareField {
        metric: metric.clone(),
        field,
        field_type,
        aliases: body.aliases,
        hidden: body.hidden,
        expression: body.expression,
        conversions: body.conversions,
    };
    Ok(Json(apply(&state, &caller, change, Some(&metric)).await?))
}

/// `DELETE .../fields/{field}`: hidden at once, purged at the next compaction.
pub async fn drop_field(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path((metric, field)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let change = SchemaChange::DropField {
        metric: metric.clone(),
        field,
    };
    Ok(Json(apply(&state, &caller, change, Some(&metric)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchField {
    rename_to: Option<String>,
    #[serde(rename = "type")]
    field_type: Option<String>,
    #[serde(default)]
    add_aliases: Vec<String>,
    #[serde(default)]
    remove_aliases: Vec<String>,
    hidden: Option<bool>,
}

pub async fn patch_field(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path((metric, field)): Path<(String, String)>,
    JsonBody(body): JsonBody<PatchField>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let change = SchemaChange::UpdateField {
        metric: metric.clone(),
        field,
        rename_to: body.rename_to,
        field_type: parse_type("type", body.field_type.as_deref())?,
        add_aliases: body.add_aliases,
        remove_aliases: body.remove_aliases,
        hidden: body.hidden,
    };
    Ok(Json(apply(&state, &caller, change, Some(&metric)).await?))
}
