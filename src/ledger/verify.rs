//! `assent verify`: recompute every subject's hash chain, every stored version's content hash
//! and leaf, the whole log, and each saved checkpoint's root; name whatever does not match.
//! It streams: memory holds one page of events or leaves, the versions, and the chain heads.
//! The chains and the log are walked at once, on two threads with a connection each.

use std::collections::HashMap;

use diesel::prelude::*;

use super::chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time, salted};
use crate::db::ledger::{Event, all_heads, events_after};
use crate::db::log::{self as log_rows, Source};
use crate::db::{Db, DbConnection, DbError, from_stored_time};
use crate::domain::{Covered, sha256_hex};
use crate::log::note::{NoteVerifier, open_checkpoint};
use crate::log::tree::{self, Hash};

/// What `verify` looked at and what it found broken.
#[derive(Debug, Default)]
pub struct Report {
    pub versions: usize,
    pub subjects: usize,
    pub events: usize,
    pub leaves: u64,
    pub checkpoints: usize,
    /// Committed but not yet in the log (a server stopped between the two): taken in at the next
    /// start. Not a problem: nothing of them was acknowledged.
    pub queued: i64,
    pub problems: Vec<String>,
}

/// Rows read per query while walking the ledger and the log.
const BATCH: i64 = 5_000;

/// Checks everything; `saved` are `(name, text)` of saved checkpoints. `keys` are the servers'
/// (to check that each held subject id is the one its events are filed under); `progress` draws
/// bars on standard error.
pub fn verify(
    db: &Db,
    keys: &super::SubjectKeys,
    saved: &[(String, String)],
    verifier: &NoteVerifier,
    progress: bool,
) -> Result<Report, DbError> {
    let mut conn = db.get()?;
    let mut report = Report::default();
    let bars = indicatif::MultiProgress::with_draw_target(if progress {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    });
    let style = indicatif::ProgressStyle::with_template("{prefix:>8} {wide_bar} {pos}/{len} {per_sec} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar = |name: &'static str, len: u64| {
        bars.add(indicatif::ProgressBar::new(len).with_style(style.clone()).with_prefix(name))
    };
    let events_bar = bar("events", u64::try_from(crate::db::ledger::count_events(&mut conn)?).unwrap_or(0));
    let leaves_bar = bar("log", crate::log::head(&mut conn)?.size);
    // Each walk reads one snapshot of its own, so that writes committed meanwhile (a server in
    // use) cannot look like a mismatch; each compares only what it read in its snapshot.
    let (chains, log) = std::thread::scope(|s| {
        let chains = s.spawn(|| -> Result<Report, DbError> {
            db.get()?.snapshot(|conn| {
                let mut report = Report::default();
                let (hashes, _) = check_versions(conn, &mut Report::default())?;
                check_chains(conn, &hashes, keys, &events_bar, &mut report)?;
                report.problems.extend(crate::db::coverage::recount_mismatches(conn)?);
                Ok(report)
            })
        });
        let walked = conn.snapshot(|conn| {
            let mut log = Report::default();
            let (_, version_leaves) = check_versions(conn, &mut log)?;
            check_log(conn, &version_leaves, saved, verifier, &leaves_bar, &mut log)?;
            Ok(log)
        });
        (chains.join(), walked)
    });
    events_bar.finish_and_clear();
    leaves_bar.finish_and_clear();
    let chains = chains.map_err(|_| DbError::Task("the chain walk stopped unexpectedly".into()))??;
    let log = log?;
    report.subjects = chains.subjects;
    report.events = chains.events;
    report.problems.extend(chains.problems);
    report.versions = log.versions;
    report.leaves = log.leaves;
    report.checkpoints = log.checkpoints;
    report.queued = log.queued;
    report.problems.extend(log.problems);
    Ok(report)
}

