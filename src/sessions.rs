//! Admin sessions and sign-in throttling (contract §11).
//!
//! A session is a row on the server: the cookie holds a random token, the database its
//! SHA-256. Signing out ends the row, so a copied cookie is worth nothing after it, on every
//! server; a session also ends when it has not been used for the idle timeout, after
//! [`SESSION_HOURS`], or when its key is revoked.
//!
//! Failed sign-ins are counted per client address and per key prefix, on each server: past
//! [`Throttle::LIMIT`] within [`Throttle::WINDOW`], sign-ins from that address or for that key
//! wait until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::db::sessions as rows;
use crate::db::{Db, DbConnection, DbError, to_stored_time};
use crate::domain::{Scope, sha256_hex};

/// The longest a session lasts, however busy.
pub const SESSION_HOURS: i64 = 8;
/// The default idle timeout (`ASSENT_ADMIN_IDLE_TIMEOUT`).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// How stale `last_seen_at` may be before a request writes it again.
const SEEN_EVERY: chrono::Duration = chrono::Duration::seconds(30);

/// A session just opened: the cookie's value, shown once.
pub struct Opened {
    pub token: String,
}

/// Opens a session for a key that signed in.
pub fn open(conn: &mut DbConnection, key_id: i64, now: DateTime<Utc>) -> Result<Opened, DbError> {
    let token = hex::encode(crate::ledger::keys::random_bytes::<32>()?);
    let expires = now + chrono::Duration::hours(SESSION_HOURS);
    rows::insert(conn, &sha256_hex(token.as_bytes()), key_id, to_stored_time(now), to_stored_time(expires))?;
    // Now and then, forget sessions that can never be used again.
    let _ = rows::prune(conn, to_stored_time(now - chrono::Duration::hours(SESSION_HOURS)));
    Ok(Opened { token })
}

/// The key behind a live session: not ended, not expired, used within `idle`.
pub fn check(conn: &mut DbConnection, token: &str, idle: Duration, now: DateTime<Utc>) -> Result<Option<i64>, DbError> {
    let hash = sha256_hex(token.as_bytes());
    let Some(row) = rows::find(conn, &hash)? else { return Ok(None) };
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
    let now_stored = to_stored_time(now);
    let live = row.ended_at.is_none() && row.expires_at > now_stored && now_stored - row.last_seen_at < idle;
    if !live {
        return Ok(None);
    }
    // Written at most every 30 s (a quarter of a shorter timeout), not on every request.
    if now_stored - row.last_seen_at >= SEEN_EVERY.min(idle / 4) {
        rows::seen(conn, &hash, now_stored)?;
    }
    Ok(Some(row.key_id))
}

/// Ends a session (signing out); ending one that is not there is not an error.
pub fn close(conn: &mut DbConnection, token: &str, now: DateTime<Utc>) -> Result<(), DbError> {
    rows::end(conn, &sha256_hex(token.as_bytes()), to_stored_time(now))
}

/// What became of a sign-in.
pub enum SignIn {
    /// Too many failures from this address or for this key: try again after this long.
    Throttled(Duration),
    /// Not a live `read` or `admin` key that is bound to no audience (the admin view shows
    /// every audience). The answer does not say which.
    Refused,
    Opened(Opened),
}

/// Signs in with a presented key from `client`: throttled, checked, counted when it fails, and
/// a session opened when it does not. The key itself is never logged.
pub async fn sign_in(
    db: &Db,
    throttle: &Throttle,
    client: Option<IpAddr>,
    presented: String,
) -> Result<SignIn, DbError> {
    let counted = Throttle::subjects(client, &presented);
    if let Some(wait) = throttle.wait(&counted, Instant::now()) {
        tracing::warn!(client = ?client, "admin sign-in refused: too many failed attempts");
        return Ok(SignIn::Throttled(wait));
    }
    let key = db.run(move |c| crate::ledger::keys::authenticate(c, &presented)).await?;
    let Some(key) = key.filter(|k| k.scope != Scope::Write && k.audience.is_none()) else {
        throttle.failed(&counted, Instant::now());
        tracing::warn!(client = ?client, "admin sign-in failed");
        return Ok(SignIn::Refused);
    };
    let key_id = key.id;
    Ok(SignIn::Opened(db.run(move |c| open(c, key_id, Utc::now())).await?))
}

/// Failed sign-ins, per client address and per key prefix.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// Failures allowed within [`Self::WINDOW`] for one address or one key.
    pub const LIMIT: usize = 10;
    pub const WINDOW: Duration = Duration::from_secs(10 * 60);
    /// Most addresses and keys tracked (a flood of new addresses must not grow it unbounded).
    const MAX_TRACKED: usize = 100_000;

    /// What a sign-in is counted under: its client address and, when it looks like a key,
    /// the key's prefix (never the key).
    pub fn subjects(client: Option<IpAddr>, presented: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ip) = client {
            out.push(format!("address {ip}"));
        }
        if let Some(prefix) = crate::ledger::keys::prefix_of(presented) {
            out.push(format!("key {prefix}"));
        }
        out
    }

    /// How long until a sign-in counted under `subjects` may be tried; None: now.
    pub fn wait(&self, subjects: &[String], now: Instant) -> Option<Duration> {
        let mut failures = self.failures.lock().ok()?;
        subjects
            .iter()
            .filter_map(|s| {
                let times = failures.get_mut(s)?;
                while times.front().is_some_and(|t| now.duration_since(*t) >= Self::WINDOW) {
                    times.pop_front();
                }
                let oldest = *times.front()?;
                (times.len() >= Self::LIMIT).then(|| Self::WINDOW.saturating_sub(now.duration_since(oldest)))
            })
            .max()
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, subjects: &[String], now: Instant) {
        let Ok(mut failures) = self.failures.lock() else { return };
        if failures.len() >= Self::MAX_TRACKED {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < Self::WINDOW));
        }
        for s in subjects {
            let times = failures.entry(s.clone()).or_default();
            times.push_back(now);
            while times.len() > Self::LIMIT {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_failure_waits_until_the_first_leaves_the_window() {
        let t = Throttle::default();
        let who = Throttle::subjects("198.51.100.7".parse().ok(), "assent_0123456789ab_secret");
        assert_eq!(who, ["address 198.51.100.7", "key 0123456789ab"]);
        let start = Instant::now();
        for i in 0..Throttle::LIMIT {
            assert_eq!(t.wait(&who, start), None, "attempt {i}");
            t.failed(&who, start + Duration::from_secs(i as u64));
        }
        let now = start + Duration::from_secs(60);
        let wait = t.wait(&who, now).unwrap();
        assert_eq!(wait, Throttle::WINDOW - Duration::from_secs(60));
        // Another address for the same key waits too; another key from a new address does not.
        assert!(t.wait(&Throttle::subjects("203.0.113.1".parse().ok(), "assent_0123456789ab_x"), now).is_some());
        assert!(t.wait(&Throttle::subjects("203.0.113.1".parse().ok(), "assent_ffffffffffff_x"), now).is_none());
        assert_eq!(t.wait(&who, start + Throttle::WINDOW), None, "the first failure left the window");
    }
}
