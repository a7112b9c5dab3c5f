//! The MQTT bridge: subscribes to topic filters on an external broker with QoS 1 and a
//! persistent session (`clean_session = false`, a stable client id), acknowledging each
//! publish by hand (PUBACK) only after the batch holding it was written. A publish whose
//! PUBACK never left (a crash, a lost connection) is resent by the broker when the session
//! resumes, and content hashing stores its events once.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};
use strata_core::topic::{effective_topic_templates, match_topic, TopicMatch, TopicTemplate};
use tokio::sync::mpsc;

use crate::config::MqttConfig;
use crate::seam::{Source, SourceContext, SourceFailure};
use crate::sink::Payload;

/// Most publishes written (and then acknowledged) together. A broker sends at most its
/// in-flight window unacknowledged (Mosquitto: 20), so batches are usually that size.
pub const MQTT_MAX_BATCH: usize = 1_000;
/// Ping interval the broker uses to notice a dead bridge.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A SUBACK slower than this fails the attempt.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an MQTT publish beyond its payload (fixed header, topic, packet id).
const PACKET_OVERHEAD_BYTES: usize = 64 * 1024;
/// MQTT's largest packet: the Remaining Length's four-byte encoding tops out at 268,435,455
/// bytes (256 MiB - 1), so no broker can send more.
pub const MQTT_MAX_PACKET_BYTES: usize = 268_435_455;
/// How many times the largest accepted message (plus header) a publish may be and still be read
/// whole, to be refused into the error log and acknowledged, rather than end the connection
/// (the broker would redeliver it at every reconnection: a wedged source). The bound keeps what
/// one oversized publish costs while it is read proportional to `--max-body-bytes`, and 16
/// times the default 16 MiB limit is already MQTT's maximum, so with the default limit no
/// publish can wedge the bridge. A publish above it (only with a smaller limit) still ends the
/// connection, and the error says so.
pub const OVERSIZED_READ_FACTOR: usize = 16;
/// Requests (acknowledgements, subscriptions) queued for the connection: more than a batch,
/// so acknowledging a whole batch never waits on the event loop.
const REQUEST_CAPACITY: usize = MQTT_MAX_BATCH * 2;

pub struct MqttSource {
    client_id: String,
    config: MqttConfig,
}

/// What the connection's event loop hands the consumer.
enum Incoming {
    Subscribed(Vec<rumqttc::SubscribeReasonCode>),
    Publish(Received),
    Failed(String),
}

/// A publish as the consumer keeps it. One over the message limit keeps only the beginning of
/// its payload (what the error log would keep anyway), so a batch of refused publishes costs
/// no more memory than accepted ones.
struct Received {
    publish: Publish,
    /// The payload's size as the broker sent it.
    size: usize,
}

/// How the pump trims what it receives (from the sink's limits).
#[derive(Clone, Copy)]
struct Trim {
    /// Larger payloads are refused: only `kept_bytes` of them are kept.
    max_message_bytes: usize,
    kept_bytes: usize,
    /// The connection's read limit, named in the error of a publish above it.
    max_packet_bytes: usize,
}

impl Trim {
    fn received(&self, mut publish: Publish) -> Received {
        let size = publish.payload.len();
        if size > self.max_message_bytes {
            // A copy, not a slice: a slice would keep the whole payload's buffer alive.
            let kept = &publish.payload[..size.min(self.kept_bytes)];
            publish.payload = bytes::Bytes::copy_from_slice(kept);
        }
        Received { publish, size }
    }
}

/// The largest packet the bridge reads (see [`OVERSIZED_READ_FACTOR`]).
pub fn max_incoming_packet_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_add(PACKET_OVERHEAD_BYTES)
        .saturating_mul(OVERSIZED_READ_FACTOR)
        .min(MQTT_MAX_PACKET_BYTES)
}

/// One connection's client and the topic templates read when it started.
struct Connection {
    client: AsyncClient,
    templates: Vec<TopicTemplate>,
}

/// Aborts the event-loop task when the attempt ends, whichever way.
struct PumpGuard(tokio::task::JoinHandle<()>);

impl Drop for PumpGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MqttSource {
    /// The session is `config.client_id`, or `strata-<id>`.
    pub fn new(id: &str, config: MqttConfig) -> Self {
        MqttSource {
            client_id: config
                .client_id
                .clone()
                .unwrap_or_else(|| format!("strata-{id}")),
            config,
        }
    }