/// Every stored version against its hash and the fields its leaf commits to. Returns the
/// original files' hashes (for what events cover) and each version's expected leaf.
#[allow(clippy::type_complexity)]
fn check_versions(
    conn: &mut DbConnection,
    report: &mut Report,
) -> Result<(HashMap<(String, i32), String>, HashMap<i64, (String, String)>), DbError> {
    let mut hashes = HashMap::new();
    let mut leaves = HashMap::new();
    for v in log_rows::all_version_fields(conn)? {
        report.versions += 1;
        let name = if v.locale.is_empty() {
            format!("{} v{}", v.document, v.version)
        } else {
            format!("{} v{} ({})", v.document, v.version, v.locale)
        };
        if sha256_hex(v.source.as_bytes()) != v.sha256 {
            report.problems.push(format!("version {name}: its stored text no longer matches its sha256 {}", v.sha256));
        }
        if crate::policies::frontmatter::split(&v.source).map(|s| s.body) != Ok(v.body.as_str()) {
            report.problems.push(format!("version {name}: its stored body is not the text of its file"));
        }
        leaves.insert(v.id, (name.clone(), crate::log::version_leaf(&v)));
        if v.locale.is_empty() {
            hashes.insert((v.document.clone(), v.version), v.sha256.clone());
        }
    }
    Ok((hashes, leaves))
}

/// What a subject's events say one status row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    state: String,
    version: Option<i32>,
    covers: String,
    /// The newest version accepted (agreements).
    highest: Option<i32>,
    /// The latest acceptance, what it covered and when (agreements).
    accepted: Option<(String, chrono::NaiveDateTime)>,
}

/// By document.
type Expected = HashMap<String, Row>;

fn check_chains(
    conn: &mut DbConnection,
    hashes: &HashMap<(String, i32), String>,
    keys: &super::SubjectKeys,
    bar: &indicatif::ProgressBar,
    report: &mut Report,
) -> Result<(), DbError> {
    let heads: HashMap<String, (i64, String)> =
        all_heads(conn)?.into_iter().map(|(subject, seq, hash)| (subject, (seq, hash))).collect();
    let mut last: Option<(String, i64, String, String)> = None; // subject key, seq, chain hash, name
    let mut expected = Expected::new();
    let mut state_rows = 0usize;
    let mut cursor: Option<(String, i64)> = None;
    loop {
        let batch = events_after(conn, cursor.as_ref().map(|(s, q)| (s.as_str(), *q)), BATCH)?;
        let Some(tail) = batch.last() else { break };
        cursor = Some((tail.row.subject_key.clone(), tail.row.seq));
        for event in &batch {
            let row = &event.row;
            report.events += 1;
            let prev = match &last {
                Some((key, seq, hash, who)) if *key == row.subject_key => {
                    if row.seq != seq + 1 {
                        report.problems.push(format!(
                            "subject {who} event {} (seq {}): expected seq {} (an event is missing)",
                            row.id,
                            row.seq,
                            seq + 1
                        ));
                    }
                    hash.clone()
                }
                _ => {
                    state_rows += finish_subject(conn, &last, &heads, &mut expected, report)?;
                    if row.seq != 1 {
                        report.problems.push(format!(
                            "subject {} event {} (seq {}): the chain does not start at seq 1",
                            name(event),
                            row.id,
                            row.seq
                        ));
                    }
                    GENESIS.to_owned()
                }
            };
            check_event(event, &prev, hashes, keys, &mut report.problems);
            expect_state(event, &mut expected);
            // The subject's name as the events still hold it (its first event may be erased
            // by retention of nothing, but erasure clears them all at once).
            let who = match &last {
                Some((key, _, _, who)) if *key == row.subject_key && event.erased() => who.clone(),
                _ => name(event),
            };
            last = Some((row.subject_key.clone(), row.seq, row.chain_hash.clone(), who));
        }
        bar.inc(batch.len() as u64);
    }
    state_rows += finish_subject(conn, &last, &heads, &mut expected, report)?;
    let all_state_rows: i64 =
        crate::db::schema::subject_documents::table.select(diesel::dsl::count_star()).get_result(conn)?;
    if usize::try_from(all_state_rows).unwrap_or(usize::MAX) > state_rows {
        report.problems.push(format!(
            "{} status rows belong to subjects with no events (the status answer would be unfounded)",
            all_state_rows - i64::try_from(state_rows).unwrap_or(0)
        ));
    }
    if heads.len() > report.subjects {
        report
            .problems
            .push(format!("{} chain heads have no events (events were deleted)", heads.len() - report.subjects));
    }
    Ok(())
}

