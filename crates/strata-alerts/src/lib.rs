//! Alerts: rules evaluated as SQL on a schedule (`query`), on every committed write batch
//! (`event`) or on the silence of a series or a field (`absence`); one state machine per alert
//! instance, persisted in the catalog; silences and acknowledgements; and a durable outbox that
//! delivers notifications by webhook, email and SMS at least once, each with a stable id.
//!
//! Data flow: the [`AlertService`] holds every rule and its instances in memory, mirrors of the
//! catalog rows. Evaluations turn into observations (labels, active, value); [`state`] turns
//! observations into transitions and notifications; both are committed in one catalog
//! transaction before memory changes, and the outbox worker (`outbox.rs`) sends what the
//! catalog holds (DESIGN.md invariant 8).
//!
//! Architecture invariant: this crate never imports a front door (HTTP, Postgres) or the node;
//! they import it. It reads data only through the tenant's sealed query session and the
//! committed-event stream, so a rule never reads another tenant's data.

mod catch_up;
mod channel;
mod duration;
mod engine;
mod error;
mod evaluate;
mod guard;
mod labels;
mod outbox;
mod rule;
mod service;
mod silence;
mod state;

pub mod deliver;

pub use deliver::{SmsConfig, SmtpConfig};
pub use error::AlertError;
pub use service::{AlertConfig, AlertService};
