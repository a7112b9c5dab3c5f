//! Where a source's messages go: [`EventSink::write_batch`] turns a batch of broker messages
//! into as few `Writer::write` calls as it can, runs them together (their fsyncs coalesce in
//! the hot tier's group commit), and returns only once every event is durable or in the error
//! log. A source acknowledges the batch to its broker after that, never before.

use std::sync::Arc;

use serde::de::IgnoredAny;
use strata_core::TenantId;
use strata_ingest::BodyFormat;
use strata_write::{WriteError, WriteOutcome, WriteRequest, Writer};

use crate::status::SourceStatus;

/// One broker message: its payload (JSON events: an object, an array or NDJSON, as on
/// `/api/v1/write`), the metric its transport implies, if any (`?metric=` on HTTP), and the
/// fields it implies (an MQTT topic's placeholders).
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    pub bytes: &'a [u8],
    /// The message's size as the broker sent it: `bytes.len()`, or more when `bytes` is only
    /// the beginning of a message over [`EventSink::max_message_bytes`] that the source did not
    /// keep whole (the MQTT bridge); such a message is refused into the error log.
    pub size: usize,
    pub metric: Option<&'a str>,
    pub fields: &'a [(String, String)],
}

/// The write path failed (catalog or storage): some events of the batch may be stored, but
/// none may be acknowledged; the broker redelivers them and content hashing stores each once.
#[derive(Debug, thiserror::Error)]
#[error("the write path failed: {0}")]
pub struct SinkError(String);

/// What a batch stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub accepted: u64,
    /// Rejected events, plus messages that held no events at all; each is in the error log.
    pub rejected: u64,
}

/// Writes one source's messages for its tenant through the write library.
#[derive(Clone)]
pub struct EventSink {
    writer: Arc<Writer>,
    tenant: TenantId,
    status: Arc<SourceStatus>,
}

/// One `Writer::write` call: a body with its format, metric and implied fields.
struct Body<'a> {
    bytes: std::borrow::Cow<'a, [u8]>,
    format: BodyFormat,
    metric: Option<&'a str>,
    fields: &'a [(String, String)],
}

impl EventSink {
    pub fn new(writer: Arc<Writer>, tenant: TenantId, status: Arc<SourceStatus>) -> Self {
        EventSink {
            writer,
            tenant,
            status,
        }
    }

    pub fn status(&self) -> &Arc<SourceStatus> {
        &self.status
    }

    /// The largest message payload written (`Limits::write_body_bytes`, as for an HTTP body);
    /// a larger one is refused into the error log.
    pub fn max_message_bytes(&self) -> usize {
        self.writer.limits().write_body_bytes
    }

    /// How much of a refused message the error log keeps (`Limits::error_payload_bytes`): a
    /// source may keep only that much of a message over [`EventSink::max_message_bytes`].
    pub fn kept_payload_bytes(&self) -> usize {
        self.writer.limits().error_payload_bytes
    }