/// How a subject is named in a problem: its id while held, else the start of its key.
fn name(event: &Event) -> String {
    match event.subject() {
        Some(id) => format!("{id:?}"),
        None => format!("#{} (erased)", event.row.subject_key.get(..12).unwrap_or(&event.row.subject_key)),
    }
}

/// Closes one subject: its status rows against its events, its head against its last event.
/// Returns how many status rows it has.
fn finish_subject(
    conn: &mut DbConnection,
    last: &Option<(String, i64, String, String)>,
    heads: &HashMap<String, (i64, String)>,
    expected: &mut Expected,
    report: &mut Report,
) -> Result<usize, DbError> {
    let Some((key, seq, hash, who)) = last else { return Ok(0) };
    let rows = crate::db::ledger::states_of(conn, key)?;
    for row in &rows {
        let stored = Row {
            state: row.state.clone(),
            version: row.version,
            covers: row.covers.clone(),
            highest: row.highest_accepted,
            accepted: row.accepted_covers.clone().zip(row.accepted_at),
        };
        match expected.remove(&row.document) {
            Some(want) if want == stored => {}
            Some(want)
                if (&want.state, want.version, &want.covers) == (&stored.state, stored.version, &stored.covers) =>
            {
                let version = |v: Option<i32>| v.map_or("none".to_owned(), |v| format!("v{v}"));
                if want.highest != stored.highest {
                    report.problems.push(format!(
                        "subject {who}: its status for {} says the newest version accepted is {}, but its events say {}",
                        row.document,
                        version(stored.highest),
                        version(want.highest)
                    ));
                }
                if want.accepted != stored.accepted {
                    let acceptance = |a: &Option<(String, chrono::NaiveDateTime)>| {
                        a.as_ref().map_or("none".to_owned(), |(c, at)| format!("{c} at {at}"))
                    };
                    report.problems.push(format!(
                        "subject {who}: its status for {} says the latest acceptance is {}, but its events say {}",
                        row.document,
                        acceptance(&stored.accepted),
                        acceptance(&want.accepted)
                    ));
                }
            }
            Some(want) => report.problems.push(format!(
                "subject {who}: its status for {} says {} v{}, but its events say {} v{}",
                row.document,
                row.state,
                row.version.unwrap_or(0),
                want.state,
                want.version.unwrap_or(0)
            )),
            None => report
                .problems
                .push(format!("subject {who}: has a status for {} that no event of its explains", row.document)),
        }
    }
    for document in expected.keys() {
        report.problems.push(format!("subject {who}: its events decide {document}, but it has no status for it"));
    }
    expected.clear();
    report.subjects += 1;
    match heads.get(key) {
        Some((head_seq, head_hash)) if head_seq == seq && head_hash == hash => {}
        Some((head_seq, _)) => report.problems.push(format!(
            "subject {who}: its chain head says seq {head_seq}, but the last event is seq {seq} (events missing or added)"
        )),
        None => report.problems.push(format!("subject {who}: has events but no chain head")),
    }
    Ok(rows.len())
}

