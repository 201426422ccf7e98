//! Signed consent links: what a token carries, how it is signed and checked, which `return_to`
//! addresses are allowed, and which client address a request came from. Pure: no HTTP types,
//! no database.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::{InvalidValue, SubjectId};

/// What a consent link's token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject.
    pub sub: String,
    /// Where to send the subject afterwards.
    pub ret: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Makes every link unique; decisions recorded with a link carry it.
    pub nonce: String,
    /// Issued at, in seconds since the Unix epoch: a link issued before the subject's erasure
    /// no longer opens.
    #[serde(default)]
    pub iat: i64,
    /// The audience the page asks about: only the documents that apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<crate::domain::Audience>,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_default()
    }

    pub fn subject(&self) -> Result<SubjectId, InvalidValue> {
        SubjectId::parse(&self.sub)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is not valid: it is incomplete or has been altered")]
    Invalid,
    #[error("this link has expired")]
    Expired,
    #[error("the record this link opened was erased")]
    Erased,
}

const PREFIX: &str = "v1.";

/// The key that signs links, derived from the server secret so that it is used for nothing else.
pub fn link_key(server_secret: &[u8]) -> Result<Vec<u8>, TokenError> {
    derive_key(server_secret, b"assent consent links v1")
}

/// A key for one purpose (`label`), derived from the server secret.
pub fn derive_key(server_secret: &[u8], label: &[u8]) -> Result<Vec<u8>, TokenError> {
    Ok(mac(server_secret, label)?.to_vec())
}

/// `<payload>.<signature>`, base64url, HMAC-SHA256 under `key`.
pub fn seal(key: &[u8], payload: &str) -> Result<String, TokenError> {
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = URL_SAFE_NO_PAD.encode(mac(key, payload.as_bytes())?);
    Ok(format!("{payload}.{signature}"))
}

/// The payload of a [`seal`]ed value, when its signature holds (checked in constant time).
pub fn unseal(key: &[u8], sealed: &str) -> Option<String> {
    let (payload, signature) = sealed.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    m.update(payload.as_bytes());
    m.verify_slice(&signature).ok()?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn mac(key: &[u8], data: &[u8]) -> Result<[u8; 32], TokenError> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| TokenError::Invalid)?;
    m.update(data);
    Ok(m.finalize().into_bytes().into())
}

/// `v1.<payload>.<signature>`, both base64url: HMAC-SHA256 over the payload.
pub fn sign(key: &[u8], claims: &Claims) -> Result<String, TokenError> {
    let json = serde_json::to_vec(claims).map_err(|_| TokenError::Invalid)?;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac(key, payload.as_bytes())?);
    Ok(format!("{PREFIX}{payload}.{signature}"))
}

/// Checks a token's signature (in constant time) and expiry.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Invalid)?;
    let (payload, signature) = rest.split_once('.').ok_or(TokenError::Invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| TokenError::Invalid)?;
    m.update(payload.as_bytes());
    m.verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)?;
    if claims.exp <= now.timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The origins `return_to` may point at (`ASSENT_ALLOWED_RETURN_ORIGINS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnOrigins(Vec<String>);

impl ReturnOrigins {
    /// A comma-separated list of origins such as `https://app.example.com,http://localhost:3000`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let mut out = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let url = url::Url::parse(part)
                .map_err(|_| InvalidValue(format!("`{part}` is not an origin such as https://app.example.com")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(InvalidValue(format!("`{part}` is not an http(s) origin")));
            }
            out.push(url.origin().ascii_serialization());
        }
        Ok(Self(out))
    }

    pub fn origins(&self) -> &[String] {
        &self.0
    }

    /// Checks `return_to` and gives it back normalised. Only an exact origin match is allowed,
    /// so a consent link can never become an open redirect.
    pub fn check(&self, return_to: &str) -> Result<url::Url, InvalidValue> {
        let url = url::Url::parse(return_to)
            .map_err(|_| InvalidValue(format!("return_to `{return_to}` is not an absolute URL")))?;
        let origin = url.origin().ascii_serialization();
        if self.0.contains(&origin) {
            Ok(url)
        } else if self.0.is_empty() {
            Err(InvalidValue(
                "no return_to is allowed: set ASSENT_ALLOWED_RETURN_ORIGINS to the host application's origin".into(),
            ))
        } else {
            Err(InvalidValue(format!("return_to must be on one of: {} (got {origin})", self.0.join(", "))))
        }
    }
}

/// Which forwarded headers a trusted proxy sets (`ASSENT_FORWARDED_HEADERS`). Only that family
/// is believed: a proxy that sets the other passes a client's own headers of this family
/// through unchanged, and those must count for nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyHeaders {
    /// `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` (nginx, HAProxy, most
    /// load balancers).
    #[default]
    XForwarded,
    /// One `Forwarded` header, RFC 7239 (`for=…;proto=https;host=example.com`).
    Forwarded,
}

