//! Evaluation: the scheduler (query rules when due; absences, pending times and repeats every
//! tick), the consumer of the committed-event stream (event rules, absence liveness), and
//! [`apply`], which turns observations into state changes and notifications, commits them to
//! the catalog in one transaction, and only then changes memory.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use serde_json::json;
use strata_catalog::alerting::{AlertChanges, HistoryRow, NewNotification};
use strata_catalog::{CatalogError, TenantSchema};
use strata_core::{now_ms, MetricId, TenantId};
use strata_format::model::MetricModel;
use strata_storage::HotEvent;
use strata_write::CommittedBatch;
use tokio::sync::broadcast;

use crate::catch_up;
use crate::error::{invalid, AlertError};
use crate::evaluate::batch::{self, ExpressionShape, LabelColumns};
use crate::evaluate::condition::Condition;
use crate::evaluate::{query, Observation};
use crate::labels::{self, Labels};
use crate::rule::{NoData, RuleKind, RuleSpec};
use crate::service::{lock, new_id, Inner, Rule};
use crate::silence::{rfc3339, silenced};
use crate::state::{is_marker, Instance, Notice, Step, ERROR, FIRING, NODATA, NORMAL, PENDING};

/// Query rules evaluated at once; more wait for the next tick.
const CONCURRENT_QUERY_RULES: usize = 8;
/// How far back `/test` of an event rule looks.
const EVENT_TEST_WINDOW: &str = "5 minutes";

/// An event or absence rule's compiled parts for one schema snapshot.
pub(crate) struct Compiled {
    /// The snapshot compiled against; recompiled when the catalog hands out another (any
    /// schema change or new incoming name).
    snapshot: Arc<TenantSchema>,
    pub(crate) metric: MetricId,
    model: MetricModel,
    /// The model's derived fields, computed into each batch the rule reads.
    derived: strata_query::derived::DerivedColumns,
    shape: ExpressionShape,
    condition: Option<Condition>,
    labels: LabelColumns,
    /// Event rules: the value column; absence rules: the watched field.
    column: Option<usize>,
    /// Shape columns the condition reads.
    condition_columns: Vec<usize>,
    /// Shape columns the rule reads in all (condition, labels, value or field).
    read_columns: Vec<usize>,
}

/// How observations apply to a rule's instances.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Event rules: each observation moves its instance on its own, in order.
    Sequential,
    /// Query and absence rules: the observations are the whole truth; an unobserved instance is
    /// inactive, and with `forget` an unobserved normal one is dropped.
    Complete { forget: bool },
}

