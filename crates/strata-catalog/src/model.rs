use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use strata_core::{FieldId, FieldType, JsonKind, MetricId, NameId, Role, TenantId, TimestampUnit};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A key as it may be shown: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: TenantId,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly created key. `secret` is shown once; the catalog keeps only its hash.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub info: KeyInfo,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    /// Keys that name an event's metric, first present wins.
    pub metric_keys: Vec<String>,
    /// chrono strftime patterns tried on timestamp text after the built-in formats.
    pub timestamp_patterns: Vec<String>,
    /// Cold day partitions older than this many days are deleted; `None` keeps them forever.
    pub cold_retention_days: Option<u32>,
    /// MQTT topic templates (`plant/{site}/{metric}/{device}`), tried in order; empty means
    /// [`strata_core::topic::DEFAULT_TOPIC_TEMPLATES`] (issue 19).
    pub mqtt_topics: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            metric_keys: vec![crate::DEFAULT_METRIC_KEY.to_string()],
            timestamp_patterns: Vec::new(),
            cold_retention_days: None,
            mqtt_topics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaVersion {
    pub version: i64,
    pub at: DateTime<Utc>,
    pub change: String,
}

/// A tenant's live schema at one version.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSchema {
    pub tenant: TenantId,
    /// The latest history version (0 when there is none).
    pub version: i64,
    /// Live (not deleted) metrics, by id.
    pub metrics: Vec<Arc<Metric>>,
    /// Days of cold data the tenant keeps (`None`: forever). Part of the snapshot so the query
    /// planner applies the retention floor without a settings read per scan; settings updates
    /// invalidate the cached snapshot like schema changes do.
    pub cold_retention_days: Option<u32>,
}

impl TenantSchema {
    /// Exact, case-sensitive match on a metric's display name or one of its aliases. A merged
    /// metric's names belong to the metric it was merged into, so it is never the answer.
    pub fn metric(&self, name_or_alias: &str) -> Option<&Arc<Metric>> {
        self.tables()
            .find(|m| m.name == name_or_alias || m.aliases.iter().any(|a| a == name_or_alias))
    }

