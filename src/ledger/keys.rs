//! API keys: `assent_<prefix>_<secret>`. The prefix finds the stored row; only a SHA-256 of the
//! whole key is stored, and presented keys are compared with it in constant time.

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::db::keys::{KeyRow, insert_key, key_by_name, key_by_prefix};
use crate::db::{DbConnection, DbError};
use crate::domain::{Audience, InvalidValue, Scope, sha256_hex};

/// Fresh random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], DbError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| DbError::Task(format!("no randomness from the operating system: {e}")))?;
    Ok(buf)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("a key named `{0}` exists already")]
    Exists(String),
    #[error("no live key is named `{0}` (`assent keys list` shows them)")]
    NoLiveKey(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Key names: 1–64 characters of letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), InvalidValue> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidValue(format!("`{name}` is not a key name: use 1 to 64 letters, digits, `-`, `_` or `.`")))
    }
}

/// Creates a key and returns it: the only time it is ever shown.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    scope: Scope,
    audience: Option<&Audience>,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    check_name(name)?;
    if key_by_name(conn, name)?.is_some() {
        return Err(KeyError::Exists(name.to_owned()));
    }
    let prefix = hex::encode(random_bytes::<6>()?);
    let key = format!("assent_{prefix}_{}", hex::encode(random_bytes::<24>()?));
    insert_key(conn, name, &prefix, &sha256_hex(key.as_bytes()), scope.as_str(), audience.map(Audience::as_str), now)?;
    Ok(key)
}

/// Revokes the live key named `name`: from its commit on, every server refuses it (and ends
/// the admin sessions opened with it). The caller waits [`crate::freshness::settle`] before
/// telling anyone, if it runs outside a server.
pub fn revoke(conn: &mut DbConnection, name: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, KeyError> {
    check_name(name)?;
    if crate::db::keys::revoke_key(conn, name, now)? { Ok(now) } else { Err(KeyError::NoLiveKey(name.to_owned())) }
}

/// A key that authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    /// The audience the key is bound to: it sees and records only that audience's documents.
    pub audience: Option<Audience>,
}

impl Authenticated {
    /// Refuses a key bound to an audience for what concerns every audience (`what` it would do).
    pub fn unbound(&self, what: &'static str) -> Result<(), crate::domain::rules::AudienceError> {
        match &self.audience {
            Some(a) => Err(crate::domain::rules::AudienceError::Bound { key: a.clone(), what }),
            None => Ok(()),
        }
    }
}

/// The prefix of a presented key, if it has the shape of one that [`create`] makes (12 and 48
/// lower-case hex digits): anything else is refused before any lookup.
pub fn prefix_of(presented: &str) -> Option<&str> {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let rest = presented.strip_prefix("assent_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (hex(prefix, 12) && hex(secret, 48)).then_some(prefix)
}

/// Checks a presented key against a stored row: live, and the same hash (constant time).
pub fn matches(row: &KeyRow, presented: &str) -> Option<Authenticated> {
    let hash = sha256_hex(presented.as_bytes());
    let same: bool = hash.as_bytes().ct_eq(row.key_hash.as_bytes()).into();
    if !same || row.revoked_at.is_some() {
        return None;
    }
    let audience = match row.audience.as_deref() {
        Some(a) => Some(Audience::parse(a).ok()?),
        None => None,
    };
    Some(Authenticated { id: row.id, name: row.name.clone(), scope: row.scope.parse().ok()?, audience })
}

/// What a presented key turned out to be.
pub enum Presented {
    /// No key has its prefix (or it has not the shape of a key).
    Unknown,
    /// A key has its prefix, but this is not that key, or that key is revoked.
    Wrong,
    Valid(Authenticated),
}

/// Looks a presented key up in the database.
pub fn authenticate(conn: &mut DbConnection, presented: &str) -> Result<Presented, DbError> {
    let Some(prefix) = prefix_of(presented) else { return Ok(Presented::Unknown) };
    Ok(match key_by_prefix(conn, prefix)? {
        None => Presented::Unknown,
        Some(row) => matches(&row, presented).map_or(Presented::Wrong, Presented::Valid),
    })
}
