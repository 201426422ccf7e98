//! Webhook rows: endpoints, and the outbox of deliveries with their delivery log. What the rules
//! are (which types exist, when to retry, what is sent) lives in `crate::webhooks`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::prepared::EnqueueEvent;
use super::schema::{webhook_deliveries, webhook_endpoints};
use super::{DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: i64,
    pub url: String,
    /// `,accepted,erased,`
    pub events: String,
    pub secret: String,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub removed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_type: String,
    pub event_id: Option<i64>,
    pub version_id: Option<i64>,
    pub subject: Option<String>,
    pub created_at: NaiveDateTime,
    pub state: String,
    pub attempts: i32,
    pub retry_since: NaiveDateTime,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease: Option<String>,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The `LIKE` pattern that finds the endpoints subscribed to `event_type`.
fn subscribed(event_type: &str) -> String {
    format!("%,{event_type},%")
}

/// Writes the deliveries of an event, in the caller's transaction (the event's own).
pub fn enqueue_event(
    conn: &mut DbConnection,
    event_type: &str,
    event_id: i64,
    subject: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    EnqueueEvent {
        event_type,
        event_id,
        subject,
        created_at: now,
        retry_since: now,
        next_attempt_at: now,
        events_like: &subscribed(event_type),
    }
    .execute(conn)?;
    Ok(())
}

/// Writes the `published` deliveries of a version, in the caller's transaction (the sync's).
pub fn enqueue_version(conn: &mut DbConnection, version_id: i64, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO webhook_deliveries (endpoint_id, event_type, version_id, created_at, state, attempts, retry_since, \
         next_attempt_at) SELECT id, 'published', $1, $2, 'pending', 0, $2, $2 FROM webhook_endpoints \
         WHERE removed_at IS NULL AND events LIKE $3",
    )
    .bind::<BigInt, _>(version_id)
    .bind::<Timestamp, _>(now)
    .bind::<Text, _>(subscribed("published"))
    .execute(conn)?;
    Ok(())
}

pub fn insert_endpoint(
    conn: &mut DbConnection,
    url: &str,
    events: &str,
    secret: &str,
    created_by: &str,
    now: NaiveDateTime,
) -> Result<EndpointRow, DbError> {
    Ok(diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::url.eq(url),
            webhook_endpoints::events.eq(events),
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::created_at.eq(now),
            webhook_endpoints::created_by.eq(created_by),
        ))
        .returning(webhook_endpoints::all_columns)
        .get_result(conn)?)
}

/// Endpoints not removed, oldest first.
pub fn endpoints(conn: &mut DbConnection) -> Result<Vec<EndpointRow>, DbError> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::removed_at.is_null())
        .order(webhook_endpoints::id.asc())
        .select(EndpointRow::as_select())
        .load(conn)?)
}

