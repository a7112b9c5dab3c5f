//! Who is calling: the handshake's Basic credentials (username = tenant name, password = one
//! of its keys) become a bearer token; every later call carries `authorization: Bearer
//! <token>`, or the key itself as the bearer (the HTTP API's form, for clients that skip the
//! handshake).
//!
//! Tokens are 256 random bits, kept in memory only as their SHA-256 with the key they stand
//! for, for at most [`TOKEN_LIFETIME`]; at most [`MAX_TOKENS`] exist (the one nearest expiry
//! is dropped for a new one). Each call authenticates the key again from the catalog's
//! in-memory cache of valid keys, so a revoked key's tokens stop working at once, and a key
//! whose role does not allow reading is refused on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use strata_catalog::{KeyInfo, Tenant, TenantDirectory};
use strata_core::{Role, TenantId};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// How long a token from the handshake stays valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Tokens held at once.
pub const MAX_TOKENS: usize = 10_000;
/// Longest tenant name or key looked up; longer ones fail like a wrong key.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;

/// The one answer to failed credentials: which of tenant or key was wrong is not said.
pub(crate) fn unauthenticated() -> Status {
    Status::unauthenticated("invalid tenant or key")
}

/// An authenticated call: the tenant and the key it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
}

struct Issued {
    secret: String,
    expires: Instant,
}

/// Checks credentials against the catalog and keeps the handshake's tokens.
pub struct Authenticator {
    catalog: Arc<dyn TenantDirectory>,
    tokens: Mutex<HashMap<[u8; 32], Issued>>,
    max_tokens: usize,
    lifetime: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one map operation, so a poisoned map is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Authenticator {
    pub fn new(catalog: Arc<dyn TenantDirectory>) -> Self {
        Self::with_limits(catalog, MAX_TOKENS, TOKEN_LIFETIME)
    }

    pub fn with_limits(
        catalog: Arc<dyn TenantDirectory>,
        max_tokens: usize,
        lifetime: Duration,
    ) -> Self {
        Authenticator {
            catalog,
            tokens: Mutex::new(HashMap::new()),
            max_tokens: max_tokens.max(1),
            lifetime,
        }
    }

    /// The handshake: Basic credentials in `metadata` -> a new bearer token.
    pub async fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let header = authorization(metadata)?.ok_or_else(unauthenticated)?;
        let (user, password) = basic_credentials(header).ok_or_else(unauthenticated)?;
        let (tenant, key) = self.login(&user, &password).await?;
        tracing::debug!(tenant = %tenant.id, key = %key.id, "Flight SQL login");
        Ok(self.issue(password))
    }

    /// The caller of any other call: a bearer token from the handshake, or a key.
    pub async fn caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let header = authorization(metadata)?.ok_or_else(|| {
            Status::unauthenticated("authenticate first: a handshake with the tenant and a key")
        })?;
        let Some(bearer) = strip_scheme(header, "Bearer") else {
            return Err(unauthenticated());
        };
        let secret = self.redeem(bearer).unwrap_or_else(|| bearer.to_string());
        let (tenant, key) = self.key(&secret).await?.ok_or_else(unauthenticated)?;
        require_read(&key)?;
        Ok(Caller {
            tenant: tenant.id,
            key_id: key.id,
        })
    }

    /// The tenant and key when `user` names the tenant and `password` is one of its keys
    /// allowed to read.
    async fn login(&self, user: &str, password: &str) -> Result<(Tenant, KeyInfo), Status> {
        if user.len() > MAX_CREDENTIAL_BYTES {
            return Err(unauthenticated());
        }
        let named = self.catalog.tenant_by_name(user).await.map_err(internal)?;
        // Checked even for an unknown tenant so both failures cost the same lookups.
        let keyed = self.key(password).await?;
        match (named, keyed) {
            (Some(named), Some((tenant, key)))
                if tenant.id == named.id && key.tenant == named.id =>
            {
                require_read(&key)?;
                Ok((named, key))
            }
            _ => Err(unauthenticated()),
        }
    }

    async fn key(&self, secret: &str) -> Result<Option<(Tenant, KeyInfo)>, Status> {
        if secret.len() > MAX_CREDENTIAL_BYTES {
            return Ok(None);
        }
        self.catalog.authenticate(secret).await.map_err(internal)
    }

    fn issue(&self, secret: String) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, issued| issued.expires > now);
        if tokens.len() >= self.max_tokens {
            let nearest = tokens
                .iter()
                .min_by_key(|(_, issued)| issued.expires)
                .map(|(hash, _)| *hash);
            if let Some(hash) = nearest {
                tokens.remove(&hash);
            }
        }
        let expires = now + self.lifetime;
        tokens.insert(digest(&token), Issued { secret, expires });
        token
    }

    /// The key a live token stands for.
    fn redeem(&self, token: &str) -> Option<String> {
        let hash = digest(token);
        let mut tokens = lock(&self.tokens);
        match tokens.get(&hash) {
            Some(issued) if issued.expires > Instant::now() => Some(issued.secret.clone()),
            Some(_) => {
                tokens.remove(&hash);
                None
            }
            None => None,
        }
    }

    /// Tokens held now (for tests and status).
    pub fn token_count(&self) -> usize {
        lock(&self.tokens).len()
    }
}

