//! Read-your-writes on every server (contract §11). What a server caches from the database
//! (the catalog, API keys) is kept for as long as nothing it depends on changed, and dropped
//! as soon as something did, whoever changed it: this server, another one, or a command.
//!
//! Database triggers (migrations 000009 and 000011) announce each change to a key, a document,
//! a version or a webhook endpoint by moving the generation in `assent_changes`, and on
//! PostgreSQL also with `NOTIFY assent_changes`. One thread per server watches on a connection
//! of its own, outside the pool, and moves [`Freshness`]'s generation; a cache entry is good
//! while it was loaded at the current generation. Requests never query to check. While the
//! watcher is not looking (it lost its connection, or waits on a dead one for more than
//! [`TRUSTED_FOR`]), nothing cached is trusted and requests read through.
//!
//! The watcher looks every [`LOOK_EVERY`]: a notification that has arrived is read without a
//! round trip (libpq buffers it), and on SQLite `PRAGMA data_version` says without reading a
//! table whether anyone committed since. So a change is in force on every server about a
//! millisecond after its commit; the commands that make one (`keys revoke`, `sync`) wait
//! [`SETTLE`] before they return, so that a script's next request meets it everywhere. On
//! PostgreSQL the watcher also reads the generation row every [`HEARTBEAT`], in case a
//! notification was lost on the way. When its connection breaks, the watcher reconnects and
//! moves the generation once, for whatever it may have missed meanwhile.

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
#[derive(Debug)]
pub struct Freshness {
    generation: AtomicU64,
    /// When the watcher last looked, in milliseconds since `started`; 0 before its first look.
    looked: AtomicU64,
    started: std::time::Instant,
    /// When and how the last read of something cached failed because the database was away:
    /// for a moment after, the caches' reads fail at once instead of each waiting for the pool.
    failed: std::sync::Mutex<Option<(std::time::Instant, DbError)>>,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            looked: AtomicU64::new(0),
            started: std::time::Instant::now(),
            failed: std::sync::Mutex::new(None),
        }
    }
}

/// How long after the watcher's last look what is cached is still trusted: past it (the
/// watcher lost its connection, or waits on a dead one), every request reads through.
pub const TRUSTED_FOR: Duration = Duration::from_secs(3);