impl std::str::FromStr for ProxyHeaders {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded" => Ok(Self::XForwarded),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(InvalidValue(format!("`{other}` is not `x-forwarded` or `forwarded`"))),
        }
    }
}

/// Proxies whose forwarded headers are believed (`ASSENT_TRUSTED_PROXIES`), and which of
/// them (`ASSENT_FORWARDED_HEADERS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<ipnet::IpNet>,
    headers: ProxyHeaders,
}

impl TrustedProxies {
    /// A comma-separated list of addresses or networks: `127.0.0.1,10.0.0.0/8`.
    pub fn parse(raw: &str, headers: ProxyHeaders) -> Result<Self, InvalidValue> {
        let mut nets = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| InvalidValue(format!("`{part}` is not an IP address or network")))?;
            nets.push(net);
        }
        Ok(Self { nets, headers })
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most address its header family names (`X-Forwarded-For`, or `for=` of
    /// `Forwarded`; every line of it, in order) that is not itself a trusted proxy.
    pub fn client(&self, peer: Option<IpAddr>, sent: &Forwarding<'_>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<Option<IpAddr>> = match self.headers {
            ProxyHeaders::XForwarded => {
                sent.x_forwarded_for.iter().flat_map(|l| l.split(',')).map(|h| h.trim().parse().ok()).collect()
            }
            ProxyHeaders::Forwarded => forwarded_elements(&sent.forwarded)
                .iter()
                .map(|element| element.get("for").and_then(|v| node_address(v)))
                .collect(),
        };
        // From the right: past the trusted proxies to the first hop they were told of. A hop
        // that names no address (`unknown`, an obfuscated node, garbage) ends the walk: what
        // comes before it cannot be told apart from a client's own claims.
        for hop in hops.into_iter().rev() {
            match hop {
                Some(addr) if self.trusts(addr) => continue,
                Some(addr) => return Some(addr),
                None => break,
            }
        }
        Some(peer)
    }
}

/// An address from a `Forwarded` node (`192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]:80`).
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(v6) = node.strip_prefix('[') {
        return v6.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

/// Where a request reached this server: the scheme and host its absolute URLs are built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
}

impl Origin {
    /// `https://host`: the base of absolute URLs, and what a browser sends as `Origin`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// From `ASSENT_PUBLIC_URL`.
    pub fn of_url(public: &str) -> Option<Self> {
        let url = url::Url::parse(public).ok()?;
        let host = url.host_str()?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Some(Self { scheme: url.scheme().to_owned(), host })
    }
}

/// What a request says about where it came from and where it was sent, as received.
#[derive(Debug, Default, Clone)]
pub struct Forwarding<'a> {
    /// The connection's own scheme (`https` only when this server terminates TLS).
    pub scheme: &'a str,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// Every `Forwarded` header line (RFC 7239).
    pub forwarded: Vec<&'a str>,
    /// Every `X-Forwarded-For`, `-Host` and `-Proto` line: a proxy appends its own last.
    pub x_forwarded_for: Vec<&'a str>,
    pub x_forwarded_host: Vec<&'a str>,
    pub x_forwarded_proto: Vec<&'a str>,
}

/// A host as a client may name it: a name or address and an optional port, nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

/// Splits `text` at each `sep` outside double quotes, reading the quotes from the right; the
/// parts are in their order in `text`.
fn split_unquoted_from_right(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut end, mut quoted) = (Vec::new(), text.len(), false);
    for (i, c) in text.char_indices().rev() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[i + c.len_utf8()..end]);
            end = i;
        }
    }
    parts.push(&text[..end]);
    parts.reverse();
    parts
}

/// The elements of `Forwarded`, each its pairs by lower-case key (RFC 7239:
/// `for=…;proto=https;host=example.com`; several header lines are one list, RFC 9110 §5.3;
/// values plain or quoted, without escapes). An element that does not parse is empty: it
/// names nothing.
fn forwarded_elements(lines: &[&str]) -> Vec<std::collections::HashMap<String, String>> {
    let element = |text: &str| {
        let mut pairs = std::collections::HashMap::new();
        for pair in split_unquoted_from_right(text, ';').into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"').filter(|v| !v.contains(['"', '\\']))?,
                None => value,
            };
            pairs.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        }
        Some(pairs)
    };
    // Split from the right: the elements a trusted proxy appended last are well-formed, so a
    // quote that a client left open before them (on its own line, or on the same one after a
    // proxy merged the lines) cannot swallow them; it only spoils the client's own part.
    let joined = lines.join(", ");
    split_unquoted_from_right(&joined, ',').into_iter().map(|e| element(e.trim()).unwrap_or_default()).collect()
}

