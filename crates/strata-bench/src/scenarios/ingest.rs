//! Durable ingest throughput: N client threads post NDJSON batches of B events and count what
//! the server acknowledged (it acknowledges only after fsync).
//!
//! By default the workload is generated before the clock runs, in chunks of bounded memory:
//! generate a chunk (clock stopped), send it with every client (clock running), repeat. On a
//! 2-core machine a generator running beside the server would otherwise take CPU from the very
//! thing being measured.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_client::Client;

use crate::generator::{Generator, GeneratorConfig, GeneratorStats};
use crate::plot::{write_latency_plot_if_any, write_rate_plot, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, thousands, ReportRow, ReportRows, RunInfo};
use crate::scenarios::{check_counts, peak_rss_kib, BenchTarget, CountCheck};
use crate::schema::{apply_schema, workload_schema, SchemaSetupReport};
use crate::stats::{rate_per_second, LatencySummary, RateSample};
use crate::BenchError;

pub const MAX_CLIENTS: usize = 256;
pub const MAX_BATCH_EVENTS: usize = 100_000;
/// Default bytes of NDJSON pregenerated at once (one chunk): about 3M events, so even a 20M
/// event run pauses only a handful of times while staying far below the machine's memory.
pub const DEFAULT_CHUNK_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest allowed chunk.
pub const MAX_CHUNK_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// Failures whose messages a report keeps.
const MAX_FAILURES_KEPT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestConfig {
    pub workload: GeneratorConfig,
    /// Concurrent HTTP clients (threads).
    pub clients: usize,
    /// Events per write request.
    pub batch_size: usize,
    /// Declare the workload schema (types, aliases, series keys) before ingest.
    pub apply_schema: bool,
    /// Generate batches while the clock is stopped, so the generator does not compete with
    /// the server for CPU during the measurement. Otherwise a thread generates while sending.
    pub pregenerate: bool,
    /// With `pregenerate`, the most NDJSON bytes generated at once; a larger workload is sent
    /// in several chunks and only the sending time counts.
    pub chunk_bytes: u64,
    /// Afterwards, compare `count(*)` of both metrics with the generator's distinct count.
    pub verify_counts: bool,
    /// The server's pid, to report its peak RSS (VmHWM, since the server started).
    pub server_pid: Option<u32>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            workload: GeneratorConfig::default(),
            clients: 4,
            batch_size: 5000,
            apply_schema: true,
            pregenerate: true,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            verify_counts: true,
            server_pid: None,
        }
    }
}

impl IngestConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        self.workload.validate()?;
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return Err(BenchError::InvalidConfig(format!(
                "clients must be 1..={MAX_CLIENTS}, got {}",
                self.clients
            )));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_EVENTS {
            return Err(BenchError::InvalidConfig(format!(
                "batch_size must be 1..={MAX_BATCH_EVENTS}, got {}",
                self.batch_size
            )));
        }
        if self.chunk_bytes == 0 || self.chunk_bytes > MAX_CHUNK_BYTES {
            return Err(BenchError::InvalidConfig(format!(
                "chunk_bytes must be 1..={MAX_CHUNK_BYTES}, got {}",
                self.chunk_bytes
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    pub run: RunInfo,
    pub parameters: IngestConfig,
    pub generated: GeneratorStats,
    pub schema: Option<SchemaSetupReport>,
    pub batches: u64,
    pub failed_batches: u64,
    /// The first few failure messages.
    pub failures: Vec<String>,
    /// Lines sent in batches that were acknowledged, duplicates included.
    pub lines_sent: u64,
    pub bytes_sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Time spent sending: from the first request to the last acknowledgement of each chunk,
    /// added up (generation pauses between chunks excluded).
    pub elapsed_s: f64,
    /// Pregenerated chunks sent (1 when the whole workload fit in one; 0 when streamed).
    pub chunks: u64,
    /// Time spent generating with the clock stopped (pregenerate only).
    pub generation_s: f64,
    /// Accepted (durable) events per second, duplicates included.
    pub events_per_s: f64,
    pub megabytes_per_s: f64,
    /// Round trip of one write request.
    pub batch_latency: Option<LatencySummary>,
    /// Accepted events per second of the run, for a plot.
    pub rate_per_second: Vec<RateSample>,
    pub server_peak_rss_kib: Option<u64>,
    pub counts: Option<CountCheck>,
}

impl IngestReport {
    /// Every batch acknowledged, nothing rejected, and the counts match when they were checked.
    pub fn passed(&self) -> bool {
        self.failed_batches == 0
            && self.rejected == 0
            && self.counts.as_ref().is_none_or(|counts| counts.ok)
    }
}

impl ReportRows for IngestReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = vec![
            ReportRow::new(
                "ingest",
                "events/s durable",
                format!("{:.0}", self.events_per_s),
                ">= 500000",
            ),
            ReportRow::new("ingest", "MB/s", format!("{:.1}", self.megabytes_per_s), ""),
            ReportRow::new(
                "ingest",
                "events accepted / rejected",
                format!("{} / {}", self.accepted, self.rejected),
                "0 rejected",
            ),
            ReportRow::new(
                "ingest",
                "clients x batch",
                format!(
                    "{} x {}",
                    self.parameters.clients, self.parameters.batch_size
                ),
                "",
            ),
            ReportRow::new("ingest", "sending time", self.sending_time_text(), ""),
        ];
        rows.extend(self.optional_rows());
        rows
    }
}

impl IngestReport {
    fn sending_time_text(&self) -> String {
        if self.chunks > 1 {
            format!(
                "{:.1} s ({} pregenerated chunks)",
                self.elapsed_s, self.chunks
            )
        } else {
            format!("{:.1} s", self.elapsed_s)
        }
    }

    /// Latency, memory and count rows, for the figures this run measured.
    fn optional_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let Some(latency) = &self.batch_latency {
            rows.push(ReportRow::new(
                "ingest",
                "batch p50 / p99",
                format!(
                    "{} / {}",
                    format_ms(latency.p50_ms),
                    format_ms(latency.p99_ms)
                ),
                "",
            ));
        }
        if let Some(rss) = self.server_peak_rss_kib {
            rows.push(ReportRow::new(
                "ingest",
                "server peak RSS",
                format!("{:.1} MiB", rss as f64 / 1024.0),
                "",
            ));
        }
        if let Some(counts) = &self.counts {
            rows.push(ReportRow::new(
                "ingest",
                "stored rows (readings + diagnostics)",
                format!("{} + {}", counts.readings, counts.diagnostics),
                &format!(
                    "{} + {}",
                    counts.expected_per_metric, counts.expected_per_metric
                ),
            ));
        }
        rows
    }
}

