//! Unknown-field statistics: accumulated in memory per request, merged only once the request's
//! data is durable (so they never count events that were not stored), and written to the
//! catalog in batches by [`crate::Writer::flush_stats`]. A crash loses at most one flush
//! interval of statistics, never data.

use strata_catalog::IncomingStatsDelta;
use strata_ingest::StatsDelta;

/// The catalog's form of a delta. The ingest crate sits below the catalog and cannot name its
/// type, so this is the one place the two meet.
pub(crate) fn to_catalog(delta: StatsDelta) -> IncomingStatsDelta {
    IncomingStatsDelta {
        metric: delta.metric,
        name: delta.name,
        count: delta.count,
        first_seen_ms: delta.first_seen_ms,
        last_seen_ms: delta.last_seen_ms,
        kinds: delta.kinds,
        samples: delta.samples,
    }
}
