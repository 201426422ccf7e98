//! Storage through diesel: one connection type over SQLite and PostgreSQL, a pool, embedded
//! migrations, and one file per aggregate. Nothing here knows about HTTP or templates.
//!
//! The backend is chosen from the URL scheme (`sqlite://` or `postgres://`); any other scheme is
//! refused rather than being taken for a SQLite file name.

pub mod coverage;
pub mod hash;
pub mod keys;
pub mod ledger;
pub mod log;
pub mod prepared;
pub mod schema;
pub mod sessions;
pub mod versions;
pub mod webhooks;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Queries written once against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Url(String),
    // (The causes are in the messages, and not also sources: `{:#}` would print them twice.)
    #[error("cannot connect to the database: {}", connect_hint(.0))]
    Connect(diesel::ConnectionError),
    #[error("no database connection available: {0}")]
    Pool(diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("stored data is not as Assent wrote it: {0}")]
    Corrupt(String),
    #[error("database task failed: {0}")]
    Task(String),
    /// The database is away, busy or full: the request may be tried again shortly.
    #[error("the database is not available: {0}")]
    Unavailable(String),
    /// A command that only reads was pointed at a database that does not exist or holds no
    /// Assent data; nothing was created.
    #[error("{0}")]
    Missing(String),
}

impl From<diesel::ConnectionError> for DbError {
    fn from(e: diesel::ConnectionError) -> Self {
        Self::Connect(e)
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Pool(e)
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

impl DbError {
    /// Whether the database is away, busy or full (503, to be tried again), rather than a
    /// fault of Assent's own (500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Pool(_) | Self::Unavailable(_) => true,
            Self::Query(e) => query_unavailable(e),
            Self::Url(_) | Self::Migration(_) | Self::Corrupt(_) | Self::Task(_) | Self::Missing(_) => false,
        }
    }

    /// The same failure again, for each of several requests that it failed together.
    pub fn again(&self) -> Self {
        if self.is_unavailable() { Self::Unavailable(self.to_string()) } else { Self::Task(self.to_string()) }
    }
}

/// Whether a query failed because the database went away, is busy or is full: a broken or
/// closed connection, a server shutting down or starting up, a full disk, an I/O error, a
/// read-only file, a lock held too long or a deadlock, or a serialisation failure that
/// outlived its retries.
fn query_unavailable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    // Message text, for neither diesel nor libpq gives the SQLSTATE or SQLite's result code
    // of these. (libpq's own messages are in English unless its locale says otherwise.)
    const AWAY: [&str; 14] = [
        "connection",
        "terminating",
        "shutting down",
        "starting up",
        "recovery mode",
        "could not receive",
        "could not send",
        "disk is full",
        "disk i/o",
        "no space",
        "locked",
        "readonly",
        "read-only",
        "deadlock",
    ];
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            AWAY.iter().any(|away| message.contains(away))
        }
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

