//! The acceptance ledger over HTTP: status, decisions, receipts, refusals, the chain, `verify`.

mod common;

use serde_json::{Value, json};

use common::{Backend, TestApp, assent, write};

/// terms: v1, v2 (material, current), v3 (upcoming); privacy is part of terms; cookies is
/// informational; sdk stands alone.
fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
    write(dir, "terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\n---\nTerms two.\n");
    write(dir, "terms/v3.md", "---\ntitle: Terms\neffective: 2999-01-01\n---\nTerms three.\n");
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nPrivate.\n");
    write(
        dir,
        "cookies/v1.md",
        "---\ntitle: Cookies\neffective: 2020-01-01\nacceptance: informational\n---\nCrumbs.\n",
    );
    write(dir, "sdk/v1.md", "---\ntitle: SDK\neffective: 2020-01-01\n---\nSDK.\n");
}

struct Ledger {
    app: TestApp,
    write: String,
    read: String,
}

fn ledger(backend: &Backend) -> Ledger {
    let app = TestApp::spawn_with(backend, folder);
    let write = app.key("host", "write");
    let read = app.key("auditor", "read");
    Ledger { app, write, read }
}

impl Ledger {
    fn accept(&self, subject: &str, document: &str, version: u32) -> common::Response {
        self.app.post(
            &format!("/api/v1/subjects/{subject}/acceptances"),
            &self.write,
            &json!({"document": document, "version": version, "evidence": {"ip": "203.0.113.77", "user_agent": "Test/1.0", "locale": "en-GB"}}),
        )
    }

