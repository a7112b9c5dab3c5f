//! [`AlertService`]: the rules in memory, what the front doors call (channels, rules, silences,
//! tests, acknowledgements), and starting the three background jobs: the scheduler and the
//! committed-event consumer (`engine.rs`) and the outbox worker (`outbox.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};
use strata_catalog::alerting::{
    AlertChanges, ChannelRow, InstanceRow, NewRule, RuleRow, SilenceRow,
};
use strata_catalog::{AlertStore, SchemaRegistry};
use strata_core::{now_ms, TenantId};
use strata_query::QueryEngine;
use strata_write::EventStream;
use tokio::sync::{watch, Notify};

use crate::channel::{ChannelSpec, Offered};
use crate::deliver::{Message, Senders, SmsConfig, SmtpConfig};
use crate::engine::{self, Compiled};
use crate::error::{invalid, AlertError};
use crate::labels::{self, Labels};
use crate::rule::{RuleKind, RuleSpec};
use crate::silence::{self, rfc3339};
use crate::state::{Instance, FIRING, PENDING};

/// What `strata serve` tells the alerting jobs.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often schedules (query rules, absences, repeats, pending times) are checked.
    pub tick: Duration,
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    /// Let webhooks reach loopback and private addresses (tests, private networks).
    pub allow_private_webhooks: bool,
    /// Base of the links in notifications, such as `http://127.0.0.1:8686`.
    pub public_url: String,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            tick: Duration::from_millis(250),
            smtp: None,
            sms: None,
            allow_private_webhooks: false,
            public_url: "http://127.0.0.1:8686".to_string(),
        }
    }
}

/// The alerting engine of one node. Cheap to clone.
#[derive(Clone)]
pub struct AlertService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn AlertStore>,
    pub schemas: Arc<dyn SchemaRegistry>,
    /// The query engine, with one cached evaluation session per tenant.
    pub query: crate::evaluate::query::Sessions,
    pub senders: Senders,
    pub config: AlertConfig,
    pub rules: RwLock<BTreeMap<i64, Arc<Rule>>>,
    /// Every tenant's silences that have not ended, refreshed on each change.
    pub silences: RwLock<Vec<SilenceRow>>,
    pub outbox_wake: Notify,
    /// Event and absence rules register their tenant's interest here.
    pub stream: EventStream,
    pub stop: watch::Receiver<bool>,
    stop_sender: watch::Sender<bool>,
    /// When this process started: absence clocks restart here (the server was down, not the
    /// devices).
    pub started_ms: i64,
}

/// One rule in memory.
pub(crate) struct Rule {
    pub row: RuleRow,
    pub spec: RuleSpec,
    /// By canonical labels. Held across the catalog commit of an evaluation, so evaluations
    /// of one rule apply in order.
    pub instances: tokio::sync::Mutex<BTreeMap<String, Instance>>,
    pub status: Mutex<RuleStatus>,
    /// Event and absence rules: the compiled condition and columns for one schema snapshot.
    pub compiled: Mutex<Option<Arc<Compiled>>>,
    /// Absence rules: when each instance last showed life.
    pub seen: Mutex<HashMap<String, (Labels, i64)>>,
}

