//! Alert instance labels: an ordered map of label name to text, stored as canonical JSON (keys
//! sorted), which is the instance's identity within its rule.

use std::collections::BTreeMap;

pub(crate) type Labels = BTreeMap<String, String>;

pub(crate) fn to_key(labels: &Labels) -> String {
    // A map of strings always serializes; the fallback keeps this total.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_string())
}

pub(crate) fn from_key(key: &str) -> Labels {
    serde_json::from_str(key).unwrap_or_default()
}

/// Whether every matcher equals the label of that name; `alert` matches the rule's name.
pub(crate) fn matches(matchers: &Labels, rule_name: &str, labels: &Labels) -> bool {
    matchers.iter().all(|(name, wanted)| {
        let actual = if name == "alert" {
            Some(rule_name)
        } else {
            labels.get(name).map(String::as_str)
        };
        actual == Some(wanted.as_str())
    })
}
