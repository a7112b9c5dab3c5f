//! The source rows the catalog keeps (issue 19): which external queue or broker a tenant's
//! events are consumed from. The configuration's JSON belongs to `strata-sources`, which checks
//! it; the catalog stores it, scopes it by tenant and bounds how many a tenant may have.

use serde_json::Value;
use strata_core::TenantId;

/// Sources one tenant may define: each is a running consumer with its own connection.
pub const MAX_SOURCES_PER_TENANT: u64 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Random, unguessable, unique across tenants (16 hex digits).
    pub id: String,
    pub tenant: TenantId,
    /// `nats`, `mqtt`.
    pub kind: String,
    /// May hold a broker password: never show it as is.
    pub config: Value,
    pub created_at_ms: i64,
}