/// The instance's labels plus the rule's static labels, as notified and shown.
pub(crate) fn with_static(rule: &Rule, labels: &Labels) -> Labels {
    let mut out = rule.spec.labels.clone();
    out.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The checks that need the schema or the planner; errors are 400s naming the key.
pub(crate) async fn validate(
    inner: &Inner,
    tenant: TenantId,
    spec: &RuleSpec,
) -> Result<(), AlertError> {
    match &spec.kind {
        RuleKind::Query { sql, condition, .. } => {
            query::validate(inner.query.engine(), tenant, sql, condition.as_deref()).await
        }
        RuleKind::Event { .. } | RuleKind::Absence { .. } => {
            let snapshot = inner.schemas.schema(tenant).await?;
            compile(&snapshot, spec).map(|_| ())
        }
    }
}

/// Compiles an event or absence rule against a schema snapshot.
fn compile(snapshot: &Arc<TenantSchema>, spec: &RuleSpec) -> Result<Compiled, AlertError> {
    let (metric_name, by, condition, column) = match &spec.kind {
        RuleKind::Event {
            metric,
            condition,
            by,
            value,
        } => (
            metric,
            by.clone(),
            Some(condition),
            value.as_ref().map(|v| ("value", v)),
        ),
        RuleKind::Absence {
            metric, by, field, ..
        } => (
            metric,
            Some(by.clone()),
            None,
            field.as_ref().map(|f| ("field", f)),
        ),
        RuleKind::Query { .. } => {
            return Err(AlertError::Internal(
                "query rules compile in their session".into(),
            ))
        }
    };
    let metric = snapshot.metric(metric_name).ok_or_else(|| {
        invalid("metric", format!("no metric named {metric_name:?}; metrics are created by their first event or POST /api/v1/schema/metrics"))
    })?;
    let mut model = MetricModel::from_catalog(metric);
    let derived = strata_query::derived::prepare(&mut model);
    let shape = ExpressionShape::of(&model);
    let find = |key: &str, name: &str| {
        shape.column(name).ok_or_else(|| {
            invalid(
                key,
                format!("metric {metric_name:?} has no field named {name:?}"),
            )
        })
    };
    let labels: LabelColumns = match by {
        Some(names) => names
            .iter()
            .map(|n| Ok((n.clone(), find("by", n)?)))
            .collect::<Result<_, AlertError>>()?,
        None => model
            .series_key_columns
            .iter()
            .map(|&i| (model.columns[i].name.clone(), i + 1))
            .collect(),
    };
    let column = column.map(|(key, name)| find(key, name)).transpose()?;
    let condition = condition
        .map(|sql| {
            Condition::compile(sql, shape.schema.clone()).map_err(|e| invalid("condition", e))
        })
        .transpose()?;
    // A derived field is computed from stored ones, which must then be built too (both batches
    // compute every derived field).
    let derived_inputs: Vec<usize> = derived.inputs(&model).iter().map(|at| at + 1).collect();
    let mut condition_columns = condition.as_ref().map_or(Vec::new(), Condition::columns);
    condition_columns.extend(&derived_inputs);
    let mut read_columns = condition_columns.clone();
    read_columns.extend(labels.iter().map(|(_, at)| *at));
    read_columns.extend(column);
    Ok(Compiled {
        snapshot: snapshot.clone(),
        metric: metric.id,
        model,
        derived,
        shape,
        condition,
        labels,
        column,
        condition_columns,
        read_columns,
    })
}

/// The rule's compiled parts for `snapshot`, compiling on a schema change. `None` when the
/// rule no longer compiles (its metric or field was deleted): it then sees no data.
pub(crate) fn compiled_for(rule: &Rule, snapshot: &Arc<TenantSchema>) -> Option<Arc<Compiled>> {
    let mut slot = lock(&rule.compiled);
    if let Some(compiled) = slot.as_ref().filter(|c| Arc::ptr_eq(&c.snapshot, snapshot)) {
        return Some(compiled.clone());
    }
    match compile(snapshot, &rule.spec) {
        Ok(compiled) => {
            let compiled = Arc::new(compiled);
            *slot = Some(compiled.clone());
            lock(&rule.status).error = None;
            Some(compiled)
        }
        Err(error) => {
            lock(&rule.status).error = Some(error.to_string());
            *slot = None;
            None
        }
    }
}

// ---- the committed-event stream ----

/// Reads every committed batch until shutdown and feeds event and absence rules. After a lag
/// (the stream dropped batches this consumer was too slow for), the rows it missed are re-read
/// from the hot tier before the next batch, so no event rule misses an event (test
/// `it alerts::a_lagging_alert_consumer_re_reads_what_the_stream_dropped`).
pub(crate) async fn consume(
    inner: Arc<Inner>,
    mut events: broadcast::Receiver<Arc<CommittedBatch>>,
    // Every row at or below this was received (or committed before this consumer started).
    mut received_seq: u64,
) {
    let mut stop = inner.stop.clone();
    let mut lagged = false;
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = stop.changed() => return,
        };
        match received {
            Ok(batch) => {
                if std::mem::take(&mut lagged) {
                    catch_up::missed(&inner, received_seq, batch.first_seq).await;
                }
                received_seq = received_seq.max(batch.first_seq + batch.rows.len() as u64 - 1);
                on_batch(&inner, batch.tenant, &batch.rows).await;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "alert rules fell behind the committed-event stream; re-reading the rows"
                );
                lagged = true;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Feeds one tenant's committed rows to its event and absence rules.
pub(crate) async fn on_batch(inner: &Inner, tenant: TenantId, committed: &[HotEvent]) {
    let rules: Vec<Arc<Rule>> = inner
        .rules_snapshot()
        .into_iter()
        .filter(|r| r.row.tenant == tenant && !matches!(r.spec.kind, RuleKind::Query { .. }))
        .collect();
    if rules.is_empty() {
        return;
    }
    let Ok(snapshot) = inner.schemas.schema(tenant).await else {
        tracing::error!("alert rules could not read the tenant schema for a committed batch");
        return;
    };
    let mut rows_of: HashMap<MetricId, Vec<&HotEvent>> = HashMap::new();
    for row in committed {
        rows_of.entry(row.metric).or_default().push(row);
    }
    let compiled: Vec<(Arc<Rule>, Arc<Compiled>)> = rules
        .into_iter()
        .filter_map(|rule| compiled_for(&rule, &snapshot).map(|c| (rule, c)))
        .filter(|(_, c)| rows_of.contains_key(&c.metric))
        .collect();
    let mut metrics: HashMap<MetricId, MetricRows> = HashMap::new();
    for (_, c) in &compiled {
        let metric = metrics.entry(c.metric).or_insert_with(|| MetricRows {
            rows: rows_of.remove(&c.metric).unwrap_or_default(),
            ..MetricRows::default()
        });
        metric.condition_columns.extend(&c.condition_columns);
        metric.read_columns.extend(&c.read_columns);
    }
    let now = now_ms();
    for (rule, compiled) in compiled {
        let Some(metric) = metrics.get_mut(&compiled.metric) else {
            continue;
        };
        match &compiled.condition {
            Some(condition) => on_event_rule(inner, &rule, &compiled, condition, metric, now).await,
            None => on_absence_rule(&rule, &compiled, metric, now),
        }
    }
}

/// One metric's rows of a committed batch, built into Arrow at most twice and shared by every
/// rule on the metric (they compiled against one snapshot, so their shapes agree): once with
/// only the columns conditions read, and once with every column some rule reads, for rules
/// that matched or have instances. On the ingest path most batches match nothing, so labels
/// are usually never built.
#[derive(Default)]
struct MetricRows<'a> {
    rows: Vec<&'a HotEvent>,
    condition_columns: Vec<usize>,
    read_columns: Vec<usize>,
    narrow: Option<Option<RecordBatch>>,
    wide: Option<Option<RecordBatch>>,
}

impl MetricRows<'_> {
    fn narrow(&mut self, compiled: &Compiled) -> Option<RecordBatch> {
        let (rows, columns) = (&self.rows, &self.condition_columns);
        self.narrow
            .get_or_insert_with(|| build(compiled, rows, columns))
            .clone()
    }

    fn wide(&mut self, compiled: &Compiled) -> Option<RecordBatch> {
        let (rows, columns) = (&self.rows, &self.read_columns);
        self.wide
            .get_or_insert_with(|| build(compiled, rows, columns))
            .clone()
    }
}

