//! Typed values and pure rules. Nothing here touches the database, HTTP or the file system:
//! raw strings become [`Slug`], [`VersionNumber`] and [`Locale`] at the edge, and everything
//! behind the edge trusts the type.

mod catalog;
pub mod rules;

pub use catalog::{Catalog, DocumentInfo, VersionInfo};
pub use rules::Covered;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Why a raw value was refused. The message is written for the person who typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// A document's slug: `[a-z0-9][a-z0-9-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Slug(String);

impl TryFrom<String> for Slug {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Slug> for String {
    fn from(slug: Slug) -> Self {
        slug.0
    }
}

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && raw.len() <= 64 {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "`{raw}` is not a valid slug: use 1 to 64 characters of a-z, 0-9 and `-`, starting with a letter or digit"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An audience: the people a document applies to, such as `developers` or `sdk-users` (contract
/// §6). Same spelling rules as a slug.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Audience(String);

impl TryFrom<String> for Audience {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Audience> for String {
    fn from(audience: Audience) -> Self {
        audience.0
    }
}

impl Audience {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Slug::parse(raw).map(|s| Self(s.0)).map_err(|_| {
            InvalidValue(format!(
                "`{raw}` is not a valid audience name: use 1 to 64 characters of a-z, 0-9 and `-`, starting with a letter or digit"
            ))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a `reaccept_after` duration such as `365d`, `52w`, `8760h` or `90m 30s`: at least one
/// second, at most 100 years.
pub fn parse_reaccept_after(raw: &str) -> Result<chrono::TimeDelta, InvalidValue> {
    let bad = || {
        InvalidValue(format!(
            "`{raw}` is not a duration: use a number and a unit, such as `365d`, `52w`, `8760h` or `3600s`"
        ))
    };
    let parsed = humantime::parse_duration(raw.trim()).map_err(|_| bad())?;
    let seconds = i64::try_from(parsed.as_secs()).map_err(|_| bad())?;
    if parsed.subsec_nanos() != 0 || !(1..=100 * 366 * 86_400).contains(&seconds) {
        return Err(InvalidValue(format!(
            "`{raw}`: a re-acceptance period is whole seconds, from 1 second to 100 years"
        )));
    }
    chrono::TimeDelta::try_seconds(seconds).ok_or_else(bad)
}

/// A version number: 1, 2, 3 …
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub struct VersionNumber(u32);

impl TryFrom<u32> for VersionNumber {
    type Error = InvalidValue;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n).ok_or_else(|| InvalidValue("versions are numbered from 1".into()))
    }
}

impl From<VersionNumber> for u32 {
    fn from(v: VersionNumber) -> Self {
        v.0
    }
}

/// What a version segment of a URL turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionParam {
    /// Digits that name a version that may exist.
    Number(VersionNumber),
    /// Digits, but no version can have that number (0, or too large): a "not found".
    NoSuchVersion,
}

impl VersionNumber {
    pub fn new(n: u32) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Parses a version as given in a URL or a query: digits only.
    pub fn parse_param(raw: &str) -> Result<VersionParam, InvalidValue> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue(format!("`{raw}` is not a version number: use a whole number such as 1 or 2")));
        }
        Ok(raw.parse::<u32>().ok().and_then(Self::new).map_or(VersionParam::NoSuchVersion, VersionParam::Number))
    }
}

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A BCP 47 language tag such as `zh` or `pt-BR`, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let mut parts = raw.split('-');
        let language_ok =
            parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
        let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if language_ok && rest_ok && raw.len() <= 35 {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!("`{raw}` is not a language tag: use a BCP 47 tag such as `zh` or `pt-BR`")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a requested tag (from `Accept-Language` or `?lang=`) asks for this locale:
    /// the same tag ignoring case, or the same language where one side is bare (`pt` finds
    /// `pt-BR`, `zh-CN` finds `zh`).
    pub fn answers(&self, requested: &str) -> bool {
        let mine = self.0.to_ascii_lowercase();
        let wanted = requested.to_ascii_lowercase();
        let primary = |tag: &str| tag.split('-').next().unwrap_or_default().to_owned();
        mine == wanted || primary(&mine) == wanted || primary(&wanted) == mine
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subject: whoever the host application says accepted (1–256 bytes of UTF-8, no control
/// characters). Kept exactly as given; Assent never interprets it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SubjectId(String);

impl SubjectId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 256 {
            return Err(InvalidValue(format!("a subject id is 1 to 256 bytes; this one is {} bytes", raw.len())));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidValue("a subject id may not contain control characters".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const CONSENT_PREFIX: &str = "consent:";

/// A key under which a host application may send the same decision again and get the first
/// receipt back (1–200 bytes, no control characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key a host application chose. Keys starting `consent:` are the consent page's own (a
    /// host that used one could make a link look answered already).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 200 || raw.chars().any(char::is_control) {
            return Err(InvalidValue("idempotency_key must be 1 to 200 bytes without control characters".into()));
        }
        if raw.starts_with(CONSENT_PREFIX) {
            return Err(InvalidValue(format!("idempotency_key may not start with `{CONSENT_PREFIX}`: Assent's own")));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key of one agreement's answer through the consent link with `nonce`.
    pub fn for_consent(nonce: &str, slug: &Slug) -> Self {
        Self(format!("{CONSENT_PREFIX}{nonce}:{slug}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an API key may do: `read` for GET, `write` for POST (and GET), `admin` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` requires.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl FromStr for Scope {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(InvalidValue(format!("`{other}` is not a scope: use `read`, `write` or `admin`"))),
        }
    }
}

/// Whether subjects must accept a document or it is only published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acceptance {
    Required,
    Informational,
}

impl Acceptance {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Informational => "informational",
        }
    }
}

impl FromStr for Acceptance {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "required" => Ok(Self::Required),
            "informational" => Ok(Self::Informational),
            other => {
                Err(InvalidValue(format!("`{other}` is not an acceptance mode: use `required` or `informational`")))
            }
        }
    }
}

/// Parses an `effective` value: a date (`2026-12-01`, midnight UTC) or an RFC 3339 time.
/// Years outside 1 to 9999 are refused: both databases store every time in that range
/// (PostgreSQL's `timestamp` ends at 4713 BC, and SQLite's text times sort right only with
/// four-digit years).
pub fn parse_effective(raw: &str) -> Result<DateTime<Utc>, InvalidValue> {
    use chrono::Datelike;
    let raw = raw.trim();
    let parsed = match NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|date| date.and_hms_opt(0, 0, 0)) {
        Some(midnight) => Ok(midnight.and_utc()),
        None => DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            InvalidValue(format!(
                "`{raw}` is not a date: use `2026-12-01` (midnight UTC) or an RFC 3339 time such as `2026-12-01T09:00:00Z`"
            ))
        }),
    }?;
    if !(1..=9999).contains(&parsed.year()) {
        return Err(InvalidValue(format!("`{raw}` is out of range: use a date from the year 1 to 9999")));
    }
    Ok(parsed)
}

