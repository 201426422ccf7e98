//! `assent verify`: recompute every subject's hash chain and every stored version's content
//! hash, and name whatever does not match.

use std::collections::HashMap;

use diesel::prelude::*;

use super::chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time};
use crate::db::ledger::{EventRow, all_heads, events_after};
use crate::db::schema::{documents, versions};
use crate::db::{DbConnection, DbError, from_stored_time};
use crate::domain::{Covered, sha256_hex};

/// What `verify` looked at and what it found broken.
#[derive(Debug, Default)]
pub struct Report {
    pub versions: usize,
    pub subjects: usize,
    pub events: usize,
    pub problems: Vec<String>,
}

/// Events read per query while walking the ledger.
const BATCH: i64 = 5_000;

pub fn verify(conn: &mut DbConnection) -> Result<Report, DbError> {
    let mut report = Report::default();
    // Every stored file against its hash; remember the hashes to check what events cover.
    let stored: Vec<(String, i32, String, String, String)> = versions::table
        .inner_join(documents::table)
        .select((documents::slug, versions::version, versions::locale, versions::sha256, versions::source))
        .order((documents::slug.asc(), versions::version.asc(), versions::locale.asc()))
        .load(conn)?;
    let mut hashes: HashMap<(String, i32), String> = HashMap::new();
    for (slug, version, locale, sha, source) in stored {
        report.versions += 1;
        let name =
            if locale.is_empty() { format!("{slug} v{version}") } else { format!("{slug} v{version} ({locale})") };
        if sha256_hex(source.as_bytes()) != sha {
            report.problems.push(format!("version {name}: its stored text no longer matches its sha256 {sha}"));
        }
        if locale.is_empty() {
            hashes.insert((slug, version), sha);
        }
    }

    let heads: HashMap<String, (i64, String)> =
        all_heads(conn)?.into_iter().map(|(subject, seq, hash)| (subject, (seq, hash))).collect();
    let mut last: Option<(String, i64, String)> = None; // subject, seq, chain hash of the last event
    // What the subject's events say its status rows must be: document → (state, version, covers).
    let mut expected: HashMap<String, (String, Option<i32>, String)> = HashMap::new();
    let mut state_rows = 0usize;
    let mut finish = |conn: &mut DbConnection,
                      last: &Option<(String, i64, String)>,
                      expected: &mut HashMap<String, (String, Option<i32>, String)>,
                      report: &mut Report|
     -> Result<(), DbError> {
        if let Some((subject, seq, hash)) = last {
            let rows = crate::db::ledger::states_of(conn, subject)?;
            state_rows += rows.len();
            for row in &rows {
                let stored = (row.state.clone(), row.version, row.covers.clone());
                match expected.remove(&row.document) {
                    Some(want) if want == stored => {}
                    Some((state, version, _)) => report.problems.push(format!(
                        "subject {subject:?}: its status for {} says {} v{}, but its events say {state} v{}",
                        row.document,
                        row.state,
                        row.version.unwrap_or(0),
                        version.unwrap_or(0)
                    )),
                    None => report.problems.push(format!(
                        "subject {subject:?}: has a status for {} that no event of its explains",
                        row.document
                    )),
                }
            }
            for document in expected.keys() {
                report
                    .problems
                    .push(format!("subject {subject:?}: its events decide {document}, but it has no status for it"));
            }
            expected.clear();
            report.subjects += 1;
            match heads.get(subject) {
                Some((head_seq, head_hash)) if head_seq == seq && head_hash == hash => {}
                Some((head_seq, _)) => report.problems.push(format!(
                    "subject {subject:?}: its chain head says seq {head_seq}, but the last event is seq {seq} (events missing or added)"
                )),
                None => report.problems.push(format!("subject {subject:?}: has events but no chain head")),
            }
        }
        Ok(())
    };
    let mut cursor: Option<(String, i64)> = None;
    loop {
        let batch = events_after(conn, cursor.as_ref().map(|(s, q)| (s.as_str(), *q)), BATCH)?;
        let Some(tail) = batch.last() else { break };
        cursor = Some((tail.subject.clone(), tail.seq));
        for event in &batch {
            report.events += 1;
            let prev = match &last {
                Some((subject, seq, hash)) if *subject == event.subject => {
                    if event.seq != seq + 1 {
                        report.problems.push(format!(
                            "subject {:?} event {} (seq {}): expected seq {} (an event is missing)",
                            event.subject,
                            event.id,
                            event.seq,
                            seq + 1
                        ));
                    }
                    hash.clone()
                }
                _ => {
                    finish(conn, &last, &mut expected, &mut report)?;
                    if event.seq != 1 {
                        report.problems.push(format!(
                            "subject {:?} event {} (seq {}): the chain does not start at seq 1",
                            event.subject, event.id, event.seq
                        ));
                    }
                    GENESIS.to_owned()
                }
            };
            check_event(event, &prev, &hashes, &mut report.problems);
            expect_state(event, &mut expected);
            last = Some((event.subject.clone(), event.seq, event.chain_hash.clone()));
        }
    }
    finish(conn, &last, &mut expected, &mut report)?;
    let all_state_rows: i64 =
        crate::db::schema::subject_documents::table.select(diesel::dsl::count_star()).first(conn)?;
    if usize::try_from(all_state_rows).unwrap_or(usize::MAX) > state_rows {
        report.problems.push(format!(
            "{} status rows belong to subjects with no events (the status answer would be unfounded)",
            all_state_rows - i64::try_from(state_rows).unwrap_or(0)
        ));
    }
    let seen = report.subjects;
    if heads.len() > seen {
        report.problems.push(format!("{} chain heads have no events (events were deleted)", heads.len() - seen));
    }
    Ok(report)
}

