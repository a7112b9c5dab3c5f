//! Durable ingest through each front door (issue 19): the same events as HTTP JSON (NDJSON),
//! InfluxDB line protocol (`/api/v2/write`) and MQTT QoS 1 (one event per publish, and arrays
//! of events per publish), each acknowledged only after fsync. Bodies and payloads are built
//! before the clock runs; every phase's rows are counted afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Client as MqttClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};

use crate::report::{thousands, ReportRow, ReportRows, RunInfo};
use crate::scenarios::BenchTarget;
use crate::{BenchError, PlotFile, Plots};

/// Devices the events spread over (the MQTT topics' second segment).
const DEVICES: usize = 100;
/// First event time: a fixed instant, so runs are alike.
const BASE_MS: i64 = 1_800_000_000_000;
/// In-flight QoS 1 publishes per MQTT connection: the server's receive maximum.
const MQTT_INFLIGHT: u16 = 64;
/// How long the last acknowledgement of an MQTT phase may take.
const MQTT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolsConfig {
    /// Events of each phase.
    pub events: usize,
    /// HTTP clients (threads) of the JSON and line protocol phases.
    pub clients: usize,
    /// Events per HTTP request.
    pub batch_size: usize,
    /// MQTT connections, each with its own thread publishing.
    pub mqtt_connections: usize,
    /// Events per MQTT publish in the batched MQTT phase (a JSON array).
    pub mqtt_batch: usize,
    /// The server's MQTT listener, and the tenant name its logins use.
    pub mqtt_addr: Option<SocketAddr>,
    pub tenant: String,
}

impl ProtocolsConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let positive = [
            ("events", self.events),
            ("clients", self.clients),
            ("batch_size", self.batch_size),
            ("mqtt_connections", self.mqtt_connections),
            ("mqtt_batch", self.mqtt_batch),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(BenchError::InvalidConfig(format!(
                "{name} must be at least 1"
            ))),
            None => Ok(()),
        }
    }
}

/// One door's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoorFigures {
    pub door: String,
    pub events: u64,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// `count(*)` of the phase's metric afterwards.
    pub stored: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolsReport {
    pub run: RunInfo,
    pub parameters: ProtocolsConfig,
    pub doors: Vec<DoorFigures>,
}

impl ProtocolsReport {
    /// Every door stored every event once.
    pub fn failures(&self) -> Vec<String> {
        self.doors
            .iter()
            .filter(|door| door.stored != door.events)
            .map(|door| {
                format!(
                    "{}: {} events sent, {} stored",
                    door.door, door.events, door.stored
                )
            })
            .collect()
    }
}

impl ReportRows for ProtocolsReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let base = self.doors.first().map(|door| door.events_per_s);
        self.doors
            .iter()
            .map(|door| {
                let ratio = match base {
                    Some(base) if base > 0.0 => {
                        format!(" ({:.2}x HTTP JSON)", door.events_per_s / base)
                    }
                    _ => String::new(),
                };
                ReportRow::new(
                    "protocols",
                    &format!("{} durable ingest", door.door),
                    format!(
                        "{} events/s{ratio}",
                        thousands(door.events_per_s.round() as u64)
                    ),
                    "",
                )
            })
            .collect()
    }
}

impl Plots for ProtocolsReport {
    fn write_plots(
        &self,
        _dir: &std::path::Path,
        _prefix: &str,
    ) -> Result<Vec<PlotFile>, BenchError> {
        Ok(Vec::new())
    }
}

/// Runs the four phases on `target`'s tenant, each into its own metric.
pub fn run_protocols(
    target: &BenchTarget,
    config: &ProtocolsConfig,
) -> Result<ProtocolsReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("protocols", &target.base_url);
    let mut doors = vec![
        http_phase(
            target,
            config,
            "HTTP JSON (NDJSON)",
            "bench_http",
            ndjson_bodies(config),
            "/api/v1/write",
            "application/x-ndjson",
        )?,
        http_phase(
            target,
            config,
            "line protocol (/api/v2/write)",
            "bench_lp",
            line_bodies(config),
            "/api/v2/write?bucket=b&precision=ms",
            "text/plain",
        )?,
    ];
    if let Some(addr) = config.mqtt_addr {
        doors.push(mqtt_phase(target, config, addr, 1, "bench_mqtt")?);
        doors.push(mqtt_phase(
            target,
            config,
            addr,
            config.mqtt_batch,
            "bench_mqtt_batch",
        )?);
    }
    Ok(ProtocolsReport {
        run,
        parameters: config.clone(),
        doors,
    })
}

fn device(i: usize) -> usize {
    i % DEVICES
}

fn json_event(i: usize) -> String {
    format!(
        r#"{{"timestamp":{},"temp":{:.1},"hum":{}}}"#,
        BASE_MS + i as i64,
        (i % 1000) as f64 / 10.0,
        i % 100
    )
}

fn ndjson_bodies(config: &ProtocolsConfig) -> Vec<(usize, String)> {
    chunks(config.events, config.batch_size, |i| {
        let event = json_event(i);
        format!(
            r#"{{"metrictype":"bench_http","device":"d{}",{}"#,
            device(i),
            &event[1..]
        )
    })
}

fn line_bodies(config: &ProtocolsConfig) -> Vec<(usize, String)> {
    chunks(config.events, config.batch_size, |i| {
        format!(
            "bench_lp,device=d{} temp={:.1},hum={}i {}",
            device(i),
            (i % 1000) as f64 / 10.0,
            i % 100,
            BASE_MS + i as i64
        )
    })
}

