//! API keys: secret generation and hashing, creation, listing, revocation, and the
//! authentication lookup with its in-process cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::DateTime;
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;
use strata_core::{Role, TenantId};

use super::{lock, ms_to_time, now_ms, opt_ms_to_time, require_tenant, SqliteCatalog};
use crate::model::{KeyInfo, NewKey, Tenant};
use crate::CatalogError;

/// `last_used_at` is bookkeeping; writing it on every request would make reads write.
const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);
/// Bound on cached authenticated keys; the cache is cleared when it would grow past it.
const MAX_CACHED_KEYS: usize = 100_000;
const SECRET_PREFIX: &str = "sk_";
const SECRET_BYTES: usize = 32;
const KEY_ID_BYTES: usize = 8;

#[derive(Default)]
pub(super) struct AuthCache {
    /// Bumped by every revocation, for the same reason as the schema cache's generation.
    generation: u64,
    by_hash: HashMap<String, CachedKey>,
}

struct CachedKey {
    tenant: Tenant,
    info: KeyInfo,
    last_used_written: Option<Instant>,
}

pub(super) fn random_hex(bytes: usize) -> Result<String, CatalogError> {
    let mut buf = vec![0u8; bytes];
    OsRng.try_fill_bytes(&mut buf).map_err(|e| {
        tracing::error!(error = %e, "OS random number generator failed");
        CatalogError::Internal("random number generator unavailable".to_string())
    })?;
    Ok(hex::encode(buf))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn looks_like_secret(secret: &str) -> bool {
    secret.len() == SECRET_PREFIX.len() + 2 * SECRET_BYTES
        && secret.starts_with(SECRET_PREFIX)
        && secret[SECRET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_role(text: &str) -> Result<Role, CatalogError> {
    text.parse().map_err(|_| {
        tracing::error!(role = text, "catalog holds an unknown role");
        CatalogError::Internal("catalog holds an unknown role".to_string())
    })
}

pub(super) async fn insert_key(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    role: Role,
) -> Result<NewKey, CatalogError> {
    let secret = format!("{SECRET_PREFIX}{}", random_hex(SECRET_BYTES)?);
    let id = random_hex(KEY_ID_BYTES)?;
    let created_at_ms = now_ms();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, role, secret_sha256, created_at_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(role.as_str())
    .bind(hash_secret(&secret))
    .bind(created_at_ms)
    .execute(&mut *conn)
    .await?;
    debug_assert!(looks_like_secret(&secret));
    Ok(NewKey {
        info: KeyInfo {
            id,
            tenant,
            role,
            created_at: ms_to_time(created_at_ms)?,
            last_used_at: None,
        },
        secret,
    })
}

pub(super) async fn create(
    catalog: &SqliteCatalog,
    tenant: TenantId,
    role: Role,
) -> Result<NewKey, CatalogError> {
    let _guard = catalog.write_lock.lock().await;
    let mut tx = catalog.pool.begin_with("BEGIN IMMEDIATE").await?;
    require_tenant(&mut tx, tenant).await?;
    let key = insert_key(&mut tx, tenant, role).await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant, key_id = %key.info.id, role = %role, "key created");
    Ok(key)
}

pub(super) async fn list(
    catalog: &SqliteCatalog,
    tenant: TenantId,
) -> Result<Vec<KeyInfo>, CatalogError> {
    let mut conn = catalog.pool.acquire().await?;
    require_tenant(&mut conn, tenant).await?;
    let rows = sqlx::query(
        "SELECT id, role, created_at_ms, last_used_at_ms FROM api_keys \
         WHERE tenant_id = ? AND revoked_at_ms IS NULL ORDER BY created_at_ms, id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let role: String = row.try_get("role")?;
            Ok(KeyInfo {
                id: row.try_get("id")?,
                tenant,
                role: parse_role(&role)?,
                created_at: ms_to_time(row.try_get("created_at_ms")?)?,
                last_used_at: opt_ms_to_time(row.try_get("last_used_at_ms")?)?,
            })
        })
        .collect()
}

pub(super) async fn revoke(
    catalog: &SqliteCatalog,
    tenant: TenantId,
    key_id: &str,
) -> Result<(), CatalogError> {
    let _guard = catalog.write_lock.lock().await;
    let revoked = sqlx::query(
        "UPDATE api_keys SET revoked_at_ms = ? \
         WHERE id = ? AND tenant_id = ? AND revoked_at_ms IS NULL",
    )
    .bind(now_ms())
    .bind(key_id)
    .bind(tenant)
    .execute(&catalog.pool)
    .await?
    .rows_affected();
    if revoked == 0 {
        // Same answer whether the key is unknown, revoked or another tenant's.
        return Err(CatalogError::NotFound(format!("key {key_id:?} not found")));
    }
    let mut cache = lock(&catalog.auth_cache);
    cache.generation += 1;
    cache.by_hash.retain(|_, cached| cached.info.id != key_id);
    tracing::info!(tenant = %tenant, key_id, "key revoked");
    Ok(())
}

pub(super) async fn authenticate(
    catalog: &SqliteCatalog,
    secret: &str,
) -> Result<Option<(Tenant, KeyInfo)>, CatalogError> {
    if !looks_like_secret(secret) {
        return Ok(None);
    }
    let hash = hash_secret(secret);
    let now = Instant::now();
    let (generation, hit) = cached_key(catalog, &hash, now);
    if let Some((tenant, info, used_ms)) = hit {
        if let Some(at_ms) = used_ms {
            write_last_used(catalog, &info.id, at_ms).await;
        }
        return Ok(Some((tenant, info)));
    }
    let Some((tenant, info, at_ms)) = stored_key(catalog, &hash).await? else {
        return Ok(None);
    };
    write_last_used(catalog, &info.id, at_ms).await;
    remember_key(catalog, generation, hash, &tenant, &info, now);
    Ok(Some((tenant, info)))
}

/// A cached key, with the time to record as its last use when a write of it is due.
type CacheHit = (Tenant, KeyInfo, Option<i64>);

/// The cache generation, and the cached key if there is one.
fn cached_key(catalog: &SqliteCatalog, hash: &str, now: Instant) -> (u64, Option<CacheHit>) {
    let mut cache = lock(&catalog.auth_cache);
    let generation = cache.generation;
    let hit = cache.by_hash.get_mut(hash).map(|cached| {
        let due = cached
            .last_used_written
            .is_none_or(|t| now.duration_since(t) >= LAST_USED_WRITE_INTERVAL);
        let mut used_ms = None;
        if due {
            let at_ms = now_ms();
            cached.last_used_written = Some(now);
            cached.info.last_used_at = DateTime::from_timestamp_millis(at_ms);
            used_ms = Some(at_ms);
        }
        (cached.tenant.clone(), cached.info.clone(), used_ms)
    });
    (generation, hit)
}

/// The active key with this secret hash and its tenant, marked as used now (the time returned).
async fn stored_key(
    catalog: &SqliteCatalog,
    hash: &str,
) -> Result<Option<(Tenant, KeyInfo, i64)>, CatalogError> {
    let row = sqlx::query(
        "SELECT k.id, k.tenant_id, k.role, k.created_at_ms, t.name, \
         t.created_at_ms AS tenant_created_at_ms FROM api_keys k \
         JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.secret_sha256 = ? AND k.revoked_at_ms IS NULL",
    )
    .bind(hash)
    .fetch_optional(&catalog.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let at_ms = now_ms();
    let tenant_id: TenantId = row.try_get("tenant_id")?;
    let role: String = row.try_get("role")?;
    let tenant = Tenant {
        id: tenant_id,
        name: row.try_get("name")?,
        created_at: ms_to_time(row.try_get("tenant_created_at_ms")?)?,
    };
    let info = KeyInfo {
        id: row.try_get("id")?,
        tenant: tenant_id,
        role: parse_role(&role)?,
        created_at: ms_to_time(row.try_get("created_at_ms")?)?,
        last_used_at: Some(ms_to_time(at_ms)?),
    };
    Ok(Some((tenant, info, at_ms)))
}

fn remember_key(
    catalog: &SqliteCatalog,
    generation: u64,
    hash: String,
    tenant: &Tenant,
    info: &KeyInfo,
    now: Instant,
) {
    let mut cache = lock(&catalog.auth_cache);
    // A revocation that committed while we read would otherwise be undone by this insert.
    if cache.generation == generation {
        if cache.by_hash.len() >= MAX_CACHED_KEYS {
            cache.by_hash.clear();
        }
        cache.by_hash.insert(
            hash,
            CachedKey {
                tenant: tenant.clone(),
                info: info.clone(),
                last_used_written: Some(now),
            },
        );
    }
}

async fn write_last_used(catalog: &SqliteCatalog, key_id: &str, at_ms: i64) {
    let result = sqlx::query("UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?")
        .bind(at_ms)
        .bind(key_id)
        .execute(&catalog.pool)
        .await;
    // Bookkeeping only: a failure here must not fail the request that authenticated.
    if let Err(e) = result {
        tracing::warn!(error = %e, key_id, "could not record key use");
    }
}