impl Plots for IngestReport {
    /// `PREFIX-rate.png` (events acknowledged in each second) and `PREFIX-batch-latency.png`
    /// (round trip of the write requests).
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut files = Vec::new();
        let shape = format!(
            "{} clients x {} events per request",
            self.parameters.clients,
            thousands(self.parameters.batch_size as u64)
        );
        if !self.rate_per_second.is_empty() {
            files.push(write_rate_plot(
                dir,
                &format!("{prefix}-rate"),
                &format!(
                    "{prefix}: {} events acknowledged, {shape}",
                    thousands(self.accepted)
                ),
                &self.rate_per_second,
                self.events_per_s,
            )?);
        }
        if let Some(latency) = &self.batch_latency {
            files.extend(write_latency_plot_if_any(
                dir,
                &format!("{prefix}-batch-latency"),
                &format!("{prefix}: write request round trip, {shape}"),
                &[LatencySeries::from_summary("write request", latency)],
            )?);
        }
        Ok(files)
    }
}

struct Batch {
    body: String,
    events: u64,
}

/// Where client threads take their next batch from.
enum BatchSource {
    Pregenerated(Mutex<std::vec::IntoIter<Batch>>),
    Streamed(Mutex<Receiver<Batch>>),
}

impl BatchSource {
    fn next(&self) -> Option<Batch> {
        // A poisoned lock means another client panicked; stopping is the only sane choice.
        match self {
            BatchSource::Pregenerated(batches) => batches.lock().ok()?.next(),
            BatchSource::Streamed(receiver) => receiver.lock().ok()?.recv().ok(),
        }
    }
}

/// What one client thread saw.
#[derive(Default)]
struct ClientTally {
    batches: u64,
    failed_batches: u64,
    failures: Vec<String>,
    lines_sent: u64,
    bytes_sent: u64,
    accepted: u64,
    rejected: u64,
    latencies: Vec<Duration>,
    /// (offset since start, accepted events) per acknowledged batch.
    acks: Vec<(Duration, u64)>,
}

fn next_batch(generator: &mut Generator, batch_size: usize) -> Option<Batch> {
    let mut body = String::with_capacity(batch_size * 320);
    let events = generator.next_batch(batch_size, &mut body);
    (events > 0).then_some(Batch {
        body,
        events: events as u64,
    })
}