/// libpq's reason on one line, with what to do about the common ones.
fn connect_hint(e: &diesel::ConnectionError) -> String {
    let reason = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    let next = if reason.contains("does not exist") && reason.contains("database") {
        ": create it (`createdb NAME`) or point ASSENT_DATABASE_URL at an existing database"
    } else if reason.contains("Connection refused") && !reason.contains("Is the server running") {
        ": is the server running, and on that host and port?"
    } else {
        ""
    };
    format!("{reason}{next}")
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path.
    Sqlite(String),
    /// A PostgreSQL connection URL, passed to libpq as given.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(DbError::Url("`sqlite://` needs a file path, as in `sqlite://assent.db`".into()));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(DbError::Url(format!(
            "unsupported database URL `{}`: use `sqlite://FILE` or `postgres://USER@HOST/DB`",
            redact(url)
        )))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    fn establish(&self) -> Result<DbConnection, DbError> {
        match self {
            Self::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // FULL: a commit is on disk before we answer, so neither a process crash nor a
                // power loss takes back an acknowledged write.
                // secure_delete FAST: deleted content is zeroed on the pages a write touches
                // anyway; erasure and retention switch it fully on (`securely`), so that freed
                // pages are zeroed too.
                // cache_size 512 KiB: each pooled connection keeps its own page cache; the
                // operating system's file cache holds the rest (see README, "Memory").
                conn.batch_execute(
                    "PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA secure_delete = FAST; PRAGMA cache_size = -512;",
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
            Self::Postgres(url) => {
                prepare_tls();
                // A host that does not answer is given up after 5 s, not the kernel's minutes;
                // a connection whose peer vanished (a network cut, not a restart) is found dead
                // within about 25 s when idle (keepalives), or 20 s after it sent something that
                // was never acknowledged (tcp_user_timeout), so the change watcher reconnects.
                let mut url = url.clone();
                for (name, value) in [
                    ("connect_timeout", "5"),
                    ("keepalives_idle", "10"),
                    ("keepalives_interval", "5"),
                    ("keepalives_count", "3"),
                    ("tcp_user_timeout", "20000"),
                ] {
                    if !url.contains(&format!("{name}=")) {
                        url.push(if url.contains('?') { '&' } else { '?' });
                        url.push_str(&format!("{name}={value}"));
                    }
                }
                Ok(DbConnection::Postgres(PgConnection::establish(&url)?))
            }
        }
    }
}

/// Call before the process's first PostgreSQL connection. libpq speaks TLS through the system's
/// OpenSSL, which by default frees its locks in an `atexit` handler: a process that exits while
/// the pool is still opening connections in the background (a short command, a test) then
/// crashes inside libpq. Initialised this way first, OpenSSL registers no such handler.
pub fn prepare_tls() {
    openssl_sys::init();
}

/// Hides a password in a URL before it is printed.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// r2d2 glue: opens connections for the URL's backend.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        self.url.establish()
    }

    /// Checked as it leaves the pool: a PostgreSQL connection may have lost its server (the
    /// pool then opens another). A SQLite connection is not asked: `SELECT 1` never touches the
    /// file, so it noticed nothing (a full disk, a file deleted), and it was a statement
    /// compiled and run before every query.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        match conn {
            DbConnection::Sqlite(_) => Ok(()),
            DbConnection::Postgres(_) => conn.batch_execute("SELECT 1").map_err(DbError::from),
        }
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// The pool's failed connection attempts, logged once each as a warning in the server's own
/// log (r2d2 would log them through `log` as errors, unformatted).
#[derive(Debug)]
struct LogConnectionErrors;

impl diesel::r2d2::HandleError<DbError> for LogConnectionErrors {
    fn handle_error(&self, error: DbError) {
        tracing::warn!(error = %error, "could not open a database connection");
    }
}

pub type PooledConnection = diesel::r2d2::PooledConnection<Manager>;

/// How long a request waits for a pooled connection by default: past it, the answer is 503
/// (the database is down, or every connection is busy) rather than a hung request.
pub const DEFAULT_POOL_WAIT: Duration = Duration::from_secs(1);

/// The connection pool. Cloning is cheap.
#[derive(Clone)]
pub struct Db {
    pool: diesel::r2d2::Pool<Manager>,
    /// For connections of their own, outside the pool (the change watcher's).
    url: DatabaseUrl,
    backend: &'static str,
    created: bool,
    /// This database's log integration rounds (PostgreSQL), shared by the pool's users.
    rounds: std::sync::Arc<crate::log::Rounds>,
}

impl DatabaseUrl {
    /// How the database is named to people: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite file {path}"),
            Self::Postgres(url) => format!("PostgreSQL database {}", redact(url)),
        }
    }
}

/// Whether Assent's tables are there.
fn has_assent_tables(conn: &mut DbConnection) -> bool {
    conn.batch_execute("SELECT 1 FROM __diesel_schema_migrations LIMIT 1; SELECT 1 FROM versions LIMIT 1").is_ok()
}

