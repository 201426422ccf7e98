//! Group commit. One commit per request spends the request's time waiting for the disk (SQLite
//! `synchronous = FULL`, PostgreSQL's WAL flush) and, on PostgreSQL, a second transaction to
//! take the event into the log. Here a writer thread takes every decision that is waiting,
//! records each under its own savepoint inside a single transaction, takes the batch into the
//! log in that same transaction, commits once, and only then answers each request: a 201
//! still means "on disk, and in the log", and a refused decision does not disturb the others in
//! its batch.
//!
//! SQLite has one writer at a time, so it has one such thread. PostgreSQL has [`PG_LANES`], each
//! with a connection of its own (outside the pool), and a subject's decisions always go to the
//! same one. Their batches meet at the log's lock, taken last, just before the commit, and at a
//! subject's lock when two servers decide for one subject at once; a listing's horizon
//! (`event_horizon`) waits for the batches in flight. A batch locks its subjects in one global
//! order (`db::ledger::subject_lock`), so two batches, on this server or another, cannot
//! deadlock over two subjects; a decision that waits for a subject's lock holds up its batch.
//!
//! The writes that come often while the ledger is busy (the webhook deliverer's claims and
//! outcomes, the consent page's several decisions) go through SQLite's thread, in turn with
//! the batches ([`Writer::run`]). A write on another connection would not only wait
//! for the lock: SQLite drops the writer's page cache whenever another connection has written,
//! and the writer would read its B-tree pages again after each one. On PostgreSQL they run on
//! the pool.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use super::{Logged, NewDecision, RecordError, Recorded, record_once};
use crate::db::{Db, DbConnection, DbError};

/// Most decisions one transaction takes on SQLite.
const MAX_BATCH: usize = 256;

/// Most decisions one transaction takes on PostgreSQL. Each decision's savepoint is a
/// subtransaction, and a transaction with more than 64 of them (`PGPROC_MAX_CACHED_SUBXIDS`)
/// makes every other snapshot in the database server look them up in `pg_subtrans`. (Batches
/// of 30 and 60 ran at the same rate in `benches/ceiling.rs`: with 64 clients and two lanes
/// they seldom fill.)
const MAX_BATCH_PG: usize = 60;

/// Group-commit lanes on PostgreSQL (SQLite has one).
pub const PG_LANES: usize = 2;

type Reply = oneshot::Sender<Result<Recorded, RecordError>>;
/// A write run on the writer's connection (None: it has none); it sends its own answer.
type Task = Box<dyn FnOnce(Option<&mut DbConnection>) + Send>;

/// What an erasure needs (see [`super::erase`]).
pub struct EraseJob {
    pub subject: crate::domain::SubjectId,
    pub subject_key: String,
    pub recorded_by: String,
    pub method: super::Method,
}

/// Work for the writer: decisions are batched; an erasure or other write runs in turn with
/// them, so that a stream of decisions cannot keep it waiting for SQLite's lock.
enum Job {
    Decide(Box<NewDecision>, Reply),
    Erase(Box<EraseJob>, oneshot::Sender<Result<super::Erasure, RecordError>>),
    /// Any other write, with its own transaction.
    Run(Task),
}

/// Runs writes on the writer thread where there is one (SQLite), on the pool otherwise. It
/// does not keep the writer alive: once the [`Recorder`] is gone, the writer thread ends.
#[derive(Clone)]
pub struct Writer {
    db: Db,
    lane: Option<Weak<Sender<Job>>>,
}

impl Writer {
    /// Runs `work` on the writer's connection (SQLite) or a pooled one (PostgreSQL). `work`
    /// opens its own transaction.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let Some(lane) = &self.lane else {
            return self.db.run(work).await;
        };
        let stopped = || E::from(DbError::Task("the writer stopped".into()));
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |conn: Option<&mut DbConnection>| {
            let Some(conn) = conn else {
                let _ = tx.send(Err(E::from(DbError::Unavailable("no database connection".into()))));
                return;
            };
            // A write that panicked must not take the ledger's writer with it, nor leave its
            // connection inside a transaction.
            let _ = tx.send(conn.unwinding("a write on the writer thread", work));
        }));
        if lane.upgrade().is_none_or(|lane| lane.send(job).is_err()) {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }
}

