//! Web-app sessions: a tenant key exchanged for an opaque cookie (`POST /api/v1/session`), held
//! in server memory only. The browser never sees the key again after sign-in; each request
//! re-authenticates the stored key, so revoking the key ends its sessions at once.
//!
//! CSRF: the cookie is `SameSite=Strict`, and every cookie-authenticated request other than
//! GET/HEAD must also carry the session's CSRF token in `X-Strata-CSRF`. A cross-site page can
//! neither read the token (same-origin policy on `GET /api/v1/session`) nor set that header
//! without a CORS preflight, which this server never grants.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name. Path `/`, HttpOnly, SameSite=Strict.
pub const COOKIE_NAME: &str = "strata_session";
/// The header carrying the CSRF token on state-changing cookie calls.
pub const CSRF_HEADER: &str = "x-strata-csrf";
/// How long a session lives from sign-in (absolute, not sliding: a stolen cookie dies too).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions; past it the one closest to expiry is dropped, so memory
/// stays bounded whatever a key holder does.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The tenant key it signed in with; re-checked on every request (revocation).
    pub key: String,
    pub csrf: String,
    pub expires: Instant,
    /// Wall-clock expiry for the app to show.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The live sessions, keyed by the SHA-256 of the cookie value, so a memory dump or a timing
/// difference in the map lookup reveals no usable cookie.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl SessionStore {
    /// A new session for `key`; returns the cookie value and the session.
    pub fn create(&self, key: &str) -> (String, Session) {
        self.create_for(key, SESSION_TTL)
    }

    fn create_for(&self, key: &str, ttl: Duration) -> (String, Session) {
        let cookie = random_token();
        let session = Session {
            key: key.to_string(),
            csrf: random_token(),
            expires: Instant::now() + ttl,
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12)),
        };
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(digest(&cookie), session.clone());
        (cookie, session)
    }

    /// The live session a cookie value names; an expired one is removed and not returned.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let id = digest(cookie);
        let mut sessions = self.lock();
        match sessions.get(&id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, cookie: &str) {
        self.lock().remove(&digest(cookie));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves the map consistent (every change is one call).
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the request carries the session's CSRF token (compared in constant time).
pub fn csrf_matches(headers: &HeaderMap, session: &Session) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// Whether the browser reached us over HTTPS through a TLS-terminating proxy (the HTTP port
/// itself is plain HTTP). Then the cookie is marked `Secure`; a client that claims HTTPS
/// falsely only keeps its own cookie off plain HTTP.
pub fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(cookie: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_gone_after_removal() {
        let store = SessionStore::default();
        let (cookie, session) = store.create("sk_test");
        assert_eq!(store.get(&cookie).map(|s| s.key), Some("sk_test".into()));
        assert!(store.get("not-a-cookie").is_none());
        assert_ne!(cookie, session.csrf, "the CSRF token is not the cookie");
        store.remove(&cookie);
        assert!(store.get(&cookie).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let store = SessionStore::default();
        let (cookie, _) = store.create_for("k", Duration::ZERO);
        assert!(store.get(&cookie).is_none());
        let (live, _) = store.create_for("k", Duration::from_secs(60));
        assert!(store.get(&live).is_some());
    }

    #[test]
    fn the_sessions_are_bounded() {
        let store = SessionStore::default();
        let (first, _) = store.create_for("k", Duration::from_secs(10));
        for _ in 0..MAX_SESSIONS {
            store.create_for("k", Duration::from_secs(60));
        }
        assert_eq!(store.lock().len(), MAX_SESSIONS);
        assert!(
            store.get(&first).is_none(),
            "the one nearest expiry went first"
        );
    }

    #[test]
    fn the_cookie_is_read_among_others_and_csrf_must_match() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; strata_session=abc ; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("abc"));
        let store = SessionStore::default();
        let (_, session) = store.create("k");
        assert!(!csrf_matches(&headers, &session));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("wrong"));
        assert!(!csrf_matches(&headers, &session));
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&session.csrf).unwrap());
        assert!(csrf_matches(&headers, &session));
    }

    #[test]
    fn set_cookie_is_http_only_and_strict() {
        let header = set_cookie("xyz", false);
        assert!(header.contains("HttpOnly"));
        assert!(header.contains("SameSite=Strict"));
        assert!(header.contains("Max-Age=43200"));
        assert!(!header.contains("Secure"));
        assert!(set_cookie("xyz", true).ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        assert!(!behind_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(behind_https(&headers));
    }
}
