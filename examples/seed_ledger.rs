//! Fills a database with a large, valid ledger and times the audit queries on it.
//!
//! ```sh
//! ASSENT_DATABASE_URL=sqlite:///tmp/big.db cargo run --release --example seed_ledger -- 1000000 200000
//! ```
//!
//! Events are written in bulk (many rows per statement) with real hash chains, salted personal
//! hashes and real log leaves, so `assent verify` passes on the result; recorded times are
//! spread over the last 60 days. Salts here are derived from a counter (fast, not secret): a
//! seeded database is for measuring, not for real subjects.

use std::time::Instant;

use assent::db::hash::{Hex, bytes};
use assent::db::ledger::{EventFilter, event_horizon, list_events};
use assent::db::schema::{event_personal, events, log_leaves, log_nodes, log_state, subject_documents, subject_heads};
use assent::db::{Db, DbConnection, to_stored_time};
use assent::domain::{Covered, Slug, SubjectId, VersionNumber, sha256_hex};
use assent::ledger::chain::{Canonical, CanonicalEvidence, GENESIS, chain_hash, chain_time, salted};
use assent::log::tree;
use chrono::{Duration, Utc};
use diesel::prelude::*;

const CHUNK_SUBJECTS: usize = 2_000;

/// subject, key, seq, kind, document, version, covers id, recorded_at, prev_hash, chain_hash, salt, subject hash
type Row<'a> = (String, String, i64, &'a str, &'a str, i32, i64, chrono::NaiveDateTime, String, String, String, String);

