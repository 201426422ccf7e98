//! Where a webhook may be sent: only to public addresses, unless `ASSENT_WEBHOOK_ALLOW_PRIVATE=1`.
//! A URL naming a private host would let whoever registers endpoints make Assent's servers call
//! into the network they sit in (SSRF). The name is checked when the endpoint is registered, and
//! the addresses are checked again at every delivery by the resolver the HTTP client connects
//! through ([`Guarded`]): a name that resolved to a public address at registration and resolves
//! to a private one later (DNS rebinding) is refused, because the client can only connect to the
//! addresses that resolver hands it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, multicast, broadcast, documentation, benchmarking
/// or reserved. IPv4 addresses inside IPv6 ones (mapped, compatible, NAT64) are judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || b0 == 0 // "this network"
        || (b0 == 100 && (64..128).contains(&b1)) // shared address space (CGNAT), 100.64.0.0/10
        || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments, 192.0.0.0/24
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking, 198.18.0.0/15
        || (b0 == 192 && b1 == 88 && b2 == 99) // 6to4 relay anycast (deprecated), 192.88.99.0/24
        || b0 >= 240) // reserved, 240.0.0.0/4
}

fn public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = a.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) carry an IPv4 address.
    if (s[..6] == [0, 0, 0, 0, 0, 0] && !a.is_loopback() && !a.is_unspecified()) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let [.., a0, a1, a2, a3] = a.octets();
        return public_v4(Ipv4Addr::new(a0, a1, a2, a3));
    }
    // 6to4 (2002::/16) carries an IPv4 address in its next 32 bits.
    if s[0] == 0x2002 {
        let [_, _, a0, a1, a2, a3, ..] = a.octets();
        return public_v4(Ipv4Addr::new(a0, a1, a2, a3));
    }
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64, 64:ff9b:1::/48
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0) // IPv4-translated, ::ffff:0:0:0/96
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only, 100::/64
}

/// A webhook destination refused because of where it leads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{host} is a private address (set ASSENT_WEBHOOK_ALLOW_PRIVATE=1 to allow private addresses)")]
    Private { host: String },
    #[error(
        "{host} resolves to the private address {address} (set ASSENT_WEBHOOK_ALLOW_PRIVATE=1 to allow private addresses)"
    )]
    ResolvesPrivate { host: String, address: IpAddr },
    #[error("{host} does not resolve to any address: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// The host of a URL as an address, when it is one (`[::1]` included).
pub fn literal(host: &url::Host<&str>) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        url::Host::Domain(_) => None,
    }
}

/// Checks every address `host` resolves to, now (blocking: a DNS lookup). For registration; a
/// delivery checks again through [`Guarded`].
pub fn check_resolved(host: &url::Host<&str>, port: u16, allow_private: bool) -> Result<(), Refusal> {
    if let Some(ip) = literal(host) {
        return if allow_private || is_public(ip) { Ok(()) } else { Err(Refusal::Private { host: host.to_string() }) };
    }
    let name = host.to_string();
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
        .map_err(|e| Refusal::Unresolvable { host: name.clone(), reason: e.to_string() })?
        .collect();
    if addresses.is_empty() {
        return Err(Refusal::Unresolvable { host: name, reason: "no addresses".into() });
    }
    match addresses.iter().find(|a| !allow_private && !is_public(a.ip())) {
        Some(private) => Err(Refusal::ResolvesPrivate { host: name, address: private.ip() }),
        None => Ok(()),
    }
}

/// The HTTP client's resolver: the system's answer, with every private address taken out (unless
/// allowed). A name left with no address fails to connect, naming why.
#[derive(Debug, Clone, Copy)]
pub struct Guarded {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| {
                    let ok = allow_private || is_public(a.ip());
                    if !ok {
                        refused = Some(a.ip());
                    }
                    ok
                })
                .collect();
            if kept.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some(address) => Box::new(Refusal::ResolvesPrivate { host, address }),
                    None => Box::new(Refusal::Unresolvable { host, reason: "no addresses".into() }),
                };
                return Err(error);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "64:ff9b:1::1",
            "::ffff:0:a00:1",
            "192.88.99.1",
        ] {
            assert!(!public(a), "{a} counted as public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(a), "{a} counted as private");
        }
    }

    #[test]
    fn literals_are_checked_without_a_lookup() {
        let host = url::Host::Ipv4("127.0.0.1".parse().unwrap());
        assert!(matches!(check_resolved(&host, 80, false), Err(Refusal::Private { .. })));
        assert_eq!(check_resolved(&host, 80, true), Ok(()));
        let host: url::Host<&str> = url::Host::Ipv6("::1".parse().unwrap());
        assert!(check_resolved(&host, 80, false).is_err());
    }

    #[test]
    fn names_that_resolve_to_loopback_are_refused() {
        let host = url::Host::Domain("localhost");
        assert!(matches!(check_resolved(&host, 80, false), Err(Refusal::ResolvesPrivate { .. })));
        assert_eq!(check_resolved(&host, 80, true), Ok(()));
    }
}
