//! Rows of the Merkle log: the queue of committed but not yet integrated events and versions,
//! the leaves, the stored complete subtrees, and the tree's size and root. What goes in them is
//! decided in `crate::log`.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;

use super::hash::{Hex, MaybeHex, stored};
use super::schema::{documents, events, log_leaves, log_nodes, log_queue, log_state, versions};
use super::{DbConnection, DbError};

/// Something committed that the log must take in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Event(i64),
    Version(i64),
}

/// Rows per multi-row INSERT: well under SQLite's limit of 32,766 bound values.
const ROWS_PER_INSERT: usize = 500;

pub fn enqueue(conn: &mut DbConnection, source: Source) -> Result<(), DbError> {
    let (event_id, version_id) = match source {
        Source::Event(id) => (Some(id), None),
        Source::Version(id) => (None, Some(id)),
    };
    diesel::insert_into(log_queue::table)
        .values((log_queue::event_id.eq(event_id), log_queue::version_id.eq(version_id)))
        .execute(conn)?;
    Ok(())
}

/// Locks the tree for this transaction (PostgreSQL: the state row, so one server integrates at
/// a time; SQLite: the caller's transaction already holds the only write lock) and reads it.
pub fn lock_state(conn: &mut DbConnection) -> Result<(i64, String), DbError> {
    match conn {
        DbConnection::Postgres(c) => Ok(log_state::table
            .filter(log_state::id.eq(1))
            .select((log_state::size, log_state::root))
            .for_update()
            .get_result(c)?),
        DbConnection::Sqlite(_) => state(conn),
    }
}

pub fn state(conn: &mut DbConnection) -> Result<(i64, String), DbError> {
    Ok(log_state::table.filter(log_state::id.eq(1)).select((log_state::size, log_state::root)).get_result(conn)?)
}

pub fn set_state(conn: &mut DbConnection, size: i64, root: &str) -> Result<(), DbError> {
    diesel::update(log_state::table).set((log_state::size.eq(size), log_state::root.eq(root))).execute(conn)?;
    Ok(())
}

/// The oldest queued sources, in commit order.
pub fn queued(conn: &mut DbConnection, limit: i64) -> Result<Vec<(i64, Source)>, DbError> {
    let rows: Vec<(i64, Option<i64>, Option<i64>)> = log_queue::table
        .select((log_queue::id, log_queue::event_id, log_queue::version_id))
        .order(log_queue::id.asc())
        .limit(limit)
        .load(conn)?;
    rows.into_iter()
        .map(|(id, event, version)| match (event, version) {
            (Some(e), None) => Ok((id, Source::Event(e))),
            (None, Some(v)) => Ok((id, Source::Version(v))),
            _ => Err(DbError::Corrupt(format!("log queue row {id} names neither one event nor one version"))),
        })
        .collect()
}

pub fn dequeue(conn: &mut DbConnection, ids: &[i64]) -> Result<(), DbError> {
    for chunk in ids.chunks(500) {
        diesel::delete(log_queue::table.filter(log_queue::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(())
}

/// Kind and chain hash of events, by id.
pub fn event_heads(conn: &mut DbConnection, ids: &[i64]) -> Result<HashMap<i64, (String, String)>, DbError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(i64, String, Hex)> = events::table
            .filter(events::id.eq_any(chunk))
            .select((events::id, events::kind, events::chain_hash))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(id, kind, hash)| (id, (kind, hash.0))));
    }
    Ok(out)
}

/// What a version's leaf commits to, as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = versions)]
pub struct VersionFields {
    pub id: i64,
    #[diesel(select_expression = documents::slug, select_expression_type = documents::slug)]
    pub document: String,
    pub version: i32,
    pub locale: String,
    pub title: String,
    pub effective: chrono::NaiveDateTime,
    pub material: bool,
    pub summary: Option<String>,
    pub part_of: Option<String>,
    pub acceptance: String,
    pub sha256: String,
    pub source: String,
    pub body: String,
    pub html: String,
    pub toc: String,
    pub published_at: chrono::NaiveDateTime,
    pub audiences: Option<String>,
    pub reaccept_after: Option<i64>,
}