/// An endpoint, removed or not.
pub fn endpoint(conn: &mut DbConnection, id: i64) -> Result<Option<EndpointRow>, DbError> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id))
        .select(EndpointRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Marks an endpoint removed and cancels what it still had to deliver (dropping the subject ids
/// that erasures' deliveries held). Returns whether there was such an endpoint.
pub fn remove_endpoint(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> Result<bool, DbError> {
    conn.transaction(|conn| {
        let removed = diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::removed_at.is_null()),
        )
        .set(webhook_endpoints::removed_at.eq(now))
        .execute(conn)?;
        cancel_open(conn, id)?;
        Ok(removed == 1)
    })
}

/// Cancels an endpoint's pending and failed deliveries.
fn cancel_open(conn: &mut DbConnection, endpoint_id: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .filter(webhook_deliveries::state.eq_any(["pending", "failed"])),
    )
    .set((
        webhook_deliveries::state.eq("cancelled"),
        webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::lease.eq(None::<String>),
        webhook_deliveries::subject.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// How many of an endpoint's deliveries (or every live endpoint's) are pending and how many
/// failed.
pub fn open_counts(conn: &mut DbConnection, endpoint_id: Option<i64>) -> Result<(i64, i64), DbError> {
    let count = |conn: &mut DbConnection, state: &str| -> Result<i64, DbError> {
        let mut q = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(state.to_owned()))
            .select(diesel::dsl::count_star())
            .into_boxed();
        q = match endpoint_id {
            Some(id) => q.filter(webhook_deliveries::endpoint_id.eq(id)),
            // What endpoints removed since still hold is not waiting for anything.
            None => q.filter(webhook_deliveries::endpoint_id.eq_any(
                webhook_endpoints::table.filter(webhook_endpoints::removed_at.is_null()).select(webhook_endpoints::id),
            )),
        };
        Ok(q.get_result(conn)?)
    };
    Ok((count(conn, "pending")?, count(conn, "failed")?))
}

/// Takes up to `limit` of an endpoint's due deliveries for this server: each gets `lease` and is
/// not due again until `lease_until`, so no other server takes it meanwhile (and if this one
/// dies, another takes it after that). On PostgreSQL, rows another server is taking at the same
/// moment are skipped (`SKIP LOCKED`), not waited for; and an event is announced only once the
/// log has taken it in (with its batch, or right after its commit), so that what is sent
/// carries its `log_index`.
pub fn claim(
    conn: &mut DbConnection,
    endpoint_id: i64,
    limit: i64,
    now: NaiveDateTime,
    lease: &str,
    lease_until: NaiveDateTime,
) -> Result<Vec<DeliveryRow>, DbError> {
    const COLUMNS: &str = "id, endpoint_id, event_type, event_id, version_id, subject, created_at, state, attempts, \
                           retry_since, next_attempt_at, lease, last_attempt_at, last_status, last_error, delivered_at";
    let locking = match conn {
        DbConnection::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        // One writer at a time: the statement runs alone. Look first, so that an idle endpoint
        // never takes SQLite's write lock from the recording writer.
        DbConnection::Sqlite(_) => {
            let due: Option<i64> = webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
                .filter(webhook_deliveries::state.eq("pending"))
                .filter(webhook_deliveries::next_attempt_at.le(now))
                .select(webhook_deliveries::id)
                .first(conn)
                .optional()?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            ""
        }
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_at = $1, lease = $2 WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE endpoint_id = $3 AND state = 'pending' AND next_attempt_at <= $4 \
         AND (event_id IS NULL OR EXISTS (SELECT 1 FROM log_leaves WHERE log_leaves.event_id = webhook_deliveries.event_id)) \
         ORDER BY next_attempt_at LIMIT $5{locking}) \
         RETURNING {COLUMNS}"
    );
    conn.write_transaction(|conn| {
        Ok(diesel::sql_query(sql)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Text, _>(lease)
            .bind::<BigInt, _>(endpoint_id)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<DeliveryRow>(conn)?)
    })
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub id: i64,
    pub lease: String,
    pub at: NaiveDateTime,
    pub status: Option<i32>,
    /// `None` when delivered.
    pub error: Option<String>,
    /// Delivered, due again at this time, or given up (`failed`).
    pub next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(NaiveDateTime),
    Failed,
}

/// Writes the outcome of attempts, in one transaction. Each is written only if the delivery is
/// still this server's (`lease`): if its lease ran out and another server took it, that server
/// writes the outcome (and a removed endpoint's deliveries are cancelled, lease and all). Returns,
/// per result, whether it was written.
pub fn record_attempts(conn: &mut DbConnection, results: &[AttemptResult]) -> Result<Vec<bool>, DbError> {
    use webhook_deliveries as d;
    conn.write_transaction(|conn| {
        let mut written = Vec::with_capacity(results.len());
        for r in results {
            let mine = d::table.filter(d::id.eq(r.id)).filter(d::lease.eq(r.lease.clone()));
            let common = (
                d::attempts.eq(d::attempts + 1),
                d::last_attempt_at.eq(r.at),
                d::last_status.eq(r.status),
                d::last_error.eq(r.error.clone()),
                d::lease.eq(None::<String>),
            );
            let rows = match r.next {
                Next::Delivered => diesel::update(mine)
                    .set((
                        common,
                        d::state.eq("delivered"),
                        d::delivered_at.eq(Some(r.at)),
                        d::next_attempt_at.eq(None::<NaiveDateTime>),
                        // An erasure's delivery held the subject id only to deliver it.
                        d::subject.eq(None::<String>),
                    ))
                    .execute(conn)?,
                Next::RetryAt(at) => {
                    diesel::update(mine).set((common, d::next_attempt_at.eq(Some(at)))).execute(conn)?
                }
                Next::Failed => diesel::update(mine)
                    .set((common, d::state.eq("failed"), d::next_attempt_at.eq(None::<NaiveDateTime>)))
                    .execute(conn)?,
            };
            written.push(rows > 0);
        }
        Ok(written)
    })
}

/// An endpoint's deliveries, newest first, below `before` (a delivery id), optionally of one
/// state.
pub fn deliveries(
    conn: &mut DbConnection,
    endpoint_id: i64,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(s) = state {
        q = q.filter(webhook_deliveries::state.eq(s.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(webhook_deliveries::id.lt(b));
    }
    Ok(q.order(webhook_deliveries::id.desc()).limit(limit).load(conn)?)
}

/// A delivery by id.
pub fn delivery(conn: &mut DbConnection, id: i64) -> Result<Option<DeliveryRow>, DbError> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Makes failed deliveries of an endpoint pending again, due now, with a new retry period from
/// now: one (`only`), or all of them. Returns how many.
pub fn retry_failed(
    conn: &mut DbConnection,
    endpoint_id: i64,
    only: Option<i64>,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    use webhook_deliveries as d;
    let mut q = d::table.filter(d::endpoint_id.eq(endpoint_id)).filter(d::state.eq("failed")).into_boxed();
    if let Some(id) = only {
        q = q.filter(d::id.eq(id));
    }
    let ids: Vec<i64> = q.select(d::id).load(conn)?;
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(d::table.filter(d::id.eq_any(chunk)).filter(d::state.eq("failed")))
            .set((d::state.eq("pending"), d::retry_since.eq(now), d::next_attempt_at.eq(Some(now))))
            .execute(conn)?;
    }
    Ok(n)
}

/// A published version, as a `published` delivery announces it.
#[derive(Debug, Clone, Queryable)]
pub struct PublishedRow {
    pub id: i64,
    pub document: String,
    pub version: i32,
    /// '' for the original.
    pub locale: String,
    pub title: String,
    pub effective: NaiveDateTime,
    pub material: bool,
    pub summary: Option<String>,
    pub sha256: String,
    pub published_at: NaiveDateTime,
}

pub fn published_versions(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<PublishedRow>, DbError> {
    use super::schema::{documents, versions};
    Ok(versions::table
        .inner_join(documents::table)
        .filter(versions::id.eq_any(ids))
        .select((
            versions::id,
            documents::slug,
            versions::version,
            versions::locale,
            versions::title,
            versions::effective,
            versions::material,
            versions::summary,
            versions::sha256,
            versions::published_at,
        ))
        .load(conn)?)
}

/// Events by id, with their personal data and leaves.
pub fn events_by_id(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<super::ledger::Event>, DbError> {
    use super::schema::events;
    let rows = events::table.filter(events::id.eq_any(ids)).select(super::ledger::EventRow::as_select()).load(conn)?;
    super::ledger::complete(conn, rows)
}