/// What an event does to its subject's status rows (as `ledger::record_once` writes them): an
/// acceptance or a withdrawal sets the agreement and each covered part; a decline, the agreement.
fn expect_state(event: &EventRow, expected: &mut HashMap<String, (String, Option<i32>, String)>) {
    let Ok(covers) = serde_json::from_str::<Vec<Covered>>(&event.covers) else { return };
    expected.insert(event.document.clone(), (event.kind.clone(), event.version, event.covers.clone()));
    if event.kind != "declined" {
        for part in covers.iter().filter(|c| c.document.as_str() != event.document) {
            let version = i32::try_from(part.version.get()).ok();
            expected.insert(part.document.to_string(), (event.kind.clone(), version, event.covers.clone()));
        }
    }
}

fn check_event(event: &EventRow, prev: &str, hashes: &HashMap<(String, i32), String>, problems: &mut Vec<String>) {
    let at = format!("subject {:?} event {} (seq {})", event.subject, event.id, event.seq);
    if event.prev_hash != prev {
        problems.push(format!("{at}: prev_hash does not match the chain hash of the event before it"));
    }
    let covers: Vec<Covered> = match serde_json::from_str(&event.covers) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("{at}: covers cannot be read ({e})"));
            return;
        }
    };
    let recorded_at = chain_time(from_stored_time(event.recorded_at));
    let canonical = Canonical {
        covers: &covers,
        document: &event.document,
        evidence: CanonicalEvidence {
            ip: event.ip.as_deref(),
            locale: event.locale.as_deref(),
            user_agent: event.user_agent.as_deref(),
        },
        kind: &event.kind,
        method: &event.method,
        recorded_at: &recorded_at,
        recorded_by: &event.recorded_by,
        seq: event.seq,
        subject: &event.subject,
        version: event.version,
    };
    if chain_hash(&event.prev_hash, &canonical) != event.chain_hash {
        problems.push(format!("{at}: chain_hash does not match the event's contents (the event was altered)"));
    }
    for c in &covers {
        let version = i32::try_from(c.version.get()).unwrap_or(i32::MAX);
        match hashes.get(&(c.document.to_string(), version)) {
            Some(sha) if *sha == c.sha256 => {}
            Some(sha) => problems.push(format!(
                "{at}: covers {} v{} with sha256 {}, but that version's sha256 is {sha}",
                c.document, c.version, c.sha256
            )),
            None => problems.push(format!("{at}: covers {} v{}, which is not stored", c.document, c.version)),
        }
    }
}
