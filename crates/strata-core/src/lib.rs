//! Vocabulary shared by every Strata crate: identifiers, roles, field types, scalar values,
//! the rules every user-supplied name must follow, and the explicit limits.
//!
//! Nothing here does I/O. Keeping this crate dependency-light means every other crate can use the
//! same definitions without pulling storage or SQL machinery along.

mod limits;
mod names;
mod panic;
mod time;
mod types;
mod value;

pub use limits::{
    Limits, DEFAULT_FIELD_NAMES_PER_METRIC, ERROR_LOG_MAX_AGE, ERROR_LOG_REQUEST_BYTES,
    ERROR_LOG_TENANT_BYTES, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS,
};
pub use names::{validate_name, NameError, MAX_NAME_BYTES, RESERVED_FIELD_NAME};
pub use panic::panic_text;
pub use time::{now_ms, DAY_MS, HOUR_MS, WEEK_MS};
pub use types::{FieldType, Role, UnknownFieldType, UnknownRole};
pub use value::{JsonKind, Value};

/// A tenant's stable internal id. Never shown to other tenants.
pub type TenantId = i64;
/// A metric's stable internal id; survives renames.
pub type MetricId = i64;
/// A field's stable internal id; survives renames.
pub type FieldId = i64;
/// The id of an incoming name (a key a device actually sent) within one metric. Data in the hot
/// tier is stored under this id, so renames and aliases never rewrite data.
pub type NameId = u32;
