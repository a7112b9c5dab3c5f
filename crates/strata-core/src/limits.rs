/// Every explicit input limit in one place. Each is configurable on `strata serve`; the defaults
/// are what the README documents.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body on `/api/v1/write`.
    pub write_body_bytes: usize,
    /// Largest single event inside a write body.
    pub event_bytes: usize,
    /// Most fields (after flattening) in one event.
    pub fields_per_event: usize,
    /// Largest request body on schema, key, tenant and settings endpoints.
    pub admin_body_bytes: usize,
    /// Largest raw payload kept in the error log per rejected event.
    pub error_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_body_bytes: 16 * 1024 * 1024,
            event_bytes: 1024 * 1024,
            fields_per_event: 1000,
            admin_body_bytes: 1024 * 1024,
            error_payload_bytes: 64 * 1024,
        }
    }
}
