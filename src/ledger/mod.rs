//! The acceptance ledger: recording decisions as append-only events, each chained to the
//! subject's previous event by hash, with the per-(subject, agreement) state updated in the
//! same transaction; receipts; API keys; and verification of everything stored.

pub mod chain;
pub mod decide;
pub mod evidence;
pub mod export;
pub mod keys;
pub mod lane;
pub mod verify;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::db::ledger::{
    Event, NewEventRow, PersonalRow, event_by_idempotency_key, head, insert_event, insert_personal, set_accepted,
    set_head, set_state, state_of,
};
use crate::db::log::{Source, enqueue};
use crate::db::{DbConnection, DbError, from_stored_time, to_stored_time};
use crate::domain::rules::Decision;
use crate::domain::{Covered, Slug, SubjectId, VersionNumber};
use chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time, salted};
pub use evidence::{Evidence, IpMode};

/// Finds a subject's rows without storing its id: `subject_key` is HMAC-SHA256 of the id under
/// a key derived from the server secret. Whoever lacks the secret cannot tell which id a key
/// belongs to, not even by trying ids.
#[derive(Clone)]
pub struct SubjectKeys {
    subjects: [u8; 32],
    requests: [u8; 32],
}

impl SubjectKeys {
    pub fn new(server_secret: &[u8]) -> Self {
        Self {
            subjects: mac(server_secret, b"assent subject keys v1"),
            requests: mac(server_secret, b"assent request hashes v1"),
        }
    }

    pub fn key(&self, subject: &SubjectId) -> String {
        self.key_of(subject.as_str())
    }

    /// The key of a subject id as stored (which `verify` checks without parsing it again).
    pub fn key_of(&self, subject: &str) -> String {
        crate::domain::hex32(&mac(&self.subjects, subject.as_bytes()))
    }

    /// What an idempotent request is remembered by: a keyed hash of its body, so that the
    /// addresses and user agents in it cannot be found by trying every value. Erasure and
    /// retention clear it with the rest.
    pub fn request_hash(&self, canonical_request: &[u8]) -> String {
        crate::domain::hex32(&mac(&self.requests, canonical_request))
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// What kind of decision an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Accepted,
    Declined,
    Withdrawn,
    /// The subject asked (on `/me`) for its personal data to be erased.
    ErasureRequested,
    /// The subject's personal data was erased.
    Erased,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
            Self::ErasureRequested => "erasure_requested",
            Self::Erased => "erased",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Accepted, Self::Declined, Self::Withdrawn, Self::ErasureRequested, Self::Erased]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// How the decision reached Assent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Api,
    ConsentPage,
    /// The subject's own page, `/me`.
    Me,
    Cli,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::ConsentPage => "consent_page",
            Self::Me => "me",
            Self::Cli => "cli",
        }
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub subject: SubjectId,
    /// `SubjectKeys::key(&subject)`.
    pub subject_key: String,
    pub document: Option<Slug>,
    pub action: Action,
    /// Who recorded it: the API key's name, or `consent_page`.
    pub recorded_by: String,
    pub method: Method,
    pub evidence: Evidence,
    pub idempotency_key: Option<String>,
    /// A hash of the request as sent, to tell a retry from a different request under the same
    /// idempotency key.
    pub request_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Accept {
        version: VersionNumber,
        covers: Vec<Covered>,
    },
    Decline {
        version: VersionNumber,
        covers: Vec<Covered>,
    },
    /// Withdraws the standing acceptance; what it covered is read inside the transaction.
    Withdraw,
    /// The subject asks for erasure.
    RequestErasure,
}

/// The answer to a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub event_id: i64,
    /// The subject id; `null` once erased.
    pub subject: Option<String>,
    pub kind: Kind,
    pub document: Option<String>,
    pub version: Option<i32>,
    /// The SHA-256 of the decided version of `document`.
    pub sha256: Option<String>,
    pub covers: Vec<Covered>,
    pub recorded_at: String,
    pub seq: i64,
    pub chain_hash: String,
    /// The event's leaf in the log.
    pub log_index: Option<i64>,
}

#[derive(Debug)]
pub enum Recorded {
    /// A new event, committed.
    Created(Receipt),
    /// The same request was recorded before under this idempotency key: its receipt.
    Replayed(Receipt),
}