fn run_client(
    client: &Client,
    write_key: &str,
    source: &BatchSource,
    start: Instant,
    progress: &dyn Progress,
) -> ClientTally {
    let mut tally = ClientTally::default();
    while let Some(batch) = source.next() {
        let bytes = batch.body.len() as u64;
        let sent_at = Instant::now();
        let result = client.write_ndjson(write_key, batch.body);
        let acked_at = Instant::now();
        tally.batches += 1;
        progress.advance(batch.events);
        match result {
            Ok(ack) => {
                tally.lines_sent += batch.events;
                tally.bytes_sent += bytes;
                tally.accepted += ack.accepted;
                tally.rejected += ack.rejected;
                tally.latencies.push(acked_at - sent_at);
                tally.acks.push((acked_at - start, ack.accepted));
                if let Some(first) = ack.errors.first() {
                    if tally.failures.len() < MAX_FAILURES_KEPT {
                        tally
                            .failures
                            .push(format!("rejected event {}: {}", first.index, first.error));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "write batch failed");
                tally.failed_batches += 1;
                if tally.failures.len() < MAX_FAILURES_KEPT {
                    tally.failures.push(error.to_string());
                }
            }
        }
    }
    tally
}

/// Runs the ingest scenario. Failed batches are counted and reported, not retried, so a
/// failing server shows up in the figures rather than hiding behind retries.
pub fn run_ingest(target: &BenchTarget, config: &IngestConfig) -> Result<IngestReport, BenchError> {
    run_ingest_with(target, config, &NoProgress)
}

/// [`run_ingest`] reporting progress (phase `"sending"`, in lines sent).
pub fn run_ingest_with(
    target: &BenchTarget,
    config: &IngestConfig,
    progress: &dyn Progress,
) -> Result<IngestReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("ingest", &target.base_url);
    let client = target.client()?;
    let schema = if config.apply_schema {
        Some(apply_schema(
            &client,
            &target.admin_key,
            &workload_schema(),
        )?)
    } else {
        None
    };

    let generator = Generator::new(config.workload.clone())?;
    // Lines include the duplicates, whose number is only known once generated: estimate.
    let expected_lines = (config.workload.distinct_events() as f64
        * (1.0 + config.workload.shares.duplicates))
        .round() as u64;
    progress.phase("sending", expected_lines);
    let context = SendContext {
        client: &client,
        write_key: &target.write_key,
        config,
        progress,
    };
    let sent = if config.pregenerate {
        context.send_pregenerated(generator)?
    } else {
        context.send_streamed(generator)?
    };

    let server_peak_rss_kib = match config.server_pid {
        Some(pid) => Some(peak_rss_kib(pid)?),
        None => None,
    };
    let counts = if config.verify_counts {
        progress.phase("counting", 0);
        Some(check_counts(&client, &target.read_key, &config.workload)?)
    } else {
        None
    };
    Ok(sent.into_report(run, config, schema, server_peak_rss_kib, counts))
}

/// Everything the clients sent and how long it took.
struct SentWorkload {
    tallies: Vec<ClientTally>,
    /// Sending time, to the last acknowledgement.
    elapsed: Duration,
    generated: GeneratorStats,
    chunks: u64,
    /// Time spent generating with the clock stopped.
    generation: Duration,
}

impl SentWorkload {
    fn into_report(
        self,
        run: RunInfo,
        config: &IngestConfig,
        schema: Option<SchemaSetupReport>,
        server_peak_rss_kib: Option<u64>,
        counts: Option<CountCheck>,
    ) -> IngestReport {
        let total = ClientTally::sum(self.tallies);
        let elapsed_s = self.elapsed.as_secs_f64();
        let per_second = |amount: f64| {
            if elapsed_s > 0.0 {
                amount / elapsed_s
            } else {
                0.0
            }
        };
        IngestReport {
            run,
            parameters: config.clone(),
            generated: self.generated,
            schema,
            batches: total.batches,
            failed_batches: total.failed_batches,
            failures: total.failures,
            lines_sent: total.lines_sent,
            bytes_sent: total.bytes_sent,
            accepted: total.accepted,
            rejected: total.rejected,
            elapsed_s,
            chunks: self.chunks,
            generation_s: self.generation.as_secs_f64(),
            events_per_s: per_second(total.accepted as f64),
            megabytes_per_s: per_second(total.bytes_sent as f64 / 1_000_000.0),
            batch_latency: LatencySummary::from_durations(&total.latencies),
            rate_per_second: rate_per_second(&total.acks),
            server_peak_rss_kib,
            counts,
        }
    }
}

