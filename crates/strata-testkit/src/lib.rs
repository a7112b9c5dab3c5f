//! What the test trees of `strata-query`, `strata-pgwire` and `strata` (the binary) share,
//! written once: a real SQLite catalog and a real hot store in a tempdir with events written
//! the way ingest writes them ([`Stores`]), the fixture vocabulary, and the rule for external
//! test clients (psql, Python, Node, emulators): skip loudly when missing, fail under
//! `STRATA_REQUIRE_CLIENTS=1` ([`available`]). Only a dev-dependency.

mod clients;
mod stores;

pub use clients::{available, last_line, probe, require_clients};
pub use stores::Stores;

use strata_core::Value;

/// 2015-01-12T10:12:15Z, the seed's "January 12, 2015 10:12:15" (a Monday).
pub const T0: i64 = 1_421_057_535_000;
pub const MINUTE: i64 = 60_000;

/// A string value.
pub fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}