/// Lowercase hex SHA-256 of some bytes: the content hash of a policy file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex32(&Sha256::digest(bytes).into())
}

/// A 32-byte hash in lowercase hex. `hex::encode` goes a character at a time through an
/// iterator; this writes the 64 bytes at once (a verify of a large ledger makes millions).
pub fn hex32(hash: &[u8; 32]) -> String {
    let mut out = vec![0u8; 64];
    // The buffer is exactly twice the input and hex digits are ASCII: neither fallback is taken.
    match hex::encode_to_slice(hash, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| hex::encode(hash)),
        Err(_) => hex::encode(hash),
    }
}

/// Which translation to show: an explicit `?lang=` first, then the reader's `Accept-Language`
/// preferences in order. `None` means the original, which is in `original` (such as `en`).
pub fn negotiate_locale(
    available: &[Locale],
    explicit: Option<&str>,
    accept_language: Option<&str>,
    original: &str,
) -> Option<Locale> {
    let wanted: Vec<String> = match explicit {
        Some(tag) if !tag.is_empty() => vec![tag.to_owned()],
        _ => accept_language.map(accept_language::parse).unwrap_or_default(),
    };
    let original = Locale(original.to_owned());
    for tag in &wanted {
        if original.answers(tag) {
            return None;
        }
        if let Some(found) = available.iter().find(|l| l.as_str().eq_ignore_ascii_case(tag)) {
            return Some(found.clone());
        }
        if let Some(found) = available.iter().find(|l| l.answers(tag)) {
            return Some(found.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_contract() {
        assert!(Slug::parse("privacy-policy").is_ok());
        assert!(Slug::parse("a").is_ok());
        assert!(Slug::parse(&"a".repeat(64)).is_ok());
        assert!(Slug::parse(&"a".repeat(65)).is_err());
        assert!(Slug::parse("-privacy").is_err());
        assert!(Slug::parse("Privacy").is_err());
        assert!(Slug::parse("").is_err());
        assert!(Slug::parse("privacy_policy").is_err());
    }

    #[test]
    fn version_params_distinguish_bad_input_from_missing_versions() {
        assert_eq!(VersionNumber::parse_param("2"), Ok(VersionParam::Number(VersionNumber(2))));
        assert_eq!(VersionNumber::parse_param("0"), Ok(VersionParam::NoSuchVersion));
        assert_eq!(VersionNumber::parse_param("99999999999999999999"), Ok(VersionParam::NoSuchVersion));
        assert!(VersionNumber::parse_param("two").is_err());
        assert!(VersionNumber::parse_param("-1").is_err());
        assert!(VersionNumber::parse_param("").is_err());
    }

    #[test]
    fn locales_are_bcp47_shaped_and_match_bare_languages() {
        let pt_br = Locale::parse("pt-BR").unwrap();
        assert!(pt_br.answers("pt-br"));
        assert!(pt_br.answers("pt"));
        assert!(!pt_br.answers("en"));
        assert!(Locale::parse("zh").unwrap().answers("zh-CN"));
        assert!(!pt_br.answers("pt-PT"));
        assert!(Locale::parse("zh").is_ok());
        assert!(Locale::parse("z").is_err());
        assert!(Locale::parse("zh_CN").is_err());
    }

    #[test]
    fn negotiation_prefers_explicit_then_header_order() {
        let available = vec![Locale::parse("zh").unwrap(), Locale::parse("pt-BR").unwrap()];
        let pick = |explicit, header| negotiate_locale(&available, explicit, header, "en").map(|l| l.to_string());
        assert_eq!(pick(None, Some("zh-CN,zh;q=0.9,en;q=0.8")), Some("zh".into()));
        assert_eq!(pick(None, Some("en-US,en;q=0.9,zh;q=0.8")), None);
        assert_eq!(pick(None, Some("pt")), Some("pt-BR".into()));
        assert_eq!(pick(None, Some("fr")), None);
        assert_eq!(pick(None, Some("zh-TW")), Some("zh".into()));
        assert_eq!(pick(Some("zh"), Some("en")), Some("zh".into()));
        assert_eq!(pick(Some("en"), Some("zh")), None);
        assert_eq!(pick(None, None), None);
    }

    #[test]
    fn subject_ids_are_opaque_text_within_limits() {
        assert!(SubjectId::parse("user-42").is_ok());
        assert!(SubjectId::parse("'; DROP TABLE events; --").is_ok());
        assert!(SubjectId::parse("用户😀").is_ok());
        assert!(SubjectId::parse(&"x".repeat(256)).is_ok());
        assert!(SubjectId::parse(&"x".repeat(257)).is_err());
        assert!(SubjectId::parse("").is_err());
        assert!(SubjectId::parse("a\nb").is_err());
        assert!(SubjectId::parse("a\u{7f}b").is_err());
    }

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
        assert!(!Scope::Write.allows(Scope::Admin));
    }

    #[test]
    fn effective_takes_dates_and_rfc3339() {
        assert_eq!(parse_effective("2026-12-01").unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(parse_effective("2026-12-01T09:30:00+02:00").unwrap().to_rfc3339(), "2026-12-01T07:30:00+00:00");
        assert!(parse_effective("December 1st").is_err());
        // Beyond what the databases store: refused, not a database error.
        assert!(parse_effective("-5000-01-01").unwrap_err().0.contains("out of range"));
        assert!(parse_effective("+10000-01-01").unwrap_err().0.contains("out of range"));
        assert!(parse_effective("0000-12-31T00:00:00Z").unwrap_err().0.contains("out of range"));
        assert!(parse_effective("0001-01-01").is_ok() && parse_effective("9999-12-31T23:59:59Z").is_ok());
    }
}
