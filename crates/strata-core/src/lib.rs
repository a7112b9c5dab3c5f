//! Vocabulary shared by every Strata crate: identifiers, roles, field types, scalar values,
//! the rules every user-supplied name must follow, and the explicit limits.
//!
//! Nothing here does I/O. Keeping this crate dependency-light means every other crate can use the
//! same definitions without pulling storage or SQL machinery along.

mod limits;
mod names;
pub mod net;
mod panic;
#[cfg(feature = "sqlx")]
mod sqlx_ids;
pub mod telemetry;
mod time;
pub mod topic;
mod types;
mod value;

pub use limits::{
    Limits, DEFAULT_FIELD_NAMES_PER_METRIC, ERROR_LOG_MAX_AGE, ERROR_LOG_REQUEST_BYTES,
    ERROR_LOG_TENANT_BYTES, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS,
};
pub use names::{validate_name, NameError, MAX_NAME_BYTES, RESERVED_FIELD_NAME};
pub use panic::panic_text;
pub use time::{
    now_ms, TimestampUnit, UnknownTimestampUnit, DAY_MS, HOUR_MS, TIMESTAMP_UNIT_NAMES, WEEK_MS,
};
pub use types::{FieldType, Role, UnknownFieldType, UnknownRole};
pub use value::{JsonKind, Value};

/// Declares an id newtype over an integer: distinct types, so a metric id cannot be passed where
/// a tenant id is wanted. `.0` is the integer (for SQL binds and key encoding); `Display` and
/// serde show the bare integer, as before.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(id: $inner) -> Self {
                $name(id)
            }
        }

        impl From<$name> for $inner {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// A tenant's stable internal id. Never shown to other tenants.
    TenantId(i64)
);
id_type!(
    /// A metric's stable internal id; survives renames.
    MetricId(i64)
);
id_type!(
    /// A field's stable internal id; survives renames.
    FieldId(i64)
);
/// The id of an incoming name (a key a device actually sent) within one metric. Data in the hot
/// tier is stored under this id, so renames and aliases never rewrite data.
pub type NameId = u32;