pub fn version_fields(conn: &mut DbConnection, ids: &[i64]) -> Result<HashMap<i64, VersionFields>, DbError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(200) {
        let rows: Vec<VersionFields> = versions::table
            .inner_join(documents::table)
            .filter(versions::id.eq_any(chunk))
            .select(VersionFields::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|v| (v.id, v)));
    }
    Ok(out)
}

/// Every stored version, for `verify`.
pub fn all_version_fields(conn: &mut DbConnection) -> Result<Vec<VersionFields>, DbError> {
    Ok(versions::table
        .inner_join(documents::table)
        .select(VersionFields::as_select())
        .order(versions::id.asc())
        .load(conn)?)
}

/// Stored subtree hashes (hex), by address.
pub fn nodes(conn: &mut DbConnection, ids: &[(u32, u64)]) -> Result<HashMap<(u32, u64), String>, DbError> {
    let mut by_level: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for &(level, idx) in ids {
        by_level.entry(level).or_default().push(i64::try_from(idx).unwrap_or(i64::MAX));
    }
    let mut out = HashMap::new();
    // SQLite answers in-process: a query per level, each a walk down the key, is fastest.
    if let DbConnection::Sqlite(_) = conn {
        for (level, idxs) in by_level {
            let level_i = i32::try_from(level).unwrap_or(i32::MAX);
            for chunk in idxs.chunks(500) {
                let rows: Vec<(i64, Hex)> = log_nodes::table
                    .filter(log_nodes::level.eq(level_i))
                    .filter(log_nodes::idx.eq_any(chunk))
                    .select((log_nodes::idx, log_nodes::hash))
                    .load(conn)?;
                out.extend(rows.into_iter().map(|(idx, hash)| ((level, u64::try_from(idx).unwrap_or(0)), hash.0)));
            }
        }
        return Ok(out);
    }
    // PostgreSQL: one query for every level (a proof needs a node or two at each of some 20
    // levels), since a round trip per level would be most of a proof's time.
    let mut levels = by_level
        .into_iter()
        .flat_map(|(level, idxs)| idxs.chunks(500).map(|chunk| (level, chunk.to_vec())).collect::<Vec<_>>());
    loop {
        let mut query = log_nodes::table.select((log_nodes::level, log_nodes::idx, log_nodes::hash)).into_boxed();
        let mut ids = 0;
        for (level, chunk) in levels.by_ref() {
            ids += chunk.len();
            query = query.or_filter(
                log_nodes::level.eq(i32::try_from(level).unwrap_or(i32::MAX)).and(log_nodes::idx.eq_any(chunk)),
            );
            if ids >= 500 {
                break;
            }
        }
        if ids == 0 {
            break;
        }
        let rows: Vec<(i32, i64, Hex)> = query.load(conn)?;
        out.extend(
            rows.into_iter().map(|(level, idx, hash)| {
                ((u32::try_from(level).unwrap_or(0), u64::try_from(idx).unwrap_or(0)), hash.0)
            }),
        );
    }
    Ok(out)
}

/// Writes subtree hashes `(level, index, hex)`, many rows per statement.
pub fn insert_nodes(conn: &mut DbConnection, nodes: &[(u32, u64, String)]) -> Result<(), DbError> {
    for chunk in nodes.chunks(ROWS_PER_INSERT) {
        let values = chunk
            .iter()
            .map(|(level, idx, hash)| {
                Ok((
                    log_nodes::level.eq(i32::try_from(*level).unwrap_or(i32::MAX)),
                    log_nodes::idx.eq(i64::try_from(*idx).unwrap_or(i64::MAX)),
                    log_nodes::hash.eq(stored(hash)?),
                ))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let insert = diesel::insert_into(log_nodes::table).values(&values);
        match conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Postgres(c) => insert.execute(c)?,
        };
    }
    Ok(())
}

/// Writes leaves `(index, source, data)`, many rows per statement.
pub fn insert_leaves(conn: &mut DbConnection, leaves: &[(i64, Source, String)]) -> Result<(), DbError> {
    for chunk in leaves.chunks(ROWS_PER_INSERT) {
        let values: Vec<_> = chunk
            .iter()
            .map(|(idx, source, data)| {
                let (event_id, version_id) = match *source {
                    Source::Event(id) => (Some(id), None),
                    Source::Version(id) => (None, Some(id)),
                };
                // An event's leaf is its kind and chain hash, which its row holds: it is
                // written out again when read (see [`leaves`]), not stored twice.
                let data = version_id.map(|_| data.as_str());
                (
                    log_leaves::idx.eq(*idx),
                    log_leaves::event_id.eq(event_id),
                    log_leaves::version_id.eq(version_id),
                    log_leaves::data.eq(data),
                )
            })
            .collect();
        let insert = diesel::insert_into(log_leaves::table).values(&values);
        match conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Postgres(c) => insert.execute(c)?,
        };
    }
    Ok(())
}