fn build(compiled: &Compiled, rows: &[&HotEvent], columns: &[usize]) -> Option<RecordBatch> {
    compiled
        .shape
        .batch(&compiled.model, &compiled.derived, rows, columns)
        .inspect_err(|error| tracing::error!(%error, "building a committed batch for alert rules"))
        .ok()
}

async fn on_event_rule(
    inner: &Inner,
    rule: &Rule,
    compiled: &Compiled,
    condition: &Condition,
    metric: &mut MetricRows<'_>,
    now: i64,
) {
    let Some(narrow) = metric.narrow(compiled) else {
        return;
    };
    let matched = match condition.evaluate(&narrow) {
        Ok(matched) => matched,
        Err(error) => {
            lock(&rule.status).error = Some(error);
            return;
        }
    };
    // No match and no instance: nothing can change.
    if matched.count() == 0 && !has_instances(rule) {
        return;
    }
    let Some(wide) = metric.wide(compiled) else {
        return;
    };
    let observations =
        batch::event_observations(&wide, &matched, &compiled.labels, compiled.column);
    apply(inner, rule, observations, Mode::Sequential, now).await;
}

fn on_absence_rule(rule: &Rule, compiled: &Compiled, metric: &mut MetricRows<'_>, now: i64) {
    let Some(wide) = metric.wide(compiled) else {
        return;
    };
    let (present, alive) = batch::presence(&wide, &compiled.labels, compiled.column);
    let mut seen = lock(&rule.seen);
    // A new series' clock starts when it is first seen, with or without the field.
    for labels in present {
        seen.entry(labels::to_key(&labels)).or_insert((labels, now));
    }
    for labels in alive {
        seen.insert(labels::to_key(&labels), (labels, now));
    }
}