#[derive(Debug, Default)]
pub(crate) struct RuleStatus {
    pub error: Option<String>,
    pub last_evaluated_ms: Option<i64>,
    pub next_due_ms: i64,
    pub running: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh 128-bit id in hex: notification and silence ids.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl AlertService {
    /// Loads every rule, instance and silence, subscribes to `stream`, and starts the jobs.
    /// Subscribe before the doors accept writes, so no committed batch is missed.
    pub async fn start(
        store: Arc<dyn AlertStore>,
        schemas: Arc<dyn SchemaRegistry>,
        query: QueryEngine,
        stream: &EventStream,
        config: AlertConfig,
    ) -> Result<AlertService, AlertError> {
        let (stop_sender, stop) = watch::channel(false);
        let senders = Senders::new(
            config.smtp.clone(),
            config.sms.clone(),
            config.allow_private_webhooks,
        );
        let inner = Arc::new(Inner {
            store,
            schemas: schemas.clone(),
            query: crate::evaluate::query::Sessions::new(query, schemas),
            senders,
            config,
            rules: RwLock::new(BTreeMap::new()),
            silences: RwLock::new(Vec::new()),
            outbox_wake: Notify::new(),
            stream: stream.clone(),
            stop,
            stop_sender,
            started_ms: now_ms(),
        });
        let service = AlertService { inner };
        service.load().await?;
        // Read before subscribing: a lag then re-reads from here, so nothing falls between.
        let received_seq = stream.committed_seq();
        let events = stream.subscribe_interested();
        tokio::spawn(engine::consume(service.inner.clone(), events, received_seq));
        tokio::spawn(engine::schedule(service.inner.clone()));
        tokio::spawn(engine::dispatch_queries(service.inner.clone()));
        tokio::spawn(crate::outbox::deliver(service.inner.clone()));
        Ok(service)
    }

    /// Stops the background jobs (at shutdown). Outbox rows not yet sent stay for the next start.
    pub fn stop(&self) {
        let _ = self.inner.stop_sender.send(true);
    }

    async fn load(&self) -> Result<(), AlertError> {
        let store = &self.inner.store;
        let mut instances: HashMap<i64, Vec<InstanceRow>> = HashMap::new();
        for row in store.all_instances().await? {
            instances.entry(row.rule_id).or_default().push(row);
        }
        for row in store.all_rules().await? {
            let spec = match RuleSpec::parse(&row.definition) {
                Ok(spec) => spec,
                Err(error) => {
                    tracing::error!(rule = row.name, %error, "a stored alert rule does not parse; skipped");
                    continue;
                }
            };
            let rows = instances.remove(&row.id).unwrap_or_default();
            self.insert_rule(row, spec, rows, self.inner.started_ms);
        }
        self.refresh_silences().await
    }

    fn insert_rule(&self, row: RuleRow, spec: RuleSpec, rows: Vec<InstanceRow>, clock_ms: i64) {
        let mut instances = BTreeMap::new();
        let mut seen = HashMap::new();
        for instance_row in rows {
            let labels = labels::from_key(&instance_row.labels);
            let active = matches!(instance_row.state.as_str(), PENDING | FIRING);
            seen.insert(instance_row.labels.clone(), (labels.clone(), clock_ms));
            instances.insert(
                instance_row.labels.clone(),
                Instance {
                    labels,
                    row: instance_row,
                    active,
                    new: false,
                },
            );
        }
        if let RuleKind::Absence { by, .. } = &spec.kind {
            if by.is_empty() {
                seen.entry(labels::to_key(&Labels::new()))
                    .or_insert((Labels::new(), clock_ms));
            }
        } else {
            seen.clear();
        }
        if !matches!(spec.kind, RuleKind::Query { .. }) {
            self.inner.stream.add_interest(row.tenant);
        }
        let rule = Rule {
            row,
            spec,
            instances: tokio::sync::Mutex::new(instances),
            status: Mutex::new(RuleStatus::default()),
            compiled: Mutex::new(None),
            seen: Mutex::new(seen),
        };
        let mut rules = self
            .inner
            .rules
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rules.insert(rule.row.id, Arc::new(rule));
    }

    pub(crate) fn rule(&self, tenant: TenantId, name: &str) -> Result<Arc<Rule>, AlertError> {
        self.inner
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|r| r.row.tenant == tenant && r.row.name == name)
            .cloned()
            .ok_or_else(|| AlertError::NotFound(format!("no alert rule named {name:?}")))
    }

    fn tenant_rules(&self, tenant: TenantId) -> Vec<Arc<Rule>> {
        let rules = self
            .inner
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = rules
            .values()
            .filter(|r| r.row.tenant == tenant)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        out
    }

    // ---- channels ----