/// A leaf of the log.
#[derive(Debug, Clone)]
pub struct LeafRow {
    pub idx: i64,
    pub event_id: Option<i64>,
    pub version_id: Option<i64>,
    /// The leaf's bytes: stored for a version; for an event, written out from the event's row
    /// (empty if the event is missing).
    pub data: String,
    /// Whether `data` was stored (versions; and event leaves stored before 000013 whose text
    /// did not match their event then) rather than written out from the event.
    pub stored: bool,
}

/// Leaves `[start, end)`, in order.
pub fn leaves(conn: &mut DbConnection, start: i64, end: i64) -> Result<Vec<LeafRow>, DbError> {
    type Row = (i64, Option<i64>, Option<i64>, Option<String>, Option<String>, MaybeHex);
    let rows: Vec<Row> = log_leaves::table
        .left_join(events::table.on(log_leaves::event_id.eq(events::id.nullable())))
        .filter(log_leaves::idx.ge(start))
        .filter(log_leaves::idx.lt(end))
        .order(log_leaves::idx.asc())
        .select((
            log_leaves::idx,
            log_leaves::event_id,
            log_leaves::version_id,
            log_leaves::data,
            events::kind.nullable(),
            events::chain_hash.nullable(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(idx, event_id, version_id, data, kind, chain)| {
            let stored = data.is_some();
            let data = data.unwrap_or_else(|| match (kind, chain.0) {
                (Some(kind), Some(chain)) => crate::log::event_leaf(&kind, &chain),
                _ => String::new(),
            });
            LeafRow { idx, event_id, version_id, data, stored }
        })
        .collect())
}

/// Stored subtree hashes at one level from `start` on, for `verify`.
pub fn nodes_at(conn: &mut DbConnection, level: u32, start: u64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
    let rows: Vec<(i64, Hex)> = log_nodes::table
        .filter(log_nodes::level.eq(i32::try_from(level).unwrap_or(i32::MAX)))
        .filter(log_nodes::idx.ge(i64::try_from(start).unwrap_or(i64::MAX)))
        .order(log_nodes::idx.asc())
        .limit(limit)
        .select((log_nodes::idx, log_nodes::hash))
        .load(conn)?;
    Ok(rows.into_iter().map(|(idx, hash)| (idx, hash.0)).collect())
}

/// How many subtree hashes are stored.
pub fn node_count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(log_nodes::table.select(diesel::dsl::count_star()).get_result(conn)?)
}

/// The leaf index of each of these events that the log holds.
pub fn event_indexes(conn: &mut DbConnection, event_ids: &[i64]) -> Result<HashMap<i64, i64>, DbError> {
    let mut out = HashMap::new();
    for chunk in event_ids.chunks(500) {
        let rows: Vec<(Option<i64>, i64)> = log_leaves::table
            .filter(log_leaves::event_id.eq_any(chunk))
            .select((log_leaves::event_id, log_leaves::idx))
            .load(conn)?;
        out.extend(rows.into_iter().filter_map(|(e, i)| e.map(|e| (e, i))));
    }
    Ok(out)
}

/// How many sources wait to be integrated.
pub fn queue_len(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(log_queue::table.select(diesel::dsl::count_star()).get_result(conn)?)
}
