//! The alerting rows the catalog keeps: channels, rules, instance states, transition history,
//! the notification outbox and silences. Their JSON parts (a rule's definition, a channel's
//! configuration, a silence's matchers) belong to `strata-alerts`; the catalog checks names,
//! references and limits, and commits each evaluation's changes atomically.

use serde_json::Value;
use strata_core::TenantId;

/// Channels one tenant may define.
pub const MAX_CHANNELS_PER_TENANT: u64 = 100;
/// Rules one tenant may define: the benchmark's 1,000 query rules every second fit.
pub const MAX_RULES_PER_TENANT: u64 = 1_000;
/// Silences (active or not yet expired) one tenant may hold.
pub const MAX_SILENCES_PER_TENANT: u64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRow {
    pub tenant: TenantId,
    pub name: String,
    pub kind: String,
    /// Includes the webhook secret: never show it as is.
    pub config: Value,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub id: i64,
    pub tenant: TenantId,
    pub name: String,
    pub kind: String,
    pub definition: Value,
    /// Channel names in the order the rule gave them.
    pub channels: Vec<String>,
    pub created_at_ms: i64,
}

/// A rule to create; its channels must exist.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub name: String,
    pub kind: String,
    pub definition: Value,
    pub channels: Vec<String>,
}

/// One alert instance's persisted state.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub rule_id: i64,
    /// Canonical JSON object text (keys sorted), the instance's identity within its rule.
    pub labels: String,
    pub state: String,
    pub value: Option<f64>,
    pub state_since_ms: i64,
    pub active_since_ms: Option<i64>,
    pub last_active_ms: Option<i64>,
    /// When the current firing was last notified; `None` when it was not yet.
    pub notified_ms: Option<i64>,
    /// The notification due for this firing was silenced (recorded once, not sent).
    pub suppressed: bool,
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub tenant: TenantId,
    pub rule_name: String,
    pub labels: String,
    pub from_state: String,
    pub to_state: String,
    pub value: Option<f64>,
    pub time_ms: i64,
}

/// A notification to put in the outbox for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub id: String,
    pub channel: String,
    pub rule_name: String,
    /// `firing`, `resolved`.
    pub state: String,
    /// One entry of the `alerts` list: `{labels, value, state, time}`.
    pub alert: Value,
    pub created_ms: i64,
    /// With a group wait: instances of the same rule, channel and state joining before this
    /// time are added to this row instead of getting their own. Equal to `created_ms` without.
    pub group_until_ms: i64,
    /// `pending` or `silenced`.
    pub status: String,
}

/// Everything one evaluation of one rule changes, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AlertChanges {
    pub tenant: TenantId,
    pub rule_id: i64,
    /// Upserted by `(rule_id, labels)`.
    pub instances: Vec<InstanceRow>,
    /// Labels of instances to forget.
    pub removed: Vec<String>,
    pub history: Vec<HistoryRow>,
    pub notifications: Vec<NewNotification>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: String,
    pub channel: String,
    pub tenant: TenantId,
    pub rule_name: String,
    pub state: String,
    /// JSON array of `{labels, value, state, time}`.
    pub alerts: Value,
    pub created_ms: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub delivered_ms: Option<i64>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered { at_ms: i64 },
    Retry { next_attempt_ms: i64, error: String },
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRow {
    pub id: String,
    pub tenant: TenantId,
    /// JSON object of label name to exact value.
    pub matchers: Value,
    pub starts_ms: i64,
    pub until_ms: i64,
    pub comment: String,
    pub created_ms: i64,
}
