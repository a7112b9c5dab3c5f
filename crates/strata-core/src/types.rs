use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The declared type of a field. A field without one is *unknown* and reads as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Boolean,
    Integer,
    Double,
    Timestamp,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown type {0:?}; expected one of string, boolean, integer, double, timestamp, binary (or varchar, bigint, int, float, bool, bytes)")]
pub struct UnknownFieldType(pub String);

impl FieldType {
    pub const ALL: [FieldType; 6] = [
        FieldType::String,
        FieldType::Boolean,
        FieldType::Integer,
        FieldType::Double,
        FieldType::Timestamp,
        FieldType::Binary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
            FieldType::Integer => "integer",
            FieldType::Double => "double",
            FieldType::Timestamp => "timestamp",
            FieldType::Binary => "binary",
        }
    }
}

impl FromStr for FieldType {
    type Err = UnknownFieldType;

    /// Accepts the contract's names and their SQL synonyms, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "string" | "varchar" | "text" => FieldType::String,
            "boolean" | "bool" => FieldType::Boolean,
            "integer" | "bigint" | "int" | "long" => FieldType::Integer,
            "double" | "float" => FieldType::Double,
            "timestamp" => FieldType::Timestamp,
            "binary" | "bytes" => FieldType::Binary,
            _ => return Err(UnknownFieldType(s.to_string())),
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may do. `Admin` implies `Write` and `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Write,
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown role {0:?}; expected admin, write or read")]
pub struct UnknownRole(pub String);

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Write => "write",
            Role::Read => "read",
        }
    }

    /// Whether a key with this role may perform an action that needs `required`.
    pub fn allows(self, required: Role) -> bool {
        match required {
            Role::Admin => self == Role::Admin,
            Role::Write => matches!(self, Role::Admin | Role::Write),
            Role::Read => matches!(self, Role::Admin | Role::Read),
        }
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "write" => Ok(Role::Write),
            "read" => Ok(Role::Read),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_synonyms_parse() {
        for (text, ty) in [
            ("varchar", FieldType::String),
            ("BIGINT", FieldType::Integer),
            ("int", FieldType::Integer),
            ("float", FieldType::Double),
            ("bool", FieldType::Boolean),
            ("bytes", FieldType::Binary),
            ("timestamp", FieldType::Timestamp),
        ] {
            assert_eq!(text.parse::<FieldType>(), Ok(ty), "{text}");
        }
        assert!("decimal".parse::<FieldType>().is_err());
        for ty in FieldType::ALL {
            assert_eq!(ty.as_str().parse::<FieldType>(), Ok(ty));
        }
    }

    #[test]
    fn role_permissions() {
        assert!(Role::Admin.allows(Role::Write));
        assert!(Role::Admin.allows(Role::Read));
        assert!(!Role::Write.allows(Role::Read));
        assert!(!Role::Read.allows(Role::Write));
        assert!(!Role::Write.allows(Role::Admin));
    }
}