fn require_read(key: &KeyInfo) -> Result<(), Status> {
    if key.role.allows(Role::Read) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "this key has the {} role, which may not query; use a read or admin key",
            key.role.as_str()
        )))
    }
}

fn internal(error: strata_catalog::CatalogError) -> Status {
    tracing::error!(%error, "catalog failure during Flight SQL authentication");
    Status::internal("could not check the credentials")
}

/// The `authorization` header's text, if any.
fn authorization(metadata: &MetadataMap) -> Result<Option<&str>, Status> {
    match metadata.get("authorization") {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| unauthenticated()),
    }
}

/// `header` without its scheme word (matched without regard to case) and the space after it.
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (word, rest) = header.split_once(' ')?;
    word.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim())
        .filter(|rest| !rest.is_empty())
}

/// `Basic base64(user:password)` -> (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = strip_scheme(header, "Basic")?;
    if encoded.len() > 4 * MAX_CREDENTIAL_BYTES {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("acme:k:ey");
        assert_eq!(
            basic_credentials(&format!("Basic {encoded}")),
            Some(("acme".to_string(), "k:ey".to_string()))
        );
        assert_eq!(
            basic_credentials(&format!("basic {encoded}")),
            Some(("acme".to_string(), "k:ey".to_string()))
        );
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials(&format!("Bearer {encoded}")), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("acme");
        assert_eq!(basic_credentials(&format!("Basic {no_colon}")), None);
    }

    #[test]
    fn schemes_need_a_value() {
        assert_eq!(strip_scheme("Bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("bearer  abc ", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Bearer ", "Bearer"), None);
        assert_eq!(strip_scheme("Bearer", "Bearer"), None);
        assert_eq!(strip_scheme("Token abc", "Bearer"), None);
    }

    fn header(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    fn basic(user: &str, password: &str) -> MetadataMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        header(&format!("Basic {encoded}"))
    }

    #[tokio::test]
    async fn tokens_are_bounded_expire_and_stand_for_a_reading_key() {
        let stores = strata_testkit::Stores::open().await;
        let (tenant, admin) = stores.tenant("acme").await;
        let writer = stores.key(tenant, Role::Write).await;
        let catalog: Arc<dyn TenantDirectory> = stores.catalog.clone();
        let auth = Authenticator::with_limits(catalog, 2, Duration::from_millis(300));
        let tokens = [
            auth.handshake(&basic("acme", &admin)).await.unwrap(),
            auth.handshake(&basic("acme", &admin)).await.unwrap(),
            auth.handshake(&basic("acme", &admin)).await.unwrap(),
        ];
        assert_eq!(auth.token_count(), 2);
        // The oldest gave way; the others name the tenant and key.
        let bearer = |token: &str| header(&format!("Bearer {token}"));
        let dropped = auth.caller(&bearer(&tokens[0])).await.unwrap_err();
        assert_eq!(dropped.code(), tonic::Code::Unauthenticated);
        let caller = auth.caller(&bearer(&tokens[2])).await.unwrap();
        assert_eq!(caller.tenant, tenant);
        // The key itself is a bearer too; a write key is refused either way.
        assert_eq!(auth.caller(&bearer(&admin)).await.unwrap(), caller);
        let refused = auth.handshake(&basic("acme", &writer)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        let refused = auth.caller(&bearer(&writer)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        for wrong in [
            basic("acme", "nope"),
            basic("other", &admin),
            header("Basic"),
        ] {
            let refused = auth.handshake(&wrong).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        let expired = auth.caller(&bearer(&tokens[2])).await.unwrap_err();
        assert_eq!(expired.code(), tonic::Code::Unauthenticated);
    }
}
