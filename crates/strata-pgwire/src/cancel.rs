//! Cancel requests: each connection's cancel signal, the registry that finds it by the
//! (pid, secret key) a cancel request carries on a new socket, and the handler pgwire calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use tokio::sync::watch;

/// Bumped by each cancel request; a running statement watches it.
#[derive(Debug)]
pub struct CancelSignal {
    generation: watch::Sender<u64>,
}

impl CancelSignal {
    pub(crate) fn new() -> Self {
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

pub(crate) type CancelKey = (i32, Vec<u8>);

/// Connections by their (pid, secret key), for cancel requests that arrive on a new socket.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    connections: Mutex<HashMap<CancelKey, Arc<CancelSignal>>>,
}

impl CancelRegistry {
    pub(crate) fn register(
        self: &Arc<Self>,
        key: CancelKey,
        signal: Arc<CancelSignal>,
    ) -> CancelRegistration {
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
pub(crate) struct CancelRegistration {
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
