//! Schema changes of a field: declare (create or redeclare) and update (one step per kind of
//! change). Each returns the readable text its history version records.

use std::collections::BTreeMap;

use sqlx::sqlite::SqliteConnection;
use strata_core::{FieldId, FieldType, TenantId};

use super::names::{
    insert_field, insert_local_name, local_conflict, local_owner, resolve_metric, LocalOwner,
    MetricRow,
};
use super::quoted_list;
use super::series_hashes::mark_series_hashes_stale_if_key_field;
use crate::validate;
use crate::CatalogError;

fn describe_type(field_type: Option<FieldType>) -> String {
    match field_type {
        Some(t) => format!("as {t}"),
        None => "with no type".to_string(),
    }
}

/// What `PUT .../fields/{field}` declares besides the name.
pub(super) struct FieldDeclaration<'a> {
    pub(super) field_type: Option<FieldType>,
    pub(super) aliases: &'a [String],
    pub(super) hidden: bool,
    pub(super) expression: Option<&'a str>,
    /// Name of the field -> its conversion; the whole set.
    pub(super) conversions: &'a BTreeMap<String, String>,
}

pub(super) async fn declare_field(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    field: &str,
    declaration: FieldDeclaration<'_>,
) -> Result<String, CatalogError> {
    let FieldDeclaration {
        field_type,
        aliases,
        hidden,
        expression,
        conversions,
    } = declaration;
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    validate::field_level_name("field", field)?;
    for alias in aliases {
        validate::field_level_name("alias", alias)?;
    }
    if let Some(expression) = expression {
        validate::expression(field, expression)?;
    }
    let hidden_text = if hidden { ", hidden" } else { "" };
    let (field_id, display, mut text) = match local_owner(conn, metric.id, field).await? {
        Some(owner @ LocalOwner::TimestampAlias) => {
            return Err(local_conflict(field, &owner, &metric.name))
        }
        Some(LocalOwner::Field { id, display }) => {
            sqlx::query("UPDATE fields SET field_type = ?, hidden = ? WHERE id = ?")
                .bind(field_type.map(FieldType::as_str))
                .bind(hidden)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let text = format!(
                "redeclared field {display:?} of metric {:?} {}{hidden_text}",
                metric.name,
                describe_type(field_type)
            );
            (id, display, text)
        }
        None => {
            let id = insert_field(conn, metric.id, field, field_type, hidden).await?;
            let text = format!(
                "declared field {field:?} of metric {:?} {}{hidden_text}",
                metric.name,
                describe_type(field_type)
            );
            (id, field.to_string(), text)
        }
    };
    sqlx::query("UPDATE fields SET expression = ? WHERE id = ?")
        .bind(expression)
        .bind(field_id)
        .execute(&mut *conn)
        .await?;
    if let Some(expression) = expression {
        text.push_str(&format!(" derived as {expression:?}"));
    }
    let added = add_field_aliases(conn, &metric, field_id, aliases).await?;
    check_field_name_count(conn, field_id, &display).await?;
    if !added.is_empty() {
        mark_series_hashes_stale_if_key_field(conn, metric.id, field_id).await?;
        text.push_str(&format!("; added aliases {}", quoted_list(&added)));
    }
    let stored = StoredField {
        id: field_id,
        display: &display,
        field_type,
        derived: expression.is_some(),
    };
    text.push_str(&set_conversions(conn, &stored, conversions).await?);
    Ok(text)
}

/// Hides the field (declaring an unknown name as a hidden field) and dates the hide to the
/// epoch, so the purge delay has passed: the compactor purges its data at its next run.
pub(super) async fn drop_field(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    field: &str,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    let (id, display) = match local_owner(conn, metric.id, field).await? {
        Some(LocalOwner::Field { id, display }) => {
            sqlx::query("UPDATE fields SET hidden = 1 WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            (id, display)
        }
        Some(owner @ LocalOwner::TimestampAlias) => {
            return Err(local_conflict(field, &owner, &metric.name))
        }
        None => {
            validate::field_level_name("field", field)?;
            let id = insert_field(conn, metric.id, field, None, true).await?;
            (id, field.to_string())
        }
    };
    // After the trigger that dated the hide to now (migration 0012).
    sqlx::query("UPDATE fields SET hidden_at_ms = 0 WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(format!(
        "dropped field {display:?} of metric {:?}: hidden, its data purged at the next compaction",
        metric.name
    ))
}

