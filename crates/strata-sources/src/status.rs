//! A running source's state as the API and `strata.sources` show it: what it is doing, what it
//! has consumed, its last error and its lag. Kept in memory by the supervisor (a restart starts
//! the counts from zero), written by the source's task, read by any request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a source's task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Connecting to the broker, or setting up its consumer or subscriptions.
    Connecting,
    /// Connected and consuming.
    Running,
    /// The last attempt failed; the task retries after a backoff, and the state stays this
    /// until a connection works again.
    Failed,
    /// Deleted or shutting down (or its stored configuration no longer parses).
    Stopped,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Running => "running",
            SourceState::Failed => "failed",
            SourceState::Stopped => "stopped",
        }
    }
}

/// One source's live status. Counters are atomics so the write loop never waits on a reader.
#[derive(Debug)]
pub struct SourceStatus {
    state: Mutex<Progress>,
    messages: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

#[derive(Debug, Clone)]
struct Progress {
    state: SourceState,
    last_error: Option<String>,
    lag: Option<u64>,
}

/// A copy of a source's status at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub state: SourceState,
    /// Broker messages written and acknowledged.
    pub messages: u64,
    /// Events stored from them.
    pub accepted: u64,
    /// Events (or whole messages that were no events) refused, each in the error log.
    pub rejected: u64,
    pub last_error: Option<String>,
    /// Messages the broker still holds for this source (JetStream's `num_pending`); `None`
    /// where the broker does not say (MQTT).
    pub lag: Option<u64>,
}

impl Default for SourceStatus {
    fn default() -> Self {
        SourceStatus {
            state: Mutex::new(Progress {
                state: SourceState::Connecting,
                last_error: None,
                lag: None,
            }),
            messages: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }
}

impl SourceStatus {
    /// The status of a source that has no task (being deleted, or never started).
    pub fn stopped() -> Self {
        let status = SourceStatus::default();
        status.set_state(SourceState::Stopped);
        status
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Each update is one field assignment, so a panic elsewhere cannot leave it half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_state(&self, state: SourceState) {
        self.progress().state = state;
    }

    /// Records why the last attempt failed; the state becomes `failed`.
    pub fn fail(&self, error: &str) {
        let mut progress = self.progress();
        progress.state = SourceState::Failed;
        progress.last_error = Some(error.to_string());
    }

    pub fn set_lag(&self, lag: Option<u64>) {
        self.progress().lag = lag;
    }

    /// Counts messages whose events are durable and which were (or are about to be) acked.
    pub fn count(&self, messages: u64, accepted: u64, rejected: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    pub fn report(&self) -> StatusReport {
        let progress = self.progress().clone();
        StatusReport {
            state: progress.state,
            messages: self.messages.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            last_error: progress.last_error,
            lag: progress.lag,
        }
    }
}
