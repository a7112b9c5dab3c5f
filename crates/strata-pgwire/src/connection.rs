//! One authenticated connection: its tenant, its session (one schema snapshot for the
//! connection's life), its cancel signal, its cursors and the key it logged in with.

use std::sync::Arc;

use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;
use strata_catalog::{CatalogError, Tenant, TenantDirectory};
use strata_core::Role;
use strata_query::TenantSession;

use crate::cancel::{CancelRegistration, CancelSignal};
use crate::cursor::Cursors;
use crate::errors::{pg_error, PROTOCOL_VIOLATION};
use crate::limits::SessionSlot;

/// One authenticated connection: its tenant's session and its cancel signal. Stored in the
/// pgwire client's session extensions, so it lives exactly as long as the connection.
pub struct Connection {
    pub tenant: Tenant,
    /// Built once at login from one read of the tenant's schema: describing and executing a
    /// statement see the same tables and aliases for the connection's life.
    pub session: TenantSession,
    pub cancel: Arc<CancelSignal>,
    /// Open SQL cursors (`DECLARE`/`FETCH`/`CLOSE`); dropped with the connection.
    pub cursors: Cursors,
    credentials: Credentials,
    _registration: CancelRegistration,
    _slot: SessionSlot,
}

/// The key a session logged in with, checked again before each statement so that revoking it
/// ends the session ([`crate::socket`]).
pub(crate) struct Credentials {
    pub(crate) catalog: Arc<dyn TenantDirectory>,
    pub(crate) key_id: String,
    /// The key itself: the catalog answers by secret, from its in-memory cache of valid keys,
    /// which a revocation clears. Kept only in this connection's memory.
    pub(crate) secret: String,
}

impl Connection {
    pub(crate) fn new(
        tenant: Tenant,
        session: TenantSession,
        credentials: Credentials,
        cancel: (Arc<CancelSignal>, CancelRegistration),
        slot: SessionSlot,
    ) -> Self {
        Connection {
            tenant,
            session,
            cancel: cancel.0,
            cursors: Cursors::default(),
            credentials,
            _registration: cancel.1,
            _slot: slot,
        }
    }

    /// Whether the session's key is still valid (not revoked, same tenant, allowed to read).
    pub async fn key_still_valid(&self) -> Result<bool, CatalogError> {
        let found = self
            .credentials
            .catalog
            .authenticate(&self.credentials.secret)
            .await?;
        Ok(matches!(found, Some((tenant, key))
            if tenant.id == self.tenant.id
                && key.id == self.credentials.key_id
                && key.role.allows(Role::Read)))
    }
}

/// The connection a statement arrives on; only an authenticated client has one.
pub(crate) fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Connection>> {
    client
        .session_extensions()
        .get::<Connection>()
        .ok_or_else(|| pg_error(PROTOCOL_VIOLATION, "not authenticated"))
}