impl ClientTally {
    /// All clients' tallies as one, keeping the first failures.
    fn sum(tallies: Vec<ClientTally>) -> ClientTally {
        let mut total = ClientTally::default();
        for tally in tallies {
            total.batches += tally.batches;
            total.failed_batches += tally.failed_batches;
            total.lines_sent += tally.lines_sent;
            total.bytes_sent += tally.bytes_sent;
            total.accepted += tally.accepted;
            total.rejected += tally.rejected;
            total.latencies.extend(tally.latencies);
            total.acks.extend(tally.acks);
            for failure in tally.failures {
                if total.failures.len() < MAX_FAILURES_KEPT {
                    total.failures.push(failure);
                }
            }
        }
        total
    }
}

/// The latest acknowledgement offset of any client, if any batch was acknowledged.
fn last_ack(tallies: &[ClientTally]) -> Option<Duration> {
    tallies
        .iter()
        .flat_map(|tally| tally.acks.iter().map(|(offset, _)| *offset))
        .max()
}

/// What every sending mode needs: where to send, how, and whom to tell.
struct SendContext<'a> {
    client: &'a Client,
    write_key: &'a str,
    config: &'a IngestConfig,
    progress: &'a dyn Progress,
}

impl SendContext<'_> {
    fn run_clients(
        &self,
        source: &BatchSource,
        start: Instant,
    ) -> Result<Vec<ClientTally>, BenchError> {
        run_clients(
            self.client,
            self.write_key,
            source,
            start,
            self.config.clients,
            self.progress,
        )
    }

    /// Generates a chunk with the clock stopped, sends it with the clock running, repeats.
    fn send_pregenerated(&self, mut generator: Generator) -> Result<SentWorkload, BenchError> {
        let mut tallies = Vec::new();
        let mut chunks = 0u64;
        let mut generation = Duration::ZERO;
        // Sending time of the chunks so far; each chunk's ack offsets are shifted by it so
        // the per-second series reads as one continuous run.
        let mut sending = Duration::ZERO;
        loop {
            let generating_since = Instant::now();
            let batches = next_chunk(&mut generator, self.config);
            generation += generating_since.elapsed();
            if batches.is_empty() {
                break;
            }
            chunks += 1;
            let source = BatchSource::Pregenerated(Mutex::new(batches.into_iter()));
            let start = Instant::now();
            let mut chunk_tallies = self.run_clients(&source, start)?;
            let chunk_elapsed = last_ack(&chunk_tallies).unwrap_or_else(|| start.elapsed());
            for tally in &mut chunk_tallies {
                for (offset, _) in &mut tally.acks {
                    *offset += sending;
                }
            }
            sending += chunk_elapsed;
            tallies.extend(chunk_tallies);
        }
        Ok(SentWorkload {
            tallies,
            elapsed: sending,
            generated: generator.stats().clone(),
            chunks,
            generation,
        })
    }

    /// Sends while a producer thread generates, through a bounded channel.
    fn send_streamed(&self, mut generator: Generator) -> Result<SentWorkload, BenchError> {
        let (sender, receiver) = sync_channel::<Batch>(self.config.clients * 2);
        let source = BatchSource::Streamed(Mutex::new(receiver));
        let batch_size = self.config.batch_size;
        let start = Instant::now();
        let (tallies, elapsed, generated) = std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                while let Some(batch) = next_batch(&mut generator, batch_size) {
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
                generator.stats().clone()
            });
            let tallies = self.run_clients(&source, start);
            // Dropping the receiver unblocks the producer even if every client died early.
            drop(source);
            let generated = producer
                .join()
                .map_err(|_| BenchError::ThreadPanicked("generator"))?;
            Ok::<_, BenchError>((tallies?, start.elapsed(), generated))
        })?;
        // Measure to the last acknowledgement, not to thread teardown.
        let elapsed = last_ack(&tallies).unwrap_or(elapsed);
        Ok(SentWorkload {
            tallies,
            elapsed,
            generated,
            chunks: 0,
            generation: Duration::ZERO,
        })
    }
}

/// Batches up to `config.chunk_bytes` of NDJSON (empty once the generator is exhausted).
fn next_chunk(generator: &mut Generator, config: &IngestConfig) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut chunk_bytes = 0u64;
    while chunk_bytes < config.chunk_bytes {
        match next_batch(generator, config.batch_size) {
            Some(batch) => {
                chunk_bytes += batch.body.len() as u64;
                batches.push(batch);
            }
            None => break,
        }
    }
    batches
}

fn run_clients(
    client: &Client,
    write_key: &str,
    source: &BatchSource,
    start: Instant,
    clients: usize,
    progress: &dyn Progress,
) -> Result<Vec<ClientTally>, BenchError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| scope.spawn(|| run_client(client, write_key, source, start, progress)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| BenchError::ThreadPanicked("ingest client"))
            })
            .collect()
    })
}