impl Recorded {
    pub fn receipt(&self) -> &Receipt {
        match self {
            Self::Created(r) | Self::Replayed(r) => r,
        }
    }
    fn receipt_mut(&mut self) -> &mut Receipt {
        match self {
            Self::Created(r) | Self::Replayed(r) => r,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("this idempotency key was used for a different request")]
    IdempotencyConflict,
    #[error("there is nothing to withdraw: the subject has no standing acceptance of `{0}`")]
    NothingToWithdraw(String),
    #[error(
        "acceptance never moves backwards: the subject accepted version {accepted} of `{document}`, so version {asked} cannot be accepted"
    )]
    Backwards { document: String, accepted: i32, asked: i32 },
    #[error("no personal data of this subject is held: it is unknown or already erased")]
    NothingToErase,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RecordError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// How often a transaction that lost a serialisation race is retried.
const ATTEMPTS: usize = 20;

/// Runs `work` in a write transaction, retried when it lost a serialisation race
/// ([`retryable`]). On SQLite the log takes in the new events in the same transaction; on
/// PostgreSQL right after it commits. Either way every receipt comes back with its leaf.
fn write_and_log<F>(conn: &mut DbConnection, work: F) -> Result<Vec<Recorded>, RecordError>
where
    F: Fn(&mut DbConnection) -> Result<Vec<Recorded>, RecordError>,
{
    let mut recorded = write(conn, work)?;
    crate::crash::point("after-commit-before-integration");
    attach_log_indexes(conn, &mut recorded)?;
    Ok(recorded)
}

/// Commits (retrying a concurrent write's conflict), with the log's integration inside the
/// transaction on SQLite; on PostgreSQL the events are only queued for the log.
fn write<F>(conn: &mut DbConnection, work: F) -> Result<Vec<Recorded>, RecordError>
where
    F: Fn(&mut DbConnection) -> Result<Vec<Recorded>, RecordError>,
{
    let mut attempt = 0;
    let recorded = loop {
        attempt += 1;
        let result = conn.write_transaction(|conn| {
            let recorded = work(conn)?;
            if let DbConnection::Sqlite(_) = conn {
                crate::log::integrate_with(conn, &created_events(recorded.iter()))?;
            }
            Ok(recorded)
        });
        match result {
            Err(RecordError::Db(DbError::Query(diesel::result::Error::DatabaseError(kind, info))))
                if attempt < ATTEMPTS && retryable(&kind) =>
            {
                tracing::debug!(attempt, error = info.message(), "retrying a concurrent write");
                std::thread::sleep(std::time::Duration::from_millis(2 * attempt as u64));
            }
            other => break other?,
        }
    };
    Ok(recorded)
}

/// The events that `recorded` appended (a replayed receipt's event is in the log already).
pub(crate) fn created_events<'a>(recorded: impl Iterator<Item = &'a Recorded>) -> Vec<i64> {
    recorded.filter_map(|r| if let Recorded::Created(receipt) = r { Some(receipt.event_id) } else { None }).collect()
}

/// Fills in each receipt's leaf, integrating first where the log has not taken it in yet.
pub(crate) fn attach_log_indexes(conn: &mut DbConnection, recorded: &mut [Recorded]) -> Result<(), DbError> {
    let ids: Vec<i64> = recorded.iter().map(|r| r.receipt().event_id).collect();
    let indexes = crate::log::ensure_integrated(conn, &ids)?;
    for r in recorded {
        let receipt = r.receipt_mut();
        receipt.log_index = indexes.get(&receipt.event_id).copied();
    }
    Ok(())
}

/// Records a decision on PostgreSQL when the group-commit lanes have no thread: commits it with
/// one connection, then waits for the log to take it in holding none (`log::await_integrated`).
pub fn record_pooled(db: &crate::db::Db, decision: &NewDecision, now: DateTime<Utc>) -> Result<Recorded, RecordError> {
    let mut recorded = write(&mut *db.get()?, |conn| Ok(vec![record_once(conn, decision, now, Logged::by(conn))?]))?;
    crate::crash::point("after-commit-before-integration");
    let mut recorded = recorded.pop().ok_or_else(|| RecordError::Db(DbError::Task("nothing was recorded".into())))?;
    let id = recorded.receipt().event_id;
    let indexes = crate::log::await_integrated(db, &[id])?;
    recorded.receipt_mut().log_index = indexes.get(&id).copied();
    Ok(recorded)
}

