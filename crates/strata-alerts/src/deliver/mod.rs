//! Sending one notification to one channel: one file per channel kind. A send either succeeds
//! (the receiver accepted it) or fails with a message; retrying is the outbox's business.

mod email;
mod sms;
mod webhook;

use std::time::Duration;

use serde_json::Value;

use crate::channel::ChannelSpec;

pub use email::SmtpConfig;
pub use sms::SmsConfig;

/// One notification as every channel renders it.
#[derive(Debug, Clone)]
pub struct Message {
    /// Stable across retries: receivers de-duplicate on it.
    pub id: String,
    pub alert: String,
    /// `firing`, `resolved` or `test`.
    pub state: String,
    /// `[{labels, value, state, time}]`, at least one.
    pub alerts: Vec<Value>,
    pub link: String,
}

/// The operator's delivery settings and the shared HTTP client.
#[derive(Clone)]
pub(crate) struct Senders {
    http: reqwest::Client,
    smtp: Option<SmtpConfig>,
    sms: Option<SmsConfig>,
    pub allow_private_webhooks: bool,
}

/// How long an SMTP or SMS exchange may take.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(15);

impl Senders {
    pub(crate) fn new(
        smtp: Option<SmtpConfig>,
        sms: Option<SmsConfig>,
        allow_private_webhooks: bool,
    ) -> Senders {
        let http = reqwest::Client::builder()
            // A redirect could lead a webhook past the address guard.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Senders {
            http,
            smtp,
            sms,
            allow_private_webhooks,
        }
    }

    pub(crate) fn offers_email(&self) -> bool {
        self.smtp.is_some()
    }

    pub(crate) fn offers_sms(&self) -> bool {
        self.sms.is_some()
    }

    pub(crate) async fn send(
        &self,
        channel: &ChannelSpec,
        message: &Message,
    ) -> Result<(), String> {
        match channel {
            ChannelSpec::Webhook {
                url,
                secret,
                timeout,
            } => {
                if let Some(reason) = crate::guard::refusal(url, self.allow_private_webhooks).await
                {
                    return Err(reason);
                }
                webhook::send(&self.http, url, secret.as_deref(), *timeout, message).await
            }
            ChannelSpec::Email { to } => match &self.smtp {
                Some(smtp) => email::send(smtp, to, message).await,
                None => Err("the server runs without --smtp-url".to_string()),
            },
            ChannelSpec::Sms { to } => match &self.sms {
                Some(sms) => sms::send(&self.http, sms, to, message).await,
                None => Err("the server runs without --sms-url".to_string()),
            },
        }
    }
}

/// `k=v, k=v` of an alert entry's labels, for subjects and text messages.
fn label_text(alert: &Value) -> String {
    alert
        .get("labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
