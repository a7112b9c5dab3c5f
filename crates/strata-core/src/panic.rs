//! The text of a caught panic, for the log. Every door catches panics (HTTP, Postgres, the query
//! task) and logs what they said; none shows it to the client, since a panic message can name
//! internals such as file paths (invariant 4).

use std::any::Any;

/// The message of a panic payload: `panic!` with a literal or a formatted message.
pub fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}
