//! A source's configuration: the JSON an admin posts, checked field by field into a typed
//! [`SourceConfig`], and the same JSON with its secrets left out for lists.

use serde::Deserialize;
use serde_json::Value;

use crate::SourceError;

/// Topic filters one MQTT source may subscribe to.
pub const MAX_MQTT_TOPICS: usize = 64;
/// Bytes of one name, subject, topic filter, client id or credential in a configuration.
pub const MAX_CONFIG_TEXT_BYTES: usize = 1024;

/// A kind's URL schemes, in the clear and over TLS, with their default ports.
struct Schemes {
    plain: (&'static str, u16),
    tls: (&'static str, u16),
}

/// NATS's own: `tls://` requires TLS from the first byte of the handshake on.
const NATS_SCHEMES: Schemes = Schemes {
    plain: ("nats", 4222),
    tls: ("tls", 4222),
};
const MQTT_SCHEMES: Schemes = Schemes {
    plain: ("mqtt", 1883),
    tls: ("mqtts", 8883),
};

/// A checked source configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    Nats(NatsConfig),
    Mqtt(MqttConfig),
}

/// `{"kind":"nats","url":"nats://host:4222","stream":"S","subject":"devices.>"}`, plus an
/// optional `metric` (as `?metric=` on `/api/v1/write`), `durable` (the consumer's name;
/// `strata-<source id>` by default), credentials (`username` and `password`, or `token`) and
/// `ca_file` (the CA certificates a `tls://` server is verified with, instead of the system's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    pub subject: String,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub durable: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// `{"kind":"mqtt","url":"mqtt://host:1883","topics":["plant/#"]}` (or `mqtts://host:8883`),
/// plus optional `username`, `password`, `metric` (every event's metric, instead of the
/// topic's), `client_id` (the persistent session's name; `strata-<source id>` by default) and
/// `ca_file` (the CA certificates an `mqtts://` broker is verified with, instead of the
/// system's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub url: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// A broker address taken from a configuration's `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    /// The URL's scheme asks for TLS (`tls://`, `mqtts://`).
    pub tls: bool,
}

