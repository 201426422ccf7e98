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
//!   only the acceptances made on that one day are counted again, through an index, on either
//!   side of the cutoff.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::db::coverage::{self as counts, Group};
use crate::db::{DbConnection, DbError};
use crate::domain::rules::{self, Decision, State};
use crate::domain::{Catalog, Covered, DocumentInfo, Slug, VersionNumber};

/// How many subjects stand in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
            State::Pending => self.pending += n,
            // Never reached: a tally counts subjects with a decision; coverage counts the
            // others as `never` separately.
            State::Never => {}
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

impl Coverage {
    /// Each state with its count, in the order the admin view and `/metrics` show them.
    pub fn by_state(&self) -> [(&'static str, i64); 6] {
        [
            ("accepted", self.accepted),
            ("pending", self.pending),
            ("expired", self.expired),
            ("never", self.never),
            ("declined", self.declined),
            ("withdrawn", self.withdrawn),
        ]
    }
}

/// Subjects who stand alike on one agreement: `n` of them, with this latest decision, whose
/// latest acceptance covered `accepted` (none if they never accepted).
#[derive(Debug, Clone)]
struct Alike {
    decision: Decision,
    accepted: std::rc::Rc<Vec<Covered>>,
    n: i64,
}

fn corrupt(document: &Slug, what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("coverage counts of {document}: {what}"))
}

/// Builds the groups' decisions, parsing each distinct `covers` once.
struct Builder<'a> {
    doc: &'a DocumentInfo,
    parsed: HashMap<String, std::rc::Rc<Vec<Covered>>>,
}

impl Builder<'_> {
    fn alike(&mut self, state: &str, covers: &str, at: DateTime<Utc>, n: i64) -> Result<Alike, DbError> {
        let slug = &self.doc.slug;
        let accepted = match self.parsed.get(covers) {
            Some(c) => c.clone(),
            None => {
                let c: Vec<Covered> = if covers.is_empty() {
                    Vec::new()
                } else {
                    serde_json::from_str(covers).map_err(|e| corrupt(slug, e))?
                };
                let c = std::rc::Rc::new(c);
                self.parsed.insert(covers.to_owned(), c.clone());
                c
            }
        };
        let decision = match state {
            "accepted" => {
                let version = accepted
                    .iter()
                    .find(|c| &c.document == slug)
                    .map(|c| c.version)
                    .ok_or_else(|| corrupt(slug, "an acceptance that does not cover its agreement"))?;
                Decision::Accepted { version, covers: accepted.to_vec(), at }
            }
            "declined" => Decision::Declined,
            "withdrawn" => Decision::Withdrawn,
            other => return Err(corrupt(slug, format!("state `{other}`"))),
        };
        Ok(Alike { decision, accepted, n })
    }
}

/// The known subjects and the groups of the agreement `doc` at `now`. A group's acceptances
/// all stand in for one made at the start of their day, except on the day of the expiry cutoff
/// (now − `reaccept_after`), whose acceptances are counted on either side of the cutoff.
fn groups(
    conn: &mut DbConnection,
    catalog: &Catalog,
    doc: &DocumentInfo,
    now: DateTime<Utc>,
) -> Result<(i64, Vec<Alike>), DbError> {
    let cutoff = rules::reaccept_after(catalog, doc, now).and_then(|d| now.checked_sub_signed(d));
    let counts = counts::read(conn, doc.slug.as_str(), cutoff.map(|c| c.naive_utc()))?;
    let cutoff_day = cutoff.map(|c| c.date_naive());
    let mut builder = Builder { doc, parsed: HashMap::new() };
    let mut out = Vec::with_capacity(counts.groups.len() + counts.split.len());
    for Group { state, accepted_covers, accepted_day, n } in counts.groups {
        let day = if accepted_day.is_empty() {
            None
        } else {
            Some(NaiveDate::parse_from_str(&accepted_day, "%Y-%m-%d").map_err(|e| corrupt(&doc.slug, e))?)
        };
        if state == "accepted" && day.is_some() && day == cutoff_day {
            continue; // counted on either side of the cutoff below
        }
        let at = day.and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(now, |t| t.and_utc());
        out.push(builder.alike(&state, &accepted_covers, at, n)?);
    }
    if let Some(cutoff) = cutoff {
        for split in counts.split {
            // Made at or before the cutoff: expired, like one made at the cutoff; after it: not.
            let at = if split.at_or_before == 1 { cutoff } else { cutoff + chrono::TimeDelta::microseconds(1) };
            out.push(builder.alike("accepted", &split.accepted_covers, at, split.n)?);
        }
    }
    Ok((counts.known, out))
}

/// Where every known subject stands on the agreement `doc` at `now`.
pub fn coverage(
    conn: &mut DbConnection,
    catalog: &Catalog,
    doc: &DocumentInfo,
    now: DateTime<Utc>,
) -> Result<Coverage, DbError> {
    let (known, groups) = groups(conn, catalog, doc, now)?;
    let mut tally = Tally::default();
    for s in &groups {
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
    let (_, groups) = groups(conn, catalog, agreement, now)?;
    let mut tally = Tally::default();
    for s in groups.iter().filter(|s| s.accepted.iter().any(|c| c.document == doc.slug && c.version == version)) {
        tally.add(rules::standing(catalog, agreement, Some(&s.decision), now).state, s.n);
    }
    Ok(tally)
}
