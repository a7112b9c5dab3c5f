//! One statement's entry in the query metrics of `GET /metrics` (issue 20): counted when it
//! starts, timed until its result is read to the end or dropped, and counted as an error when
//! it failed to start or its stream ended with an error.

use std::time::Instant;

use strata_core::telemetry::{DOOR_LABEL, QUERIES, QUERY_ERRORS, QUERY_SECONDS};

pub(crate) struct QueryMeter {
    door: &'static str,
    started: Instant,
    failed: bool,
}

impl QueryMeter {
    pub(crate) fn start(door: &'static str) -> Self {
        metrics::counter!(QUERIES, DOOR_LABEL => door).increment(1);
        QueryMeter {
            door,
            started: Instant::now(),
            failed: false,
        }
    }

    pub(crate) fn fail(&mut self) {
        self.failed = true;
    }
}

/// Recorded on drop, so a result the reader abandons (a closed connection, a `LIMIT` met by
/// the client) still counts with the time it ran.
impl Drop for QueryMeter {
    fn drop(&mut self) {
        let door = self.door;
        metrics::histogram!(QUERY_SECONDS, DOOR_LABEL => door)
            .record(self.started.elapsed().as_secs_f64());
        if self.failed {
            metrics::counter!(QUERY_ERRORS, DOOR_LABEL => door).increment(1);
        }
    }
}