    /// Stores the events of `payloads` and counts them in the source's status. Returns after
    /// every accepted event is durable (fsync'd) and every rejection is in the error log.
    pub async fn write_batch(&self, payloads: &[Payload<'_>]) -> Result<BatchOutcome, SinkError> {
        let limit = self.max_message_bytes();
        let mut outcome = BatchOutcome::default();
        let mut bodies = Vec::new();
        for payload in payloads {
            if payload.size.max(payload.bytes.len()) > limit {
                self.refuse_oversized(payload, limit).await;
                outcome.rejected += 1;
            } else {
                add_to_bodies(&mut bodies, payload, limit);
            }
        }
        let writes = bodies.iter().map(|body| {
            self.writer.write(WriteRequest {
                door: strata_core::telemetry::door::SOURCE,
                tenant: self.tenant,
                body: &body.bytes,
                format: body.format,
                metric: body.metric,
                implied_fields: body.fields,
            })
        });
        for result in futures::future::join_all(writes).await {
            add_outcome(&mut outcome, result)?;
        }
        self.status
            .count(payloads.len() as u64, outcome.accepted, outcome.rejected);
        Ok(outcome)
    }

    async fn refuse_oversized(&self, payload: &Payload<'_>, limit: usize) {
        let reason = format!(
            "a message of {} bytes exceeds the limit of {limit} bytes (--max-body-bytes)",
            payload.size.max(payload.bytes.len())
        );
        self.writer
            .record_unreadable_body(self.tenant, "body", &reason, payload.bytes)
            .await;
    }
}

/// Counts one write's result. A body that held no events is one rejected message (the writer
/// put it in the error log); any other failure stops the batch from being acknowledged.
fn add_outcome(
    outcome: &mut BatchOutcome,
    result: Result<WriteOutcome, WriteError>,
) -> Result<(), SinkError> {
    match result {
        Ok(written) => {
            outcome.accepted += written.accepted as u64;
            outcome.rejected += written.rejections.len() as u64;
            Ok(())
        }
        Err(WriteError::Body(_)) => {
            outcome.rejected += 1;
            Ok(())
        }
        Err(error) => Err(SinkError(error.to_string())),
    }
}

/// Adds a message to the batch's bodies: a one-line JSON object joins the last NDJSON body of
/// its metric and implied fields while that stays under `limit` (one write for many messages, the common case of
/// one event per message); anything else is a body of its own, framed as it was sent.
fn add_to_bodies<'a>(bodies: &mut Vec<Body<'a>>, payload: &Payload<'a>, limit: usize) {
    let bytes = payload.bytes;
    let one_line_object = first_non_blank(bytes) == Some(b'{') && memchr_newline(bytes).is_none();
    if one_line_object {
        if let Some(body) = bodies.iter_mut().rev().find(|b| {
            b.format == BodyFormat::Ndjson
                && b.metric == payload.metric
                && b.fields == payload.fields
                && matches!(b.bytes, std::borrow::Cow::Owned(_))
        }) {
            // The joined body takes a newline too.
            if body.bytes.len() + bytes.len() < limit {
                let joined = body.bytes.to_mut();
                joined.push(b'\n');
                joined.extend_from_slice(bytes);
                return;
            }
        }
        bodies.push(Body {
            bytes: std::borrow::Cow::Owned(bytes.to_vec()),
            format: BodyFormat::Ndjson,
            metric: payload.metric,
            fields: payload.fields,
        });
        return;
    }
    bodies.push(Body {
        bytes: std::borrow::Cow::Borrowed(bytes),
        format: message_format(bytes),
        metric: payload.metric,
        fields: payload.fields,
    });
}

/// How a message that is not a one-line object is framed: a JSON array, or one JSON value
/// spread over lines, is JSON; anything else is NDJSON (one object per line).
fn message_format(bytes: &[u8]) -> BodyFormat {
    if first_non_blank(bytes) == Some(b'[') || serde_json::from_slice::<IgnoredAny>(bytes).is_ok() {
        BodyFormat::Json
    } else {
        BodyFormat::Ndjson
    }
}

fn first_non_blank(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies_of(messages: &[&str], metric: Option<&'static str>) -> Vec<(String, BodyFormat)> {
        let mut bodies = Vec::new();
        for message in messages {
            let payload = Payload {
                bytes: message.as_bytes(),
                size: message.len(),
                metric,
                fields: &[],
            };
            add_to_bodies(&mut bodies, &payload, 64);
        }
        bodies
            .iter()
            .map(|b| (String::from_utf8_lossy(&b.bytes).into_owned(), b.format))
            .collect()
    }

    #[test]
    fn one_line_objects_share_an_ndjson_body_up_to_the_limit() {
        let bodies = bodies_of(&[r#"{"a":1}"#, r#"{"a":2}"#, r#" {"a":3}"#], None);
        assert_eq!(
            bodies,
            vec![(
                "{\"a\":1}\n{\"a\":2}\n {\"a\":3}".to_string(),
                BodyFormat::Ndjson
            )]
        );
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(40));
        let bodies = bodies_of(&[&long, &long], None);
        assert_eq!(bodies.len(), 2, "a body never grows past the limit");
    }

    #[test]
    fn arrays_and_multi_line_messages_keep_their_own_framing() {
        let bodies = bodies_of(
            &[
                "[{\"a\":1},{\"a\":2}]",
                "{\n\"a\": 1\n}",
                "{\"a\":1}\n{\"a\":2}",
                "{\"a\":9}",
            ],
            Some("m"),
        );
        let formats: Vec<BodyFormat> = bodies.iter().map(|(_, f)| *f).collect();
        assert_eq!(
            formats,
            vec![
                BodyFormat::Json,
                BodyFormat::Json,
                BodyFormat::Ndjson,
                BodyFormat::Ndjson
            ]
        );
        assert_eq!(
            bodies[3].0, "{\"a\":9}",
            "a borrowed body is never appended to"
        );
    }
}
