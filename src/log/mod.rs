//! The log: one append-only Merkle tree (RFC 9162 hashing) over every event and every published
//! version, and signed checkpoints of it, so that what Assent recorded can be checked against a
//! small note saved somewhere the database's owner cannot edit.
//!
//! Sequencing: the group-commit lanes (`ledger::lane`, both databases) integrate each batch's
//! events inside the batch's own transaction ([`integrate_placing`]). Every other event (on
//! PostgreSQL: the consent page's answers, erasures, the CLI's) and every version is put in
//! `log_queue` in the transaction that commits it, and integrated right after, on the writer's
//! own connection ([`ensure_integrated`]; `sync` and every start integrate what is queued). Were
//! the lanes to have no thread, a decision would wait for an integration round that started after
//! its commit ([`await_integrated`]). Either way a receipt is answered only once its leaf is in
//! the tree, so the newest checkpoint covers it.

pub mod note;
pub mod tree;

use std::collections::HashMap;

use serde::Serialize;

use crate::db::log::{self as rows, Source, VersionFields};
use crate::db::{DbConnection, DbError};
use tree::{Hash, NodeId, Nodes};

/// Leaves read per query while integrating or verifying.
const BATCH: i64 = 5_000;

/// Most leaves `GET /log/leaves` returns at once.
pub const MAX_LEAVES: u64 = 1_000;

/// An event's leaf: `{"chain_hash": …, "type": "event"}`, or `"erasure"` for an erasure.
#[derive(Serialize)]
struct EventLeaf<'a> {
    chain_hash: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// A version's leaf. Fields in alphabetical order: serde writes them in declaration order, and
/// canonical JSON (RFC 8785) wants them sorted.
#[derive(Serialize)]
struct VersionLeaf<'a> {
    acceptance: &'a str,
    /// Present only when the front matter names audiences (leaves of versions without them,
    /// published before audiences existed, are unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    audiences: Option<Vec<&'a str>>,
    document: &'a str,
    effective: String,
    html_sha256: String,
    locale: Option<&'a str>,
    material: bool,
    part_of: Option<&'a str>,
    published: String,
    /// Seconds; present only when the front matter sets `reaccept_after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reaccept_after: Option<i64>,
    source_sha256: &'a str,
    summary: Option<&'a str>,
    title: &'a str,
    toc_sha256: String,
    #[serde(rename = "type")]
    kind: &'static str,
    version: i32,
}

fn to_json(value: &impl Serialize) -> String {
    // Strings, numbers and booleans only: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The leaf bytes of an event of `kind` with `chain_hash`.
pub fn event_leaf(kind: &str, chain_hash: &str) -> String {
    let kind = if kind == "erased" { "erasure" } else { "event" };
    to_json(&EventLeaf { chain_hash, kind })
}

/// The leaf bytes of a stored version.
pub fn version_leaf(v: &VersionFields) -> String {
    to_json(&VersionLeaf {
        acceptance: &v.acceptance,
        audiences: v.audiences.as_deref().map(|a| a.split(',').collect()),
        document: &v.document,
        effective: crate::db::from_stored_time(v.effective).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        html_sha256: crate::domain::sha256_hex(v.html.as_bytes()),
        locale: (!v.locale.is_empty()).then_some(v.locale.as_str()),
        material: v.material,
        part_of: v.part_of.as_deref(),
        published: crate::db::from_stored_time(v.published_at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        reaccept_after: v.reaccept_after,
        source_sha256: &v.sha256,
        summary: v.summary.as_deref(),
        title: &v.title,
        toc_sha256: crate::domain::sha256_hex(v.toc.as_bytes()),
        kind: "version",
        version: v.version,
    })
}

pub fn to_hex(h: &Hash) -> String {
    crate::domain::hex32(h)
}

pub fn from_hex(s: &str) -> Result<Hash, DbError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| DbError::Corrupt(format!("`{s}` is not a SHA-256 hash")))?;
    Ok(out)
}

/// Runs a tree computation against the stored nodes: once to learn which nodes it needs, then
/// with them loaded (`overlay` holds nodes written in this transaction and not yet read back).
fn with_nodes<T>(
    conn: &mut DbConnection,
    overlay: &HashMap<NodeId, Hash>,
    f: impl Fn(&mut dyn Nodes) -> T,
) -> Result<T, DbError> {
    let mut needs = tree::Needs::default();
    f(&mut needs);
    let missing: Vec<NodeId> = needs.0.into_iter().filter(|id| !overlay.contains_key(id)).collect();
    let mut nodes = overlay.clone();
    for (id, hash) in rows::nodes(conn, &missing)? {
        nodes.insert(id, from_hex(&hash)?);
    }
    if let Some(id) = missing.iter().find(|id| !nodes.contains_key(id)) {
        return Err(DbError::Corrupt(format!("the log has no stored node at level {} index {}", id.0, id.1)));
    }
    Ok(f(&mut nodes))
}