// ---- the scheduler ----

/// Every tick: evaluates absences, and moves pending times and repeats of every rule along
/// (query rules are started by [`dispatch_queries`]).
pub(crate) async fn schedule(inner: Arc<Inner>) {
    let mut stop = inner.stop.clone();
    let mut ticker = tokio::time::interval(inner.config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        for rule in inner.rules_snapshot() {
            match &rule.spec.kind {
                // Between evaluations (which `dispatch_queries` starts), pending times and
                // repeats still move on.
                RuleKind::Query { .. } if !lock(&rule.status).running && time_matters(&rule) => {
                    let (inner, rule) = (inner.clone(), rule.clone());
                    tokio::spawn(async move {
                        apply(&inner, &rule, Vec::new(), Mode::Sequential, now_ms()).await
                    });
                }
                RuleKind::Query { .. } => {}
                RuleKind::Absence { silence_ms, .. } => {
                    let observations = absences(&rule, *silence_ms, now);
                    apply(
                        &inner,
                        &rule,
                        observations,
                        Mode::Complete { forget: false },
                        now,
                    )
                    .await;
                }
                RuleKind::Event { .. } if time_matters(&rule) => {
                    apply(&inner, &rule, Vec::new(), Mode::Sequential, now).await
                }
                RuleKind::Event { .. } => {}
            }
        }
    }
}

/// Starts query rules as they fall due, as many at once as there are evaluation slots, the
/// most overdue first. A slot that frees up takes the next due rule at once: starting rules
/// only on the scheduler's tick capped evaluations at 8 per 250 ms tick, 32 a second, and
/// 1,000 rules every second lagged by 30 s (`strata bench alerts`).
pub(crate) async fn dispatch_queries(inner: Arc<Inner>) {
    let mut stop = inner.stop.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_QUERY_RULES));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let now = now_ms();
        let (due, next_due_ms) = due_query_rules(&inner, now);
        if due.is_empty() {
            drop(permit);
            // Nothing due: sleep until the next rule is, but look again at least every tick
            // (a rule created meanwhile is due at once).
            let wait_ms = next_due_ms
                .map_or(i64::MAX, |due| due - now)
                .clamp(1, 1_000);
            let wait = std::time::Duration::from_millis(wait_ms as u64).min(inner.config.tick);
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = stop.changed() => return,
            }
        }
        let mut permit = Some(permit);
        for rule in due {
            let Some(slot) = permit
                .take()
                .or_else(|| permits.clone().try_acquire_owned().ok())
            else {
                break;
            };
            start_query(&inner, rule, slot, now);
        }
    }
}

/// Query rules due at `now` and not running, most overdue first, and when the earliest of the
/// others falls due.
fn due_query_rules(inner: &Inner, now: i64) -> (Vec<Arc<Rule>>, Option<i64>) {
    let mut due = Vec::new();
    let mut next_due_ms: Option<i64> = None;
    for rule in inner.rules_snapshot() {
        if !matches!(rule.spec.kind, RuleKind::Query { .. }) {
            continue;
        }
        let status = lock(&rule.status);
        if status.running {
            continue;
        }
        if status.next_due_ms <= now {
            let at = status.next_due_ms;
            drop(status);
            due.push((at, rule));
        } else {
            next_due_ms =
                Some(next_due_ms.map_or(status.next_due_ms, |n| n.min(status.next_due_ms)));
        }
    }
    due.sort_by_key(|(at, _)| *at);
    (due.into_iter().map(|(_, rule)| rule).collect(), next_due_ms)
}

