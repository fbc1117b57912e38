//! The callback-URL policy: where a merchant callback may go — only to public addresses. A URL whose host is, or resolves to, a
//! loopback, private, link-local (cloud metadata included), carrier-grade NAT, unspecified,
//! multicast, broadcast, documentation or otherwise reserved address is refused, for IPv4 and
//! IPv6 alike (IPv4-mapped, -compatible, NAT64 and 6to4 addresses are judged by the IPv4 address
//! inside). The check runs when a URL is saved (store create/update, gateway order create) and
//! again at every send; at send time the callback sink's HTTP client connects only to addresses
//! vetted by this policy (its resolver calls [`resolve`] and [`check_addresses`]), so a name
//! that resolves differently a moment later (DNS rebinding) cannot slip through. The runtime setting `callbacks.allow_private_addresses` turns the check
//! off for local development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The runtime setting that allows private addresses (development only).
pub const ALLOW_PRIVATE_SETTING: &str = "callbacks.allow_private_addresses";
/// How long a save-time lookup may take before the URL is accepted unresolved.
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the URL is not an http(s) URL with a host: {0}")]
    Invalid(String),
    #[error("{host} is {address}, a {kind} address; callbacks go only to public addresses")]
    Forbidden {
        host: String,
        address: IpAddr,
        kind: &'static str,
    },
    #[error("{host} does not resolve: {error}")]
    Unresolvable { host: String, error: String },
}

impl Refusal {
    /// The stable error code the APIs answer with.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "callback_url_invalid",
            Refusal::Forbidden { .. } => "callback_url_forbidden",
            Refusal::Unresolvable { .. } => "callback_url_unresolvable",
        }
    }
}

/// The kind of a forbidden IPv4 address, or `None` when it is public.
fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local (cloud metadata)",
        (100, 64..=127, _) => "carrier-grade NAT",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

/// The kind of a forbidden address, or `None` when it is public.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[0..5] == [0; 5] && s[5] == 0xffff {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    if s[0..6] == [0; 6] {
        return Some("IPv4-compatible (deprecated)");
    }
    // NAT64 64:ff9b::a.b.c.d
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 2002:AABB:CCDD::/48
    if s[0] == 0x2002 {
        return forbidden_v4(embedded_v4(s[1], s[2]));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "unique local (private)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x0100 if s[1..4] == [0; 3] => "discard-only",
        _ => return None,
    })
}

/// The host and port of an http(s) URL.
pub fn host_port(url: &str) -> Result<(String, u16), Refusal> {
    let parsed = url::Url::parse(url).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let port = match parsed.scheme() {
        "http" | "https" => parsed
            .port_or_known_default()
            .ok_or_else(|| Refusal::Invalid(url.to_owned()))?,
        other => return Err(Refusal::Invalid(format!("scheme {other}"))),
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Refusal::Invalid(url.to_owned()))?
        .trim_matches(['[', ']'])
        .to_owned();
    Ok((host, port))
}

/// Checks every address; all must be public (one bad address refuses the name).
pub fn check_addresses(host: &str, addresses: &[SocketAddr]) -> Result<(), Refusal> {
    for address in addresses {
        if let Some(kind) = forbidden_kind(address.ip()) {
            return Err(Refusal::Forbidden {
                host: host.to_owned(),
                address: address.ip(),
                kind,
            });
        }
    }
    Ok(())
}

/// Resolves `host` (an IP literal resolves to itself).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    let unresolvable = |error: String| Refusal::Unresolvable {
        host: host.to_owned(),
        error,
    };
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(unresolvable("no addresses".into()));
    }
    Ok(addresses)
}

/// The send-time check: the URL must resolve, and only to public addresses (unless allowed).
pub async fn vet(url: &str, allow_private: bool) -> Result<Vec<SocketAddr>, Refusal> {
    let (host, port) = host_port(url)?;
    let addresses = resolve(&host, port).await?;
    if !allow_private {
        check_addresses(&host, &addresses)?;
    }
    Ok(addresses)
}

/// The save-time check: refuses a URL whose host is or resolves to a forbidden address. A name
/// that does not resolve (yet) is accepted: it is checked again at every send.
pub async fn check_on_save(url: &str, allow_private: bool) -> Result<(), Refusal> {
    let (host, port) = host_port(url)?;
    if allow_private {
        return Ok(());
    }
    match tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, resolve(&host, port)).await {
        Ok(Ok(addresses)) => check_addresses(&host, &addresses),
        Ok(Err(_)) | Err(_) => Ok(()),
    }
}

/// A callback URL refused when it is saved, with the request field that named it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {refusal}")]
pub struct FieldRefused {
    pub field: String,
    pub refusal: Refusal,
}

/// [`check_on_save`] for the request field `field`, with the allowance already known (the
/// gateway keeps it cached; the management API reads it with [`allow_private`]).
pub async fn vet_field(allow_private: bool, field: &str, url: &str) -> Result<(), FieldRefused> {
    check_on_save(url, allow_private)
        .await
        .map_err(|refusal| FieldRefused {
            field: field.to_owned(),
            refusal,
        })
}

/// Reads the development allowance from the runtime settings stored in PostgreSQL.
pub async fn allow_private<'e, E: sqlx::PgExecutor<'e>>(executor: E) -> sqlx::Result<bool> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT value FROM configuration_settings WHERE key = $1")
            .bind(ALLOW_PRIVATE_SETTING)
            .fetch_optional(executor)
            .await?;
    Ok(value.and_then(|v| v.as_bool()).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        forbidden_kind(s.parse().unwrap())
    }

    #[test]
    fn forbidden_addresses_are_recognised() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(kind(bad).is_some(), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(good), None, "{good} is public");
        }
        assert_eq!(kind("169.254.169.254"), Some("link-local (cloud metadata)"));
    }

    #[tokio::test]
    async fn urls_are_vetted_by_what_they_resolve_to() {
        for url in [
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "https://10.0.0.1/cb",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:9000/cb",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let refusal = vet(url, false).await.unwrap_err();
            assert_eq!(refusal.code(), "callback_url_forbidden", "{url}: {refusal}");
            assert!(check_on_save(url, false).await.is_err(), "{url}");
            assert!(vet(url, true).await.is_ok(), "{url} allowed in development");
        }
        assert_eq!(
            vet("ftp://example.com/", false).await.unwrap_err().code(),
            "callback_url_invalid"
        );
        // Unresolvable names are accepted when saved, refused when sending.
        assert!(check_on_save("https://shop.invalid/cb", false)
            .await
            .is_ok());
        assert_eq!(
            vet("https://shop.invalid/cb", false)
                .await
                .unwrap_err()
                .code(),
            "callback_url_unresolvable"
        );
    }
}