/// Records decisions through the group-commit lanes (both databases), and erasures: on SQLite's
/// lane, on PostgreSQL's pool.
pub struct Recorder {
    db: Db,
    /// The group-commit lanes; none if no thread could be started (decisions then commit one
    /// by one on the pool).
    lanes: Vec<Arc<Sender<Job>>>,
    /// Counts what is committed (`events_recorded` in `/metrics`).
    metrics: std::sync::Arc<crate::routes::metrics::Metrics>,
    /// Wakes this server's webhook deliveries once something committed.
    webhooks: std::sync::Arc<tokio::sync::Notify>,
}

impl Recorder {
    pub fn new(
        db: Db,
        metrics: std::sync::Arc<crate::routes::metrics::Metrics>,
        webhooks: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        let count = if db.backend() == "sqlite" { 1 } else { lanes_on_postgres() };
        let lanes = (0..count)
            .map_while(|n| {
                let (tx, rx) = channel();
                let writer = db.clone();
                std::thread::Builder::new()
                    .name(format!("assent-writer-{n}"))
                    .spawn(move || write_loop(&writer, &rx))
                    .map_err(|e| tracing::error!(error = %e, "no writer thread; recording directly"))
                    .ok()
                    .map(|_| Arc::new(tx))
            })
            .collect();
        Self { db, lanes, metrics, webhooks }
    }

    /// What runs other writes in turn with the ledger's (the webhook deliverer's): SQLite's
    /// writer thread, or PostgreSQL's pool.
    pub fn writer(&self) -> Writer {
        let lane = match self.db.backend() {
            "sqlite" => self.lanes.first().map(Arc::downgrade),
            _ => None,
        };
        Writer { db: self.db.clone(), lane }
    }

    /// The lane that takes `subject_key`'s decisions: always the same one, so that a
    /// subject's decisions never wait for each other's locks across lanes.
    fn lane_for(&self, subject_key: &str) -> Option<&Arc<Sender<Job>>> {
        let n = u64::try_from(self.lanes.len()).ok().filter(|&n| n > 0)?;
        let at = usize::try_from(crate::db::ledger::subject_lock(subject_key) % n).unwrap_or(0);
        self.lanes.get(at)
    }

    /// Wakes this server's webhook deliveries (something new is due).
    pub fn wake_webhooks(&self) {
        self.webhooks.notify_one();
    }

    /// Records a decision; returns once it is committed.
    pub async fn record(&self, decision: NewDecision) -> Result<Recorded, RecordError> {
        let recorded = self.record_uncounted(decision).await;
        if let Ok(Recorded::Created(r)) = &recorded {
            self.metrics.recorded([(r.kind.as_str(), r.document.as_deref())]);
            self.webhooks.notify_one();
        }
        recorded
    }

    async fn record_uncounted(&self, decision: NewDecision) -> Result<Recorded, RecordError> {
        if let Some(lane) = self.lane_for(&decision.subject_key) {
            let (tx, rx) = oneshot::channel();
            if lane.send(Job::Decide(Box::new(decision), tx)).is_ok() {
                return rx.await.map_err(|_| RecordError::Db(DbError::Task("the writer stopped".into())))?;
            }
            return Err(RecordError::Db(DbError::Task("the writer stopped".into())));
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || super::record_pooled(&db, &decision, Utc::now()))
            .await
            .map_err(|e| RecordError::Db(DbError::Task(e.to_string())))?
    }

    /// Records several decisions in one transaction: all of them, or none (the consent page's
    /// answer on every agreement it showed).
    pub async fn record_all(&self, decisions: Vec<NewDecision>) -> Result<Vec<Recorded>, RecordError> {
        let recorded = self.writer().run(move |c| super::record_many(c, &decisions, Utc::now())).await?;
        self.metrics.recorded(recorded.iter().filter_map(|r| match r {
            Recorded::Created(r) => Some((r.kind.as_str(), r.document.as_deref())),
            Recorded::Replayed(_) => None,
        }));
        if recorded.iter().any(|r| matches!(r, Recorded::Created(_))) {
            self.webhooks.notify_one();
        }
        Ok(recorded)
    }

    /// Erases a subject's personal data; returns once the erasure is committed and logged.
    pub async fn erase(&self, job: EraseJob) -> Result<super::Erasure, RecordError> {
        let erasure = self.erase_uncounted(job).await;
        if erasure.is_ok() {
            self.metrics.recorded([("erased", None)]);
            self.webhooks.notify_one();
        }
        erasure
    }

