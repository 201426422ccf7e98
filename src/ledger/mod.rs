//! The acceptance ledger: recording decisions as append-only events, each chained to the
//! subject's previous event by hash, with the per-(subject, agreement) state updated in the
//! same transaction; receipts; API keys; and verification of everything stored.

pub mod chain;
pub mod evidence;
pub mod export;
pub mod keys;
pub mod lane;
pub mod verify;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::ledger::{
    EventRow, NewEventRow, event_by_idempotency_key, head, insert_event, set_head, set_state, state_of,
};
use crate::db::{DbConnection, DbError, from_stored_time, to_stored_time};
use crate::domain::rules::Decision;
use crate::domain::{Covered, Slug, SubjectId, VersionNumber};
use chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time};
pub use evidence::{Evidence, IpMode};

/// What kind of decision an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Accepted,
    Declined,
    Withdrawn,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// How the decision reached Assent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Api,
    ConsentPage,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::ConsentPage => "consent_page",
        }
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub subject: SubjectId,
    pub document: Slug,
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
}

/// The answer to a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub event_id: i64,
    pub subject: String,
    pub kind: Kind,
    pub document: String,
    pub version: Option<i32>,
    /// The SHA-256 of the decided version of `document`.
    pub sha256: Option<String>,
    pub covers: Vec<Covered>,
    pub recorded_at: String,
    pub seq: i64,
    pub chain_hash: String,
}

#[derive(Debug)]
pub enum Recorded {
    /// A new event, committed.
    Created(Receipt),
    /// The same request was recorded before under this idempotency key: its receipt.
    Replayed(Receipt),
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("this idempotency key was used for a different request")]
    IdempotencyConflict,
    #[error("there is nothing to withdraw: the subject has no standing acceptance of `{0}`")]
    NothingToWithdraw(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RecordError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// How often a transaction that lost a race (two events for one subject at once) is retried.
const ATTEMPTS: usize = 20;

/// Records a decision: one transaction appends the event, moves the subject's chain head and
/// updates its state; it is committed before this returns.
pub fn record(conn: &mut DbConnection, decision: &NewDecision, now: DateTime<Utc>) -> Result<Recorded, RecordError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.write_transaction(|conn| record_once(conn, decision, now)) {
            Err(RecordError::Db(DbError::Query(diesel::result::Error::DatabaseError(kind, info))))
                if attempt < ATTEMPTS && retryable(&kind) =>
            {
                tracing::debug!(attempt, error = info.message(), "retrying a concurrent write");
                std::thread::sleep(std::time::Duration::from_millis(2 * attempt as u64));
            }
            other => return other,
        }
    }
}

/// Records several decisions in one transaction: all or nothing (a consent answer that covers
/// several agreements, imports, tests).
pub fn record_many(
    conn: &mut DbConnection,
    decisions: &[NewDecision],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, RecordError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.write_transaction(|conn| decisions.iter().map(|d| record_once(conn, d, now)).collect()) {
            Err(RecordError::Db(DbError::Query(diesel::result::Error::DatabaseError(kind, _))))
                if attempt < ATTEMPTS && retryable(&kind) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(2 * attempt as u64));
            }
            other => return other,
        }
    }
}

fn retryable(kind: &diesel::result::DatabaseErrorKind) -> bool {
    use diesel::result::DatabaseErrorKind as K;
    matches!(kind, K::UniqueViolation | K::SerializationFailure)
}