impl SourceConfig {
    /// Checks a posted configuration; the error names the field that is wrong.
    pub fn parse(body: &Value) -> Result<SourceConfig, SourceError> {
        let object = body
            .as_object()
            .ok_or_else(|| invalid("a source must be a JSON object with a \"kind\""))?;
        let kind = match object.get("kind") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return Err(invalid("field \"kind\" must be a string")),
            None => return Err(invalid("missing field \"kind\" (\"nats\" or \"mqtt\")")),
        };
        let mut rest = object.clone();
        rest.remove("kind");
        let rest = Value::Object(rest);
        match kind {
            "nats" => {
                let config: NatsConfig = serde_json::from_value(rest)
                    .map_err(|e| invalid(format!("invalid nats source: {e}")))?;
                config.check()?;
                Ok(SourceConfig::Nats(config))
            }
            "mqtt" => {
                let config: MqttConfig = serde_json::from_value(rest)
                    .map_err(|e| invalid(format!("invalid mqtt source: {e}")))?;
                config.check()?;
                Ok(SourceConfig::Mqtt(config))
            }
            other => Err(invalid(format!(
                "unknown source kind {:?}; expected \"nats\" or \"mqtt\"",
                shorten(other)
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Nats(_) => "nats",
            SourceConfig::Mqtt(_) => "mqtt",
        }
    }
}

impl NatsConfig {
    fn check(&self) -> Result<(), SourceError> {
        let address = self.address()?;
        check_nats_name("stream", &self.stream)?;
        check_subject(&self.subject)?;
        if let Some(durable) = &self.durable {
            check_nats_name("durable", durable)?;
        }
        for (field, value) in [
            ("username", &self.username),
            ("password", &self.password),
            ("token", &self.token),
        ] {
            if let Some(value) = value {
                check_text(field, value)?;
            }
        }
        match (&self.username, &self.password, &self.token) {
            (Some(_), None, _) => return Err(invalid("field \"username\" needs a \"password\"")),
            (None, Some(_), _) => return Err(invalid("field \"password\" needs a \"username\"")),
            (Some(_), Some(_), Some(_)) => {
                return Err(invalid(
                    "fields \"token\" and \"username\" exclude each other: give one way to log in",
                ))
            }
            _ => {}
        }
        check_ca_file(self.ca_file.as_deref(), &address, "tls://")?;
        check_metric(self.metric.as_deref())
    }

    pub fn address(&self) -> Result<BrokerAddress, SourceError> {
        broker_address(&self.url, &NATS_SCHEMES)
    }
}

impl MqttConfig {
    fn check(&self) -> Result<(), SourceError> {
        let address = self.address()?;
        if self.topics.is_empty() {
            return Err(invalid(
                "field \"topics\" must list at least one topic filter",
            ));
        }
        if self.topics.len() > MAX_MQTT_TOPICS {
            return Err(invalid(format!(
                "field \"topics\" lists {} filters; the limit is {MAX_MQTT_TOPICS}",
                self.topics.len()
            )));
        }
        for topic in &self.topics {
            check_topic_filter(topic)?;
        }
        for (field, value) in [
            ("username", &self.username),
            ("password", &self.password),
            ("client_id", &self.client_id),
        ] {
            if let Some(value) = value {
                check_text(field, value)?;
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid("field \"password\" needs a \"username\""));
        }
        check_ca_file(self.ca_file.as_deref(), &address, "mqtts://")?;
        check_metric(self.metric.as_deref())
    }

    pub fn address(&self) -> Result<BrokerAddress, SourceError> {
        broker_address(&self.url, &MQTT_SCHEMES)
    }
}

/// `ca_file`: only with a TLS URL (it would silently do nothing otherwise), and an absolute
/// path, since the server's working directory is nothing a tenant knows. The file is read at
/// each connection, so a renewed CA is picked up; a missing one fails the connection.
fn check_ca_file(
    ca_file: Option<&str>,
    address: &BrokerAddress,
    tls_scheme: &str,
) -> Result<(), SourceError> {
    let Some(ca_file) = ca_file else {
        return Ok(());
    };
    check_text("ca_file", ca_file)?;
    if !address.tls {
        return Err(invalid(format!(
            "field \"ca_file\" needs a {tls_scheme} url"
        )));
    }
    if !std::path::Path::new(ca_file).is_absolute() {
        return Err(invalid("field \"ca_file\" must be an absolute path"));
    }
    Ok(())
}

/// The stored configuration as lists show it: `password` and `token` are replaced by
/// `"has_password": true` and `"has_token": true`, and a password inside a URL by `***`.
pub fn redacted(config: &Value) -> Value {
    let mut shown = config.clone();
    if let Some(object) = shown.as_object_mut() {
        for (secret, flag) in [("password", "has_password"), ("token", "has_token")] {
            if object.remove(secret).is_some() {
                object.insert(flag.to_string(), Value::Bool(true));
            }
        }
        if let Some(Value::String(text)) = object.get_mut("url") {
            if let Ok(mut url) = url::Url::parse(text) {
                if url.password().is_some() && url.set_password(Some("***")).is_ok() {
                    *text = url.to_string();
                }
            }
        }
    }
    shown
}

fn invalid(message: impl Into<String>) -> SourceError {
    SourceError::Invalid(message.into())
}

/// At most 64 characters of user input in an error message.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

fn check_text(field: &str, value: &str) -> Result<(), SourceError> {
    if value.is_empty() {
        return Err(invalid(format!("field {field:?} is empty")));
    }
    if value.len() > MAX_CONFIG_TEXT_BYTES {
        return Err(invalid(format!(
            "field {field:?} is {} bytes; the limit is {MAX_CONFIG_TEXT_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "field {field:?} holds a control character"
        )));
    }
    Ok(())
}

fn check_metric(metric: Option<&str>) -> Result<(), SourceError> {
    match metric {
        Some(metric) => strata_core::validate_name("metric", metric)
            .map_err(|e| invalid(format!("field \"metric\": {e}"))),
        None => Ok(()),
    }
}

/// `scheme://host[:port]` with nothing after it but an optional `/`, in one of `schemes`.
fn broker_address(text: &str, schemes: &Schemes) -> Result<BrokerAddress, SourceError> {
    check_text("url", text)?;
    let url = url::Url::parse(text).map_err(|e| {
        invalid(format!(
            "field \"url\" is not a URL ({e}): {:?}",
            shorten(text)
        ))
    })?;
    let (tls, default_port) = match url.scheme() {
        scheme if scheme == schemes.plain.0 => (false, schemes.plain.1),
        scheme if scheme == schemes.tls.0 => (true, schemes.tls.1),
        other => {
            return Err(invalid(format!(
                "field \"url\" must start with {}:// or {}:// (found {:?})",
                schemes.plain.0,
                schemes.tls.0,
                shorten(other)
            )))
        }
    };
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host.trim_matches(['[', ']']).to_string(),
        _ => {
            return Err(invalid(format!(
                "field \"url\" names no host: {:?}",
                shorten(text)
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "field \"url\" may not hold credentials (give \"username\" and \"password\", which are never shown)",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "field \"url\" must be {}://host:port with no path or query",
            url.scheme()
        )));
    }
    Ok(BrokerAddress {
        host,
        port: url.port().unwrap_or(default_port),
        tls,
    })
}

/// A JetStream stream or consumer name: no whitespace, `.`, `*`, `>` or path separators.
fn check_nats_name(field: &str, name: &str) -> Result<(), SourceError> {
    check_text(field, name)?;
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(invalid(format!(
            "field {field:?} may not contain {bad:?}: {:?}",
            shorten(name)
        )));
    }
    Ok(())
}

/// A NATS subject filter: dot-separated non-empty tokens, `*` a whole token, `>` the last one.
fn check_subject(subject: &str) -> Result<(), SourceError> {
    check_text("subject", subject)?;
    let tokens: Vec<&str> = subject.split('.').collect();
    for (position, token) in tokens.iter().enumerate() {
        let wildcard_misused = (token.contains('*') && *token != "*")
            || (token.contains('>') && (*token != ">" || position + 1 != tokens.len()));
        if token.is_empty() || token.chars().any(char::is_whitespace) || wildcard_misused {
            return Err(invalid(format!(
                "field \"subject\" is not a valid NATS subject: {:?} (token {})",
                shorten(subject),
                position + 1
            )));
        }
    }
    Ok(())
}

/// An MQTT topic filter: `+` a whole level, `#` the whole last level.
fn check_topic_filter(topic: &str) -> Result<(), SourceError> {
    check_text("topics", topic)?;
    let levels: Vec<&str> = topic.split('/').collect();
    for (position, level) in levels.iter().enumerate() {
        let misused = (level.contains('+') && *level != "+")
            || (level.contains('#') && (*level != "#" || position + 1 != levels.len()));
        if misused {
            return Err(invalid(format!(
                "field \"topics\": {:?} is not a valid MQTT topic filter (level {})",
                shorten(topic),
                position + 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(body: Value) -> String {
        match SourceConfig::parse(&body) {
            Err(SourceError::Invalid(message)) => message,
            other => panic!("{body} was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_nats_source_needs_its_url_stream_and_subject() {
        let ok = json!({"kind": "nats", "url": "nats://127.0.0.1:4222", "stream": "S",
                        "subject": "devices.>", "metric": "m", "durable": "d"});
        let SourceConfig::Nats(config) = SourceConfig::parse(&ok).unwrap() else {
            panic!("not nats")
        };
        assert_eq!(config.address().unwrap().port, 4222);
        assert!(
            error(json!({"kind": "nats", "url": "nats://h", "subject": "a"})).contains("stream")
        );
        assert!(
            error(json!({"kind": "nats", "url": "nats://h", "stream": "S"})).contains("subject")
        );
        assert!(
            error(json!({"kind": "nats", "url": "http://h", "stream": "S", "subject": "a"}))
                .contains("nats://")
        );
        assert!(
            error(json!({"kind": "nats", "url": "nats://h", "stream": "a.b", "subject": "a"}))
                .contains("stream")
        );
        assert!(error(
            json!({"kind": "nats", "url": "nats://h", "stream": "S", "subject": "a..b"})
        )
        .contains("subject"));
        assert!(
            error(json!({"kind": "nats", "url": "nats://h", "stream": "S", "subject": ">.a"}))
                .contains("subject")
        );
        assert!(error(
            json!({"kind": "nats", "url": "nats://h", "stream": "S", "subject": "a",
                             "topics": ["x"]})
        )
        .contains("topics"));
    }

    #[test]
    fn an_mqtt_source_needs_its_url_and_topics() {
        let ok = json!({"kind": "mqtt", "url": "mqtt://localhost", "topics": ["plant/+/x/#"],
                        "username": "u", "password": "p"});
        let SourceConfig::Mqtt(config) = SourceConfig::parse(&ok).unwrap() else {
            panic!("not mqtt")
        };
        assert_eq!(config.address().unwrap().port, 1883);
        assert!(error(json!({"kind": "mqtt", "url": "mqtt://h"})).contains("topics"));
        assert!(error(json!({"kind": "mqtt", "url": "mqtt://h", "topics": []})).contains("topics"));
        assert!(
            error(json!({"kind": "mqtt", "url": "mqtt://h", "topics": ["a/#/b"]}))
                .contains("topics")
        );
        assert!(
            error(json!({"kind": "mqtt", "url": "tcp://h", "topics": ["a"]})).contains("mqtt://")
        );
        assert!(
            error(json!({"kind": "mqtt", "url": "mqtt://h/path", "topics": ["a"]})).contains("url")
        );
        assert!(error(
            json!({"kind": "mqtt", "url": "mqtt://h", "topics": ["a"], "password": "p"})
        )
        .contains("username"));
    }

    #[test]
    fn kinds_are_named_and_checked() {
        assert!(error(json!({"kind": "kafka"})).contains("unknown source kind \"kafka\""));
        assert!(error(json!({"url": "nats://h"})).contains("kind"));
        assert!(error(json!(["nats"])).contains("object"));
        assert!(error(
            json!({"kind": "nats", "url": "nats://h", "stream": "S", "subject": "a",
                             "metric": ""})
        )
        .contains("metric"));
    }

    #[test]
    fn credentials_and_tls_are_checked() {
        let nats = |extra: Value| {
            let mut body = json!({"kind": "nats", "url": "nats://h", "stream": "S",
                                  "subject": "a"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        assert!(SourceConfig::parse(&nats(json!({"username": "u", "password": "p"}))).is_ok());
        assert!(SourceConfig::parse(&nats(json!({"token": "t"}))).is_ok());
        assert!(error(nats(json!({"username": "u"}))).contains("needs a \"password\""));
        assert!(error(nats(json!({"password": "p"}))).contains("needs a \"username\""));
        assert!(error(nats(
            json!({"username": "u", "password": "p", "token": "t"})
        ))
        .contains("exclude each other"));
        assert!(error(nats(json!({"ca_file": "/ca.pem"}))).contains("tls://"));
        let tls = nats(json!({"url": "tls://h", "ca_file": "/ca.pem"}));
        let SourceConfig::Nats(config) = SourceConfig::parse(&tls).unwrap() else {
            panic!("not nats")
        };
        let address = config.address().unwrap();
        assert_eq!((address.port, address.tls), (4222, true));
        assert!(error(nats(json!({"url": "tls://h", "ca_file": "ca.pem"}))).contains("absolute"));

        let mqtts = json!({"kind": "mqtt", "url": "mqtts://h", "topics": ["a"],
                           "ca_file": "/ca.pem"});
        let SourceConfig::Mqtt(config) = SourceConfig::parse(&mqtts).unwrap() else {
            panic!("not mqtt")
        };
        let address = config.address().unwrap();
        assert_eq!((address.port, address.tls), (8883, true));
        assert!(error(
            json!({"kind": "mqtt", "url": "mqtt://h", "topics": ["a"], "ca_file": "/ca.pem"})
        )
        .contains("mqtts://"));
    }

    #[test]
    fn lists_never_show_passwords() {
        let shown = redacted(&json!({"kind": "mqtt", "url": "mqtt://u:secret@h:1883",
                                     "password": "secret", "topics": ["a"]}));
        assert!(!shown.to_string().contains("secret"), "{shown}");
        assert_eq!(shown["has_password"], true);
        assert_eq!(shown["url"], "mqtt://u:***@h:1883");
        let shown = redacted(&json!({"kind": "nats", "token": "secret"}));
        assert_eq!(shown, json!({"kind": "nats", "has_token": true}));
    }
}