    async fn erase_uncounted(&self, job: EraseJob) -> Result<super::Erasure, RecordError> {
        // On SQLite in turn with the batches; on PostgreSQL on the pool (it takes the log's
        // lock after its own commit, like the other writes there).
        if let Some(lane) = self.lanes.first().filter(|_| self.db.backend() == "sqlite") {
            let (tx, rx) = oneshot::channel();
            if lane.send(Job::Erase(Box::new(job), tx)).is_ok() {
                return rx.await.map_err(|_| RecordError::Db(DbError::Task("the writer stopped".into())))?;
            }
            return Err(RecordError::Db(DbError::Task("the writer stopped".into())));
        }
        self.db.run(move |c| erase_now(c, &job)).await
    }
}

fn erase_now(conn: &mut DbConnection, job: &EraseJob) -> Result<super::Erasure, RecordError> {
    super::erase(conn, &job.subject, &job.subject_key, &job.recorded_by, job.method, Utc::now())
}

/// The writer's connection: on SQLite one of the pool's (it holds it for good, and the pool is
/// sized for that); on PostgreSQL one of its own, so that the lanes take nothing from the pool
/// that requests use.
enum Held {
    Pooled(crate::db::PooledConnection),
    Own(Box<DbConnection>),
}

impl Held {
    fn connect(db: &Db) -> Option<Self> {
        let held = if db.backend() == "sqlite" {
            db.get().map(Self::Pooled)
        } else {
            db.dedicated().map(|c| Self::Own(Box::new(c)))
        };
        held.map_err(|e| tracing::error!(error = %e, "the writer has no connection")).ok()
    }
}

impl std::ops::Deref for Held {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        match self {
            Self::Pooled(c) => c,
            Self::Own(c) => c,
        }
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut DbConnection {
        match self {
            Self::Pooled(c) => c,
            Self::Own(c) => c,
        }
    }
}

