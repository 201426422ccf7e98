//! The ceiling for durable acceptances on this machine: the acceptances of `benches/load.sh`'s
//! `accept` workload (service-agreement v1, with evidence, for random subjects among 20,000),
//! recorded through the server's own `Recorder` (the same batching, the same statements, the
//! same fsync on every commit) by as many clients as wrk has connections, but with no HTTP, no
//! JSON and no API key. What the HTTP figure reaches of this is what HTTP costs.
//!
//! ```sh
//! cargo bench --bench ceiling                      # SQLite, in a temporary folder
//! ASSENT_CEILING_DATABASE_URL=postgres://postgres@127.0.0.1:5432/assent_ceiling cargo bench --bench ceiling
//! ```
//! `ASSENT_CEILING_SECONDS` (10) and `ASSENT_CEILING_CLIENTS` (64) set the run; the PostgreSQL
//! database should be fresh for each run.
//!
//! Then it measures the log's sequencer alone, the one step that every server takes in turn
//! (holding the log's lock): a copy of every event just recorded, under other subject keys, is
//! queued for the log in one transaction, and one integration takes the whole queue in (5,000
//! leaves per round, as `sync` and every start do). That leaves the benchmark's database with
//! events whose chains `verify` does not know: it is for measuring only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use assent::db::Db;
use assent::domain::SubjectId;
use assent::ledger::decide::{Ask, plan};
use assent::ledger::lane::Recorder;
use assent::ledger::{Evidence, Kind, Method, Recorded, SubjectKeys};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let seconds = setting("ASSENT_CEILING_SECONDS", 10);
    let clients = setting("ASSENT_CEILING_CLIENTS", 64);
    let folder = tempfile::tempdir()?;
    let url = std::env::var("ASSENT_CEILING_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", folder.path().join("ceiling.db").display()));
    let db = Db::open(&url, assent::config::default_pool_size(&url))?;
    let set = assent::policies::load(std::path::Path::new("policies"))
        .map_err(|problems| anyhow::anyhow!("the policy folder has {} problems", problems.len()))?;
    let catalog = {
        let mut conn = db.get()?;
        assent::policies::sync(&mut conn, &set, chrono::Utc::now()).map_err(|e| anyhow::anyhow!("{e}"))?;
        Arc::new(assent::db::versions::load_catalog(&mut conn)?)
    };
    let keys = Arc::new(SubjectKeys::new(b"the ceiling benchmark's secret"));
    let recorder = Arc::new(Recorder::new(db.clone(), Default::default(), Default::default()));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (recorded, mut latencies, failed) = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let (catalog, keys, recorder) = (catalog.clone(), keys.clone(), recorder.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut failed = 0u64;
                    // Uniformly random subjects among 20,000, as load/accept.lua picks them (some
                    // chains grow): xorshift64, seeded per client.
                    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (client + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    while Instant::now() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let n = x % 20_000 + 1;
                        let started = Instant::now();
                        let outcome = record(&recorder, &catalog, &keys, n).await;
                        match outcome {
                            Ok(()) => latencies.push(started.elapsed()),
                            Err(e) => {
                                failed += 1;
                                if failed == 1 {
                                    eprintln!("client {client}: {e}");
                                }
                            }
                        }
                    }
                    (latencies, failed)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut failed = 0;
        for task in tasks {
            match task.await {
                Ok((latencies, f)) => {
                    all.extend(latencies);
                    failed += f;
                }
                Err(e) => {
                    eprintln!("a client stopped: {e}");
                    failed += 1;
                }
            }
        }
        (all.len(), all, failed)
    });
    latencies.sort();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "{}: {} clients, {seconds} s: {:.0} acceptances/s, p50 {:.2} ms, p99 {:.2} ms, {failed} failed",
        db.backend(),
        clients,
        recorded as f64 / seconds as f64,
        ms(at(0.5)),
        ms(at(0.99)),
    );
    sequencer(&db)?;
    Ok(())
}

/// Leaves per second that one integration takes in, from a queue of every recorded event's copy.
fn sequencer(db: &Db) -> anyhow::Result<()> {
    use diesel::connection::SimpleConnection;
    let mut conn = db.get()?;
    let columns = "seq, kind, document, version, covers_id, recorded_at, recorded_by, method, subject_hash, ip_hash, \
                   user_agent_hash, locale, idempotency_key, request_hash, prev_hash, chain_hash";
    // Copies of this run's events only (a database used before holds earlier copies).
    let copy = format!("-copy-{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    conn.batch_execute(&format!(
        "BEGIN; INSERT INTO events (subject_key, {columns}) SELECT subject_key || '{copy}', {columns} FROM events \
         WHERE subject_key NOT LIKE '%-copy-%'; \
         INSERT INTO log_queue (event_id) SELECT id FROM events WHERE subject_key LIKE '%{copy}' ORDER BY id; COMMIT"
    ))?;
    let queued = assent::db::log::queue_len(&mut conn)?;
    let started = Instant::now();
    let head = conn.write_transaction(assent::log::integrate)?;
    let took = started.elapsed();
    println!(
        "{}: the sequencer took {queued} queued leaves in {:.2} s: {:.0} leaves/s (log size now {})",
        db.backend(),
        took.as_secs_f64(),
        queued as f64 / took.as_secs_f64(),
        head.size,
    );
    Ok(())
}

async fn record(
    recorder: &Recorder,
    catalog: &assent::domain::Catalog,
    keys: &SubjectKeys,
    n: u64,
) -> anyhow::Result<()> {
    let ask = Ask {
        subject: SubjectId::parse(&format!("load-{n}"))?,
        document: "service-agreement".into(),
        kind: Kind::Accepted,
        version: Some(1),
        // As the API keeps the load script's evidence (the address cut to its network).
        evidence: Evidence {
            ip: Some("198.51.100.0".into()),
            user_agent: Some("wrk".into()),
            locale: Some("en".into()),
        },
        idempotency_key: None,
        recorded_by: "ceiling".into(),
        method: Method::Api,
        sent: None,
        audience: None,
    };
    let decision = plan(catalog, keys, ask, chrono::Utc::now())?;
    match recorder.record(decision).await? {
        Recorded::Created(_) | Recorded::Replayed(_) => Ok(()),
    }
}
