//! MQTT topic templates (issue 19): which metric, and which fields, a publish's topic names.
//!
//! A template is a topic whose whole segments may be placeholders: `{metric}` exactly once,
//! and any other `{name}` becomes a string field of every event published there
//! (`plant/{site}/{metric}/{device}`). A tenant's templates are tried in order and the first
//! that matches wins; a topic that matches none is outside the tenant and refused.

use thiserror::Error;

use crate::names::{validate_name, RESERVED_FIELD_NAME};

/// The templates of a tenant that configured none: `thermostat` and `thermostat/truck_7`
/// (the device in field `device`).
pub const DEFAULT_TOPIC_TEMPLATES: [&str; 2] = ["{metric}", "{metric}/{device}"];
/// Templates one tenant may configure; each publish tries them in order.
pub const MAX_TOPIC_TEMPLATES: usize = 16;
/// Segments of one template. MQTT topics have no limit, but a device topic deeper than this is
/// a mistake, and matching walks every segment on every publish.
pub const MAX_TOPIC_SEGMENTS: usize = 16;
/// Bytes of one template's text.
pub const MAX_TOPIC_TEMPLATE_BYTES: usize = 512;

const METRIC_PLACEHOLDER: &str = "metric";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicTemplateError {
    #[error("topic template {template:?}: {problem}")]
    Invalid { template: String, problem: String },
    #[error("{count} topic templates; the limit is {MAX_TOPIC_TEMPLATES}")]
    TooMany { count: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Metric,
    Field(String),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// What a topic names under a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMatch {
    pub metric: String,
    /// `(field, value)` for each placeholder other than `{metric}`, in template order.
    pub fields: Vec<(String, String)>,
}

impl TopicTemplate {
    pub fn parse(text: &str) -> Result<Self, TopicTemplateError> {
        let invalid = |problem: String| TopicTemplateError::Invalid {
            template: text.chars().take(64).collect(),
            problem,
        };
        if text.len() > MAX_TOPIC_TEMPLATE_BYTES {
            return Err(invalid(format!(
                "{} bytes; the limit is {MAX_TOPIC_TEMPLATE_BYTES}",
                text.len()
            )));
        }
        if text.starts_with('$') {
            return Err(invalid(
                "topics starting with '$' belong to the broker".into(),
            ));
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > MAX_TOPIC_SEGMENTS {
            return Err(invalid(format!(
                "{} segments; the limit is {MAX_TOPIC_SEGMENTS}",
                parts.len()
            )));
        }
        let segments = parts
            .iter()
            .enumerate()
            .map(|(i, part)| segment(part).map_err(|p| invalid(format!("segment {}: {p}", i + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        check_placeholders(&segments).map_err(invalid)?;
        Ok(TopicTemplate {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The metric and fields `topic` names, or `None` when the template does not fit it.
    pub fn matches(&self, topic: &str) -> Option<TopicMatch> {
        if topic.starts_with('$') {
            return None;
        }
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut metric = None;
        let mut fields = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                _ if part.is_empty() => return None,
                Segment::Metric => metric = Some(part.to_string()),
                Segment::Field(name) => fields.push((name.clone(), part.to_string())),
            }
        }
        Some(TopicMatch {
            metric: metric?,
            fields,
        })
    }
}

/// Parses each template, in order; at most [`MAX_TOPIC_TEMPLATES`].
pub fn parse_topic_templates(texts: &[String]) -> Result<Vec<TopicTemplate>, TopicTemplateError> {
    if texts.len() > MAX_TOPIC_TEMPLATES {
        return Err(TopicTemplateError::TooMany { count: texts.len() });
    }
    texts
        .iter()
        .map(|text| TopicTemplate::parse(text))
        .collect()
}

/// The templates a tenant's publishes are matched against: its own, or the defaults.
pub fn effective_topic_templates(
    configured: &[String],
) -> Result<Vec<TopicTemplate>, TopicTemplateError> {
    if configured.is_empty() {
        let defaults = DEFAULT_TOPIC_TEMPLATES.map(String::from);
        return parse_topic_templates(&defaults);
    }
    parse_topic_templates(configured)
}

/// The first template's match of `topic`.
pub fn match_topic(templates: &[TopicTemplate], topic: &str) -> Option<TopicMatch> {
    templates
        .iter()
        .find_map(|template| template.matches(topic))
}

fn segment(part: &str) -> Result<Segment, String> {
    if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        if name == METRIC_PLACEHOLDER {
            return Ok(Segment::Metric);
        }
        validate_name("field", name).map_err(|e| e.to_string())?;
        if name == RESERVED_FIELD_NAME || name.contains(['{', '}']) {
            return Err(format!("{{{name}}} cannot name a field"));
        }
        return Ok(Segment::Field(name.to_string()));
    }
    if part.contains(['+', '#']) {
        return Err(format!(
            "{part:?} holds a wildcard; a template matches one topic shape"
        ));
    }
    if part.contains(['{', '}']) {
        return Err(format!(
            "{part:?}: a placeholder must be a whole segment such as {{device}}"
        ));
    }
    Ok(Segment::Literal(part.to_string()))
}

fn check_placeholders(segments: &[Segment]) -> Result<(), String> {
    let metrics = segments.iter().filter(|s| **s == Segment::Metric).count();
    if metrics != 1 {
        return Err(format!(
            "needs {{metric}} exactly once, found it {metrics} times"
        ));
    }
    let mut names: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Field(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(format!("{{{}}} appears twice", pair[0])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_templates_read_metric_and_device() {
        let templates = effective_topic_templates(&[]).unwrap();
        let plain = match_topic(&templates, "thermostat").unwrap();
        assert_eq!(plain.metric, "thermostat");
        assert!(plain.fields.is_empty());
        let device = match_topic(&templates, "thermostat/truck_7").unwrap();
        assert_eq!(device.metric, "thermostat");
        assert_eq!(device.fields, fields(&[("device", "truck_7")]));
        assert_eq!(match_topic(&templates, "a/b/c"), None);
        assert_eq!(match_topic(&templates, "thermostat/"), None);
        assert_eq!(match_topic(&templates, "$SYS/broker"), None);
    }

    #[test]
    fn configured_template_turns_placeholders_into_fields() {
        let templates =
            effective_topic_templates(&["plant/{site}/{metric}/{device}".to_string()]).unwrap();
        let matched = match_topic(&templates, "plant/lyon/press/p-12").unwrap();
        assert_eq!(matched.metric, "press");
        assert_eq!(
            matched.fields,
            fields(&[("site", "lyon"), ("device", "p-12")])
        );
        assert_eq!(match_topic(&templates, "factory/lyon/press/p-12"), None);
        assert_eq!(
            match_topic(&templates, "press"),
            None,
            "defaults are replaced"
        );
    }

    #[test]
    fn malformed_templates_are_refused_with_the_reason() {
        let refused = |text: &str| TopicTemplate::parse(text).unwrap_err().to_string();
        assert!(refused("plant/{site}").contains("{metric} exactly once"));
        assert!(refused("{metric}/{metric}").contains("exactly once"));
        assert!(refused("{metric}/{d}/{d}").contains("{d} appears twice"));
        assert!(refused("{metric}/+").contains("wildcard"));
        assert!(refused("{metric}/#").contains("wildcard"));
        assert!(refused("{metric}/dev-{id}").contains("whole segment"));
        assert!(refused("{metric}/{timestamp}").contains("cannot name a field"));
        assert!(refused("$SYS/{metric}").contains("broker"));
        let deep = vec!["x"; MAX_TOPIC_SEGMENTS].join("/") + "/{metric}";
        assert!(refused(&deep).contains("segments"));
        let many = vec!["{metric}".to_string(); MAX_TOPIC_TEMPLATES + 1];
        assert!(parse_topic_templates(&many).is_err());
    }
}