pub(crate) fn record_once(
    conn: &mut DbConnection,
    d: &NewDecision,
    now: DateTime<Utc>,
) -> Result<Recorded, RecordError> {
    let subject = d.subject.as_str();
    crate::db::ledger::lock_event_writes(conn)?;
    if let Some(key) = &d.idempotency_key
        && let Some(previous) = event_by_idempotency_key(conn, subject, key)?
    {
        return if previous.request_hash == d.request_hash {
            Ok(Recorded::Replayed(receipt(&previous)?))
        } else {
            Err(RecordError::IdempotencyConflict)
        };
    }
    let (kind, version, covers) = match &d.action {
        Action::Accept { version, covers } => (Kind::Accepted, Some(*version), covers.clone()),
        Action::Decline { version, covers } => (Kind::Declined, Some(*version), covers.clone()),
        Action::Withdraw => {
            let standing = state_of(conn, subject, d.document.as_str())?
                .filter(|s| s.state == Kind::Accepted.as_str())
                .ok_or_else(|| RecordError::NothingToWithdraw(d.document.to_string()))?;
            let covers: Vec<Covered> = serde_json::from_str(&standing.covers)
                .map_err(|e| DbError::Corrupt(format!("covers of {subject}/{}: {e}", d.document)))?;
            let version = standing.version.and_then(|v| u32::try_from(v).ok()).and_then(VersionNumber::new);
            (Kind::Withdrawn, version, covers)
        }
    };
    let version = version.map(|v| i32::try_from(v.get()).unwrap_or(i32::MAX));
    let (seq, prev_hash) = head(conn, subject)?.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
    let recorded_at = to_stored_time(now);
    let recorded_at_text = chain_time(from_stored_time(recorded_at));
    let covers_json = serde_json::to_string(&covers).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let canonical = Canonical {
        covers: &covers,
        document: d.document.as_str(),
        evidence: CanonicalEvidence {
            ip: d.evidence.ip.as_deref(),
            locale: d.evidence.locale.as_deref(),
            user_agent: d.evidence.user_agent.as_deref(),
        },
        kind: kind.as_str(),
        method: d.method.as_str(),
        recorded_at: &recorded_at_text,
        recorded_by: &d.recorded_by,
        seq,
        subject,
        version,
    };
    let hash = chain_hash(&prev_hash, &canonical);
    let row = NewEventRow {
        subject,
        seq,
        kind: kind.as_str(),
        document: d.document.as_str(),
        version,
        covers: &covers_json,
        recorded_at,
        recorded_by: &d.recorded_by,
        method: d.method.as_str(),
        ip: d.evidence.ip.as_deref(),
        user_agent: d.evidence.user_agent.as_deref(),
        locale: d.evidence.locale.as_deref(),
        idempotency_key: d.idempotency_key.as_deref(),
        request_hash: d.request_hash.as_deref(),
        prev_hash: &prev_hash,
        chain_hash: &hash,
    };
    let event_id = insert_event(conn, &row)?;
    set_head(conn, subject, seq, &hash)?;
    // A withdrawal keeps what was withdrawn in `covers` for the record; the state says withdrawn.
    set_state(conn, subject, d.document.as_str(), kind.as_str(), version, &covers_json, event_id, now)?;
    // The parts an acceptance covers (and a withdrawal takes back) get a state row too, so that
    // coverage of a part is counted like that of an agreement. A decline concerns the agreement.
    if kind != Kind::Declined {
        for part in covers.iter().filter(|c| c.document != d.document) {
            let part_version = i32::try_from(part.version.get()).unwrap_or(i32::MAX);
            set_state(
                conn,
                subject,
                part.document.as_str(),
                kind.as_str(),
                Some(part_version),
                &covers_json,
                event_id,
                now,
            )?;
        }
    }
    let sha256 = covers.iter().find(|c| c.document == d.document).map(|c| c.sha256.clone());
    Ok(Recorded::Created(Receipt {
        event_id,
        subject: subject.to_owned(),
        kind,
        document: d.document.to_string(),
        version,
        sha256,
        covers,
        recorded_at: recorded_at_text,
        seq,
        chain_hash: hash,
    }))
}

/// The receipt of a stored event.
pub fn receipt(row: &EventRow) -> Result<Receipt, DbError> {
    let covers: Vec<Covered> =
        serde_json::from_str(&row.covers).map_err(|e| DbError::Corrupt(format!("covers of event {}: {e}", row.id)))?;
    let kind = match row.kind.as_str() {
        "accepted" => Kind::Accepted,
        "declined" => Kind::Declined,
        "withdrawn" => Kind::Withdrawn,
        other => return Err(DbError::Corrupt(format!("event {} has kind `{other}`", row.id))),
    };
    Ok(Receipt {
        event_id: row.id,
        subject: row.subject.clone(),
        kind,
        sha256: covers.iter().find(|c| c.document.as_str() == row.document).map(|c| c.sha256.clone()),
        document: row.document.clone(),
        version: row.version,
        covers,
        recorded_at: chain_time(from_stored_time(row.recorded_at)),
        seq: row.seq,
        chain_hash: row.chain_hash.clone(),
    })
}

/// A subject's latest decision per agreement, for the status rules.
pub fn decisions(
    conn: &mut DbConnection,
    subject: &SubjectId,
) -> Result<std::collections::HashMap<Slug, Decision>, DbError> {
    let mut out = std::collections::HashMap::new();
    for row in crate::db::ledger::states_of(conn, subject.as_str())? {
        let Ok(slug) = Slug::parse(&row.document) else { continue };
        let version = row.version.and_then(|v| u32::try_from(v).ok()).and_then(VersionNumber::new);
        let decision = match (row.state.as_str(), version) {
            ("accepted", Some(version)) => Decision::Accepted {
                version,
                covers: serde_json::from_str(&row.covers)
                    .map_err(|e| DbError::Corrupt(format!("covers of {subject}/{slug}: {e}")))?,
            },
            ("declined", Some(version)) => Decision::Declined { version },
            ("withdrawn", _) => Decision::Withdrawn,
            (state, _) => return Err(DbError::Corrupt(format!("state `{state}` of {subject}/{slug}"))),
        };
        out.insert(slug, decision);
    }
    Ok(out)
}