impl Freshness {
    /// The generation a cache entry must have been loaded at to be used. While the watcher is
    /// not looking, it moves on every call: nothing cached is used, so a change that the
    /// watcher cannot see is not missed.
    pub fn current(&self) -> u64 {
        if !self.watching() {
            return self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        }
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the watcher has looked within [`TRUSTED_FOR`]: what is cached is trusted.
    pub fn watching(&self) -> bool {
        let looked = self.looked.load(Ordering::Acquire);
        looked != 0 && self.elapsed_ms().saturating_sub(looked) <= TRUSTED_FOR.as_millis() as u64
    }

    /// Something changed: everything cached before now is stale.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The watcher has just looked (and bumped for anything it saw).
    fn looked_now(&self) {
        self.looked.store(self.elapsed_ms().max(1), Ordering::Release);
    }

    /// The watcher is away: nothing cached is trusted until it looks again.
    fn away(&self) {
        self.looked.store(0, Ordering::Release);
    }

    /// The failure of a read within the last `quiet`, if one failed for want of the database.
    fn fail_fast(&self, quiet: Duration) -> Result<(), DbError> {
        match self.failed.lock().ok().as_deref().and_then(Option::as_ref) {
            Some((at, e)) if at.elapsed() < quiet => Err(e.again()),
            _ => Ok(()),
        }
    }

    /// Remembers how a read ended, for [`Self::fail_fast`].
    fn read_ended<T>(&self, result: &Result<T, DbError>) {
        if let Ok(mut failed) = self.failed.lock() {
            *failed = match result {
                Err(e) if e.is_unavailable() => Some((std::time::Instant::now(), e.again())),
                _ => None,
            };
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// This server committed a change that servers cache: in force here at once, and after
    /// [`SETTLE`], when this returns, on every other server whose watcher is connected too.
    pub async fn changed_here(&self) {
        self.bump();
        tokio::time::sleep(SETTLE).await;
    }
}

/// One read at a time of something cached (single-flight): requests that find the cache stale
/// together wait for one read. Right after a read failed for want of the database, the next
/// ones, of any cache, fail at once with its error instead of queueing for the pool's wait one
/// after another. While the watcher is not looking, reads run side by side: nothing cached is
/// trusted then, so each request would only miss what the one before it read.
#[derive(Default)]
pub struct Reload {
    flight: tokio::sync::Mutex<()>,
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
        let _turn = if freshness.watching() { Some(self.flight.lock().await) } else { None };
        // The generation before the read: a change during it makes the next request read again.
        let generation = freshness.current();
        if let Some(value) = cached(generation) {
            return Ok(value);
        }
        freshness.fail_fast(quiet)?;
        let result = read(generation).await;
        freshness.read_ended(&result);
        result
    }
}

/// Starts watching `db` for changes on a thread of its own.
pub fn watch(db: &Db, freshness: Arc<Freshness>) {
    let db = db.clone();
    let spawned = std::thread::Builder::new().name("assent-changes".into()).spawn(move || {
        let mut pause = FIRST_PAUSE;
        loop {
            // Each watch that starts moves the generation once, for whatever changed while the
            // watcher was away; while the database is down nothing can change, and what is
            // cached stays in use.
            match watch_once(&db, &freshness, &mut pause) {
                // The server is gone: nothing reads the generation any more.
                Ok(()) => return,
                Err(_) if abandoned(&freshness) => return,
                Err(e) => {
                    freshness.away();
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

/// The first wait before reconnecting; it doubles up to a second while connecting fails.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// On PostgreSQL, how often the watcher reads the generation row even though it heard
/// nothing: a notification lost on the way (a connection that died silently, a pooler that
/// does not pass `LISTEN` through) delays a change by at most this, and a dead connection is
/// found.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// One number read by the watcher: `data_version`, or the generation.
#[derive(diesel::QueryableByName)]
struct Counter {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

/// Whether the server that started the watcher is gone (only the watcher holds it).
fn abandoned(freshness: &Arc<Freshness>) -> bool {
    Arc::strong_count(freshness) == 1
}

fn read_value(conn: &mut DbConnection, query: &'static str) -> Result<i64, DbError> {
    Ok(diesel::sql_query(query).get_result::<Counter>(conn)?.value)
}

/// The generation row that the triggers of migrations 000009 and 000011 move.
fn generation(conn: &mut DbConnection) -> Result<i64, DbError> {
    read_value(conn, "SELECT generation AS value FROM assent_changes WHERE id = 1")
}

/// Watches on one connection until it fails, or until the server is gone.
fn watch_once(db: &Db, freshness: &Arc<Freshness>, pause: &mut Duration) -> Result<(), DbError> {
    const DATA_VERSION: &str = "SELECT data_version AS value FROM pragma_data_version";
    let mut conn = db.dedicated()?;
    if let DbConnection::Postgres(pg) = &mut conn {
        pg.batch_execute("LISTEN assent_changes")?;
    }
    // Where this watch starts from, read before the caches are dropped: a change that commits
    // after this is seen below, whatever a request reloads meanwhile.
    let sqlite = matches!(conn, DbConnection::Sqlite(_));
    let mut data_version = if sqlite { read_value(&mut conn, DATA_VERSION)? } else { 0 };
    let mut seen = generation(&mut conn)?;
    // Anything since the caches were filled (or the last watch broke).
    freshness.bump();
    *pause = FIRST_PAUSE;
    let mut last_read = std::time::Instant::now();
    loop {
        if abandoned(freshness) {
            return Ok(());
        }
        let look = match &mut conn {
            // A notification that has arrived is read without a round trip (libpq buffers it).
            DbConnection::Postgres(pg) => {
                let mut heard = false;
                for notification in pg.notifications_iter() {
                    notification?;
                    heard = true;
                }
                heard || last_read.elapsed() >= HEARTBEAT
            }
            // Whether anyone committed since, without reading a table.
            DbConnection::Sqlite(_) => {
                let now = read_value(&mut conn, DATA_VERSION)?;
                std::mem::replace(&mut data_version, now) != now
            }
        };
        if look {
            let now = generation(&mut conn)?;
            last_read = std::time::Instant::now();
            if std::mem::replace(&mut seen, now) != now {
                freshness.bump();
            }
        }
        freshness.looked_now();
        std::thread::sleep(LOOK_EVERY);
    }
}
