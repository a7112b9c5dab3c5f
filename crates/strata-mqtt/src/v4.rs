//! MQTT 3.1.1 (protocol level 4) packets to and from [`crate::protocol`]'s.
//!
//! 3.1.1 has no negative PUBACK, so a publish to a refused topic is acknowledged like any
//! other, as Mosquitto does with publishes its ACLs deny: closing the connection instead made
//! paho re-send the same publish on every reconnect, forever. The payload is in
//! `strata.errors` with stage `topic`, so nothing is lost.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode,
    UnsubAck,
};

use crate::protocol::{
    incomplete_or, CodecError, ConnectRefusal, ConnectRequest, Inbound, Outbound, PublishRequest,
};

pub(crate) fn read(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Inbound>, CodecError> {
    let packet = match Packet::read(buf, max_bytes) {
        Ok(packet) => packet,
        Err(error) => return incomplete_or(error, max_bytes),
    };
    Ok(Some(match packet {
        Packet::Connect(connect) => Inbound::Connect(ConnectRequest {
            client_id: connect.client_id,
            keep_alive_secs: connect.keep_alive,
            login: connect.login.map(|login| (login.username, login.password)),
        }),
        Packet::Publish(publish) => Inbound::Publish(PublishRequest {
            topic: Some(publish.topic).filter(|topic| !topic.is_empty()),
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
            filters: unsubscribe.topics.len(),
        },
        Packet::PingReq => Inbound::PingReq,
        Packet::Disconnect => Inbound::Disconnect,
        other => Inbound::Unexpected(server_packet_name(&other)),
    }))
}

pub(crate) fn write(packet: Outbound, buf: &mut BytesMut) -> Result<(), CodecError> {
    let packet = match packet {
        Outbound::ConnAck(outcome) => Packet::ConnAck(ConnAck::new(connack_code(outcome), false)),
        // Every verdict is an acknowledgement: what was not stored is in `strata.errors`.
        Outbound::PubAck { pkid, .. } => Packet::PubAck(PubAck::new(pkid)),
        Outbound::PubRec { pkid, .. } => Packet::PubRec(PubRec::new(pkid)),
        Outbound::PubComp { pkid } => Packet::PubComp(PubComp::new(pkid)),
        Outbound::SubAck { pkid, filters } => Packet::SubAck(SubAck::new(
            pkid,
            vec![SubscribeReasonCode::Failure; filters],
        )),
        Outbound::UnsubAck { pkid, .. } => Packet::UnsubAck(UnsubAck::new(pkid)),
        Outbound::PingResp => Packet::PingResp,
    };
    packet
        .write(buf, usize::MAX)
        .map(|_| ())
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

fn connack_code<T>(outcome: Result<T, ConnectRefusal>) -> ConnectReturnCode {
    match outcome {
        Ok(_) => ConnectReturnCode::Success,
        Err(ConnectRefusal::BadCredentials) => ConnectReturnCode::BadUserNamePassword,
        Err(ConnectRefusal::NotAuthorized) => ConnectReturnCode::NotAuthorized,
        Err(ConnectRefusal::Unavailable) => ConnectReturnCode::ServiceUnavailable,
    }
}

fn server_packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::ConnAck(_) => "CONNACK",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp => "PINGRESP",
        _ => "an unexpected packet",
    }
}
