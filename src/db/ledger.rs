//! Ledger rows: events (insert and read only), their erasable personal data, chain heads, and
//! the per-(subject, agreement) state kept beside them. Subjects are found by their keyed hash
//! (`subject_key`), never by the id itself. The rules for what goes in live in `crate::ledger`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::hash::{Hex, MaybeHex, bytes, stored, stored_opt};
use super::prepared::{
    FindCovers, InsertCovers, InsertEvent, InsertPersonal, UpsertAcceptance, UpsertHead, UpsertState,
};
use super::schema::{covers_sets, event_personal, events, log_leaves, subject_documents, subject_heads};
use super::{DbConnection, DbError, to_stored_time};

/// An event as stored: what the chain commits to, with personal fields as salted hashes.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    #[diesel(deserialize_as = Hex)]
    pub subject_key: String,
    pub seq: i64,
    pub kind: String,
    pub document: Option<String>,
    pub version: Option<i32>,
    pub covers_id: i64,
    /// The text of what it covers; none if `covers_id` names no stored one (a tampered
    /// database: `verify` says so, and a receipt cannot be made).
    #[diesel(select_expression = covers_of_event(), select_expression_type = CoversOfEvent)]
    pub covers: Option<String>,
    pub recorded_at: NaiveDateTime,
    pub recorded_by: String,
    pub method: String,
    #[diesel(deserialize_as = Hex)]
    pub subject_hash: String,
    #[diesel(deserialize_as = MaybeHex)]
    pub ip_hash: Option<String>,
    #[diesel(deserialize_as = MaybeHex)]
    pub user_agent_hash: Option<String>,
    pub locale: Option<String>,
    pub idempotency_key: Option<String>,
    #[diesel(deserialize_as = MaybeHex)]
    pub request_hash: Option<String>,
    #[diesel(deserialize_as = Hex)]
    pub prev_hash: String,
    #[diesel(deserialize_as = Hex)]
    pub chain_hash: String,
}

/// The erasable part of an event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_personal)]
pub struct PersonalRow {
    pub event_id: i64,
    pub subject: String,
    #[diesel(deserialize_as = Hex)]
    pub salt: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[diesel(deserialize_as = MaybeHex)]
    pub evidence_salt: Option<String>,
}

/// An event with its personal data (none once erased) and its leaf in the log (none until
/// integrated).
#[derive(Debug, Clone)]
pub struct Event {
    pub row: EventRow,
    pub personal: Option<PersonalRow>,
    pub log_index: Option<i64>,
}

impl Event {
    /// The subject id, unless erased.
    pub fn subject(&self) -> Option<&str> {
        self.personal.as_ref().map(|p| p.subject.as_str())
    }
    pub fn ip(&self) -> Option<&str> {
        self.personal.as_ref().and_then(|p| p.ip.as_deref())
    }
    pub fn user_agent(&self) -> Option<&str> {
        self.personal.as_ref().and_then(|p| p.user_agent.as_deref())
    }
    pub fn erased(&self) -> bool {
        self.personal.is_none()
    }
}

/// The id of a covers text (a JSON list of documents, versions and hashes) in `covers_sets`,
/// added there if new, in the caller's transaction (it goes if that rolls back). Nothing makes
/// a writer wait here: on PostgreSQL the text is not a unique key, since an insert that
/// conflicted with another transaction's would wait for it, outside the order in which writers
/// take their subjects' locks (two batches each adding a new text the other adds too would
/// deadlock). Two writers adding the same text at once store it twice; either id reads the same.
/// SQLite has one writer, which always finds what an earlier one added.
pub fn covers_id(conn: &mut DbConnection, covers: &str) -> Result<i64, DbError> {
    let found: Option<i64> = (FindCovers { covers }).get_result(conn).optional()?;
    match found {
        Some(id) => Ok(id),
        None => Ok((InsertCovers { covers }).get_result(conn)?),
    }
}

