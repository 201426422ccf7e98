//! Ledger rows: events (insert and read only), chain heads, and the per-(subject, agreement)
//! state kept beside them. The rules for what goes in live in `crate::ledger`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{events, subject_documents, subject_heads};
use super::{DbConnection, DbError, to_stored_time};

/// An event as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub subject: String,
    pub seq: i64,
    pub kind: String,
    pub document: String,
    pub version: Option<i32>,
    pub covers: String,
    pub recorded_at: NaiveDateTime,
    pub recorded_by: String,
    pub method: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub prev_hash: String,
    pub chain_hash: String,
}

/// An event to append.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEventRow<'a> {
    pub subject: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub document: &'a str,
    pub version: Option<i32>,
    pub covers: &'a str,
    pub recorded_at: NaiveDateTime,
    pub recorded_by: &'a str,
    pub method: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub prev_hash: &'a str,
    pub chain_hash: &'a str,
}

pub fn insert_event(conn: &mut DbConnection, row: &NewEventRow<'_>) -> Result<i64, DbError> {
    Ok(diesel::insert_into(events::table).values(row).returning(events::id).get_result(conn)?)
}

pub fn event_by_idempotency_key(
    conn: &mut DbConnection,
    subject: &str,
    key: &str,
) -> Result<Option<EventRow>, DbError> {
    Ok(events::table
        .filter(events::subject.eq(subject))
        .filter(events::idempotency_key.eq(key))
        .select(EventRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every event of a subject, oldest first.
pub fn events_of(conn: &mut DbConnection, subject: &str) -> Result<Vec<EventRow>, DbError> {
    Ok(events::table
        .filter(events::subject.eq(subject))
        .order(events::seq.asc())
        .select(EventRow::as_select())
        .load(conn)?)
}

/// Events in (subject, seq) order after the given position, for walking the whole ledger in
/// bounded memory.
pub fn events_after(conn: &mut DbConnection, after: Option<(&str, i64)>, limit: i64) -> Result<Vec<EventRow>, DbError> {
    let mut query = events::table.select(EventRow::as_select()).into_boxed();
    if let Some((subject, seq)) = after {
        query = query.filter(events::subject.gt(subject).or(events::subject.eq(subject).and(events::seq.gt(seq))));
    }
    Ok(query.order((events::subject.asc(), events::seq.asc())).limit(limit).load(conn)?)
}

/// The head of a subject's chain: the last sequence number and chain hash.
pub fn head(conn: &mut DbConnection, subject: &str) -> Result<Option<(i64, String)>, DbError> {
    Ok(subject_heads::table
        .filter(subject_heads::subject.eq(subject))
        .select((subject_heads::seq, subject_heads::chain_hash))
        .first(conn)
        .optional()?)
}

pub fn all_heads(conn: &mut DbConnection) -> Result<Vec<(String, i64, String)>, DbError> {
    Ok(subject_heads::table
        .select((subject_heads::subject, subject_heads::seq, subject_heads::chain_hash))
        .order(subject_heads::subject.asc())
        .load(conn)?)
}

/// Moves a subject's head (creating it for a first event). Written as update-then-insert so
/// the same statement runs on both backends; a race on the insert fails the transaction,
/// which the caller retries.
pub fn set_head(conn: &mut DbConnection, subject: &str, seq: i64, chain_hash: &str) -> Result<(), DbError> {
    let updated = diesel::update(subject_heads::table.filter(subject_heads::subject.eq(subject)))
        .set((subject_heads::seq.eq(seq), subject_heads::chain_hash.eq(chain_hash)))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(subject_heads::table)
            .values((
                subject_heads::subject.eq(subject),
                subject_heads::seq.eq(seq),
                subject_heads::chain_hash.eq(chain_hash),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The latest decision of a subject on one agreement.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subject_documents)]
pub struct StateRow {
    pub subject: String,
    pub document: String,
    pub state: String,
    pub version: Option<i32>,
    pub covers: String,
    pub last_event_id: i64,
    pub updated_at: NaiveDateTime,
}

pub fn states_of(conn: &mut DbConnection, subject: &str) -> Result<Vec<StateRow>, DbError> {
    Ok(subject_documents::table
        .filter(subject_documents::subject.eq(subject))
        .select(StateRow::as_select())
        .load(conn)?)
}

pub fn state_of(conn: &mut DbConnection, subject: &str, document: &str) -> Result<Option<StateRow>, DbError> {
    Ok(subject_documents::table
        .filter(subject_documents::subject.eq(subject))
        .filter(subject_documents::document.eq(document))
        .select(StateRow::as_select())
        .first(conn)
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
pub fn set_state(
    conn: &mut DbConnection,
    subject: &str,
    document: &str,
    state: &str,
    version: Option<i32>,
    covers: &str,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let now = to_stored_time(now);
    let updated = diesel::update(
        subject_documents::table
            .filter(subject_documents::subject.eq(subject))
            .filter(subject_documents::document.eq(document)),
    )
    .set((
        subject_documents::state.eq(state),
        subject_documents::version.eq(version),
        subject_documents::covers.eq(covers),
        subject_documents::last_event_id.eq(event_id),
        subject_documents::updated_at.eq(now),
    ))
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(subject_documents::table)
            .values((
                subject_documents::subject.eq(subject),
                subject_documents::document.eq(document),
                subject_documents::state.eq(state),
                subject_documents::version.eq(version),
                subject_documents::covers.eq(covers),
                subject_documents::last_event_id.eq(event_id),
                subject_documents::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Events recorded through one consent link (their idempotency keys carry its nonce).
pub fn consent_events(conn: &mut DbConnection, subject: &str, nonce: &str) -> Result<Vec<EventRow>, DbError> {
    // The nonce is hex, so it holds no LIKE wildcards.
    let pattern = format!("consent:{}:%", nonce.chars().filter(char::is_ascii_hexdigit).collect::<String>());
    Ok(events::table
        .filter(events::subject.eq(subject))
        .filter(events::idempotency_key.like(pattern))
        .select(EventRow::as_select())
        .load(conn)?)
}

/// What an event listing or export is filtered by.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub document: Option<String>,
    pub version: Option<i32>,
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// Events matching `filter` with `after < id <= horizon`, oldest first.
pub fn list_events(
    conn: &mut DbConnection,
    filter: &EventFilter,
    after: i64,
    horizon: i64,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    let mut q = events::table
        .select(EventRow::as_select())
        .filter(events::id.gt(after))
        .filter(events::id.le(horizon))
        .into_boxed();
    if let Some(d) = &filter.document {
        q = q.filter(events::document.eq(d.clone()));
    }
    if let Some(v) = filter.version {
        q = q.filter(events::version.eq(v));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(events::kind.eq(k.clone()));
    }
    if let Some(s) = &filter.subject {
        q = q.filter(events::subject.eq(s.clone()));
    }
    if let Some(t) = filter.since {
        q = q.filter(events::recorded_at.ge(t));
    }
    if let Some(t) = filter.until {
        q = q.filter(events::recorded_at.lt(t));
    }
    Ok(q.order(events::id.asc()).limit(limit).load(conn)?)
}

/// Advisory lock key that orders event writers against listing horizons on PostgreSQL.
const EVENT_WRITE_LOCK: i64 = 0x4153_5345_4e54; // "ASSENT"

/// Taken (shared) by every transaction that appends events on PostgreSQL: writers never wait
/// for each other on it, only for a reader taking a horizon.
pub fn lock_event_writes(conn: &mut DbConnection) -> Result<(), DbError> {
    if let DbConnection::Postgres(_) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock_shared({EVENT_WRITE_LOCK})")).execute(conn)?;
    }
    Ok(())
}

/// The highest event id below which every event is committed and none can still appear, so
/// that keyset pages up to it are exact. SQLite commits one writer at a time in id order, so
/// it is simply the highest id. On PostgreSQL ids are taken before commit and can commit out of
/// order, so the horizon is read while holding the writers' lock exclusively, for an instant:
/// every transaction that took a lower id has finished by then.
pub fn event_horizon(conn: &mut DbConnection) -> Result<i64, DbError> {
    use diesel::dsl::max;
    let read = |conn: &mut DbConnection| -> Result<i64, DbError> {
        Ok(events::table.select(max(events::id)).first::<Option<i64>>(conn)?.unwrap_or(0))
    };
    match conn {
        DbConnection::Sqlite(_) => read(conn),
        DbConnection::Postgres(_) => conn.transaction(|conn| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({EVENT_WRITE_LOCK})")).execute(conn)?;
            read(conn)
        }),
    }
}

/// How many known subjects stand where on one version of a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    /// A standing acceptance of this version or a later one.
    pub accepted: i64,
    /// Known subjects with no standing acceptance, decline or withdrawal reaching this version.
    pub pending: i64,
    pub declined: i64,
    pub withdrawn: i64,
}

/// Coverage from the per-subject state (never by scanning events). Known subjects are those
/// with at least one event.
pub fn coverage(conn: &mut DbConnection, document: &str, version: i32) -> Result<Coverage, DbError> {
    use diesel::dsl::count_star;
    let known: i64 = subject_heads::table.select(count_star()).first(conn)?;
    let count = |conn: &mut DbConnection, state: &str, at_least: bool| -> Result<i64, DbError> {
        let mut q = subject_documents::table
            .filter(subject_documents::document.eq(document))
            .filter(subject_documents::state.eq(state))
            .select(count_star())
            .into_boxed();
        if at_least {
            q = q.filter(subject_documents::version.ge(version));
        }
        Ok(q.first(conn)?)
    };
    let accepted = count(conn, "accepted", true)?;
    let declined = count(conn, "declined", false)?;
    let withdrawn = count(conn, "withdrawn", false)?;
    Ok(Coverage { accepted, declined, withdrawn, pending: (known - accepted - declined - withdrawn).max(0) })
}

/// Accepted events recorded in `[from, to)`.
pub fn acceptances_between(conn: &mut DbConnection, from: NaiveDateTime, to: NaiveDateTime) -> Result<i64, DbError> {
    use diesel::dsl::count_star;
    Ok(events::table
        .filter(events::kind.eq("accepted"))
        .filter(events::recorded_at.ge(from))
        .filter(events::recorded_at.lt(to))
        .select(count_star())
        .first(conn)?)
}