/// What an event does to its subject's status rows (as `ledger::record_once` writes them): an
/// acceptance or a withdrawal sets the agreement and each covered part; a decline, the
/// agreement; an erasure removes them all. An acceptance also raises the agreement's newest
/// version accepted, which nothing else changes.
fn expect_state(event: &Event, expected: &mut Expected) {
    let row = &event.row;
    if row.kind == "erased" {
        expected.clear();
        return;
    }
    let Some(document) = &row.document else { return };
    let Ok(covers) = serde_json::from_str::<Vec<Covered>>(&row.covers) else { return };
    let before = |expected: &Expected, document: &str| {
        expected.get(document).map_or((None, None), |e| (e.highest, e.accepted.clone()))
    };
    let (mut highest, mut accepted) = before(expected, document);
    if row.kind == "accepted" {
        highest = highest.max(row.version);
        accepted = Some((row.covers.clone(), row.recorded_at));
    }
    let state = Row { state: row.kind.clone(), version: row.version, covers: row.covers.clone(), highest, accepted };
    expected.insert(document.clone(), state);
    if row.kind != "declined" {
        for part in covers.iter().filter(|c| c.document.as_str() != document) {
            let (highest, accepted) = before(expected, part.document.as_str());
            let state = Row {
                state: row.kind.clone(),
                version: i32::try_from(part.version.get()).ok(),
                covers: row.covers.clone(),
                highest,
                accepted,
            };
            expected.insert(part.document.to_string(), state);
        }
    }
}

fn check_event(
    event: &Event,
    prev: &str,
    hashes: &HashMap<(String, i32), String>,
    keys: &super::SubjectKeys,
    problems: &mut Vec<String>,
) {
    let row = &event.row;
    let at = format!("subject {} event {} (seq {})", name(event), row.id, row.seq);
    if row.prev_hash != prev {
        problems.push(format!("{at}: prev_hash does not match the chain hash of the event before it"));
    }
    let covers: Vec<Covered> = match serde_json::from_str(&row.covers) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("{at}: covers cannot be read ({e})"));
            return;
        }
    };
    let recorded_at = chain_time(from_stored_time(row.recorded_at));
    let canonical = Canonical {
        covers: &covers,
        document: row.document.as_deref(),
        evidence: CanonicalEvidence {
            ip: row.ip_hash.as_deref(),
            locale: row.locale.as_deref(),
            user_agent: row.user_agent_hash.as_deref(),
        },
        kind: &row.kind,
        method: &row.method,
        recorded_at: &recorded_at,
        recorded_by: &row.recorded_by,
        seq: row.seq,
        subject: &row.subject_hash,
        version: row.version,
    };
    if chain_hash(&row.prev_hash, &canonical) != row.chain_hash {
        problems.push(format!("{at}: chain_hash does not match the event's contents (the event was altered)"));
    }
    // Personal values still held must be the ones the chain committed to.
    if let Some(p) = &event.personal {
        if salted(&p.salt, "subject", &p.subject) != row.subject_hash {
            problems.push(format!("{at}: its stored subject id is not the one the chain committed to"));
        }
        if keys.key_of(&p.subject) != row.subject_key {
            problems.push(format!(
                "{at}: it is filed under another subject's key (events were moved between subjects, or ASSENT_SECRET differs from the servers')"
            ));
        }
        let opened = |field: &str, value: &Option<String>| {
            value.as_deref().zip(p.evidence_salt.as_deref()).map(|(v, s)| salted(s, field, v))
        };
        if p.evidence_salt.is_some()
            && (opened("ip", &p.ip) != row.ip_hash || opened("user_agent", &p.user_agent) != row.user_agent_hash)
        {
            problems.push(format!("{at}: its stored IP address or user agent is not what the chain committed to"));
        }
        if p.evidence_salt.is_none() && (p.ip.is_some() || p.user_agent.is_some()) {
            problems.push(format!("{at}: holds evidence without the salt of its hashes"));
        }
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

/// Complete subtrees from the left, as leaves stream in: enough to give the root at any size.
#[derive(Default)]
struct Frontier {
    stack: Vec<(u64, Hash)>,
    leaves: u64,
}

impl Frontier {
    /// Adds the next leaf; `completed` gets every subtree it completes, as `(level, index,
    /// hash)`, from the leaf itself (level 0) up.
    fn push(&mut self, leaf: Hash, completed: &mut Vec<(u32, u64, Hash)>) {
        let index = self.leaves;
        self.leaves += 1;
        let (mut size, mut hash, mut level) = (1u64, leaf, 0u32);
        completed.push((0, index, hash));
        while let Some(&(top, left)) = self.stack.last() {
            if top != size {
                break;
            }
            self.stack.pop();
            hash = tree::node_hash(&left, &hash);
            size *= 2;
            level += 1;
            completed.push((level, index >> level, hash));
        }
        self.stack.push((size, hash));
    }

    fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut root)) = iter.next() else { return tree::empty_root() };
        for (_, left) in iter {
            root = tree::node_hash(left, &root);
        }
        root
    }
}

