use serde::{Deserialize, Serialize};

/// One scalar as a device sent it, before any declared type is applied. Arrays arrive as
/// `Str` holding their JSON text; nested objects are flattened away before values exist.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// The JSON type a device used for a field, tracked per incoming name so a user can see what
/// devices actually send before declaring a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
}

impl JsonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Boolean => "boolean",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
        }
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Decodes a bit set made of [`JsonKind::bit`] values.
    pub fn from_bits(bits: u8) -> Vec<JsonKind> {
        [
            JsonKind::Null,
            JsonKind::Boolean,
            JsonKind::Number,
            JsonKind::String,
            JsonKind::Array,
        ]
        .into_iter()
        .filter(|k| bits & k.bit() != 0)
        .collect()
    }
}

impl Value {
    /// The value as text, the way an unknown field reads in SQL.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
        }
    }
}
