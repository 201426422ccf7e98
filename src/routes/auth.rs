//! Bearer API keys on the JSON API. Verified keys are remembered for a few seconds, so a status
//! check does not pay a key lookup; a revocation takes effect within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use chrono::Utc;

use super::{ApiError, AppState};
use crate::db::keys::{KeyRow, key_by_prefix, touch_key};
use crate::domain::Scope;
use crate::ledger::keys::{Authenticated, matches, prefix_of};

/// How long a looked-up key row is trusted before it is read again.
pub const KEY_TTL: Duration = Duration::from_secs(5);
/// How often `last_used_at` is written for a busy key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct KeyCache {
    rows: Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    fetched: Instant,
    row: Option<KeyRow>,
    touched: Option<Instant>,
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
    if let Ok(rows) = state.keys.rows.lock()
        && let Some(hit) = rows.get(prefix).filter(|c| c.fetched.elapsed() < KEY_TTL)
    {
        return Ok(hit.row.clone());
    }
    let owned = prefix.to_owned();
    let row = state.db.run(move |c| key_by_prefix(c, &owned)).await?;
    if let Ok(mut rows) = state.keys.rows.lock() {
        if rows.len() > 10_000 {
            rows.clear(); // presented junk prefixes must not grow this without bound
        }
        let touched = rows.get(prefix).and_then(|c| c.touched);
        rows.insert(prefix.to_owned(), CachedKey { fetched: Instant::now(), row: row.clone(), touched });
    }
    Ok(row)
}

/// Records when a key was last used, at most once a minute per key, off the request's path.
fn touch(state: &AppState, prefix: &str, id: i64) {
    let due = match state.keys.rows.lock() {
        Ok(mut rows) => match rows.get_mut(prefix) {
            Some(c) if c.touched.is_none_or(|t| t.elapsed() >= TOUCH_EVERY) => {
                c.touched = Some(Instant::now());
                true
            }
            _ => false,
        },
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