impl TrustedProxies {
    /// Where the request was sent: from a trusted proxy, what its header family says (the
    /// element of `Forwarded` it appended last, or the last `X-Forwarded-Host` and `-Proto`);
    /// from anyone else, its own `Host` header and the connection's scheme. `fallback` is the
    /// host when nothing usable was said (this server's bind address).
    pub fn origin(&self, peer: Option<IpAddr>, asked: &Forwarding<'_>, fallback: &str) -> Origin {
        let direct_host = asked.host.filter(|h| plausible_host(h)).unwrap_or(fallback).to_owned();
        let mut origin = Origin { scheme: asked.scheme.to_owned(), host: direct_host };
        if !peer.is_some_and(|p| self.trusts(p)) {
            return origin;
        }
        let last = |v: &[&str]| v.last().and_then(|v| v.rsplit(',').next()).map(|v| v.trim().to_owned());
        let (host, proto) = match self.headers {
            ProxyHeaders::XForwarded => (last(&asked.x_forwarded_host), last(&asked.x_forwarded_proto)),
            ProxyHeaders::Forwarded => {
                let mut last = forwarded_elements(&asked.forwarded).pop().unwrap_or_default();
                (last.remove("host"), last.remove("proto"))
            }
        };
        let proto = proto.map(|p| p.to_ascii_lowercase());
        if let Some(host) = host.filter(|h| plausible_host(h)) {
            origin.host = host;
        }
        if let Some(proto) = proto.filter(|p| p == "http" || p == "https") {
            origin.scheme = proto;
        }
        origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("10.0.0.1", ProxyHeaders::XForwarded).unwrap();
        let asked = Forwarding {
            scheme: "http",
            host: Some("assent.internal:8080"),
            x_forwarded_host: vec!["evil.example"],
            x_forwarded_proto: vec!["https"],
            ..Forwarding::default()
        };
        let anyone = proxies.origin("203.0.113.9".parse().ok(), &asked, "127.0.0.1:8080");
        assert_eq!(anyone.url(), "http://assent.internal:8080");
        let proxy = proxies.origin("10.0.0.1".parse().ok(), &asked, "127.0.0.1:8080");
        assert_eq!(proxy.url(), "https://evil.example");
        let appended = Forwarding { x_forwarded_host: vec!["evil.example", "proxy.example"], ..asked.clone() };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &appended, "x").url(), "https://proxy.example");
        // An X-Forwarded proxy passes a client's own `Forwarded` through: it counts for nothing.
        let smuggled = Forwarding { forwarded: vec!["host=evil.example;proto=http"], ..appended.clone() };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &smuggled, "x").url(), "https://proxy.example");
        // Nonsense hosts and schemes are ignored, even from a proxy.
        let junk = Forwarding {
            host: Some("a b/c"),
            x_forwarded_host: vec!["evil.example/path"],
            x_forwarded_proto: vec!["javascript"],
            ..asked.clone()
        };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &junk, "127.0.0.1:8080").url(), "http://127.0.0.1:8080");

        let rfc_proxies = TrustedProxies::parse("10.0.0.1", ProxyHeaders::Forwarded).unwrap();
        let at = |sent: &Forwarding<'_>| rfc_proxies.origin("10.0.0.1".parse().ok(), sent, "x").url();
        let rfc = Forwarding {
            forwarded: vec!["for=192.0.2.60;proto=http, for=198.51.100.1;proto=HTTPS;host=\"policies.example.com\""],
            ..asked.clone()
        };
        assert_eq!(at(&rfc), "https://policies.example.com");
        // Several lines are one list: the proxy's own element, appended last, counts; a
        // client's line before it does not, nor do the X-Forwarded-* it passed through.
        let two = Forwarding { forwarded: vec!["host=client.example", "host=proxy.example"], ..asked.clone() };
        assert_eq!(at(&two), "http://proxy.example");
        let quoted = Forwarding {
            forwarded: vec!["for=1.2.3.4, host=\"a.example\";proto=https;for=\"[::1]:80\""],
            ..asked.clone()
        };
        assert_eq!(at(&quoted), "https://a.example");
        let escaped = Forwarding { forwarded: vec!["host=\"a\\\"b\""], ..asked.clone() };
        assert_eq!(at(&escaped), "http://assent.internal:8080");
        let none = Forwarding { forwarded: vec![], ..asked };
        assert_eq!(at(&none), "http://assent.internal:8080", "X-Forwarded-* count for nothing here");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8", ProxyHeaders::XForwarded).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = |lines: Vec<&'static str>| Forwarding { x_forwarded_for: lines, ..Forwarding::default() };
        assert_eq!(proxies.client(Some(ip("203.0.113.5")), &xff(vec!["1.2.3.4"])), Some(ip("203.0.113.5")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &xff(vec!["1.2.3.4, 10.1.1.1"])), Some(ip("1.2.3.4")));
        // Several lines are one list, in order: the proxy's own, appended last, counts.
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &xff(vec!["6.6.6.6", "1.2.3.4"])), Some(ip("1.2.3.4")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &xff(vec![])), Some(ip("127.0.0.1")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &xff(vec!["garbage"])), Some(ip("127.0.0.1")));
        let smuggled = Forwarding { forwarded: vec!["for=6.6.6.6"], ..Forwarding::default() };
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), &smuggled), Some(ip("127.0.0.1")));
        assert!(TrustedProxies::parse("not-an-ip", ProxyHeaders::XForwarded).is_err());

        let rfc = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8", ProxyHeaders::Forwarded).unwrap();
        let fwd = |lines: Vec<&'static str>| Forwarding { forwarded: lines, ..Forwarding::default() };
        let peer = Some(ip("10.0.0.2"));
        assert_eq!(rfc.client(peer, &fwd(vec!["for=192.0.2.60;proto=http, for=10.0.0.3"])), Some(ip("192.0.2.60")));
        assert_eq!(rfc.client(peer, &fwd(vec!["for=\"[2001:db8::1]:4711\""])), Some(ip("2001:db8::1")));
        assert_eq!(rfc.client(peer, &fwd(vec!["for=6.6.6.6", "for=192.0.2.1:8080"])), Some(ip("192.0.2.1")));
        // A quote left open by a client does not swallow what the proxy appended after it,
        // on another line or on the same one.
        assert_eq!(rfc.client(peer, &fwd(vec!["for=\"x", "for=203.0.113.7"])), Some(ip("203.0.113.7")));
        assert_eq!(rfc.client(peer, &fwd(vec!["for=\"x, for=203.0.113.8"])), Some(ip("203.0.113.8")));
        let open =
            Forwarding { forwarded: vec!["host=\"evil, host=good.example;proto=https"], ..Forwarding::default() };
        assert_eq!(rfc.origin(peer, &open, "x").url(), "https://good.example");
        // An obfuscated or unknown node breaks the chain: nothing before it is believed.
        assert_eq!(rfc.client(peer, &fwd(vec!["for=6.6.6.6, for=unknown"])), peer);
        assert_eq!(rfc.client(peer, &xff(vec!["1.2.3.4"])), peer, "X-Forwarded-For counts for nothing here");
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "user-1".into(),
            ret: "https://app.example.com/back".into(),
            exp,
            nonce: "n1".into(),
            iat: 0,
            aud: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let key = link_key(b"secret").unwrap();
        let now = Utc::now();
        let token = sign(&key, &claims(now.timestamp() + 60)).unwrap();
        assert_eq!(verify(&key, &token, now).unwrap(), claims(now.timestamp() + 60));
        assert_eq!(verify(&link_key(b"other").unwrap(), &token, now), Err(TokenError::Invalid));
        let (head, sig) = token.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&Claims { sub: "admin".into(), ..claims(now.timestamp() + 60) }).unwrap());
        assert_eq!(verify(&key, &format!("v1.{forged_payload}.{sig}"), now), Err(TokenError::Invalid));
        assert_eq!(verify(&key, &format!("{head}.AAAA"), now), Err(TokenError::Invalid));
        for junk in ["", "v1.", "v1.x.y", "nonsense", "v2.a.b"] {
            assert_eq!(verify(&key, junk, now), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn an_expired_token_says_so() {
        let key = link_key(b"secret").unwrap();
        let now = Utc::now();
        let token = sign(&key, &claims(now.timestamp() - 1)).unwrap();
        assert_eq!(verify(&key, &token, now), Err(TokenError::Expired));
    }

    #[test]
    fn return_to_must_match_an_allowed_origin_exactly() {
        let allowed = ReturnOrigins::parse("https://app.example.com, http://localhost:3000").unwrap();
        assert!(allowed.check("https://app.example.com/after?x=1").is_ok());
        assert!(allowed.check("http://localhost:3000/back").is_ok());
        for bad in [
            "https://app.example.com.evil.net/",
            "http://app.example.com/",
            "https://evil.net/?https://app.example.com",
            "https://app.example.com:8443/",
            "//app.example.com/",
            "javascript:alert(1)",
            "http://localhost:3001/",
        ] {
            assert!(allowed.check(bad).is_err(), "{bad}");
        }
        assert!(ReturnOrigins::default().check("https://app.example.com/").is_err());
        assert!(ReturnOrigins::parse("ftp://x").is_err());
    }
}