impl Db {
    /// Opens a database that must already hold Assent's data, for commands that only read: a
    /// missing SQLite file is not created, and an empty database is refused, so that `verify`
    /// never reports success on nothing.
    pub fn open_existing(url: &str, pool_size: u32) -> Result<Self, DbError> {
        let parsed = DatabaseUrl::parse(url)?;
        let name = parsed.describe();
        let mut conn = Self::existing(&parsed)?;
        // A command that only reads must not change the database, upgrades included.
        if conn.has_pending_migrations()? {
            return Err(DbError::Missing(format!(
                "{name} was written by an older Assent and needs upgrading first: run `assent sync` (see README, Upgrading); nothing was changed"
            )));
        }
        drop(conn);
        Self::pooled(&parsed, pool_size)
    }

    /// Opens a database that must already hold Assent's data, for commands that change what
    /// is there (`keys revoke`): a mistyped URL is refused rather than answered about an
    /// empty database made for it; pending migrations are run.
    pub fn open_existing_to_change(url: &str) -> Result<Self, DbError> {
        drop(Self::existing(&DatabaseUrl::parse(url)?)?);
        Self::open(url, 1)
    }

    /// A connection to the database `parsed` names, if it exists and holds Assent's data.
    fn existing(parsed: &DatabaseUrl) -> Result<DbConnection, DbError> {
        let name = parsed.describe();
        if let DatabaseUrl::Sqlite(path) = parsed {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size == 0 {
                return Err(DbError::Missing(format!(
                    "there is no Assent database at {name} (nothing was created): point ASSENT_DATABASE_URL at the database to read, or run `assent sync` to create one"
                )));
            }
        }
        let mut conn = parsed.establish()?;
        if !has_assent_tables(&mut conn) {
            return Err(DbError::Missing(format!(
                "{name} holds no Assent data: point ASSENT_DATABASE_URL at the database to read, or run `assent sync` to create one"
            )));
        }
        Ok(conn)
    }

    fn pooled(parsed: &DatabaseUrl, pool_size: u32) -> Result<Self, DbError> {
        let backend = parsed.backend_name();
        let pool = diesel::r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(DEFAULT_POOL_WAIT)
            .error_handler(Box::new(LogConnectionErrors))
            .build(Manager { url: parsed.clone() })?;
        Ok(Self { pool, url: parsed.clone(), backend, created: false, rounds: Default::default() })
    }

    /// Whether opening created the database's tables (a new SQLite file, an empty PostgreSQL
    /// database).
    pub fn created(&self) -> bool {
        self.created
    }

    /// How the database is named to people.
    pub fn describe(url: &str) -> String {
        DatabaseUrl::parse(url).map(|u| u.describe()).unwrap_or_else(|_| redact(url))
    }

    /// Opens the database, creating a SQLite file if there is none, and applies migrations.
    pub fn open(url: &str, pool_size: u32) -> Result<Self, DbError> {
        Self::open_waiting(url, pool_size, DEFAULT_POOL_WAIT)
    }

    /// [`Db::open`], with how long a request waits for a pooled connection before it is told
    /// the database is not answering (`ASSENT_DB_POOL_WAIT`).
    pub fn open_waiting(url: &str, pool_size: u32, wait: Duration) -> Result<Self, DbError> {
        let url = DatabaseUrl::parse(url)?;
        let backend = url.backend_name();
        // One connection first: a database that cannot be reached (or does not exist) is one
        // error at once, not the pool's retries for its whole timeout.
        let mut first = url.establish()?;
        if let DatabaseUrl::Sqlite(_) = url {
            // WAL is a property of the file; set it once, before the pool opens connections
            // concurrently (setting it per connection races at start-up).
            first.batch_execute("PRAGMA journal_mode = WAL;")?;
        }
        drop(first);
        let pool = diesel::r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(wait)
            .error_handler(Box::new(LogConnectionErrors))
            .build(Manager { url: url.clone() })?;
        let mut conn = pool.get()?;
        let created = !has_assent_tables(&mut conn);
        conn.migrate()?;
        drop(conn);
        Ok(Self { pool, url, backend, created, rounds: Default::default() })
    }

