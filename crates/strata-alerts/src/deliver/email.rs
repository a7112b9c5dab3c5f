//! Email delivery through the operator's SMTP relay (`--smtp-url`), with lettre.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::{label_text, Message, GATEWAY_TIMEOUT};

/// The relay and the sender address.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://host:port` (STARTTLS when offered: `?tls=required` to insist), `smtps://host:465`,
    /// with optional `user:password@`.
    pub url: String,
    pub from: String,
}

impl SmtpConfig {
    /// Checks the URL and sender at startup, so a typo fails `strata serve`, not the first alert.
    pub fn check(&self) -> Result<(), String> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map_err(|e| format!("--smtp-url: {e}"))?;
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("--smtp-from {:?}: {e}", self.from))?;
        Ok(())
    }
}

pub(crate) async fn send(
    smtp: &SmtpConfig,
    to: &[String],
    message: &Message,
) -> Result<(), String> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
        .map_err(|e| format!("--smtp-url: {e}"))?
        .timeout(Some(GATEWAY_TIMEOUT))
        .build();
    let mut builder = lettre::Message::builder()
        .from(
            smtp.from
                .parse::<Mailbox>()
                .map_err(|e| format!("--smtp-from: {e}"))?,
        )
        .subject(subject(message))
        .message_id(Some(format!("<{}@strata>", message.id)));
    for recipient in to {
        builder = builder.to(recipient
            .parse::<Mailbox>()
            .map_err(|e| format!("{recipient}: {e}"))?);
    }
    let mut email = builder.body(text(message)).map_err(|e| e.to_string())?;
    email.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str(super::webhook::ID_HEADER),
        message.id.clone(),
    ));
    transport
        .send(email)
        .await
        .map_err(|e| format!("smtp: {e}"))?;
    Ok(())
}

fn subject(message: &Message) -> String {
    let first = message.alerts.first().map(label_text).unwrap_or_default();
    let more = message.alerts.len().saturating_sub(1);
    let more = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    format!(
        "[Strata] {} {}: {first}{more}",
        message.alert, message.state
    )
}

fn text(message: &Message) -> String {
    let mut out = format!("Alert {} is {}.\n\n", message.alert, message.state);
    for alert in &message.alerts {
        let value = alert
            .get("value")
            .filter(|v| !v.is_null())
            .map(Value::to_string)
            .unwrap_or_else(|| "-".into());
        let time = alert
            .get("time")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.push_str(&format!(
            "- {} value={value} at {time}\n",
            label_text(alert)
        ));
    }
    out.push_str(&format!(
        "\n{}\nNotification id: {}\n",
        message.link, message.id
    ));
    out
}
