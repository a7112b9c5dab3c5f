//! The packets this door understands, the same for MQTT 3.1.1 and 5: `v4.rs` and `v5.rs`
//! translate each version's wire packets (rumqttc's `mqttbytes` codecs) to and from these, so
//! the connection loop is written once.

use bytes::{Bytes, BytesMut};

use crate::{v4, v5};

/// The protocol level a client asked for in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5 (protocol level 5).
    V5,
}

#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub client_id: String,
    pub keep_alive_secs: u16,
    /// `(username, password)`; the username names the tenant, the password is a write key.
    pub login: Option<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct PublishRequest {
    /// `None` when the topic is not UTF-8 or is empty (an MQTT 5 topic alias, not offered).
    pub topic: Option<String>,
    pub qos: u8,
    pub pkid: u16,
    pub payload: Bytes,
}

#[derive(Debug)]
pub(crate) enum Inbound {
    Connect(ConnectRequest),
    Publish(PublishRequest),
    PubRel {
        pkid: u16,
    },
    Subscribe {
        pkid: u16,
        filters: usize,
    },
    Unsubscribe {
        pkid: u16,
        filters: usize,
    },
    PingReq,
    Disconnect,
    /// A packet only a server sends (PUBACK, SUBACK, ...): a protocol violation.
    Unexpected(&'static str),
}

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectRefusal {
    /// No credentials, an unknown tenant or key, or a key of another tenant.
    BadCredentials,
    /// A valid key that may not write (a read key).
    NotAuthorized,
    /// The catalog could not be asked.
    Unavailable,
}

/// What became of one publish, as its acknowledgement says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishVerdict {
    /// Its accepted events are durable (the rejected ones are in `strata.errors`).
    Stored,
    /// Every event was rejected (each is in `strata.errors`).
    PayloadInvalid,
    /// The topic matches none of the tenant's templates.
    TopicRefused,
}

/// The limits a CONNACK advertises to MQTT 5 clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Advertised {
    pub receive_max: u16,
    pub max_packet_bytes: u32,
}

#[derive(Debug)]
pub(crate) enum Outbound {
    ConnAck(Result<Advertised, ConnectRefusal>),
    PubAck {
        pkid: u16,
        verdict: PublishVerdict,
    },
    PubRec {
        pkid: u16,
        verdict: PublishVerdict,
    },
    PubComp {
        pkid: u16,
    },
    /// Every subscription is refused: the door takes events in, it does not route them out.
    SubAck {
        pkid: u16,
        filters: usize,
    },
    UnsubAck {
        pkid: u16,
        filters: usize,
    },
    PingResp,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("malformed MQTT packet: {0}")]
    Malformed(String),
    #[error("MQTT packet of {size_bytes} bytes; the limit is {limit_bytes}")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("MQTT protocol level {0} is not supported (3.1.1 and 5 are)")]
    UnsupportedLevel(u8),
}

impl Version {
    /// The next whole packet in `buf`, or `None` until more bytes arrive.
    pub fn read(self, buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Inbound>, CodecError> {
        match self {
            Version::V4 => v4::read(buf, max_bytes),
            Version::V5 => v5::read(buf, max_bytes),
        }
    }

    pub fn write(self, packet: Outbound, buf: &mut BytesMut) -> Result<(), CodecError> {
        match self {
            Version::V4 => v4::write(packet, buf),
            Version::V5 => v5::write(packet, buf),
        }
    }
}

/// The protocol level of the CONNECT at the start of `buf`, or `None` until enough bytes
/// arrived. The level decides which codec reads the rest of the connection.
pub(crate) fn connect_level(buf: &[u8]) -> Result<Option<u8>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first >> 4 != 1 {
        return Err(CodecError::Malformed(
            "the first packet of a connection must be CONNECT".into(),
        ));
    }
    // Fixed header: 1 type byte, then a remaining length of 1 to 4 bytes (7 bits each).
    let mut header_bytes = 1;
    loop {
        let Some(&byte) = buf.get(header_bytes) else {
            return Ok(None);
        };
        header_bytes += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header_bytes > 4 {
            return Err(CodecError::Malformed(
                "remaining length over 4 bytes".into(),
            ));
        }
    }
    // Variable header: the protocol name as a 2-byte length and its bytes, then the level.
    let Some(name_len) = buf.get(header_bytes..header_bytes + 2) else {
        return Ok(None);
    };
    let name_len = usize::from(u16::from_be_bytes([name_len[0], name_len[1]]));
    Ok(buf.get(header_bytes + 2 + name_len).copied())
}

/// Maps a codec's "need more bytes" to `Ok(None)` and its other errors to [`CodecError`].
pub(crate) fn incomplete_or(
    error: rumqttc::mqttbytes::Error,
    max_bytes: usize,
) -> Result<Option<Inbound>, CodecError> {
    use rumqttc::mqttbytes::Error;
    match error {
        Error::InsufficientBytes(_) => Ok(None),
        Error::PayloadSizeLimitExceeded(size) => Err(CodecError::TooLarge {
            size_bytes: size,
            limit_bytes: max_bytes,
        }),
        other => Err(CodecError::Malformed(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_level_of_a_partial_connect() {
        // CONNECT, remaining length 16, "MQTT", level 5.
        let packet = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60];
        for cut in 0..9 {
            assert_eq!(connect_level(&packet[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(connect_level(&packet).unwrap(), Some(5));
        assert!(connect_level(&[0x30, 0]).is_err(), "a PUBLISH first");
        assert!(connect_level(&[0x10, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
    }
}
