//! Crash injection for tests: when env `STRATA_FAULT_POINT` names a point, the process aborts
//! there (like kill -9: no destructors, no flushing). Points:
//! - `compaction.after_files`: files are written, the manifest is not committed;
//! - `compaction.after_commit`: the manifest is committed, the late index is not pruned;
//! - `retype.after_file`: a re-typed file is written, the manifest swap is not committed.

use std::sync::OnceLock;

pub const AFTER_FILES: &str = "compaction.after_files";
pub const AFTER_COMMIT: &str = "compaction.after_commit";
pub const RETYPE_AFTER_FILE: &str = "retype.after_file";

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            std::env::var("STRATA_FAULT_POINT")
                .ok()
                .filter(|p| !p.is_empty())
        })
        .as_deref()
}

/// Aborts the process if `point` is the armed fault point.
pub fn hit(point: &str) {
    if armed() == Some(point) {
        tracing::error!(point, "fault injection: aborting the process");
        std::process::abort();
    }
}