/// Attaches personal data and leaf indexes to stored rows (two queries for the lot).
pub fn complete(conn: &mut DbConnection, rows: Vec<EventRow>) -> Result<Vec<Event>, DbError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut personal: HashMap<i64, PersonalRow> = HashMap::new();
    let mut indexes: HashMap<i64, i64> = HashMap::new();
    for chunk in ids.chunks(500) {
        let found: Vec<PersonalRow> = event_personal::table
            .filter(event_personal::event_id.eq_any(chunk))
            .select(PersonalRow::as_select())
            .load(conn)?;
        personal.extend(found.into_iter().map(|p| (p.event_id, p)));
        let found: Vec<(Option<i64>, i64)> = log_leaves::table
            .filter(log_leaves::event_id.eq_any(chunk))
            .select((log_leaves::event_id, log_leaves::idx))
            .load(conn)?;
        indexes.extend(found.into_iter().filter_map(|(e, i)| e.map(|e| (e, i))));
    }
    Ok(rows
        .into_iter()
        .map(|row| Event { personal: personal.remove(&row.id), log_index: indexes.get(&row.id).copied(), row })
        .collect())
}

/// An event to append (hashes in hex).
#[derive(Debug, Clone)]
pub struct NewEventRow<'a> {
    pub subject_key: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub document: Option<&'a str>,
    pub version: Option<i32>,
    /// From [`covers_id`].
    pub covers_id: i64,
    pub recorded_at: NaiveDateTime,
    pub recorded_by: &'a str,
    pub method: &'a str,
    pub subject_hash: &'a str,
    pub ip_hash: Option<&'a str>,
    pub user_agent_hash: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub prev_hash: &'a str,
    pub chain_hash: &'a str,
}

pub fn insert_event(conn: &mut DbConnection, row: &NewEventRow<'_>) -> Result<i64, DbError> {
    let (subject_key, subject_hash) = (stored(row.subject_key)?, stored(row.subject_hash)?);
    let (ip_hash, user_agent_hash) = (stored_opt(row.ip_hash)?, stored_opt(row.user_agent_hash)?);
    let request_hash = stored_opt(row.request_hash)?;
    let (prev_hash, chain_hash) = (stored(row.prev_hash)?, stored(row.chain_hash)?);
    let statement = InsertEvent {
        subject_key: &subject_key,
        seq: row.seq,
        kind: row.kind,
        document: row.document,
        version: row.version,
        covers_id: row.covers_id,
        recorded_at: row.recorded_at,
        recorded_by: row.recorded_by,
        method: row.method,
        subject_hash: &subject_hash,
        ip_hash: ip_hash.as_deref(),
        user_agent_hash: user_agent_hash.as_deref(),
        locale: row.locale,
        idempotency_key: row.idempotency_key,
        request_hash: request_hash.as_deref(),
        prev_hash: &prev_hash,
        chain_hash: &chain_hash,
    };
    Ok(statement.get_result(conn)?)
}

pub fn insert_personal(conn: &mut DbConnection, row: &PersonalRow) -> Result<(), DbError> {
    let (salt, evidence_salt) = (stored(&row.salt)?, stored_opt(row.evidence_salt.as_deref())?);
    InsertPersonal {
        event_id: row.event_id,
        subject: &row.subject,
        salt: &salt,
        ip: row.ip.as_deref(),
        user_agent: row.user_agent.as_deref(),
        evidence_salt: evidence_salt.as_deref(),
    }
    .execute(conn)?;
    Ok(())
}

