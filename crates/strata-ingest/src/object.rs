//! One event's top-level JSON object, as parsed from the body.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Index;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value as JsonValue};

use crate::exact::SentNumbers;

/// Most events have fewer top-level members than this; reserving it up front makes building the
/// member list one allocation instead of several doublings.
const TYPICAL_MEMBERS: usize = 16;

/// The top-level members of one event's JSON object, sorted by key, keys unique. Keys borrow
/// from the body unless they hold escapes: a key is copied only when it becomes a new incoming
/// name (issue 14: owned keys were 12 of the 20 allocations per event of the benchmark's shape).
///
/// This replaces a `serde_json::Map` (a `BTreeMap`) per event on the ingest path: every event's
/// members were inserted into a tree only to be looked up two or three times and then taken apart
/// again by [`crate::normalize`]. A vector sorted once costs one allocation and no node
/// rebalancing. Semantics match `serde_json::Map`: a key sent twice keeps its last value, and
/// members iterate in key order. Nested objects stay `JsonValue::Object` (they are rare and
/// flattened by `normalize`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventObject<'a> {
    /// Sorted by key; keys unique.
    members: Vec<(Cow<'a, str>, JsonValue)>,
    /// `(dotted path, sent text)` of numbers i64/f64 would change (see `crate::exact`); empty
    /// for nearly every event.
    sent_numbers: SentNumbers,
}

impl<'a> EventObject<'a> {
    /// Builds the object from members in document order: sorted by key, and of a key sent more
    /// than once only the last value is kept, as `serde_json::Map` does.
    pub(crate) fn from_members(mut members: Vec<(Cow<'a, str>, JsonValue)>) -> Self {
        // Stable, so members with equal keys stay in document order...
        members.sort_by(|a, b| a.0.cmp(&b.0));
        // ...and `dedup_by` (which keeps the first of a run) is made to keep the last value by
        // moving each later duplicate's value into the kept slot before the later one is dropped.
        members.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                std::mem::swap(&mut later.1, &mut kept.1);
                true
            } else {
                false
            }
        });
        EventObject {
            members,
            sent_numbers: Vec::new(),
        }
    }

    /// Adds each of `fields` the event does not send itself, as a string member: the values an
    /// MQTT topic's placeholders carry (`plant/{site}/{metric}/{device}`, issue 19). A member the
    /// event sends wins, because the device knows its own fields better than its topic does.
    pub fn with_implied_fields(mut self, fields: &'a [(String, String)]) -> Self {
        for (name, value) in fields {
            if let Err(slot) = self
                .members
                .binary_search_by(|(k, _)| k.as_ref().cmp(name.as_str()))
            {
                let value = JsonValue::String(value.clone());
                self.members
                    .insert(slot, (Cow::Borrowed(name.as_str()), value));
            }
        }
        self
    }

    /// Records which numbers of this event, parsed from `raw`, must keep their sent text.
    pub(crate) fn with_sent_numbers(mut self, raw: &[u8]) -> Self {
        self.sent_numbers = crate::exact::inexact_numbers(raw);
        self
    }

    /// Where `key` is in `members`.
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        self.members
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
    }

    /// The value of a top-level member.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.position(key).map(|i| &self.members[i].1)
    }

    /// Number of top-level members (a key sent twice counts once).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &JsonValue)> {
        self.members.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The members, sorted by key, keys unique, and the sent text of inexact numbers by path.
    pub(crate) fn into_parts(self) -> (Vec<(Cow<'a, str>, JsonValue)>, SentNumbers) {
        (self.members, self.sent_numbers)
    }
}

impl From<Map<String, JsonValue>> for EventObject<'static> {
    fn from(map: Map<String, JsonValue>) -> Self {
        // Sorted again in case serde_json's `preserve_order` feature is on somewhere in the build,
        // which makes `Map` iterate in insertion order.
        EventObject::from_members(map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    }
}

/// Like `serde_json::Map`'s indexing: panics when the key is absent.
impl Index<&str> for EventObject<'_> {
    type Output = JsonValue;

    fn index(&self, key: &str) -> &JsonValue {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no member {key:?} in the event"),
        }
    }
}

/// A member key: borrowed from the input when it holds no escapes. (`Cow<str>`'s own
/// `Deserialize` always copies.)
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }

            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for EventObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<'de>(PhantomData<&'de ()>);

        impl<'de> Visitor<'de> for ObjectVisitor<'de> {
            type Value = EventObject<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<EventObject<'de>, A::Error> {
                let capacity = access.size_hint().unwrap_or(TYPICAL_MEMBERS);
                let mut members = Vec::with_capacity(capacity);
                while let Some((Key(key), value)) = access.next_entry::<Key<'de>, JsonValue>()? {
                    members.push((key, value));
                }
                Ok(EventObject::from_members(members))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EventObject<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn members_are_sorted_and_a_repeated_key_keeps_its_last_value_like_serde_json_map() {
        for text in [
            r#"{"b":1,"a":2,"b":3,"c":{"x":1},"a":4,"b":5}"#,
            r#"{"z":null,"y":[1,2],"z":"last"}"#,
            r#"{}"#,
        ] {
            let ours = parse(text);
            let theirs: Map<String, JsonValue> = serde_json::from_str(text).unwrap();
            let ours_pairs: Vec<(&str, &JsonValue)> = ours.iter().collect();
            let theirs_pairs: Vec<(&str, &JsonValue)> =
                theirs.iter().map(|(k, v)| (k.as_str(), v)).collect();
            assert_eq!(ours_pairs, theirs_pairs, "{text}");
            assert_eq!(ours, EventObject::from(theirs), "{text}");
        }
        let object = parse(r#"{"b":1,"a":2,"b":3}"#);
        assert_eq!(object.len(), 2);
        assert_eq!(object["b"], serde_json::json!(3));
        assert_eq!(object.get("missing"), None);
    }

    #[test]
    fn errors_are_serde_json_map_errors() {
        for text in [r#"{"a":1,}"#, r#"{"a" 1}"#, r#"{"a":1"#, "[1]", "5", "null"] {
            let ours = serde_json::from_str::<EventObject>(text).unwrap_err();
            let theirs = serde_json::from_str::<Map<String, JsonValue>>(text).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
    }
}
