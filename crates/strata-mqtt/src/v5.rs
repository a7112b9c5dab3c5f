//! MQTT 5 (protocol level 5) packets to and from [`crate::protocol`]'s. MQTT 5 has reason
//! codes, so a refused topic or an all-rejected payload is answered on the wire and the
//! connection stays open.

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Packet, PubAck, PubAckReason, PubComp, PubRec,
    PubRecReason, SubAck, SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::Error;

use crate::protocol::{
    Advertised, CodecError, ConnectRefusal, ConnectRequest, Inbound, Outbound, PublishRequest,
    PublishVerdict,
};

pub(crate) fn read(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Inbound>, CodecError> {
    let limit = u32::try_from(max_bytes).unwrap_or(u32::MAX);
    let packet = match Packet::read(buf, Some(limit)) {
        Ok(packet) => packet,
        Err(Error::InsufficientBytes(_)) => return Ok(None),
        Err(Error::PayloadSizeLimitExceeded { pkt_size, .. }) => {
            return Err(CodecError::TooLarge {
                size_bytes: pkt_size,
                limit_bytes: max_bytes,
            })
        }
        Err(other) => return Err(CodecError::Malformed(other.to_string())),
    };
    Ok(Some(match packet {
        Packet::Connect(connect, _will, login) => Inbound::Connect(ConnectRequest {
            client_id: connect.client_id,
            keep_alive_secs: connect.keep_alive,
            login: login.map(|login| (login.username, login.password)),
        }),
        Packet::Publish(publish) => Inbound::Publish(PublishRequest {
            topic: String::from_utf8(publish.topic.to_vec())
                .ok()
                .filter(|topic| !topic.is_empty()),
            qos: publish.qos as u8,
            pkid: publish.pkid,
            payload: publish.payload,
        }),
        Packet::PubRel(rel) => Inbound::PubRel { pkid: rel.pkid },
        Packet::Subscribe(subscribe) => Inbound::Subscribe {
            pkid: subscribe.pkid,
            filters: subscribe.filters.len(),
        },
        Packet::Unsubscribe(unsubscribe) => Inbound::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.filters.len(),
        },
        Packet::PingReq(_) => Inbound::PingReq,
        Packet::Disconnect(_) => Inbound::Disconnect,
        Packet::Auth(_) => Inbound::Unexpected("AUTH (enhanced authentication)"),
        _ => Inbound::Unexpected("a packet only a server sends"),
    }))
}

pub(crate) fn write(packet: Outbound, buf: &mut BytesMut) -> Result<(), CodecError> {
    let packet = match packet {
        Outbound::ConnAck(outcome) => Packet::ConnAck(connack(outcome)),
        Outbound::PubAck { pkid, verdict } => Packet::PubAck(PubAck {
            reason: puback_reason(verdict),
            ..PubAck::new(pkid, None)
        }),
        Outbound::PubRec { pkid, verdict } => Packet::PubRec(PubRec {
            reason: pubrec_reason(verdict),
            ..PubRec::new(pkid, None)
        }),
        Outbound::PubComp { pkid } => Packet::PubComp(PubComp::new(pkid, None)),
        Outbound::SubAck { pkid, filters } => Packet::SubAck(SubAck {
            pkid,
            return_codes: vec![SubscribeReasonCode::NotAuthorized; filters],
            properties: None,
        }),
        Outbound::UnsubAck { pkid, filters } => Packet::UnsubAck(UnsubAck {
            pkid,
            reasons: vec![UnsubAckReason::NoSubscriptionExisted; filters],
            properties: None,
        }),
        Outbound::PingResp => Packet::PingResp(rumqttc::v5::mqttbytes::v5::PingResp),
    };
    packet
        .write(buf, None)
        .map(|_| ())
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

/// A successful CONNACK tells the client the door's limits: how many QoS 1 and 2 publishes may
/// await their acknowledgement, the largest packet, and that nothing is subscribed to or
/// aliased here.
fn connack(outcome: Result<Advertised, ConnectRefusal>) -> ConnAck {
    let code = match outcome {
        Ok(_) => ConnectReturnCode::Success,
        Err(ConnectRefusal::BadCredentials) => ConnectReturnCode::BadUserNamePassword,
        Err(ConnectRefusal::NotAuthorized) => ConnectReturnCode::NotAuthorized,
        Err(ConnectRefusal::Unavailable) => ConnectReturnCode::ServerUnavailable,
    };
    let properties = outcome.ok().map(|advertised| ConnAckProperties {
        session_expiry_interval: None,
        receive_max: Some(advertised.receive_max),
        max_qos: None,
        // Retained publishes are stored as events and nothing is retained (no one subscribes
        // here); refusing them would lose the data of devices that set the flag by habit.
        retain_available: None,
        max_packet_size: Some(advertised.max_packet_bytes),
        assigned_client_identifier: None,
        topic_alias_max: Some(0),
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: Some(0),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(0),
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    });
    ConnAck {
        session_present: false,
        code,
        properties,
    }
}

fn puback_reason(verdict: PublishVerdict) -> PubAckReason {
    match verdict {
        PublishVerdict::Stored => PubAckReason::Success,
        PublishVerdict::PayloadInvalid => PubAckReason::PayloadFormatInvalid,
        PublishVerdict::TopicRefused => PubAckReason::NotAuthorized,
    }
}

fn pubrec_reason(verdict: PublishVerdict) -> PubRecReason {
    match verdict {
        PublishVerdict::Stored => PubRecReason::Success,
        PublishVerdict::PayloadInvalid => PubRecReason::PayloadFormatInvalid,
        PublishVerdict::TopicRefused => PubRecReason::NotAuthorized,
    }
}