    /// Runs a short read (a few rows by key) on the calling thread when SQLite has a pooled
    /// connection free at once, and another besides: reading a few pages that SQLite or the OS
    /// holds costs less than handing the work to a blocking thread and back (two context
    /// switches, and a wake-up of each thread, per request). Otherwise, and on PostgreSQL, whose
    /// every query is a round trip over the network, as [`Db::run`]. For reads only: a write
    /// could wait for SQLite's lock. The price: a read that has to wait for the disk (a database
    /// larger than memory, a disk busy flushing) holds up the other requests of its worker
    /// meanwhile, as would a read that meets another process recovering the WAL (up to the
    /// 15 s busy timeout).
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        // Never the last idle connection: the requests that wait for one (a key lookup, a
        // listing, `/healthz`) would otherwise queue behind a stream of status checks.
        if self.backend == "sqlite"
            && self.pool.state().idle_connections > 1
            && let Some(mut conn) = self.pool.try_get()
        {
            return conn.unwinding("a read", work);
        }
        self.run(work).await
    }

    /// A connection outside the pool, for a thread that keeps it (the change watcher).
    pub fn dedicated(&self) -> Result<DbConnection, DbError> {
        self.url.establish()
    }

    pub fn rounds(&self) -> &crate::log::Rounds {
        &self.rounds
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The pool's connections: open, and of those idle.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// A connection for blocking code (the CLI, start-up).
    pub fn get(&self) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs blocking database work on the blocking thread pool, off the async executor.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            // A panic must not send the connection back to the pool inside a transaction.
            conn.unwinding("a database task", work)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }
}