fn start_query(
    inner: &Arc<Inner>,
    rule: Arc<Rule>,
    permit: tokio::sync::OwnedSemaphorePermit,
    now: i64,
) {
    let RuleKind::Query { every_ms, .. } = rule.spec.kind else {
        return;
    };
    {
        let mut status = lock(&rule.status);
        status.running = true;
        status.next_due_ms = now + every_ms;
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        evaluate_query(&inner, &rule).await;
        lock(&rule.status).running = false;
        drop(permit);
    });
}

/// Whether the rule has an instance, so an event batch without a match may still change one.
/// A rule being applied right now counts as having one.
fn has_instances(rule: &Rule) -> bool {
    rule.instances.try_lock().map_or(true, |i| !i.is_empty())
}

/// Whether time alone can change the rule's instances: only pending (`for`) and firing
/// (`keep_firing_for`, repeats, silences ending) instances move without an observation.
fn time_matters(rule: &Rule) -> bool {
    rule.instances.try_lock().is_ok_and(|instances| {
        instances
            .values()
            .any(|i| matches!(i.row.state.as_str(), PENDING | FIRING))
    })
}

async fn evaluate_query(inner: &Inner, rule: &Rule) {
    let RuleKind::Query {
        sql,
        condition,
        no_data,
        ..
    } = &rule.spec.kind
    else {
        return;
    };
    let result = query::run(&inner.query, rule.row.tenant, sql, condition.as_deref()).await;
    let now = now_ms();
    {
        let mut status = lock(&rule.status);
        status.last_evaluated_ms = Some(now);
        status.error = result.as_ref().err().cloned();
    }
    match result {
        Ok(observations) if observations.is_empty() => match no_data {
            NoData::KeepLast => {}
            NoData::Resolve => {
                apply(
                    inner,
                    rule,
                    Vec::new(),
                    Mode::Complete { forget: true },
                    now,
                )
                .await
            }
            NoData::Fire => {
                let fire = vec![Observation {
                    labels: Labels::new(),
                    active: true,
                    value: None,
                }];
                apply(inner, rule, fire, Mode::Complete { forget: true }, now).await;
            }
            NoData::Mark => enter_no_data(inner, rule, now).await,
        },
        Ok(observations) => {
            apply(
                inner,
                rule,
                observations,
                Mode::Complete { forget: true },
                now,
            )
            .await
        }
        Err(error) => {
            tracing::debug!(rule = rule.row.name, error, "alert query failed");
            mark(inner, rule, ERROR, now).await;
        }
    }
}

/// Absence observations: each known instance is active once silent for `silence_ms`.
fn absences(rule: &Rule, silence_ms: i64, now: i64) -> Vec<Observation> {
    lock(&rule.seen)
        .values()
        .map(|(labels, last_ms)| {
            let silent_ms = now.saturating_sub(*last_ms);
            Observation {
                labels: labels.clone(),
                active: silent_ms >= silence_ms,
                value: Some(silent_ms as f64 / 1000.0),
            }
        })
        .collect()
}

/// What `/test` shows: the rule evaluated now, nothing applied.
pub(crate) async fn dry_run(inner: &Inner, rule: &Rule) -> Result<Vec<Observation>, String> {
    let tenant = rule.row.tenant;
    match &rule.spec.kind {
        RuleKind::Query { sql, condition, .. } => {
            query::run(&inner.query, tenant, sql, condition.as_deref()).await
        }
        RuleKind::Absence { silence_ms, .. } => Ok(absences(rule, *silence_ms, now_ms())),
        RuleKind::Event { metric, .. } => {
            let snapshot = inner
                .schemas
                .schema(tenant)
                .await
                .map_err(|e| e.to_string())?;
            let compiled = compile(&snapshot, &rule.spec).map_err(|e| e.to_string())?;
            let sql = format!(
                "SELECT * FROM \"{}\" WHERE timestamp > now() - INTERVAL '{EVENT_TEST_WINDOW}'",
                metric.replace('"', "\"\"")
            );
            let session = inner
                .query
                .engine()
                .session(tenant)
                .await
                .map_err(|e| e.to_string())?
                .for_door(strata_core::telemetry::door::ALERTS);
            let batches = session
                .execute(&sql)
                .await
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let Some(first) = batches.first() else {
                return Ok(Vec::new());
            };
            let base = datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
                .map_err(|e| e.to_string())?;
            let batch = compiled.shape.extend(base)?;
            let condition = compiled
                .condition
                .as_ref()
                .ok_or("an event rule has a condition")?;
            let matched = condition.evaluate(&batch)?;
            let observations =
                batch::event_observations(&batch, &matched, &compiled.labels, compiled.column);
            // Each instance as of its latest event, with the value of its last match.
            let mut latest: std::collections::BTreeMap<Labels, Observation> = Default::default();
            for observation in observations {
                let earlier = latest.get(&observation.labels).and_then(|o| o.value);
                let value = observation.value.or(earlier);
                latest.insert(
                    observation.labels.clone(),
                    Observation {
                        value,
                        ..observation
                    },
                );
            }
            Ok(latest.into_values().collect())
        }
    }
}

