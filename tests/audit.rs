//! History and audit: filtered event pages with exact cursors, coverage, exports, `/admin`.

mod common;

use std::collections::HashSet;

use serde_json::{Value, json};

use common::{Backend, TestApp, assent, write};

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
    write(dir, "terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\n---\nTerms two.\n");
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nPrivate.\n");
    write(dir, "sdk/v1.md", "---\ntitle: SDK\neffective: 2020-01-01\n---\nSDK.\n");
}

struct Audit {
    app: TestApp,
    write: String,
    read: String,
    admin: String,
}

fn audit(backend: &Backend) -> Audit {
    let app = TestApp::spawn_with(backend, folder);
    let write = app.key("host", "write");
    let read = app.key("auditor", "read");
    let admin = app.key("dpo", "admin");
    Audit { app, write, read, admin }
}

impl Audit {
    fn decide(&self, what: &str, subject: &str, body: Value) -> Value {
        let enc = percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC).to_string();
        let r = self.app.post(&format!("/api/v1/subjects/{enc}/{what}"), &self.write, &body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    fn page(&self, query: &str) -> Value {
        let r = self.app.get_auth(&format!("/api/v1/events?{query}"), &self.read);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json()
    }
}

fn events_filter_and_page(backend: Backend) {
    let a = audit(&backend);
    for i in 0..5 {
        a.decide("acceptances", &format!("s{i}"), json!({"document": "terms", "version": 2}));
        a.decide("acceptances", &format!("s{i}"), json!({"document": "sdk", "version": 1}));
    }
    a.decide("declines", "s9", json!({"document": "terms", "version": 2}));
    a.decide("withdrawals", "s0", json!({"document": "terms"}));

    let all = a.page("limit=1000");
    assert_eq!(all["events"].as_array().unwrap().len(), 12);
    assert!(all["next"].is_null(), "a page that is not full has no next");
    assert_eq!(a.page("document=sdk")["events"].as_array().unwrap().len(), 5);
    assert_eq!(a.page("kind=declined")["events"][0]["subject"], "s9");
    assert_eq!(a.page("kind=withdrawn&document=terms")["events"].as_array().unwrap().len(), 1);
    assert_eq!(a.page("subject=s3")["events"].as_array().unwrap().len(), 2);
    assert_eq!(a.page("document=terms&version=2&kind=accepted")["events"].as_array().unwrap().len(), 5);
    assert_eq!(a.page("since=2999-01-01")["events"].as_array().unwrap().len(), 0);
    assert_eq!(a.page("until=2000-01-01")["events"].as_array().unwrap().len(), 0);
    assert_eq!(a.page("since=2020-01-01T00:00:00Z")["events"].as_array().unwrap().len(), 12);

    // Pages of 5: every event exactly once, in order.
    let mut seen = Vec::new();
    let mut query = "limit=5".to_owned();
    loop {
        let page = a.page(&query);
        seen.extend(page["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_i64().unwrap()));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=5&after={next}"),
            None => break,
        }
    }
    let ids: Vec<i64> = all["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);
    assert!(all["events"][0]["chain_hash"].as_str().unwrap().len() == 64);
}

fn bad_audit_queries_are_refused(backend: Backend) {
    let a = audit(&backend);
    for (query, status) in [
        ("after=not-a-cursor", 400),
        ("after=YWJj", 400),
        ("limit=0", 400),
        ("limit=1001", 400),
        ("limit=ten", 400),
        ("since=yesterday", 400),
        ("until=2026-13-45", 400),
        ("kind=maybe", 400),
        ("version=0", 400),
        ("document=nope", 404),
        ("unknown=1", 400),
    ] {
        let r = a.app.get_auth(&format!("/api/v1/events?{query}"), &a.read);
        assert_eq!(r.status, status, "{query}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}");
    }
    assert_eq!(a.app.get("/api/v1/events").status, 401);
    assert_eq!(a.app.get_auth("/api/v1/documents/nope/versions/1/stats", &a.read).status, 404);
    assert_eq!(a.app.get_auth("/api/v1/documents/terms/versions/x/stats", &a.read).status, 400);
    assert_eq!(a.app.get_auth("/api/v1/export?format=xml", &a.admin).status, 400);
    assert_eq!(a.app.get_auth("/api/v1/export?format=csv", &a.read).status, 403, "exports need an admin key");
}

fn pagination_is_exact_while_events_arrive(backend: Backend) {
    let a = audit(&backend);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let collected: Vec<i64> = std::thread::scope(|s| {
        for w in 0..3 {
            let (a, stop) = (&a, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 400 {
                    a.decide("acceptances", &format!("w{w}-{}", i % 13), json!({"document": "sdk", "version": 1}));
                    i += 1;
                }
            });
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut empty_pages = 0;
        while empty_pages < 3 {
            let query = match &after {
                Some(c) => format!("limit=7&after={c}"),
                None => "limit=7".into(),
            };
            let page = a.page(&query);
            let events = page["events"].as_array().unwrap();
            seen.extend(events.iter().map(|e| e["event_id"].as_i64().unwrap()));
            if let Some(next) = page["next"].as_str() {
                after = Some(next.to_owned());
            } else if let Some(last) = events.last() {
                // The API gives no cursor after a short page; continue after what was seen.
                let id = last["event_id"].as_i64().unwrap();
                after = Some(base64_cursor(id));
            } else if seen.len() > 200 {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                empty_pages += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        seen
    });
    let unique: HashSet<i64> = collected.iter().copied().collect();
    assert_eq!(unique.len(), collected.len(), "no event twice");
    let everything = a.page("limit=1000");
    let mut all: Vec<i64> =
        everything["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_i64().unwrap()).collect();
    let mut query_after = everything["next"].as_str().map(str::to_owned);
    while let Some(c) = query_after {
        let p = a.page(&format!("limit=1000&after={c}"));
        all.extend(p["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_i64().unwrap()));
        query_after = p["next"].as_str().map(str::to_owned);
    }
    assert_eq!(collected, all, "paging while writers ran saw every event exactly once, in order");
}

fn base64_cursor(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c1:{id}"))
}

fn coverage_counts_known_subjects(backend: Backend) {
    let a = audit(&backend);
    a.decide("acceptances", "a", json!({"document": "terms", "version": 2}));
    a.decide("acceptances", "b", json!({"document": "terms", "version": 2}));
    a.decide("declines", "c", json!({"document": "terms", "version": 2}));
    a.decide("acceptances", "d", json!({"document": "terms", "version": 2}));
    a.decide("withdrawals", "d", json!({"document": "terms"}));
    a.decide("acceptances", "e", json!({"document": "sdk", "version": 1}));
    let stats = |path: &str| a.app.get_auth(path, &a.read).json();
    // Stats: of the subjects whose latest acceptance covered the version, their state now
    // (c declined without ever accepting: it is in no version's stats).
    assert_eq!(
        stats("/api/v1/documents/terms/versions/2/stats"),
        json!({"accepted": 2, "pending": 0, "declined": 0, "withdrawn": 1, "expired": 0})
    );
    assert_eq!(
        stats("/api/v1/documents/privacy/versions/1/stats"),
        json!({"accepted": 2, "pending": 0, "declined": 0, "withdrawn": 1, "expired": 0}),
        "parts are counted through their agreement"
    );
    assert_eq!(
        stats("/api/v1/documents/sdk/versions/1/stats"),
        json!({"accepted": 1, "pending": 0, "declined": 0, "withdrawn": 0, "expired": 0})
    );
    assert_eq!(
        stats("/api/v1/documents/terms/versions/1/stats"),
        json!({"accepted": 0, "pending": 0, "declined": 0, "withdrawn": 0, "expired": 0})
    );
    // Coverage: every known subject once, in its status's state.
    let mut terms = stats("/api/v1/documents/terms/coverage");
    assert!(terms["as_of"].as_str().is_some_and(|t| t.ends_with('Z')), "{terms}");
    terms["as_of"] = Value::Null;
    assert_eq!(
        terms,
        json!({"as_of": null, "total": 5, "accepted": 2, "pending": 0, "never": 1, "declined": 1, "withdrawn": 1, "expired": 0})
    );
    let mut sdk = stats("/api/v1/documents/sdk/coverage");
    sdk["as_of"] = Value::Null;
    assert_eq!(
        sdk,
        json!({"as_of": null, "total": 5, "accepted": 1, "pending": 0, "never": 4, "declined": 0, "withdrawn": 0, "expired": 0})
    );
    // A second decision moves a subject between groups; an erasure makes it `never`.
    a.decide("acceptances", "c", json!({"document": "terms", "version": 2}));
    assert_eq!(a.app.delete_auth("/api/v1/subjects/a", &a.admin).status, 200);
    let after = stats("/api/v1/documents/terms/coverage");
    assert_eq!(
        (after["accepted"].as_i64(), after["declined"].as_i64(), after["never"].as_i64()),
        (Some(2), Some(0), Some(2)),
        "{after}"
    );
    for bad in ["/api/v1/documents/privacy/coverage", "/api/v1/documents/nope/coverage"] {
        let r = a.app.get_auth(bad, &a.read);
        assert!(r.status == 422 || r.status == 404, "{bad}: {} {}", r.status, r.body);
        assert!(r.json()["error"]["message"].is_string());
    }
    assert_eq!(a.app.get("/api/v1/documents/terms/coverage").status, 401);
}

/// `/metrics` carries the business figures (contract §10): events recorded, subjects per state
/// (the same counts as coverage), the log's size and the pool.
fn metrics_carry_the_business_figures(backend: Backend) {
    let a = audit(&backend);
    a.decide("acceptances", "a", json!({"document": "terms", "version": 2}));
    a.decide("acceptances", "b", json!({"document": "terms", "version": 2}));
    a.decide("declines", "c", json!({"document": "terms", "version": 2}));
    a.decide("acceptances", "d", json!({"document": "sdk", "version": 1}));
    // A refused decision records nothing and counts nothing.
    let refused = a.app.post("/api/v1/subjects/a/acceptances", &a.write, &json!({"document": "terms", "version": 1}));
    assert_eq!(refused.status, 409);
    assert_eq!(a.app.delete_auth("/api/v1/subjects/b", &a.admin).status, 200);
    let metrics = a.app.get("/metrics");
    assert_eq!(metrics.status, 200);
    let body = &metrics.body;
    for line in [
        r#"assent_events_recorded_total{kind="accepted",document="terms"} 2"#,
        r#"assent_events_recorded_total{kind="declined",document="terms"} 1"#,
        r#"assent_events_recorded_total{kind="accepted",document="sdk"} 1"#,
        r#"assent_events_recorded_total{kind="erased",document=""} 1"#,
        r#"assent_subjects{document="terms",state="accepted"} 1"#,
        r#"assent_subjects{document="terms",state="declined"} 1"#,
        r#"assent_subjects{document="terms",state="never"} 2"#,
        r#"assent_subjects{document="sdk",state="accepted"} 1"#,
        r#"assent_subjects{document="sdk",state="never"} 3"#,
    ] {
        assert!(body.contains(line), "missing `{line}` in:\n{body}");
    }
    // The log's size is the checkpoint's second line.
    let size: u64 = a.app.get_auth("/api/v1/log/checkpoint", &a.read).body.lines().nth(1).unwrap().parse().unwrap();
    assert!(body.contains(&format!("assent_log_leaves {size}")), "log size {size}:\n{body}");
    assert!(body.contains(r#"assent_db_connections{state="idle"}"#), "{body}");
}

fn csv_exports_are_spreadsheet_safe_and_complete(backend: Backend) {
    let a = audit(&backend);
    let nasty = "=HYPERLINK(\"http://x\",\"y\"), 用户 \"quoted\"";
    a.decide("acceptances", nasty, json!({"document": "terms", "version": 2, "evidence": {"user_agent": "+cmd|' /C calc'!A0", "locale": "@SUM(1)"}}));
    a.decide("acceptances", "plain", json!({"document": "sdk", "version": 1, "evidence": {"user_agent": "-2+3"}}));
    let r = a.app.get_auth("/api/v1/export?format=csv", &a.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("text/csv"));
    assert!(r.header("content-disposition").unwrap().contains("attachment"));
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, assent::ledger::export::CSV_HEADER.map(str::to_owned).to_vec());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("subject")], format!("'{nasty}"), "formula neutralised, commas and quotes intact");
    assert_eq!(&rows[0][col("user_agent")], "'+cmd|' /C calc'!A0");
    assert_eq!(&rows[0][col("locale")], "'@SUM(1)");
    assert_eq!(&rows[1][col("user_agent")], "'-2+3");
    let events = a.app.get_auth("/api/v1/events", &a.read).json();
    assert_eq!(
        &rows[0][col("chain_hash")],
        events["events"][0]["chain_hash"].as_str().unwrap(),
        "rows carry the chain hash"
    );

    let jsonl = a.app.get_auth("/api/v1/export?format=jsonl&document=sdk", &a.admin);
    let lines: Vec<Value> = jsonl.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["subject"], "plain");

    let cli = assent(&["export", "--format", "csv", "--document", "terms"], &a.app.db.url, a.app.policies.path());
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli_rows = csv::Reader::from_reader(&cli.stdout[..]).records().count();
    assert_eq!(cli_rows, 1);
}

/// Runs `assent export --format jsonl` and returns (lines written, peak memory in KiB) of that
/// process, read from its `VmHWM` while it runs (`ru_maxrss` would count the moments before
/// `exec`, when the child is still a copy of this test process).
fn export_with_peak_memory(db_url: &str, policies: &std::path::Path) -> (usize, i64) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["export", "--format", "jsonl"])
        .env("ASSENT_DATABASE_URL", db_url)
        .env("ASSENT_POLICIES", policies)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let peak = || -> Option<i64> {
        let status = std::fs::read_to_string(&status_file).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (mut lines, mut max_kib) = (0, 0);
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdout = child.stdout.take().unwrap();
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        max_kib = max_kib.max(peak().unwrap_or(0));
    }
    assert!(child.wait().unwrap().success(), "export failed");
    assert!(max_kib > 0, "could not read the export's memory");
    (lines, max_kib)
}

fn exports_stream_in_bounded_memory(backend: Backend) {
    let a = audit(&backend);
    let db = assent::db::Db::open(&a.app.db.url, 1).unwrap();
    let mut conn = db.get().unwrap();
    // The servers' own keys: `verify` checks that each subject id hashes to its key.
    let secret = assent::startup::server_secret(&mut conn, None, assent::startup::IfMissing::Refuse).unwrap();
    let keys = assent::ledger::SubjectKeys::new(&secret);
    let decision = |i: usize| assent::ledger::NewDecision {
        subject: assent::domain::SubjectId::parse(&format!("bulk-{}", i % 400)).unwrap(),
        subject_key: keys.key(&assent::domain::SubjectId::parse(&format!("bulk-{}", i % 400)).unwrap()),
        document: Some(assent::domain::Slug::parse("sdk").unwrap()),
        action: assent::ledger::Action::Accept {
            version: assent::domain::VersionNumber::new(1).unwrap(),
            covers: vec![assent::domain::Covered {
                document: assent::domain::Slug::parse("sdk").unwrap(),
                version: assent::domain::VersionNumber::new(1).unwrap(),
                sha256: assent::domain::sha256_hex(&std::fs::read(a.app.policies.path().join("sdk/v1.md")).unwrap()),
            }],
        },
        recorded_by: "bulk".into(),
        method: assent::ledger::Method::Api,
        evidence: assent::ledger::Evidence { ip: None, user_agent: Some("x".repeat(1000)), locale: None },
        idempotency_key: None,
        request_hash: None,
    };
    let batch: Vec<_> = (0..1_500).map(decision).collect();
    assent::ledger::record_many(&mut conn, &batch, chrono::Utc::now()).unwrap();
    let (rows, small) = export_with_peak_memory(&a.app.db.url, a.app.policies.path());
    assert_eq!(rows, 1_500);
    for round in 0..3 {
        let batch: Vec<_> = (0..1_500).map(|i| decision(i + round)).collect();
        assent::ledger::record_many(&mut conn, &batch, chrono::Utc::now()).unwrap();
    }
    let (rows, large) = export_with_peak_memory(&a.app.db.url, a.app.policies.path());
    assert_eq!(rows, 6_000);
    // Four times the events (over 6 MB of JSON) must not mean more memory: a buffering export
    // would hold all of it; a streaming one holds a page whatever the total.
    assert!(large < small + 3 * 1024, "export memory grew from {small} KiB to {large} KiB");
    let verify = assent(&["verify"], &a.app.db.url, a.app.policies.path());
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

fn admin_needs_a_session_and_refuses_wrong_keys(backend: Backend) {
    let a = audit(&backend);
    let r = a.app.post_form("/admin/signin", &[("key", "assent_000000000000_wrong")], None);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("That key cannot sign in here"));
    let write_key = a.app.post_form("/admin/signin", &[("key", &a.write)], None);
    assert_eq!(write_key.status, 401, "a write key is for host applications, not staff");
    assert_eq!(
        write_key.body.replace(&a.write, ""),
        r.body.replace("assent_000000000000_wrong", ""),
        "the same answer whether or not the key exists"
    );
    let bare = a.app.post_form("/admin/signin", &[("key", "")], None);
    assert_eq!(bare.status, 401);
    for path in ["/admin", "/admin/events", "/admin/subjects?q=x", "/admin/export?format=csv"] {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let resp = agent.get(format!("{}{path}", a.app.address)).call().unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{path}");
        assert_eq!(resp.headers().get("location").unwrap(), "/admin/signin");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let cross_site = agent
        .post(format!("{}/admin/signin", a.app.address))
        .header("Origin", "https://evil.example")
        .send_form([("key", a.read.as_str())])
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403, "login CSRF from another site is refused");
    let fetch_meta = agent
        .post(format!("{}/admin/signin", a.app.address))
        .header("Sec-Fetch-Site", "cross-site")
        .send_form([("key", a.read.as_str())])
        .unwrap();
    assert_eq!(fetch_meta.status().as_u16(), 403);
    let ok = a.app.post_form("/admin/signin", &[("key", &a.read)], None);
    assert_eq!(ok.status, 303);
    let cookie = ok.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    a.decide("acceptances", "viewer-test", json!({"document": "terms", "version": 2}));
    let dash = a.app.get_with("/admin", &[("Cookie", &session)]);
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Terms, version 2") && dash.body.contains("<svg class=\"chart\""), "{}", dash.body);
    assert!(dash.body.contains("Exports need an admin key"), "a read key sees no export links");
    let subject = a.app.get_with("/admin/subjects?q=viewer-test", &[("Cookie", &session)]);
    assert!(
        subject.body.contains("terms v2, privacy v1") && subject.body.contains("state-accepted"),
        "{}",
        subject.body
    );
    let forbidden = a.app.get_with("/admin/export?format=csv", &[("Cookie", &session)]);
    assert_eq!(forbidden.status, 403);
    let forged = format!("{}x", session);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let resp = agent.get(format!("{}/admin", a.app.address)).header("Cookie", &forged).call().unwrap();
    assert_eq!(resp.status().as_u16(), 303, "a tampered session is no session");
}

/// Dates PostgreSQL cannot store, and a document nobody published: the same refusal from the
/// API, the export, the admin view and the command line (it was a 503 saying the database was
/// not answering, a cut-off export, and an empty file with exit 0).
fn out_of_range_dates_and_unknown_documents_are_refused_everywhere(backend: Backend) {
    let a = audit(&backend);
    a.decide("acceptances", "dated", json!({"document": "terms", "version": 2}));
    for date in ["-5000-01-01", "+10000-01-01", "0000-06-01T00:00:00Z"] {
        for (path, key) in [("/api/v1/events", &a.read), ("/api/v1/export?format=jsonl", &a.admin)] {
            let sep = if path.contains('?') { '&' } else { '?' };
            for param in ["since", "until"] {
                let enc = percent_encoding::utf8_percent_encode(date, percent_encoding::NON_ALPHANUMERIC);
                let r = a.app.get_auth(&format!("{path}{sep}{param}={enc}"), key);
                assert_eq!(r.status, 400, "{path} {param}={date}: {}", r.body);
                assert!(r.json()["error"]["message"].as_str().unwrap().contains("out of range"), "{}", r.body);
            }
        }
        let cli = assent(&["export", &format!("--since={date}")], &a.app.db.url, a.app.policies.path());
        let err = String::from_utf8_lossy(&cli.stderr);
        assert_eq!(cli.status.code(), Some(2), "{err}");
        assert!(err.contains("--since") && err.contains("out of range") && err.lines().count() == 1, "{err}");
        assert!(cli.stdout.is_empty());
    }
    let ok = a.app.post_form("/admin/signin", &[("key", &a.read)], None);
    let session = ok.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let page = a.app.get_with("/admin/events?since=-5000-01-01", &[("Cookie", &session)]);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("out of range"), "{}", page.body);