impl DbConnection {
    /// Whether this backend's set has migrations not yet applied.
    pub fn has_pending_migrations(&mut self) -> Result<bool, DbError> {
        let result = match self {
            Self::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
            Self::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
        };
        result.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// Applies pending migrations of this backend's set.
    pub fn migrate(&mut self) -> Result<(), DbError> {
        let result = match self {
            Self::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
            Self::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        };
        result.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// Runs `work`; should it panic, rolls back whatever transaction it left open and answers
    /// a `Task` error naming `what` instead, so that neither the thread nor the connection (back
    /// in the pool, or kept by a writer) is lost to it.
    pub fn unwinding<T, E: From<DbError>>(
        &mut self,
        what: &str,
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *self))).unwrap_or_else(|_| {
            let _ = self.batch_execute("ROLLBACK");
            tracing::error!("{what} panicked; it was rolled back");
            Err(E::from(DbError::Task(format!("{what} failed unexpectedly and was rolled back"))))
        })
    }

    /// Runs `work` in a transaction that holds the write lock from its first statement. On
    /// SQLite that is `BEGIN IMMEDIATE`: a deferred transaction that reads first and writes
    /// later can fail at once with "database is locked" instead of waiting its turn. On
    /// PostgreSQL an ordinary transaction; conflicting writers meet at unique keys.
    pub fn write_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        match self {
            Self::Postgres(_) => self.transaction(work),
            Self::Sqlite(_) => {
                self.batch_execute("BEGIN IMMEDIATE")?;
                match work(self) {
                    Ok(value) => match self.batch_execute("COMMIT") {
                        Ok(()) => Ok(value),
                        Err(e) => {
                            let _ = self.batch_execute("ROLLBACK");
                            Err(e.into())
                        }
                    },
                    Err(e) => {
                        let _ = self.batch_execute("ROLLBACK");
                        Err(e)
                    }
                }
            }
        }
    }

    /// Runs `work` in one read-only snapshot of the database: everything it reads is as of one
    /// instant, whatever commits meanwhile (`verify` on a database in use).
    pub fn snapshot<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, DbError>) -> Result<T, DbError> {
        let begin = match self {
            // Deferred: the snapshot is taken at the first read and kept to the end.
            Self::Sqlite(_) => "BEGIN",
            Self::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.batch_execute(begin)?;
        let out = work(self);
        let end = self.batch_execute(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end?;
        Ok(out)
    }

    /// Runs `work` with SQLite's `secure_delete` fully on: every byte deleted is overwritten,
    /// free pages included. For erasure and retention; ordinary writes only zero what they
    /// write anyway (`FAST`), which costs no extra I/O.
    pub fn securely<T>(&mut self, work: impl FnOnce(&mut Self) -> T) -> T {
        let sqlite = matches!(self, Self::Sqlite(_));
        if sqlite && let Err(e) = self.batch_execute("PRAGMA secure_delete = ON") {
            tracing::warn!(error = %e, "could not switch secure_delete on");
        }
        let out = work(self);
        if sqlite && let Err(e) = self.batch_execute("PRAGMA secure_delete = FAST") {
            tracing::warn!(error = %e, "could not switch secure_delete back");
        }
        out
    }

    /// After an erasure. SQLite: the write-ahead log still holds the pages as they were
    /// before, so it is checkpointed into the file and truncated (`secure_delete` has zeroed the
    /// freed space); a reader holding an old snapshot can keep it from finishing, and the next
    /// erasure or SQLite's own checkpoints finish the job. PostgreSQL: the deleted rows stay in
    /// the table's pages as dead tuples until a vacuum, so `event_personal` is vacuumed now
    /// (skipped if a vacuum already runs); README, Erasure, says what remains beyond that.
    pub fn forget_old_pages(&mut self) {
        let result = match self {
            // Waits for readers at most 2 s (not the usual 15): an erasure's answer should not
            // hang on a long report; if it cannot finish now, the next checkpoint does.
            Self::Sqlite(_) => {
                let _ = self.batch_execute("PRAGMA busy_timeout = 50");
                let done = self.checkpoint_fully();
                let _ = self.batch_execute("PRAGMA busy_timeout = 15000");
                done
            }
            Self::Postgres(_) => self.batch_execute("VACUUM (SKIP_LOCKED) event_personal, events"),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not clear old copies of erased data (the next checkpoint or vacuum will)");
        }
    }

    /// `wal_checkpoint(TRUNCATE)` until it reports that it finished, for at most about 2 s
    /// (40 tries, each waiting up to 50 ms for readers): a reader in the middle of a read
    /// (another server's change watcher reads every millisecond) makes it give up without an
    /// error, and the old pages would stay in the WAL until the next checkpoint.
    fn checkpoint_fully(&mut self) -> diesel::QueryResult<()> {
        #[derive(diesel::QueryableByName)]
        struct Checkpoint {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            busy: i32,
        }
        for _ in 0..40 {
            let result: Checkpoint = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(self)?;
            if result.busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("the WAL checkpoint stayed busy".to_owned()),
        ))
    }

    /// Checks that the database answers.
    pub fn ping(&mut self) -> Result<(), DbError> {
        self.batch_execute("SELECT 1").map_err(DbError::from)
    }
}

/// Times are stored as UTC without zone, truncated to microseconds so that both backends give
/// back exactly what was written.
pub fn to_stored_time(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    t.trunc_subsecs(6).naive_utc()
}

pub fn from_stored_time(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert_eq!(DatabaseUrl::parse("sqlite://assent.db").unwrap(), DatabaseUrl::Sqlite("assent.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/a.db").unwrap(), DatabaseUrl::Sqlite("/tmp/a.db".into()));
        assert!(matches!(DatabaseUrl::parse("postgres://u@h/d").unwrap(), DatabaseUrl::Postgres(_)));
        assert!(matches!(DatabaseUrl::parse("postgresql://u@h/d").unwrap(), DatabaseUrl::Postgres(_)));
        let err = DatabaseUrl::parse("mysql://root:secret@h/d").unwrap_err().to_string();
        assert!(err.contains("unsupported"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(DatabaseUrl::parse("assent.db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }
}
