//! Fills a database with a large, valid ledger and times the audit queries on it.
//!
//! ```sh
//! ASSENT_DATABASE_URL=sqlite:///tmp/big.db cargo run --release --example seed_ledger -- 1000000 200000
//! ```
//!
//! Events are written in bulk (many rows per statement) with real hash chains, so `assent verify`
//! passes on the result; recorded times are spread over the last 60 days.

use std::time::Instant;

use assent::db::ledger::{EventFilter, NewEventRow, coverage, event_horizon, list_events};
use assent::db::schema::{events, subject_documents, subject_heads};
use assent::db::{Db, DbConnection, to_stored_time};
use assent::domain::{Covered, Slug, VersionNumber};
use assent::ledger::chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time};
use chrono::{Duration, Utc};
use diesel::prelude::*;

const CHUNK_SUBJECTS: usize = 2_000;

/// subject, seq, kind, document, version, covers, recorded_at, prev_hash, chain_hash
type Row<'a> = (String, i64, &'a str, &'a str, i32, String, chrono::NaiveDateTime, String, String);

/// Multi-row INSERTs are not offered on diesel's multi-backend connection, so the same statement
/// is written for each backend.
macro_rules! bulk {
    ($conn:expr, $query:expr) => {
        match $conn {
            DbConnection::Sqlite(inner) => $query.execute(inner),
            DbConnection::Postgres(inner) => $query.execute(inner),
        }
    };
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let subjects: usize = args.get(2).map_or(Ok(200_000), |a| a.parse())?;
    let url = std::env::var("ASSENT_DATABASE_URL").unwrap_or_else(|_| "sqlite://assent.db".into());
    let policies = std::env::var("ASSENT_POLICIES").unwrap_or_else(|_| "./policies".into());
    let db = Db::open(&url, 2)?;
    let mut conn = db.get()?;
    let set = assent::policies::load(std::path::Path::new(&policies)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    assent::policies::sync(&mut conn, &set, Utc::now())?;
    let catalog = assent::db::versions::load_catalog(&mut conn)?;
    let cover = |slug: &str, n: u32| -> anyhow::Result<Covered> {
        let s = Slug::parse(slug)?;
        let v = catalog
            .document(&s)
            .and_then(|d| d.version(VersionNumber::new(n)?))
            .ok_or_else(|| anyhow::anyhow!("{slug} v{n}"))?;
        Ok(Covered { document: s, version: v.number, sha256: v.sha256.clone() })
    };
    // What subjects do, in turn: accept the agreement (with its part), accept the SDK policy,
    // decline the next agreement version, accept it early, withdraw.
    let steps = [
        ("accepted", "service-agreement", 1, vec![cover("service-agreement", 1)?, cover("privacy-policy", 3)?]),
        ("accepted", "sdk-privacy-policy", 1, vec![cover("sdk-privacy-policy", 1)?]),
        ("declined", "service-agreement", 2, vec![cover("service-agreement", 2)?]),
        ("accepted", "service-agreement", 2, vec![cover("service-agreement", 2)?, cover("privacy-policy", 3)?]),
        ("withdrawn", "service-agreement", 2, vec![cover("service-agreement", 2)?, cover("privacy-policy", 3)?]),
    ];
    let per_subject = total.div_ceil(subjects);
    let start = Utc::now() - Duration::days(60);
    let began = Instant::now();
    let mut written = 0usize;
    let mut subject_base = 0;
    while written < total && subject_base < subjects {
        let chunk_end = (subject_base + CHUNK_SUBJECTS).min(subjects);
        let mut rows: Vec<Row<'_>> = Vec::new();
        let mut heads = Vec::new();
        let mut states: Vec<(String, String, &str, i32, String, chrono::NaiveDateTime)> = Vec::new();
        for s in subject_base..chunk_end {
            let subject = format!("user-{s:07}");
            let mut prev = GENESIS.to_owned();
            // 3 to 7 events a subject, averaging the requested number.
            let count = (per_subject.saturating_sub(2) + s % 5).min(total - written - rows.len());
            for seq in 1..=count {
                let (kind, document, version, covers) = &steps[(seq - 1) % steps.len()];
                let at = start
                    + Duration::milliseconds(
                        ((written + rows.len()) as f64 / total as f64 * 60.0 * 86_400_000.0) as i64,
                    );
                let recorded_at = to_stored_time(at);
                let recorded_text = chain_time(recorded_at.and_utc());
                let canonical = Canonical {
                    covers,
                    document,
                    evidence: CanonicalEvidence {
                        ip: Some("198.51.100.0/24"),
                        locale: Some("en"),
                        user_agent: Some("seed"),
                    },
                    kind,
                    method: "api",
                    recorded_at: &recorded_text,
                    recorded_by: "seed",
                    seq: seq as i64,
                    subject: &subject,
                    version: Some(*version),
                };
                let hash = chain_hash(&prev, &canonical);
                let covers_json = serde_json::to_string(covers)?;
                for c in covers.iter().filter(|c| *kind != "declined" || c.document.as_str() == *document) {
                    states.retain(|(su, d, ..)| !(su == &subject && d == c.document.as_str()));
                    states.push((
                        subject.clone(),
                        c.document.to_string(),
                        kind,
                        c.version.get() as i32,
                        covers_json.clone(),
                        recorded_at,
                    ));
                }
                rows.push((
                    subject.clone(),
                    seq as i64,
                    kind,
                    document,
                    *version,
                    covers_json,
                    recorded_at,
                    prev.clone(),
                    hash.clone(),
                ));
                prev = hash;
            }
            if count > 0 {
                heads.push((subject, count as i64, prev));
            }
        }
        (*conn).transaction(|c: &mut DbConnection| -> anyhow::Result<()> {
            for batch in rows.chunks(500) {
                let new: Vec<NewEventRow<'_>> = batch
                    .iter()
                    .map(|(subject, seq, kind, document, version, covers, at, prev, hash)| NewEventRow {
                        subject,
                        seq: *seq,
                        kind,
                        document,
                        version: Some(*version),
                        covers,
                        recorded_at: *at,
                        recorded_by: "seed",
                        method: "api",
                        ip: Some("198.51.100.0/24"),
                        user_agent: Some("seed"),
                        locale: Some("en"),
                        idempotency_key: None,
                        request_hash: None,
                        prev_hash: prev,
                        chain_hash: hash,
                    })
                    .collect();
                bulk!(c, diesel::insert_into(events::table).values(&new))?;
            }
            for batch in heads.chunks(1000) {
                let values: Vec<_> = batch
                    .iter()
                    .map(|(s, q, h)| {
                        (subject_heads::subject.eq(s), subject_heads::seq.eq(q), subject_heads::chain_hash.eq(h))
                    })
                    .collect();
                bulk!(c, diesel::insert_into(subject_heads::table).values(&values))?;
            }
            for batch in states.chunks(1000) {
                let values: Vec<_> = batch
                    .iter()
                    .map(|(s, d, k, v, cov, at)| {
                        (
                            subject_documents::subject.eq(s),
                            subject_documents::document.eq(d),
                            subject_documents::state.eq(*k),
                            subject_documents::version.eq(Some(*v)),
                            subject_documents::covers.eq(cov),
                            subject_documents::last_event_id.eq(0i64),
                            subject_documents::updated_at.eq(*at),
                        )
                    })
                    .collect();
                bulk!(c, diesel::insert_into(subject_documents::table).values(&values))?;
            }
            Ok(())
        })?;
        written += rows.len();
        subject_base = chunk_end;
        if subject_base % 20_000 == 0 {
            eprintln!("{written} events, {subject_base} subjects, {:.0?}", began.elapsed());
        }
    }
    println!("seeded {written} events over {subject_base} subjects in {:.1?}", began.elapsed());

    let time = |label: &str, f: &mut dyn FnMut() -> anyhow::Result<String>| -> anyhow::Result<()> {
        let t = Instant::now();
        let what = f()?;
        println!("{label}: {:.1?} ({what})", t.elapsed());
        Ok(())
    };
    time("filtered page (document=service-agreement, kind=declined, 100 events, first page)", &mut || {
        let f = EventFilter {
            document: Some("service-agreement".into()),
            kind: Some("declined".into()),
            ..Default::default()
        };
        let h = event_horizon(&mut conn)?;
        Ok(format!("{} events", list_events(&mut conn, &f, 0, h, 100)?.len()))
    })?;
    time("the same filter, a page deep in the ledger (after 90% of the events)", &mut || {
        let f = EventFilter {
            document: Some("service-agreement".into()),
            kind: Some("declined".into()),
            ..Default::default()
        };
        let h = event_horizon(&mut conn)?;
        let after = h * 9 / 10;
        Ok(format!("{} events", list_events(&mut conn, &f, after, h, 100)?.len()))
    })?;
    time("one subject's events", &mut || {
        Ok(format!("{} events", assent::db::ledger::events_of(&mut conn, &format!("user-{:07}", subjects / 2))?.len()))
    })?;
    time("coverage of service-agreement v1", &mut || {
        Ok(format!("{:?}", coverage(&mut conn, "service-agreement", 1)?))
    })?;
    time("full CSV export", &mut || {
        let mut sink = CountingSink(0);
        let n = assent::ledger::export::export(
            &mut conn,
            &EventFilter::default(),
            assent::ledger::export::Format::Csv,
            &mut sink,
        )?;
        Ok(format!("{n} rows, {} MB", sink.0 / 1_000_000))
    })?;
    Ok(())
}

struct CountingSink(usize);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
