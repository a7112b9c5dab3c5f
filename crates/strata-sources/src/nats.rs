//! The NATS JetStream source: a durable pull consumer on one stream and subject filter. Each
//! batch of messages is written through the sink, and each message is acknowledged only after
//! that write returned (explicit acks: acking one message never acknowledges another). After a
//! crash the unacknowledged messages are redelivered once the ack wait passes, and the
//! writer's content hashing stores each event once.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{Context, ErrorCode, Message};
use futures::StreamExt;

use crate::config::NatsConfig;
use crate::seam::{Source, SourceContext, SourceFailure};
use crate::sink::Payload;

/// Most messages written (and then acknowledged) together.
pub const NATS_MAX_BATCH: usize = 1_000;
/// How long JetStream waits for an acknowledgement before redelivering: the longest a message
/// of a crashed server waits to be consumed again.
pub const NATS_ACK_WAIT: Duration = Duration::from_secs(10);
/// Connecting, and each JetStream management request, give up after this.
const NATS_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// With no message for this long, the lag is read from the consumer's info.
const LAG_REFRESH: Duration = Duration::from_secs(2);

pub struct NatsSource {
    consumer_name: String,
    config: NatsConfig,
}

impl NatsSource {
    /// The consumer is `config.durable`, or `strata-<id>`.
    pub fn new(id: &str, config: NatsConfig) -> Self {
        NatsSource {
            consumer_name: config
                .durable
                .clone()
                .unwrap_or_else(|| format!("strata-{id}")),
            config,
        }
    }

    /// How to connect: credentials, and TLS for a `tls://` URL (with `ca_file`'s roots).
    fn connect_options(&self) -> Result<async_nats::ConnectOptions, SourceFailure> {
        let address = self
            .config
            .address()
            .map_err(|e| SourceFailure(e.to_string()))?;
        let mut options = async_nats::ConnectOptions::new()
            .name("strata")
            .connection_timeout(NATS_REQUEST_TIMEOUT)
            // A lost connection ends this attempt; the supervisor's backoff reconnects.
            .max_reconnects(1)
            .require_tls(address.tls);
        if let (Some(username), Some(password)) = (&self.config.username, &self.config.password) {
            options = options.user_and_password(username.clone(), password.clone());
        }
        if let Some(token) = &self.config.token {
            options = options.token(token.clone());
        }
        if let Some(ca_file) = &self.config.ca_file {
            options = options.add_root_certificates(ca_file.into());
        }
        Ok(options)
    }

    /// One connection and its JetStream context, both with [`NATS_REQUEST_TIMEOUT`].
    async fn connect(&self) -> Result<(async_nats::Client, Context), SourceFailure> {
        let client = self
            .connect_options()?
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| SourceFailure::of("connecting to NATS", e))?;
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(NATS_REQUEST_TIMEOUT);
        Ok((client, jetstream))
    }

    async fn consumer(&self) -> Result<(async_nats::Client, PullConsumer), SourceFailure> {
        let (client, jetstream) = self.connect().await?;
        let stream = jetstream
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| SourceFailure::of(&format!("stream {:?}", self.config.stream), e))?;
        let consumer = stream
            .get_or_create_consumer(&self.consumer_name, self.consumer_config())
            .await
            .map_err(|e| SourceFailure::of(&format!("consumer {:?}", self.consumer_name), e))?;
        Ok((client, consumer))
    }

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer_name.clone()),
            filter_subject: self.config.subject.clone(),
            deliver_policy: DeliverPolicy::All,
            // Never `All`: acking a later message would acknowledge earlier ones still
            // unwritten (redeliveries of a crashed server's batch).
            ack_policy: AckPolicy::Explicit,
            ack_wait: NATS_ACK_WAIT,
            max_ack_pending: i64::try_from(NATS_MAX_BATCH * 4).unwrap_or(i64::MAX),
            ..pull::Config::default()
        }
    }

    /// Writes one batch, then acknowledges each of its messages.
    async fn write_and_ack(
        &self,
        context: &SourceContext,
        messages: &[Message],
    ) -> Result<(), SourceFailure> {
        let metric = self.config.metric.as_deref();
        let payloads: Vec<Payload<'_>> = messages
            .iter()
            .map(|message| Payload {
                bytes: &message.payload,
                size: message.payload.len(),
                metric,
                fields: &[],
            })
            .collect();
        context
            .sink()
            .write_batch(&payloads)
            .await
            .map_err(|e| SourceFailure(e.to_string()))?;
        // Only now: every event of the batch is durable or in the error log.
        for message in messages {
            message
                .ack()
                .await
                .map_err(|e| SourceFailure::of("acknowledging to NATS", e))?;
        }
        if let Some(last) = messages.last().and_then(|m| m.info().ok()) {
            context.status().set_lag(Some(last.pending));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for NatsSource {
    async fn run(&self, context: &mut SourceContext) -> Result<(), SourceFailure> {
        let (client, consumer) = tokio::select! {
            connected = self.consumer() => connected?,
            () = context.stopped() => return Ok(()),
        };
        let mut batches = consumer
            .stream()
            .max_messages_per_batch(NATS_MAX_BATCH)
            .messages()
            .await
            .map_err(|e| SourceFailure::of("pulling from JetStream", e))?
            .ready_chunks(NATS_MAX_BATCH);
        context.connected();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(LAG_REFRESH, batches.next()) => next,
                () = context.stopped() => break,
            };
            let Ok(batch) = next else {
                let info = consumer
                    .get_info()
                    .await
                    .map_err(|e| SourceFailure::of("reading the consumer's info", e))?;
                context.status().set_lag(Some(info.num_pending));
                continue;
            };
            let batch = batch.ok_or_else(|| SourceFailure("the JetStream pull ended".into()))?;
            let messages = batch
                .into_iter()
                .collect::<Result<Vec<Message>, _>>()
                .map_err(|e| SourceFailure::of("pulling from JetStream", e))?;
            self.write_and_ack(context, &messages).await?;
        }
        // Acknowledgements are buffered; send them before the connection closes.
        client
            .flush()
            .await
            .map_err(|e| SourceFailure::of("flushing acknowledgements", e))
    }

    /// Deletes the consumer `strata-<id>` Strata created, so the server stops keeping its
    /// pending messages and state. A consumer named in `durable` is the user's (shared, or to
    /// be resumed by a new source) and stays.
    async fn clean_up(&self) -> Result<(), SourceFailure> {
        if self.config.durable.is_some() {
            tracing::info!(consumer = %self.consumer_name, "the named consumer stays on the server");
            return Ok(());
        }
        let (_client, jetstream) = self.connect().await?;
        match jetstream
            .delete_consumer_from_stream(&self.consumer_name, &self.config.stream)
            .await
        {
            Ok(_) => {
                tracing::info!(consumer = %self.consumer_name, "deleted the source's consumer");
                Ok(())
            }
            // Never created (the source never connected), or already gone with its stream.
            Err(error) if already_gone(&error.kind()) => Ok(()),
            Err(error) => Err(SourceFailure::of(
                &format!("deleting consumer {:?}", self.consumer_name),
                error,
            )),
        }
    }
}

fn already_gone(kind: &ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(error)
        if [ErrorCode::CONSUMER_NOT_FOUND, ErrorCode::STREAM_NOT_FOUND].contains(&error.error_code()))
}
