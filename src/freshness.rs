//! Read-your-writes on every server (contract §11). What a server caches from the database
//! (the catalog, API keys) is kept for as long as nothing it depends on changed, and dropped
//! as soon as something did, whoever changed it: this server, another one, or a command.
//!
//! Database triggers (migration 000009) announce each change to a key, a document, a version
//! or a webhook endpoint: on PostgreSQL with `NOTIFY assent_changes`, on SQLite by moving the
//! generation in `assent_changes`. One thread per server watches on a connection of its own,
//! outside the pool, and moves [`Freshness`]'s generation; a cache entry is good while it was
//! loaded at the current generation. Requests never query to check.
//!
//! The watcher looks every [`LOOK_EVERY`]: a notification that has arrived is read without a
//! round trip (libpq buffers it), and on SQLite `PRAGMA data_version` says without reading a
//! table whether anyone committed since. So a change is in force on every server about a
//! millisecond after its commit; the commands that make one (`keys revoke`, `sync`) wait
//! [`SETTLE`] before they return, so that a script's next request meets it everywhere. When the
//! PostgreSQL connection breaks, the watcher reconnects and moves the generation once, for
//! whatever it may have missed meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;

use crate::db::{Db, DbConnection, DbError};

/// How often the watcher looks for changes.
pub const LOOK_EVERY: Duration = Duration::from_millis(1);
/// How long a command that changed what servers cache waits before it returns, so that when
/// it has returned, the running servers' watchers have seen the change (several looks).
pub const SETTLE: Duration = Duration::from_millis(20);

/// Waits [`SETTLE`]: after a committed revocation or publication, so that a script's next
/// request to any server already meets it.
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// The generation of what the database holds that servers cache.
#[derive(Debug, Default)]
pub struct Freshness {
    generation: AtomicU64,
}

impl Freshness {
    pub fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Something changed: everything cached before now is stale.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// One read at a time of something cached (single-flight): requests that find the cache stale
/// together wait for one read, and right after a failed read the next ones fail at once
/// instead of queueing for the pool's wait one after another.
#[derive(Default)]
pub struct Reload {
    /// Held during a read; it holds when the last read failed, if it did.
    failed: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Reload {
    /// `cached` (at the generation it is given) if a read that ran meanwhile filled it, or
    /// `read`'s result, stored by `read` itself. `quiet` is how long after a failure others
    /// fail at once.
    pub async fn run<T, F>(
        &self,
        freshness: &Freshness,
        cached: impl Fn(u64) -> Option<T>,
        quiet: Duration,
        read: impl FnOnce(u64) -> F,
    ) -> Result<T, DbError>
    where
        F: std::future::Future<Output = Result<T, DbError>>,
    {
        let mut failed = self.failed.lock().await;
        // The generation before the read: a change during it makes the next request read again.
        let generation = freshness.current();
        if let Some(value) = cached(generation) {
            return Ok(value);
        }
        if failed.is_some_and(|at| at.elapsed() < quiet) {
            return Err(DbError::Task("the read before this one just failed".into()));
        }
        let result = read(generation).await;
        *failed = result.is_err().then(std::time::Instant::now);
        result
    }
}

/// Starts watching `db` for changes on a thread of its own.
pub fn watch(db: &Db, freshness: Arc<Freshness>) {
    let db = db.clone();
    let spawned = std::thread::Builder::new().name("assent-changes".into()).spawn(move || {
        let mut pause = Duration::from_millis(100);
        loop {
            // Each watch that starts moves the generation once, for whatever changed while the
            // watcher was away; while the database is down nothing can change, and what is
            // cached stays in use.
            match watch_once(&db, &freshness) {
                // The server is gone: nothing reads the generation any more.
                Ok(()) => return,
                Err(_) if abandoned(&freshness) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the change notifications; reconnecting");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no change watcher: this server will not see other servers' changes");
    }
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

/// Whether the server that started the watcher is gone (only the watcher holds it).
fn abandoned(freshness: &Arc<Freshness>) -> bool {
    Arc::strong_count(freshness) == 1
}

/// Watches on one connection until it fails, or until the server is gone.
fn watch_once(db: &Db, freshness: &Arc<Freshness>) -> Result<(), DbError> {
    let mut conn = db.dedicated()?;
    if let DbConnection::Postgres(pg) = &mut conn {
        pg.batch_execute("LISTEN assent_changes")?;
    }
    // Anything since the caches were filled (or the last watch broke) and before this began.
    freshness.bump();
    match &mut conn {
        DbConnection::Postgres(pg) => loop {
            if abandoned(freshness) {
                return Ok(());
            }
            let mut heard = false;
            for notification in pg.notifications_iter() {
                notification?;
                heard = true;
            }
            if heard {
                freshness.bump();
            }
            std::thread::sleep(LOOK_EVERY);
        },
        DbConnection::Sqlite(_) => {
            let mut data_version = None;
            let mut generation = None;
            loop {
                if abandoned(freshness) {
                    return Ok(());
                }
                let now: Version =
                    diesel::sql_query("SELECT data_version AS value FROM pragma_data_version").get_result(&mut conn)?;
                if data_version != Some(now.value) {
                    data_version = Some(now.value);
                    let current: Version =
                        diesel::sql_query("SELECT generation AS value FROM assent_changes WHERE id = 1")
                            .get_result(&mut conn)?;
                    if generation.is_some_and(|g| g != current.value) {
                        freshness.bump();
                    }
                    generation = Some(current.value);
                }
                std::thread::sleep(LOOK_EVERY);
            }
        }
    }
}
