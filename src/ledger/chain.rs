//! The hash chain: each event's `chain_hash` is SHA-256 over the previous event's chain hash
//! and a canonical encoding of the event. Personal values (the subject id, the IP address, the
//! user agent) enter it only as salted hashes, so erasing the values and salts leaves every
//! chain verifiable. README.md ("Checking the chain yourself") documents this precisely enough
//! for an auditor to recompute it.

use serde::Serialize;

use crate::domain::Covered;

/// The `prev_hash` of a subject's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Everything the chain commits to. Fields are in alphabetical order and serialised as compact
/// JSON (no spaces, UTF-8, absent values as `null`), which is what `json.dumps(event,
/// sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives in Python.
#[derive(Debug, Clone, Serialize)]
pub struct Canonical<'a> {
    pub covers: &'a [Covered],
    pub document: Option<&'a str>,
    pub evidence: CanonicalEvidence<'a>,
    pub kind: &'a str,
    pub method: &'a str,
    /// RFC 3339, UTC, microseconds, `Z`: `2026-11-23T17:05:09.123456Z`.
    pub recorded_at: &'a str,
    pub recorded_by: &'a str,
    pub seq: i64,
    /// The salted hash of the subject id.
    pub subject: &'a str,
    pub version: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CanonicalEvidence<'a> {
    /// Salted hashes of the IP address and the user agent.
    pub ip: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// `SHA-256(prev_hash + "\n" + canonical JSON)`, lowercase hex.
pub fn chain_hash(prev_hash: &str, event: &Canonical<'_>) -> String {
    // Serialising plain strings, numbers and options cannot fail.
    let json = serde_json::to_string(event).unwrap_or_default();
    let mut input = String::with_capacity(prev_hash.len() + 1 + json.len());
    input.push_str(prev_hash);
    input.push('\n');
    input.push_str(&json);
    crate::domain::sha256_hex(input.as_bytes())
}

/// `SHA-256(salt + "\n" + field + "\n" + value)`, lowercase hex: how a personal value enters
/// the chain. `salt` is 32 random bytes in hex, kept beside the value until it is erased.
pub fn salted(salt: &str, field: &str, value: &str) -> String {
    crate::domain::sha256_hex(format!("{salt}\n{field}\n{value}").as_bytes())
}

/// The time format the chain commits to.
pub fn chain_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Slug, VersionNumber};

    #[test]
    fn the_encoding_is_sorted_compact_json() {
        let covers = [Covered {
            document: Slug::parse("terms").unwrap(),
            sha256: "ab".into(),
            version: VersionNumber::new(2).unwrap(),
        }];
        let event = Canonical {
            covers: &covers,
            document: Some("terms"),
            evidence: CanonicalEvidence { ip: Some("203.0.113.0/24"), locale: None, user_agent: Some("Zoë \"UA\"") },
            kind: "accepted",
            method: "api",
            recorded_at: "2026-11-23T17:05:09.123456Z",
            recorded_by: "host-app",
            seq: 1,
            subject: "user-1",
            version: Some(2),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"covers":[{"document":"terms","sha256":"ab","version":2}],"document":"terms","evidence":{"ip":"203.0.113.0/24","locale":null,"user_agent":"Zoë \"UA\""},"kind":"accepted","method":"api","recorded_at":"2026-11-23T17:05:09.123456Z","recorded_by":"host-app","seq":1,"subject":"user-1","version":2}"#
        );
        let h = chain_hash(GENESIS, &event);
        assert_eq!(h, crate::domain::sha256_hex(format!("{GENESIS}\n{json}").as_bytes()));
        assert_ne!(chain_hash(&h, &event), h, "the same event after another hashes differently");
    }
}