/// The field a declaration just wrote, as its conversions need it.
struct StoredField<'a> {
    id: FieldId,
    display: &'a str,
    field_type: Option<FieldType>,
    derived: bool,
}

/// Replaces the conversions of the field's names; returns the history text.
async fn set_conversions(
    conn: &mut SqliteConnection,
    field: &StoredField<'_>,
    conversions: &BTreeMap<String, String>,
) -> Result<String, CatalogError> {
    sqlx::query("UPDATE metric_local_names SET conversion = NULL WHERE field_id = ?")
        .bind(field.id)
        .execute(&mut *conn)
        .await?;
    if conversions.is_empty() {
        return Ok(String::new());
    }
    let display = field.display;
    if field.derived {
        return Err(CatalogError::Invalid(format!(
            "field {display:?} is derived, so its names carry no conversions"
        )));
    }
    if field.field_type.is_none() {
        return Err(CatalogError::Invalid(format!(
            "a conversion converts into the field's type: declare field {display:?} with a type"
        )));
    }
    let mut described = Vec::new();
    for (name, expression) in conversions {
        validate::expression(name, expression)?;
        let updated = sqlx::query(
            "UPDATE metric_local_names SET conversion = ? WHERE field_id = ? AND name = ?",
        )
        .bind(expression)
        .bind(field.id)
        .bind(name)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(CatalogError::Invalid(format!(
                "conversion of {name:?}: it is not a name of field {display:?} (list it in \
                 \"aliases\")"
            )));
        }
        described.push(format!("{name:?} by {expression:?}"));
    }
    Ok(format!("; converts {}", described.join(", ")))
}

async fn check_field_name_count(
    conn: &mut SqliteConnection,
    field: FieldId,
    display: &str,
) -> Result<(), CatalogError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_local_names WHERE field_id = ?")
        .bind(field)
        .fetch_one(&mut *conn)
        .await?;
    if usize::try_from(n).unwrap_or(usize::MAX) > validate::MAX_NAMES_PER_FIELD {
        return Err(CatalogError::Invalid(format!(
            "field {display:?} would have {n} names; the limit is {}",
            validate::MAX_NAMES_PER_FIELD
        )));
    }
    Ok(())
}

/// Adds `aliases` to a field, skipping those it already has. Returns the ones added.
async fn add_field_aliases(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    field: FieldId,
    aliases: &[String],
) -> Result<Vec<String>, CatalogError> {
    let mut added = Vec::new();
    for alias in aliases {
        match local_owner(conn, metric.id, alias).await? {
            Some(LocalOwner::Field { id, .. }) if id == field => {}
            Some(owner) => return Err(local_conflict(alias, &owner, &metric.name)),
            None => {
                insert_local_name(conn, metric.id, Some(field), alias).await?;
                added.push(alias.clone());
            }
        }
    }
    Ok(added)
}

pub(super) struct FieldUpdate {
    pub(super) rename_to: Option<String>,
    pub(super) field_type: Option<FieldType>,
    pub(super) add_aliases: Vec<String>,
    pub(super) remove_aliases: Vec<String>,
    pub(super) hidden: Option<bool>,
}