    pub async fn create_channel(
        &self,
        tenant: TenantId,
        body: &Value,
    ) -> Result<Value, AlertError> {
        let offered = Offered {
            email: self.inner.senders.offers_email(),
            sms: self.inner.senders.offers_sms(),
        };
        let (name, spec) = ChannelSpec::parse(body, offered)?;
        if let ChannelSpec::Webhook { url, .. } = &spec {
            if let Some(reason) =
                crate::guard::refusal(url, self.inner.config.allow_private_webhooks).await
            {
                return Err(invalid("url", reason));
            }
        }
        let row = ChannelRow {
            tenant,
            name,
            kind: spec.kind().to_string(),
            config: spec.to_config(),
            created_at_ms: now_ms(),
        };
        self.inner.store.create_channel(row.clone()).await?;
        Ok(spec.view(&row.name, &rfc3339(row.created_at_ms)))
    }

    pub async fn list_channels(&self, tenant: TenantId) -> Result<Value, AlertError> {
        let mut out = Vec::new();
        for row in self.inner.store.channels(tenant).await? {
            let spec = ChannelSpec::from_config(&row.kind, &row.config)?;
            out.push(spec.view(&row.name, &rfc3339(row.created_at_ms)));
        }
        Ok(json!({ "channels": out }))
    }

    pub async fn delete_channel(&self, tenant: TenantId, name: &str) -> Result<(), AlertError> {
        Ok(self.inner.store.delete_channel(tenant, name).await?)
    }

