//! Connection limits of the Postgres port: how many sockets may be logging in, how long a login
//! may take, how many sessions the server and each tenant may hold, and how large a message
//! may be.
//!
//! Sockets that have not logged in are counted apart from sessions, so idle or slow sockets
//! cannot take the slots of tenants that have logged in. When every login slot is taken, the
//! oldest login in progress is dropped for the newcomer: a flood of idle sockets then only
//! drops other idle sockets, while a real client finishes its login in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_core::TenantId;
use tokio::sync::watch;

/// Sessions (logged-in connections) the server holds at once; further logins get SQLSTATE
/// 53300 `too_many_connections`.
pub const MAX_CONNECTIONS: usize = 256;

/// Sessions one tenant may hold at once, so one tenant cannot take every slot.
pub const MAX_CONNECTIONS_PER_TENANT: usize = 64;

/// Sockets that may be in the login phase (TLS handshake, startup, password) at once; beyond
/// it the oldest is dropped.
pub const MAX_LOGINS_IN_PROGRESS: usize = 64;

/// Time from accept to a finished login; slower sockets are closed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message a client may send, checked from its 5-byte header before the body is read.
/// SQL text is limited to [`strata_query::engine::MAX_SQL_BYTES`] (1 MiB); the rest leaves room
/// for bound parameters.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// SQLSTATE 53300 too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The counters stay consistent under a panic (each update is one statement), so a poisoned
    // lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections: the server holds {0} sessions")]
    Server(usize),
    #[error("too many connections for this tenant: it holds {0} sessions")]
    Tenant(usize),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_tenant: HashMap<TenantId, usize>,
}

/// The session caps: [`MAX_CONNECTIONS`] in all and [`MAX_CONNECTIONS_PER_TENANT`] per tenant.
#[derive(Debug)]
pub struct Sessions {
    counts: Mutex<Counts>,
    max_total: usize,
    max_per_tenant: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_TENANT)
    }
}

impl Sessions {
    pub fn new(max_total: usize, max_per_tenant: usize) -> Self {
        Sessions {
            counts: Mutex::new(Counts::default()),
            max_total,
            max_per_tenant,
        }
    }

    /// A slot for a session of `tenant`, held until the returned value is dropped.
    pub fn admit(self: &Arc<Self>, tenant: TenantId) -> Result<SessionSlot, Refusal> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.max_total {
            return Err(Refusal::Server(self.max_total));
        }
        let held = counts.per_tenant.get(&tenant).copied().unwrap_or(0);
        if held >= self.max_per_tenant {
            return Err(Refusal::Tenant(self.max_per_tenant));
        }
        counts.total += 1;
        counts.per_tenant.insert(tenant, held + 1);
        Ok(SessionSlot {
            sessions: self.clone(),
            tenant,
        })
    }

    /// Sessions held in all.
    pub fn total(&self) -> usize {
        lock(&self.counts).total
    }
}

/// One admitted session; frees its slot when dropped.
#[derive(Debug)]
pub struct SessionSlot {
    sessions: Arc<Sessions>,
    tenant: TenantId,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.sessions.counts);
        counts.total = counts.total.saturating_sub(1);
        // Entries go with their last session, so the map never outgrows the open sessions.
        if let Some(held) = counts.per_tenant.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                counts.per_tenant.remove(&self.tenant);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    next_id: u64,
    /// Logins in progress, oldest first, with the sender that tells each to give up.
    waiting: VecDeque<(u64, watch::Sender<bool>)>,
}

/// Logins in progress, at most [`MAX_LOGINS_IN_PROGRESS`]; the oldest is evicted for a new one.
#[derive(Debug)]
pub struct Logins {
    queue: Mutex<Queue>,
    max: usize,
}

impl Default for Logins {
    fn default() -> Self {
        Logins::new(MAX_LOGINS_IN_PROGRESS)
    }
}

impl Logins {
    pub fn new(max: usize) -> Self {
        Logins {
            queue: Mutex::new(Queue::default()),
            max: max.max(1),
        }
    }

    /// Registers a new login, evicting the oldest one when all slots are taken.
    pub fn start(self: &Arc<Self>) -> LoginSlot {
        let (evict, evicted) = watch::channel(false);
        let mut queue = lock(&self.queue);
        while queue.waiting.len() >= self.max {
            if let Some((_, oldest)) = queue.waiting.pop_front() {
                oldest.send_replace(true);
            }
        }
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiting.push_back((id, evict));
        LoginSlot {
            logins: self.clone(),
            id,
            evicted,
        }
    }

    /// Logins in progress.
    pub fn in_progress(&self) -> usize {
        lock(&self.queue).waiting.len()
    }
}

/// One login in progress; leaves the queue when dropped (login finished or connection gone).
#[derive(Debug)]
pub struct LoginSlot {
    logins: Arc<Logins>,
    id: u64,
    evicted: watch::Receiver<bool>,
}

impl LoginSlot {
    /// Completes when a newer login took this one's slot.
    pub async fn evicted(&mut self) {
        if self.evicted.wait_for(|evicted| *evicted).await.is_err() {
            // The sender is gone only once the slot left the queue; waiting forever is right.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for LoginSlot {
    fn drop(&mut self) {
        let mut queue = lock(&self.logins.queue);
        if let Some(at) = queue.waiting.iter().position(|(id, _)| *id == self.id) {
            queue.waiting.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_in_all_and_per_tenant() {
        let sessions = Arc::new(Sessions::new(3, 2));
        let a1 = sessions.admit(TenantId(1)).unwrap();
        let _a2 = sessions.admit(TenantId(1)).unwrap();
        assert_eq!(sessions.admit(TenantId(1)).unwrap_err(), Refusal::Tenant(2));
        let _b1 = sessions.admit(TenantId(2)).unwrap();
        assert_eq!(sessions.admit(TenantId(3)).unwrap_err(), Refusal::Server(3));
        drop(a1);
        assert_eq!(sessions.total(), 2);
        let _a3 = sessions.admit(TenantId(1)).unwrap();
        assert!(sessions.admit(TenantId(2)).is_err());
    }

    #[test]
    fn freed_tenants_leave_no_entry() {
        let sessions = Arc::new(Sessions::default());
        for tenant in 0..1000 {
            drop(sessions.admit(TenantId(tenant)).unwrap());
        }
        assert!(lock(&sessions.counts).per_tenant.is_empty());
        assert_eq!(sessions.total(), 0);
    }

    #[tokio::test]
    async fn the_oldest_login_is_evicted_for_a_new_one() {
        let logins = Arc::new(Logins::new(2));
        let mut first = logins.start();
        let mut second = logins.start();
        let third = logins.start();
        assert_eq!(logins.in_progress(), 2);
        tokio::time::timeout(Duration::from_secs(5), first.evicted())
            .await
            .expect("the oldest login is told to give up");
        let still_waiting = tokio::time::timeout(Duration::from_millis(50), second.evicted()).await;
        assert!(still_waiting.is_err(), "the second login keeps its slot");
        drop(third);
        drop(second);
        assert_eq!(logins.in_progress(), 0);
    }
}