pub fn event_by_idempotency_key(
    conn: &mut DbConnection,
    subject_key: &str,
    key: &str,
) -> Result<Option<Event>, DbError> {
    let row = events::table
        .filter(events::subject_key.eq(bytes(subject_key)))
        .filter(events::idempotency_key.eq(key))
        .select(EventRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(complete(conn, row.into_iter().collect())?.pop())
}

/// Every event of a subject, oldest first.
pub fn events_of(conn: &mut DbConnection, subject_key: &str) -> Result<Vec<Event>, DbError> {
    let rows = events::table
        .filter(events::subject_key.eq(bytes(subject_key)))
        .order(events::seq.asc())
        .select(EventRow::as_select())
        .load(conn)?;
    complete(conn, rows)
}

/// Events in `(subject_key, seq)` order after `after`, of subjects whose keys sort before
/// `until` (all of them with none).
pub fn events_after(
    conn: &mut DbConnection,
    after: (&str, i64),
    until: Option<&str>,
    limit: i64,
) -> Result<Vec<Event>, DbError> {
    let (key, seq) = (bytes(after.0), after.1);
    // The first condition is implied by the second; it is there so that the planner walks
    // the (subject_key, seq) index from the cursor on (PostgreSQL does not see that in an
    // OR, and would sort the whole table for every page).
    let mut query = events::table
        .select(EventRow::as_select())
        .filter(events::subject_key.ge(key.clone()))
        .filter(events::subject_key.gt(key.clone()).or(events::subject_key.eq(key).and(events::seq.gt(seq))))
        .into_boxed();
    if let Some(until) = until {
        query = query.filter(events::subject_key.lt(bytes(until)));
    }
    let rows = query.order((events::subject_key.asc(), events::seq.asc())).limit(limit).load(conn)?;
    complete(conn, rows)
}

/// The head of a subject's chain: the last sequence number and chain hash.
pub fn head(conn: &mut DbConnection, subject_key: &str) -> Result<Option<(i64, String)>, DbError> {
    let head: Option<(i64, Hex)> = subject_heads::table
        .filter(subject_heads::subject_key.eq(bytes(subject_key)))
        .select((subject_heads::seq, subject_heads::chain_hash))
        .get_result(conn)
        .optional()?;
    Ok(head.map(|(seq, hash)| (seq, hash.0)))
}

/// The chain heads of the subjects whose keys lie in `from..=to`, by key.
pub fn heads_between(conn: &mut DbConnection, from: &str, to: &str) -> Result<HashMap<String, (i64, String)>, DbError> {
    let rows: Vec<(Hex, i64, Hex)> = subject_heads::table
        .filter(subject_heads::subject_key.between(bytes(from), bytes(to)))
        .select((subject_heads::subject_key, subject_heads::seq, subject_heads::chain_hash))
        .load(conn)?;
    Ok(rows.into_iter().map(|(key, seq, hash)| (key.0, (seq, hash.0))).collect())
}

/// How many chain heads and status rows the subjects whose keys lie in `from..until` have.
pub fn count_heads_and_states(conn: &mut DbConnection, from: &str, until: Option<&str>) -> Result<(i64, i64), DbError> {
    let mut heads = subject_heads::table
        .select(diesel::dsl::count_star())
        .filter(subject_heads::subject_key.ge(bytes(from)))
        .into_boxed();
    let mut states = subject_documents::table
        .select(diesel::dsl::count_star())
        .filter(subject_documents::subject_key.ge(bytes(from)))
        .into_boxed();
    if let Some(until) = until {
        heads = heads.filter(subject_heads::subject_key.lt(bytes(until)));
        states = states.filter(subject_documents::subject_key.lt(bytes(until)));
    }
    Ok((heads.get_result(conn)?, states.get_result(conn)?))
}

/// Moves a subject's head (creating it for a first event). Appends for one subject take turns
/// ([`lock_subject_for_writing`] on PostgreSQL, one writer on SQLite); were two ever to race,
/// the second one's event would fail on the unique `(subject_key, seq)`, and be retried.
pub fn set_head(conn: &mut DbConnection, subject: &str, seq: i64, chain_hash: &str) -> Result<(), DbError> {
    UpsertHead { subject_key: &stored(subject)?, seq, chain_hash: &stored(chain_hash)? }.execute(conn)?;
    Ok(())
}

/// The latest decision of a subject on one agreement.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subject_documents)]
pub struct StateRow {
    #[diesel(deserialize_as = Hex)]
    pub subject_key: String,
    pub document: String,
    pub state: String,
    pub version: Option<i32>,
    pub covers_id: i64,
    /// None if its `covers_id` names no stored text (a tampered database).
    #[diesel(select_expression = covers_of_state(), select_expression_type = CoversOfState)]
    pub covers: Option<String>,
    pub last_event_id: i64,
    pub updated_at: NaiveDateTime,
    /// The newest version of the agreement the subject accepted since its last erasure; none if
    /// it never accepted it, and on the rows of parts (which are accepted with their agreement).
    pub highest_accepted: Option<i32>,
    /// The subject's latest acceptance of the agreement (what it covered, and when), kept
    /// through a later decline or withdrawal; none on the rows of parts.
    pub accepted_covers_id: Option<i64>,
    #[diesel(select_expression = accepted_covers_of_state(), select_expression_type = AcceptedCoversOfState)]
    pub accepted_covers: Option<String>,
    pub accepted_at: Option<NaiveDateTime>,
}

// An event's or a status row's covers texts, each looked up by its id in a subquery: a join
// would need an alias for a status row's second one, and PostgreSQL's planner hashes the whole
// (small) covers table for a join until it has statistics, where a lookup per row is cheaper.
// Unlike an SQL literal, these keep the statement's text fixed, so that it is prepared once per
// connection.
type CoversOfEvent = diesel::dsl::SingleValue<
    diesel::dsl::Select<
        diesel::dsl::Filter<covers_sets::table, diesel::dsl::Eq<covers_sets::id, events::covers_id>>,
        covers_sets::covers,
    >,
>;
type CoversOfState = diesel::dsl::SingleValue<
    diesel::dsl::Select<
        diesel::dsl::Filter<covers_sets::table, diesel::dsl::Eq<covers_sets::id, subject_documents::covers_id>>,
        covers_sets::covers,
    >,
>;
type AcceptedCoversOfState = diesel::dsl::SingleValue<
    diesel::dsl::Select<
        diesel::dsl::Filter<
            covers_sets::table,
            diesel::dsl::Eq<diesel::dsl::Nullable<covers_sets::id>, subject_documents::accepted_covers_id>,
        >,
        covers_sets::covers,
    >,
>;

fn covers_of_event() -> CoversOfEvent {
    covers_sets::table.filter(covers_sets::id.eq(events::covers_id)).select(covers_sets::covers).single_value()
}

fn covers_of_state() -> CoversOfState {
    covers_sets::table
        .filter(covers_sets::id.eq(subject_documents::covers_id))
        .select(covers_sets::covers)
        .single_value()
}

fn accepted_covers_of_state() -> AcceptedCoversOfState {
    covers_sets::table
        .filter(covers_sets::id.nullable().eq(subject_documents::accepted_covers_id))
        .select(covers_sets::covers)
        .single_value()
}

/// A subject's latest decision on one agreement, as the status rules read it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subject_documents)]
pub struct DecisionRow {
    pub document: String,
    pub state: String,
    pub version: Option<i32>,
    /// The latest acceptance: what it covered, and when (none if never accepted; the text is
    /// none too if its id names no stored one).
    pub accepted_covers_id: Option<i64>,
    #[diesel(select_expression = accepted_covers_of_state(), select_expression_type = AcceptedCoversOfState)]
    pub accepted_covers: Option<String>,
    pub accepted_at: Option<NaiveDateTime>,
}

/// The subject's rows of agreements, the ones status reads (the rows of parts, which are
/// accepted with their agreement, never carry an acceptance of their own or a decline).
pub fn decisions_of(conn: &mut DbConnection, subject: &str) -> Result<Vec<DecisionRow>, DbError> {
    Ok(subject_documents::table
        .filter(subject_documents::subject_key.eq(bytes(subject)))
        .filter(subject_documents::accepted_covers_id.is_not_null().or(subject_documents::state.eq("declined")))
        .select(DecisionRow::as_select())
        .load(conn)?)
}

pub fn states_of(conn: &mut DbConnection, subject: &str) -> Result<Vec<StateRow>, DbError> {
    Ok(subject_documents::table
        .filter(subject_documents::subject_key.eq(bytes(subject)))
        .select(StateRow::as_select())
        .load(conn)?)
}

/// The status rows of the subjects whose keys lie in `from..=to`, by key.
pub fn states_between(
    conn: &mut DbConnection,
    from: &str,
    to: &str,
) -> Result<HashMap<String, Vec<StateRow>>, DbError> {
    let rows: Vec<StateRow> = subject_documents::table
        .filter(subject_documents::subject_key.between(bytes(from), bytes(to)))
        .select(StateRow::as_select())
        .load(conn)?;
    let mut by_subject: HashMap<String, Vec<StateRow>> = HashMap::new();
    for row in rows {
        by_subject.entry(row.subject_key.clone()).or_default().push(row);
    }
    Ok(by_subject)
}

pub fn state_of(conn: &mut DbConnection, subject: &str, document: &str) -> Result<Option<StateRow>, DbError> {
    Ok(subject_documents::table
        .filter(subject_documents::subject_key.eq(bytes(subject)))
        .filter(subject_documents::document.eq(document))
        .select(StateRow::as_select())
        .get_result(conn)
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
pub fn set_state(
    conn: &mut DbConnection,
    subject: &str,
    document: &str,
    state: &str,
    version: Option<i32>,
    covers_id: i64,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    UpsertState {
        subject_key: &stored(subject)?,
        document,
        state,
        version,
        covers_id,
        last_event_id: event_id,
        updated_at: to_stored_time(now),
    }
    .execute(conn)?;
    Ok(())
}

/// Records that the subject accepted `version` of the agreement `document`, unless it accepted a
/// newer version before (acceptance never moves backwards): then nothing is written and the
/// answer is `false`.
pub fn set_accepted(
    conn: &mut DbConnection,
    subject: &str,
    document: &str,
    version: i32,
    covers_id: i64,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let written = UpsertAcceptance {
        subject_key: &stored(subject)?,
        document,
        version,
        covers_id,
        last_event_id: event_id,
        updated_at: to_stored_time(now),
        highest_accepted: version,
        accepted_covers_id: covers_id,
        accepted_at: to_stored_time(now),
    }
    .execute(conn)?;
    Ok(written == 1)
}

/// Events recorded through one consent link (their idempotency keys carry its nonce).
pub fn consent_events(conn: &mut DbConnection, subject_key: &str, nonce: &str) -> Result<Vec<Event>, DbError> {
    // The nonce is hex, so it holds no LIKE wildcards.
    let pattern = format!("consent:{}:%", nonce.chars().filter(char::is_ascii_hexdigit).collect::<String>());
    let rows = events::table
        .filter(events::subject_key.eq(bytes(subject_key)))
        .filter(events::idempotency_key.like(pattern))
        .select(EventRow::as_select())
        .load(conn)?;
    complete(conn, rows)
}

/// What an event listing or export is filtered by.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub document: Option<String>,
    /// Only events about one of these documents (a key bound to an audience).
    pub documents: Option<Vec<String>>,
    pub version: Option<i32>,
    pub kind: Option<String>,
    /// The subject's key (see `ledger::SubjectKeys`).
    pub subject_key: Option<String>,
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
) -> Result<Vec<Event>, DbError> {
    let mut q = events::table
        .select(EventRow::as_select())
        .filter(events::id.gt(after))
        .filter(events::id.le(horizon))
        .into_boxed();
    if let Some(d) = &filter.document {
        q = q.filter(events::document.eq(d.clone()));
    }
    if let Some(ds) = &filter.documents {
        q = q.filter(events::document.eq_any(ds.clone()));
    }
    if let Some(v) = filter.version {
        q = q.filter(events::version.eq(v));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(events::kind.eq(k.clone()));
    }
    if let Some(s) = &filter.subject_key {
        q = q.filter(events::subject_key.eq(bytes(s)));
    }
    if let Some(t) = filter.since {
        q = q.filter(events::recorded_at.ge(t));
    }
    if let Some(t) = filter.until {
        q = q.filter(events::recorded_at.lt(t));
    }
    let rows = q.order(events::id.asc()).limit(limit).load(conn)?;
    complete(conn, rows)
}

/// Advisory lock key that orders event writers against listing horizons on PostgreSQL.
const EVENT_WRITE_LOCK: i64 = 0x4153_5345_4e54; // "ASSENT"

/// The advisory lock a subject's writers take on PostgreSQL (FNV-1a of its key). A transaction
/// that locks several subjects takes them in the order of this value, so that two such
/// transactions cannot each hold a lock the other waits for.
pub fn subject_lock(subject_key: &str) -> u64 {
    subject_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Taken by every transaction that appends events for a subject on PostgreSQL: the writers'
/// lock, shared (writers never wait for each other on it, only for a reader taking a horizon),
/// then the subject's own lock. Decisions for one subject take turns, so that each reads the
/// state the one before it left: without it, a withdrawal that ran beside a decline could read
/// the acceptance the decline had just replaced, and be recorded after it. (The chain itself was
/// safe either way: `(subject_key, seq)` is unique.) SQLite has one writer at a time anyway.
/// This relies on READ COMMITTED, PostgreSQL's default: each statement after the lock sees
/// what committed before it was granted.
pub fn lock_subject_for_writing(conn: &mut DbConnection, subject_key: &str) -> Result<(), DbError> {
    use diesel::sql_types::{BigInt, Integer};
    if let DbConnection::Postgres(_) = conn {
        // Two 32-bit keys: a lock space apart from the writers' single 64-bit key. Subjects
        // whose keys share a hash merely take turns.
        let [a, b, c, d, e, f, g, h] = subject_lock(subject_key).to_be_bytes();
        diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2, $3)")
            .bind::<BigInt, _>(EVENT_WRITE_LOCK)
            .bind::<Integer, _>(i32::from_be_bytes([a, b, c, d]))
            .bind::<Integer, _>(i32::from_be_bytes([e, f, g, h]))
            .execute(conn)?;
    }
    Ok(())
}

/// Takes the writers' lock exclusively, until the transaction ends (PostgreSQL): waits for the
/// writers in flight, and holds new ones off.
fn hold_off_event_writes(conn: &mut DbConnection) -> Result<(), DbError> {
    if let DbConnection::Postgres(_) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({EVENT_WRITE_LOCK})")).execute(conn)?;
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
        Ok(events::table.select(max(events::id)).get_result::<Option<i64>>(conn)?.unwrap_or(0))
    };
    match conn {
        DbConnection::Sqlite(_) => read(conn),
        DbConnection::Postgres(_) => conn.transaction(|conn| {
            hold_off_event_writes(conn)?;
            read(conn)
        }),
    }
}

/// Accepted events recorded in `[from, to)`.
pub fn acceptances_between(conn: &mut DbConnection, from: NaiveDateTime, to: NaiveDateTime) -> Result<i64, DbError> {
    use diesel::dsl::count_star;
    Ok(events::table
        .filter(events::kind.eq("accepted"))
        .filter(events::recorded_at.ge(from))
        .filter(events::recorded_at.lt(to))
        .select(count_star())
        .get_result(conn)?)
}

/// Erases a subject's personal data: the plain values and salts of all its events, and its
/// status rows (its status is `never` from now on). Returns how many events lost their data.
pub fn erase_subject(conn: &mut DbConnection, subject_key: &str) -> Result<usize, DbError> {
    let ids = events::table.filter(events::subject_key.eq(bytes(subject_key))).select(events::id);
    let n = diesel::delete(event_personal::table.filter(event_personal::event_id.eq_any(ids))).execute(conn)?;
    // The idempotency key and the request's hash are not in the chain; a host may have put the
    // subject's id in the key, and the hash was taken over the full request.
    diesel::update(events::table.filter(events::subject_key.eq(bytes(subject_key))))
        .set((events::idempotency_key.eq(None::<String>), events::request_hash.eq(None::<Vec<u8>>)))
        .execute(conn)?;
    diesel::delete(subject_documents::table.filter(subject_documents::subject_key.eq(bytes(subject_key))))
        .execute(conn)?;
    Ok(n)
}

/// How many events are stored.
pub fn count_events(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(events::table.select(diesel::dsl::count_star()).get_result(conn)?)
}

/// Whether any event of the subject still holds personal data.
pub fn has_personal(conn: &mut DbConnection, subject_key: &str) -> Result<bool, DbError> {
    use diesel::dsl::{exists, select};
    let ids = events::table.filter(events::subject_key.eq(bytes(subject_key))).select(events::id);
    Ok(select(exists(event_personal::table.filter(event_personal::event_id.eq_any(ids)))).get_result(conn)?)
}

/// Clears the IP address and user agent of events recorded before `before` (retention).
/// Returns how many events were cleared.
pub fn clear_evidence_before(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, DbError> {
    // Retention touches many subjects' rows, in an order of the planner's choosing; an erasure
    // or a decision touching the same rows in another order could deadlock with it. So it runs
    // alone: after the writers in flight, holding new ones off (only rows newly past the
    // retention age are cleared, so after its first run it is brief).
    hold_off_event_writes(conn)?;
    let old = events::table.filter(events::recorded_at.lt(before)).select(events::id);
    let cleared = diesel::update(
        event_personal::table
            .filter(event_personal::event_id.eq_any(old))
            .filter(event_personal::evidence_salt.is_not_null()),
    )
    .set((
        event_personal::ip.eq(None::<String>),
        event_personal::user_agent.eq(None::<String>),
        event_personal::evidence_salt.eq(None::<Vec<u8>>),
    ))
    .execute(conn)?;
    // The request's hash covered the address and user agent too. Without it the idempotency
    // key cannot be checked, so it goes as well: a request retried this late counts as new.
    diesel::update(events::table.filter(events::recorded_at.lt(before)).filter(events::request_hash.is_not_null()))
        .set((events::idempotency_key.eq(None::<String>), events::request_hash.eq(None::<Vec<u8>>)))
        .execute(conn)?;
    Ok(cleared)
}

/// The newest event of a subject of one kind, if any.
pub fn latest_of_kind(conn: &mut DbConnection, subject_key: &str, kind: &str) -> Result<Option<Event>, DbError> {
    let row = events::table
        .filter(events::subject_key.eq(bytes(subject_key)))
        .filter(events::kind.eq(kind))
        .order(events::seq.desc())
        .select(EventRow::as_select())
        .first(conn)
        .optional()?;
    Ok(complete(conn, row.into_iter().collect())?.pop())
}

/// Erasure requests not yet followed by an erasure, oldest first.
pub fn open_erasure_requests(conn: &mut DbConnection, limit: i64) -> Result<Vec<Event>, DbError> {
    let later = diesel::alias!(events as later);
    let erased_since = later
        .filter(later.field(events::subject_key).eq(events::subject_key))
        .filter(later.field(events::kind).eq("erased"))
        .filter(later.field(events::seq).gt(events::seq));
    let open: Vec<EventRow> = events::table
        .filter(events::kind.eq("erasure_requested"))
        .filter(diesel::dsl::not(diesel::dsl::exists(erased_since)))
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    complete(conn, open)
}

/// The subject's erasure request, if one is open (not yet followed by an erasure).
pub fn open_erasure_request(conn: &mut DbConnection, subject_key: &str) -> Result<Option<Event>, DbError> {
    let Some(request) = latest_of_kind(conn, subject_key, "erasure_requested")? else { return Ok(None) };
    let erased = latest_of_kind(conn, subject_key, "erased")?;
    Ok(erased.is_none_or(|e| e.row.seq < request.row.seq).then_some(request))
}
