//! `assent verify`: recompute every subject's hash chain, every stored version's content hash
//! and leaf, the whole log, and each saved checkpoint's root; name whatever does not match.
//! It streams: memory holds a page of events or leaves, with the chain heads and status rows of
//! the subjects that page reaches, and the versions. The log and each share of the subjects'
//! chains are walked at once, on threads with a connection each ([`CONNECTIONS`]).

use std::collections::HashMap;

use diesel::prelude::*;

use super::chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time, salted};
use crate::db::ledger::{Event, StateRow, count_heads_and_states, events_after, heads_between, states_between};
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

/// [`BATCH`], or `ASSENT_VERIFY_PAGE` (1 to 100,000): tests make pages of a few rows, so that
/// subjects and subtrees straddle pages.
fn page_rows() -> i64 {
    let Ok(text) = std::env::var("ASSENT_VERIFY_PAGE") else { return BATCH };
    match text.parse() {
        Ok(n) if (1..=100_000).contains(&n) => n,
        _ => {
            tracing::warn!(value = %text, "ASSENT_VERIFY_PAGE is not a number from 1 to 100000; reading {BATCH} rows a page");
            BATCH
        }
    }
}

/// What a share's walk counted, to be compared once all shares are done.
#[derive(Default)]
struct Counted {
    /// Chain heads and status rows stored for the share's key range.
    heads: i64,
    state_rows: i64,
    /// Status rows that belong to subjects whose events were walked.
    state_rows_walked: usize,
}

/// The subjects, in shares whose chains are walked at once, as key ranges `from..until`.
/// Subject keys are keyed hashes (bounds in hex, compared as the stored bytes), so a first byte
/// splits the ledger evenly.
const SHARES: [(&str, Option<&str>); 2] = [("", Some("80")), ("80", None)];

/// The connections [`verify`] holds at once: the log's walk and each share's.
pub const CONNECTIONS: u32 = 1 + SHARES.len() as u32;

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
    let page = page_rows();
    // Each walk reads one snapshot of its own, so that writes committed meanwhile (a server in
    // use) cannot look like a mismatch; each compares only what it read in its snapshot.
    let (shares, log) = std::thread::scope(|s| {
        let shares: Vec<_> = SHARES
            .iter()
            .enumerate()
            .map(|(i, &share)| {
                let events_bar = &events_bar;
                s.spawn(move || -> Result<(Report, Counted), DbError> {
                    db.get()?.snapshot(|conn| {
                        let mut report = Report::default();
                        let (hashes, _) = check_versions(conn, &mut Report::default())?;
                        let counted = check_chains(conn, &hashes, keys, share, page, events_bar, &mut report)?;
                        if i == 0 {
                            report.problems.extend(crate::db::coverage::recount_mismatches(conn)?);
                        }
                        Ok((report, counted))
                    })
                })
            })
            .collect();
        let walked = conn.snapshot(|conn| {
            let mut log = Report::default();
            let (_, version_leaves) = check_versions(conn, &mut log)?;
            check_log(conn, &version_leaves, saved, verifier, page, &leaves_bar, &mut log)?;
            Ok(log)
        });
        (shares.into_iter().map(|walk| walk.join()).collect::<Vec<_>>(), walked)
    });
    events_bar.finish_and_clear();
    leaves_bar.finish_and_clear();
    let mut counted = Counted::default();
    for share in shares {
        let (chains, share) = share.map_err(|_| DbError::Task("a chain walk stopped unexpectedly".into()))??;
        report.subjects += chains.subjects;
        report.events += chains.events;
        report.problems.extend(chains.problems);
        counted.heads += share.heads;
        counted.state_rows += share.state_rows;
        counted.state_rows_walked += share.state_rows_walked;
    }
    let walked = i64::try_from(counted.state_rows_walked).unwrap_or(i64::MAX);
    if counted.state_rows > walked {
        report.problems.push(format!(
            "{} status rows belong to subjects with no events (the status answer would be unfounded)",
            counted.state_rows - walked
        ));
    }
    let subjects = i64::try_from(report.subjects).unwrap_or(i64::MAX);
    if counted.heads > subjects {
        report.problems.push(format!("{} chain heads have no events (events were deleted)", counted.heads - subjects));
    }
    let log = log?;
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

