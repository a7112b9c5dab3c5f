//! Disk space: what a run will need where the server keeps its data, and what is free there.
//! A long run (100M events) needs tens of GB; finding out after an hour of ingest that the disk
//! is full wastes the hour and leaves a broken server behind.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// Hot-tier bytes per ingested line of the default workload (data directory size over lines
/// sent, duplicates included). Measured: debug-build `strata bench ingest --spawn` runs of 4M
/// and 8M events left 539.7 MB and 933.2 MB (97 bytes per added line, 116 bytes per line
/// overall at 8M: journals and not yet merged tables are a large share of a small store);
/// the 20M-event release run of docs/benchmarks.md left 2,526 MiB of hot tier for 20.2M lines
/// (131 bytes per line). The largest, rounded, so the estimate errs on the safe side.
pub const HOT_BYTES_PER_LINE: f64 = 130.0;
/// Parquet bytes per compacted row of the workload: 508.7 MiB for 20,000,000 rows in the
/// 20M-event analytics run of docs/benchmarks.md.
pub const COLD_BYTES_PER_ROW: f64 = 26.7;
/// Below this multiple of the estimate, a run is allowed but warned about: the estimate is
/// an average, and the hot tier's journal and memtable flushes need room beyond it at times.
pub const COMFORT_FACTOR: f64 = 1.5;

/// What a run is expected to write to the server's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiskEstimate {
    /// Lines the run will ingest (duplicates included: they reach the journal too).
    pub lines: u64,
    /// Rows the run will compact into Parquet (0 without compaction).
    pub compacted_rows: u64,
    pub hot_bytes: u64,
    pub cold_bytes: u64,
}

/// Whether the free space is enough for an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskVerdict {
    Enough,
    /// More than the estimate but less than [`COMFORT_FACTOR`] times it.
    Tight,
    /// Less than the estimate: the run would fill the disk.
    Insufficient,
}

impl DiskEstimate {
    /// The hot tier keeps its rows after a compaction until its own LSM compaction reclaims
    /// them, so a run that compacts needs room for both copies.
    pub fn new(lines: u64, compacted_rows: u64) -> DiskEstimate {
        DiskEstimate {
            lines,
            compacted_rows,
            hot_bytes: (lines as f64 * HOT_BYTES_PER_LINE).ceil() as u64,
            cold_bytes: (compacted_rows as f64 * COLD_BYTES_PER_ROW).ceil() as u64,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.hot_bytes.saturating_add(self.cold_bytes)
    }

    pub fn verdict(&self, free_bytes: u64) -> DiskVerdict {
        let need = self.total_bytes() as f64;
        let free = free_bytes as f64;
        if free < need {
            DiskVerdict::Insufficient
        } else if free < need * COMFORT_FACTOR {
            DiskVerdict::Tight
        } else {
            DiskVerdict::Enough
        }
    }
}

/// Bytes available to an unprivileged writer on the file system holding `path` (the nearest
/// existing ancestor when `path` does not exist yet).
pub fn free_bytes(path: &Path) -> Result<u64, BenchError> {
    let existing = path
        .ancestors()
        .find(|candidate| candidate.exists())
        .ok_or_else(|| {
            BenchError::InvalidConfig(format!("{} has no existing ancestor", path.display()))
        })?;
    let stats = rustix::fs::statvfs(existing).map_err(std::io::Error::from)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Bytes as GiB with one decimal, for messages.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_adds_hot_and_cold() {
        let estimate = DiskEstimate::new(1_000_000, 500_000);
        assert_eq!(
            estimate.hot_bytes,
            (1_000_000.0 * HOT_BYTES_PER_LINE).ceil() as u64
        );
        assert_eq!(
            estimate.cold_bytes,
            (500_000.0 * COLD_BYTES_PER_ROW).ceil() as u64
        );
        assert_eq!(
            estimate.total_bytes(),
            estimate.hot_bytes + estimate.cold_bytes
        );
        assert_eq!(DiskEstimate::new(0, 0).total_bytes(), 0);
    }

    #[test]
    fn verdicts() {
        let estimate = DiskEstimate::new(1_000_000, 0);
        let need = estimate.total_bytes();
        assert_eq!(estimate.verdict(need - 1), DiskVerdict::Insufficient);
        assert_eq!(estimate.verdict(need), DiskVerdict::Tight);
        assert_eq!(
            estimate.verdict((need as f64 * COMFORT_FACTOR) as u64 + 1),
            DiskVerdict::Enough
        );
        assert_eq!(estimate.verdict(0), DiskVerdict::Insufficient);
        assert_eq!(DiskEstimate::new(0, 0).verdict(0), DiskVerdict::Enough);
    }

    #[test]
    fn free_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        // A path that does not exist yet is measured on its existing ancestor.
        let later = dir.path().join("not").join("yet");
        let free_later = free_bytes(&later).unwrap();
        // Same file system; other processes may write in between, so allow some drift.
        assert!(free_later.abs_diff(free) < 1024 * 1024 * 1024);
        assert_eq!(gib(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
