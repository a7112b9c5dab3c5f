//! What a reader of the cold tier needs: a handle on the store ([`ColdAccess`]) and the day
//! below which a tenant's cold retention hides data ([`retention_floor_ms`]). The query engine
//! takes both from here; the jobs use the same floor, so queries and retention agree.

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectStore;
use strata_core::DAY_MS;

/// Where sessions find the cold store; not reachable from SQL (URL tables are off).
pub const COLD_STORE_URL: &str = "strata-cold://tier";

/// What a query session needs to read cold files.
#[derive(Debug, Clone)]
pub struct ColdAccess {
    pub store: Arc<dyn ObjectStore>,
    pub url: ObjectStoreUrl,
}

impl ColdAccess {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        ColdAccess {
            store,
            // A constant that parses; a failure here is a programming error caught by tests.
            url: ObjectStoreUrl::parse(COLD_STORE_URL)
                .unwrap_or_else(|_| ObjectStoreUrl::local_filesystem()),
        }
    }
}

/// The start of the oldest UTC day a tenant's cold retention keeps, or `None` when it keeps
/// everything. The compactor retires files of days before it, and federated scans do not read
/// below it, so expired days disappear from queries at once and on both tiers.
pub fn retention_floor_ms(now_ms: i64, retention_days: Option<u32>) -> Option<i64> {
    let days = i64::from(retention_days.filter(|d| *d > 0)?);
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    Some(today.saturating_sub(days.saturating_mul(DAY_MS)))
}
