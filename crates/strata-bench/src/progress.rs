//! Progress reporting from inside a scenario. The library stays free of any terminal code: a
//! caller that wants a progress bar implements [`Progress`] (the `strata bench` CLI does it with
//! indicatif), everyone else passes [`NoProgress`].

/// Receives progress from a running scenario. Called from several client threads at once.
pub trait Progress: Sync {
    /// A new phase starts (`"sending"`, `"querying"`, ...) with `total` units of work to do
    /// (events, rows or queries; 0 when unknown).
    fn phase(&self, name: &str, total: u64);
    /// `amount` more units of the current phase are done.
    fn advance(&self, amount: u64);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _name: &str, _total: u64) {}
    fn advance(&self, _amount: u64) {}
}