// ---- applying observations ----

/// An empty answer under `no_data: nodata`: the other instances resolve, and the rule-level
/// instance `{}` shows `nodata` (recorded in the history, not notified).
async fn enter_no_data(inner: &Inner, rule: &Rule, now: i64) {
    if marked(rule, NODATA).await {
        return;
    }
    apply(
        inner,
        rule,
        Vec::new(),
        Mode::Complete { forget: true },
        now,
    )
    .await;
    mark(inner, rule, NODATA, now).await;
}

/// Whether the rule-level instance `{}` already shows `state`.
async fn marked(rule: &Rule, state: &str) -> bool {
    let key = labels::to_key(&Labels::new());
    rule.instances
        .lock()
        .await
        .get(&key)
        .is_some_and(|i| i.row.state == state)
}

/// Puts the rule-level instance `{}` in a marker state (`nodata`, `error`): visible in
/// `GET /api/v1/alerts`, `strata.alerts` and the history, never notified. The next evaluation
/// with rows clears it (see [`apply`]).
async fn mark(inner: &Inner, rule: &Rule, state: &str, now: i64) {
    let mut instances = rule.instances.lock().await;
    let key = labels::to_key(&Labels::new());
    let mut instance = instances
        .get(&key)
        .cloned()
        .unwrap_or_else(|| Instance::new(rule.row.id, Labels::new(), now));
    if instance.row.state == state {
        return;
    }
    let from = std::mem::replace(&mut instance.row.state, state.to_string());
    instance.row.state_since_ms = now;
    let changes = AlertChanges {
        tenant: rule.row.tenant,
        rule_id: rule.row.id,
        instances: vec![instance.row.clone()],
        history: vec![history(rule, &instance, from, state.to_string(), now)],
        ..AlertChanges::default()
    };
    if commit(inner, rule, changes).await {
        instance.new = false;
        instances.insert(key, instance);
    }
}

/// Applies observations to the rule's instances at `now`, commits what changed with the
/// notifications it calls for, then updates memory. Nothing changes in memory if the commit
/// fails; the next evaluation tries again.
async fn apply(inner: &Inner, rule: &Rule, observations: Vec<Observation>, mode: Mode, now: i64) {
    let mut instances = rule.instances.lock().await;
    let mut work = instances.clone();
    let silences = inner.silences_of(rule.row.tenant);
    let mut changes = AlertChanges {
        tenant: rule.row.tenant,
        rule_id: rule.row.id,
        ..AlertChanges::default()
    };
    let mut notices: Vec<(Labels, Option<f64>, Notice)> = Vec::new();
    let mut observed: HashMap<String, bool> = HashMap::new();
    for observation in observations {
        let key = labels::to_key(&observation.labels);
        // An event rule's instance exists once it matched: events that do not match create none.
        if mode == Mode::Sequential && !observation.active && !work.contains_key(&key) {
            continue;
        }
        let instance = work
            .entry(key.clone())
            .or_insert_with(|| Instance::new(rule.row.id, observation.labels.clone(), now));
        instance.observe(observation.active, observation.value, now);
        if mode == Mode::Sequential {
            let step = advance(rule, instance, now, &silences);
            record(rule, instance, step, now, &mut changes, &mut notices);
        }
        observed.insert(key, true);
    }
    let mut forgotten = Vec::new();
    for (key, instance) in work.iter_mut() {
        let seen_now = observed.contains_key(key);
        if let Mode::Complete { forget } = mode {
            if !seen_now && is_marker(&instance.row.state) {
                // An answer with rows ends `nodata` and `error`.
                let from = std::mem::replace(&mut instance.row.state, NORMAL.to_string());
                changes
                    .history
                    .push(history(rule, instance, from, NORMAL.to_string(), now));
                forgotten.push(key.clone());
                continue;
            }
            if !seen_now {
                instance.observe(false, None, now);
            }
            if forget && !seen_now && instance.row.state == NORMAL {
                forgotten.push(key.clone());
                continue;
            }
        }
        if mode == Mode::Sequential && seen_now {
            continue;
        }
        let step = advance(rule, instance, now, &silences);
        record(rule, instance, step, now, &mut changes, &mut notices);
    }
    for key in &forgotten {
        work.remove(key);
    }
    changes.removed = forgotten;
    changes.notifications = notifications(rule, notices, now);
    let wake = !changes.notifications.is_empty();
    if changes.instances.is_empty()
        && changes.removed.is_empty()
        && changes.history.is_empty()
        && !wake
    {
        *instances = work;
        return;
    }
    if commit(inner, rule, changes).await {
        *instances = work;
        if wake {
            inner.outbox_wake.notify_one();
        }
    }
}

