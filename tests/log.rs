//! The log (contract §7) and erasure (§8) over HTTP and the CLI: receipts in the log, proofs
//! checked against RFC 9162's own definitions, saved checkpoints that catch truncation, every
//! version column covered, erasure that leaves everything verifiable, and read-only commands
//! that refuse a missing database.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{Backend, TestApp, assent, write};

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
    write(dir, "terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\nsummary: Second.\n---\n# Terms\n\nTwo.\n");
    write(dir, "terms/v3.md", "---\ntitle: Terms\neffective: 2999-01-01\n---\nTerms three.\n");
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nPrivate.\n");
    write(
        dir,
        "cookies/v1.md",
        "---\ntitle: Cookies\neffective: 2020-01-01\nacceptance: informational\n---\nCrumbs.\n",
    );
    write(dir, "sdk/v1.md", "---\ntitle: SDK\neffective: 2020-01-01\n---\nSDK.\n");
}

struct Log {
    app: TestApp,
    write: String,
    read: String,
    admin: String,
}

fn log(backend: &Backend) -> Log {
    let app = TestApp::spawn_configured(backend, folder, |s| {
        s.return_origins = assent::consent::ReturnOrigins::parse("https://app.example.com").unwrap();
    });
    let (write, read, admin) = (app.key("host", "write"), app.key("auditor", "read"), app.key("ops", "admin"));
    Log { app, write, read, admin }
}

