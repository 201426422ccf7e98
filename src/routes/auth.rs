//! Bearer API keys on the JSON API. Looked-up keys are remembered until a key changes anywhere
//! (a revocation, a new key: see [`crate::freshness`]), so a status check does not pay a key
//! lookup, and a revocation is in force on every server from the next request on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use chrono::Utc;

use super::{ApiError, AppState};
use crate::db::keys::{KeyRow, key_by_prefix, touch_key};
use crate::domain::Scope;
use crate::freshness::{Freshness, Reload};
use crate::ledger::keys::{Authenticated, matches, prefix_of};

/// How often `last_used_at` is written for a busy key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Most prefixes remembered as no key's (presented junk must not grow the cache without bound,
/// nor push out the keys that exist).
const MAX_UNKNOWN: usize = 10_000;

pub struct KeyCache {
    rows: Mutex<Remembered>,
    /// Requests that miss together on one prefix wait for one lookup; other prefixes do not
    /// wait for it.
    looking: Mutex<HashMap<String, Arc<Reload>>>,
    freshness: Arc<Freshness>,
}

#[derive(Default)]
struct Remembered {
    /// The generation the rows were read at; at another, they are all dropped.
    generation: u64,
    /// Keys that exist (as many as the database holds).
    rows: HashMap<String, KeyRow>,
    /// Prefixes that are no key's.
    unknown: std::collections::HashSet<String>,
    touched: HashMap<String, Instant>,
}

impl KeyCache {
    /// A cache whose keys hold while `freshness` does not move.
    pub fn new(freshness: Arc<Freshness>) -> Self {
        Self { rows: Mutex::default(), looking: Mutex::default(), freshness }
    }

    fn remembered(&self, prefix: &str, generation: u64) -> Option<Option<KeyRow>> {
        let mut cache = self.rows.lock().ok()?;
        if generation > cache.generation {
            // Generations only move forward: a request that read an older one misses.
            cache.generation = generation;
            cache.rows.clear();
            cache.unknown.clear();
        }
        if generation != cache.generation {
            return None;
        }
        match cache.rows.get(prefix) {
            Some(row) => Some(Some(row.clone())),
            None => cache.unknown.contains(prefix).then_some(None),
        }
    }

    fn remember(&self, prefix: &str, generation: u64, row: Option<KeyRow>) {
        if let Ok(mut cache) = self.rows.lock()
            && cache.generation == generation
        {
            match row {
                Some(row) => {
                    cache.rows.insert(prefix.to_owned(), row);
                }
                None => {
                    if cache.unknown.len() >= MAX_UNKNOWN {
                        cache.unknown.clear();
                    }
                    cache.unknown.insert(prefix.to_owned());
                }
            }
        }
    }

    /// The single flight for `prefix`, shared by the requests that look it up at once.
    fn flight<'a>(&'a self, prefix: &'a str) -> Flight<'a> {
        let reload = match self.looking.lock() {
            Ok(mut looking) => looking.entry(prefix.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        Flight { cache: self, prefix, reload }
    }
}

/// A request's part in a prefix's single flight; the last one out removes it, even when its
/// request was dropped halfway.
struct Flight<'a> {
    cache: &'a KeyCache,
    prefix: &'a str,
    reload: Arc<Reload>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Ok(mut looking) = self.cache.looking.lock()
            && Arc::strong_count(&self.reload) == 2
        {
            looking.remove(self.prefix);
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The key on a request, checked for `needed`: 401 without a valid key, 403 when its scope is
/// too small.
pub async fn require(state: &AppState, req: &HttpRequest, needed: Scope) -> Result<Authenticated, ApiError> {
    let header = req.headers().get("authorization").and_then(|h| h.to_str().ok()).unwrap_or("");
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            unauthorized("send an API key as `Authorization: Bearer KEY` (`assent keys create` makes one)")
        })?;
    let invalid = || unauthorized("the API key is not valid (unknown or revoked)");
    let prefix = prefix_of(presented).ok_or_else(invalid)?.to_owned();
    let row = cached_row(state, &prefix).await?;
    let key = row.as_ref().and_then(|r| matches(r, presented)).ok_or_else(invalid)?;
    if !key.scope.allows(needed) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key has `{}` scope; this needs `{}`", key.scope.as_str(), needed.as_str()),
        ));
    }
    touch(state, &prefix, key.id);
    Ok(key)
}

async fn cached_row(state: &AppState, prefix: &str) -> Result<Option<KeyRow>, ApiError> {
    let keys = &state.keys;
    if let Some(row) = keys.remembered(prefix, keys.freshness.current()) {
        return Ok(row);
    }
    let read = |generation| async move {
        let owned = prefix.to_owned();
        let row = state.db.run(move |c| key_by_prefix(c, &owned)).await?;
        keys.remember(prefix, generation, row.clone());
        Ok(row)
    };
    let flight = keys.flight(prefix);
    Ok(flight.reload.run(&keys.freshness, |g| keys.remembered(prefix, g), state.settings.pool_wait, read).await?)
}

/// Records when a key was last used, at most once a minute per key, off the request's path.
fn touch(state: &AppState, prefix: &str, id: i64) {
    let due = match state.keys.rows.lock() {
        Ok(mut cache) => {
            let last = cache.touched.get(prefix).copied();
            let due = last.is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
            if due {
                if cache.touched.len() >= MAX_UNKNOWN {
                    cache.touched.clear();
                }
                cache.touched.insert(prefix.to_owned(), Instant::now());
            }
            due
        }
        Err(_) => false,
    };
    if due {
        let db = state.db.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = db.run(move |c| touch_key(c, id, Utc::now())).await {
                tracing::warn!(error = %e, "could not record a key's last use");
            }
        });
    }
}
