//! Pure, synchronous parsing and normalization of `POST /api/v1/write` bodies: splitting a body
//! into events, finding each event's metric and timestamp, flattening and validating its fields,
//! hashing event and series identity, batching unknown-field statistics, and profiling what
//! devices send for schema suggestions.
//!
//! Nothing here does I/O or touches the catalog; the server resolves metrics and names between
//! [`metric_name`] and storage.

mod body;
mod error;
mod exact;
mod hash;
mod line;
mod metric;
mod normalize;
mod object;
mod profile;
mod stats;
mod timestamp;

pub use body::{events, split_body, BodyFormat, EventIter, RawEvent, PARALLEL_PARSE_MIN_BYTES};
pub use error::{
    BodyError, EventError, ACCEPTED_TIMESTAMP_FORMS, MAX_TIMESTAMP_TEXT, MIN_TIMESTAMP_TEXT,
};
pub use hash::{content_hash, series_hash, series_hash_of, series_hash_of_text, NO_SERIES};
pub use line::Precision;
pub use metric::{metric_name, MetricKeyConfig, DEFAULT_METRIC_KEY};
pub use normalize::{flatten_leaves, normalize, Field, NormalizedEvent, MAX_NESTING_DEPTH};
pub use object::EventObject;
pub use profile::{
    Candidate, KindCounts, MetricProfile, NameProfile, PerCandidate, ProfileAccumulator,
    SeriesShape, Shape, COUNTER_EXAMPLES, RESERVOIR_VALUES, SERIES_SHAPES_PER_METRIC,
    SHAPES_PER_METRIC,
};
pub use stats::{StatsAccumulator, StatsDelta, MAX_SAMPLES, MAX_SAMPLE_CHARS};
pub use timestamp::{
    parse_timestamp, parse_timestamp_in, validate_timestamp_pattern, TimestampConfig,
    AUTO_MICROS_BELOW, AUTO_MILLIS_BELOW, AUTO_SECONDS_BELOW,
};
