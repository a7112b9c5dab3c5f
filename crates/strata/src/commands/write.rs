//! `strata write`: stream events from a file or stdin to the server in NDJSON batches.
//!
//! A reader thread turns input into batches while the main thread sends the previous one, so
//! parsing and the network overlap. Batches are sent one at a time and in order: the server's
//! durability wait (fsync) is per request, and ordered sends keep the progress and the
//! "failed at line N" message meaningful.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use strata_client::{ApiError, Client, Url};

use crate::cli::WriteArgs;
use crate::output;
use crate::records::{self, CountingReader, Record};

/// Retries of one batch after a connection error or a 5xx, before giving up.
const MAX_RETRIES: u32 = 5;
/// First backoff; doubled for each further retry (0.25 s .. 4 s), plus up to half again at
/// random; a `Retry-After` from the server replaces it.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Rejections kept for the final report; beyond this only the count grows (the server keeps
/// every rejected event in `strata.errors`).
const MAX_KEPT_REJECTIONS: usize = 10_000;
/// Rejections printed at the end in human output.
const MAX_PRINTED_REJECTIONS: usize = 100;
/// Batches prepared ahead of the one being sent.
const BATCHES_IN_FLIGHT: usize = 2;
const READ_BUFFER_BYTES: usize = 256 * 1024;
const NDJSON: &str = "application/x-ndjson";

/// The events of one request, and where each came from.
struct Batch {
    /// (line, record number) of each event, in body order: the answer's `errors[].index`
    /// indexes this.
    origins: Vec<(u64, u64)>,
    body: Bytes,
}

impl Batch {
    fn describe(&self) -> String {
        match (self.origins.first(), self.origins.last()) {
            (Some(first), Some(last)) if first.0 != last.0 => {
                format!("the batch of lines {}-{}", first.0, last.0)
            }
            (Some(first), _) => format!("the batch at line {}", first.0),
            _ => "an empty batch".to_string(),
        }
    }
}

/// One event the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: Option<u64>,
    pub number: Option<u64>,
    pub error: String,
}

#[derive(Default)]
struct Totals {
    accepted: u64,
    rejected: u64,
    sent: u64,
    rejections: Vec<Rejected>,
}

pub fn run(args: WriteArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect(&args.conn)?;
    let (input, total_bytes) = open_input(&args.input)?;
    let (counting, bytes_read) = CountingReader::new(input);
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, counting);
    let (first_byte, skipped_lines) =
        records::skip_leading_blank(&mut buffered).context("reading the input")?;
    let format = args
        .format
        .or_else(|| records::format_from_extension(&args.input))
        .unwrap_or_else(|| records::format_from_first_byte(first_byte));
    tracing::debug!(?format, "input format");
    let records = records::reader(format, buffered, 1 + skipped_lines);

    let mut url = client.url(&["api", "v1", "write"]);
    if let Some(metric) = &args.metric {
        url.query_pairs_mut().append_pair("metric", metric);
    }

    let progress = progress_bar(total_bytes);
    let started = Instant::now();
    let mut totals = Totals::default();
    let batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    let batch_bytes = usize::try_from(args.batch_bytes).unwrap_or(usize::MAX);

    let failure: Option<anyhow::Error> = std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(BATCHES_IN_FLIGHT);
        scope.spawn(move || make_batches(records, sender, batch_size, batch_bytes));
        send_all(
            &client,
            &url,
            receiver,
            &mut totals,
            &progress,
            &bytes_read,
            started,
        )
        .err()
        // Leaving the scope drops the receiver, so the reader stops at its next send.
    });
    progress.finish_and_clear();
    let elapsed = started.elapsed();

    report(args.conn.json, &totals, elapsed, failure.as_ref());
    Ok(match failure {
        Some(_) => ExitCode::FAILURE,
        // 3, not 2: clap exits 2 for usage errors, and a script must tell them apart.
        None if totals.rejected > 0 => ExitCode::from(SOME_REJECTED_EXIT_CODE),
        None => ExitCode::SUCCESS,
    })
}