pub(super) async fn update_field(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    field: &str,
    mut update: FieldUpdate,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    let (field_id, mut display) = match local_owner(conn, metric.id, field).await? {
        Some(LocalOwner::Field { id, display }) => (id, display),
        _ => {
            return Err(CatalogError::NotFound(format!(
                "field {field:?} not found in metric {:?}",
                metric.name
            )))
        }
    };
    let field = FieldRef {
        metric: &metric,
        id: field_id,
    };
    let mut parts = Vec::new();
    if let Some(new_name) = update.rename_to.take() {
        rename_field(conn, &field, &mut display, new_name, &mut parts).await?;
    }
    if let Some(field_type) = update.field_type {
        sqlx::query("UPDATE fields SET field_type = ? WHERE id = ?")
            .bind(field_type.as_str())
            .bind(field_id)
            .execute(&mut *conn)
            .await?;
        parts.push(format!(
            "set type of field {display:?} of metric {:?} to {field_type}",
            metric.name
        ));
    }
    change_field_aliases(conn, &field, &display, &update, &mut parts).await?;
    check_field_name_count(conn, field_id, &display).await?;
    if let Some(hidden) = update.hidden {
        sqlx::query("UPDATE fields SET hidden = ? WHERE id = ?")
            .bind(hidden)
            .bind(field_id)
            .execute(&mut *conn)
            .await?;
        let verb = if hidden { "hid" } else { "unhid" };
        parts.push(format!(
            "{verb} field {display:?} of metric {:?}",
            metric.name
        ));
    }
    if parts.is_empty() {
        return Ok(format!(
            "updated field {display:?} of metric {:?} (no changes)",
            metric.name
        ));
    }
    Ok(parts.join("; "))
}

/// A field being updated and the metric it belongs to.
struct FieldRef<'a> {
    metric: &'a MetricRow,
    id: FieldId,
}

/// Changes only the display name: the precedence of the field's names never changes.
async fn rename_field(
    conn: &mut SqliteConnection,
    field: &FieldRef<'_>,
    display: &mut String,
    new_name: String,
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    validate::field_level_name("field", &new_name)?;
    if new_name == *display {
        return Ok(());
    }
    let metric = field.metric;
    match local_owner(conn, metric.id, &new_name).await? {
        // One of its own aliases: only the display name changes, precedence stays.
        Some(LocalOwner::Field { id, .. }) if id == field.id => {}
        Some(owner) => return Err(local_conflict(&new_name, &owner, &metric.name)),
        // A new name joins at the end of the precedence order.
        None => {
            insert_local_name(conn, metric.id, Some(field.id), &new_name).await?;
            mark_series_hashes_stale_if_key_field(conn, metric.id, field.id).await?;
        }
    }
    sqlx::query("UPDATE fields SET name = ? WHERE id = ?")
        .bind(&new_name)
        .bind(field.id)
        .execute(&mut *conn)
        .await?;
    parts.push(format!(
        "renamed field {display:?} of metric {:?} to {new_name:?}",
        metric.name
    ));
    *display = new_name;
    Ok(())
}

/// Adds, then removes, the aliases the update names.
async fn change_field_aliases(
    conn: &mut SqliteConnection,
    field: &FieldRef<'_>,
    display: &str,
    update: &FieldUpdate,
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    let metric = field.metric;
    for alias in &update.add_aliases {
        validate::field_level_name("alias", alias)?;
    }
    let added = add_field_aliases(conn, metric, field.id, &update.add_aliases).await?;
    if !added.is_empty() || !update.remove_aliases.is_empty() {
        mark_series_hashes_stale_if_key_field(conn, metric.id, field.id).await?;
    }
    if !added.is_empty() {
        parts.push(format!(
            "added aliases {} to field {display:?} of metric {:?}",
            quoted_list(&added),
            metric.name
        ));
    }
    remove_field_aliases(conn, field, display, &update.remove_aliases).await?;
    if !update.remove_aliases.is_empty() {
        parts.push(format!(
            "removed aliases {} from field {display:?} of metric {:?}",
            quoted_list(&update.remove_aliases),
            metric.name
        ));
    }
    Ok(())
}

async fn remove_field_aliases(
    conn: &mut SqliteConnection,
    field: &FieldRef<'_>,
    display: &str,
    aliases: &[String],
) -> Result<(), CatalogError> {
    for alias in aliases {
        if *alias == display {
            return Err(CatalogError::Invalid(format!(
                "{alias:?} is the display name of the field; rename it before removing the name"
            )));
        }
        let removed = sqlx::query(
            "DELETE FROM metric_local_names WHERE metric_id = ? AND field_id = ? AND name = ?",
        )
        .bind(field.metric.id)
        .bind(field.id)
        .bind(alias)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!(
                "alias {alias:?} not found on field {display:?} of metric {:?}",
                field.metric.name
            )));
        }
    }
    Ok(())
}
