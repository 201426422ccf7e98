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
    let finish = |last: &Option<(String, i64, String)>, report: &mut Report| {
        if let Some((subject, seq, hash)) = last {
            report.subjects += 1;
            match heads.get(subject) {
                Some((head_seq, head_hash)) if head_seq == seq && head_hash == hash => {}
                Some((head_seq, _)) => report.problems.push(format!(
                    "subject {subject:?}: its chain head says seq {head_seq}, but the last event is seq {seq} (events missing or added)"
                )),
                None => report.problems.push(format!("subject {subject:?}: has events but no chain head")),
            }
        }
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
                    finish(&last, &mut report);
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
            last = Some((event.subject.clone(), event.seq, event.chain_hash.clone()));
        }
    }
    finish(&last, &mut report);
    let seen = report.subjects;
    if heads.len() > seen {
        report.problems.push(format!("{} chain heads have no events (events were deleted)", heads.len() - seen));
    }
    Ok(report)
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
