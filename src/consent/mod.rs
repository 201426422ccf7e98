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

/// Proxies whose forwarded headers are believed (`ASSENT_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses or networks: `127.0.0.1,10.0.0.0/8`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let mut out = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| InvalidValue(format!("`{part}` is not an IP address or network")))?;
            out.push(net);
        }
        Ok(Self(out))
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&addr))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let Some(header) = forwarded_for else { return Some(peer) };
        let mut chain = header.split(',').rev().map(str::trim);
        chain.find_map(|hop| hop.parse::<IpAddr>().ok().filter(|a| !self.trusts(*a))).or(Some(peer))
    }
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

/// What a request says about where it was sent, as received.
#[derive(Debug, Default, Clone)]
pub struct RequestedOrigin<'a> {
    /// The connection's own scheme (`https` only when this server terminates TLS).
    pub scheme: &'a str,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// Every `Forwarded` header line (RFC 7239).
    pub forwarded: Vec<&'a str>,
    /// Every `X-Forwarded-Host` and `X-Forwarded-Proto` line: a proxy appends its own last.
    pub x_forwarded_host: Vec<&'a str>,
    pub x_forwarded_proto: Vec<&'a str>,
}

/// A host as a client may name it: a name or address and an optional port, nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

/// Splits `text` at each `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The `host` and `proto` of the element a proxy appended last to `Forwarded` (RFC 7239:
/// `for=…;proto=https;host=example.com`; several header lines are one list, RFC 9110 §5.3;
/// values plain or quoted, without escapes). None when the element does not parse.
fn forwarded_element(lines: &[&str]) -> Option<(Option<String>, Option<String>)> {
    let joined = lines.join(", ");
    let elements = split_unquoted(&joined, ',');
    let last = elements.last()?.trim();
    let (mut host, mut proto) = (None, None);
    for pair in split_unquoted(last, ';').into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"').filter(|v| !v.contains(['"', '\\']))?,
            None => value,
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "host" => host = Some(value.to_owned()),
            "proto" => proto = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    Some((host, proto))
}

impl TrustedProxies {
    /// Where the request was sent: from a trusted proxy, what its forwarded headers say
    /// (`Forwarded` when it sent one, else `X-Forwarded-Host` and `-Proto`); from anyone else,
    /// its own `Host` header and the connection's scheme. `fallback` is the host when nothing
    /// usable was said (this server's bind address).
    pub fn origin(&self, peer: Option<IpAddr>, asked: &RequestedOrigin<'_>, fallback: &str) -> Origin {
        let direct_host = asked.host.filter(|h| plausible_host(h)).unwrap_or(fallback).to_owned();
        let mut origin = Origin { scheme: asked.scheme.to_owned(), host: direct_host };
        if !peer.is_some_and(|p| self.trusts(p)) {
            return origin;
        }
        let last = |v: &[&str]| v.last().and_then(|v| v.rsplit(',').next()).map(|v| v.trim().to_owned());
        // A proxy that sends `Forwarded` is believed for it alone: the `X-Forwarded-*` it may
        // pass through unchanged are the client's.
        let (host, proto) = if asked.forwarded.is_empty() {
            (last(&asked.x_forwarded_host), last(&asked.x_forwarded_proto).map(|p| p.to_ascii_lowercase()))
        } else {
            forwarded_element(&asked.forwarded).unwrap_or_default()
        };
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
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let asked = RequestedOrigin {
            scheme: "http",
            host: Some("assent.internal:8080"),
            forwarded: vec![],
            x_forwarded_host: vec!["evil.example"],
            x_forwarded_proto: vec!["https"],
        };
        let anyone = proxies.origin("203.0.113.9".parse().ok(), &asked, "127.0.0.1:8080");
        assert_eq!(anyone.url(), "http://assent.internal:8080");
        let proxy = proxies.origin("10.0.0.1".parse().ok(), &asked, "127.0.0.1:8080");
        assert_eq!(proxy.url(), "https://evil.example");

        let rfc = RequestedOrigin {
            forwarded: vec!["for=192.0.2.60;proto=http, for=198.51.100.1;proto=HTTPS;host=\"policies.example.com\""],
            ..asked.clone()
        };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &rfc, "x").url(), "https://policies.example.com");
        // Several lines are one list: the proxy's own element, appended last, counts; a
        // client's line before it does not, nor do the X-Forwarded-* it passed through.
        let two = RequestedOrigin { forwarded: vec!["host=client.example", "host=proxy.example"], ..asked.clone() };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &two, "x").url(), "http://proxy.example");
        let quoted = RequestedOrigin {
            forwarded: vec!["for=1.2.3.4, host=\"a.example\";proto=https;for=\"[::1]:80\""],
            ..asked.clone()
        };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &quoted, "x").url(), "https://a.example");
        let escaped = RequestedOrigin { forwarded: vec!["host=\"a\\\"b\""], ..asked.clone() };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &escaped, "x").url(), "http://assent.internal:8080");
        let appended = RequestedOrigin { x_forwarded_host: vec!["evil.example", "proxy.example"], ..asked.clone() };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &appended, "x").url(), "https://proxy.example");
        // Nonsense hosts and schemes are ignored, even from a proxy.
        let junk = RequestedOrigin {
            host: Some("a b/c"),
            x_forwarded_host: vec!["evil.example/path"],
            x_forwarded_proto: vec!["javascript"],
            ..asked
        };
        assert_eq!(proxies.origin("10.0.0.1".parse().ok(), &junk, "127.0.0.1:8080").url(), "http://127.0.0.1:8080");
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

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(proxies.client(Some(ip("203.0.113.5")), Some("1.2.3.4")), Some(ip("203.0.113.5")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), Some("1.2.3.4, 10.1.1.1")), Some(ip("1.2.3.4")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), None), Some(ip("127.0.0.1")));
        assert_eq!(proxies.client(Some(ip("127.0.0.1")), Some("garbage")), Some(ip("127.0.0.1")));
        assert!(TrustedProxies::parse("not-an-ip").is_err());
    }
}
