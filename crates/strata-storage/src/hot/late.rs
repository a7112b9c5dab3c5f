//! The late index's thresholds and pruning (see `Shared::late`): a metric's late threshold is
//! raised by compaction through the writer thread, and late-index rows the cold tier holds are
//! pruned there too.

use std::sync::PoisonError;

use fjall::PersistMode;
use strata_core::{MetricId, TenantId};

use super::codec;
use super::key;
use super::writer::{late_threshold_key, Shared};
use crate::error::StorageError;

pub(crate) fn raise_late_threshold(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
    threshold_ms: i64,
) -> Result<(), StorageError> {
    let current = shared
        .late_thresholds
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(tenant, metric))
        .copied();
    if current.is_some_and(|current| current >= threshold_ms) {
        return Ok(());
    }
    // Durable before it takes effect: after a crash the threshold must still cover every row
    // written under it, or a late row could end up neither in the cold tier nor in the index.
    let mut batch = shared.db.batch();
    batch.insert(
        &shared.meta,
        late_threshold_key(tenant, metric).as_slice(),
        key::ordered_i64(threshold_ms).to_be_bytes().as_slice(),
    );
    batch
        .commit()
        .map_err(|e| StorageError::engine("recording a late threshold", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a late threshold", e))?;
    shared
        .late_thresholds
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((tenant, metric), threshold_ms);
    Ok(())
}

pub(crate) fn prune_late(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
    upto_seq: u64,
) -> Result<usize, StorageError> {
    let mut prefix = [0u8; 16];
    prefix[0..8].copy_from_slice(&key::ordered_i64(tenant.0).to_be_bytes());
    prefix[8..16].copy_from_slice(&key::ordered_i64(metric.0).to_be_bytes());
    let mut batch = shared.db.batch();
    let mut removed = 0;
    for guard in shared.late.prefix(prefix) {
        let (row_key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("reading the late index", e))?;
        if codec::ValueReader::new(&value)?.seq() <= upto_seq {
            batch.remove(&shared.late, row_key);
            removed += 1;
        }
    }
    if removed > 0 {
        batch
            .commit()
            .map_err(|e| StorageError::engine("pruning the late index", e))?;
    }
    Ok(removed)
}

pub(crate) fn forget_late_threshold(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
) -> Result<(), StorageError> {
    let mut batch = shared.db.batch();
    batch.remove(&shared.meta, late_threshold_key(tenant, metric));
    batch
        .commit()
        .map_err(|e| StorageError::engine("forgetting a late threshold", e))?;
    shared
        .late_thresholds
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(tenant, metric));
    Ok(())
}
