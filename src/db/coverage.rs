//! The counts behind coverage and stats (migration 000007): how many agreement rows of
//! `subject_documents` stand alike (same latest decision, same latest acceptance, accepted on
//! the same day). Triggers keep them in step with the rows, in the same transaction, so a read
//! sums a few groups instead of counting a million subjects. On PostgreSQL the triggers append
//! to `coverage_changes` (no lock for concurrent writers to queue on) and [`fold`] moves those
//! into `coverage_counts` every few seconds; a read adds both.

use chrono::{NaiveDate, NaiveDateTime};
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

/// One standing acceptance, with its exact time.
#[derive(Debug, Clone, QueryableByName)]
pub struct Accepted {
    #[diesel(sql_type = Text)]
    pub accepted_covers: String,
    #[diesel(sql_type = Timestamp)]
    pub accepted_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The groups of `document`, the number of known subjects, and the standing acceptances made on
/// `exact_day` one by one (where an acceptance expires on that day, its group is too coarse).
/// All read from one snapshot.
pub fn groups(
    conn: &mut DbConnection,
    document: &str,
    exact_day: Option<NaiveDate>,
) -> Result<(i64, Vec<Group>, Vec<Accepted>), DbError> {
    conn.transaction(|conn| {
        let changes = match conn {
            DbConnection::Postgres(_) => {
                conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
                " UNION ALL SELECT document, state, accepted_covers, accepted_day, n FROM coverage_changes"
            }
            DbConnection::Sqlite(_) => "",
        };
        let placeholder = match conn {
            DbConnection::Sqlite(_) => "?",
            DbConnection::Postgres(_) => "$1",
        };
        let sql = format!(
            "SELECT state, accepted_covers, accepted_day, CAST(sum(n) AS BIGINT) AS n FROM \
             (SELECT document, state, accepted_covers, accepted_day, n FROM coverage_counts{changes}) AS c \
             WHERE document = {placeholder} OR document = '' GROUP BY state, accepted_covers, accepted_day"
        );
        let all: Vec<Group> = diesel::sql_query(sql).bind::<Text, _>(document).load(conn)?;
        let known = all.iter().filter(|g| g.state == "known").map(|g| g.n).sum();
        let groups = all.into_iter().filter(|g| g.state != "known" && g.n != 0).collect();
        let exact = match exact_day {
            None => Vec::new(),
            Some(day) => {
                let (from, to) = (day.and_hms_opt(0, 0, 0), day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)));
                let (Some(from), Some(to)) = (from, to) else { return Ok((known, groups, Vec::new())) };
                let sql = match conn {
                    DbConnection::Sqlite(_) => {
                        "SELECT accepted_covers, accepted_at FROM subject_documents WHERE document = ? \
                         AND state = 'accepted' AND accepted_at >= ? AND accepted_at < ?"
                    }
                    DbConnection::Postgres(_) => {
                        "SELECT accepted_covers, accepted_at FROM subject_documents WHERE document = $1 \
                         AND state = 'accepted' AND accepted_at >= $2 AND accepted_at < $3"
                    }
                };
                diesel::sql_query(sql)
                    .bind::<Text, _>(document)
                    .bind::<Timestamp, _>(from)
                    .bind::<Timestamp, _>(to)
                    .load(conn)?
            }
        };
        Ok((known, groups, exact))
    })
}

/// Moves the changes appended since the last fold into the counts (PostgreSQL; nothing to do on
/// SQLite). One statement: a concurrent read sees each change either here or there, once.
pub fn fold(conn: &mut DbConnection) -> Result<usize, DbError> {
    if let DbConnection::Sqlite(_) = conn {
        return Ok(0);
    }
    let moved = diesel::sql_query(
        "WITH moved AS (DELETE FROM coverage_changes RETURNING document, state, accepted_covers, accepted_day, n) \
         INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n) \
         SELECT document, state, accepted_covers, accepted_day, sum(n) FROM moved \
         GROUP BY document, state, accepted_covers, accepted_day ORDER BY document, state, accepted_covers, accepted_day \
         ON CONFLICT (document, state, accepted_covers, accepted_day) DO UPDATE SET n = coverage_counts.n + excluded.n",
    )
    .execute(conn)?;
    Ok(moved)
}

/// How many changes wait to be folded (PostgreSQL).
pub fn pending_changes(conn: &mut DbConnection) -> Result<i64, DbError> {
    if let DbConnection::Sqlite(_) = conn {
        return Ok(0);
    }
    let c: Count = diesel::sql_query("SELECT count(*) AS n FROM coverage_changes").get_result(conn)?;
    Ok(c.n)
}