/// The tree's size and root after integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// Moves everything queued into the tree, then `events` (committed in this same transaction and
/// not queued: a lane integrates its own batch). Call inside a transaction.
pub fn integrate(conn: &mut DbConnection) -> Result<TreeHead, DbError> {
    integrate_with(conn, &[])
}

/// As [`integrate`], then `events` in the order given.
pub fn integrate_with(conn: &mut DbConnection, events: &[i64]) -> Result<TreeHead, DbError> {
    integrate_placing(conn, events).map(|(head, _)| head)
}

/// As [`integrate_with`], also giving back the leaf index of each event it placed.
pub(crate) fn integrate_placing(
    conn: &mut DbConnection,
    events: &[i64],
) -> Result<(TreeHead, HashMap<i64, i64>), DbError> {
    let mut placed = HashMap::new();
    let (size, root) = rows::lock_state(conn)?;
    let mut size = u64::try_from(size).map_err(|_| DbError::Corrupt("negative log size".into()))?;
    let start = size;
    let mut written: HashMap<NodeId, Hash> = HashMap::new();
    let mut extra = events.chunks(usize::try_from(BATCH).unwrap_or(usize::MAX));
    loop {
        let queued = rows::queued(conn, BATCH)?;
        let sources: Vec<Source> = if queued.is_empty() {
            match extra.next() {
                Some(chunk) => chunk.iter().map(|&id| Source::Event(id)).collect(),
                None => break,
            }
        } else {
            queued.iter().map(|(_, s)| *s).collect()
        };
        append_sources(conn, &sources, start, &mut size, &mut written, &mut placed)?;
        if !queued.is_empty() {
            rows::dequeue(conn, &queued.iter().map(|(id, _)| *id).collect::<Vec<_>>())?;
        }
    }
    if size == start {
        return Ok((TreeHead { size, root: from_hex(&root)? }, placed));
    }
    let root = with_nodes(conn, &written, |nodes| tree::root(nodes, size))?;
    rows::set_state(conn, i64::try_from(size).unwrap_or(i64::MAX), &to_hex(&root))?;
    Ok((TreeHead { size, root }, placed))
}

/// Appends the leaves of `sources` at `size` on, writing each leaf and the subtrees it
/// completes (in two statements per batch).
fn append_sources(
    conn: &mut DbConnection,
    sources: &[Source],
    start: u64,
    size: &mut u64,
    written: &mut HashMap<NodeId, Hash>,
    placed: &mut HashMap<i64, i64>,
) -> Result<(), DbError> {
    let event_ids: Vec<i64> =
        sources.iter().filter_map(|s| if let Source::Event(id) = s { Some(*id) } else { None }).collect();
    let version_ids: Vec<i64> =
        sources.iter().filter_map(|s| if let Source::Version(id) = s { Some(*id) } else { None }).collect();
    let events = rows::event_heads(conn, &event_ids)?;
    let versions = rows::version_fields(conn, &version_ids)?;
    // Left siblings that exist from before this batch.
    let before: Vec<NodeId> = (*size..*size + sources.len() as u64)
        .flat_map(tree::append_needs)
        .filter(|&(level, idx)| (idx + 1) << level <= start)
        .filter(|id| !written.contains_key(id))
        .collect();
    for (id, hash) in rows::nodes(conn, &before)? {
        written.insert(id, from_hex(&hash)?);
    }
    let mut leaves = Vec::with_capacity(sources.len());
    let mut nodes = Vec::with_capacity(sources.len() * 2);
    for source in sources {
        let data = match *source {
            Source::Event(id) => {
                let (kind, hash) =
                    events.get(&id).ok_or_else(|| DbError::Corrupt(format!("event {id} to log is missing")))?;
                event_leaf(kind, hash)
            }
            Source::Version(id) => version_leaf(
                versions.get(&id).ok_or_else(|| DbError::Corrupt(format!("version {id} to log is missing")))?,
            ),
        };
        let index = i64::try_from(*size).map_err(|_| DbError::Corrupt("log too large".into()))?;
        let mut missing = None;
        let created = tree::append(*size, tree::leaf_hash(data.as_bytes()), |id| {
            written.get(&id).copied().unwrap_or_else(|| {
                missing = Some(id);
                [0; 32]
            })
        });
        if let Some(id) = missing {
            return Err(DbError::Corrupt(format!("the log has no stored node at level {} index {}", id.0, id.1)));
        }
        if let Source::Event(id) = *source {
            placed.insert(id, index);
        }
        leaves.push((index, *source, data));
        for ((level, idx), hash) in created {
            nodes.push((level, idx, to_hex(&hash)));
            written.insert((level, idx), hash);
        }
        *size += 1;
    }
    rows::insert_leaves(conn, &leaves)?;
    // Half-way: the leaves are written, their subtree hashes and the new size are not.
    crate::crash::point("integrating");
    rows::insert_nodes(conn, &nodes)?;
    Ok(())
}

