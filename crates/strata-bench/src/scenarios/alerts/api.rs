//! The alert API calls the scenario makes (channels, rules, the rule list), the schema of its
//! metrics, and its writes; all over the HTTP contract with the tenant's admin key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_client::{ApiError, Client, StatusCode, WriteAnswer};

use crate::harness::Context;
use crate::scenarios::BenchTarget;
use crate::schema::{
    apply_schema, create_metric_op, declare_field_op, series_keys_op, SchemaSetupReport,
};
use crate::BenchError;

/// Every channel and rule the scenario creates is named with this prefix; leftovers of an
/// interrupted run against the same tenant are deleted before a run starts.
pub const NAME_PREFIX: &str = "bench_alerts_";
/// Concurrent requests when creating or deleting many rules.
const PARALLEL_REQUESTS: usize = 4;

/// The tenant's alert API and its writes.
pub(super) struct AlertApi {
    admin: Client,
    writer: Client,
    admin_key: String,
    write_key: String,
}

impl AlertApi {
    pub(super) fn new(target: &BenchTarget) -> Result<AlertApi, BenchError> {
        Ok(AlertApi {
            admin: Client::new(&target.base_url, Some(target.admin_key.clone()))?,
            writer: target.client()?,
            admin_key: target.admin_key.clone(),
            write_key: target.write_key.clone(),
        })
    }

    /// Declares `metric` with string `tags` (the first is its series key) and double `fields`.
    pub(super) fn declare_metric(
        &self,
        metric: &str,
        tags: &[&str],
        fields: &[&str],
    ) -> Result<SchemaSetupReport, BenchError> {
        let mut ops = vec![create_metric_op(metric)];
        ops.extend(
            tags.iter()
                .map(|t| declare_field_op(metric, t, "string", &[])),
        );
        ops.extend(
            fields
                .iter()
                .map(|f| declare_field_op(metric, f, "double", &[])),
        );
        if let Some(key) = tags.first() {
            ops.push(series_keys_op(metric, &[key]));
        }
        apply_schema(&self.writer, &self.admin_key, &ops)
    }

    /// A webhook channel to `url`.
    pub(super) fn create_webhook(&self, name: &str, url: &str) -> Result<(), BenchError> {
        let body = json!({"name": name, "kind": "webhook", "url": url, "timeout": "5s"});
        self.admin
            .post(&["api", "v1", "channels"], &body)
            .context(|| {
                format!(
                    "creating the webhook channel {name:?} to {url} (a server that refuses it \
                     must run with --allow-private-webhooks)"
                )
            })?;
        Ok(())
    }

    pub(super) fn create_rule(&self, rule: &Value) -> Result<(), BenchError> {
        self.admin
            .post(&["api", "v1", "alerts"], rule)
            .context(|| format!("creating the alert rule {}", rule["name"]))?;
        Ok(())
    }

    /// Creates every rule, a few at a time; the time it took.
    pub(super) fn create_rules(&self, rules: &[Value]) -> Result<Duration, BenchError> {
        let started = Instant::now();
        self.in_parallel(rules.len(), |i| self.create_rule(&rules[i]))?;
        Ok(started.elapsed())
    }

    /// Deletes the rules named, a few at a time; a rule already gone is fine.
    pub(super) fn delete_rules(&self, names: &[String]) -> Result<(), BenchError> {
        self.in_parallel(names.len(), |i| {
            ignore_not_found(self.admin.delete(&["api", "v1", "alerts", &names[i]]))
                .context(|| format!("deleting the alert rule {:?}", names[i]))
        })
    }

    pub(super) fn delete_channel(&self, name: &str) -> Result<(), BenchError> {
        ignore_not_found(self.admin.delete(&["api", "v1", "channels", name]))
            .context(|| format!("deleting the channel {name:?}"))
    }

    /// `GET /api/v1/alerts`: every rule with its status and instances.
    pub(super) fn list_rules(&self) -> Result<Vec<Value>, BenchError> {
        let answer = self
            .admin
            .get(&["api", "v1", "alerts"])
            .context(|| "listing the alert rules".to_string())?;
        match answer.get("alerts").and_then(Value::as_array) {
            Some(rules) => Ok(rules.clone()),
            None => Err(BenchError::Decode(format!(
                "GET /api/v1/alerts has no \"alerts\" list: {}",
                truncated(&answer.to_string())
            ))),
        }
    }

    /// Deletes the rules and channels an earlier, interrupted run left behind.
    pub(super) fn remove_leftovers(&self) -> Result<usize, BenchError> {
        let names: Vec<String> = self
            .list_rules()?
            .iter()
            .filter_map(|rule| rule["name"].as_str())
            .filter(|name| name.starts_with(NAME_PREFIX))
            .map(str::to_string)
            .collect();
        self.delete_rules(&names)?;
        let channels = self
            .admin
            .get(&["api", "v1", "channels"])
            .context(|| "listing the channels".to_string())?;
        let channels: Vec<&str> = channels["channels"]
            .as_array()
            .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        for channel in channels.iter().filter(|c| c.starts_with(NAME_PREFIX)) {
            self.delete_channel(channel)?;
        }
        Ok(names.len() + channels.len())
    }

    /// One durable write of NDJSON; every event must be accepted.
    pub(super) fn write(&self, ndjson: String) -> Result<WriteAnswer, BenchError> {
        let answer = self.writer.write_ndjson(&self.write_key, ndjson)?;
        if answer.rejected > 0 {
            return Err(BenchError::Check(format!(
                "{} events of an alert scenario's write were rejected: {:?}",
                answer.rejected,
                answer.errors.first()
            )));
        }
        Ok(answer)
    }

    /// Runs `call(0..count)` on a few threads; the first error stops the rest.
    fn in_parallel(
        &self,
        count: usize,
        call: impl Fn(usize) -> Result<(), BenchError> + Sync,
    ) -> Result<(), BenchError> {
        let next = AtomicUsize::new(0);
        let worker = || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= count {
                return Ok(());
            }
            if let Err(error) = call(i) {
                next.store(count, Ordering::SeqCst);
                return Err(error);
            }
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..PARALLEL_REQUESTS.min(count))
                .map(|_| scope.spawn(worker))
                .collect();
            for handle in workers {
                handle
                    .join()
                    .map_err(|_| BenchError::ThreadPanicked("alert API client"))??;
            }
            Ok(())
        })
    }
}

fn ignore_not_found(answer: Result<Value, ApiError>) -> Result<(), ApiError> {
    match answer {
        Ok(_) => Ok(()),
        Err(ApiError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(()),
        Err(error) => Err(error),
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(300).collect()
}