fn write_loop(db: &Db, rx: &Receiver<Job>) {
    let most = if db.backend() == "sqlite" { MAX_BATCH } else { MAX_BATCH_PG };
    // One connection for every batch: SQLite keeps a connection's page cache only while no other
    // connection writes, and this is the only writer, so the B-tree pages it touches stay warm
    // (on PostgreSQL: no pool checkout, and its check, per batch).
    let mut held: Option<Held> = None;
    let mut next: Option<Job> = None;
    while let Some(first) = next.take().or_else(|| rx.recv().ok()) {
        let mut batch = match first {
            Job::Decide(decision, reply) => vec![(decision, reply)],
            Job::Erase(job, reply) => {
                if held.is_none() {
                    held = Held::connect(db);
                }
                let result = match held.as_mut() {
                    Some(conn) => erase_now(conn, &job),
                    None => Err(RecordError::Db(DbError::Unavailable("no database connection".into()))),
                };
                if matches!(result, Err(RecordError::Db(_))) {
                    held = None;
                }
                let _ = reply.send(result);
                continue;
            }
            Job::Run(work) => {
                if held.is_none() {
                    held = Held::connect(db);
                }
                work(held.as_deref_mut());
                continue;
            }
        };
        while batch.len() < most {
            match rx.try_recv() {
                Ok(Job::Decide(decision, reply)) => batch.push((decision, reply)),
                Ok(erase) => {
                    next = Some(erase);
                    break;
                }
                Err(_) => break,
            }
        }
        if held.is_none() {
            held = Held::connect(db);
        }
        let results = match held.as_mut() {
            Some(conn) => {
                // A batch that panicked must not take the lane with it, nor leave its connection
                // inside a transaction: it is rolled back, and the connection thrown away (below).
                conn.unwinding("a batch of decisions", |c| Ok::<_, DbError>(commit_batch(c, &batch)))
                    .unwrap_or_else(|e| batch.iter().map(|_| Err(RecordError::Db(e.again()))).collect())
            }
            None => batch
                .iter()
                .map(|_| Err(RecordError::Db(DbError::Unavailable("no database connection".into()))))
                .collect(),
        };
        // After a failure, start the next batch on a fresh connection.
        if results.iter().any(|r| matches!(r, Err(RecordError::Db(_)))) {
            held = None;
        }
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// How many lanes PostgreSQL gets: [`PG_LANES`], or `ASSENT_PG_LANES` (1 to 16) to measure others.
fn lanes_on_postgres() -> usize {
    std::env::var("ASSENT_PG_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=16).contains(n))
        .unwrap_or(PG_LANES)
}

/// One transaction for the whole batch, one savepoint per decision, and the log's integration
/// of what it recorded before the commit.
fn commit_batch(conn: &mut DbConnection, batch: &[(Box<NewDecision>, Reply)]) -> Vec<Result<Recorded, RecordError>> {
    let fail_all = |e: DbError| -> Vec<Result<Recorded, RecordError>> {
        batch.iter().map(|_| Err(RecordError::Db(e.again()))).collect()
    };
    let begin = match conn {
        DbConnection::Sqlite(_) => "BEGIN IMMEDIATE; SAVEPOINT decision",
        DbConnection::Postgres(_) => "BEGIN; SAVEPOINT decision",
    };
    if let Err(e) = conn.batch_execute(begin) {
        let _ = conn.batch_execute("ROLLBACK");
        return fail_all(e.into());
    }
    // Subjects in the order their locks are taken everywhere (see the module's comment); one
    // subject's decisions keep the order they came in.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    if let DbConnection::Postgres(_) = conn {
        order.sort_by_key(|&i| crate::db::ledger::subject_lock(&batch[i].0.subject_key));
    }
    let mut results: Vec<Option<Result<Recorded, RecordError>>> = batch.iter().map(|_| None).collect();
    for (n, &i) in order.iter().enumerate() {
        // Each decision's own time: one may wait for another server's batch to release a subject.
        let result = record_once(conn, &batch[i].0, Utc::now(), Logged::Here);
        // Each decision's savepoint ends, and the next one's begins, in one round trip.
        let end = match (result.is_ok(), n + 1 == order.len()) {
            (true, true) => "RELEASE decision",
            (true, false) => "RELEASE decision; SAVEPOINT decision",
            (false, true) => "ROLLBACK TO decision; RELEASE decision",
            (false, false) => "ROLLBACK TO decision; RELEASE decision; SAVEPOINT decision",
        };
        if let Err(e) = conn.batch_execute(end) {
            // SQLite may already have rolled the whole transaction back (a full disk, an I/O
            // error); carrying on would commit the rest outside it. Give up on the batch.
            let _ = conn.batch_execute("ROLLBACK");
            return fail_all(e.into());
        }
        results[i] = Some(result);
    }
    let mut results: Vec<Result<Recorded, RecordError>> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(RecordError::Db(DbError::Task("a decision was skipped".into())))))
        .collect();
    // The log takes in the batch's events in the same transaction, in the order recorded.
    let created = super::created_events(order.iter().filter_map(|&i| results.get(i).and_then(|r| r.as_ref().ok())));
    let placed = match crate::log::integrate_placing(conn, &created) {
        Ok((_, placed)) => placed,
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            return fail_all(e);
        }
    };
    match conn.batch_execute("COMMIT") {
        // Nothing in the batch is acknowledged before this point.
        Ok(()) => {}
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            return fail_all(e.into());
        }
    }
    // A replay's event was in the log already; looking its leaf up can fail only now, after the
    // commit, and then only the replays are refused: the batch's new events are committed and
    // their receipts hold their leaves.
    let replayed: Vec<i64> =
        results.iter().flatten().filter(|r| matches!(r, Recorded::Replayed(_))).map(|r| r.receipt().event_id).collect();
    let replayed =
        if replayed.is_empty() { Ok(HashMap::new()) } else { crate::log::ensure_integrated(conn, &replayed) };
    for result in &mut results {
        let Ok(recorded) = result else { continue };
        let is_replay = matches!(recorded, Recorded::Replayed(_));
        let id = recorded.receipt().event_id;
        let index = match (&replayed, is_replay) {
            (_, false) => placed.get(&id).copied(),
            (Ok(found), true) => found.get(&id).copied(),
            (Err(e), true) => {
                *result = Err(RecordError::Db(e.again()));
                continue;
            }
        };
        match index {
            Some(index) => recorded.receipt_mut().log_index = Some(index),
            None => {
                *result = Err(RecordError::Db(DbError::Corrupt(format!(
                    "event {id} was committed but the log does not take it in"
                ))))
            }
        }
    }
    results
}
