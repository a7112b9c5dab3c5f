//! The SSRF guard: a tenant's webhook may not reach the server's own network (loopback,
//! private, link-local, unique-local, CGNAT or unspecified addresses, including IPv4 mapped
//! into IPv6) unless the operator allows it with `--allow-private-webhooks`. Checked when a
//! channel is created and again at every send, after DNS resolution, so a name that later
//! resolves inward is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// Why a target is refused, for the error message.
pub(crate) async fn refusal(url: &Url, allow_private: bool) -> Option<String> {
    if allow_private {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            // An unresolvable name reaches nothing; the send will fail and be retried.
            Err(_) => return None,
        },
    };
    addresses.into_iter().find(|ip| is_private(*ip)).map(|ip| {
        format!(
            "the webhook target {host} is a private address ({ip}); the operator can allow \
             private targets with --allow-private-webhooks"
        )
    })
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 100.64.0.0/10, carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b))
        // 0.0.0.0/8, "this network".
        || a == 0
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str) -> bool {
        refusal(&Url::parse(url).unwrap(), false).await.is_some()
    }

    #[tokio::test]
    async fn private_targets_are_refused_and_public_ones_pass() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(refused(url).await, "{url} must be refused");
        }
        for url in ["http://8.8.8.8/", "https://[2001:4860:4860::8888]/"] {
            assert!(!refused(url).await, "{url} must pass");
        }
        assert!(refusal(&Url::parse("http://127.0.0.1/").unwrap(), true)
            .await
            .is_none());
    }
}
