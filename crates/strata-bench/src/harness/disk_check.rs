//! The free-disk check before a load: what the run will write (from the figures in
//! [`crate::disk`]) against the free space of the server's data directory, refusing a run that
//! would clearly fill the disk before an hour of ingest is wasted.

use super::session::Session;
use super::{refused, Context};
use crate::disk::{gib, DiskVerdict, HOT_BYTES_PER_LINE};
use crate::report::thousands;
use crate::{BenchError, DiskEstimate, GeneratorConfig};

/// What loading `workload` (plus `alias_rows` rows of the alias scenario) will write; with
/// `compacts`, the Parquet copy of every row too.
pub fn disk_estimate(workload: &GeneratorConfig, alias_rows: u64, compacts: bool) -> DiskEstimate {
    let distinct = workload.distinct_events();
    // Duplicates are sent, journaled and stored (then deduplicated by content), so they count.
    let lines = (distinct as f64 * (1.0 + workload.shares.duplicates)).round() as u64 + alias_rows;
    let compacted = if compacts { distinct + alias_rows } else { 0 };
    DiskEstimate::new(lines, compacted)
}

/// Compares the run's disk estimate with the free space of the server's data directory and
/// refuses to start (stopping a spawned server) when it is clearly too little. Without a known
/// data directory nothing can be checked: a long run says so.
pub fn check_disk(
    session: &mut Session,
    estimate: DiskEstimate,
    long: bool,
) -> Result<(), BenchError> {
    let Some(dir) = session.data_dir.clone() else {
        if long {
            eprintln!(
                "note: the server's data directory is unknown (pass --data-dir), so its free disk \
                 cannot be checked; this run needs about {}",
                gib(estimate.total_bytes())
            );
        }
        return Ok(());
    };
    let free = crate::free_bytes(&dir)
        .context(|| format!("reading the free space of {}", dir.display()))?;
    let need = describe_need(&estimate);
    match estimate.verdict(free) {
        DiskVerdict::Insufficient => {
            session.stop()?;
            return Err(refused(format!(
                "refusing to start: {need} in {}, where only {} is free. Free some space, \
                 load fewer events (--events), or run the server on a larger disk (for --spawn: \
                 TMPDIR=/path/on/larger/disk)",
                dir.display(),
                gib(free)
            )));
        }
        DiskVerdict::Tight => eprintln!(
            "warning: {need} in {}, and only {} is free: the run may fill the disk",
            dir.display(),
            gib(free)
        ),
        DiskVerdict::Enough if long => eprintln!(
            "long run: {need} in {}; {} is free",
            dir.display(),
            gib(free)
        ),
        DiskVerdict::Enough => {}
    }
    Ok(())
}

/// "the run needs about X (N lines x B bytes in the hot tier + ...)", for messages.
fn describe_need(estimate: &DiskEstimate) -> String {
    let mut text = format!(
        "the run needs about {} ({} lines x {HOT_BYTES_PER_LINE:.0} bytes in the hot tier",
        gib(estimate.total_bytes()),
        thousands(estimate.lines)
    );
    if estimate.compacted_rows > 0 {
        text.push_str(&format!(
            ", plus {} of Parquet for {} compacted rows",
            gib(estimate.cold_bytes),
            thousands(estimate.compacted_rows)
        ));
    }
    text.push_str("; an estimate)");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_estimate_counts_duplicates_aliases_and_parquet() {
        let workload = GeneratorConfig {
            trucks: 10,
            intervals: 100,
            ..GeneratorConfig::default()
        };
        // 2,000 distinct events, 1% sent twice.
        let hot_only = disk_estimate(&workload, 0, false);
        assert_eq!(hot_only.lines, 2020);
        assert_eq!(hot_only.compacted_rows, 0);
        assert_eq!(hot_only.cold_bytes, 0);
        let everything = disk_estimate(&workload, 500, true);
        assert_eq!(everything.lines, 2520);
        assert_eq!(everything.compacted_rows, 2500);
        assert!(everything.total_bytes() > hot_only.total_bytes());
        let text = describe_need(&everything);
        assert!(text.contains("2,520 lines"), "{text}");
        assert!(text.contains("2,500 compacted rows"), "{text}");
        assert!(text.contains("an estimate"), "{text}");
    }
}
