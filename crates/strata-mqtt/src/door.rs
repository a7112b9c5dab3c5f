//! What the MQTT door asks of the engines: who a CONNECT's credentials are, which topic
//! templates a tenant has, and one publish written through [`Writer::write`] (the write path,
//! never a copy of it), with the verdict its acknowledgement carries.

use std::sync::Arc;

use bytes::Bytes;
use strata_catalog::{SettingsStore, TenantDirectory};
use strata_core::topic::{effective_topic_templates, match_topic, TopicTemplate};
use strata_core::{Role, TenantId};
use strata_ingest::BodyFormat;
use strata_write::{WriteError, WriteRequest, Writer};

use crate::protocol::{ConnectRefusal, PublishVerdict};

/// Longer usernames or passwords are refused before any lookup (the same bound as the
/// Postgres door's): no tenant name or key is near it.
const MAX_CREDENTIAL_BYTES: usize = 1024;

/// The engines behind the door.
pub struct MqttDoor {
    writer: Arc<Writer>,
    tenants: Arc<dyn TenantDirectory>,
    settings: Arc<dyn SettingsStore>,
}

impl MqttDoor {
    pub fn new(
        writer: Arc<Writer>,
        tenants: Arc<dyn TenantDirectory>,
        settings: Arc<dyn SettingsStore>,
    ) -> Self {
        MqttDoor {
            writer,
            tenants,
            settings,
        }
    }

    pub(crate) fn max_payload_bytes(&self) -> usize {
        self.writer.limits().write_body_bytes
    }

    /// The tenant when the username names it and the password is one of its keys that may
    /// write.
    pub(crate) async fn authenticate(
        &self,
        login: Option<&(String, String)>,
    ) -> Result<TenantId, ConnectRefusal> {
        let Some((user, password)) = login else {
            return Err(ConnectRefusal::BadCredentials);
        };
        if user.len() > MAX_CREDENTIAL_BYTES || password.len() > MAX_CREDENTIAL_BYTES {
            return Err(ConnectRefusal::BadCredentials);
        }
        let unavailable = |error: strata_catalog::CatalogError| {
            tracing::error!(%error, "catalog failure during MQTT login");
            ConnectRefusal::Unavailable
        };
        let named = self
            .tenants
            .tenant_by_name(user)
            .await
            .map_err(unavailable)?;
        // Checked even for an unknown user so both failures cost the same lookups.
        let keyed = self
            .tenants
            .authenticate(password)
            .await
            .map_err(unavailable)?;
        match (named, keyed) {
            (Some(named), Some((tenant, key)))
                if tenant.id == named.id && key.tenant == named.id =>
            {
                if key.role.allows(Role::Write) {
                    Ok(named.id)
                } else {
                    Err(ConnectRefusal::NotAuthorized)
                }
            }
            _ => Err(ConnectRefusal::BadCredentials),
        }
    }

    /// The tenant's topic templates, or the defaults when it has none (or, logged, when its
    /// stored ones no longer parse: the catalog validated them, so that is a bug).
    pub(crate) async fn topic_templates(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<TopicTemplate>, WriteError> {
        let settings = self.settings.settings(tenant).await?;
        Ok(
            effective_topic_templates(&settings.mqtt_topics).unwrap_or_else(|error| {
                tracing::error!(%tenant, %error, "stored MQTT topic templates do not parse");
                effective_topic_templates(&[]).unwrap_or_default()
            }),
        )
    }

    /// Writes one publish's payload as the events of the metric its topic names. `Err` only
    /// when nothing could be made durable or logged (the caller must not acknowledge).
    pub(crate) async fn publish(
        &self,
        tenant: TenantId,
        templates: &[TopicTemplate],
        topic: Option<&str>,
        payload: Bytes,
    ) -> Result<PublishVerdict, WriteError> {
        let Some(found) = topic.and_then(|topic| match_topic(templates, topic)) else {
            let reason = refused_topic_reason(topic, templates);
            tracing::info!(%tenant, %reason, "MQTT publish refused");
            self.writer
                .record_unreadable_body(tenant, "topic", &reason, &payload)
                .await;
            return Ok(PublishVerdict::TopicRefused);
        };
        let written = self
            .writer
            .write(WriteRequest {
                door: strata_core::telemetry::door::MQTT,
                tenant,
                body: &payload,
                format: BodyFormat::Json,
                metric: Some(&found.metric),
                implied_fields: &found.fields,
            })
            .await;
        match written {
            Ok(outcome) if outcome.accepted == 0 && !outcome.rejections.is_empty() => {
                Ok(PublishVerdict::PayloadInvalid)
            }
            Ok(_) => Ok(PublishVerdict::Stored),
            // The writer logged the unreadable payload in `strata.errors`.
            Err(WriteError::Body(_)) => Ok(PublishVerdict::PayloadInvalid),
            Err(error) => Err(error),
        }
    }
}

fn refused_topic_reason(topic: Option<&str>, templates: &[TopicTemplate]) -> String {
    let shapes: Vec<&str> = templates.iter().map(TopicTemplate::as_str).collect();
    match topic {
        Some(topic) => format!(
            "MQTT topic {topic:?} matches none of the tenant's topic templates ({})",
            shapes.join(", ")
        ),
        None => "MQTT topic is empty or not UTF-8 (topic aliases are not offered)".to_string(),
    }
}
