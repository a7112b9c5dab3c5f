//! Webhook delivery: a JSON POST signed with HMAC-SHA256 of the exact body bytes.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use url::Url;

use super::Message;

pub(crate) const ID_HEADER: &str = "X-Strata-Notification-Id";
const SIGNATURE_HEADER: &str = "X-Strata-Signature";
/// Most bytes of a refusing receiver's answer quoted in the delivery log.
const ERROR_BODY_CHARS: usize = 200;

/// The body of DESIGN.md's webhook contract: the first instance at the top level, every
/// instance (a group) in `alerts`.
pub(crate) fn body(message: &Message) -> Value {
    let first = message.alerts.first().cloned().unwrap_or(Value::Null);
    json!({
        "id": message.id,
        "alert": message.alert,
        "state": message.state,
        "labels": first.get("labels").cloned().unwrap_or(json!({})),
        "value": first.get("value").cloned().unwrap_or(Value::Null),
        "time": first.get("time").cloned().unwrap_or(Value::Null),
        "link": message.link,
        "alerts": message.alerts,
    })
}

pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: Option<&str>,
    timeout: Duration,
    message: &Message,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(&body(message)).map_err(|e| e.to_string())?;
    let mut request = client
        .post(url.clone())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, &message.id);
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &bytes));
    }
    let response = request
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("webhook: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(format!(
        "webhook answered {status}: {}",
        text.chars().take(ERROR_BODY_CHARS).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let signature = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