    /// Sends a test message now, outside the outbox; the error names the receiver's failure.
    pub async fn test_channel(&self, tenant: TenantId, name: &str) -> Result<(), AlertError> {
        let row = self
            .inner
            .store
            .channels(tenant)
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| AlertError::NotFound(format!("no channel named {name:?}")))?;
        let spec = ChannelSpec::from_config(&row.kind, &row.config)?;
        let message = Message {
            id: new_id(),
            alert: "test".to_string(),
            state: "test".to_string(),
            alerts: vec![
                json!({"labels": {"channel": name}, "value": null, "state": "test", "time": rfc3339(now_ms())}),
            ],
            link: format!("{}/api/v1/channels", self.inner.config.public_url),
        };
        self.inner
            .senders
            .send(&spec, &message)
            .await
            .map_err(AlertError::Delivery)
    }

    // ---- rules ----

    pub async fn create_rule(&self, tenant: TenantId, body: &Value) -> Result<Value, AlertError> {
        let spec = RuleSpec::parse(body)?;
        let name = spec.name.clone();
        engine::validate(&self.inner, tenant, &spec).await?;
        let new_rule = NewRule {
            name: spec.name.clone(),
            kind: spec.kind_name().to_string(),
            definition: spec.to_json(),
            channels: spec.channels.clone(),
        };
        let row = self.inner.store.create_rule(tenant, new_rule).await?;
        let clock_ms = row.created_at_ms;
        self.insert_rule(row, spec, Vec::new(), clock_ms);
        let rule = self.rule(tenant, &name)?;
        Ok(self.rule_view(&rule).await)
    }

    pub async fn list_rules(&self, tenant: TenantId) -> Value {
        let mut out = Vec::new();
        for rule in self.tenant_rules(tenant) {
            out.push(self.rule_view(&rule).await);
        }
        json!({ "alerts": out })
    }

    pub async fn show_rule(&self, tenant: TenantId, name: &str) -> Result<Value, AlertError> {
        let rule = self.rule(tenant, name)?;
        Ok(self.rule_view(&rule).await)
    }

    pub async fn delete_rule(&self, tenant: TenantId, name: &str) -> Result<(), AlertError> {
        let rule = self.rule(tenant, name)?;
        self.inner.store.delete_rule(tenant, name).await?;
        let mut rules = self
            .inner
            .rules
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if rules.remove(&rule.row.id).is_some() && !matches!(rule.spec.kind, RuleKind::Query { .. })
        {
            self.inner.stream.remove_interest(tenant);
        }
        Ok(())
    }

    /// Evaluates the rule now: what would be active, with nothing notified or changed.
    pub async fn test_rule(&self, tenant: TenantId, name: &str) -> Result<Value, AlertError> {
        let rule = self.rule(tenant, name)?;
        let observations = engine::dry_run(&self.inner, &rule)
            .await
            .map_err(|e| invalid("sql", e))?;
        let instances: Vec<Value> = observations
            .iter()
            .map(|o| json!({"labels": engine::with_static(&rule, &o.labels), "value": o.value, "active": o.active}))
            .collect();
        Ok(json!({ "alert": name, "instances": instances }))
    }

    /// Acknowledges the firing instances whose labels include every pair of `matchers`.
    pub async fn acknowledge(
        &self,
        tenant: TenantId,
        name: &str,
        matchers: &Labels,
    ) -> Result<usize, AlertError> {
        let rule = self.rule(tenant, name)?;
        let mut instances = rule.instances.lock().await;
        let mut changes = AlertChanges {
            tenant,
            rule_id: rule.row.id,
            ..AlertChanges::default()
        };
        for instance in instances.values() {
            let matched = matchers
                .iter()
                .all(|(k, v)| instance.labels.get(k) == Some(v));
            if matched && instance.row.state == FIRING && !instance.row.acknowledged {
                let mut row = instance.row.clone();
                row.acknowledged = true;
                changes.instances.push(row);
            }
        }
        let count = changes.instances.len();
        if count > 0 {
            self.inner
                .store
                .commit_alert_changes(changes.clone())
                .await?;
            for row in changes.instances {
                if let Some(instance) = instances.get_mut(&row.labels) {
                    instance.row = row;
                }
            }
        }
        Ok(count)
    }

    async fn rule_view(&self, rule: &Rule) -> Value {
        let mut view = rule.spec.to_json();
        let (error, evaluated) = {
            let status = lock(&rule.status);
            (status.error.clone(), status.last_evaluated_ms)
        };
        let instances: Vec<Value> = rule
            .instances
            .lock()
            .await
            .values()
            .map(|i| {
                json!({
                    "labels": engine::with_static(rule, &i.labels),
                    "state": i.row.state,
                    "value": i.row.value,
                    "state_since": rfc3339(i.row.state_since_ms),
                    "active_since": i.row.active_since_ms.map(rfc3339),
                    "acknowledged": i.row.acknowledged,
                })
            })
            .collect();
        view["created_at"] = json!(rfc3339(rule.row.created_at_ms));
        view["health"] = json!(if error.is_some() { "error" } else { "ok" });
        view["last_error"] = json!(error);
        view["last_evaluated_at"] = json!(evaluated.map(rfc3339));
        view["instances"] = json!(instances);
        view
    }

    // ---- silences ----

    pub async fn create_silence(
        &self,
        tenant: TenantId,
        body: &Value,
    ) -> Result<Value, AlertError> {
        let now = now_ms();
        let row = silence::parse(tenant, body, now)?;
        self.inner.store.create_silence(row.clone()).await?;
        self.refresh_silences().await?;
        Ok(silence::view(&row, now))
    }

    pub async fn list_silences(&self, tenant: TenantId) -> Result<Value, AlertError> {
        let now = now_ms();
        let rows = self.inner.store.silences(tenant).await?;
        Ok(json!({ "silences": rows.iter().map(|r| silence::view(r, now)).collect::<Vec<_>>() }))
    }

    pub async fn delete_silence(&self, tenant: TenantId, id: &str) -> Result<(), AlertError> {
        self.inner.store.delete_silence(tenant, id).await?;
        self.refresh_silences().await
    }

    async fn refresh_silences(&self) -> Result<(), AlertError> {
        let live = self.inner.store.live_silences(now_ms()).await?;
        *self
            .inner
            .silences
            .write()
            .unwrap_or_else(PoisonError::into_inner) = live;
        Ok(())
    }
}

impl Inner {
    /// The tenant's silences that have not ended.
    pub(crate) fn silences_of(&self, tenant: TenantId) -> Vec<SilenceRow> {
        let silences = self.silences.read().unwrap_or_else(PoisonError::into_inner);
        silences
            .iter()
            .filter(|s| s.tenant == tenant)
            .cloned()
            .collect()
    }

    pub(crate) fn rules_snapshot(&self) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
