//! Coverage and stats (contract §5): every known subject counted once, in the state its status
//! gives it now. Both come from the same rule as `/status` ([`rules::standing`]), applied once
//! per group of subjects who stand alike rather than once per subject.
//!
//! How it stays exact while time passes, without a replay per request:
//! - The groups are kept by the database (`db::coverage`) per agreement: the subject's latest
//!   decision, the exact versions its latest acceptance covered, and the day it was made.
//! - Whether an acceptance is still enough depends only on what it covered and on the catalog
//!   at the moment asked: a version taking effect changes the answer for a whole group at once,
//!   so no stored row goes stale when a version is published or takes effect.
//! - Expiry (`reaccept_after`) depends on the acceptance's time. Every acceptance made before the
//!   day of the cutoff (now − `reaccept_after`) has expired, every one made after it has not;
//!   only the acceptances made on that one day are read one by one, with their exact times.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::db::coverage::{self as counts, Group};
use crate::db::{DbConnection, DbError, from_stored_time};
use crate::domain::rules::{self, Decision, State};
use crate::domain::{Catalog, Covered, DocumentInfo, Slug, VersionNumber};

/// How many subjects stand in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub accepted: i64,
    pub pending: i64,
    pub declined: i64,
    pub withdrawn: i64,
    pub expired: i64,
}

impl Tally {
    fn add(&mut self, state: State, n: i64) {
        match state {
            State::Accepted => self.accepted += n,
            State::Pending | State::Never => self.pending += n,
            State::Declined => self.declined += n,
            State::Withdrawn => self.withdrawn += n,
            State::Expired => self.expired += n,
        }
    }

    pub fn total(&self) -> i64 {
        self.accepted + self.pending + self.declined + self.withdrawn + self.expired
    }
}

/// `GET /api/v1/documents/{slug}/coverage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub as_of: String,
    pub total: i64,
    pub accepted: i64,
    pub pending: i64,
    pub never: i64,
    pub declined: i64,
    pub withdrawn: i64,
    pub expired: i64,
}

/// Subjects who stand alike on one agreement: `n` of them, with this latest decision, whose
/// latest acceptance covered `accepted` (none if they never accepted).
#[derive(Debug, Clone)]
struct Standing {
    decision: Decision,
    accepted: Vec<Covered>,
    n: i64,
}

fn corrupt(document: &Slug, what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("coverage counts of {document}: {what}"))
}

fn standing(doc: &DocumentInfo, state: &str, covers: &str, at: DateTime<Utc>, n: i64) -> Result<Standing, DbError> {
    let accepted: Vec<Covered> =
        if covers.is_empty() { Vec::new() } else { serde_json::from_str(covers).map_err(|e| corrupt(&doc.slug, e))? };
    let decision = match state {
        "accepted" => {
            let version = accepted
                .iter()
                .find(|c| c.document == doc.slug)
                .map(|c| c.version)
                .ok_or_else(|| corrupt(&doc.slug, "an acceptance that does not cover its agreement"))?;
            Decision::Accepted { version, covers: accepted.clone(), at }
        }
        "declined" => Decision::Declined,
        "withdrawn" => Decision::Withdrawn,
        other => return Err(corrupt(&doc.slug, format!("state `{other}`"))),
    };
    Ok(Standing { decision, accepted, n })
}

/// The known subjects and the groups of the agreement `doc` at `now`.
fn standings(
    conn: &mut DbConnection,
    catalog: &Catalog,
    doc: &DocumentInfo,
    now: DateTime<Utc>,
) -> Result<(i64, Vec<Standing>), DbError> {
    let exact_day = rules::reaccept_after(catalog, doc, now)
        .and_then(|d| now.checked_sub_signed(d))
        .map(|cutoff| cutoff.date_naive());
    let (known, groups, exact) = counts::groups(conn, doc.slug.as_str(), exact_day)?;
    let mut out = Vec::with_capacity(groups.len() + exact.len());
    for Group { state, accepted_covers, accepted_day, n } in groups {
        let day = if accepted_day.is_empty() {
            None
        } else {
            Some(NaiveDate::parse_from_str(&accepted_day, "%Y-%m-%d").map_err(|e| corrupt(&doc.slug, e))?)
        };
        if state == "accepted" && day.is_some() && day == exact_day {
            continue; // counted one by one below
        }
        let at = day.and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(now, |t| t.and_utc());
        out.push(standing(doc, &state, &accepted_covers, at, n)?);
    }
    for row in exact {
        out.push(standing(doc, "accepted", &row.accepted_covers, from_stored_time(row.accepted_at), 1)?);
    }
    Ok((known, out))
}

/// Where every known subject stands on the agreement `doc` at `now`.
pub fn coverage(
    conn: &mut DbConnection,
    catalog: &Catalog,
    doc: &DocumentInfo,
    now: DateTime<Utc>,
) -> Result<Coverage, DbError> {
    let (known, standings) = standings(conn, catalog, doc, now)?;
    let mut tally = Tally::default();
    for s in &standings {
        tally.add(rules::standing(catalog, doc, Some(&s.decision), now).state, s.n);
    }
    let never = (known - tally.total()).max(0);
    Ok(Coverage {
        as_of: crate::views::rfc3339(now),
        total: known.max(tally.total()),
        accepted: tally.accepted,
        pending: tally.pending,
        never,
        declined: tally.declined,
        withdrawn: tally.withdrawn,
        expired: tally.expired,
    })
}

/// Of the subjects whose latest acceptance covered version `version` of `doc` (an agreement or
/// a part), how many stand in each state now.
pub fn stats(
    conn: &mut DbConnection,
    catalog: &Catalog,
    doc: &DocumentInfo,
    version: VersionNumber,
    now: DateTime<Utc>,
) -> Result<Tally, DbError> {
    let agreement = match doc.part_of() {
        Some(parent) => catalog.document(parent).ok_or_else(|| corrupt(&doc.slug, "a part of no document"))?,
        None => doc,
    };
    let (_, standings) = standings(conn, catalog, agreement, now)?;
    let mut tally = Tally::default();
    for s in standings.iter().filter(|s| s.accepted.iter().any(|c| c.document == doc.slug && c.version == version)) {
        tally.add(rules::standing(catalog, agreement, Some(&s.decision), now).state, s.n);
    }
    Ok(tally)
}

/// Folds the counts' pending changes (PostgreSQL): see `db::coverage`.
pub fn fold(conn: &mut DbConnection) -> Result<usize, DbError> {
    counts::fold(conn)
}
