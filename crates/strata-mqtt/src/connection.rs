//! One device connection: the CONNECT handshake, then publishes written in arrival order with
//! up to [`ConnectionLimits::max_inflight`] writes under way at once, each acknowledged only
//! once its write returned (after fsync), and in the order the publishes came, as MQTT
//! requires (3.1.1 §4.6, 5 §4.6).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use strata_core::topic::TopicTemplate;
use strata_core::TenantId;
use strata_write::WriteError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::door::MqttDoor;
use crate::protocol::{
    connect_level, Advertised, CodecError, ConnectRequest, Inbound, Outbound, PublishRequest,
    PublishVerdict, Version,
};

/// A change of a tenant's topic templates reaches its open connections within this long.
const TEMPLATES_REFRESH: Duration = Duration::from_secs(2);
/// Bytes an MQTT publish adds around its payload (fixed header, topic, properties): the
/// largest packet is the write body limit plus this.
const PACKET_OVERHEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// A CONNECT must arrive this soon after the TCP (or TLS) connection opens.
    pub connect_timeout: Duration,
    /// QoS 1 and 2 publishes whose writes may be under way at once (MQTT 5's receive maximum).
    pub max_inflight: usize,
}

/// What a finished write turns into.
struct Reply {
    pkid: u16,
    qos: u8,
    verdict: Result<PublishVerdict, WriteError>,
}

/// A write running as a task of its own. Not a future polled by the connection: the
/// connection stops polling while it awaits a socket write or a catalog read, and a write
/// suspended then, holding the catalog's write lock or a pool connection, stalled every other
/// connection's writes (a deadlock found by `strata bench protocols` with 256 writes in flight).
type PendingWrite = tokio::task::JoinHandle<Reply>;

/// The state of one authenticated connection.
struct Session<S> {
    version: Version,
    tenant: TenantId,
    peer: SocketAddr,
    door: Arc<MqttDoor>,
    templates: Arc<Vec<TopicTemplate>>,
    templates_read: Instant,
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    inbound: BytesMut,
    outbound: BytesMut,
    max_packet_bytes: usize,
    pending: FuturesOrdered<PendingWrite>,
}

/// Why a connection ends early.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    #[error("protocol violation: {0}")]
    Violation(String),
    #[error("write failed, publish not acknowledged: {0}")]
    Write(WriteError),
    #[error("no packet within 1.5 times the keep-alive of {0} s")]
    KeepAlive(u16),
}

pub(crate) async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    door: Arc<MqttDoor>,
    limits: ConnectionLimits,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let max_packet_bytes = door.max_payload_bytes() + PACKET_OVERHEAD_BYTES;
    let mut handshake = Handshake {
        reader,
        writer,
        inbound: BytesMut::with_capacity(4096),
        max_packet_bytes,
    };
    let connected = tokio::time::timeout(limits.connect_timeout, handshake.connect(&door, limits))
        .await
        .unwrap_or(Err(Closed::ConnectTimeout(limits.connect_timeout)));
    let (version, tenant, keep_alive_secs) = match connected {
        Ok(Some(connected)) => connected,
        Ok(None) => return,
        Err(error) => {
            tracing::info!(%peer, %error, "MQTT connection closed before CONNACK");
            return;
        }
    };
    let session = Session::open(handshake, version, tenant, peer, door).await;
    let mut session = match session {
        Ok(session) => session,
        Err(error) => return tracing::warn!(%peer, %error, "MQTT session could not start"),
    };
    let ended = session.run(keep_alive_secs, limits.max_inflight).await;
    session.settle().await;
    match ended {
        Ok(()) => tracing::debug!(%peer, "MQTT client disconnected"),
        Err(error) => tracing::info!(%peer, %error, "MQTT connection closed"),
    }
}

/// The connection before its CONNACK.
struct Handshake<S> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    inbound: BytesMut,
    max_packet_bytes: usize,
}

impl<S: AsyncRead + AsyncWrite> Handshake<S> {
    /// Reads the CONNECT and answers it. `Some((version, tenant, keep-alive))` when the client
    /// may publish; `None` after a refusal was sent.
    async fn connect(
        &mut self,
        door: &MqttDoor,
        limits: ConnectionLimits,
    ) -> Result<Option<(Version, TenantId, u16)>, Closed> {
        let version = self.version().await?;
        let request = self.connect_request(version).await?;
        let authenticated = door.authenticate(request.login.as_ref()).await;
        let advertised = Advertised {
            receive_max: u16::try_from(limits.max_inflight).unwrap_or(u16::MAX),
            max_packet_bytes: u32::try_from(self.max_packet_bytes).unwrap_or(u32::MAX),
        };
        let mut outbound = BytesMut::new();
        version.write(
            Outbound::ConnAck(authenticated.map(|_| advertised)),
            &mut outbound,
        )?;
        self.writer.write_all(&outbound).await?;
        self.writer.flush().await?;
        match authenticated {
            Ok(tenant) => {
                tracing::debug!(client = %request.client_id, %tenant, ?version, "MQTT client connected");
                Ok(Some((version, tenant, request.keep_alive_secs)))
            }
            Err(refusal) => {
                tracing::info!(client = %request.client_id, ?refusal, "MQTT login refused");
                Ok(None)
            }
        }
    }

    /// The protocol level of the CONNECT; 3.1 (level 3) is answered with "unacceptable
    /// protocol version" in 3.1.1's CONNACK, which its clients read the same.
    async fn version(&mut self) -> Result<Version, Closed> {
        loop {
            match connect_level(&self.inbound)? {
                Some(4) => return Ok(Version::V4),
                Some(5) => return Ok(Version::V5),
                Some(level) => {
                    // CONNACK, remaining length 2, no session, 0x01 unacceptable version.
                    self.writer.write_all(&[0x20, 2, 0, 1]).await?;
                    return Err(CodecError::UnsupportedLevel(level).into());
                }
                None => self.fill().await?,
            }
        }
    }