/// Records a decision: one transaction appends the event, moves the subject's chain head and
/// updates its state; it is committed, and in the log, before this returns.
pub fn record(conn: &mut DbConnection, decision: &NewDecision, now: DateTime<Utc>) -> Result<Recorded, RecordError> {
    let mut recorded = write_and_log(conn, |conn| Ok(vec![record_once(conn, decision, now, Logged::by(conn))?]))?;
    recorded.pop().ok_or_else(|| RecordError::Db(DbError::Task("nothing was recorded".into())))
}

/// Records several decisions in one transaction: all or nothing (a consent answer that covers
/// several agreements, imports, tests). Meant for one subject's decisions: on PostgreSQL each
/// subject is locked in turn, so two calls naming the same subjects in opposite orders could
/// deadlock.
pub fn record_many(
    conn: &mut DbConnection,
    decisions: &[NewDecision],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, RecordError> {
    write_and_log(conn, |conn| decisions.iter().map(|d| record_once(conn, d, now, Logged::by(conn))).collect())
}

/// The one error a write retries: PostgreSQL's `serialization_failure` (SQLSTATE 40001), which
/// says the transaction lost a race and would succeed if run again. Two writers for one
/// subject never race for its next sequence number (they take turns on the subject's lock, see
/// `lock_subject_for_writing`), so a unique violation is a real error, and so is a pool with
/// no connection to give: neither is retried.
fn retryable(kind: &diesel::result::DatabaseErrorKind) -> bool {
    matches!(kind, diesel::result::DatabaseErrorKind::SerializationFailure)
}

/// 32 random bytes in hex.
fn new_salt() -> Result<String, DbError> {
    keys::random_bytes::<32>().map(hex::encode).map_err(|e| DbError::Task(format!("no randomness for a salt: {e}")))
}

/// Appends one event to the subject's chain, and queues it for the log unless the caller
/// integrates it in the same transaction ([`Logged`]).
struct Append<'a> {
    subject: &'a SubjectId,
    subject_key: &'a str,
    kind: Kind,
    document: Option<&'a str>,
    version: Option<i32>,
    covers: &'a [Covered],
    recorded_by: &'a str,
    method: Method,
    /// `None` keeps no personal row (an erasure holds none).
    evidence: Option<&'a Evidence>,
    idempotency_key: Option<&'a str>,
    request_hash: Option<&'a str>,
    logged: Logged,
}

/// How an event gets into the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logged {
    /// Integrated in the transaction that commits it (SQLite's writes, the group-commit lanes).
    Here,
    /// Put in `log_queue`, for an integration round after the commit (PostgreSQL's other writes).
    Queued,
}

impl Logged {
    /// As [`write`] integrates on `conn`: in the transaction on SQLite, queued on PostgreSQL.
    fn by(conn: &DbConnection) -> Self {
        match conn {
            DbConnection::Sqlite(_) => Self::Here,
            DbConnection::Postgres(_) => Self::Queued,
        }
    }
}

