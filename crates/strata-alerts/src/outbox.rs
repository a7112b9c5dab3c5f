//! The outbox worker: sends every pending notification the catalog holds, marks it delivered
//! on a 2xx (or an accepted mail), and otherwise retries with exponential backoff (1 s, 2 s,
//! 4 s ... at most 30 s) across restarts until it is delivered or a day old (DESIGN.md
//! invariant 8). A crash between a send and its mark sends it again with the same id.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use strata_catalog::alerting::{DeliveryOutcome, NotificationRow};
use strata_core::now_ms;

use crate::channel::ChannelSpec;
use crate::deliver::Message;
use crate::service::Inner;

/// Deliveries read and sent per round; sent concurrently.
const BATCH: u32 = 32;
/// Longest wait between retries of one delivery.
const MAX_BACKOFF_MS: i64 = 30_000;
/// A delivery still failing after a day is given up (status `failed`).
const GIVE_UP_AFTER_MS: i64 = 86_400_000;
/// Longest sleep between rounds when nothing wakes the worker (new rows wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(250);

pub(crate) async fn deliver(inner: Arc<Inner>) {
    let mut stop = inner.stop.clone();
    // The first round after a start retries everything pending at once: a restart is a natural
    // retry point, and receivers may have come back meanwhile.
    let mut first_round = true;
    loop {
        let due_by_ms = if first_round { i64::MAX } else { now_ms() };
        first_round = false;
        let due = match inner.store.due_notifications(due_by_ms, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "reading the notification outbox");
                Vec::new()
            }
        };
        let full = due.len() == BATCH as usize;
        // Rows of one rule and channel go out one after another, in order; groups in parallel.
        let mut groups: Vec<Vec<&NotificationRow>> = Vec::new();
        for row in &due {
            match groups.iter_mut().find(|g| {
                g[0].tenant == row.tenant
                    && g[0].rule_name == row.rule_name
                    && g[0].channel == row.channel
            }) {
                Some(group) => group.push(row),
                None => groups.push(vec![row]),
            }
        }
        let sent = join_all(groups.iter().map(|group| deliver_group(&inner, group))).await;
        // A delivery may have unblocked the next transition of its rule: go again at once.
        if full || sent.into_iter().any(|delivered| delivered) {
            continue;
        }
        tokio::select! {
            _ = inner.outbox_wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends the group's rows in order, stopping at the first failure (the rest keep their order
/// for the next round). True if any was delivered.
async fn deliver_group(inner: &Inner, group: &[&NotificationRow]) -> bool {
    let mut delivered = false;
    for row in group {
        if !deliver_one(inner, row).await {
            break;
        }
        delivered = true;
    }
    delivered
}

async fn deliver_one(inner: &Inner, row: &NotificationRow) -> bool {
    let outcome = match send(inner, row).await {
        Ok(()) => DeliveryOutcome::Delivered { at_ms: now_ms() },
        Err(error) => retry_or_give_up(row, error),
    };
    if let DeliveryOutcome::Failed { error } = &outcome {
        tracing::warn!(
            id = row.id,
            channel = row.channel,
            error,
            "giving up a notification"
        );
    }
    let delivered = matches!(outcome, DeliveryOutcome::Delivered { .. });
    if let Err(error) = inner
        .store
        .finish_delivery(&row.id, &row.channel, outcome)
        .await
    {
        // It stays pending and is sent again; receivers de-duplicate on the id.
        tracing::error!(%error, id = row.id, "could not record a delivery");
        return false;
    }
    delivered
}

async fn send(inner: &Inner, row: &NotificationRow) -> Result<(), String> {
    let channels = inner
        .store
        .channels(row.tenant)
        .await
        .map_err(|e| e.to_string())?;
    let channel = channels
        .into_iter()
        .find(|c| c.name == row.channel)
        .ok_or_else(|| format!("channel {:?} was deleted", row.channel))?;
    let spec =
        ChannelSpec::from_config(&channel.kind, &channel.config).map_err(|e| e.to_string())?;
    let message = Message {
        id: row.id.clone(),
        alert: row.rule_name.clone(),
        state: row.state.clone(),
        alerts: row
            .alerts
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![Value::Null]),
        link: format!(
            "{}/api/v1/alerts/{}",
            inner.config.public_url, row.rule_name
        ),
    };
    inner.senders.send(&spec, &message).await
}

fn retry_or_give_up(row: &NotificationRow, error: String) -> DeliveryOutcome {
    let now = now_ms();
    if now.saturating_sub(row.created_ms) >= GIVE_UP_AFTER_MS || error.contains("was deleted") {
        return DeliveryOutcome::Failed { error };
    }
    let exponent = u32::try_from(row.attempts.clamp(0, 20)).unwrap_or(20);
    let backoff_ms = 1_000i64
        .saturating_mul(1i64 << exponent)
        .min(MAX_BACKOFF_MS);
    DeliveryOutcome::Retry {
        next_attempt_ms: now + backoff_ms,
        error,
    }
}
