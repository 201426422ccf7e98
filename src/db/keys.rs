//! API keys: only a SHA-256 of each key is stored.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{api_keys, server_secrets};
use super::{DbConnection, DbError, to_stored_time};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub audience: Option<String>,
}

pub fn insert_key(
    conn: &mut DbConnection,
    name: &str,
    prefix: &str,
    key_hash: &str,
    scope: &str,
    audience: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::name.eq(name),
            api_keys::prefix.eq(prefix),
            api_keys::key_hash.eq(key_hash),
            api_keys::scope.eq(scope),
            api_keys::audience.eq(audience),
            api_keys::created_at.eq(to_stored_time(now)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn key_by_name(conn: &mut DbConnection, name: &str) -> Result<Option<KeyRow>, DbError> {
    Ok(api_keys::table.filter(api_keys::name.eq(name)).select(KeyRow::as_select()).get_result(conn).optional()?)
}

pub fn key_by_prefix(conn: &mut DbConnection, prefix: &str) -> Result<Option<KeyRow>, DbError> {
    Ok(api_keys::table.filter(api_keys::prefix.eq(prefix)).select(KeyRow::as_select()).get_result(conn).optional()?)
}

pub fn key_by_id(conn: &mut DbConnection, id: i64) -> Result<Option<KeyRow>, DbError> {
    Ok(api_keys::table.filter(api_keys::id.eq(id)).select(KeyRow::as_select()).get_result(conn).optional()?)
}

pub fn all_keys(conn: &mut DbConnection) -> Result<Vec<KeyRow>, DbError> {
    Ok(api_keys::table.order(api_keys::created_at.asc()).select(KeyRow::as_select()).load(conn)?)
}

/// Revokes a key by name; `false` when there is no such key that is still live.
pub fn revoke_key(conn: &mut DbConnection, name: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
    let n = diesel::update(api_keys::table.filter(api_keys::name.eq(name)).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(to_stored_time(now)))
        .execute(conn)?;
    Ok(n > 0)
}

pub fn touch_key(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
        .set(api_keys::last_used_at.eq(to_stored_time(now)))
        .execute(conn)?;
    Ok(())
}

/// A named server secret, created by `make` the first time it is asked for.
/// A kept secret, if there is one; never creates it.
pub fn stored_secret(conn: &mut DbConnection, name: &str) -> Result<Option<String>, DbError> {
    Ok(server_secrets::table
        .filter(server_secrets::name.eq(name))
        .select(server_secrets::value)
        .get_result(conn)
        .optional()?)
}

pub fn secret(
    conn: &mut DbConnection,
    name: &str,
    make: impl FnOnce() -> String,
    now: DateTime<Utc>,
) -> Result<String, DbError> {
    let find = |conn: &mut DbConnection| stored_secret(conn, name);
    if let Some(value) = find(conn)? {
        return Ok(value);
    }
    let inserted = diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(make()),
            server_secrets::created_at.eq(to_stored_time(now)),
        ))
        .execute(conn);
    // Another server may have created it first; either way the stored one is the one.
    if let Err(e) = inserted {
        tracing::debug!(error = %e, "secret created concurrently");
    }
    find(conn)?.ok_or_else(|| DbError::Corrupt(format!("server secret `{name}` could not be stored")))
}
