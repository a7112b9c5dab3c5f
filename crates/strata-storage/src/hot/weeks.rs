//! Where each week's rows live, and dropping weeks: a week is placed once, on its first row (its
//! own keyspace when near the current week, else the shared archive keyspace, recorded in
//! `meta`), and durably before that row is acknowledged. Only the writer thread (and recovery,
//! before it starts) places or drops weeks.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use fjall::{KeyspaceCreateOptions, PersistMode};

use super::key;
use super::writer::{archive_week_key, archived_week_name, Shared, Week, DROPPED_BEFORE_KEY};
use crate::error::StorageError;

/// Decides where a week lives on first use (see the module docs), durably, before any row of it
/// is acknowledged: the flusher and WAL replay find each row's keyspace from its week. Only the
/// writer thread (and recovery, before it starts) calls this, so check-then-create cannot race.
pub(crate) fn ensure_week(
    shared: &Shared,
    week_start_ms: i64,
    now_ms: i64,
) -> Result<(), StorageError> {
    if shared
        .weeks
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&week_start_ms)
    {
        return Ok(());
    }
    let week = if shared.is_recent(week_start_ms, now_ms) {
        let name = key::week_keyspace_name(week_start_ms);
        debug_assert_eq!(key::parse_week_keyspace_name(&name), Some(week_start_ms));
        let keyspace = shared
            .db
            .keyspace(&name, KeyspaceCreateOptions::default)
            .map_err(|e| StorageError::engine("creating a weekly partition", e))?;
        tracing::info!(partition = %name, "created hot partition");
        Week {
            name,
            keyspace,
            archived: false,
        }
    } else {
        let mut batch = shared.db.batch();
        batch.insert(
            &shared.meta,
            archive_week_key(week_start_ms),
            b"".as_slice(),
        );
        batch
            .commit()
            .map_err(|e| StorageError::engine("recording an archived week", e))?;
        tracing::debug!(week_start_ms, "week assigned to the hot archive");
        Week {
            name: archived_week_name(week_start_ms),
            keyspace: shared.archive.clone(),
            archived: true,
        }
    };
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a new hot partition", e))?;
    remember_week(shared, week_start_ms, week);
    Ok(())
}

/// Records where a week's rows live, for every later row of that week and for readers.
pub(crate) fn remember_week(shared: &Shared, week_start_ms: i64, week: Week) {
    shared
        .weeks
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(week_start_ms, week);
}

/// Forgets an archived week after `HotStore::drop_partition` deleted its rows: a later row of
/// that week is assigned afresh (and, being old, goes to the archive again).
pub(crate) fn forget_archived_week(
    shared: &Shared,
    week_start_ms: i64,
) -> Result<(), StorageError> {
    let mut batch = shared.db.batch();
    batch.remove(&shared.meta, archive_week_key(week_start_ms));
    batch
        .commit()
        .map_err(|e| StorageError::engine("forgetting an archived week", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a dropped archived week", e))?;
    let mut weeks = shared.weeks.write().unwrap_or_else(PoisonError::into_inner);
    if weeks.get(&week_start_ms).is_some_and(|week| week.archived) {
        weeks.remove(&week_start_ms);
    }
    tracing::info!(
        partition = %archived_week_name(week_start_ms),
        "dropped archived hot week"
    );
    Ok(())
}

/// Durably raises the `dropped_before` mark (never lowers it): readers stop choosing the hot tier
/// below it.
pub(crate) fn record_dropped_before(shared: &Shared, end_ms: i64) -> Result<(), StorageError> {
    if end_ms <= shared.dropped_before.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut batch = shared.db.batch();
    batch.insert(
        &shared.meta,
        DROPPED_BEFORE_KEY,
        key::ordered_i64(end_ms).to_be_bytes().as_slice(),
    );
    batch
        .commit()
        .map_err(|e| StorageError::engine("recording retired partitions", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing retired partitions", e))?;
    shared.dropped_before.fetch_max(end_ms, Ordering::AcqRel);
    Ok(())
}

pub(crate) fn drop_week(shared: &Shared, week_start_ms: i64) -> Result<(), StorageError> {
    let removed = {
        let mut weeks = shared.weeks.write().unwrap_or_else(PoisonError::into_inner);
        if weeks.get(&week_start_ms).is_some_and(|week| week.archived) {
            // Archived weeks are dropped row by row (`HotStore::drop_partition`), never here.
            return Ok(());
        }
        weeks.remove(&week_start_ms)
    };
    let Some(week) = removed else {
        return Ok(());
    };
    // Recorded first: if the drop then fails, readers only avoid a hot range they could have used.
    record_dropped_before(shared, key::week_end_ms(week_start_ms))?;
    // Scans already running keep their handle; fjall deletes the files once they let go.
    if let Err(error) = shared.db.delete_keyspace(week.keyspace.clone()) {
        shared
            .weeks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(week_start_ms, week);
        return Err(StorageError::engine("dropping a weekly partition", error));
    }
    tracing::info!(partition = %week.name, "dropped hot partition");
    Ok(())
}