/// Appends the event; returns its receipt, and the id of what it covers (for the status rows).
fn append(conn: &mut DbConnection, a: &Append<'_>, now: DateTime<Utc>) -> Result<(Receipt, i64), RecordError> {
    let (seq, prev_hash) = head(conn, a.subject_key)?.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
    let recorded_at = to_stored_time(now);
    let recorded_at_text = chain_time(from_stored_time(recorded_at));
    let covers_json = serde_json::to_string(a.covers).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let covers_id = crate::db::ledger::covers_id(conn, &covers_json)?;
    let salt = new_salt()?;
    let subject_hash = salted(&salt, "subject", a.subject.as_str());
    let evidence = a.evidence.cloned().unwrap_or_default();
    let evidence_salt = if evidence.ip.is_some() || evidence.user_agent.is_some() { Some(new_salt()?) } else { None };
    let hash_of = |field: &str, value: &Option<String>| {
        value.as_deref().zip(evidence_salt.as_deref()).map(|(v, s)| salted(s, field, v))
    };
    let ip_hash = hash_of("ip", &evidence.ip);
    let user_agent_hash = hash_of("user_agent", &evidence.user_agent);
    let canonical = Canonical {
        covers: a.covers,
        document: a.document,
        evidence: CanonicalEvidence {
            ip: ip_hash.as_deref(),
            locale: evidence.locale.as_deref(),
            user_agent: user_agent_hash.as_deref(),
        },
        kind: a.kind.as_str(),
        method: a.method.as_str(),
        recorded_at: &recorded_at_text,
        recorded_by: a.recorded_by,
        seq,
        subject: &subject_hash,
        version: a.version,
    };
    let hash = chain_hash(&prev_hash, &canonical);
    let event_id = insert_event(
        conn,
        &NewEventRow {
            subject_key: a.subject_key,
            seq,
            kind: a.kind.as_str(),
            document: a.document,
            version: a.version,
            covers_id,
            recorded_at,
            recorded_by: a.recorded_by,
            method: a.method.as_str(),
            subject_hash: &subject_hash,
            ip_hash: ip_hash.as_deref(),
            user_agent_hash: user_agent_hash.as_deref(),
            locale: evidence.locale.as_deref(),
            idempotency_key: a.idempotency_key,
            request_hash: a.request_hash,
            prev_hash: &prev_hash,
            chain_hash: &hash,
        },
    )?;
    if a.evidence.is_some() {
        insert_personal(
            conn,
            &PersonalRow {
                event_id,
                subject: a.subject.to_string(),
                salt,
                ip: evidence.ip.clone(),
                user_agent: evidence.user_agent.clone(),
                evidence_salt,
            },
        )?;
    }
    set_head(conn, a.subject_key, seq, &hash)?;
    // The outbox (contract §9): a delivery per subscribed endpoint, in this same transaction, so
    // one exists exactly when the event committed. An erasure's delivery keeps the subject id,
    // which the erased event no longer holds, until it is delivered.
    let erased_subject = (a.kind == Kind::Erased).then(|| a.subject.as_str());
    crate::db::webhooks::enqueue_event(
        conn,
        crate::webhooks::EventType::of(a.kind).as_str(),
        event_id,
        erased_subject,
        recorded_at,
    )?;
    // Integrated in this same transaction by the caller (`created_events`), or queued for a
    // round that every server shares.
    if a.logged == Logged::Queued {
        enqueue(conn, Source::Event(event_id))?;
    }
    let sha256 = a.covers.iter().find(|c| Some(c.document.as_str()) == a.document).map(|c| c.sha256.clone());
    let receipt = Receipt {
        event_id,
        subject: a.evidence.is_some().then(|| a.subject.to_string()),
        kind: a.kind,
        document: a.document.map(str::to_owned),
        version: a.version,
        sha256,
        covers: a.covers.to_vec(),
        recorded_at: recorded_at_text,
        seq,
        chain_hash: hash,
        log_index: None,
    };
    Ok((receipt, covers_id))
}

