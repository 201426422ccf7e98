//! Sending deliveries, on a thread of its own with its own small runtime, so that nothing an
//! endpoint does (answer slowly, never answer, reset the connection) reaches the HTTP workers or
//! the recording path. The loop:
//!
//! 1. for each endpoint with room (at most [`PER_ENDPOINT`] deliveries in flight each, so that a
//!    slow endpoint's backlog cannot hold up the others), take its due deliveries under a lease
//!    (`db::webhooks::claim`) and read what each announces;
//! 2. send each, signed, with the timeout; no transaction is open while it waits;
//! 3. write the outcomes of whatever finished, in one transaction: delivered, due again later,
//!    or given up;
//! 4. wait for the next finished send, a wake-up (this server recorded something) or the poll
//!    interval (another server or the command line did).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Secret, WebhookSettings, address, webhook_id};
use crate::db::webhooks::{self as rows, AttemptResult, DeliveryRow, Next};
use crate::db::{DbError, from_stored_time, to_stored_time};
use crate::ledger::lane::Writer;
use crate::routes::metrics::Metrics;

/// Most deliveries in flight to one endpoint, per server.
pub const PER_ENDPOINT: usize = 16;
/// How long a wake-up waits for the rest of its burst before looking (at most this much added
/// to a delivery's latency; a look per event would load the database as much as the events).
const COALESCE: Duration = Duration::from_millis(5);
/// How long a finished send's outcome may wait to be written with others.
const FLUSH: Duration = Duration::from_millis(100);
/// Most bytes of an answer read (the rest is dropped); its start is kept as the error's detail.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Starts delivering on a thread of its own; `wake` is notified when this server has recorded
/// something (so that a delivery need not wait for the poll). Its transactions run through
/// `writer`: on SQLite, on the ledger's own writer thread.
pub fn start(writer: Writer, settings: WebhookSettings, metrics: Arc<Metrics>, wake: Arc<Notify>) {
    let woken = wake;
    let run = move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "no runtime for webhook deliveries: none will be sent by this server");
                return;
            }
        };
        runtime.block_on(Loop::new(writer, settings, metrics, woken).run());
    };
    if let Err(e) = std::thread::Builder::new().name("assent-webhooks".into()).spawn(run) {
        tracing::error!(error = %e, "no webhook thread: no deliveries will be sent by this server");
    }
}

/// A delivery taken by this server, with what it needs to be sent.
struct Job {
    row: DeliveryRow,
    url: String,
    secret: Option<Secret>,
    /// None when what it announces could not be read.
    body: Option<String>,
    lease: String,
}

/// What became of one send.
struct Outcome {
    id: i64,
    endpoint_id: i64,
    lease: String,
    retry_since: DateTime<Utc>,
    at: DateTime<Utc>,
    status: Option<u16>,
    /// None when delivered.
    error: Option<String>,
}

struct Loop {
    writer: Writer,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// Deliveries in flight per endpoint.
    busy: HashMap<i64, usize>,
    /// The endpoints the last look found.
    known: Vec<i64>,
}

impl Loop {
    fn new(writer: Writer, settings: WebhookSettings, metrics: Arc<Metrics>, wake: Arc<Notify>) -> Self {
        Self { writer, settings, metrics, wake, busy: HashMap::new(), known: Vec::new() }
    }

