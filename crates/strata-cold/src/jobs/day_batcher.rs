//! Compaction's grouping of rows into files: one file per UTC day (several when a day has more
//! than `max_rows_per_file` rows), each row ordered by its series under the metric's current
//! series keys.

use std::collections::{HashMap, HashSet};

use strata_catalog::Metric;
use strata_core::{MetricId, NameId, TenantId};
use strata_storage::HotRow;
use strata_write::series::series_of_row;

use crate::encode::{encode_file, ColdRow, EncodedFile, NameSpec};
use crate::layout::{day_start_ms, file_path};
use crate::ColdError;

/// Every incoming name of the metric with the type its field declares now, and whether its
/// values are purged (a field hidden for the purge delay, see `hidden.rs`).
pub(super) fn name_specs(metric: &Metric, purged: &HashSet<String>) -> Vec<NameSpec> {
    metric
        .incoming
        .iter()
        .map(|incoming| NameSpec {
            id: incoming.id,
            name: incoming.name.clone(),
            declared: metric.field(&incoming.name).and_then(|f| f.field_type),
            purged: purged.contains(&incoming.name),
        })
        .collect()
}

/// Per series key, in key order: the incoming-name ids of its field in precedence order.
pub(super) fn series_key_names(metric: &Metric) -> Vec<Vec<NameId>> {
    metric
        .series_key_fields()
        .iter()
        .map(|field| {
            field
                .names
                .iter()
                .filter_map(|name| metric.incoming(name).map(|i| i.id))
                .collect()
        })
        .collect()
}

/// One encoded file ready to upload.
pub(super) struct Chunk {
    pub day_ms: i64,
    pub path: String,
    pub encoded: EncodedFile,
}

/// Collects rows per UTC day and encodes a file when a day is complete or full.
pub(super) struct DayBatcher<'a> {
    max_rows: usize,
    names: &'a [NameSpec],
    series_names: &'a [Vec<NameId>],
    tenant: TenantId,
    metric: MetricId,
    days: HashMap<i64, Vec<ColdRow>>,
}

impl<'a> DayBatcher<'a> {
    pub(super) fn new(
        max_rows: usize,
        names: &'a [NameSpec],
        series_names: &'a [Vec<NameId>],
        tenant: TenantId,
        metric: MetricId,
    ) -> Self {
        DayBatcher {
            max_rows,
            names,
            series_names,
            tenant,
            metric,
            days: HashMap::new(),
        }
    }

    /// Adds a row; answers the files that became complete or full.
    pub(super) fn push(&mut self, row: HotRow) -> Vec<Result<Chunk, ColdError>> {
        let day = day_start_ms(row.timestamp_ms);
        let series = if self.series_names.is_empty() {
            row.series
        } else {
            // The current series keys decide the order in the file, whatever keys were in
            // force when the row was written.
            series_of_row(&row.values, self.series_names)
        };
        let rows = self.days.entry(day).or_default();
        rows.push(ColdRow {
            timestamp_ms: row.timestamp_ms,
            series,
            content_hash: row.content_hash,
            values: row.values,
        });
        let mut out = Vec::new();
        if rows.len() >= self.max_rows {
            let full = std::mem::take(rows);
            out.push(self.encode(day, full));
        }
        // Hot rows arrive in hour order, so a day older than the current one is complete.
        let complete: Vec<i64> = self.days.keys().copied().filter(|d| *d < day).collect();
        for done in complete {
            if let Some(rows) = self.days.remove(&done) {
                if !rows.is_empty() {
                    out.push(self.encode(done, rows));
                }
            }
        }
        out
    }

    /// The files of the days still open, oldest first.
    pub(super) fn finish(mut self) -> Vec<Result<Chunk, ColdError>> {
        let mut days: Vec<(i64, Vec<ColdRow>)> = self.days.drain().collect();
        days.sort_unstable_by_key(|(day, _)| *day);
        days.into_iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(day, rows)| self.encode(day, rows))
            .collect()
    }

    fn encode(&self, day_ms: i64, rows: Vec<ColdRow>) -> Result<Chunk, ColdError> {
        let encoded = encode_file(rows, self.names)?;
        Ok(Chunk {
            day_ms,
            path: file_path(self.tenant, self.metric, day_ms, uuid::Uuid::new_v4()),
            encoded,
        })
    }
}
