//! Rejections as error-log records, with the per-request budget that keeps one request from
//! flooding a tenant's error log.

use strata_core::ERROR_LOG_REQUEST_BYTES;
use strata_storage::ErrorRecord;

use crate::Rejection;

/// Cuts `text` to at most `limit` bytes on a character boundary, saying how long it was.
pub(crate) fn cap(text: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(text);
    if text.len() <= limit {
        return text.into_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes in all]", &text[..end], text.len())
}

/// The error-log records of a request's rejections. One request adds at most
/// [`ERROR_LOG_REQUEST_BYTES`]: past that, one record counts the rejections not kept (the
/// response still lists every one), so a 16 MiB body of tiny bad events cannot add gigabytes.
pub(crate) fn error_records(rejections: &[Rejection], time_ms: i64) -> Vec<ErrorRecord> {
    // Key, JSON punctuation and the stage/metric fields of one record, roughly.
    const RECORD_OVERHEAD_BYTES: usize = 128;
    let mut records = Vec::with_capacity(rejections.len());
    let mut bytes = 0usize;
    for (kept, r) in rejections.iter().enumerate() {
        bytes += r.reason.len() + r.payload.len() + RECORD_OVERHEAD_BYTES;
        if bytes > ERROR_LOG_REQUEST_BYTES {
            records.push(summary_record(rejections.len() - kept, r.index, time_ms));
            break;
        }
        records.push(ErrorRecord {
            time_ms,
            stage: r.stage.to_string(),
            reason: r.reason.clone(),
            payload: r.payload.clone(),
            index: Some(r.index as u64),
            metric: r.metric.clone(),
        });
    }
    records
}

fn summary_record(left: usize, from_index: usize, time_ms: i64) -> ErrorRecord {
    ErrorRecord {
        time_ms,
        stage: "log".to_string(),
        reason: format!(
            "{left} further rejected events of this request (from index {from_index}) are not \
             kept in the error log: one request may add at most {ERROR_LOG_REQUEST_BYTES} bytes \
             to it; the write response lists them all"
        ),
        payload: String::new(),
        index: Some(from_index as u64),
        metric: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(index: usize, payload_bytes: usize) -> Rejection {
        Rejection {
            index,
            stage: "parse",
            reason: "the event must be a JSON object, but it is a JSON number".to_string(),
            payload: "1".repeat(payload_bytes),
            metric: None,
        }
    }

    #[test]
    fn one_request_adds_a_bounded_share_to_the_error_log() {
        // 20,000 rejections of 1 KiB each: about 23 MiB of records without the budget.
        let rejections: Vec<Rejection> = (0..20_000).map(|i| rejection(i, 1024)).collect();
        let records = error_records(&rejections, 7);
        let bytes: usize = records
            .iter()
            .map(|r| r.reason.len() + r.payload.len())
            .sum();
        assert!(bytes <= ERROR_LOG_REQUEST_BYTES, "{bytes}");
        let summary = records.last().expect("records");
        assert_eq!(summary.stage, "log");
        let kept = records.len() - 1;
        assert_eq!(summary.index, Some(kept as u64));
        assert!(
            summary
                .reason
                .starts_with(&format!("{} further rejected events", 20_000 - kept)),
            "{}",
            summary.reason
        );
        // A small request keeps every record and adds no summary.
        let few = error_records(&rejections[..3], 7);
        assert_eq!(few.len(), 3);
        assert!(few.iter().all(|r| r.stage == "parse"));
    }

    #[test]
    fn cap_cuts_on_a_character_boundary() {
        assert_eq!(cap(b"short", 10), "short");
        let capped = cap("ééé".as_bytes(), 3);
        assert!(
            capped.starts_with("é…[truncated, 6 bytes in all]"),
            "{capped}"
        );
    }
}