/// Records one decision inside the caller's transaction. On `Err` the caller must roll back
/// (the transaction, or the decision's savepoint): a refusal found late, such as a step
/// backwards, comes after the event was written.
pub(crate) fn record_once(
    conn: &mut DbConnection,
    d: &NewDecision,
    now: DateTime<Utc>,
    logged: Logged,
) -> Result<Recorded, RecordError> {
    let key = d.subject_key.as_str();
    crate::db::ledger::lock_subject_for_writing(conn, key)?;
    if let Some(idempotency_key) = &d.idempotency_key
        && let Some(previous) = event_by_idempotency_key(conn, key, idempotency_key)?
    {
        return if previous.row.request_hash == d.request_hash {
            Ok(Recorded::Replayed(receipt(&previous)?))
        } else {
            Err(RecordError::IdempotencyConflict)
        };
    }
    let document = d.document.as_ref().map(Slug::as_str);
    let (kind, version, covers) = match &d.action {
        Action::Accept { version, covers } => (Kind::Accepted, Some(*version), covers.clone()),
        Action::Decline { version, covers } => (Kind::Declined, Some(*version), covers.clone()),
        Action::RequestErasure => {
            // Asking again while a request is open adds nothing: the open one is the answer.
            if let Some(open) = crate::db::ledger::open_erasure_request(conn, key)? {
                return Ok(Recorded::Replayed(receipt(&open)?));
            }
            (Kind::ErasureRequested, None, Vec::new())
        }
        Action::Withdraw => {
            let document = document.unwrap_or_default();
            let standing = state_of(conn, key, document)?
                .filter(|s| s.state == Kind::Accepted.as_str())
                .ok_or_else(|| RecordError::NothingToWithdraw(document.to_owned()))?;
            let text = standing.covers.as_deref().ok_or_else(|| {
                DbError::Corrupt(format!(
                    "covers of {key}/{document}: covers_id {} names no stored text",
                    standing.covers_id
                ))
            })?;
            let covers: Vec<Covered> =
                serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("covers of {key}/{document}: {e}")))?;
            let version = standing.version.and_then(|v| u32::try_from(v).ok()).and_then(VersionNumber::new);
            (Kind::Withdrawn, version, covers)
        }
    };
    let version = version.map(|v| i32::try_from(v.get()).unwrap_or(i32::MAX));
    let (receipt, covers_id) = append(
        conn,
        &Append {
            subject: &d.subject,
            subject_key: key,
            kind,
            document,
            version,
            covers: &covers,
            recorded_by: &d.recorded_by,
            method: d.method,
            evidence: Some(&d.evidence),
            idempotency_key: d.idempotency_key.as_deref(),
            request_hash: d.request_hash.as_deref(),
            logged,
        },
        now,
    )?;
    if let (Some(document), Kind::Accepted | Kind::Declined | Kind::Withdrawn) = (document, kind) {
        match (kind, version) {
            // Contract §2: once a subject accepted version n, an older version is refused, even
            // the current one. The state row keeps the newest version accepted and is written
            // only if this is not older; otherwise the whole decision is undone (the caller
            // rolls back), event included. No extra read on the way of every acceptance.
            (Kind::Accepted, Some(asked)) => {
                if !set_accepted(conn, key, document, asked, covers_id, receipt.event_id, now)? {
                    let accepted = state_of(conn, key, document)?.and_then(|s| s.highest_accepted).unwrap_or(asked);
                    return Err(RecordError::Backwards { document: document.to_owned(), accepted, asked });
                }
            }
            // A withdrawal keeps what was withdrawn in `covers_id` for the record; the state says
            // withdrawn.
            _ => set_state(conn, key, document, kind.as_str(), version, covers_id, receipt.event_id, now)?,
        }
        // The parts an acceptance covers (and a withdrawal takes back) get a state row too, so
        // that coverage of a part is counted like that of an agreement. A decline concerns the
        // agreement.
        if kind != Kind::Declined {
            for part in covers.iter().filter(|c| c.document.as_str() != document) {
                let part_version = i32::try_from(part.version.get()).unwrap_or(i32::MAX);
                set_state(
                    conn,
                    key,
                    part.document.as_str(),
                    kind.as_str(),
                    Some(part_version),
                    covers_id,
                    receipt.event_id,
                    now,
                )?;
            }
        }
    }
    Ok(Recorded::Created(receipt))
}

/// A subject's request, from `/me`, that its personal data be erased: recorded as an
/// `erasure_requested` event, which the admin view and `GET /api/v1/erasure-requests` list.
pub fn erasure_request(subject: SubjectId, subject_key: String, evidence: Evidence) -> NewDecision {
    NewDecision {
        subject,
        subject_key,
        document: None,
        action: Action::RequestErasure,
        recorded_by: "me".into(),
        method: Method::Me,
        evidence,
        idempotency_key: None,
        request_hash: None,
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    pub subject: String,
    /// Events whose personal data was deleted.
    pub erased_events: usize,
    pub erased_at: String,
    /// The erasure's own leaf in the log.
    pub log_index: Option<i64>,
    #[serde(skip)]
    #[schema(ignore)]
    pub receipt: Receipt,
}

/// Erases a subject's personal data (contract §8): in one transaction, deletes the plain values
/// and salts of all its events and its status rows, and appends an `erased` event to its chain,
/// whose leaf in the log is of type `erasure`. Refused with [`RecordError::NothingToErase`] when
/// nothing personal is held (an unknown subject, or one erased already).
pub fn erase(
    conn: &mut DbConnection,
    subject: &SubjectId,
    subject_key: &str,
    recorded_by: &str,
    method: Method,
    now: DateTime<Utc>,
) -> Result<Erasure, RecordError> {
    let erased_events = std::cell::Cell::new(0);
    let mut recorded = conn.securely(|conn| {
        write_and_log(conn, |conn| {
            crate::db::ledger::lock_subject_for_writing(conn, subject_key)?;
            if !crate::db::ledger::has_personal(conn, subject_key)? {
                return Err(RecordError::NothingToErase);
            }
            let (receipt, _) = append(
                conn,
                &Append {
                    subject,
                    subject_key,
                    kind: Kind::Erased,
                    document: None,
                    version: None,
                    covers: &[],
                    recorded_by,
                    method,
                    evidence: None,
                    idempotency_key: None,
                    request_hash: None,
                    logged: Logged::by(conn),
                },
                now,
            )?;
            erased_events.set(crate::db::ledger::erase_subject(conn, subject_key)?);
            crate::crash::point("erase-before-commit");
            Ok(vec![Recorded::Created(receipt)])
        })
    })?;
    let receipt = recorded.pop().map(|r| r.receipt().clone()).ok_or(RecordError::NothingToErase)?;
    conn.forget_old_pages();
    Ok(Erasure {
        subject: subject.to_string(),
        erased_events: erased_events.get(),
        erased_at: receipt.recorded_at.clone(),
        log_index: receipt.log_index,
        receipt,
    })
}

/// Retention (`ASSENT_EVIDENCE_RETENTION`): clears the IP address, user agent and evidence salt
/// of events older than `keep`, in one transaction. The chain keeps their salted hashes, so it
/// still verifies; without the salt the hashes cannot be opened, not even by trying every
/// address. Returns how many events were cleared.
pub fn apply_retention(
    conn: &mut DbConnection,
    keep: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let before = now.checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let cleared = conn.securely(|conn| {
        conn.write_transaction(|c| crate::db::ledger::clear_evidence_before(c, to_stored_time(before)))
    })?;
    if cleared > 0 {
        conn.forget_old_pages();
    }
    Ok(cleared)
}

/// How often retention runs: hourly, or more often for short retention periods.
pub fn retention_interval(keep: std::time::Duration) -> std::time::Duration {
    (keep / 4).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(3600))
}

