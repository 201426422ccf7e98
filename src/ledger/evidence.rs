//! Evidence about how a decision was made, minimised as `ASSENT_IP_MODE` says.

use std::net::IpAddr;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::InvalidValue;

/// How much of a client's IP address the ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// The whole address.
    Full,
    /// IPv4 to its /24, IPv6 to its /48 (the default: the policies promise minimisation).
    Truncated,
    /// A keyed hash (HMAC-SHA256 under the server secret): equal addresses match, none can be read.
    Hashed,
    /// Nothing.
    None,
}

impl FromStr for IpMode {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "full" => Ok(Self::Full),
            "truncated" => Ok(Self::Truncated),
            "hashed" => Ok(Self::Hashed),
            "none" => Ok(Self::None),
            other => {
                Err(InvalidValue(format!("`{other}` is not an IP mode: use `full`, `truncated`, `hashed` or `none`")))
            }
        }
    }
}

/// The evidence kept with an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
}

/// Longest user agent and locale kept; longer values are refused, not cut, so what is stored is
/// what was sent.
pub const MAX_USER_AGENT: usize = 1024;
pub const MAX_LOCALE: usize = 64;

impl Evidence {
    /// Checks raw evidence and minimises the IP address.
    pub fn new(
        ip: Option<&str>,
        user_agent: Option<&str>,
        locale: Option<&str>,
        mode: IpMode,
        secret: &[u8],
    ) -> Result<Self, InvalidValue> {
        let ip = match ip.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => {
                let addr: IpAddr = raw
                    .parse()
                    .map_err(|_| InvalidValue(format!("evidence.ip `{raw}` is not an IPv4 or IPv6 address")))?;
                minimise(addr, mode, secret)
            }
        };
        let text = |value: Option<&str>, name: &str, max: usize| -> Result<Option<String>, InvalidValue> {
            match value.filter(|s| !s.is_empty()) {
                Some(v) if v.len() > max => Err(InvalidValue(format!("evidence.{name} is longer than {max} bytes"))),
                Some(v) if v.chars().any(char::is_control) => {
                    Err(InvalidValue(format!("evidence.{name} may not contain control characters")))
                }
                other => Ok(other.map(str::to_owned)),
            }
        };
        Ok(Self {
            ip,
            user_agent: text(user_agent, "user_agent", MAX_USER_AGENT)?,
            locale: text(locale, "locale", MAX_LOCALE)?,
        })
    }
}

/// An IP address as `mode` keeps it.
pub fn minimise(addr: IpAddr, mode: IpMode, secret: &[u8]) -> Option<String> {
    match mode {
        IpMode::Full => Some(addr.to_string()),
        IpMode::None => None,
        IpMode::Truncated => Some(match addr.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        }),
        IpMode::Hashed => {
            let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else { return None };
            mac.update(addr.to_canonical().to_string().as_bytes());
            Some(format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn truncation_keeps_a_slash_24_or_48() {
        assert_eq!(minimise(ip("203.0.113.77"), IpMode::Truncated, b"k").unwrap(), "203.0.113.0/24");
        assert_eq!(minimise(ip("2001:db8:abcd:12::1"), IpMode::Truncated, b"k").unwrap(), "2001:db8:abcd::/48");
        assert_eq!(minimise(ip("::ffff:198.51.100.9"), IpMode::Truncated, b"k").unwrap(), "198.51.100.0/24");
    }

    #[test]
    fn other_modes() {
        assert_eq!(minimise(ip("203.0.113.77"), IpMode::Full, b"k").unwrap(), "203.0.113.77");
        assert_eq!(minimise(ip("203.0.113.77"), IpMode::None, b"k"), None);
        let a = minimise(ip("203.0.113.77"), IpMode::Hashed, b"k").unwrap();
        assert!(a.starts_with("hmac-sha256:") && !a.contains("203"));
        assert_eq!(a, minimise(ip("203.0.113.77"), IpMode::Hashed, b"k").unwrap(), "stable under one key");
        assert_ne!(a, minimise(ip("203.0.113.77"), IpMode::Hashed, b"other").unwrap(), "keyed");
    }

    #[test]
    fn evidence_is_checked() {
        assert!(Evidence::new(Some("not an ip"), None, None, IpMode::Full, b"k").is_err());
        assert!(Evidence::new(None, Some(&"x".repeat(2000)), None, IpMode::Full, b"k").is_err());
        assert!(Evidence::new(None, Some("a\nb"), None, IpMode::Full, b"k").is_err());
        let e = Evidence::new(Some(" 10.1.2.3 "), Some("UA"), Some("de-DE"), IpMode::Truncated, b"k").unwrap();
        assert_eq!(e.ip.as_deref(), Some("10.1.2.0/24"));
        assert_eq!(e.locale.as_deref(), Some("de-DE"));
    }
}
