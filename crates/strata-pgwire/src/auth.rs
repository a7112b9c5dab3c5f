//! Startup: cleartext password login (user = tenant name, password = one of its keys), then the
//! connection's own tenant session, and the cancel-key registry.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
    METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use strata_catalog::{CatalogError, DynCatalog, KeyInfo, Tenant};
use strata_core::Role;
use strata_query::model::MetricModel;
use strata_query::rewrite::{AliasResolver, CATALOG_NAME};
use strata_query::{QueryEngine, TenantSession};
use tokio::sync::watch;

use crate::cursor::Cursors;
use crate::errors::{auth_failed, pg_error, INTERNAL_ERROR};
use crate::limits::{SessionSlot, Sessions, TOO_MANY_CONNECTIONS};
use crate::pg_catalog::PgCatalog;

/// Longest user name or password looked up; longer ones fail like a wrong password.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;

/// One authenticated connection: its tenant's session and its cancel signal. Stored in the
/// pgwire client's session extensions, so it lives exactly as long as the connection.
pub struct Connection {
    pub tenant: Tenant,
    pub session: TenantSession,
    /// The same alias rewrite the session applies, for planning-only work (Describe).
    pub resolver: AliasResolver,
    pub cancel: Arc<CancelSignal>,
    /// Open SQL cursors (`DECLARE`/`FETCH`/`CLOSE`); dropped with the connection.
    pub cursors: Cursors,
    credentials: Credentials,
    _registration: CancelRegistration,
    _slot: SessionSlot,
}

/// The key a session logged in with, checked again before each statement so that revoking it
/// ends the session ([`crate::socket`]).
struct Credentials {
    catalog: DynCatalog,
    key_id: String,
    /// The key itself: the catalog answers by secret, from its in-memory cache of valid keys,
    /// which a revocation clears. Kept only in this connection's memory.
    secret: String,
}

impl Connection {
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

/// Bumped by each cancel request; a running statement watches it.
#[derive(Debug)]
pub struct CancelSignal {
    generation: watch::Sender<u64>,
}

impl CancelSignal {
    fn new() -> Self {
        CancelSignal {
            generation: watch::Sender::new(0),
        }
    }

    /// A receiver that fires on the next cancel request (not on earlier ones).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn cancel(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// Waits until a cancel request arrives after `receiver` was made; never, if the connection is
/// gone.
pub async fn cancelled(receiver: &mut watch::Receiver<u64>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

type CancelKey = (i32, Vec<u8>);

/// Connections by their (pid, secret key), for cancel requests that arrive on a new socket.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    connections: Mutex<HashMap<CancelKey, Arc<CancelSignal>>>,
}

impl CancelRegistry {
    fn register(self: &Arc<Self>, key: CancelKey, signal: Arc<CancelSignal>) -> CancelRegistration {
        if let Ok(mut map) = self.connections.lock() {
            map.insert(key.clone(), signal);
        }
        CancelRegistration {
            key,
            registry: self.clone(),
        }
    }

    fn cancel(&self, key: &CancelKey) -> bool {
        let signal = match self.connections.lock() {
            Ok(map) => map.get(key).cloned(),
            Err(_) => None,
        };
        match signal {
            Some(signal) => {
                signal.cancel();
                true
            }
            None => false,
        }
    }
}

/// Removes the connection from the registry when the connection ends.
struct CancelRegistration {
    key: CancelKey,
    registry: Arc<CancelRegistry>,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.connections.lock() {
            map.remove(&self.key);
        }
    }
}

pub struct StrataCancelHandler {
    pub registry: Arc<CancelRegistry>,
}

#[async_trait]
impl CancelHandler for StrataCancelHandler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let found = self.registry.cancel(&key);
        tracing::debug!(pid = request.pid, found, "Postgres cancel request");
    }
}

pub struct StrataStartupHandler {
    pub engine: QueryEngine,
    pub catalog: DynCatalog,
    pub registry: Arc<CancelRegistry>,
    pub keys: RandomPidSecretKeyGenerator,
    /// `--pg-allow-insecure`: accept cleartext passwords from other hosts without TLS.
    pub allow_insecure: bool,
    pub sessions: Arc<Sessions>,
    pub pg_catalog: PgCatalog,
}

/// Whether a connection may be asked for its password. The bind policy keeps a server without
/// TLS on loopback, but a server with TLS on a network address also accepts clients that do
/// not ask for TLS; their password (a tenant key) would cross the network in clear text, so
/// such connections from other hosts are refused before the password is requested.
pub fn may_send_password(peer: std::net::IpAddr, secure: bool, allow_insecure: bool) -> bool {
    secure || allow_insecure || peer.to_canonical().is_loopback()
}

/// SQLSTATE 28000 invalid_authorization_specification, as Postgres answers a connection that
/// no pg_hba rule admits (here: one without TLS from another host).
pub const INVALID_AUTHORIZATION: &str = "28000";