/// The tree as last integrated.
pub fn head(conn: &mut DbConnection) -> Result<TreeHead, DbError> {
    let (size, root) = rows::state(conn)?;
    Ok(TreeHead { size: u64::try_from(size).unwrap_or(0), root: from_hex(&root)? })
}

/// Integration rounds of one database in this process (PostgreSQL's decisions when the lanes
/// have no thread; each [`crate::db::Db`] has its own). One request at a time leads a round: it
/// integrates everything queued, by every server, in one transaction. The others wait for a round that started after their
/// commit, which has taken their events in, so a burst of decisions costs a round or two, not
/// one locked transaction each. The indexes the last rounds gave out are kept, so a waiting
/// request usually needs no query to learn its own.
#[derive(Default)]
pub struct Rounds {
    state: std::sync::Mutex<RoundState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct RoundState {
    started: u64,
    finished: u64,
    /// Event id → leaf index, from the last few rounds.
    recent: std::collections::VecDeque<HashMap<i64, i64>>,
}

/// How many rounds' indexes are kept.
const RECENT_ROUNDS: usize = 8;

/// Ends a round however its leader leaves it (an error, or a panic): the followers must wake.
struct RoundEnd<'a> {
    rounds: &'a Rounds,
    placed: HashMap<i64, i64>,
}

impl Drop for RoundEnd<'_> {
    fn drop(&mut self) {
        let mut state = self.rounds.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.finished += 1;
        if state.recent.len() == RECENT_ROUNDS {
            state.recent.pop_front();
        }
        state.recent.push_back(std::mem::take(&mut self.placed));
        self.rounds.done.notify_all();
    }
}

impl Rounds {
    /// Waits until a round that started after this call has finished, leading it (with
    /// `lead`, which integrates in a transaction and gives back the indexes it placed) if none
    /// runs. Returns the indexes of `event_ids` if the last rounds placed them all.
    fn join(
        &self,
        event_ids: &[i64],
        lead: impl FnOnce() -> Result<HashMap<i64, i64>, DbError>,
    ) -> Result<Option<HashMap<i64, i64>>, DbError> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = state.started + 1;
        while state.finished < mine {
            if state.started == state.finished {
                state.started += 1;
                drop(state);
                let mut end = RoundEnd { rounds: self, placed: HashMap::new() };
                // A failed round is reported to its leader; followers find their events
                // still missing and lead the next round themselves.
                end.placed = lead()?;
                drop(end);
                state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                break;
            }
            state = self.done.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let found: HashMap<i64, i64> = event_ids
            .iter()
            .filter_map(|id| state.recent.iter().rev().find_map(|placed| placed.get(id)).map(|&index| (*id, index)))
            .collect();
        Ok((found.len() == event_ids.len()).then_some(found))
    }
}

fn integrate_now(conn: &mut DbConnection) -> Result<HashMap<i64, i64>, DbError> {
    conn.write_transaction(|c| integrate_placing(c, &[]).map(|(_, placed)| placed))
}

/// The leaf index of each event, integrating first (in a transaction of its own) if any is not
/// in the tree yet. Call after the events committed. For the paths that are not hot (the CLI,
/// erasure, the consent page's answers, bulk loads); the lanes integrate inside their batch.
pub fn ensure_integrated(conn: &mut DbConnection, event_ids: &[i64]) -> Result<HashMap<i64, i64>, DbError> {
    let found = rows::event_indexes(conn, event_ids)?;
    if found.len() == event_ids.len() {
        return Ok(found);
    }
    integrate_now(conn)?;
    let found = rows::event_indexes(conn, event_ids)?;
    match event_ids.iter().find(|id| !found.contains_key(id)) {
        Some(id) => Err(DbError::Corrupt(format!("event {id} was committed but the log does not take it in"))),
        None => Ok(found),
    }
}