    let cli = assent(&["export", "--document", "nosuchdoc"], &a.app.db.url, a.app.policies.path());
    let err = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(2), "{err}");
    assert!(err.contains("no published document `nosuchdoc`"), "{err}");
    assert!(cli.stdout.is_empty(), "no file for a document that does not exist");
    let known = assent(&["export", "--format", "jsonl", "--document", "terms"], &a.app.db.url, a.app.policies.path());
    assert!(known.status.success());
    assert_eq!(String::from_utf8_lossy(&known.stdout).lines().count(), 1);
}

fn signed_in(app: &TestApp, key: &str) -> String {
    let ok = app.post_form("/admin/signin", &[("key", key)], None);
    assert_eq!(ok.status, 303, "{}", ok.body);
    ok.header("set-cookie").unwrap().split(';').next().unwrap().to_owned()
}

fn redirected_to_signin(app: &TestApp, session: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let resp = agent.get(format!("{}/admin", app.address)).header("Cookie", session).call().unwrap();
    resp.status().as_u16() == 303
}

/// Signing out ends the session on the server, on every server: a copy of the cookie is worth
/// nothing after it. An idle session ends. Failed sign-ins are throttled per address and key.
fn admin_sessions_end_on_the_server_and_sign_ins_are_throttled(backend: Backend) {
    let a = audit(&backend);
    let other = a.app.another_server(|_| {});
    let session = signed_in(&a.app, &a.read);
    assert!(!redirected_to_signin(&a.app, &session) && !redirected_to_signin(&other, &session), "signed in on both");
    let out = a.app.post_form("/admin/signout", &[], Some(&session));
    assert_eq!(out.status, 303);
    assert!(redirected_to_signin(&a.app, &session), "the captured cookie no longer opens /admin");
    assert!(redirected_to_signin(&other, &session), "nor on the other server");

    let idle =
        TestApp::spawn_configured(&backend, folder, |s| s.admin_idle_timeout = std::time::Duration::from_secs(2));
    let read = idle.key("auditor", "read");
    let session = signed_in(&idle, &read);
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(!redirected_to_signin(&idle, &session), "a session in use stays open");
    }
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    assert!(redirected_to_signin(&idle, &session), "an idle session ends");

    // Ten wrong keys from this address: the eleventh attempt waits, even with the right key.
    for i in 0..10 {
        let r = a.app.post_form("/admin/signin", &[("key", &format!("assent_{i:012}_wrong"))], None);
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let throttled = a.app.post_form("/admin/signin", &[("key", &a.admin)], None);
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert!(throttled.body.contains("Too many failed sign-ins"));
    assert!(signed_in(&other, &a.admin).len() > 20, "another server counts its own failures");

    // Per key prefix: ten wrong keys for the admin key's prefix, each from another address (a
    // proxy this server trusts says which), and the next wrong one is throttled wherever it
    // comes from; the right key still opens a session, so its owner is not locked out.
    let proxied = a.app.another_server(|s| {
        s.trusted_proxies = assent::consent::TrustedProxies::parse("127.0.0.1", Default::default()).unwrap();
    });
    let prefix = a.admin.split('_').nth(1).unwrap();
    let from = |n: u32, key: &str| {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let resp = agent
            .post(format!("{}/admin/signin", proxied.address))
            .header("X-Forwarded-For", &format!("198.51.100.{n}"))
            .send_form([("key", key)])
            .unwrap();
        resp.status().as_u16()
    };
    let wrong = format!("assent_{prefix}_{}", "0".repeat(48));
    for n in 0..10 {
        assert_eq!(from(n, &wrong), 401, "attempt {n}");
    }
    assert_eq!(from(50, &wrong), 429, "a wrong key for that prefix waits, from any address");
    assert_eq!(from(51, &a.admin), 303, "the right key still signs in");
    assert_eq!(from(52, "assent_ffffffffffff_x"), 401, "other keys from new addresses are not held up");
}

on_both_databases!(
    admin_sessions_end_on_the_server_and_sign_ins_are_throttled,
    events_filter_and_page,
    bad_audit_queries_are_refused,
    out_of_range_dates_and_unknown_documents_are_refused_everywhere,
    pagination_is_exact_while_events_arrive,
    coverage_counts_known_subjects,
    metrics_carry_the_business_figures,
    csv_exports_are_spreadsheet_safe_and_complete,
    exports_stream_in_bounded_memory,
    admin_needs_a_session_and_refuses_wrong_keys,
);