    async fn run(mut self) {
        let client = match client(&self.settings) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for webhook deliveries: none will be sent by this server");
                return;
            }
        };
        // Often enough for the shortest retry delay; a server's own events wake it at once.
        let poll = self.settings.retry.first.clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut sending: JoinSet<Outcome> = JoinSet::new();
        // Which endpoint each send is for, so that one that panicked still frees its place.
        let mut sent_to: HashMap<tokio::task::Id, i64> = HashMap::new();
        // Outcomes not written yet, and when the first of them came. Each write and each look is
        // a write transaction (on SQLite one that runs on the ledger's writer thread, between
        // its batches), so sends that finish one by one, as a slow endpoint's do, are written
        // together: when half an endpoint's places are free, or `FLUSH` after the first.
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut first_done: Option<tokio::time::Instant> = None;
        // Whether to look for due deliveries now: at every poll and after outcomes were written;
        // after a wake-up only if some endpoint has room (the last look said which ones exist),
        // so that a busy ledger with a slow endpoint does not turn every event into a query.
        let mut look = true;
        let mut last_look = tokio::time::Instant::now();
        loop {
            // Every poll interval whatever happens (wake-ups must not put off finding an
            // endpoint registered elsewhere, or deliveries another server left).
            look |= last_look.elapsed() >= poll;
            if look {
                last_look = tokio::time::Instant::now();
                match self.take().await {
                    Ok(jobs) => {
                        for job in jobs {
                            *self.busy.entry(job.row.endpoint_id).or_default() += 1;
                            let endpoint = job.row.endpoint_id;
                            let handle = sending.spawn(send(client.clone(), job, self.settings.clone()));
                            sent_to.insert(handle.id(), endpoint);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not take webhook deliveries; will try again"),
                }
                look = false;
            }
            let until_poll = poll.saturating_sub(last_look.elapsed());
            let wait = first_done.map_or(until_poll, |t| FLUSH.saturating_sub(t.elapsed()).min(until_poll));
            let mut finished = Vec::new();
            tokio::select! {
                Some(done) = sending.join_next_with_id(), if !sending.is_empty() => finished.push(done),
                () = self.wake.notified() => {
                    // Events come in bursts: one look takes them together.
                    tokio::time::sleep(COALESCE).await;
                    look = self.known.iter().any(|id| self.busy.get(id).copied().unwrap_or(0) < PER_ENDPOINT);
                }
                () = tokio::time::sleep(wait) => look = true,
            }
            while let Some(done) = sending.try_join_next_with_id() {
                finished.push(done);
            }
            for done in finished {
                match done {
                    Ok((task, outcome)) => {
                        sent_to.remove(&task);
                        outcomes.push(outcome);
                        first_done.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a webhook send stopped; its lease runs out and it is sent again");
                        if let Some(endpoint) = sent_to.remove(&e.id())
                            && let Some(n) = self.busy.get_mut(&endpoint)
                        {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
            }
            let due = first_done.is_some_and(|t| t.elapsed() >= FLUSH) || outcomes.len() >= PER_ENDPOINT / 2;
            if !outcomes.is_empty() && (due || sending.is_empty()) {
                self.write(std::mem::take(&mut outcomes)).await;
                first_done = None;
                look = true;
            }
        }
    }

    /// Takes the due deliveries of every endpoint with room, and reads what each announces.
    async fn take(&mut self) -> Result<Vec<Job>, DbError> {
        let busy = self.busy.clone();
        let timeout = self.settings.timeout;
        self.writer
            .run(move |conn| {
                let now = Utc::now();
                // Past the timeout with room to spare: no other server takes a delivery while
                // this one may still be sending it.
                let lease_until =
                    now + chrono::Duration::from_std(timeout * 2 + Duration::from_secs(5)).unwrap_or_default();
                let lease = hex::encode(crate::ledger::keys::random_bytes::<8>()?);
                let mut jobs = Vec::new();
                let endpoints = rows::endpoints(conn)?;
                let known: Vec<i64> = endpoints.iter().map(|e| e.id).collect();
                for endpoint in endpoints {
                    let room = PER_ENDPOINT.saturating_sub(busy.get(&endpoint.id).copied().unwrap_or(0));
                    if room == 0 {
                        continue;
                    }
                    let taken = rows::claim(
                        conn,
                        endpoint.id,
                        room as i64,
                        to_stored_time(now),
                        &lease,
                        to_stored_time(lease_until),
                    )?;
                    if taken.is_empty() {
                        continue;
                    }
                    let mut bodies = super::bodies(conn, &taken)?;
                    for row in taken {
                        jobs.push(Job {
                            body: bodies.remove(&row.id),
                            url: endpoint.url.clone(),
                            secret: Secret::parse(&endpoint.secret),
                            lease: lease.clone(),
                            row,
                        });
                    }
                }
                if !jobs.is_empty() {
                    crate::crash::point("webhook-taken");
                }
                Ok((known, jobs))
            })
            .await
            .map(|(known, jobs)| {
                self.known = known;
                jobs
            })
    }

    /// Writes what became of each send, and counts it.
    async fn write(&mut self, outcomes: Vec<Outcome>) {
        let mut results = Vec::with_capacity(outcomes.len());
        let mut counted = Vec::with_capacity(outcomes.len());
        for o in &outcomes {
            if let Some(n) = self.busy.get_mut(&o.endpoint_id) {
                *n = n.saturating_sub(1);
            }
            let next = match &o.error {
                None => Next::Delivered,
                // From now, when the attempt ended (a timeout ends long after it began).
                Some(_) => match self.settings.retry.next(o.retry_since, Utc::now().max(o.at), jitter()) {
                    Some(at) => Next::RetryAt(to_stored_time(at)),
                    None => Next::Failed,
                },
            };
            counted.push(match next {
                Next::Delivered => "delivered",
                Next::RetryAt(_) => "retried",
                Next::Failed => "failed",
            });
            results.push(AttemptResult {
                id: o.id,
                lease: o.lease.clone(),
                at: to_stored_time(o.at),
                status: o.status.map(i32::from),
                error: o.error.clone(),
                next,
            });
        }
        match self.writer.run(move |c| rows::record_attempts(c, &results)).await {
            // Only what this server wrote: an outcome for a delivery whose lease ran out (another
            // server took it) or whose endpoint was removed counts nothing.
            Ok(written) => {
                self.metrics.webhook_attempts(counted.into_iter().zip(written).filter(|(_, w)| *w).map(|(c, _)| c))
            }
            // The leases run out and the deliveries are sent again: at least once.
            Err(e) => tracing::warn!(error = %e, "could not write webhook outcomes; they will be sent again"),
        }
    }
}

/// A number in `[0, 1)` for spreading retries.
fn jitter() -> f64 {
    crate::ledger::keys::random_bytes::<4>().map(|b| f64::from(u32::from_le_bytes(b)) / 4_294_967_296.0).unwrap_or(0.5)
}

/// The HTTP client: the timeout, no redirects followed (a redirect is an answer that is not
/// 2xx), no proxy from the environment (the address connected to must be the one checked), and
/// the guarded resolver.
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    // rustls with ring (no C toolchain beyond what SQLite needs); installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(address::Guarded { allow_private: settings.allow_private }))
        .user_agent(concat!("Assent-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn send(client: reqwest::Client, job: Job, settings: WebhookSettings) -> Outcome {
    let at = Utc::now();
    let outcome = |status: Option<u16>, error: Option<String>| Outcome {
        id: job.row.id,
        endpoint_id: job.row.endpoint_id,
        lease: job.lease.clone(),
        retry_since: from_stored_time(job.row.retry_since),
        at,
        status,
        error,
    };
    let (Some(body), Some(secret)) = (&job.body, &job.secret) else {
        return outcome(None, Some("what this delivery announces could not be read".into()));
    };
    // An address in the URL is connected to without asking the resolver: check it here.
    if !settings.allow_private
        && let Ok(url) = url::Url::parse(&job.url)
        && let Some(host) = url.host()
        && let Some(ip) = address::literal(&host)
        && !address::is_public(ip)
    {
        return outcome(None, Some(address::Refusal::Private { host: host.to_string() }.to_string()));
    }
    let id = webhook_id(job.row.id);
    let timestamp = at.timestamp();
    let signature = secret.sign(&id, timestamp, body.as_bytes());
    let sent = client
        .post(&job.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.clone())
        .send()
        .await;
    match sent {
        Ok(mut answer) => {
            let status = answer.status();
            // Read a little of the answer (bounded: the endpoint decides how much it sends).
            let mut read = Vec::new();
            while read.len() < MAX_ANSWER_BYTES {
                match answer.chunk().await {
                    Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            if status.is_success() {
                outcome(Some(status.as_u16()), None)
            } else {
                let detail: String = String::from_utf8_lossy(&read).chars().take(200).collect();
                let what = if status.is_redirection() { " (redirects are not followed)" } else { "" };
                let detail = if detail.trim().is_empty() { String::new() } else { format!(": {}", detail.trim()) };
                outcome(Some(status.as_u16()), Some(format!("answered {status}{what}{detail}")))
            }
        }
        Err(e) => outcome(None, Some(describe(&e, settings.timeout))),
    }
}

/// A failed request in a sentence, with its causes (the resolver's refusal among them).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut text = if e.is_connect() { "could not connect".to_owned() } else { "the request failed".to_owned() };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
