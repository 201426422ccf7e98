//! Admin sessions (see `crate::sessions`). Parameters are numbered in the order they first
//! appear: SQLite numbers `$N` that way, whatever N says.

use chrono::NaiveDateTime;
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::{DbConnection, DbError};

#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct SessionRow {
    #[diesel(sql_type = BigInt)]
    pub key_id: i64,
    #[diesel(sql_type = Timestamp)]
    pub last_seen_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub expires_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub ended_at: Option<NaiveDateTime>,
}

pub fn insert(
    conn: &mut DbConnection,
    token_hash: &str,
    key_id: i64,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO admin_sessions (token_hash, key_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $3, $4)",
    )
    .bind::<Text, _>(token_hash)
    .bind::<BigInt, _>(key_id)
    .bind::<Timestamp, _>(now)
    .bind::<Timestamp, _>(expires_at)
    .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, token_hash: &str) -> Result<Option<SessionRow>, DbError> {
    use diesel::OptionalExtension;
    Ok(diesel::sql_query("SELECT key_id, last_seen_at, expires_at, ended_at FROM admin_sessions WHERE token_hash = $1")
        .bind::<Text, _>(token_hash)
        .get_result(conn)
        .optional()?)
}

pub fn seen(conn: &mut DbConnection, token_hash: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::sql_query("UPDATE admin_sessions SET last_seen_at = $1 WHERE token_hash = $2 AND ended_at IS NULL")
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(token_hash)
        .execute(conn)?;
    Ok(())
}

pub fn end(conn: &mut DbConnection, token_hash: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::sql_query("UPDATE admin_sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL")
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(token_hash)
        .execute(conn)?;
    Ok(())
}

/// Drops sessions that ended or expired before `before` (they can never be used again).
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::sql_query("DELETE FROM admin_sessions WHERE expires_at < $1 OR ended_at < $1")
        .bind::<Timestamp, _>(before)
        .execute(conn)?)
}