impl StrataStartupHandler {
    /// The tenant and key when `user` names the tenant and `password` is one of its keys
    /// allowed to read.
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> PgWireResult<Option<(Tenant, KeyInfo)>> {
        if user.len() > MAX_CREDENTIAL_BYTES || password.len() > MAX_CREDENTIAL_BYTES {
            return Ok(None);
        }
        let internal = |e: strata_catalog::CatalogError| {
            tracing::error!(error = %e, "catalog failure during Postgres login");
            pg_error(INTERNAL_ERROR, "could not check the credentials")
        };
        let named = self.catalog.tenant_by_name(user).await.map_err(internal)?;
        // Checked even for an unknown user so both failures cost the same lookups.
        let keyed = self
            .catalog
            .authenticate(password)
            .await
            .map_err(internal)?;
        Ok(match (named, keyed) {
            (Some(named), Some((tenant, key)))
                if tenant.id == named.id
                    && key.tenant == named.id
                    && key.role.allows(Role::Read) =>
            {
                Some((named, key))
            }
            _ => None,
        })
    }

    /// Checks the credentials and the session caps, then opens the session.
    async fn login(
        &self,
        user: &str,
        password: String,
        peer: std::net::SocketAddr,
        cancel_key: CancelKey,
    ) -> PgWireResult<Connection> {
        let Some((tenant, key)) = self.authenticate(user, &password).await? else {
            tracing::info!(%peer, "Postgres login refused");
            return Err(auth_failed());
        };
        let slot = self.sessions.admit(tenant.id).map_err(|refusal| {
            tracing::warn!(%peer, tenant = tenant.id, %refusal, "Postgres login refused");
            fatal(TOO_MANY_CONNECTIONS, refusal.to_string())
        })?;
        let credentials = Credentials {
            catalog: self.catalog.clone(),
            key_id: key.id,
            secret: password,
        };
        self.open(tenant, credentials, slot, cancel_key).await
    }

    async fn open(
        &self,
        tenant: Tenant,
        credentials: Credentials,
        slot: SessionSlot,
        key: CancelKey,
    ) -> PgWireResult<Connection> {
        let session = self.engine.session(tenant.id).await.map_err(|e| {
            tracing::error!(error = %e, tenant = tenant.id, "opening a Postgres session");
            pg_error(INTERNAL_ERROR, "could not open a session")
        })?;
        // pg_catalog reads the session's own catalog list, which holds only this tenant's
        // tables: psql's \dt and BI tools' metadata queries see nothing else.
        self.pg_catalog
            .install(session.context(), CATALOG_NAME)
            .map_err(|e| {
                tracing::error!(error = %e, "registering pg_catalog");
                pg_error(INTERNAL_ERROR, "could not open a session")
            })?;
        let schema = self.catalog.schema(tenant.id).await.map_err(|e| {
            tracing::error!(error = %e, "reading the tenant schema for a Postgres session");
            pg_error(INTERNAL_ERROR, "could not open a session")
        })?;
        let mut resolver = AliasResolver::new();
        for metric in &schema.metrics {
            let model = MetricModel::from_catalog(metric);
            let aliases = Arc::new(model.alias_map());
            for name in &model.table_names {
                resolver.add_table(name, aliases.clone());
            }
        }
        let cancel = Arc::new(CancelSignal::new());
        let registration = self.registry.register(key, cancel.clone());
        Ok(Connection {
            tenant,
            session,
            resolver,
            cancel,
            cursors: Cursors::default(),
            credentials,
            _registration: registration,
            _slot: slot,
        })
    }
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message.into(),
    )))
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = "16.6".to_string();
    params.is_superuser = false;
    params.default_transaction_read_only = true;
    params.time_zone = "UTC".to_string();
    params
}

#[async_trait]
impl StartupHandler for StrataStartupHandler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                let peer = client.socket_addr();
                if !may_send_password(peer.ip(), client.is_secure(), self.allow_insecure) {
                    tracing::info!(%peer, "Postgres connection without TLS from another host refused");
                    return Err(fatal(
                        INVALID_AUTHORIZATION,
                        "connections from other hosts must use TLS (sslmode=require)",
                    ));
                }
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let (pid, secret) = self.keys.generate(client);
                let cancel_key = (pid, secret.to_bytes().to_vec());
                let connection = self
                    .login(&user, password, client.socket_addr(), cancel_key)
                    .await?;
                client.set_pid_and_secret_key(pid, secret);
                tracing::debug!(tenant = connection.tenant.id, pid, "Postgres login");
                client.session_extensions().insert(connection);
                finish_authentication(client, &server_parameters()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_cross_the_network_only_inside_tls() {
        let remote: std::net::IpAddr = "192.168.1.4".parse().unwrap();
        let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let local6: std::net::IpAddr = "::1".parse().unwrap();
        // An IPv4 client of a server bound to [::] shows up as an IPv4-mapped address.
        let mapped_local: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let mapped_remote: std::net::IpAddr = "::ffff:192.168.1.4".parse().unwrap();
        assert!(!may_send_password(remote, false, false));
        assert!(!may_send_password(mapped_remote, false, false));
        assert!(may_send_password(remote, true, false));
        assert!(may_send_password(remote, false, true));
        for loopback in [local, local6, mapped_local] {
            assert!(may_send_password(loopback, false, false), "{loopback}");
        }
    }
}