    fn status(&self, subject: &str) -> Value {
        let r = self.app.get_auth(&format!("/api/v1/subjects/{subject}/status"), &self.read);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    fn doc_state(&self, subject: &str, slug: &str) -> Value {
        self.status(subject)["documents"].as_array().unwrap().iter().find(|d| d["slug"] == slug).cloned().unwrap()
    }

    fn file_sha(&self, rel: &str) -> String {
        assent::domain::sha256_hex(&std::fs::read(self.app.policies.path().join(rel)).unwrap())
    }
}

fn accepting_makes_a_subject_up_to_date_with_a_receipt(backend: Backend) {
    let l = ledger(&backend);
    let before = l.status("alice");
    assert_eq!(before["up_to_date"], false);
    let slugs: Vec<&str> =
        before["documents"].as_array().unwrap().iter().map(|d| d["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, vec!["sdk", "terms"], "only required agreements are listed");
    assert_eq!(l.doc_state("alice", "terms")["state"], "never");
    assert_eq!(l.doc_state("alice", "terms")["required_since"], "2021-01-01T00:00:00Z");

    let r = l.accept("alice", "terms", 2);
    assert_eq!(r.status, 201, "{}", r.body);
    let receipt = r.json();
    assert_eq!(receipt["subject"], "alice");
    assert_eq!(receipt["document"], "terms");
    assert_eq!(receipt["version"], 2);
    assert_eq!(receipt["sha256"], l.file_sha("terms/v2.md"));
    assert_eq!(
        receipt["covers"],
        json!([
            {"document": "terms", "version": 2, "sha256": l.file_sha("terms/v2.md")},
            {"document": "privacy", "version": 1, "sha256": l.file_sha("privacy/v1.md")},
        ])
    );
    assert_eq!(receipt["chain_hash"].as_str().unwrap().len(), 64);
    assert!(receipt["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert!(receipt["event_id"].as_i64().is_some());

    let terms = l.doc_state("alice", "terms");
    assert_eq!(terms["state"], "accepted");
    assert_eq!(terms["accepted_version"], 2);
    assert_eq!(terms["current_version"], 2);
    assert_eq!(terms["upcoming_version"], 3);
    assert!(terms["required_since"].is_null());
    assert_eq!(l.status("alice")["up_to_date"], false, "sdk is still owed");
    assert_eq!(l.accept("alice", "sdk", 1).status, 201);
    assert_eq!(l.status("alice")["up_to_date"], true);
    assert_eq!(l.status("bob")["up_to_date"], false, "subjects are separate");
}

fn older_versions_are_refused_and_upcoming_ones_accepted(backend: Backend) {
    let l = ledger(&backend);
    let old = l.accept("alice", "terms", 1);
    assert_eq!(old.status, 409, "{}", old.body);
    assert_eq!(old.json()["error"]["code"], "superseded");
    assert!(old.json()["error"]["message"].as_str().unwrap().contains("the current version is 2"));
    let early = l.accept("alice", "terms", 3);
    assert_eq!(early.status, 201, "{}", early.body);
    assert_eq!(l.doc_state("alice", "terms")["state"], "accepted");
    assert_eq!(l.doc_state("alice", "terms")["accepted_version"], 3);
}

/// Contract §2: once version 3 is accepted, the current version 2 is refused, also after a
/// withdrawal; accepting 3 again is fine.
fn acceptance_never_moves_backwards(backend: Backend) {
    let l = ledger(&backend);
    assert_eq!(l.accept("dora", "terms", 3).status, 201);
    let back = l.accept("dora", "terms", 2);
    assert_eq!(back.status, 409, "{}", back.body);
    assert_eq!(back.json()["error"]["code"], "backwards");
    assert_eq!(back.json()["error"]["accepted_version"], 3, "the version to ask for instead");
    let message = back.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("accepted version 3 of `terms`") && message.contains("version 2"), "{message}");
    assert_eq!(l.doc_state("dora", "terms")["accepted_version"], 3, "nothing was recorded");

    let withdrawn = l.app.post("/api/v1/subjects/dora/withdrawals", &l.write, &json!({"document": "terms"}));
    assert_eq!(withdrawn.status, 201, "{}", withdrawn.body);
    assert_eq!(l.accept("dora", "terms", 2).status, 409, "a withdrawal does not reopen older versions");
    assert_eq!(l.accept("dora", "terms", 3).status, 201);
    assert_eq!(l.accept("erin", "terms", 2).status, 201, "other subjects are unaffected");
    let events = l.app.get_auth("/api/v1/subjects/dora/events", &l.read).json();
    assert_eq!(events.as_array().unwrap().len(), 3, "refusals leave no event: {events}");

    // An erased subject starts again: its status says `never`, and the current version can be
    // accepted (a refusal would also reveal the erased history).
    let admin = l.app.key("dpo", "admin");
    assert_eq!(l.app.delete_auth("/api/v1/subjects/dora", &admin).status, 200);
    assert_eq!(l.doc_state("dora", "terms")["state"], "never");
    let again = l.accept("dora", "terms", 2);
    assert_eq!(again.status, 201, "{}", again.body);
}

fn declines_and_withdrawals_are_recorded(backend: Backend) {
    let l = ledger(&backend);
    let path = |what: &str| format!("/api/v1/subjects/carol/{what}");
    let nothing = l.app.post(&path("withdrawals"), &l.write, &json!({"document": "terms"}));
    assert_eq!(nothing.status, 409, "{}", nothing.body);
    assert_eq!(nothing.json()["error"]["code"], "nothing_to_withdraw");

    let declined = l.app.post(&path("declines"), &l.write, &json!({"document": "terms", "version": 2}));
    assert_eq!(declined.status, 201, "{}", declined.body);
    assert_eq!(declined.json()["kind"], "declined");
    assert_eq!(l.doc_state("carol", "terms")["state"], "declined");

    assert_eq!(l.accept("carol", "terms", 2).status, 201);
    let withdrawn =
        l.app.post(&path("withdrawals"), &l.write, &json!({"document": "terms", "evidence": {"user_agent": "UA"}}));
    assert_eq!(withdrawn.status, 201, "{}", withdrawn.body);
    let w = withdrawn.json();
    assert_eq!(w["kind"], "withdrawn");
    assert_eq!(w["version"], 2, "names what was withdrawn");
    assert_eq!(w["covers"].as_array().unwrap().len(), 2);
    let terms = l.doc_state("carol", "terms");
    assert_eq!(terms["state"], "withdrawn");
    assert!(terms["accepted_version"].is_null());

    let events = l.app.get_auth(&path("events"), &l.read).json();
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["declined", "accepted", "withdrawn"], "oldest first");
}

fn idempotency_keys_return_the_first_receipt(backend: Backend) {
    let l = ledger(&backend);
    let body = json!({"document": "terms", "version": 2, "idempotency_key": "login-42"});
    let first = l.app.post("/api/v1/subjects/dave/acceptances", &l.write, &body);
    assert_eq!(first.status, 201);
    let again = l.app.post("/api/v1/subjects/dave/acceptances", &l.write, &body);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first.json());
    let other = l.app.post(
        "/api/v1/subjects/dave/acceptances",
        &l.write,
        &json!({"document": "terms", "version": 3, "idempotency_key": "login-42"}),
    );
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.json()["error"]["code"], "idempotency_conflict");
    // A body that differs only where the ledger would minimise it away is still another body.
    let near =
        |ip: &str| json!({"document": "terms", "version": 2, "idempotency_key": "near-1", "evidence": {"ip": ip}});
    assert_eq!(l.app.post("/api/v1/subjects/dave/acceptances", &l.write, &near("203.0.113.7")).status, 201);
    let other_ip = l.app.post("/api/v1/subjects/dave/acceptances", &l.write, &near("203.0.113.99"));
    assert_eq!(other_ip.status, 422, "{}", other_ip.body);
    assert_eq!(l.app.post("/api/v1/subjects/dave/acceptances", &l.write, &near("203.0.113.7")).status, 200);
    let events = l.app.get_auth("/api/v1/subjects/dave/events", &l.read).json();
    assert_eq!(events.as_array().unwrap().len(), 2, "a replay records nothing");
}

fn keys_and_scopes_are_enforced(backend: Backend) {
    let l = ledger(&backend);
    let body = json!({"document": "terms", "version": 2}).to_string();
    let path = "/api/v1/subjects/erin/acceptances";
    let none = l.app.post_raw(path, None, &body);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "unauthorized");
    assert_eq!(l.app.post_raw(path, Some("assent_000000000000_nope"), &body).status, 401);
    assert_eq!(l.app.post_raw(path, Some("not-even-a-key"), &body).status, 401);
    let wrong_scope = l.app.post_raw(path, Some(&l.read), &body);
    assert_eq!(wrong_scope.status, 403);
    assert_eq!(wrong_scope.json()["error"]["code"], "forbidden");
    assert_eq!(l.app.get("/api/v1/subjects/erin/status").status, 401);
    assert_eq!(l.app.get_auth("/api/v1/subjects/erin/status", &l.write).status, 200, "write covers read");
    let admin = l.app.key("ops", "admin");
    assert_eq!(l.app.post_raw(path, Some(&admin), &body).status, 201);

