//! Email delivery through the operator's SMTP relay (`--smtp-url`), with lettre.

use std::path::PathBuf;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::{label_text, Message, GATEWAY_TIMEOUT};

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// The relay and the sender address.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://host:port` (STARTTLS when offered: `?tls=required` to insist), `smtps://host:465`,
    /// with optional `user:password@`.
    pub url: String,
    pub from: String,
    /// PEM certificates to trust for the relay's TLS besides the system's roots (a private
    /// relay with its own CA or a self-signed certificate): `--smtp-ca-file`.
    pub ca_file: Option<PathBuf>,
}

impl SmtpConfig {
    /// Checks the URL, the CA file and the sender at startup, so a typo fails `strata serve`,
    /// not the first alert.
    pub fn check(&self) -> Result<(), String> {
        self.transport()?;
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("--smtp-from {:?}: {e}", self.from))?;
        Ok(())
    }

    /// The transport for `url`, trusting `ca_file` too when given: the URL's TLS mode
    /// (`smtps://` implicit TLS, `?tls=required` STARTTLS or fail, plain `smtp://` STARTTLS when
    /// offered) is kept; only the certificates it accepts change.
    fn transport(&self) -> Result<AsyncSmtpTransportBuilder, String> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map_err(|e| format!("--smtp-url: {e}"))?;
        let Some(ca_file) = &self.ca_file else {
            return Ok(builder);
        };
        let pem = std::fs::read(ca_file)
            .map_err(|e| format!("--smtp-ca-file {}: {e}", ca_file.display()))?;
        // The PEM parser skips what it does not recognize, so a wrong file would read as none.
        if !pem
            .windows(CERTIFICATE_PEM.len())
            .any(|w| w == CERTIFICATE_PEM)
        {
            return Err(format!(
                "--smtp-ca-file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                ca_file.display()
            ));
        }
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| format!("--smtp-ca-file {}: {e}", ca_file.display()))?;
        let url = url::Url::parse(&self.url).map_err(|e| format!("--smtp-url: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let parameters = TlsParameters::builder(host)
            .add_root_certificate(certificate)
            .build_rustls()
            .map_err(|e| format!("--smtp-ca-file {}: {e}", ca_file.display()))?;
        let required = url
            .query_pairs()
            .any(|(k, v)| k == "tls" && v == "required");
        let tls = match url.scheme() {
            "smtps" => Tls::Wrapper(parameters),
            _ if required => Tls::Required(parameters),
            _ => Tls::Opportunistic(parameters),
        };
        Ok(builder.tls(tls))
    }
}

pub(crate) async fn send(
    smtp: &SmtpConfig,
    to: &[String],
    message: &Message,
) -> Result<(), String> {
    let transport = smtp.transport()?.timeout(Some(GATEWAY_TIMEOUT)).build();
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