    fn options(&self, max_message_bytes: usize) -> Result<MqttOptions, SourceFailure> {
        let address = self
            .config
            .address()
            .map_err(|e| SourceFailure(e.to_string()))?;
        let mut options = MqttOptions::new(&self.client_id, address.host, address.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(
                max_incoming_packet_bytes(max_message_bytes),
                PACKET_OVERHEAD_BYTES,
            );
        if let Some(username) = &self.config.username {
            options.set_credentials(username, self.config.password.clone().unwrap_or_default());
        }
        if address.tls {
            let tls = crate::tls::client_config(self.config.ca_file.as_deref())?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
        }
        Ok(options)
    }

    /// Subscribes to every filter with QoS 1 and waits for the broker to grant them all.
    /// Returns the publishes of a resumed session that arrived first, to be written first.
    async fn subscribe(
        &self,
        client: &AsyncClient,
        incoming: &mut mpsc::Receiver<Incoming>,
    ) -> Result<Vec<Received>, SourceFailure> {
        let filters = self
            .config
            .topics
            .iter()
            .map(|topic| SubscribeFilter::new(topic.clone(), QoS::AtLeastOnce));
        client
            .subscribe_many(filters)
            .await
            .map_err(|e| SourceFailure::of("subscribing", e))?;
        let mut early = Vec::new();
        let granted = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
            loop {
                match incoming.recv().await {
                    Some(Incoming::Subscribed(codes)) => return Ok(codes),
                    Some(Incoming::Failed(error)) => return Err(SourceFailure(error)),
                    // A resumed session's publishes can come first. The broker will not
                    // resend them on this connection, so they must be kept and acknowledged.
                    Some(Incoming::Publish(publish)) => early.push(publish),
                    None => return Err(SourceFailure("the MQTT connection closed".into())),
                }
            }
        })
        .await
        .map_err(|_| SourceFailure("the broker did not answer the subscription".into()))??;
        if let Some(refused) = granted
            .iter()
            .position(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure))
        {
            return Err(SourceFailure(format!(
                "the broker refused the subscription to {:?}",
                self.config.topics.get(refused).map_or("", String::as_str)
            )));
        }
        Ok(early)
    }

    /// What a publish's topic implies: the configured `metric` alone, else the first of the
    /// tenant's topic templates that matches (as on Strata's own MQTT listener: `{metric}` and
    /// `{metric}/{device}` by default), else nothing, and the events name their own metric.
    fn implied(&self, templates: &[TopicTemplate], topic: &str) -> Option<TopicMatch> {
        match &self.config.metric {
            Some(metric) => Some(TopicMatch {
                metric: metric.clone(),
                fields: Vec::new(),
            }),
            None => match_topic(templates, topic),
        }
    }

    /// Writes one batch, then sends each publish's PUBACK.
    async fn write_and_ack(
        &self,
        context: &SourceContext,
        connection: &Connection,
        batch: &[Received],
    ) -> Result<(), SourceFailure> {
        let implied: Vec<Option<TopicMatch>> = batch
            .iter()
            .map(|received| self.implied(&connection.templates, &received.publish.topic))
            .collect();
        let payloads: Vec<Payload<'_>> = batch
            .iter()
            .zip(&implied)
            .map(|(received, implied)| Payload {
                bytes: &received.publish.payload,
                size: received.size,
                metric: implied.as_ref().map(|m| m.metric.as_str()),
                fields: implied.as_ref().map_or(&[], |m| m.fields.as_slice()),
            })
            .collect();
        context
            .sink()
            .write_batch(&payloads)
            .await
            .map_err(|e| SourceFailure(e.to_string()))?;
        // Only now: every event of the batch is durable or in the error log.
        for received in batch {
            connection
                .client
                .ack(&received.publish)
                .await
                .map_err(|e| SourceFailure::of("acknowledging to the broker", e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for MqttSource {
    async fn run(&self, context: &mut SourceContext) -> Result<(), SourceFailure> {
        let max_message_bytes = context.sink().max_message_bytes();
        let options = self.options(max_message_bytes)?;
        let trim = Trim {
            max_message_bytes,
            kept_bytes: context.sink().kept_payload_bytes(),
            max_packet_bytes: max_incoming_packet_bytes(max_message_bytes),
        };
        let settings = context.tenant_settings().await?;
        let templates = effective_topic_templates(&settings.mqtt_topics)
            .map_err(|e| SourceFailure::of("the tenant's MQTT topic templates", e))?;
        let (client, event_loop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (sender, mut incoming) = mpsc::channel(MQTT_MAX_BATCH);
        let _pump = PumpGuard(tokio::spawn(pump(event_loop, sender, trim)));
        let early = tokio::select! {
            subscribed = self.subscribe(&client, &mut incoming) => subscribed?,
            () = context.stopped() => return Ok(()),
        };
        context.connected();
        let connection = Connection { client, templates };
        for batch in early.chunks(MQTT_MAX_BATCH) {
            self.write_and_ack(context, &connection, batch).await?;
        }
        loop {
            let first = tokio::select! {
                first = incoming.recv() => first,
                () = context.stopped() => break,
            };
            let mut batch = Vec::new();
            let mut next = first;
            loop {
                match next {
                    Some(Incoming::Publish(received)) => batch.push(received),
                    Some(Incoming::Subscribed(_)) => {}
                    Some(Incoming::Failed(error)) => return Err(SourceFailure(error)),
                    None => return Err(SourceFailure("the MQTT connection closed".into())),
                }
                if batch.len() >= MQTT_MAX_BATCH {
                    break;
                }
                match incoming.try_recv() {
                    Ok(more) => next = Some(more),
                    Err(_) => break,
                }
            }
            self.write_and_ack(context, &connection, &batch).await?;
        }
        // The PUBACKs are queued for the event loop; let it send them before closing.
        let _ = connection.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    /// Ends the persistent session `strata-<id>`: connecting with a clean session makes the
    /// broker discard it (MQTT 3.1.1 §3.1.2.4), its subscriptions and queued messages with it,
    /// and a clean session ends with its connection. A session named in `client_id` is the
    /// user's (to be resumed by a new source) and stays.
    async fn clean_up(&self) -> Result<(), SourceFailure> {
        if self.config.client_id.is_some() {
            tracing::info!(client_id = %self.client_id, "the named MQTT session stays on the broker");
            return Ok(());
        }
        // A clean session with no subscription receives no publish: the read limit is moot.
        let mut options = self.options(0)?;
        options.set_clean_session(true);
        let (client, mut event_loop) = AsyncClient::new(options, 1);
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(error) => return Err(SourceFailure::of("ending the MQTT session", error)),
            }
        }
        // The session is gone already; a DISCONNECT closes the connection politely.
        client
            .disconnect()
            .await
            .map_err(|e| SourceFailure::of("ending the MQTT session", e))?;
        while let Ok(event) = event_loop.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
        tracing::info!(client_id = %self.client_id, "ended the source's MQTT session");
        Ok(())
    }
}

/// Polls the connection, handing publishes (oversized ones trimmed), SUBACKs and the first
/// error to the consumer. Ends at the first error: reconnecting is the supervisor's job (with
/// its backoff).
async fn pump(mut event_loop: EventLoop, sender: mpsc::Sender<Incoming>, trim: Trim) {
    loop {
        let incoming = match event_loop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                Incoming::Publish(trim.received(publish))
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => Incoming::Subscribed(ack.return_codes),
            Ok(_) => continue,
            Err(error) => Incoming::Failed(connection_error(&error, trim.max_packet_bytes)),
        };
        let failed = matches!(incoming, Incoming::Failed(_));
        if sender.send(incoming).await.is_err() || failed {
            return;
        }
    }
}

/// The status's text for a lost connection. A publish over the read limit gets a sentence of
/// its own: the broker redelivers it at every reconnection, so it has to be removed there.
fn connection_error(error: &ConnectionError, max_packet_bytes: usize) -> String {
    use rumqttc::{Error as PacketError, StateError};
    match error {
        ConnectionError::MqttState(StateError::Deserialization(
            PacketError::PayloadSizeLimitExceeded(size),
        )) => format!(
            "MQTT connection: the broker sent a publish of {size} bytes, over the bridge's read \
             limit of {max_packet_bytes} bytes ({OVERSIZED_READ_FACTOR} times --max-body-bytes \
             plus header); it is redelivered at every reconnection until removed from the broker"
        ),
        other => format!("MQTT connection: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_limit_is_a_multiple_of_the_message_limit_up_to_mqtts_maximum() {
        let default = strata_core::Limits::default().write_body_bytes;
        assert_eq!(max_incoming_packet_bytes(default), MQTT_MAX_PACKET_BYTES);
        assert_eq!(
            max_incoming_packet_bytes(1024),
            (1024 + PACKET_OVERHEAD_BYTES) * OVERSIZED_READ_FACTOR
        );
        assert_eq!(max_incoming_packet_bytes(usize::MAX), MQTT_MAX_PACKET_BYTES);
    }

    #[test]
    fn an_oversized_publish_keeps_its_size_and_only_its_beginning() {
        let trim = Trim {
            max_message_bytes: 10,
            kept_bytes: 4,
            max_packet_bytes: 1_000,
        };
        let big = trim.received(Publish::new(
            "t",
            QoS::AtLeastOnce,
            b"0123456789ab".to_vec(),
        ));
        assert_eq!((big.size, &big.publish.payload[..]), (12, &b"0123"[..]));
        let small = trim.received(Publish::new("t", QoS::AtLeastOnce, b"0123456789".to_vec()));
        assert_eq!(
            (small.size, &small.publish.payload[..]),
            (10, &b"0123456789"[..])
        );
    }
}