    let doomed = l.app.key("doomed", "write");
    let out = assent(&["keys", "revoke", "doomed"], &l.app.db.url, l.app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(l.app.post_raw(path, Some(&doomed), &body).status, 401, "a revoked key is refused");
    let list = String::from_utf8(assent(&["keys", "list"], &l.app.db.url, l.app.policies.path()).stdout).unwrap();
    assert!(list.contains("doomed") && list.contains("ops") && list.contains("admin"), "{list}");
    assert!(!list.contains(&doomed), "keys are never shown again");
}

fn bad_requests_get_clear_json_errors(backend: Backend) {
    let l = ledger(&backend);
    let accept = |subject: &str, body: &str| {
        l.app.post_raw(&format!("/api/v1/subjects/{subject}/acceptances"), Some(&l.write), body)
    };
    let cases: Vec<(common::Response, u16, &str)> = vec![
        (accept("x", r#"{"document": "nope", "version": 1}"#), 404, "not_found"),
        (accept("x", r#"{"document": "terms", "version": 9}"#), 404, "not_found"),
        (accept("x", r#"{"document": "terms", "version": 0}"#), 404, "not_found"),
        (accept("x", r#"{"document": "privacy", "version": 1}"#), 422, "not_an_agreement"),
        (accept("x", r#"{"document": "cookies", "version": 1}"#), 422, "not_an_agreement"),
        (accept("x", r#"{"document": "terms"}"#), 400, "bad_request"),
        // The consent page's own keys cannot be forged by a host.
        (
            accept("x", r#"{"document": "terms", "version": 2, "idempotency_key": "consent:ab12:terms"}"#),
            400,
            "bad_request",
        ),
        (accept("x", r#"{"document": "terms", "version": "2"}"#), 400, "bad_request"),
        (accept("x", r#"{"document": "terms", "version": -2}"#), 400, "bad_request"),
        (accept("x", r#"{"document": "terms", "version": 2, "extra": true}"#), 400, "bad_request"),
        (accept("x", r#"{"document": "terms", "version": 2, "evidence": {"ip": "999.1.1.1"}}"#), 400, "bad_request"),
        (accept("x", r#"{"document": "terms", "version": 2, "idempotency_key": ""}"#), 400, "bad_request"),
        (accept("x", r#"{"document": "terms", "vers"#), 400, "bad_request"),
        (accept("x", "[]"), 400, "bad_request"),
        (accept(&"s".repeat(257), r#"{"document": "terms", "version": 2}"#), 400, "bad_request"),
        (accept("a%0Ab", r#"{"document": "terms", "version": 2}"#), 400, "bad_request"),
        (accept("a%FFb", r#"{"document": "terms", "version": 2}"#), 400, "bad_request"),
        (
            accept(
                "x",
                &format!(
                    r#"{{"document": "terms", "version": 2, "evidence": {{"user_agent": "{}"}}}}"#,
                    "u".repeat(20_000)
                ),
            ),
            413,
            "payload_too_large",
        ),
    ];
    for (i, (resp, status, code)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status, status, "case {i}: {}", resp.body);
        assert_eq!(resp.json()["error"]["code"], code, "case {i}");
    }
    let events = l.app.get_auth("/api/v1/subjects/x/events", &l.read).json();
    assert_eq!(events, json!([]), "no refused request left a partial event");
}

fn subject_ids_are_plain_data_and_round_trip(backend: Backend) {
    let l = ledger(&backend);
    for raw in ["'; DROP TABLE events; --", "用户😀 / % + ?", "a+b", "ends with space "] {
        let encoded: String =
            percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string();
        let r = l.accept(&encoded, "terms", 2);
        assert_eq!(r.status, 201, "{raw}: {}", r.body);
        assert_eq!(r.json()["subject"], raw);
        let status = l.status(&encoded);
        assert_eq!(status["subject"], raw);
        let events = l.app.get_auth(&format!("/api/v1/subjects/{encoded}/events"), &l.read).json();
        assert_eq!(events[0]["subject"], raw);
        let history = assent(&["history", raw, "--json"], &l.app.db.url, l.app.policies.path());
        let line: Value = serde_json::from_slice(history.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(line["subject"], raw);
    }
}

fn events_are_chained_and_evidence_minimised(backend: Backend) {
    let l = ledger(&backend);
    l.accept("frank", "terms", 2);
    l.accept("frank", "sdk", 1);
    l.accept("frank", "terms", 3);
    let events = l.app.get_auth("/api/v1/subjects/frank/events", &l.read).json();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["prev_hash"], "0".repeat(64));
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["chain_hash"]);
        assert_eq!(pair[1]["seq"].as_i64().unwrap(), pair[0]["seq"].as_i64().unwrap() + 1);
    }
    assert_eq!(events[0]["evidence"]["ip"], "203.0.113.0/24", "IPv4 is kept to its /24 by default");
    assert_eq!(events[0]["evidence"]["user_agent"], "Test/1.0");
    assert_eq!(events[0]["evidence"]["locale"], "en-GB");
    assert_eq!(events[0]["method"], "api");
    assert_eq!(events[0]["recorded_by"], "host");
}

fn concurrent_events_for_one_subject_chain_correctly(backend: Backend) {
    let l = ledger(&backend);
    let acked: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let l = &l;
                s.spawn(move || {
                    let r = l.app.post(
                        "/api/v1/subjects/grace/acceptances",
                        &l.write,
                        &json!({"document": if i % 2 == 0 { "terms" } else { "sdk" }, "version": if i % 2 == 0 { 2 } else { 1 }, "idempotency_key": format!("k{i}")}),
                    );
                    assert_eq!(r.status, 201, "{}", r.body);
                    r.json()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seqs: Vec<i64> = acked.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
    let out = assent(&["verify"], &l.app.db.url, l.app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// 48 clients deciding for one subject at once, five times each: every answer is a 201, never a
/// 5xx, and the chain holds every event once (per-subject writes take turns; nothing is retried
/// into an error).
fn one_subject_under_heavy_concurrency_never_sees_an_error(backend: Backend) {
    let l = ledger(&backend);
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..48)
            .map(|i| {
                let l = &l;
                s.spawn(move || {
                    (0..5)
                        .map(|j| {
                            let what = if (i + j) % 3 == 0 { "declines" } else { "acceptances" };
                            let doc = if i % 2 == 0 { ("terms", 2) } else { ("sdk", 1) };
                            let r = l.app.post(
                                &format!("/api/v1/subjects/crowd/{what}"),
                                &l.write,
                                &json!({"document": doc.0, "version": doc.1}),
                            );
                            (r.status, r.json())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<_> = statuses.iter().filter(|(status, _)| *status != 201).collect();
    assert!(failed.is_empty(), "{} of 240 failed, such as {:?}", failed.len(), failed.first());
    let mut seqs: Vec<i64> = statuses.iter().map(|(_, r)| r["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=240).collect::<Vec<_>>());
    let out = assent(&["verify"], &l.app.db.url, l.app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Two servers on one database, 24 clients each, accepting for the same eight subjects at once:
/// their group commits hold several subjects' locks at a time (in the order the decisions came,
/// were they not sorted), and must never each hold one the other waits for. Every answer is a
/// 201 for the subject it was sent for, with a leaf of its own, and every subject's chain holds
/// every event once.
fn two_servers_deciding_for_the_same_subjects_never_deadlock(backend: Backend) {
    let l = ledger(&backend);
    let other = l.app.another_server(|_| {});
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..48)
            .map(|i| {
                let (l, other) = (&l, &other);
                s.spawn(move || {
                    let server = if i % 2 == 0 { &l.app } else { other };
                    (0..8)
                        .map(|j| {
                            let n = if i % 2 == 0 { j } else { 7 - j };
                            let r = server.post(
                                &format!("/api/v1/subjects/pair-{n}/acceptances"),
                                &l.write,
                                &json!({"document": "terms", "version": 2}),
                            );
                            assert!(r.status != 201 || r.json()["subject"] == format!("pair-{n}"), "{}", r.body);
                            (r.status, r.body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<_> = statuses.iter().filter(|(status, _)| *status != 201).collect();
    assert!(failed.is_empty(), "{} of 384 failed, such as {:?}", failed.len(), failed.first());
    let mut leaves: Vec<u64> = statuses
        .iter()
        .filter_map(|(_, body)| serde_json::from_str::<Value>(body).ok()?["log_index"].as_u64())
        .collect();
    leaves.sort_unstable();
    leaves.dedup();
    assert_eq!(leaves.len(), 384, "every receipt names a leaf of its own");
    for n in 0..8 {
        let events = l.app.get_auth(&format!("/api/v1/subjects/pair-{n}/events"), &l.read).json();
        assert_eq!(events.as_array().map(Vec::len), Some(48), "pair-{n}: {events}");
    }
    let out = assent(&["verify"], &l.app.db.url, l.app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A decline and a withdrawal sent at the same moment for one subject: whichever is recorded
/// second must see the first. A withdrawal recorded after a decline would withdraw an
/// acceptance that no longer stands (it is refused, 409, when the decline came first).
fn concurrent_decisions_for_one_subject_see_each_other(backend: Backend) {
    let l = ledger(&backend);
    let subjects: Vec<String> = (0..240).map(|i| format!("race-{i}")).collect();
    for s in &subjects {
        assert_eq!(l.accept(s, "terms", 2).status, 201);
    }
    // Four pairs of threads; each pair sends a subject's decline and withdrawal together.
    // Answers are checked after every thread is done (a panic beside a barrier would hang).
    let answers: Vec<(String, &str, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = subjects
            .chunks(60)
            .flat_map(|group| {
                let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
                ["declines", "withdrawals"].map(|what| {
                    let (l, barrier) = (&l, barrier.clone());
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for s in group {
                            barrier.wait();
                            let body = if what == "declines" {
                                json!({"document": "terms", "version": 2})
                            } else {
                                json!({"document": "terms"})
                            };
                            let r = l.app.post(&format!("/api/v1/subjects/{s}/{what}"), &l.write, &body);
                            let json = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                            out.push((s.clone(), what, r.status, json));
                        }
                        out
                    })
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (s, what, status, body) in &answers {
        let kinds: Vec<String> = l
            .app
            .get_auth(&format!("/api/v1/subjects/{s}/events"), &l.read)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        match (*what, *status) {
            ("declines", 201) => {}
            ("withdrawals", 201) => assert_eq!(kinds, ["accepted", "withdrawn", "declined"], "{s}"),
            ("withdrawals", 409) => {
                assert_eq!(body["error"]["code"], "nothing_to_withdraw", "{s}: {body}");
                assert_eq!(kinds, ["accepted", "declined"], "{s}");
            }
            other => panic!("{s}: {other:?} {body}"),
        }
        assert_eq!(l.doc_state(s, "terms")["state"], "declined", "{s}");
    }
}

fn verify_finds_tampering(backend: Backend) {
    use diesel::{Connection, RunQueryDsl};
    let l = ledger(&backend);
    l.accept("heidi", "terms", 2);
    l.accept("heidi", "sdk", 1);
    l.accept("ivan", "terms", 2);
    let clean = assent(&["verify"], &l.app.db.url, l.app.policies.path());
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{text}");
    assert!(text.contains("2 subjects, 3 events,") && text.contains("all intact"), "{text}");
    // verify reads a page of rows per query: in pages of one or two, subjects straddle pages.
    let paged = |rows: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_assent"))
            .arg("verify")
            .env("ASSENT_DATABASE_URL", &l.app.db.url)
            .env("ASSENT_POLICIES", l.app.policies.path())
            .env("ASSENT_LOG", "warn")
            .env("ASSENT_VERIFY_PAGE", rows)
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        lines.sort();
        (out.status.code(), lines)
    };
    for rows in ["1", "2"] {
        let (code, lines) = paged(rows);
        assert_eq!(code, Some(0), "pages of {rows}: {lines:?}");
        assert!(lines.iter().any(|l| l.contains("2 subjects, 3 events,") && l.contains("all intact")), "{lines:?}");
    }

    // Events 1 and 2 are heidi's, event 3 ivan's.
    let sql = "UPDATE events SET locale = 'fr' WHERE id = 1";
    // A status row changed behind the ledger's back: the status answer would lie.
    let status_sql = "UPDATE subject_documents SET state = 'accepted', version = 3 WHERE document = 'terms' AND subject_key = (SELECT subject_key FROM events WHERE id = 3)";
    // The newest version accepted, lowered: the subject could step back to an older version.
    let highest_sql = "UPDATE subject_documents SET highest_accepted = 1 WHERE document = 'terms' AND subject_key = (SELECT subject_key FROM events WHERE id = 1)";
    // A chain head and a status row of a subject with no events (its events were deleted).
    let orphan_head = format!(
        "INSERT INTO subject_heads (subject_key, seq, chain_hash) VALUES ({}, 1, {})",
        l.app.bytes(&"f".repeat(64)),
        l.app.bytes(&"0".repeat(64))
    );
    let orphan_state = format!(
        "INSERT INTO subject_documents (subject_key, document, state, version, covers_id, last_event_id, updated_at) VALUES ({}, 'terms', 'declined', 2, (SELECT min(id) FROM covers_sets), 0, '2026-01-01 00:00:00')",
        l.app.bytes(&"f".repeat(64))
    );
    let url = &l.app.db.url;
    match &backend {
        Backend::Sqlite => {
            let mut c = diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://")).unwrap();
            diesel::sql_query(&orphan_head).execute(&mut c).unwrap();
            diesel::sql_query(&orphan_state).execute(&mut c).unwrap();
            diesel::sql_query(sql).execute(&mut c).unwrap();
            diesel::sql_query(status_sql).execute(&mut c).unwrap();
            diesel::sql_query(highest_sql).execute(&mut c).unwrap();
            diesel::sql_query("UPDATE versions SET source = source || ' ' WHERE version = 1 AND document_id = (SELECT id FROM documents WHERE slug = 'sdk')").execute(&mut c).unwrap();
        }
        Backend::Postgres(_) => {
            let mut c = diesel::PgConnection::establish(url).unwrap();
            diesel::sql_query(&orphan_head).execute(&mut c).unwrap();
            diesel::sql_query(&orphan_state).execute(&mut c).unwrap();
            diesel::sql_query(sql).execute(&mut c).unwrap();
            diesel::sql_query(status_sql).execute(&mut c).unwrap();
            diesel::sql_query(highest_sql).execute(&mut c).unwrap();
            diesel::sql_query("UPDATE versions SET source = source || ' ' WHERE version = 1 AND document_id = (SELECT id FROM documents WHERE slug = 'sdk')").execute(&mut c).unwrap();
        }
    }
    let broken = assent(&["verify"], &l.app.db.url, l.app.policies.path());
    let text = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{text}");
    assert!(
        text.contains(r#"BROKEN subject "heidi" event "#) && text.contains("(seq 1): chain_hash does not match"),
        "{text}"
    );
    assert!(text.contains("BROKEN version sdk v1: its stored text no longer matches"), "{text}");
    assert!(
        text.contains(r#"BROKEN subject "heidi": its status for terms says the newest version accepted is v1, but its events say v2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"BROKEN subject "ivan": its status for terms says accepted v3, but its events say accepted v2"#
        ),
        "{text}"
    );
    assert_eq!(text.matches("\"ivan\"").count(), 1, "ivan's chain itself is intact: {text}");
    assert!(text.contains("BROKEN 1 chain heads have no events (events were deleted)"), "{text}");
    assert!(text.contains("BROKEN 1 status rows belong to subjects with no events"), "{text}");
    let mut whole: Vec<String> = text.lines().map(str::to_owned).collect();
    whole.sort();
    for rows in ["1", "2"] {
        assert_eq!(paged(rows), (Some(1), whole.clone()), "pages of {rows} find the same");
    }
}

fn history_prints_a_readable_table(backend: Backend) {
    let l = ledger(&backend);
    l.accept("judy", "terms", 2);
    let out = assent(&["history", "judy"], &l.app.db.url, l.app.policies.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("accepted") && text.contains("terms v2, privacy v1") && text.contains("203.0.113.0/24"),
        "{text}"
    );
}

fn an_auditor_can_recheck_the_chain_with_a_short_script(backend: Backend) {
    let l = ledger(&backend);
    let odd = "Zoë \"quoted\" 用户";
    let encoded = percent_encoding::utf8_percent_encode(odd, percent_encoding::NON_ALPHANUMERIC).to_string();
    l.accept(&encoded, "terms", 2);
    l.app.post(&format!("/api/v1/subjects/{encoded}/declines"), &l.write, &json!({"document": "sdk", "version": 1}));
    l.app.post(&format!("/api/v1/subjects/{encoded}/withdrawals"), &l.write, &json!({"document": "terms"}));
    let events = l.app.get_auth(&format!("/api/v1/subjects/{encoded}/events"), &l.read).body;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify_chain.py");
    let run = |input: &str| {
        let mut child = std::process::Command::new("python3")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the auditor's script");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = run(&events);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("chain intact: 3 events"));
    let forged = events.replacen("\"kind\":\"declined\"", "\"kind\":\"accepted\"", 1);
    assert_ne!(forged, events);
    assert!(!run(&forged).status.success(), "the script notices a forged event");
}

on_both_databases!(
    an_auditor_can_recheck_the_chain_with_a_short_script,
    accepting_makes_a_subject_up_to_date_with_a_receipt,
    older_versions_are_refused_and_upcoming_ones_accepted,
    acceptance_never_moves_backwards,
    declines_and_withdrawals_are_recorded,
    idempotency_keys_return_the_first_receipt,
    keys_and_scopes_are_enforced,
    bad_requests_get_clear_json_errors,
    subject_ids_are_plain_data_and_round_trip,
    events_are_chained_and_evidence_minimised,
    concurrent_events_for_one_subject_chain_correctly,
    one_subject_under_heavy_concurrency_never_sees_an_error,
    two_servers_deciding_for_the_same_subjects_never_deadlock,
    concurrent_decisions_for_one_subject_see_each_other,
    verify_finds_tampering,
    history_prints_a_readable_table,
);