/// A status row: subject key, document, state, version, covers id, updated at, the newest version
/// accepted, and the latest acceptance (the id of what it covered, when).
type State<'a> =
    (String, String, &'a str, i32, i64, chrono::NaiveDateTime, Option<i32>, Option<(i64, chrono::NaiveDateTime)>);

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
    let settings = assent::config::Settings::new(url.clone(), policies.clone());
    let keys = assent::startup::Keys::load(&mut conn, &settings, assent::startup::IfMissing::Generate)?;
    let set = assent::policies::load(std::path::Path::new(&policies)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    assent::policies::sync(&mut conn, &set, Utc::now())?;
    let mut log = LogTail::load(&mut conn)?;
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
    let covers_ids = steps
        .iter()
        .map(|(_, _, _, covers)| Ok(assent::db::ledger::covers_id(&mut conn, &serde_json::to_string(covers)?)?))
        .collect::<anyhow::Result<Vec<i64>>>()?;
    let per_subject = total.div_ceil(subjects);
    let start = Utc::now() - Duration::days(60);
    let began = Instant::now();
    let mut written = 0usize;
    let mut subject_base = 0;
    while written < total && subject_base < subjects {
        let chunk_end = (subject_base + CHUNK_SUBJECTS).min(subjects);
        let mut rows: Vec<Row<'_>> = Vec::new();
        let mut heads = Vec::new();
        let mut states: Vec<State<'_>> = Vec::new();
        for s in subject_base..chunk_end {
            let subject = format!("user-{s:07}");
            let key = keys.subject_keys.key(&SubjectId::parse(&subject)?);
            let mut prev = GENESIS.to_owned();
            let mut mine: Vec<State<'_>> = Vec::new();
            // 3 to 7 events a subject, averaging the requested number.
            let count = (per_subject.saturating_sub(2) + s % 5).min(total - written - rows.len());
            for seq in 1..=count {
                let (kind, document, version, covers) = &steps[(seq - 1) % steps.len()];
                let covers_id = covers_ids[(seq - 1) % steps.len()];
                let at = start
                    + Duration::milliseconds(
                        ((written + rows.len()) as f64 / total as f64 * 60.0 * 86_400_000.0) as i64,
                    );
                let recorded_at = to_stored_time(at);
                let recorded_text = chain_time(recorded_at.and_utc());
                let salt = sha256_hex(format!("seed salt {s} {seq}").as_bytes());
                let subject_hash = salted(&salt, "subject", &subject);
                let canonical = Canonical {
                    covers,
                    document: Some(document),
                    evidence: CanonicalEvidence { ip: None, locale: Some("en"), user_agent: None },
                    kind,
                    method: "api",
                    recorded_at: &recorded_text,
                    recorded_by: "seed",
                    seq: seq as i64,
                    subject: &subject_hash,
                    version: Some(*version),
                };
                let hash = chain_hash(&prev, &canonical);
                // As `ledger::record_once` keeps them: an acceptance or a withdrawal sets the
                // agreement and each covered part, a decline the agreement; only an acceptance
                // of the agreement moves its newest version accepted and its latest acceptance,
                // which later decisions keep.
                for c in covers.iter().filter(|c| *kind != "declined" || c.document.as_str() == *document) {
                    let earlier = mine.iter().position(|st| st.1 == c.document.as_str());
                    let (mut highest, mut accepted) = earlier.map_or((None, None), |i| (mine[i].6, mine[i].7));
                    if let Some(i) = earlier {
                        mine.remove(i);
                    }
                    if c.document.as_str() == *document && *kind == "accepted" {
                        highest = highest.max(Some(*version));
                        accepted = Some((covers_id, recorded_at));
                    }
                    mine.push((
                        key.clone(),
                        c.document.to_string(),
                        kind,
                        c.version.get() as i32,
                        covers_id,
                        recorded_at,
                        highest,
                        accepted,
                    ));
                }
                rows.push((
                    subject.clone(),
                    key.clone(),
                    seq as i64,
                    kind,
                    document,
                    *version,
                    covers_id,
                    recorded_at,
                    prev.clone(),
                    hash.clone(),
                    salt,
                    subject_hash,
                ));
                prev = hash;
            }
            states.extend(mine);
            if count > 0 {
                heads.push((key, count as i64, prev));
            }
        }
        (*conn).transaction(|c: &mut DbConnection| -> anyhow::Result<()> {
            let first_id: i64 =
                events::table.select(diesel::dsl::max(events::id)).first::<Option<i64>>(c)?.unwrap_or(0) + 1;
            for batch in rows.chunks(500) {
                let new: Vec<_> = batch
                    .iter()
                    .map(|(_, key, seq, kind, document, version, covers, at, prev, hash, _, subject_hash)| {
                        (
                            events::subject_key.eq(bytes(key)),
                            events::seq.eq(*seq),
                            events::kind.eq(*kind),
                            events::document.eq(Some(*document)),
                            events::version.eq(Some(*version)),
                            events::covers_id.eq(covers),
                            events::recorded_at.eq(*at),
                            events::recorded_by.eq("seed"),
                            events::method.eq("api"),
                            events::subject_hash.eq(bytes(subject_hash)),
                            events::locale.eq(Some("en")),
                            events::prev_hash.eq(bytes(prev)),
                            events::chain_hash.eq(bytes(hash)),
                        )
                    })
                    .collect();
                bulk!(c, diesel::insert_into(events::table).values(&new))?;
            }
            // The only writer: ids follow one another from `first_id`, in insertion order.
            let ids: Vec<(i64, Hex)> = events::table
                .filter(events::id.ge(first_id))
                .order(events::id.asc())
                .select((events::id, events::chain_hash))
                .load(c)?;
            let ids: Vec<(i64, String)> = ids.into_iter().map(|(id, hash)| (id, hash.0)).collect();
            anyhow::ensure!(ids.len() == rows.len(), "expected {} new events, found {}", rows.len(), ids.len());
            for (batch, id_batch) in rows.chunks(500).zip(ids.chunks(500)) {
                let values: Vec<_> = batch
                    .iter()
                    .zip(id_batch)
                    .map(|(r, (id, _))| {
                        (
                            event_personal::event_id.eq(*id),
                            event_personal::subject.eq(&r.0),
                            event_personal::salt.eq(bytes(&r.10)),
                        )
                    })
                    .collect();
                bulk!(c, diesel::insert_into(event_personal::table).values(&values))?;
            }
            log.append(c, &ids)?;
            for batch in heads.chunks(1000) {
                let values: Vec<_> = batch
                    .iter()
                    .map(|(s, q, h)| {
                        (
                            subject_heads::subject_key.eq(bytes(s)),
                            subject_heads::seq.eq(q),
                            subject_heads::chain_hash.eq(bytes(h)),
                        )
                    })
                    .collect();
                bulk!(c, diesel::insert_into(subject_heads::table).values(&values))?;
            }
            for batch in states.chunks(1000) {
                let values: Vec<_> = batch
                    .iter()
                    .map(|(s, d, k, v, cov, at, highest, accepted)| {
                        (
                            subject_documents::subject_key.eq(bytes(s)),
                            subject_documents::document.eq(d),
                            subject_documents::state.eq(*k),
                            subject_documents::version.eq(Some(*v)),
                            subject_documents::covers_id.eq(cov),
                            subject_documents::last_event_id.eq(0i64),
                            subject_documents::updated_at.eq(*at),
                            // The latest acceptance, which coverage groups by (its counts are
                            // kept by triggers as these rows go in).
                            subject_documents::highest_accepted.eq(*highest),
                            subject_documents::accepted_covers_id.eq(accepted.as_ref().map(|(c, _)| *c)),
                            subject_documents::accepted_at.eq(accepted.as_ref().map(|(_, at)| *at)),
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
    // PostgreSQL's planner statistics of a fresh bulk load describe the empty tables it started
    // from: a filtered page went from 3.7 ms to 0.96 s for want of them (issue 13), until
    // autovacuum's ANALYZE came round. So what was loaded is analysed before anything is timed
    // (`ASSENT_SEED_ANALYZE=0` leaves it out, to see the difference). Not on SQLite: the server
    // never analyses a SQLite file, so statistics written here would time plans that a real
    // deployment never gets.
    if matches!(&*conn, DbConnection::Postgres(_)) && std::env::var("ASSENT_SEED_ANALYZE").as_deref() != Ok("0") {
        let t = Instant::now();
        diesel::connection::SimpleConnection::batch_execute(
            &mut *conn,
            "ANALYZE events, event_personal, subject_heads, subject_documents, log_leaves, log_nodes, coverage_counts",
        )?;
        println!("analysed what was loaded in {:.1?}", t.elapsed());
    }

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
        let who = keys.subject_keys.key(&SubjectId::parse(&format!("user-{:07}", subjects / 2))?);
        Ok(format!("{} events", assent::db::ledger::events_of(&mut conn, &who)?.len()))
    })?;
    let catalog = assent::db::versions::load_catalog(&mut conn)?;
    if let Some(doc) = assent::domain::Slug::parse("service-agreement").ok().and_then(|s| catalog.document(&s)) {
        assent::db::coverage::fold(&mut conn)?;
        time("coverage of service-agreement", &mut || {
            Ok(format!("{:?}", assent::coverage::coverage(&mut conn, &catalog, doc, chrono::Utc::now())?))
        })?;
    }
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

/// The log's right edge, kept in memory while leaves are appended in bulk: appending needs only
/// the current peaks (the complete subtrees that a new leaf can still join).
struct LogTail {
    size: u64,
    peaks: Vec<((u32, u64), tree::Hash)>,
}

impl LogTail {
    fn load(conn: &mut DbConnection) -> anyhow::Result<Self> {
        let head = assent::log::head(conn)?;
        let mut ids = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if head.size & (1 << level) != 0 {
                ids.push((level, start >> level));
                start += 1 << level;
            }
        }
        let stored = assent::db::log::nodes(conn, &ids)?;
        let mut peaks = Vec::new();
        for id in ids {
            let hex = stored.get(&id).ok_or_else(|| anyhow::anyhow!("log node {id:?} missing"))?;
            peaks.push((id, assent::log::from_hex(hex)?));
        }
        Ok(Self { size: head.size, peaks })
    }

    /// Appends event leaves in bulk, writes their nodes, and moves the log's state.
    fn append(&mut self, c: &mut DbConnection, events: &[(i64, String)]) -> anyhow::Result<()> {
        let mut leaves = Vec::new();
        let mut nodes = Vec::new();
        for (id, chain) in events {
            let data = assent::log::event_leaf("accepted", chain);
            let created = tree::append(self.size, tree::leaf_hash(data.as_bytes()), |want| {
                self.peaks.iter().find(|(p, _)| *p == want).map_or([0; 32], |(_, h)| *h)
            });
            // The new subtree replaces the peaks it absorbed.
            let top = created.last().copied().unwrap_or(((0, self.size), [0; 32]));
            let absorbed = created.len() - 1;
            self.peaks.truncate(self.peaks.len() - absorbed);
            self.peaks.push(top);
            leaves.push((self.size as i64, *id));
            nodes.extend(created);
            self.size += 1;
        }
        for batch in leaves.chunks(500) {
            let values: Vec<_> = batch
                .iter()
                // As the server writes them: an event's leaf bytes are written out from its row.
                .map(|(idx, id)| {
                    (log_leaves::idx.eq(*idx), log_leaves::event_id.eq(Some(*id)), log_leaves::data.eq(None::<String>))
                })
                .collect();
            bulk!(c, diesel::insert_into(log_leaves::table).values(&values))?;
        }
        for batch in nodes.chunks(500) {
            let values: Vec<_> = batch
                .iter()
                .map(|((level, idx), hash)| {
                    (
                        log_nodes::level.eq(*level as i32),
                        log_nodes::idx.eq(*idx as i64),
                        log_nodes::hash.eq(hash.to_vec()),
                    )
                })
                .collect();
            bulk!(c, diesel::insert_into(log_nodes::table).values(&values))?;
        }
        let mut root = self.peaks.last().map_or_else(tree::empty_root, |(_, h)| *h);
        for (_, left) in self.peaks.iter().rev().skip(1) {
            root = tree::node_hash(left, &root);
        }
        diesel::update(log_state::table)
            .set((log_state::size.eq(self.size as i64), log_state::root.eq(assent::log::to_hex(&root))))
            .execute(c)?;
        Ok(())
    }
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
