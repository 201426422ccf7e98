//! The counts behind coverage and stats (migration 000007): how many agreement rows of
//! `subject_documents` stand alike (same latest decision, same latest acceptance, accepted on
//! the same day). Triggers keep them in step with the rows, in the same transaction, so a read
//! sums a few groups instead of counting a million subjects. On PostgreSQL the triggers append
//! to `coverage_changes` (no lock for concurrent writers to queue on) and [`fold`] moves those
//! into `coverage_counts` every few seconds; a read adds both.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::{DbConnection, DbError};

/// One group of agreement rows.
#[derive(Debug, Clone, QueryableByName)]
pub struct Group {
    #[diesel(sql_type = Text)]
    pub state: String,
    /// The latest acceptance's `covers` JSON; '' when the subject never accepted.
    #[diesel(sql_type = Text)]
    pub accepted_covers: String,
    /// `YYYY-MM-DD` of the latest acceptance; '' when none.
    #[diesel(sql_type = Text)]
    pub accepted_day: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// The standing acceptances of one day that covered the same versions, split at a moment.
#[derive(Debug, Clone, QueryableByName)]
pub struct Split {
    #[diesel(sql_type = Text)]
    pub accepted_covers: String,
    /// 1: made at or before the moment; 0: after it.
    #[diesel(sql_type = BigInt)]
    pub at_or_before: i64,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What one read of a document's counts finds, from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Subjects with at least one event (erased ones included).
    pub known: i64,
    pub groups: Vec<Group>,
    /// The standing acceptances made on the day of `split_at`, split at it (see [`read`]).
    pub split: Vec<Split>,
}

/// The groups of `document` and the number of known subjects. With `split_at`, the standing
/// acceptances made on that moment's day are also counted on either side of it (the day's own
/// group is too coarse where something happens during it, such as acceptances expiring).
pub fn read(conn: &mut DbConnection, document: &str, split_at: Option<NaiveDateTime>) -> Result<Counts, DbError> {
    conn.transaction(|conn| {
        let postgres = matches!(conn, DbConnection::Postgres(_));
        if postgres {
            conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        let (changes, p1) = if postgres {
            (" UNION ALL SELECT document, state, accepted_covers, accepted_day, n FROM coverage_changes", "$1")
        } else {
            ("", "?")
        };
        let sql = format!(
            "SELECT state, accepted_covers, accepted_day, CAST(sum(n) AS BIGINT) AS n FROM \
             (SELECT document, state, accepted_covers, accepted_day, n FROM coverage_counts{changes}) AS c \
             WHERE document = {p1} OR document = '' GROUP BY state, accepted_covers, accepted_day"
        );
        let all: Vec<Group> = diesel::sql_query(sql).bind::<Text, _>(document).load(conn)?;
        let known = all.iter().filter(|g| g.state == "known").map(|g| g.n).sum();
        let groups = all.into_iter().filter(|g| g.state != "known" && g.n != 0).collect();
        let split = match split_at.map(|t| (t, t.date().and_hms_opt(0, 0, 0), t.date().succ_opt())) {
            Some((at, Some(from), Some(next))) => {
                let to = next.and_hms_opt(0, 0, 0).unwrap_or(at);
                let sql = if postgres {
                    "SELECT c.covers AS accepted_covers, \
                     CAST(CASE WHEN accepted_at <= $1 THEN 1 ELSE 0 END AS BIGINT) AS at_or_before, \
                     count(*) AS n FROM subject_documents JOIN covers_sets c ON c.id = accepted_covers_id \
                     WHERE document = $2 AND state = 'accepted' AND accepted_at >= $3 AND accepted_at < $4 GROUP BY 1, 2"
                } else {
                    "SELECT c.covers AS accepted_covers, CASE WHEN accepted_at <= ? THEN 1 ELSE 0 END AS at_or_before, \
                     count(*) AS n FROM subject_documents JOIN covers_sets c ON c.id = accepted_covers_id \
                     WHERE document = ? AND state = 'accepted' AND accepted_at >= ? AND accepted_at < ? GROUP BY 1, 2"
                };
                diesel::sql_query(sql)
                    .bind::<Timestamp, _>(at)
                    .bind::<Text, _>(document)
                    .bind::<Timestamp, _>(from)
                    .bind::<Timestamp, _>(to)
                    .load(conn)?
            }
            _ => Vec::new(),
        };
        Ok(Counts { known, groups, split })
    })
}

/// Moves the changes appended since the last fold into the counts, and drops groups that fell
/// to zero (PostgreSQL; on SQLite the triggers write the counts directly). The move is one
/// statement: a concurrent read sees each change either there or here, once. After a large move
/// (a bulk load), the emptied table is vacuumed, since a read scans it and its dead rows until
/// then. Returns how many changes it moved.
pub fn fold(conn: &mut DbConnection) -> Result<i64, DbError> {
    if let DbConnection::Sqlite(_) = conn {
        return Ok(0);
    }
    let moved = conn.transaction(|conn| {
        let moved: Count = diesel::sql_query(
            "WITH moved AS (DELETE FROM coverage_changes RETURNING document, state, accepted_covers, accepted_day, n), \
             folded AS (INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n) \
               SELECT document, state, accepted_covers, accepted_day, sum(n) FROM moved \
               GROUP BY document, state, accepted_covers, accepted_day \
               ORDER BY document, state, accepted_covers, accepted_day \
               ON CONFLICT (document, state, accepted_covers, accepted_day) \
               DO UPDATE SET n = coverage_counts.n + excluded.n) \
             SELECT count(*) AS n FROM moved",
        )
        .get_result(conn)?;
        diesel::sql_query("DELETE FROM coverage_counts WHERE n = 0").execute(conn)?;
        Ok::<_, DbError>(moved.n)
    })?;
    if moved > 10_000 {
        conn.batch_execute("VACUUM coverage_changes")?;
    }
    Ok(moved)
}

#[derive(QueryableByName)]
struct Keyed {
    #[diesel(sql_type = Text)]
    document: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    accepted_covers: String,
    #[diesel(sql_type = Text)]
    accepted_day: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Counts the groups again from the rows and the chain heads, and names each stored count that
/// differs (for `verify`; run it in the same snapshot as the walk over the rows).
pub fn recount_mismatches(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    use std::collections::BTreeMap;
    let (changes, day) = match conn {
        DbConnection::Postgres(_) => (
            " UNION ALL SELECT document, state, accepted_covers, accepted_day, n FROM coverage_changes",
            "to_char(accepted_at, 'YYYY-MM-DD')",
        ),
        DbConnection::Sqlite(_) => ("", "substr(accepted_at, 1, 10)"),
    };
    let stored: Vec<Keyed> = diesel::sql_query(format!(
        "SELECT document, state, accepted_covers, accepted_day, CAST(sum(n) AS BIGINT) AS n FROM \
         (SELECT document, state, accepted_covers, accepted_day, n FROM coverage_counts{changes}) AS c \
         GROUP BY document, state, accepted_covers, accepted_day"
    ))
    .load(conn)?;
    let actual: Vec<Keyed> = diesel::sql_query(format!(
        "SELECT document, state, COALESCE(c.covers, '') AS accepted_covers, \
         COALESCE({day}, '') AS accepted_day, count(*) AS n \
         FROM subject_documents LEFT JOIN covers_sets c ON c.id = accepted_covers_id \
         WHERE accepted_covers_id IS NOT NULL OR state = 'declined' GROUP BY 1, 2, 3, 4 \
         UNION ALL SELECT '', 'known', '', '', count(*) FROM subject_heads"
    ))
    .load(conn)?;
    let key = |k: &Keyed| (k.document.clone(), k.state.clone(), k.accepted_covers.clone(), k.accepted_day.clone());
    let mut diff: BTreeMap<(String, String, String, String), (i64, i64)> = BTreeMap::new();
    for k in &stored {
        diff.entry(key(k)).or_default().0 += k.n;
    }
    for k in &actual {
        diff.entry(key(k)).or_default().1 += k.n;
    }
    Ok(diff
        .into_iter()
        .filter(|(_, (stored, actual))| stored != actual)
        .map(|((document, state, covers, day), (stored, actual))| {
            let day = if day.is_empty() { String::new() } else { format!(", accepted on {day}") };
            let day = if covers.is_empty() { day } else { format!("{day} covering {covers}") };
            let what = if state == "known" { "known subjects".to_owned() } else { format!("{document} {state}{day}") };
            format!("coverage counts: {what}: {stored} counted, but the status rows say {actual}")
        })
        .collect())
}