/// How long a committed decision keeps trying to get into the log before its request fails.
const INTEGRATION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The leaf index of each of `event_ids`, just committed, once a round of `db`'s has taken
/// them in. Holds a connection only to lead a round or to look: a request waiting for a round
/// leaves the pool to the requests still committing. A failed round (a lock timeout, a lost
/// connection) is retried, for the event is committed and an error would invite a client to
/// record it twice. Blocks; call from a blocking thread.
pub fn await_integrated(db: &crate::db::Db, event_ids: &[i64]) -> Result<HashMap<i64, i64>, DbError> {
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        let round = db.rounds().join(event_ids, || integrate_now(&mut *db.get()?));
        match round {
            Ok(Some(found)) => return Ok(found),
            // Another server's round took them in.
            Ok(None) => {
                let found = rows::event_indexes(&mut *db.get()?, event_ids)?;
                if found.len() == event_ids.len() {
                    return Ok(found);
                }
            }
            Err(e) if started.elapsed() < INTEGRATION_PATIENCE => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "integrating into the log failed; trying again");
                std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt.min(20))));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("{0}")]
    OutOfRange(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn check_size(size: u64, head: &TreeHead) -> Result<(), ProofError> {
    if size > head.size {
        return Err(ProofError::OutOfRange(format!("size {size} is beyond the tree, which has {} leaves", head.size)));
    }
    Ok(())
}

/// RFC 9162 inclusion proof of leaf `index` in the tree of `size`.
pub fn inclusion_proof(conn: &mut DbConnection, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    check_size(size, &head(conn)?)?;
    if index >= size {
        return Err(ProofError::OutOfRange(format!("index {index} is not below size {size}")));
    }
    Ok(with_nodes(conn, &HashMap::new(), |n| tree::inclusion_proof(n, index, size))?)
}

/// RFC 9162 consistency proof from the tree of `from` to that of `size`.
pub fn consistency_proof(conn: &mut DbConnection, from: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    check_size(size, &head(conn)?)?;
    if from > size {
        return Err(ProofError::OutOfRange(format!("from {from} is greater than size {size}")));
    }
    Ok(with_nodes(conn, &HashMap::new(), |n| tree::consistency_proof(n, from, size))?)
}

/// The root of the tree of `size`, from the stored nodes.
pub fn root_at(conn: &mut DbConnection, size: u64) -> Result<Hash, ProofError> {
    check_size(size, &head(conn)?)?;
    Ok(with_nodes(conn, &HashMap::new(), |n| tree::root(n, size))?)
}

/// Leaves `[start, end)`, at most [`MAX_LEAVES`].
pub fn leaves(conn: &mut DbConnection, start: u64, end: u64) -> Result<Vec<rows::LeafRow>, ProofError> {
    let head = head(conn)?;
    if start > end {
        return Err(ProofError::OutOfRange(format!("start {start} is greater than end {end}")));
    }
    check_size(end, &head)?;
    let end = end.min(start.saturating_add(MAX_LEAVES));
    let (start, end) = (i64::try_from(start).unwrap_or(i64::MAX), i64::try_from(end).unwrap_or(i64::MAX));
    Ok(rows::leaves(conn, start, end)?)
}

/// One event of an evidence record, with its inclusion proof against the newest tree.
#[derive(Debug, Clone)]
pub struct ProvenEvent {
    pub event: crate::db::ledger::Event,
    pub proof: Vec<Hash>,
}

/// A subject's evidence record: every event with its inclusion proof, and the tree they are
/// proven against (the newest checkpoint's).
pub fn evidence_record(conn: &mut DbConnection, subject_key: &str) -> Result<(Vec<ProvenEvent>, TreeHead), DbError> {
    let events = crate::db::ledger::events_of(conn, subject_key)?;
    let head = head(conn)?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let proof = match event.log_index.and_then(|i| u64::try_from(i).ok()).filter(|&i| i < head.size) {
            Some(index) => with_nodes(conn, &HashMap::new(), |n| tree::inclusion_proof(n, index, head.size))?,
            None => Vec::new(),
        };
        out.push(ProvenEvent { event, proof });
    }
    Ok((out, head))
}
