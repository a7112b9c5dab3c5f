//! The advisor the doors call: the tenant's suggestions now (schema, stored profiles, query
//! usage, minus dismissals), applying one as a schema change, dismissing one for good.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use strata_catalog::{
    DynCatalog, Metric, ProfileStore, SchemaChange, SchemaRegistry, SchemaVersion,
};
use strata_core::{now_ms, MetricId, TenantId};
use strata_ingest::MetricProfile;
use strata_query::QueryUsage;

use crate::{suggest_metric, AdvisorError, Change, Suggestion, DEFAULT_STALE_DAYS};

/// The two catalog roles the advisor uses.
#[derive(Clone)]
pub struct AdvisorCatalog {
    pub schemas: Arc<dyn SchemaRegistry>,
    pub profiles: Arc<dyn ProfileStore>,
}

impl From<DynCatalog> for AdvisorCatalog {
    fn from(catalog: DynCatalog) -> Self {
        AdvisorCatalog {
            schemas: catalog.clone(),
            profiles: catalog,
        }
    }
}

/// Request options of `GET /api/v1/schema/suggestions`.
#[derive(Debug, Clone, Copy)]
pub struct SuggestOptions {
    /// Days without a value after which a field is suggested hidden.
    pub stale_after_days: u32,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions {
            stale_after_days: DEFAULT_STALE_DAYS,
        }
    }
}

/// A suggestion applied: what it was and the schema version it made.
#[derive(Debug, Clone)]
pub struct Applied {
    pub suggestion: Suggestion,
    pub version: SchemaVersion,
}

pub struct Advisor {
    catalog: AdvisorCatalog,
    usage: Arc<QueryUsage>,
}

impl Advisor {
    pub fn new(catalog: impl Into<AdvisorCatalog>, usage: Arc<QueryUsage>) -> Self {
        Advisor {
            catalog: catalog.into(),
            usage,
        }
    }

    /// The tenant's current suggestions, surest first, without the dismissed ones.
    pub async fn suggestions(
        &self,
        tenant: TenantId,
        options: SuggestOptions,
    ) -> Result<Vec<Suggestion>, AdvisorError> {
        let schema = self.catalog.schemas.schema(tenant).await?;
        let profiles = self.profiles(tenant).await?;
        let dismissed: HashSet<String> = self
            .catalog
            .profiles
            .dismissed_suggestions(tenant)
            .await?
            .into_iter()
            .collect();
        let usage = self.usage.snapshot(tenant);
        let stale_after_ms = i64::from(options.stale_after_days.max(1)) * 86_400_000;
        let now = now_ms();
        let mut suggestions: Vec<Suggestion> = schema
            .tables()
            .flat_map(|metric| {
                let profile = profiles.get(&metric.id);
                suggest_metric(metric, profile, &usage, now, stale_after_ms)
            })
            .chain(crate::merges::suggest(
                schema.tables().map(|metric| metric.as_ref()),
                &profiles,
            ))
            .filter(|suggestion| !dismissed.contains(&suggestion.id))
            .collect();
        suggestions.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(suggestions)
    }

    /// Stored profiles by metric; one that does not decode is skipped (and rebuilt by ingest).
    async fn profiles(
        &self,
        tenant: TenantId,
    ) -> Result<HashMap<MetricId, MetricProfile>, AdvisorError> {
        let stored = self.catalog.profiles.metric_profiles(tenant).await?;
        Ok(stored
            .into_iter()
            .filter_map(|(metric, text)| match MetricProfile::decode(&text) {
                Ok(profile) => Some((metric, profile)),
                Err(err) => {
                    tracing::warn!(%metric, "a stored profile does not decode: {err}");
                    None
                }
            })
            .collect())
    }

    /// Applies the current suggestion `id` through the versioned schema path.
    pub async fn apply(
        &self,
        tenant: TenantId,
        id: &str,
        options: SuggestOptions,
    ) -> Result<Applied, AdvisorError> {
        let suggestion = self.find(tenant, id, options).await?;
        let schema = self.catalog.schemas.schema(tenant).await?;
        let metric = schema
            .metric_by_id(suggestion.metric_id)
            .ok_or_else(|| AdvisorError::NotFound(id.to_string()))?;
        let change = schema_change(metric, &suggestion.change);
        let version = self.catalog.schemas.apply(tenant, change).await?;
        Ok(Applied {
            suggestion,
            version,
        })
    }

    /// Dismisses the current suggestion `id` for good.
    pub async fn dismiss(
        &self,
        tenant: TenantId,
        id: &str,
        options: SuggestOptions,
    ) -> Result<Suggestion, AdvisorError> {
        let suggestion = self.find(tenant, id, options).await?;
        self.catalog.profiles.dismiss_suggestion(tenant, id).await?;
        Ok(suggestion)
    }

    async fn find(
        &self,
        tenant: TenantId,
        id: &str,
        options: SuggestOptions,
    ) -> Result<Suggestion, AdvisorError> {
        self.suggestions(tenant, options)
            .await?
            .into_iter()
            .find(|suggestion| suggestion.id == id)
            .ok_or_else(|| AdvisorError::NotFound(id.to_string()))
    }
}

/// The schema change of a suggestion: an update of a declared field, or the declaration of an
/// unknown one (which keeps every value it holds: data is never rewritten).
fn schema_change(metric: &Metric, change: &Change) -> SchemaChange {
    let (field, field_type, alias, hidden) = match change {
        Change::SetType { field, field_type } => (field, Some(*field_type), None, None),
        Change::AddAlias { field, alias } => (field, None, Some(alias.clone()), None),
        Change::Hide { field } => (field, None, None, Some(true)),
        Change::MergeMetric { from } => {
            return SchemaChange::MergeMetric {
                metric: metric.name.clone(),
                from: from.clone(),
            }
        }
    };
    let metric_name = metric.name.clone();
    if metric.field(field).is_some() {
        return SchemaChange::UpdateField {
            metric: metric_name,
            field: field.clone(),
            rename_to: None,
            field_type,
            add_aliases: alias.into_iter().collect(),
            remove_aliases: Vec::new(),
            hidden,
        };
    }
    SchemaChange::DeclareField {
        metric: metric_name,
        field: field.clone(),
        field_type,
        aliases: alias.into_iter().collect(),
        hidden: hidden.unwrap_or(false),
        expression: None,
        conversions: Default::default(),
    }
}