/// `strata write`'s exit code when some events were rejected (the others stored).
pub const SOME_REJECTED_EXIT_CODE: u8 = 3;

fn open_input(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // Only a regular file has a meaningful size; a FIFO reports 0.
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), size))
}

fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    let bar = match total_bytes {
        Some(total) => {
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(total).with_style(style)
        }
        None => {
            let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            ProgressBar::new_spinner().with_style(style)
        }
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Groups records into batches bounded by count and bytes. A record larger than the byte bound
/// still goes, alone: the server decides whether it is too large and says so.
fn make_batches(
    records: Box<dyn Iterator<Item = anyhow::Result<Record>> + Send>,
    sender: SyncSender<anyhow::Result<Batch>>,
    batch_size: usize,
    batch_bytes: usize,
) {
    debug_assert!(batch_size > 0);
    let mut origins = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                // Send what was read before the bad input, then the error.
                if !origins.is_empty() {
                    let batch = Batch {
                        origins: std::mem::take(&mut origins),
                        body: Bytes::from(std::mem::take(&mut body)),
                    };
                    if sender.send(Ok(batch)).is_err() {
                        return;
                    }
                }
                let _ = sender.send(Err(err));
                return;
            }
        };
        debug_assert!(!record.json.contains(&b'\n'));
        if !origins.is_empty()
            && (origins.len() >= batch_size || body.len() + record.json.len() + 1 > batch_bytes)
        {
            let batch = Batch {
                origins: std::mem::take(&mut origins),
                body: Bytes::from(std::mem::take(&mut body)),
            };
            if sender.send(Ok(batch)).is_err() {
                return;
            }
        }
        origins.push((record.line, record.number));
        body.extend_from_slice(&record.json);
        body.push(b'\n');
    }
    if !origins.is_empty() {
        let _ = sender.send(Ok(Batch {
            origins,
            body: Bytes::from(body),
        }));
    }
}

fn send_all(
    client: &Client,
    url: &Url,
    batches: Receiver<anyhow::Result<Batch>>,
    totals: &mut Totals,
    progress: &ProgressBar,
    bytes_read: &Arc<AtomicU64>,
    started: Instant,
) -> anyhow::Result<()> {
    for batch in batches {
        let batch = batch?;
        let answer = send_with_retry(client, url, &batch, progress)
            .map_err(|err| anyhow!(err).context(format!("sending {}", batch.describe())))?;
        let outcome = apply_answer(&batch, &answer, totals)
            .with_context(|| format!("unexpected answer to {}: {answer}", batch.describe()))?;
        if outcome.accepted + outcome.rejected != batch.origins.len() as u64 {
            tracing::warn!(
                "the server counted {} accepted + {} rejected for {} events in {}",
                outcome.accepted,
                outcome.rejected,
                batch.origins.len(),
                batch.describe()
            );
        }
        totals.sent += batch.origins.len() as u64;
        progress.set_position(bytes_read.load(Ordering::Relaxed));
        progress.set_message(format!(
            "{} events, {:.0} events/s, {} rejected",
            totals.sent,
            rate(totals.sent, started.elapsed()),
            totals.rejected
        ));
    }
    Ok(())
}

fn send_with_retry(
    client: &Client,
    url: &Url,
    batch: &Batch,
    progress: &ProgressBar,
) -> Result<Value, ApiError> {
    let mut retries = 0;
    loop {
        match client.post_raw(url.clone(), NDJSON, batch.body.clone()) {
            Ok(answer) => return Ok(answer),
            Err(err) if err.is_retryable() && retries < MAX_RETRIES => {
                let wait = retry_wait(retries, err.retry_after());
                retries += 1;
                // Safe to resend: identical events are stored once.
                progress.suspend(|| {
                    tracing::warn!(
                        "{} failed ({err}); retry {retries}/{MAX_RETRIES} in {:.1}s",
                        batch.describe(),
                        wait.as_secs_f64()
                    )
                });
                std::thread::sleep(wait);
            }
            Err(err) => return Err(err),
        }
    }
}

