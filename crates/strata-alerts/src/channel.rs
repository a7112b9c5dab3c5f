//! Channels: parsing and checking `POST /api/v1/channels`, and showing a channel without its
//! secret.

use std::time::Duration;

use serde_json::{json, Map, Value};
use url::Url;

use crate::duration::{parse_ms, show};
use crate::error::{invalid, AlertError};
use crate::rule::parse_name;

/// Default and longest webhook timeout.
const DEFAULT_TIMEOUT_MS: i64 = 5_000;
const MAX_TIMEOUT_MS: i64 = 60_000;
/// Most recipients of one email or SMS channel.
const MAX_RECIPIENTS: usize = 20;
/// Longest webhook secret and URL.
const MAX_SECRET_BYTES: usize = 256;
const MAX_URL_BYTES: usize = 2_048;

#[derive(Debug, Clone)]
pub(crate) enum ChannelSpec {
    Webhook {
        url: Url,
        secret: Option<String>,
        timeout: Duration,
    },
    Email {
        to: Vec<String>,
    },
    Sms {
        to: Vec<String>,
    },
}

/// What the server offers: which kinds can be created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offered {
    pub email: bool,
    pub sms: bool,
}

impl ChannelSpec {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ChannelSpec::Webhook { .. } => "webhook",
            ChannelSpec::Email { .. } => "email",
            ChannelSpec::Sms { .. } => "sms",
        }
    }

    /// Parses a creation body into (name, spec); every error names its key.
    pub(crate) fn parse(
        body: &Value,
        offered: Offered,
    ) -> Result<(String, ChannelSpec), AlertError> {
        let object = body
            .as_object()
            .ok_or_else(|| AlertError::Invalid("the channel must be a JSON object".into()))?;
        const KEYS: &[&str] = &["name", "kind", "url", "secret", "timeout", "to"];
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(invalid(
                key,
                format!("unknown key; a channel takes {}", KEYS.join(", ")),
            ));
        }
        let name = parse_name("name", object.get("name"))?;
        let spec = match object.get("kind").and_then(Value::as_str) {
            Some("webhook") => webhook(object)?,
            Some("email") if !offered.email => {
                return Err(invalid(
                    "kind",
                    "email channels need the operator to start the server with --smtp-url",
                ))
            }
            Some("sms") if !offered.sms => {
                return Err(invalid(
                    "kind",
                    "sms channels need the operator to start the server with --sms-url",
                ))
            }
            Some("email") => ChannelSpec::Email {
                to: recipients(object, is_email, "an email address")?,
            },
            Some("sms") => ChannelSpec::Sms {
                to: recipients(object, is_e164, "an E.164 number such as +15550100")?,
            },
            _ => {
                return Err(invalid(
                    "kind",
                    "missing or unknown; one of webhook, email, sms",
                ))
            }
        };
        Ok((name, spec))
    }

    /// The stored configuration (with the secret).
    pub(crate) fn to_config(&self) -> Value {
        match self {
            ChannelSpec::Webhook {
                url,
                secret,
                timeout,
            } => {
                json!({"url": url.as_str(), "secret": secret, "timeout_ms": timeout.as_millis() as u64})
            }
            ChannelSpec::Email { to } | ChannelSpec::Sms { to } => json!({ "to": to }),
        }
    }

    pub(crate) fn from_config(kind: &str, config: &Value) -> Result<ChannelSpec, AlertError> {
        let broken = || AlertError::Internal(format!("a stored {kind} channel does not decode"));
        let to = || -> Result<Vec<String>, AlertError> {
            serde_json::from_value(config.get("to").cloned().unwrap_or(Value::Null))
                .map_err(|_| broken())
        };
        match kind {
            "webhook" => Ok(ChannelSpec::Webhook {
                url: config
                    .get("url")
                    .and_then(Value::as_str)
                    .and_then(|u| Url::parse(u).ok())
                    .ok_or_else(broken)?,
                secret: config
                    .get("secret")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                timeout: Duration::from_millis(
                    config
                        .get("timeout_ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(5_000),
                ),
            }),
            "email" => Ok(ChannelSpec::Email { to: to()? }),
            "sms" => Ok(ChannelSpec::Sms { to: to()? }),
            _ => Err(broken()),
        }
    }

    /// The channel as listed: never the secret.
    pub(crate) fn view(&self, name: &str, created_at: &str) -> Value {
        let mut out = json!({"name": name, "kind": self.kind(), "created_at": created_at});
        match self {
            ChannelSpec::Webhook {
                url,
                secret,
                timeout,
            } => {
                out["url"] = json!(url.as_str());
                out["has_secret"] = json!(secret.is_some());
                out["timeout"] = json!(show(timeout.as_millis() as i64));
            }
            ChannelSpec::Email { to } | ChannelSpec::Sms { to } => out["to"] = json!(to),
        }
        out
    }
}

/// The address guard runs after parsing (it resolves names), in `service.rs`.
fn webhook(object: &Map<String, Value>) -> Result<ChannelSpec, AlertError> {
    let text = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("url", "missing"))?;
    if text.len() > MAX_URL_BYTES {
        return Err(invalid("url", format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let url =
        Url::parse(text).map_err(|e| invalid("url", format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "url",
            format!("{text:?} must be an http or https URL with a host"),
        ));
    }
    let secret = match object.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SECRET_BYTES => Some(s.clone()),
        Some(_) => {
            return Err(invalid(
                "secret",
                format!("expected text of 1 to {MAX_SECRET_BYTES} bytes"),
            ))
        }
    };
    let timeout_ms = match object.get("timeout") {
        Some(v) => parse_ms("timeout", v, 100, MAX_TIMEOUT_MS)?,
        None => DEFAULT_TIMEOUT_MS,
    };
    Ok(ChannelSpec::Webhook {
        url,
        secret,
        timeout: Duration::from_millis(timeout_ms as u64),
    })
}

fn recipients(
    object: &Map<String, Value>,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, AlertError> {
    let items = object
        .get("to")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("to", "missing; a list of recipients"))?;
    if items.is_empty() || items.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "to",
            format!("expected 1 to {MAX_RECIPIENTS} recipients"),
        ));
    }
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(s) if valid(s) => Ok(s.to_string()),
            _ => Err(invalid("to", format!("{item} is not {what}"))),
        })
        .collect()
}

fn is_email(text: &str) -> bool {
    text.len() <= 254 && text.parse::<lettre::Address>().is_ok()
}

fn is_e164(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}
