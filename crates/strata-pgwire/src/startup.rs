//! Startup: cleartext password login (user = tenant name, password = one of its keys), the
//! session caps, then the connection's own tenant session.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
    METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use strata_catalog::{KeyInfo, Tenant, TenantDirectory};
use strata_core::Role;
use strata_query::rewrite::CATALOG_NAME;
use strata_query::QueryEngine;

use crate::cancel::{CancelKey, CancelRegistry, CancelSignal};
use crate::connection::{Connection, Credentials};
use crate::errors::{auth_failed, pg_error, INTERNAL_ERROR};
use crate::limits::{SessionSlot, Sessions, TOO_MANY_CONNECTIONS};
use crate::pg_catalog::PgCatalog;

/// Longest user name or password looked up; longer ones fail like a wrong password.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;

pub struct StrataStartupHandler {
    pub engine: QueryEngine,
    /// Logins and the key checks of open sessions: the tenant directory is all this door reads
    /// of the catalog; schemas come through the query engine.
    pub catalog: Arc<dyn TenantDirectory>,
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
            tracing::warn!(%peer, tenant = %tenant.id, %refusal, "Postgres login refused");
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
            tracing::error!(error = %e, tenant = %tenant.id, "opening a Postgres session");
            pg_error(INTERNAL_ERROR, "could not open a session")
        })?;
        let session = session.for_door(strata_core::telemetry::door::POSTGRES);
        // pg_catalog reads the session's own catalog list, which holds only this tenant's
        // tables: psql's \dt and BI tools' metadata queries see nothing else.
        self.pg_catalog
            .install(session.context(), CATALOG_NAME)
            .map_err(|e| {
                tracing::error!(error = %e, "registering pg_catalog");
                pg_error(INTERNAL_ERROR, "could not open a session")
            })?;
        let cancel = Arc::new(CancelSignal::new());
        let registration = self.registry.register(key, cancel.clone());
        Ok(Connection::new(
            tenant,
            session,
            credentials,
            (cancel, registration),
            slot,
        ))
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
    params.server_version = strata_query::server_info::PG_SERVER_VERSION.to_string();
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
                tracing::debug!(tenant = %connection.tenant.id, pid, "Postgres login");
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
