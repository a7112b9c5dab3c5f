//! Error-log retention: a byte cap per tenant and an age cap, oldest records first.
//!
//! Records are keyed `tenant | time_ms | seq`, so a tenant's oldest records are the start of its
//! key range and both caps delete a prefix of it. Only the writer thread runs this: trimming is
//! ordered with the writes that grow the log, and needs no lock. Deletions are not fsync'd on
//! their own; the next group commit's fsync covers them, and a crash merely repeats the trim.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use strata_core::now_ms;

use fjall::{Database, Keyspace, PersistMode};
use strata_core::TenantId;

use super::key::{self, error_key, ERROR_KEY_LEN};
use super::HotOptions;
use crate::error::StorageError;

/// Records deleted per batch, bounding the memory of one batch.
const DELETE_BATCH: usize = 10_000;

/// Per-tenant error-log sizes and the age sweep's schedule.
pub(crate) struct ErrorLogBudget {
    cap_bytes: u64,
    max_age_ms: i64,
    /// Tenant -> bytes its records take (keys and values). A tenant is measured with one scan of
    /// its range when it first adds records after the store opened; kept current after that.
    bytes: HashMap<TenantId, u64>,
    last_sweep: Option<Instant>,
}

impl ErrorLogBudget {
    /// How often records past the age cap are swept from every tenant's log: often enough that
    /// a 30-day cap is kept within the hour, rarely enough to cost nothing.
    pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

    pub fn new(options: &HotOptions) -> Self {
        ErrorLogBudget {
            cap_bytes: options.error_log_tenant_bytes,
            max_age_ms: i64::try_from(options.error_log_max_age.as_millis()).unwrap_or(i64::MAX),
            bytes: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Accounts for `added` bytes of records just committed for `tenant`, then trims its log to
    /// the caps. A failure is logged, never returned: the write it follows is already durable.
    pub fn added(&mut self, db: &Database, errors: &Keyspace, tenant: TenantId, added: u64) {
        let total = match self.bytes.get_mut(&tenant) {
            Some(total) => {
                *total = total.saturating_add(added);
                *total
            }
            None => match measure(errors, tenant) {
                Ok(total) => *self.bytes.entry(tenant).or_insert(total),
                Err(error) => {
                    tracing::error!(tenant = %tenant, %error, "cannot measure the error log");
                    return;
                }
            },
        };
        if total <= self.cap_bytes {
            return;
        }
        let floor = now_ms().saturating_sub(self.max_age_ms);
        let excess = total - self.cap_bytes;
        match trim(db, errors, tenant, floor, excess) {
            Ok(removed) => {
                if let Some(total) = self.bytes.get_mut(&tenant) {
                    *total = total.saturating_sub(removed);
                }
            }
            Err(error) => tracing::error!(tenant = %tenant, %error, "cannot trim the error log"),
        }
    }

    /// Deletes every tenant's records older than the age cap, at most once per
    /// [`Self::SWEEP_EVERY`] (and once right after the store opens).
    pub fn sweep_if_due(&mut self, db: &Database, errors: &Keyspace) {
        if self
            .last_sweep
            .is_some_and(|last| last.elapsed() < Self::SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let floor = now_ms().saturating_sub(self.max_age_ms);
        let mut tenant_start = [0u8; 8];
        loop {
            let first = errors.range(tenant_start..).next();
            let Some(guard) = first else { break };
            let tenant = match guard.key() {
                Ok(record_key) if record_key.len() == ERROR_KEY_LEN => {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(&record_key[0..8]);
                    TenantId(key::unordered_i64(u64::from_be_bytes(word)))
                }
                Ok(_) | Err(_) => {
                    tracing::error!("unreadable error-log key; age sweep stopped");
                    break;
                }
            };
            match trim(db, errors, tenant, floor, 0) {
                Ok(removed) => {
                    if let Some(total) = self.bytes.get_mut(&tenant) {
                        *total = total.saturating_sub(removed);
                    }
                }
                Err(error) => {
                    tracing::error!(tenant = %tenant, %error, "error-log age sweep failed")
                }
            }
            // The next tenant's records start at the next tenant prefix.
            match key::ordered_i64(tenant.0).checked_add(1) {
                Some(next) => tenant_start = next.to_be_bytes(),
                None => break,
            }
        }
    }
}

/// Bytes a tenant's records take (keys and values).
fn measure(errors: &Keyspace, tenant: TenantId) -> Result<u64, StorageError> {
    let mut total = 0u64;
    for guard in errors.prefix(key::ordered_i64(tenant.0).to_be_bytes()) {
        let (record_key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("measuring the error log", e))?;
        total = total.saturating_add((record_key.len() + value.len()) as u64);
    }
    Ok(total)
}

/// Deletes a tenant's oldest records: every one older than `floor_ms`, then more until at least
/// `excess` bytes are gone. Returns the bytes removed.
fn trim(
    db: &Database,
    errors: &Keyspace,
    tenant: TenantId,
    floor_ms: i64,
    excess: u64,
) -> Result<u64, StorageError> {
    let start = error_key(tenant, i64::MIN, 0);
    let end = error_key(tenant, i64::MAX, u64::MAX);
    let mut removed_bytes = 0u64;
    let mut removed = 0usize;
    let mut batch = db.batch();
    let mut in_batch = 0usize;
    for guard in errors.range(start..=end) {
        let (record_key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("reading the error log", e))?;
        let old = record_key.len() == ERROR_KEY_LEN && record_time(&record_key) < floor_ms;
        if !old && removed_bytes >= excess {
            break;
        }
        removed_bytes = removed_bytes.saturating_add((record_key.len() + value.len()) as u64);
        batch.remove(errors, record_key);
        removed += 1;
        in_batch += 1;
        if in_batch == DELETE_BATCH {
            batch
                .commit()
                .map_err(|e| StorageError::engine("trimming the error log", e))?;
            batch = db.batch();
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        batch
            .commit()
            .map_err(|e| StorageError::engine("trimming the error log", e))?;
    }
    if removed > 0 {
        db.persist(PersistMode::Buffer)
            .map_err(|e| StorageError::engine("trimming the error log", e))?;
        tracing::info!(
            tenant = %tenant,
            records = removed,
            bytes = removed_bytes,
            "error log trimmed"
        );
    }
    Ok(removed_bytes)
}

fn record_time(record_key: &[u8]) -> i64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&record_key[8..16]);
    key::unordered_i64(u64::from_be_bytes(word))
}