/// How long to wait before retry number `retries + 1`: the server's `Retry-After` when it sent
/// one, else the doubling backoff; either way plus up to half of it at random, so clients
/// that failed together do not all come back in the same instant.
fn retry_wait(retries: u32, retry_after: Option<Duration>) -> Duration {
    let base = retry_after.unwrap_or(FIRST_BACKOFF * 2u32.pow(retries));
    base + base.mul_f64(jitter_fraction() / 2.0)
}

/// A number in [0, 1) that differs between processes and calls: std's hasher keys are random
/// per process and advance with each `RandomState`.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

struct Outcome {
    accepted: u64,
    rejected: u64,
}

/// Adds one batch's answer to the totals, mapping each error's batch-relative index back to the
/// event's line in the input.
fn apply_answer(batch: &Batch, answer: &Value, totals: &mut Totals) -> anyhow::Result<Outcome> {
    let count = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("no {key:?} count"))
    };
    let outcome = Outcome {
        accepted: count("accepted")?,
        rejected: count("rejected")?,
    };
    totals.accepted += outcome.accepted;
    totals.rejected += outcome.rejected;
    if let Some(Value::Array(errors)) = answer.get("errors") {
        for error in errors {
            if totals.rejections.len() >= MAX_KEPT_REJECTIONS {
                break;
            }
            let origin = error
                .get("index")
                .and_then(Value::as_u64)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| batch.origins.get(i));
            let message = error
                .get("error")
                .map(output::cell)
                .unwrap_or_else(|| "(no reason given)".to_string());
            totals.rejections.push(Rejected {
                line: origin.map(|o| o.0),
                number: origin.map(|o| o.1),
                error: without_body_line(&message),
            });
        }
    }
    Ok(outcome)
}

/// The server numbers NDJSON lines within the request body, which means nothing to the user:
/// every event is alone on its line there, so "on line N, column C" becomes "at column C".
fn without_body_line(message: &str) -> String {
    const PREFIX: &str = "malformed JSON on line ";
    if let Some(rest) = message.strip_prefix(PREFIX) {
        if let Some((_, after)) = rest.split_once(", column ") {
            return format!("malformed JSON at column {after}");
        }
    }
    message.to_string()
}

