//! Merging one metric into another: the plan from [`crate::merge`] applied to the target's fields
//! and names, the merged metric's names moved to the target, and the merged metric marked.
//! No stored row or file changes: the target's table reads the merged metric's data in place.

use sqlx::sqlite::SqliteConnection;
use strata_core::TenantId;

use super::names::{insert_field, insert_local_name, resolve_metric};
use super::schema_load::load_schema;
use crate::merge::{plan_merge, FieldMerge, MergePlan};
use crate::validate::MAX_NAMES_PER_METRIC;
use crate::CatalogError;

pub(super) async fn merge_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    into_name: &str,
    from_name: &str,
) -> Result<String, CatalogError> {
    let into = resolve_metric(conn, tenant, into_name).await?;
    let from = resolve_metric(conn, tenant, from_name).await?;
    if into.id == from.id {
        return Err(CatalogError::Invalid(format!(
            "{from_name:?} is already a name of metric {:?}",
            into.name
        )));
    }
    let schema = load_schema(conn, tenant).await?;
    let (Some(target), Some(merged)) = (schema.metric_by_id(into.id), schema.metric_by_id(from.id))
    else {
        return Err(CatalogError::Internal(
            "a live metric is missing from its tenant's snapshot".to_string(),
        ));
    };
    let names = target.aliases.len() + merged.aliases.len() + 2;
    if names > MAX_NAMES_PER_METRIC {
        return Err(CatalogError::Invalid(format!(
            "metric {:?} would have {names} names; the limit is {MAX_NAMES_PER_METRIC}",
            into.name
        )));
    }
    let plan = plan_merge(target, merged)?;
    apply_plan(conn, into.id, &plan).await?;
    sqlx::query("UPDATE metric_names SET metric_id = ? WHERE metric_id = ? AND live = 1")
        .bind(into.id)
        .bind(from.id)
        .execute(&mut *conn)
        .await?;
    // Metrics merged into `from` earlier now belong to `into` directly: one level, no chains.
    sqlx::query("UPDATE metrics SET merged_into = ? WHERE id = ? OR merged_into = ?")
        .bind(into.id)
        .bind(from.id)
        .bind(from.id)
        .execute(&mut *conn)
        .await?;
    let mut text = format!(
        "merged metric {:?} into {:?}; {:?} is now its alias",
        from.name, into.name, from.name
    );
    let described = plan.describe();
    if !described.is_empty() {
        text.push_str("; ");
        text.push_str(&described);
    }
    Ok(text)
}

async fn apply_plan(
    conn: &mut SqliteConnection,
    into: strata_core::MetricId,
    plan: &MergePlan,
) -> Result<(), CatalogError> {
    for field in &plan.fields {
        match field {
            FieldMerge::Join {
                target, new_names, ..
            } => {
                for name in new_names {
                    insert_local_name(conn, into, Some(*target), name).await?;
                }
            }
            FieldMerge::Add {
                name,
                field_type,
                hidden,
                names,
                expression,
            } => {
                let id = insert_field(conn, into, name, *field_type, *hidden).await?;
                for alias in names.iter().filter(|n| *n != name) {
                    insert_local_name(conn, into, Some(id), alias).await?;
                }
                if expression.is_some() {
                    sqlx::query("UPDATE fields SET expression = ? WHERE id = ?")
                        .bind(expression)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
    }
    for alias in &plan.timestamp_aliases {
        insert_local_name(conn, into, None, alias).await?;
    }
    Ok(())
}