    /// The metrics that are tables: every live metric not merged into another.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Metric>> {
        self.metrics.iter().filter(|m| m.merged_into.is_none())
    }

    /// The metrics merged into `target`, whose data its table reads besides its own.
    pub fn merged_into(&self, target: MetricId) -> impl Iterator<Item = &Arc<Metric>> {
        self.metrics
            .iter()
            .filter(move |m| m.merged_into == Some(target))
    }

    /// The metric whose table reads `metric`'s data: the metric itself, or the one it was merged
    /// into.
    pub fn table_of(&self, metric: MetricId) -> Option<&Arc<Metric>> {
        let found = self.metric_by_id(metric)?;
        match found.merged_into {
            Some(target) => self.metric_by_id(target),
            None => Some(found),
        }
    }

    pub fn metric_by_id(&self, id: MetricId) -> Option<&Arc<Metric>> {
        self.metrics.iter().find(|m| m.id == id)
    }

    /// The retention that applies to `metric`'s raw data: the shorter of the tenant's cold
    /// retention and the metric's own (`None`: kept forever). Rollups keep their buckets below
    /// it, which is what makes a short raw retention plus a long rollup work.
    pub fn retention_days_of(&self, metric: &Metric) -> Option<u32> {
        let tenant = self.cold_retention_days.filter(|days| *days > 0);
        match (tenant, metric.retention_days.filter(|days| *days > 0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub id: MetricId,
    pub name: String,
    /// Aliases in the order they were added (old display names included).
    pub aliases: Vec<String>,
    /// Keys that carry the event time for this metric besides `timestamp`.
    pub timestamp_aliases: Vec<String>,
    pub timestamp_patterns: Vec<String>,
    /// Ordered; field ids, so they survive renames.
    pub series_keys: Vec<FieldId>,
    /// Whether every stored row's series hash comes from the current series keys and their
    /// names. False once the keys (or a key field's names) changed after data was written: a
    /// seek by series could then miss older rows, so readers must scan instead.
    pub series_hashes_exact: bool,
    /// Bumped by every change to the series keys or a key field's names; cold files record the
    /// generation their series hashes were computed under.
    pub series_generation: i64,
    pub fields: Vec<Field>,
    /// Every key devices sent for this metric, by id.
    pub incoming: Vec<IncomingName>,
    pub created_at: DateTime<Utc>,
    /// The metric's own retention in days (`None`: the tenant's cold retention alone); see
    /// [`TenantSchema::retention_days_of`].
    pub retention_days: Option<u32>,
    /// How numeric timestamps of this metric's events are read (milliseconds by default).
    /// Left out of the serialized form while it is the default, so a rollup's fingerprint of an
    /// existing metric (its serialized definition) did not change when the setting was added.
    #[serde(skip_serializing_if = "TimestampUnit::is_default")]
    pub timestamp_unit: TimestampUnit,
    /// The metric this one was merged into (`POST .../metrics/{a}/merge`): its rows, files and
    /// incoming names stay its own, but its names belong to that metric, whose table reads both.
    /// A merged metric is no table of its own: [`TenantSchema::metric`] and
    /// [`TenantSchema::tables`] skip it, while compaction and retention still cover its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<MetricId>,
}

impl Metric {
    /// The field whose display name or alias is `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.names.iter().any(|n| n == name))
    }

    pub fn field_by_id(&self, id: FieldId) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    pub fn incoming(&self, name: &str) -> Option<&IncomingName> {
        self.incoming.iter().find(|i| i.name == name)
    }

    /// Incoming names that no declared field claims (the unknown fields). Timestamp aliases
    /// are excluded too: they carry the event time, not a field.
    pub fn unknown_incoming(&self) -> impl Iterator<Item = &IncomingName> {
        // A set, so a metric with many fields and many incoming names stays linear.
        let claimed: HashSet<&str> = self
            .fields
            .iter()
            .flat_map(|f| f.names.iter())
            .chain(self.timestamp_aliases.iter())
            .map(String::as_str)
            .collect();
        self.incoming
            .iter()
            .filter(move |i| !claimed.contains(i.name.as_str()))
    }

    /// The series-key fields in series-key order.
    pub fn series_key_fields(&self) -> Vec<&Field> {
        self.series_keys
            .iter()
            .filter_map(|id| self.field_by_id(*id))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub id: FieldId,
    /// The display name.
    pub name: String,
    /// `None` = unknown: reads as a string.
    pub field_type: Option<FieldType>,
    /// Every name in precedence order: the name it was declared under first, then the others in
    /// the order they joined. Includes the display name.
    pub names: Vec<String>,
    pub hidden: bool,
    /// When the field was last hidden (epoch ms); `None` while visible. The compactor purges a
    /// field's data once it has been hidden for the purge delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_since_ms: Option<i64>,
    /// A derived field: the SQL expression over other fields it is computed from on read. Such a
    /// field reads no incoming name of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Per name of the field, the SQL expression over that name's values it is converted by on
    /// read (`tempF` -> `(tempF - 32) * 5 / 9`); names without one read as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conversions: BTreeMap<String, String>,
}

impl Field {
    /// The names other than the display name, in precedence order.
    pub fn aliases(&self) -> Vec<&str> {
        self.names
            .iter()
            .filter(|n| **n != self.name)
            .map(String::as_str)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncomingName {
    pub id: NameId,
    pub name: String,
    pub count: u64,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub kinds: Vec<JsonKind>,
    /// Up to [`crate::MAX_INCOMING_SAMPLES`] distinct values, the first ones seen.
    pub samples: Vec<String>,
}

/// What ingest observed for one incoming name since its last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingStatsDelta {
    pub metric: MetricId,
    pub name: NameId,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// [`JsonKind::bit`] values or-ed together.
    pub kinds: u8,
    pub samples: Vec<String>,
}