/// The receipt of a stored event.
pub fn receipt(event: &Event) -> Result<Receipt, DbError> {
    let row = &event.row;
    let text = row.covers.as_deref().ok_or_else(|| {
        DbError::Corrupt(format!("event {} covers set {}, which is not stored", row.id, row.covers_id))
    })?;
    let covers: Vec<Covered> =
        serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("covers of event {}: {e}", row.id)))?;
    let kind =
        Kind::parse(&row.kind).ok_or_else(|| DbError::Corrupt(format!("event {} has kind `{}`", row.id, row.kind)))?;
    Ok(Receipt {
        event_id: row.id,
        subject: event.subject().map(str::to_owned),
        kind,
        sha256: covers.iter().find(|c| Some(c.document.as_str()) == row.document.as_deref()).map(|c| c.sha256.clone()),
        document: row.document.clone(),
        version: row.version,
        covers,
        recorded_at: chain_time(from_stored_time(row.recorded_at)),
        seq: row.seq,
        chain_hash: row.chain_hash.clone(),
        log_index: event.log_index,
    })
}

/// A subject's latest decision per agreement, for the status rules: from the same columns that
/// coverage counts (`db::coverage`).
pub fn decisions(
    conn: &mut DbConnection,
    subject_key: &str,
) -> Result<std::collections::HashMap<Slug, Decision>, DbError> {
    let mut out = std::collections::HashMap::new();
    for row in crate::db::ledger::decisions_of(conn, subject_key)? {
        let Ok(slug) = Slug::parse(&row.document) else { continue };
        let corrupt = |what: &str| DbError::Corrupt(format!("{what} of {subject_key}/{slug}"));
        if let (None, Some(id)) = (&row.accepted_covers, row.accepted_covers_id) {
            return Err(corrupt(&format!("the latest acceptance (its covers_id {id} names no stored text)")));
        }
        let decision = match (row.state.as_str(), row.accepted_covers, row.accepted_at) {
            ("accepted", Some(covers), Some(at)) => {
                let covers: Vec<Covered> = serde_json::from_str(&covers).map_err(|_| corrupt("covers"))?;
                let version = covers.iter().find(|c| c.document == slug).map(|c| c.version);
                Decision::Accepted {
                    version: version.ok_or_else(|| corrupt("covers"))?,
                    covers,
                    at: from_stored_time(at),
                }
            }
            ("declined", ..) => Decision::Declined,
            ("withdrawn", ..) => Decision::Withdrawn,
            (state, ..) => return Err(corrupt(&format!("state `{state}`"))),
        };
        out.insert(slug, decision);
    }
    Ok(out)
}