/// The chain heads and status rows of the subjects a page of events reaches, by key.
#[derive(Default)]
struct Around {
    heads: HashMap<String, (i64, String)>,
    states: HashMap<String, Vec<StateRow>>,
}

/// The subject whose events are being walked: its key, last seq and chain hash, its name in
/// problems, and what its events say its status rows hold.
struct Walking {
    key: String,
    seq: i64,
    hash: String,
    who: String,
    expected: Expected,
}

fn check_chains(
    conn: &mut DbConnection,
    hashes: &HashMap<(String, i32), String>,
    keys: &super::SubjectKeys,
    (from, until): (&str, Option<&str>),
    page: i64,
    bar: &indicatif::ProgressBar,
    report: &mut Report,
) -> Result<Counted, DbError> {
    let mut covers = CoversSeen::default();
    let mut filed = FiledUnder::default();
    let mut walking: Option<Walking> = None;
    let mut around = Around::default();
    let mut state_rows = 0usize;
    let mut cursor = (from.to_owned(), i64::MIN);
    loop {
        let batch = events_after(conn, (&cursor.0, cursor.1), until, page)?;
        let Some(tail) = batch.last() else { break };
        // From the subject the cursor stood on (which may still be walking) to the page's last.
        around = Around {
            heads: heads_between(conn, &cursor.0, &tail.row.subject_key)?,
            states: states_between(conn, &cursor.0, &tail.row.subject_key)?,
        };
        cursor = (tail.row.subject_key.clone(), tail.row.seq);
        for event in &batch {
            let row = &event.row;
            report.events += 1;
            let walking = match &mut walking {
                Some(w) if w.key == row.subject_key => {
                    if row.seq != w.seq + 1 {
                        report.problems.push(format!(
                            "subject {} event {} (seq {}): expected seq {} (an event is missing)",
                            w.who,
                            row.id,
                            row.seq,
                            w.seq + 1
                        ));
                    }
                    w
                }
                _ => {
                    if let Some(done) = walking.take() {
                        state_rows += finish_subject(done, &mut around, report);
                    }
                    if row.seq != 1 {
                        report.problems.push(format!(
                            "subject {} event {} (seq {}): the chain does not start at seq 1",
                            name(event),
                            row.id,
                            row.seq
                        ));
                    }
                    walking.insert(Walking {
                        key: row.subject_key.clone(),
                        seq: 0,
                        hash: GENESIS.to_owned(),
                        who: name(event),
                        expected: Expected::new(),
                    })
                }
            };
            let parsed = match &row.covers {
                Some(text) => covers.check(text, hashes),
                None => Err("its covers_id names no stored covers text"),
            };
            check_event(event, &walking.hash, parsed, hashes, keys, &mut filed, &mut report.problems);
            expect_state(event, parsed.ok().map(|p| p.covers.as_slice()), &mut walking.expected);
            // The subject's name as the events still hold it (erasure clears them all at once).
            if !event.erased() {
                walking.who = name(event);
            }
            walking.seq = row.seq;
            walking.hash.clone_from(&row.chain_hash);
        }
        bar.inc(batch.len() as u64);
    }
    if let Some(done) = walking.take() {
        state_rows += finish_subject(done, &mut around, report);
    }
    let (heads, stored_state_rows) = count_heads_and_states(conn, from, until)?;
    Ok(Counted { heads, state_rows: stored_state_rows, state_rows_walked: state_rows })
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
fn finish_subject(done: Walking, around: &mut Around, report: &mut Report) -> usize {
    let Walking { key, seq, hash, who, mut expected } = done;
    let rows = around.states.remove(&key).unwrap_or_default();
    for row in &rows {
        let stored = Row {
            state: row.state.clone(),
            version: row.version,
            covers: row
                .covers
                .clone()
                .unwrap_or_else(|| format!("a covers_id ({}) that names no stored text", row.covers_id)),
            highest: row.highest_accepted,
            accepted: match (&row.accepted_covers, row.accepted_covers_id) {
                (None, Some(id)) => Some(format!("a covers_id ({id}) that names no stored text")),
                (text, _) => text.clone(),
            }
            .zip(row.accepted_at),
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
    report.subjects += 1;
    match around.heads.remove(&key) {
        Some((head_seq, head_hash)) if head_seq == seq && head_hash == hash => {}
        Some((head_seq, _)) => report.problems.push(format!(
            "subject {who}: its chain head says seq {head_seq}, but the last event is seq {seq} (events missing or added)"
        )),
        None => report.problems.push(format!("subject {who}: has events but no chain head")),
    }
    rows.len()
}

/// What events cover, read once per distinct text: a ledger holds few of them (one per set of
/// versions accepted together), and most of a walk's time went into parsing them again.
#[derive(Default)]
struct CoversSeen {
    seen: HashMap<String, Result<Parsed, String>>,
    /// The length of the texts kept.
    bytes: usize,
}

struct Parsed {
    covers: Vec<Covered>,
    /// Whether every version named is stored, with that hash.
    stored: bool,
}

impl CoversSeen {
    /// At most this many texts, of at most this many bytes in all, are kept (a forged ledger
    /// could make every one different, and long).
    const KEPT: usize = 4_096;
    const KEPT_BYTES: usize = 4 << 20;

    /// The covers parsed, or why the text cannot be read.
    fn check(&mut self, text: &str, hashes: &HashMap<(String, i32), String>) -> Result<&Parsed, &str> {
        if !self.seen.contains_key(text) {
            if self.seen.len() >= Self::KEPT || self.bytes >= Self::KEPT_BYTES {
                self.seen.clear();
                self.bytes = 0;
            }
            self.bytes += text.len();
            let parsed = serde_json::from_str::<Vec<Covered>>(text).map_err(|e| e.to_string()).map(|covers| {
                let stored = covers.iter().all(|c| {
                    let version = i32::try_from(c.version.get()).unwrap_or(i32::MAX);
                    hashes.get(&(c.document.to_string(), version)) == Some(&c.sha256)
                });
                Parsed { covers, stored }
            });
            self.seen.insert(text.to_owned(), parsed);
        }
        match self.seen.get(text) {
            Some(Ok(parsed)) => Ok(parsed),
            Some(Err(e)) => Err(e),
            None => Err("not kept"),
        }
    }
}

/// The last subject id whose key was computed, and the key: events come a subject at a time.
#[derive(Default)]
struct FiledUnder {
    subject: String,
    key: String,
}

impl FiledUnder {
    fn key(&mut self, keys: &super::SubjectKeys, subject: &str) -> &str {
        if self.subject != subject || self.key.is_empty() {
            self.key = keys.key_of(subject);
            subject.clone_into(&mut self.subject);
        }
        &self.key
    }
}

/// What an event does to its subject's status rows (as `ledger::record_once` writes them): an
/// acceptance or a withdrawal sets the agreement and each covered part; a decline, the
/// agreement; an erasure removes them all. An acceptance also raises the agreement's newest
/// version accepted, which nothing else changes.
fn expect_state(event: &Event, covers: Option<&[Covered]>, expected: &mut Expected) {
    let row = &event.row;
    if row.kind == "erased" {
        expected.clear();
        return;
    }
    // Covers that cannot be read are a problem of their own (see `check_event`).
    let (Some(document), Some(covers), Some(text)) = (&row.document, covers, &row.covers) else { return };
    let before = |expected: &Expected, document: &str| {
        expected.get(document).map_or((None, None), |e| (e.highest, e.accepted.clone()))
    };
    let (mut highest, mut accepted) = before(expected, document);
    if row.kind == "accepted" {
        highest = highest.max(row.version);
        accepted = Some((text.clone(), row.recorded_at));
    }
    let state = Row { state: row.kind.clone(), version: row.version, covers: text.clone(), highest, accepted };
    expected.insert(document.clone(), state);
    if row.kind != "declined" {
        for part in covers.iter().filter(|c| c.document.as_str() != document) {
            let (highest, accepted) = before(expected, part.document.as_str());
            let state = Row {
                state: row.kind.clone(),
                version: i32::try_from(part.version.get()).ok(),
                covers: text.clone(),
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
    parsed: Result<&Parsed, &str>,
    hashes: &HashMap<(String, i32), String>,
    keys: &super::SubjectKeys,
    filed: &mut FiledUnder,
    problems: &mut Vec<String>,
) {
    let row = &event.row;
    let at = || format!("subject {} event {} (seq {})", name(event), row.id, row.seq);
    if row.prev_hash != prev {
        problems.push(format!("{}: prev_hash does not match the chain hash of the event before it", at()));
    }
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(format!("{}: covers cannot be read ({e})", at()));
            return;
        }
    };
    let covers = &parsed.covers;
    let recorded_at = chain_time(from_stored_time(row.recorded_at));
    let canonical = Canonical {
        covers,
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
        problems.push(format!("{}: chain_hash does not match the event's contents (the event was altered)", at()));
    }
    // Personal values still held must be the ones the chain committed to.
    if let Some(p) = &event.personal {
        if salted(&p.salt, "subject", &p.subject) != row.subject_hash {
            problems.push(format!("{}: its stored subject id is not the one the chain committed to", at()));
        }
        if filed.key(keys, &p.subject) != row.subject_key {
            problems.push(format!(
                "{}: it is filed under another subject's key (events were moved between subjects, or ASSENT_SECRET differs from the servers')",
                at()
            ));
        }
        let opened = |field: &str, value: &Option<String>| {
            value.as_deref().zip(p.evidence_salt.as_deref()).map(|(v, s)| salted(s, field, v))
        };
        if p.evidence_salt.is_some()
            && (opened("ip", &p.ip) != row.ip_hash || opened("user_agent", &p.user_agent) != row.user_agent_hash)
        {
            problems.push(format!("{}: its stored IP address or user agent is not what the chain committed to", at()));
        }
        if p.evidence_salt.is_none() && (p.ip.is_some() || p.user_agent.is_some()) {
            problems.push(format!("{}: holds evidence without the salt of its hashes", at()));
        }
    }
    if !parsed.stored {
        problems.extend(covers_problems(covers, hashes).into_iter().map(|p| format!("{}: {p}", at())));
    }
}

/// What is wrong with the versions an event covers.
fn covers_problems(covers: &[Covered], hashes: &HashMap<(String, i32), String>) -> Vec<String> {
    let mut problems = Vec::new();
    for c in covers {
        let version = i32::try_from(c.version.get()).unwrap_or(i32::MAX);
        match hashes.get(&(c.document.to_string(), version)) {
            Some(sha) if *sha == c.sha256 => {}
            Some(sha) => problems.push(format!(
                "covers {} v{} with sha256 {}, but that version's sha256 is {sha}",
                c.document, c.version, c.sha256
            )),
            None => problems.push(format!("covers {} v{}, which is not stored", c.document, c.version)),
        }
    }
    problems
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
    page: i64,
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
        let leaves = log_rows::leaves(conn, start, start.saturating_add(page))?;
        if leaves.is_empty() {
            break;
        }
        // Every stored subtree this page completes, level by level.
        let end = next + leaves.len() as u64;
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
        let event_ids: Vec<i64> = leaves.iter().filter_map(|l| l.event_id).collect();
        let events = log_rows::event_heads(conn, &event_ids)?;
        for leaf in &leaves {
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
                        match leaf.event_id.filter(|_| !leaf.stored) {
                            // The leaf is written out from the event's row: the row changed.
                            Some(id) if events.contains_key(&id) => format!(
                                "log: leaf {next} (event {id}) no longer matches what it commits to: the event was changed"
                            ),
                            Some(_) => continue,
                            None => format!("log: leaf {next}: its data does not match its stored hash"),
                        }
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