fn rate(events: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

fn report(as_json: bool, totals: &Totals, elapsed: Duration, failure: Option<&anyhow::Error>) {
    let events_per_second = rate(totals.accepted + totals.rejected, elapsed);
    if as_json {
        let errors: Vec<Value> = totals
            .rejections
            .iter()
            .map(|r| json!({ "line": r.line, "record": r.number, "error": r.error }))
            .collect();
        let summary = json!({
            "accepted": totals.accepted,
            "rejected": totals.rejected,
            "elapsed_seconds": elapsed.as_secs_f64(),
            "events_per_second": events_per_second,
            "errors": errors,
            "failure": failure.map(|f| format!("{f:#}")),
        });
        println!("{}", output::json(&summary));
    } else {
        println!(
            "accepted {}, rejected {} in {:.2}s ({:.0} events/s)",
            totals.accepted,
            totals.rejected,
            elapsed.as_secs_f64(),
            events_per_second
        );
        if !totals.rejections.is_empty() {
            println!("rejected events:");
            for r in totals.rejections.iter().take(MAX_PRINTED_REJECTIONS) {
                match (r.line, r.number) {
                    (Some(line), Some(number)) => {
                        println!("  line {line} (event {number}): {}", r.error)
                    }
                    _ => println!("  (unknown position): {}", r.error),
                }
            }
            let unlisted = totals
                .rejected
                .saturating_sub(MAX_PRINTED_REJECTIONS.min(totals.rejections.len()) as u64);
            if unlisted > 0 {
                println!(
                    "  ... and {unlisted} more; all are in the error log: strata sql 'SELECT * FROM strata.errors'"
                );
            }
        }
    }
    if let Some(failure) = failure {
        eprintln!("error: {failure:#}");
        eprintln!(
            "the events before that batch were stored; re-running the same input is safe (identical events are stored once)"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_wait_for_retry_after_or_the_backoff_plus_jitter() {
        let ms = |d: Duration| d.as_millis();
        let waits: Vec<Duration> = (0..50).map(|_| retry_wait(0, None)).collect();
        assert!(
            waits.iter().all(|w| ms(*w) >= 250 && ms(*w) < 375),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered: {waits:?}");
        let fourth = retry_wait(3, None);
        assert!(ms(fourth) >= 2000 && ms(fourth) < 3000, "{fourth:?}");
        let asked = retry_wait(0, Some(Duration::from_secs(5)));
        assert!(ms(asked) >= 5000 && ms(asked) < 7500, "{asked:?}");
    }

    use super::*;

    fn batch_of(lines: &[u64]) -> Batch {
        Batch {
            origins: lines
                .iter()
                .enumerate()
                .map(|(i, l)| (*l, i as u64 + 1))
                .collect(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn error_indexes_map_back_to_input_lines() {
        let batch = batch_of(&[3, 4, 9]);
        let mut totals = Totals::default();
        let answer = json!({"accepted": 1, "rejected": 2, "errors": [
            {"index": 0, "error": "missing timestamp"},
            {"index": 2, "error": "malformed JSON on line 3, column 7: expected value"},
        ]});
        apply_answer(&batch, &answer, &mut totals).unwrap();
        assert_eq!((totals.accepted, totals.rejected), (1, 2));
        assert_eq!(
            totals.rejections,
            vec![
                Rejected {
                    line: Some(3),
                    number: Some(1),
                    error: "missing timestamp".into()
                },
                Rejected {
                    line: Some(9),
                    number: Some(3),
                    error: "malformed JSON at column 7: expected value".into()
                },
            ]
        );
        assert!(apply_answer(&batch, &json!({"ok": true}), &mut totals).is_err());
    }

    #[test]
    fn batches_respect_count_and_byte_bounds() {
        let records: Vec<anyhow::Result<Record>> = (1..=5)
            .map(|n| {
                Ok(Record {
                    line: n * 2,
                    number: n,
                    json: format!("{{\"n\":{n}}}").into_bytes(),
                })
            })
            .collect();
        let (sender, receiver) = sync_channel(10);
        make_batches(Box::new(records.into_iter()), sender, 2, 1 << 20);
        let batches: Vec<Batch> = receiver.into_iter().map(Result::unwrap).collect();
        let shapes: Vec<Vec<u64>> = batches
            .iter()
            .map(|b| b.origins.iter().map(|o| o.0).collect())
            .collect();
        assert_eq!(shapes, vec![vec![2, 4], vec![6, 8], vec![10]]);
        assert_eq!(&batches[0].body[..], b"{\"n\":1}\n{\"n\":2}\n");

        let big: Vec<anyhow::Result<Record>> = vec![
            Ok(Record {
                line: 1,
                number: 1,
                json: vec![b'x'; 10],
            }),
            Ok(Record {
                line: 2,
                number: 2,
                json: vec![b'y'; 30],
            }),
            Ok(Record {
                line: 3,
                number: 3,
                json: vec![b'z'; 5],
            }),
            Err(anyhow!("bad input at line 4")),
        ];
        let (sender, receiver) = sync_channel(10);
        make_batches(Box::new(big.into_iter()), sender, 100, 20);
        let results: Vec<anyhow::Result<Batch>> = receiver.into_iter().collect();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap().origins, vec![(1, 1)]);
        assert_eq!(results[1].as_ref().unwrap().origins, vec![(2, 2)]);
        assert_eq!(results[2].as_ref().unwrap().origins, vec![(3, 3)]);
        assert!(results[3].is_err());
    }
}
