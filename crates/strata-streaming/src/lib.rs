//! Streaming SQL: queries that keep answering as events are committed.
//!
//! A live query ([`live::LiveQueries::start`]) plans its SQL once in the tenant's sealed
//! session, sends the answer now, then follows the committed-event stream of the write
//! library. A filter and projection over one metric (a tail) runs its own plan on each
//! committed batch of that metric, with the metric's scan replaced by the new rows, so aliases,
//! casts and filters apply exactly as in `/sql`. A grouped query with decomposable aggregates
//! keeps partial aggregates per group and merges each batch into them (`live/buckets.rs`). Any
//! other query is re-run when one of its metrics changes, at most once per interval.
//!
//! Never imports the server or the node: the HTTP door only encodes [`live::LiveEvent`]s.

pub mod error;
pub mod live;
pub mod rollup;

pub use error::StreamingError;
pub use live::{LiveConfig, LiveEvent, LiveMode, LiveQueries, LiveQuery};
pub use rollup::{RollupConfig, RollupInfo, Rollups};