fn advance(
    rule: &Rule,
    instance: &mut Instance,
    now: i64,
    silences: &[strata_catalog::alerting::SilenceRow],
) -> Step {
    let shown = with_static(rule, &instance.labels);
    let is_silenced = silenced(silences, &rule.row.name, &shown, now);
    instance.advance(now, &rule.spec.timing, is_silenced)
}

fn record(
    rule: &Rule,
    instance: &mut Instance,
    step: Step,
    now: i64,
    changes: &mut AlertChanges,
    notices: &mut Vec<(Labels, Option<f64>, Notice)>,
) {
    if let Some((from, to)) = step.transition {
        changes.history.push(history(rule, instance, from, to, now));
    }
    if let Some(notice) = step.notice {
        notices.push((
            with_static(rule, &instance.labels),
            instance.row.value,
            notice,
        ));
    }
    if step.changed {
        changes
            .instances
            .retain(|row| row.labels != instance.row.labels);
        changes.instances.push(instance.row.clone());
        instance.new = false;
    }
}

fn history(rule: &Rule, instance: &Instance, from: String, to: String, now: i64) -> HistoryRow {
    HistoryRow {
        tenant: rule.row.tenant,
        rule_name: rule.row.name.clone(),
        labels: labels::to_key(&with_static(rule, &instance.labels)),
        from_state: from,
        to_state: to,
        value: instance.row.value,
        time_ms: now,
    }
}

/// One outbox row per notice and channel; the channels of one notice share its id.
fn notifications(
    rule: &Rule,
    notices: Vec<(Labels, Option<f64>, Notice)>,
    now: i64,
) -> Vec<NewNotification> {
    let mut out = Vec::new();
    for (labels, value, notice) in notices {
        let id = new_id();
        let alert =
            json!({"labels": labels, "value": value, "state": notice.state, "time": rfc3339(now)});
        for channel in &rule.row.channels {
            out.push(NewNotification {
                id: id.clone(),
                channel: channel.clone(),
                rule_name: rule.row.name.clone(),
                state: notice.state.to_string(),
                alert: alert.clone(),
                created_ms: now,
                group_until_ms: now + rule.spec.timing.group_wait_ms,
                status: if notice.silenced {
                    "silenced"
                } else {
                    "pending"
                }
                .to_string(),
            });
        }
    }
    out
}

async fn commit(inner: &Inner, rule: &Rule, changes: AlertChanges) -> bool {
    match inner.store.commit_alert_changes(changes).await {
        Ok(()) => true,
        // Deleted while evaluated: nothing to keep.
        Err(CatalogError::NotFound(_)) => false,
        Err(error) => {
            tracing::error!(rule = rule.row.name, %error, "could not commit alert state changes; retrying at the next evaluation");
            false
        }
    }
}