/// Bodies of `batch` lines each, with their event counts.
fn chunks(events: usize, batch: usize, line: impl Fn(usize) -> String) -> Vec<(usize, String)> {
    (0..events)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(events);
            let body: Vec<String> = (start..end).map(&line).collect();
            (end - start, body.join("\n"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn http_phase(
    target: &BenchTarget,
    config: &ProtocolsConfig,
    door: &str,
    metric: &str,
    bodies: Vec<(usize, String)>,
    path: &str,
    content_type: &str,
) -> Result<DoorFigures, BenchError> {
    let http = reqwest::blocking::Client::builder()
        .timeout(target.request_timeout)
        .build()
        .map_err(|e| BenchError::Harness(format!("HTTP client: {e}")))?;
    let url = format!("{}{path}", target.base_url.trim_end_matches('/'));
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..config.clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    while let Some((_, body)) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let sent = http
                            .post(&url)
                            .bearer_auth(&target.write_key)
                            .header("content-type", content_type)
                            .body(body.clone())
                            .send();
                        match sent {
                            Ok(answer) if answer.status().is_success() => {}
                            Ok(answer) => failures.push(format!("HTTP {}", answer.status())),
                            Err(error) => failures.push(error.to_string()),
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed();
    if let Some(failure) = failures.first() {
        return Err(BenchError::Check(format!(
            "{door}: {} requests failed, first: {failure}",
            failures.len()
        )));
    }
    let events: usize = bodies.iter().map(|(count, _)| count).sum();
    figures(target, door, metric, events, elapsed)
}

fn figures(
    target: &BenchTarget,
    door: &str,
    metric: &str,
    events: usize,
    elapsed: Duration,
) -> Result<DoorFigures, BenchError> {
    let stored = target
        .client()?
        .sql(&target.read_key, &format!("SELECT count(*) FROM {metric}"))?
        .single_count()?;
    let elapsed_s = elapsed.as_secs_f64();
    Ok(DoorFigures {
        door: door.to_string(),
        events: events as u64,
        elapsed_s,
        events_per_s: if elapsed_s > 0.0 {
            events as f64 / elapsed_s
        } else {
            0.0
        },
        stored,
    })
}

/// MQTT QoS 1 with `per_publish` events per message (a JSON object for 1, else an array), on
/// `config.mqtt_connections` connections; timed from the first publish to the last PUBACK.
fn mqtt_phase(
    target: &BenchTarget,
    config: &ProtocolsConfig,
    addr: SocketAddr,
    per_publish: usize,
    metric: &str,
) -> Result<DoorFigures, BenchError> {
    let connections = config.mqtt_connections;
    // Connection c publishes the events of devices c, c + connections, ...: one topic each.
    let plans: Vec<Vec<(String, Vec<u8>)>> = (0..connections)
        .map(|c| mqtt_messages(config.events, per_publish, metric, c, connections))
        .collect();
    let door = if per_publish == 1 {
        "MQTT QoS 1 (1 event per publish)".to_string()
    } else {
        format!("MQTT QoS 1 ({per_publish} events per publish)")
    };
    let started = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(c, messages)| {
                scope.spawn(move || {
                    publish_all(addr, &config.tenant, &target.write_key, c, messages)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("publisher panicked".into()))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    if let Some(Err(failure)) = results.iter().find(|r| r.is_err()) {
        return Err(BenchError::Check(format!("{door}: {failure}")));
    }
    figures(target, &door, metric, config.events, elapsed)
}

/// The messages of one connection: the events of devices `connection`, `connection +
/// connections`, ..., `per_publish` of one device per message on the device's topic.
fn mqtt_messages(
    events: usize,
    per_publish: usize,
    metric: &str,
    connection: usize,
    connections: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut messages = Vec::new();
    for d in (connection..DEVICES).step_by(connections) {
        let indexes: Vec<usize> = (d..events).step_by(DEVICES).collect();
        for chunk in indexes.chunks(per_publish) {
            let list: Vec<String> = chunk.iter().map(|&i| json_event(i)).collect();
            let payload = if per_publish == 1 {
                list.concat()
            } else {
                format!("[{}]", list.join(","))
            };
            messages.push((format!("{metric}/d{d}"), payload.into_bytes()));
        }
    }
    messages
}

/// Publishes every message with QoS 1 and waits for each PUBACK.
fn publish_all(
    addr: SocketAddr,
    tenant: &str,
    key: &str,
    connection: usize,
    messages: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let mut options = MqttOptions::new(
        format!("bench-{connection}"),
        addr.ip().to_string(),
        addr.port(),
    );
    options.set_credentials(tenant, key);
    options.set_inflight(MQTT_INFLIGHT);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut connection_loop) = MqttClient::new(options, 256);
    let expected = messages.len();
    std::thread::scope(|scope| {
        let acks = scope.spawn(move || {
            let mut acked = 0;
            let deadline = Instant::now() + MQTT_DRAIN_TIMEOUT;
            for event in connection_loop.iter() {
                match event {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(error) => return Err(format!("connection: {error}")),
                }
                if acked == expected {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!("{acked} of {expected} PUBACKs before the timeout"));
                }
            }
            Err("the connection ended".to_string())
        });
        for (topic, payload) in messages {
            let published =
                client.publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone());
            if published.is_err() {
                // The event loop ended; its reader says why.
                break;
            }
        }
        let outcome = acks
            .join()
            .unwrap_or_else(|_| Err("PUBACK reader panicked".into()));
        let _ = client.disconnect();
        outcome
    })
}