impl Log {
    fn accept(&self, subject: &str, document: &str, version: u32) -> Value {
        let r = self.app.post(
            &format!("/api/v1/subjects/{subject}/acceptances"),
            &self.write,
            &json!({"document": document, "version": version, "evidence": {"ip": "203.0.113.77", "user_agent": "ErinAgent/9.9", "locale": "en-GB"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    fn get(&self, path: &str) -> common::Response {
        self.app.get_auth(path, &self.read)
    }

    fn checkpoint(&self) -> (u64, [u8; 32], String) {
        let r = self.get("/api/v1/log/checkpoint");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
        let lines: Vec<&str> = r.body.lines().collect();
        let root: [u8; 32] = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
        (lines[1].parse().unwrap(), root, r.body.clone())
    }

    fn leaves(&self, size: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let r = self.get(&format!("/api/v1/log/leaves?start={}&end={size}", out.len()));
            assert_eq!(r.status, 200, "{}", r.body);
            let page = r.json()["leaves"].as_array().unwrap().clone();
            assert!(!page.is_empty());
            for leaf in page {
                assert_eq!(leaf["index"].as_u64().unwrap(), out.len() as u64);
                out.push(STANDARD.decode(leaf["data"].as_str().unwrap()).unwrap());
            }
        }
        out
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = assent(args, &self.app.db.url, self.app.policies.path());
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

// RFC 9162 §2.1, straight from the definitions: an independent check of the server's proofs.
type H = [u8; 32];

fn sha(parts: &[&[u8]]) -> H {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn leaf_hash(data: &[u8]) -> H {
    sha(&[&[0], data])
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[H]) -> H {
    match d.len() {
        0 => sha(&[]),
        1 => d[0],
        n => {
            let k = split(n);
            sha(&[&[1], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

fn path(m: usize, d: &[H]) -> Vec<H> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[H], b: bool) -> Vec<H> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn hexes(v: &Value) -> Vec<H> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

fn receipts_are_leaves_with_proofs_by_the_rfc(backend: Backend) {
    let l = log(&backend);
    let mut receipts = Vec::new();
    for (subject, doc, v) in [("ann", "terms", 2), ("bob", "sdk", 1), ("ann", "sdk", 1), ("cy", "terms", 3)] {
        receipts.push(l.accept(subject, doc, v));
    }
    let (size, root, _) = l.checkpoint();
    let leaves = l.leaves(size);
    let hashes: Vec<H> = leaves.iter().map(|d| leaf_hash(d)).collect();
    assert_eq!(mth(&hashes), root, "the checkpoint's root is the tree of the leaves served");
    let versions = leaves.iter().filter(|d| String::from_utf8_lossy(d).contains("\"type\":\"version\"")).count();
    assert_eq!(versions, 6, "every published file is a leaf");
    for r in &receipts {
        let index = r["log_index"].as_u64().expect("a receipt names its leaf");
        let want = format!("{{\"chain_hash\":\"{}\",\"type\":\"event\"}}", r["chain_hash"].as_str().unwrap());
        assert_eq!(String::from_utf8_lossy(&leaves[index as usize]), want);
    }
    for m in 0..size as usize {
        let p = l.get(&format!("/api/v1/log/proof/inclusion?index={m}&size={size}")).json();
        assert_eq!(hexes(&p), path(m, &hashes), "inclusion of {m} in {size}");
    }
    for from in 1..size as usize {
        let p = l.get(&format!("/api/v1/log/proof/consistency?from={from}&size={size}")).json();
        assert_eq!(hexes(&p), subproof(from, &hashes, true), "consistency {from} -> {size}");
    }
    let version_leaf: Value = serde_json::from_slice(&leaves[1]).unwrap();
    assert_eq!(version_leaf["type"], "version");
    assert!(version_leaf["html_sha256"].as_str().unwrap().len() == 64, "{version_leaf}");

    // Bad input: 400 with the JSON error, never 5xx; the key endpoint is public, the rest not.
    for bad in [
        format!("/api/v1/log/proof/inclusion?index={size}&size={size}"),
        format!("/api/v1/log/proof/inclusion?index=0&size={}", size + 1),
        format!("/api/v1/log/proof/consistency?from={}&size={size}", size + 1),
        format!("/api/v1/log/proof/consistency?from=0&size={}", size + 5),
        "/api/v1/log/proof/inclusion?index=x&size=1".into(),
        "/api/v1/log/proof/inclusion?index=-1&size=1".into(),
        "/api/v1/log/leaves?start=5&end=2".into(),
        format!("/api/v1/log/leaves?start=0&end={}", size + 1),
        "/api/v1/log/leaves?start=0".into(),
    ] {
        let r = l.get(&bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"]["message"].is_string(), "{bad}");
    }
    assert_eq!(l.app.get("/api/v1/log/checkpoint").status, 401);
    let key = l.app.get("/api/v1/log/key");
    assert_eq!(key.status, 200);
    assert!(key.body.trim().starts_with("assent-log-"), "{}", key.body);
}

/// Deletes what a database owner would delete to hide events, and rebuilds the log from what is
/// left so that it is consistent again.
fn rebuild_log_without(l: &Log, delete: &str) {
    l.app.sql(&format!(
        "DELETE FROM log_nodes; DELETE FROM log_leaves; DELETE FROM log_queue; {delete}
         UPDATE log_state SET size = 0, root = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
         INSERT INTO log_queue (version_id) SELECT id FROM versions ORDER BY id;
         INSERT INTO log_queue (event_id) SELECT id FROM events ORDER BY id;"
    ));
    let (code, out, err) = l.cli(&["sync"]);
    assert_eq!(code, 0, "{out}{err}");
}

fn a_saved_checkpoint_catches_truncation_and_a_deleted_subject(backend: Backend) {
    let l = log(&backend);
    l.accept("dora", "terms", 2);
    l.accept("eve", "terms", 2);
    l.accept("eve", "sdk", 1);
    l.accept("fay", "sdk", 1);
    let (code, saved, err) = l.cli(&["log", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    let (_, pinned, _) = l.cli(&["log", "key"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoint.txt");
    std::fs::write(&file, &saved).unwrap();
    let file = file.to_str().unwrap();
    let (code, out, _) = l.cli(&["verify", "--checkpoint", file, "--verifier-key", pinned.trim()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 saved checkpoints: all intact"), "{out}");

    // Eve's newest event goes, with its status row, and her head rolls back.
    rebuild_log_without(
        &l,
        "DELETE FROM event_personal WHERE event_id = 3; DELETE FROM events WHERE id = 3;
         DELETE FROM subject_documents WHERE document = 'sdk' AND subject_key = (SELECT subject_key FROM events WHERE id = 2);
         UPDATE subject_heads SET seq = 1, chain_hash = (SELECT chain_hash FROM events WHERE id = 2) WHERE subject_key = (SELECT subject_key FROM events WHERE id = 2);",
    );
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 0, "without a saved checkpoint, a careful owner's truncation passes: {out}");
    let (code, out, _) = l.cli(&["verify", "--checkpoint", file, "--verifier-key", pinned.trim()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("BROKEN checkpoint {file}:")), "{out}");

    // A whole subject goes (and, as a careful owner would see to, from the count of known
    // subjects that `verify` recounts).
    let l = log(&backend);
    for s in ["gus", "hal", "ida"] {
        l.accept(s, "terms", 2);
    }
    let (_, saved, _) = l.cli(&["log", "checkpoint"]);
    std::fs::write(dir.path().join("second.txt"), &saved).unwrap();
    let second = dir.path().join("second.txt");
    rebuild_log_without(
        &l,
        "DELETE FROM event_personal WHERE event_id = 2;
         DELETE FROM subject_documents WHERE subject_key = (SELECT subject_key FROM events WHERE id = 2);
         DELETE FROM subject_heads WHERE subject_key = (SELECT subject_key FROM events WHERE id = 2);
         DELETE FROM events WHERE id = 2;
         UPDATE coverage_counts SET n = n - 1 WHERE state = 'known';",
    );
    assert_eq!(l.cli(&["verify"]).0, 0);
    let (code, out, _) = l.cli(&["verify", "--checkpoint", second.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no longer hash to its root") || out.contains("were removed"), "{out}");

    // Cutting the log's tail outright is named by the first missing leaf.
    let (size, _, _) = log_size(&l);
    l.app.sql(&format!(
        "DELETE FROM log_nodes WHERE level = 0 AND idx = {}; DELETE FROM log_leaves WHERE idx = {};",
        size - 1,
        size - 1
    ));
    let (code, out, _) = l.cli(&["verify", "--checkpoint", second.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("leaves from index {} on were removed", size - 1)), "{out}");
    // A checkpoint that is not the log's own is refused as such.
    std::fs::write(dir.path().join("forged.txt"), saved.replacen('\n', "\n9", 1)).unwrap();
    let (code, out, _) = l.cli(&["verify", "--checkpoint", dir.path().join("forged.txt").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("does not verify"), "{out}");
}

fn log_size(l: &Log) -> (u64, [u8; 32], String) {
    l.checkpoint()
}

/// Applies each edit behind Assent's back, then `verify` must fail and name each one.
fn tampered_and_named(l: &Log, edits: &[(String, impl AsRef<str>)]) {
    for (sql, _) in edits {
        l.app.sql(&format!("{sql};"));
    }
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    for (sql, needle) in edits {
        assert!(out.contains(needle.as_ref()), "{sql}: {out}");
    }
}

fn every_version_column_is_covered(backend: Backend) {
    let l = log(&backend);
    l.accept("kim", "terms", 2);
    assert_eq!(l.cli(&["verify"]).0, 0);
    let version = |slug: &str, n: u32| {
        format!("version = {n} AND document_id = (SELECT id FROM documents WHERE slug = '{slug}')")
    };
    // One column per version row; each must be named.
    let edits = [
        (format!("UPDATE versions SET html = '<p>other</p>' WHERE {}", version("terms", 1)), "terms v1"),
        (format!("UPDATE versions SET title = 'Other' WHERE {}", version("terms", 2)), "terms v2"),
        (format!("UPDATE versions SET effective = '2030-01-01 00:00:00' WHERE {}", version("terms", 3)), "terms v3"),
        (format!("UPDATE versions SET material = NOT material WHERE {}", version("privacy", 1)), "privacy v1"),
        (format!("UPDATE versions SET acceptance = 'required' WHERE {}", version("cookies", 1)), "cookies v1"),
        (format!("UPDATE versions SET summary = 'Nothing changed.' WHERE {}", version("sdk", 1)), "sdk v1"),
    ];
    let edits = edits.map(|(sql, name)| (sql, format!("(version {name}) no longer matches")));
    tampered_and_named(&l, &edits);
    let l = log(&backend);
    let edits = [
        (format!("UPDATE versions SET part_of = NULL WHERE {}", version("privacy", 1)), "privacy v1) no longer"),
        (format!("UPDATE versions SET toc = '[]' WHERE {}", version("terms", 2)), "terms v2) no longer"),
        (
            format!("UPDATE versions SET body = 'Crumbs?' WHERE {}", version("cookies", 1)),
            "version cookies v1: its stored body",
        ),
        (
            format!("UPDATE versions SET source = source || ' ' WHERE {}", version("sdk", 1)),
            "version sdk v1: its stored text",
        ),
        (
            format!("UPDATE versions SET sha256 = '{}' WHERE {}", "0".repeat(64), version("terms", 1)),
            "terms v1) no longer",
        ),
        (format!("UPDATE versions SET version = 9 WHERE {}", version("terms", 3)), "terms v9) no longer"),
    ];
    tampered_and_named(&l, &edits);
    // The body the diffs are made from must be exactly the file's (not just any end of it), and
    // the publication time (the feed's, the order of versions) is in the leaf.
    let l = log(&backend);
    let edits = [
        (
            format!("UPDATE versions SET body = '' WHERE {}", version("privacy", 1)),
            "version privacy v1: its stored body",
        ),
        (
            format!("UPDATE versions SET published_at = '2031-01-01 00:00:00' WHERE {}", version("terms", 1)),
            "terms v1) no longer",
        ),
    ];
    tampered_and_named(&l, &edits);
}

/// Every table's rows as text, to look for personal values in them.
fn database_text(l: &Log) -> String {
    match l.app.db.url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut bytes = std::fs::read(path).unwrap();
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => {
            use diesel::{Connection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                t: String,
            }
            let mut c = diesel::PgConnection::establish(&l.app.db.url).unwrap();
            let mut out = String::new();
            for table in [
                "events",
                "event_personal",
                "subject_heads",
                "subject_documents",
                "log_leaves",
                "log_queue",
                "api_keys",
            ] {
                let rows: Vec<Row> =
                    diesel::sql_query(format!("SELECT t::text AS t FROM {table} t")).load(&mut c).unwrap();
                for r in rows {
                    out.push_str(&r.t);
                    out.push('\n');
                }
            }
            out
        }
    }
}

fn erasure_keeps_everything_verifiable_and_forgets_the_person(backend: Backend) {
    let l = log(&backend);
    let who = "erin-8f3a61c2";
    l.accept(who, "terms", 2);
    let keyed = l.app.post(
        &format!("/api/v1/subjects/{who}/acceptances"),
        &l.write,
        &json!({"document": "sdk", "version": 1, "idempotency_key": format!("accept-sdk-{who}"),
                "evidence": {"ip": "203.0.113.77", "user_agent": "ErinAgent/9.9"}}),
    );
    assert_eq!(keyed.status, 201, "{}", keyed.body);
    l.accept("other", "terms", 2);
    let link = l.app.post(
        "/api/v1/consent-links",
        &l.write,
        &json!({"subject": who, "return_to": "https://app.example.com/back", "ttl_seconds": 600}),
    );
    let link_url = link.json()["url"].as_str().map(str::to_owned);
    assert!(database_text(&l).contains(who), "the id is held before erasure");

    assert_eq!(l.app.delete_auth(&format!("/api/v1/subjects/{who}"), &l.write).status, 403);
    let r = l.app.delete_auth(&format!("/api/v1/subjects/{who}"), &l.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    let erased = r.json();
    assert_eq!(erased["subject"], who);
    assert_eq!(erased["erased_events"], 2);
    assert!(erased["log_index"].is_u64(), "{erased}");
    assert_eq!(l.app.delete_auth(&format!("/api/v1/subjects/{who}"), &l.admin).status, 404, "erasing twice");
    assert_eq!(l.app.delete_auth("/api/v1/subjects/nobody-at-all", &l.admin).status, 404);

    let status = l.get(&format!("/api/v1/subjects/{who}/status")).json();
    assert!(status["documents"].as_array().unwrap().iter().all(|d| d["state"] == "never"), "{status}");
    let events = l.get(&format!("/api/v1/subjects/{who}/events")).json();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3, "two decisions and the erasure");
    for e in events {
        assert_eq!(e["subject"], Value::Null);
        assert_eq!(e["erased"], true);
        assert_eq!(e["evidence"]["ip"], Value::Null);
    }
    assert_eq!(events[2]["kind"], "erased");
    let export = l.app.get_auth("/api/v1/export?format=jsonl", &l.admin);
    assert_eq!(export.status, 200);
    assert!(!export.body.contains(who) && export.body.contains("\"erased\":true"), "{}", export.body);
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 0, "erasure leaves every chain and the log verifiable: {out}");
    let text = database_text(&l);
    assert!(!text.contains(who), "the id is gone from every table");
    assert!(
        !text.contains("ErinAgent/9.9") || text.matches("ErinAgent/9.9").count() == 1,
        "only the other subject's user agent is left"
    );
    if let Some(url) = link_url {
        let path = url.split_once("/consent").map(|(_, rest)| format!("/consent{rest}")).unwrap();
        assert_eq!(l.app.get(&path).status, 410, "a link issued before the erasure no longer opens");
        assert_eq!(l.app.get(&path.replacen("/consent", "/me", 1)).status, 410);
    }
    // The CLI erases the same way, and says when there is nothing to erase.
    let (code, out, err) = l.cli(&["erase", "other"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("erased the personal data of 1 events"), "{out}");
    assert_eq!(l.cli(&["erase", "other"]).0, 1);
    assert!(!database_text(&l).contains("ErinAgent/9.9"), "no user agent is left");
    assert_eq!(l.cli(&["verify"]).0, 0);
}

fn the_auditor_script_rebuilds_the_tree_from_the_api(backend: Backend) {
    let l = log(&backend);
    let first = l.accept("jo", "terms", 2);
    let (_, _, old) = l.checkpoint();
    let second = l.accept("jo", "sdk", 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.txt"), old).unwrap();
    std::fs::write(dir.path().join("r1.json"), first.to_string()).unwrap();
    std::fs::write(dir.path().join("r2.json"), second.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audit_log.py");
    let run = || {
        std::process::Command::new("python3")
            .arg(&script)
            .args(["--url", &l.app.address, "--key", &l.read])
            .arg("--old-checkpoint")
            .arg(dir.path().join("old.txt"))
            .arg("--receipt")
            .arg(dir.path().join("r1.json"))
            .arg("--receipt")
            .arg(dir.path().join("r2.json"))
            .output()
            .expect("python3 runs the auditor's script")
    };
    let ok = run();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.contains("log intact"), "{text}");
    // A leaf edited in place (an event's leaf, which is written out from its row, given text of
    // its own): the root no longer matches the signed checkpoint.
    l.app.sql("UPDATE log_leaves SET data = '{\"chain_hash\":\"00\",\"type\":\"event\"}' WHERE idx = (SELECT max(idx) FROM log_leaves);");
    let broken = run();
    assert_eq!(broken.status.code(), Some(1), "{}", String::from_utf8_lossy(&broken.stdout));
}

fn read_only_commands_refuse_a_missing_database(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // On PostgreSQL, a database that exists but holds no Assent data.
    let empty = matches!(backend, Backend::Postgres(_)).then(|| common::TestDatabase::create(&backend));
    let url = match &empty {
        None => format!("sqlite://{}", dir.path().join("nothing-here.db").display()),
        Some(db) => db.url.clone(),
    };
    for args in [
        &["verify"][..],
        &["history", "someone"],
        &["export"],
        &["keys", "list"],
        &["log", "checkpoint"],
        &["erase", "someone"],
    ] {
        let out = assent(args, &url, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("no Assent data") || err.contains("no Assent database"), "{args:?}: {err}");
        assert!(!err.contains("all intact"));
    }
    if let Backend::Sqlite = backend {
        assert!(!dir.path().join("nothing-here.db").exists(), "nothing was created");
        let out = assent(&["sync"], &url, &common::shipped_policies());
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("created a new Assent database: SQLite file"));
        assert_eq!(assent(&["verify"], &url, dir.path()).status.code(), Some(0));
    }
}

fn erasure_requests_and_the_evidence_record(backend: Backend) {
    let l = log(&backend);
    let receipt = l.accept("kai", "terms", 2);
    let link = l.app.post(
        "/api/v1/consent-links",
        &l.write,
        &json!({"subject": "kai", "return_to": "https://app.example.com/back", "ttl_seconds": 600}),
    );
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let token = url.split("token=").nth(1).unwrap().to_owned();

    let record = l.app.get(&format!("/me/record?token={token}"));
    assert_eq!(record.status, 200, "{}", record.body);
    assert!(record.body.contains(receipt["chain_hash"].as_str().unwrap()), "the chain hash is shown");
    assert!(record.body.contains(receipt["sha256"].as_str().unwrap()), "the hash of what was shown");
    assert!(record.body.contains("/policies/terms/versions/2"), "a link to that exact text");
    let (size, _, checkpoint) = l.checkpoint();
    let origin = checkpoint.lines().next().unwrap();
    assert!(record.body.contains(&format!("{origin}\n{size}\n")), "the signed checkpoint is printed");
    assert!(record.body.contains(&format!("\u{2014} {origin} ")), "with its signature");
    let index = receipt["log_index"].as_u64().unwrap();
    let proof = l.get(&format!("/api/v1/log/proof/inclusion?index={index}&size={size}")).json();
    for h in proof["hashes"].as_array().unwrap() {
        assert!(record.body.contains(h.as_str().unwrap()), "the inclusion proof is printed");
    }

    let me = l.app.get(&format!("/me?token={token}"));
    let cookie = me.header("set-cookie").expect("a CSRF cookie").split(';').next().unwrap().to_owned();
    let field = me.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let asked = l.app.post_form("/me/erasure", &[("token", &token), ("csrf", &field)], Some(&cookie));
    assert_eq!(asked.status, 303, "{}", asked.body);
    let again = l.app.post_form("/me/erasure", &[("token", &token), ("csrf", &field)], Some(&cookie));
    assert_eq!(again.status, 303, "asking again is answered the same way");
    let refused = l.app.post_form("/me/erasure", &[("token", &token), ("csrf", "wrong")], Some(&cookie));
    assert_eq!(refused.status, 403, "no erasure request without the CSRF field");
    assert_eq!(l.get("/api/v1/erasure-requests").status, 403, "a read key may not list them");
    let listed = l.app.get_auth("/api/v1/erasure-requests", &l.admin).json();
    let requests = listed["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{listed}");
    assert_eq!(requests[0]["subject"], "kai");
    assert_eq!(requests[0]["kind"], "erasure_requested");
    assert_eq!(l.app.delete_auth("/api/v1/subjects/kai", &l.admin).status, 200);
    let listed = l.app.get_auth("/api/v1/erasure-requests", &l.admin).json();
    assert_eq!(listed["requests"], json!([]), "an erasure closes the request");
    assert_eq!(l.app.get(&format!("/me/record?token={token}")).status, 410);
    assert_eq!(l.cli(&["verify"]).0, 0);
}

fn retention_clears_old_evidence_and_keeps_the_chain(backend: Backend) {
    let app = TestApp::spawn_configured(&backend, folder, |s| {
        s.evidence_retention = Some(std::time::Duration::from_secs(2));
    });
    let l =
        Log { write: app.key("host", "write"), read: app.key("auditor", "read"), admin: app.key("ops", "admin"), app };
    l.accept("lou", "terms", 2);
    let before = l.get("/api/v1/subjects/lou/events").json();
    assert_eq!(before[0]["evidence"]["ip"], "203.0.113.0/24");
    let mut after = before.clone();
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        after = l.get("/api/v1/subjects/lou/events").json();
        if after[0]["evidence"]["ip"].is_null() {
            break;
        }
    }
    assert_eq!(after[0]["evidence"]["ip"], Value::Null, "{after}");
    assert_eq!(after[0]["evidence"]["user_agent"], Value::Null);
    assert_eq!(after[0]["evidence"]["locale"], "en-GB", "the locale is not personal");
    assert_eq!(after[0]["subject"], "lou", "retention keeps the subject id");
    assert_eq!(after[0]["hashes"]["ip"], before[0]["hashes"]["ip"], "the chain keeps its hash");
    assert_eq!(after[0]["hashes"]["evidence_salt"], Value::Null, "but not the salt that opens it");
    assert!(!database_text(&l).contains("ErinAgent/9.9"));
    assert_eq!(l.cli(&["verify"]).0, 0);
}

on_both_databases!(
    erasure_requests_and_the_evidence_record,
    retention_clears_old_evidence_and_keeps_the_chain,
    receipts_are_leaves_with_proofs_by_the_rfc,
    a_saved_checkpoint_catches_truncation_and_a_deleted_subject,
    every_version_column_is_covered,
    erasure_keeps_everything_verifiable_and_forgets_the_person,
    the_auditor_script_rebuilds_the_tree_from_the_api,
    read_only_commands_refuse_a_missing_database,
    verify_checks_every_stored_subtree_and_each_subjects_key,
    what_events_cover_is_kept_once_and_checked_for_each,
    read_only_commands_change_nothing_and_refuse_what_they_cannot_check,
    verify_passes_while_the_server_writes,
);

/// `verify` reads a snapshot: decisions committed while it walks are not mismatches.
fn verify_passes_while_the_server_writes(backend: Backend) {
    let l = log(&backend);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 3000 {
                l.accept(&format!("busy-{}", i % 50), "terms", 2);
                i += 1;
            }
        });
        for _ in 0..4 {
            let (code, out, err) = l.cli(&["verify"]);
            assert_eq!(code, 0, "verify during writes: {out}{err}");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
}

fn verify_checks_every_stored_subtree_and_each_subjects_key(backend: Backend) {
    let l = log(&backend);
    for s in ["ann", "bob", "cat"] {
        l.accept(s, "terms", 2);
    }
    assert_eq!(l.cli(&["verify"]).0, 0);
    // A wrong inner hash breaks the proofs through it, though every leaf and the root are right.
    l.app.sql(&format!("UPDATE log_nodes SET hash = {} WHERE level = 1 AND idx = 0;", l.app.bytes(&"ab".repeat(32))));
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the stored hash of leaves 0 to 1 (level 1, index 0) is wrong"), "{out}");
    l.app.sql("DELETE FROM log_nodes WHERE level = 1 AND idx = 0;");
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("subtree hashes are stored, but a log of"), "{out}");

    // Bob's events filed under Dee's key: every chain still checks, but Dee would be "accepted".
    let l = log(&backend);
    for s in ["ann", "bob"] {
        l.accept(s, "terms", 2);
    }
    let keys = l.app.subject_keys();
    let (bob, dee) = (
        keys.key(&assent::domain::SubjectId::parse("bob").unwrap()),
        keys.key(&assent::domain::SubjectId::parse("dee").unwrap()),
    );
    l.app.sql(&format!(
        "UPDATE events SET subject_key = {dee} WHERE subject_key = {bob};
         UPDATE subject_heads SET subject_key = {dee} WHERE subject_key = {bob};
         UPDATE subject_documents SET subject_key = {dee} WHERE subject_key = {bob};",
        dee = l.app.bytes(&dee),
        bob = l.app.bytes(&bob),
    ));
    let dee_status = l.get("/api/v1/subjects/dee/status").json();
    assert!(dee_status["documents"].as_array().unwrap().iter().any(|d| d["state"] == "accepted"), "{dee_status}");
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("subject \"bob\" event") && out.contains("filed under another subject's key"), "{out}");
}

/// Events that cover the same versions share one stored text: the API shows it on each, and one
/// edit of it breaks the chain of every event that refers to it, each named.
fn what_events_cover_is_kept_once_and_checked_for_each(backend: Backend) {
    let l = log(&backend);
    for s in ["ann", "bob"] {
        l.accept(s, "terms", 2);
    }
    let covers = |s: &str| l.get(&format!("/api/v1/subjects/{s}/events")).json()[0]["covers"].clone();
    let terms = |s: &str| {
        let covers = covers(s);
        covers.as_array().and_then(|c| c.iter().find(|c| c["document"] == "terms").cloned()).unwrap_or(covers)
    };
    assert_eq!(covers("ann"), covers("bob"));
    assert_eq!(terms("ann")["version"], 2, "{}", covers("ann"));
    assert_eq!(l.cli(&["verify"]).0, 0);
    // Ann's covers, edited: Bob's event refers to the same text.
    l.app.sql(
        "UPDATE covers_sets SET covers = replace(covers, '\"version\":2', '\"version\":1') \
         WHERE id = (SELECT covers_id FROM events WHERE id = (SELECT min(id) FROM events));",
    );
    assert_eq!(terms("bob")["version"], 1, "{}", covers("bob"));
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    for s in ["ann", "bob"] {
        assert!(out.contains(&format!("subject \"{s}\" event")), "{s}: {out}");
    }
    assert_eq!(out.matches("chain_hash does not match the event's contents").count(), 2, "{out}");

    // An id that names no stored text: `verify` names the event.
    let l = log(&backend);
    l.accept("cat", "terms", 2);
    l.app.sql("UPDATE events SET covers_id = 999999 WHERE id = (SELECT max(id) FROM events);");
    let (code, out, _) = l.cli(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("subject \"cat\" event") && out.contains("its covers_id names no stored covers text"),
        "{out}"
    );

    // PostgreSQL lets two writers store one text at once (SQLite's one writer never does): rows
    // that refer to either copy read alike, and verify and coverage see no difference.
    if let Backend::Postgres(_) = backend {
        let l = log(&backend);
        for s in ["dan", "eve"] {
            l.accept(s, "terms", 2);
        }
        let covers = |s: &str| l.get(&format!("/api/v1/subjects/{s}/events")).json()[0]["covers"].clone();
        let coverage = || l.get("/api/v1/documents/terms/coverage").json()["accepted"].clone();
        let before = coverage();
        l.app.sql(
            "INSERT INTO covers_sets (covers) SELECT covers FROM covers_sets \
               WHERE id = (SELECT covers_id FROM events WHERE id = (SELECT max(id) FROM events));
             UPDATE subject_documents SET covers_id = (SELECT max(id) FROM covers_sets), \
               accepted_covers_id = (SELECT max(id) FROM covers_sets) \
               WHERE document = 'terms' \
               AND subject_key = (SELECT subject_key FROM events WHERE id = (SELECT max(id) FROM events));
             UPDATE events SET covers_id = (SELECT max(id) FROM covers_sets) WHERE id = (SELECT max(id) FROM events);",
        );
        assert_eq!(covers("dan"), covers("eve"));
        assert_eq!(coverage(), before);
        assert_eq!(before, 2, "{before}");
        let (code, out, _) = l.cli(&["verify"]);
        assert_eq!(code, 0, "{out}");
    }
}

fn read_only_commands_change_nothing_and_refuse_what_they_cannot_check(backend: Backend) {
    let l = log(&backend);
    l.accept("ann", "terms", 2);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (_, checkpoint, _) = l.cli(&["log", "checkpoint"]);
    for (file, needle) in [
        (write("junk.txt", "hello\n"), "not a checkpoint of this log"),
        (write("crlf.txt", &checkpoint.replace('\n', "\r\n")), "CR LF"),
    ] {
        let (code, out, err) = l.cli(&["verify", "--checkpoint", &file]);
        assert_eq!(code, 2, "{file}: {out}{err}");
        assert!(err.contains(needle) && !out.contains("BROKEN"), "{file}: {out}{err}");
    }
    let (code, _, err) = l.cli(&["verify", "--verifier-key", "bogus"]);
    assert_eq!((code, err.contains("--verifier-key")), (2, true), "{err}");

    // A database that needs upgrading is refused by what only reads, and left as it was.
    l.app.sql(
        "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations);",
    );
    for args in [&["verify"][..], &["history", "ann"], &["export"], &["log", "checkpoint"]] {
        let (code, out, err) = l.cli(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("needs upgrading first: run `assent sync`"), "{args:?}: {err}");
    }
    assert_eq!(l.get("/api/v1/subjects/ann/events").json().as_array().map(Vec::len), Some(1), "nothing was dropped");
}
