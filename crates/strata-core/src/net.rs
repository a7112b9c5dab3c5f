//! The address rules every front door shares: which peers count as this host, and when a
//! listener may speak clear text.

use std::net::{IpAddr, SocketAddr};

/// A peer on this host: a loopback address, also when it arrives IPv4-mapped on an IPv6
/// socket (`::ffff:127.0.0.1`).
pub fn is_local(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether a listener on `addr` may run: with TLS, on a loopback address, or where the
/// operator explicitly allowed clear text. Passwords on the Postgres, MQTT and Flight SQL
/// ports are tenant keys, so clear text on the network must be a choice, not a default.
pub fn cleartext_bind_allowed(addr: &SocketAddr, tls: bool, allow_insecure: bool) -> bool {
    tls || allow_insecure || is_local(addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_needs_loopback_tls_or_consent() {
        let public: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        assert!(!cleartext_bind_allowed(&public, false, false));
        assert!(cleartext_bind_allowed(&public, true, false));
        assert!(cleartext_bind_allowed(&public, false, true));
        assert!(cleartext_bind_allowed(&mapped, false, false));
        assert!(cleartext_bind_allowed(
            &"[::1]:1".parse().unwrap(),
            false,
            false
        ));
    }
}
