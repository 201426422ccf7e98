//! Admin sessions and sign-in throttling (contract §11).
//!
//! A session is a row on the server: the cookie holds a random token, the database its
//! SHA-256. Signing out ends the row, so a copied cookie is worth nothing after it, on every
//! server; a session also ends when it has not been used for the idle timeout, after
//! [`SESSION_HOURS`], or when its key is revoked.
//!
//! Sign-ins are throttled on each server, per client address (an IPv6 client by its /64) and
//! per key prefix. An address has [`Throttle::LIMIT`] attempts that fail or are still being
//! checked within [`Throttle::WINDOW`]; past that it waits until the oldest leaves the window,
//! before any key is looked at. A key prefix counts failures only, and past the limit a wrong
//! key for it is answered as throttled; the right key still opens a session, so that someone
//! who knows a key's prefix cannot lock its owner out.

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
    use crate::ledger::keys::Presented;
    let address = client.map(address_of);
    let prefix = crate::ledger::keys::prefix_of(&presented).map(str::to_owned);
    // Counted before the key is looked at, so that attempts running at once count too.
    let attempt = match &address {
        Some(address) => match throttle.addresses.take(address, Instant::now()) {
            Ok(at) => Some((address.as_str(), at)),
            Err(wait) => {
                tracing::warn!(client = ?client, "admin sign-in refused: too many attempts from this address");
                return Ok(SignIn::Throttled(wait));
            }
        },
        None => None,
    };
    let forgive = || {
        if let Some((address, at)) = attempt {
            throttle.addresses.forgive(address, at);
        }
    };
    let found = match db.run(move |c| crate::ledger::keys::authenticate(c, &presented)).await {
        Ok(found) => found,
        Err(e) => {
            forgive(); // not the client's failure
            return Err(e);
        }
    };
    let key = match found {
        Presented::Valid(key) if key.scope != Scope::Write && key.audience.is_none() => key,
        Presented::Wrong => {
            // Counted only for a prefix that is a key's: made-up prefixes fill no table.
            if let Some(Err(wait)) = prefix.as_deref().map(|p| throttle.keys.take(p, Instant::now())) {
                tracing::warn!(client = ?client, "admin sign-in refused: too many failures for this key");
                return Ok(SignIn::Throttled(wait));
            }
            tracing::warn!(client = ?client, "admin sign-in failed");
            return Ok(SignIn::Refused);
        }
        Presented::Valid(_) | Presented::Unknown => {
            tracing::warn!(client = ?client, "admin sign-in failed");
            return Ok(SignIn::Refused);
        }
    };
    forgive();
    let key_id = key.id;
    Ok(SignIn::Opened(db.run(move |c| open(c, key_id, Utc::now())).await?))
}

/// What a client address is counted under: an IPv4 address, or an IPv6 client's /64 (one
/// subscriber's prefix, which it can fill with addresses at will).
pub fn address_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Sign-in attempts, per client address, and failures per key prefix.
#[derive(Default)]
pub struct Throttle {
    addresses: Attempts,
    keys: Attempts,
}

impl Throttle {
    /// Attempts allowed within [`Self::WINDOW`] from one address, failures for one key.
    pub const LIMIT: usize = 10;
    pub const WINDOW: Duration = Duration::from_secs(10 * 60);
}

/// Recent attempts by what they are counted under (an address, a key prefix).
#[derive(Default)]
pub struct Attempts {
    by: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Attempts {
    /// Most tracked: when full, the half attempted least recently is forgotten, so a flood of
    /// new addresses costs its own entries and never refuses anyone new.
    const MAX_TRACKED: usize = 50_000;

    /// Counts an attempt under `who` at `now`, unless it has had [`Throttle::LIMIT`] within
    /// the window: then how long until the oldest leaves it.
    pub fn take(&self, who: &str, now: Instant) -> Result<Instant, Duration> {
        let Ok(mut by) = self.by.lock() else { return Ok(now) };
        if by.len() >= Self::MAX_TRACKED && !by.contains_key(who) {
            by.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < Throttle::WINDOW));
            if by.len() >= Self::MAX_TRACKED {
                // Forget the half attempted least recently, at once: a flood pays for sorting
                // once per half a table of newcomers, not once per attempt.
                // Those held back at the limit stay: they add no attempts while they wait, so
                // they would otherwise be the first forgotten, by a flood made for that.
                let mut last: Vec<Instant> = by.values().filter_map(|times| times.back().copied()).collect();
                let middle = last.len() / 2;
                let (_, cut, _) = last.select_nth_unstable(middle);
                let cut = *cut;
                by.retain(|_, times| times.len() >= Throttle::LIMIT || times.back().is_some_and(|t| *t > cut));
                if by.len() >= Self::MAX_TRACKED {
                    by.retain(|_, times| times.back().is_some_and(|t| *t > cut));
                }
            }
        }
        let times = by.entry(who.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= Throttle::WINDOW) {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= Throttle::LIMIT => {
                Err(Throttle::WINDOW.saturating_sub(now.duration_since(*oldest)))
            }
            _ => {
                times.push_back(now);
                Ok(now)
            }
        }
    }

    /// Takes back the attempt counted at `at`: it succeeded.
    pub fn forgive(&self, who: &str, at: Instant) {
        let Ok(mut by) = self.by.lock() else { return };
        if let Some(times) = by.get_mut(who) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                by.remove(who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_waits_until_the_first_leaves_the_window() {
        let t = Attempts::default();
        let who = address_of("198.51.100.7".parse().unwrap());
        let start = Instant::now();
        for i in 0..Throttle::LIMIT {
            assert!(t.take(&who, start + Duration::from_secs(i as u64)).is_ok(), "attempt {i}");
        }
        let now = start + Duration::from_secs(60);
        assert_eq!(t.take(&who, now), Err(Throttle::WINDOW - Duration::from_secs(60)));
        assert!(t.take(&address_of("203.0.113.1".parse().unwrap()), now).is_ok(), "another address");
        let later = start + Throttle::WINDOW;
        assert_eq!(t.take(&who, later), Ok(later), "the first attempt left the window");
        // An attempt that succeeded is taken back.
        t.forgive(&who, later);
        assert!(t.take(&who, later).is_ok());
    }

    #[test]
    fn a_full_table_forgets_its_stalest_entry_and_refuses_no_newcomer() {
        let t = Attempts::default();
        let start = Instant::now();
        let held = "192.0.2.1";
        for _ in 0..Throttle::LIMIT {
            assert!(t.take(held, start).is_ok());
        }
        for n in 0..Attempts::MAX_TRACKED {
            assert!(t.take(&format!("flood {n}"), start + Duration::from_secs(1)).is_ok(), "newcomer {n}");
        }
        let count = t.by.lock().unwrap().len();
        assert!(count <= Attempts::MAX_TRACKED, "bounded: {count}");
        assert!(t.take(held, start + Duration::from_secs(3)).is_err(), "the address held back is held back still");
        assert!(t.take("someone new", start + Duration::from_secs(2)).is_ok(), "never refused for being new");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let a = address_of("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, address_of("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, address_of("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(address_of("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}
