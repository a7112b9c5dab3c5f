//! SMS delivery through an HTTP gateway speaking Twilio's Messages API: one form-encoded POST
//! (`To`, `From`, `Body`) per recipient, with HTTP Basic credentials from the URL.

use url::Url;

use super::{label_text, Message, GATEWAY_TIMEOUT};

/// Longest SMS body: one 160-character segment.
const SMS_CHARS: usize = 160;

#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// The Messages endpoint, e.g.
    /// `https://SID:TOKEN@api.twilio.com/2010-04-01/Accounts/SID/Messages.json`.
    pub url: String,
    pub from: String,
}

impl SmsConfig {
    pub fn check(&self) -> Result<(), String> {
        let url = Url::parse(&self.url).map_err(|e| format!("--sms-url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("--sms-url must be an http or https URL".to_string());
        }
        if self.from.is_empty() {
            return Err("--sms-from: the sending number is required with --sms-url".to_string());
        }
        Ok(())
    }
}

pub(crate) async fn send(
    client: &reqwest::Client,
    sms: &SmsConfig,
    to: &[String],
    message: &Message,
) -> Result<(), String> {
    let mut url = Url::parse(&sms.url).map_err(|e| format!("--sms-url: {e}"))?;
    let user = url.username().to_string();
    let password = url.password().map(str::to_string);
    // Credentials travel as a header, never in the request line.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let body = text(message);
    for recipient in to {
        let mut request = client
            .post(url.clone())
            .timeout(GATEWAY_TIMEOUT)
            .header(super::webhook::ID_HEADER, &message.id)
            .form(&[
                ("To", recipient.as_str()),
                ("From", sms.from.as_str()),
                ("Body", body.as_str()),
            ]);
        if !user.is_empty() {
            request = request.basic_auth(&user, password.as_deref());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("sms gateway: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "sms gateway answered {} for {recipient}",
                response.status()
            ));
        }
    }
    Ok(())
}

fn text(message: &Message) -> String {
    let first = message.alerts.first();
    let labels = first.map(label_text).unwrap_or_default();
    let value = first
        .and_then(|a| a.get("value"))
        .filter(|v| !v.is_null())
        .map(|v| format!(" value={v}"))
        .unwrap_or_default();
    let more = message.alerts.len().saturating_sub(1);
    let more = if more > 0 {
        format!(" +{more} more")
    } else {
        String::new()
    };
    let text = format!("{} {}: {labels}{value}{more}", message.alert, message.state);
    text.chars().take(SMS_CHARS).collect()
}
