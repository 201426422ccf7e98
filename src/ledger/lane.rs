//! Group commit for SQLite. SQLite has one writer at a time and `synchronous = FULL` makes each
//! commit wait for the disk, so one transaction per request spends its time queuing for the
//! lock and flushing. Here one writer thread takes every decision that is waiting, records each
//! under its own savepoint inside a single transaction, commits once, and only then answers
//! each request: a 201 still means "on disk", and a refused decision does not disturb the
//! others in its batch.
//!
//! PostgreSQL needs none of this (its commits already share WAL flushes): decisions there run
//! on the ordinary pool, one transaction each.
//!
//! The writes that come often while the ledger is busy (the webhook deliverer's claims and
//! outcomes, the consent page's several decisions) go through the same thread, in turn with
//! the batches ([`Writer::run`]). A write on another connection would not only wait
//! for the lock: SQLite drops the writer's page cache whenever another connection has written,
//! and the writer would read its B-tree pages again after each one.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use super::{NewDecision, RecordError, Recorded, attach_log_indexes, record_once};
use crate::db::{Db, DbConnection, DbError};

/// Most decisions one transaction takes.
const MAX_BATCH: usize = 256;

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
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *conn)));
            let _ = tx.send(result.unwrap_or_else(|_| {
                let _ = conn.batch_execute("ROLLBACK");
                tracing::error!("a write on the writer thread panicked; it was rolled back");
                Err(E::from(DbError::Task("the write failed unexpectedly and was rolled back".into())))
            }));
        }));
        if lane.upgrade().is_none_or(|lane| lane.send(job).is_err()) {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }
}

/// Records decisions and erasures: through the group-commit lane on SQLite, directly on
/// PostgreSQL.
pub struct Recorder {
    db: Db,
    lane: Option<Arc<Sender<Job>>>,
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
        let lane = (db.backend() == "sqlite").then(|| {
            let (tx, rx) = channel();
            let writer = db.clone();
            std::thread::Builder::new()
                .name("assent-writer".into())
                .spawn(move || write_loop(&writer, &rx))
                .map_err(|e| tracing::error!(error = %e, "no writer thread; recording directly"))
                .ok()
                .map(|_| tx)
        });
        Self { db, lane: lane.flatten().map(Arc::new), metrics, webhooks }
    }

    /// What runs other writes in turn with the ledger's (the webhook deliverer's).
    pub fn writer(&self) -> Writer {
        Writer { db: self.db.clone(), lane: self.lane.as_ref().map(Arc::downgrade) }
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
        if let Some(lane) = &self.lane {
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
        if let Some(lane) = &self.lane {
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

fn write_loop(db: &Db, rx: &Receiver<Job>) {
    // One connection for every batch: SQLite keeps a connection's page cache only while no other
    // connection writes, and this is the only writer, so the B-tree pages it touches stay warm.
    let mut held: Option<crate::db::PooledConnection> = None;
    let mut next: Option<Job> = None;
    while let Some(first) = next.take().or_else(|| rx.recv().ok()) {
        let mut batch = match first {
            Job::Decide(decision, reply) => vec![(decision, reply)],
            Job::Erase(job, reply) => {
                if held.is_none() {
                    held = db.get().map_err(|e| tracing::error!(error = %e, "the writer has no connection")).ok();
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
                    held = db.get().map_err(|e| tracing::error!(error = %e, "the writer has no connection")).ok();
                }
                work(held.as_deref_mut());
                continue;
            }
        };
        while batch.len() < MAX_BATCH {
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
            held = db.get().map_err(|e| tracing::error!(error = %e, "the writer has no connection")).ok();
        }
        let results = match held.as_mut() {
            Some(conn) => commit_batch(conn, &batch),
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

/// One transaction for the whole batch, one savepoint per decision.
fn commit_batch(conn: &mut DbConnection, batch: &[(Box<NewDecision>, Reply)]) -> Vec<Result<Recorded, RecordError>> {
    let fail_all = |e: DbError| -> Vec<Result<Recorded, RecordError>> {
        batch.iter().map(|_| Err(RecordError::Db(e.again()))).collect()
    };
    if let Err(e) = conn.batch_execute("BEGIN IMMEDIATE") {
        return fail_all(e.into());
    }
    let now = Utc::now();
    let mut results = Vec::with_capacity(batch.len());
    for (decision, _) in batch {
        let step = conn.batch_execute("SAVEPOINT decision").map(|()| record_once(conn, decision, now));
        let result = match step {
            Ok(result) => result,
            Err(e) => Err(RecordError::Db(e.into())),
        };
        let end = if result.is_ok() { "RELEASE decision" } else { "ROLLBACK TO decision; RELEASE decision" };
        if let Err(e) = conn.batch_execute(end) {
            // SQLite may already have rolled the whole transaction back (a full disk, an I/O
            // error); carrying on would commit the rest outside it. Give up on the batch.
            let _ = conn.batch_execute("ROLLBACK");
            return fail_all(e.into());
        }
        results.push(result);
    }
    // The log takes in the batch's events in the same transaction.
    let created = super::created_events(results.iter().filter_map(|r| r.as_ref().ok()));
    if let Err(e) = crate::log::integrate_with(conn, &created) {
        let _ = conn.batch_execute("ROLLBACK");
        return fail_all(e);
    }
    match conn.batch_execute("COMMIT") {
        // Nothing in the batch is acknowledged before this point.
        Ok(()) => {}
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            return fail_all(e.into());
        }
    }
    let mut done: Vec<Recorded> = Vec::new();
    let mut slots = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(recorded) => {
                slots.push(Ok(done.len()));
                done.push(recorded);
            }
            Err(e) => slots.push(Err(e)),
        }
    }
    if let Err(e) = attach_log_indexes(conn, &mut done) {
        return fail_all(e);
    }
    let mut done = done.into_iter();
    slots
        .into_iter()
        .map(|slot| {
            slot.and_then(|_| done.next().ok_or_else(|| RecordError::Db(DbError::Task("lost a receipt".into()))))
        })
        .collect()
}