fn check_log(
    conn: &mut DbConnection,
    version_leaves: &HashMap<i64, (String, String)>,
    saved: &[(String, String)],
    verifier: &NoteVerifier,
    bar: &indicatif::ProgressBar,
    report: &mut Report,
) -> Result<(), DbError> {
    let head = crate::log::head(conn)?;
    report.queued = log_rows::queue_len(conn)?;
    // Saved checkpoints, opened and sorted by size: each root is compared as the walk passes it.
    let mut checkpoints = Vec::new();
    for (name, text) in saved {
        match open_checkpoint(text, verifier) {
            Ok(cp) => checkpoints.push((name.clone(), cp)),
            Err(e) => report.problems.push(format!("checkpoint {name}: {e}")),
        }
    }
    report.checkpoints = checkpoints.len();
    checkpoints.sort_by_key(|(_, cp)| cp.size);
    let mut pending = checkpoints.iter().peekable();
    let mut frontier = Frontier::default();
    let mut at_size = |frontier: &Frontier, size: u64, report: &mut Report| {
        while let Some((name, cp)) = pending.next_if(|(_, cp)| cp.size == size) {
            if frontier.root() != cp.root {
                report.problems.push(format!(
                    "checkpoint {name}: the log's first {size} leaves no longer hash to its root: a leaf below index {size} was changed, removed or reordered since it was saved{}",
                    if size == 0 { String::new() } else { format!(" (leaves 0 to {})", size - 1) }
                ));
            }
        }
    };
    at_size(&frontier, 0, report);
    let mut seen_versions = 0usize;
    let mut next: u64 = 0;
    loop {
        let start = i64::try_from(next).unwrap_or(i64::MAX);
        let page = log_rows::leaves(conn, start, start.saturating_add(BATCH))?;
        if page.is_empty() {
            break;
        }
        // Every stored subtree this page completes, level by level.
        let end = next + page.len() as u64;
        let mut stored: HashMap<(u32, u64), String> = HashMap::new();
        for level in 0..64u32 {
            let (first, last) = (next >> level, end >> level);
            if last == first && level > 0 {
                break;
            }
            let rows = log_rows::nodes_at(conn, level, first, i64::try_from(last - first).unwrap_or(i64::MAX))?;
            stored.extend(rows.into_iter().map(|(idx, hash)| ((level, u64::try_from(idx).unwrap_or(u64::MAX)), hash)));
        }
        let mut completed = Vec::new();
        let event_ids: Vec<i64> = page.iter().filter_map(|l| l.event_id).collect();
        let events = log_rows::event_heads(conn, &event_ids)?;
        for leaf in &page {
            if leaf.idx != i64::try_from(next).unwrap_or(-1) {
                report.problems.push(format!("log: leaf {next} is missing (the next stored leaf is {})", leaf.idx));
                return Ok(());
            }
            let hash = tree::leaf_hash(leaf.data.as_bytes());
            let expected = match (leaf.event_id, leaf.version_id) {
                (Some(id), None) => match events.get(&id) {
                    Some((kind, chain)) => Some((format!("event {id}"), crate::log::event_leaf(kind, chain))),
                    None => {
                        report.problems.push(format!("log: leaf {next} commits to event {id}, which is missing"));
                        None
                    }
                },
                (None, Some(id)) => {
                    seen_versions += 1;
                    match version_leaves.get(&id) {
                        Some((name, data)) => Some((format!("version {name}"), data.clone())),
                        None => {
                            report.problems.push(format!("log: leaf {next} commits to version {id}, which is missing"));
                            None
                        }
                    }
                }
                _ => {
                    report.problems.push(format!("log: leaf {next} names neither one event nor one version"));
                    None
                }
            };
            if let Some((name, expected)) = expected
                && expected != leaf.data
            {
                let what = match leaf.version_id {
                    Some(_) => "its stored HTML, contents or front matter (title, dates, flags, summary) changed",
                    None => "the event was changed",
                };
                report.problems.push(format!("log: leaf {next} ({name}) no longer matches what it commits to: {what}"));
            }
            completed.clear();
            frontier.push(hash, &mut completed);
            for &(level, idx, hash) in &completed {
                if stored.get(&(level, idx)).map(String::as_str) != Some(crate::log::to_hex(&hash).as_str()) {
                    report.problems.push(if level == 0 {
                        format!("log: leaf {next}: its data does not match its stored hash")
                    } else {
                        format!(
                            "log: the stored hash of leaves {} to {} (level {level}, index {idx}) is wrong: proofs through it would fail",
                            idx << level,
                            ((idx + 1) << level) - 1
                        )
                    });
                }
            }
            next += 1;
            at_size(&frontier, next, report);
        }
        bar.set_position(next);
    }
    report.leaves = next;
    // Exactly the complete subtrees are stored: 2n - popcount(n) of them.
    let expected_nodes = 2 * next - u64::from(next.count_ones());
    let stored_nodes = log_rows::node_count(conn)?;
    if u64::try_from(stored_nodes).ok() != Some(expected_nodes) {
        report.problems.push(format!(
            "log: {stored_nodes} subtree hashes are stored, but a log of {next} leaves has {expected_nodes}"
        ));
    }
    for (name, cp) in pending {
        report.problems.push(format!(
            "checkpoint {name}: covers {} leaves, but the log has {next}: leaves from index {next} on were removed",
            cp.size
        ));
    }
    if next != head.size {
        report.problems.push(format!("log: its state says {} leaves, but {next} are stored", head.size));
    } else if frontier.root() != head.root {
        report.problems.push("log: its stored root is not the root of its leaves".into());
    }
    if let Ok(stored_root) = crate::log::root_at(conn, next)
        && stored_root != frontier.root()
    {
        report.problems.push("log: its stored subtree hashes do not match its leaves (proofs would be wrong)".into());
    }
    // Every version and every event is in the log, or waiting in its queue.
    let queued = log_rows::queued(conn, i64::MAX)?;
    let queued_versions = queued.iter().filter(|(_, s)| matches!(s, Source::Version(_))).count();
    if seen_versions + queued_versions != version_leaves.len() {
        report.problems.push(format!(
            "log: {} versions are stored but {} are in the log or its queue",
            version_leaves.len(),
            seen_versions + queued_versions
        ));
    }
    let event_leaves: i64 = crate::db::schema::log_leaves::table
        .filter(crate::db::schema::log_leaves::event_id.is_not_null())
        .select(diesel::dsl::count_star())
        .get_result(conn)?;
    let queued_events = i64::try_from(queued.len() - queued_versions).unwrap_or(0);
    let events = crate::db::ledger::count_events(conn)?;
    if event_leaves + queued_events != events {
        report.problems.push(format!(
            "log: {events} events are stored but {} are in the log or its queue",
            event_leaves + queued_events
        ));
    }
    Ok(())
}