    async fn connect_request(&mut self, version: Version) -> Result<ConnectRequest, Closed> {
        loop {
            match version.read(&mut self.inbound, self.max_packet_bytes)? {
                Some(Inbound::Connect(request)) => return Ok(request),
                Some(_) => {
                    return Err(Closed::Violation("the first packet must be CONNECT".into()))
                }
                None => self.fill().await?,
            }
        }
    }

    async fn fill(&mut self) -> Result<(), Closed> {
        if self.reader.read_buf(&mut self.inbound).await? == 0 {
            return Err(Closed::Violation("closed before CONNECT".into()));
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Session<S> {
    async fn open(
        handshake: Handshake<S>,
        version: Version,
        tenant: TenantId,
        peer: SocketAddr,
        door: Arc<MqttDoor>,
    ) -> Result<Self, WriteError> {
        let templates = Arc::new(door.topic_templates(tenant).await?);
        Ok(Session {
            version,
            tenant,
            peer,
            door,
            templates,
            templates_read: Instant::now(),
            reader: handshake.reader,
            writer: handshake.writer,
            inbound: handshake.inbound,
            outbound: BytesMut::with_capacity(1024),
            max_packet_bytes: handshake.max_packet_bytes,
            pending: FuturesOrdered::new(),
        })
    }

    /// Reads packets and sends acknowledgements until the client disconnects or breaks a rule.
    async fn run(&mut self, keep_alive_secs: u16, max_inflight: usize) -> Result<(), Closed> {
        // MQTT 3.1.1 §3.1.2.10: a server may close after 1.5 keep-alive periods of silence.
        let silence_limit =
            (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        let mut last_heard = Instant::now();
        loop {
            while self.pending.len() < max_inflight {
                match self
                    .version
                    .read(&mut self.inbound, self.max_packet_bytes)?
                {
                    Some(Inbound::Disconnect) => return Ok(()),
                    Some(packet) => self.handle(packet).await?,
                    None => break,
                }
            }
            let deadline = silence_limit.map(|limit| last_heard + limit);
            tokio::select! {
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => {
                    let reply = reply.map_err(|e| Closed::Violation(format!("write task: {e}")))?;
                    self.acknowledge(reply).await?;
                }
                read = self.reader.read_buf(&mut self.inbound),
                    if self.pending.len() < max_inflight =>
                {
                    if read? == 0 {
                        return Ok(());
                    }
                    last_heard = Instant::now();
                }
                () = sleep_until(deadline) => return Err(Closed::KeepAlive(keep_alive_secs)),
            }
        }
    }

    async fn handle(&mut self, packet: Inbound) -> Result<(), Closed> {
        let answer = match packet {
            Inbound::Publish(publish) => return self.start_write(publish).await,
            // The write behind the PUBREC is durable already: complete at once.
            Inbound::PubRel { pkid } => Outbound::PubComp { pkid },
            Inbound::Subscribe { pkid, filters } => Outbound::SubAck { pkid, filters },
            Inbound::Unsubscribe { pkid, filters } => Outbound::UnsubAck { pkid, filters },
            Inbound::PingReq => Outbound::PingResp,
            Inbound::Connect(_) => return Err(Closed::Violation("a second CONNECT".into())),
            Inbound::Unexpected(name) => {
                return Err(Closed::Violation(format!("a client sent {name}")))
            }
            Inbound::Disconnect => return Ok(()),
        };
        self.send(answer).await
    }

    /// Queues the publish's write; it runs while later packets are read.
    async fn start_write(&mut self, publish: PublishRequest) -> Result<(), Closed> {
        if self.templates_read.elapsed() >= TEMPLATES_REFRESH {
            self.templates = Arc::new(
                self.door
                    .topic_templates(self.tenant)
                    .await
                    .map_err(Closed::Write)?,
            );
            self.templates_read = Instant::now();
        }
        let door = self.door.clone();
        let templates = self.templates.clone();
        let tenant = self.tenant;
        let PublishRequest {
            topic,
            qos,
            pkid,
            payload,
        } = publish;
        self.pending.push_back(tokio::spawn(async move {
            let verdict = door
                .publish(tenant, &templates, topic.as_deref(), payload)
                .await;
            Reply { pkid, qos, verdict }
        }));
        Ok(())
    }

    async fn acknowledge(&mut self, reply: Reply) -> Result<(), Closed> {
        let verdict = match reply.verdict {
            Ok(verdict) => verdict,
            // Not acknowledged: the client publishes it again after reconnecting, and the
            // writer stores an identical event once.
            Err(error) => return Err(Closed::Write(error)),
        };
        let pkid = reply.pkid;
        match reply.qos {
            1 => self.send(Outbound::PubAck { pkid, verdict }).await,
            2 => self.send(Outbound::PubRec { pkid, verdict }).await,
            _ => Ok(()),
        }
    }

    async fn send(&mut self, packet: Outbound) -> Result<(), Closed> {
        self.outbound.clear();
        self.version.write(packet, &mut self.outbound)?;
        self.writer.write_all(&self.outbound).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Waits for the writes under way (they run to the end even unawaited), to log their
    /// failures; nothing is acknowledged any more.
    async fn settle(&mut self) {
        while let Some(reply) = self.pending.next().await {
            match reply {
                Ok(Reply {
                    verdict: Err(error),
                    ..
                }) => {
                    tracing::warn!(peer = %self.peer, %error, "MQTT write failed while closing")
                }
                Ok(_) => {}
                Err(error) => tracing::error!(peer = %self.peer, %error, "MQTT write task failed"),
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
