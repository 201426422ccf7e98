//! Webhooks (contract §9) against a real receiver on 127.0.0.1: what is sent and how it is
//! signed, that only what committed is announced, receivers that fail in every way the issue
//! names, failed deliveries retried by hand, where deliveries may go, bad input, and two servers
//! on one PostgreSQL sending each delivery once.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use assent::config::Settings;
use common::receiver::{Behaviour, Receiver, Seen};
use common::{Backend, TestApp, assent, copy_dir, shipped_policies};

/// The settings for tests (contract §9 allows private addresses only when asked; the receiver
/// is on 127.0.0.1): a 1 s timeout and retries from 100 ms on.
fn test_hooks(s: &mut Settings) {
    s.webhooks.allow_private = true;
    s.webhooks.timeout = Duration::from_secs(1);
    s.webhooks.retry.first = Duration::from_millis(100);
    s.webhooks.retry.period = Duration::from_secs(60);
}

fn spawn(backend: &Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_configured(backend, |dir| copy_dir(&shipped_policies(), dir), configure)
}

/// Registers `url` for `events` with an admin key; returns the endpoint's id and secret.
fn register(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> (i64, String) {
    let r = app.post("/api/v1/webhooks", admin, &json!({"url": url, "events": events}));
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.json();
    (body["id"].as_i64().unwrap(), body["secret"].as_str().unwrap().to_owned())
}

fn accept(app: &TestApp, key: &str, subject: &str, version: u32) -> common::Response {
    app.post(
        &format!("/api/v1/subjects/{subject}/acceptances"),
        key,
        &json!({"document": "service-agreement", "version": version, "evidence": {"ip": "203.0.113.9", "user_agent": "Test/1"}}),
    )
}

/// Checks a delivery's Standard Webhooks signature with nothing but the secret (an HMAC over
/// `id.timestamp.body`), as a receiver would.
fn assert_signed(seen: &Seen, secret: &str) {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_ secret")).expect("base64 secret");
    let (id, timestamp) = (seen.header("webhook-id"), seen.header("webhook-timestamp"));
    assert!(id.starts_with("msg_"), "webhook-id {id}");
    let ts: i64 = timestamp.parse().expect("webhook-timestamp in seconds");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 120, "timestamp {ts}");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", seen.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(seen.header("webhook-signature"), expected, "the signature of {id}");
    assert_eq!(seen.header("content-type"), "application/json");
}

/// The endpoint's delivery log, newest first.
fn log_of(app: &TestApp, admin: &str, id: i64, query: &str) -> Vec<Value> {
    let r = app.get_auth(&format!("/api/v1/webhooks/{id}/deliveries{query}"), admin);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["deliveries"].as_array().unwrap().clone()
}

/// Waits until the delivery log satisfies `done`.
fn wait_for_log(app: &TestApp, admin: &str, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let log = log_of(app, admin, id, "");
        if done(&log) {
            return log;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the delivery log never got there: {log:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deliveries_are_signed_and_announce_only_what_committed(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Ok);
    let app = spawn(&backend, test_hooks);
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    let (id, secret) = register(&app, &admin, &receiver.url, &["accepted", "declined", "withdrawn", "erased"]);
    assert!(secret.starts_with("whsec_"), "{secret}");

    let accepted = accept(&app, &write, "alice", 1);
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    let evidence = json!({"ip": "203.0.113.9"});
    let withdrawn = app.post(
        "/api/v1/subjects/alice/withdrawals",
        &write,
        &json!({"document": "service-agreement", "evidence": evidence}),
    );
    assert_eq!(withdrawn.status, 201, "{}", withdrawn.body);
    let declined = app.post(
        "/api/v1/subjects/alice/declines",
        &write,
        &json!({"document": "service-agreement", "version": 1, "evidence": evidence}),
    );
    assert_eq!(declined.status, 201, "{}", declined.body);
    // The upcoming version, then the current one again: a step backwards, refused after its event
    // was written, and rolled back with it. Nothing may announce it.
    let upcoming = accept(&app, &write, "alice", 2);
    assert_eq!(upcoming.status, 201, "{}", upcoming.body);
    let backwards = accept(&app, &write, "alice", 1);
    assert_eq!(backwards.status, 409, "{}", backwards.body);
    // Refused before anything is written.
    assert_eq!(accept(&app, &write, "alice", 99).status, 404);
    // Delivered before the erasure (after it, they would go without the subject id).
    receiver.wait_for_delivered(4, Duration::from_secs(20));
    let erased = app.delete_auth("/api/v1/subjects/alice", &admin);
    assert_eq!(erased.status, 200, "{}", erased.body);

    let receipts: Vec<Value> = [&accepted, &withdrawn, &declined, &upcoming].iter().map(|r| r.json()).collect();
    let seen = receiver.wait_for_delivered(5, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let all = receiver.seen();
    assert_eq!(all.len(), 5, "exactly one delivery per committed event: {all:#?}");
    let ids: HashSet<&str> = seen.iter().map(|s| s.header("webhook-id")).collect();
    assert_eq!(ids.len(), 5, "a webhook-id per delivery");
    let by_event: HashMap<i64, &Seen> =
        seen.iter().map(|s| (s.json()["data"]["event_id"].as_i64().unwrap(), s)).collect();
    for receipt in &receipts {
        let s = by_event[&receipt["event_id"].as_i64().unwrap()];
        assert_signed(s, &secret);
        let body = s.json();
        assert_eq!(body["type"], receipt["kind"], "{body}");
        assert_eq!(body["timestamp"], receipt["recorded_at"]);
        // The data is the receipt, as the API answered it.
        assert_eq!(body["data"], *receipt, "{body}");
        assert!(!s.body.contains("203.0.113"), "no IP address is announced: {}", s.body);
    }
    let erasure = erased.json();
    let s = seen.iter().find(|s| s.json()["type"] == "erased").expect("the erasure is announced");
    assert_signed(s, &secret);
    assert_eq!(s.json()["data"]["subject"], "alice", "the host must learn whom to erase");
    assert_eq!(s.json()["data"]["log_index"], erasure["log_index"]);

    let log = log_of(&app, &admin, id, "");
    assert_eq!(log.len(), 5);
    for d in &log {
        assert_eq!(d["state"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_status"], 200);
        assert!(ids.contains(d["webhook_id"].as_str().unwrap()), "{d}");
    }
    let listed = app.get_auth("/api/v1/webhooks", &admin).json();
    assert_eq!(listed["webhooks"][0]["url"], receiver.url.as_str());
    assert_eq!(listed["webhooks"][0]["pending"], 0);
    assert!(listed["webhooks"][0].get("secret").is_none(), "the secret is shown once: {listed}");
    assert!(!app.get_auth("/api/v1/webhooks", &admin).body.contains(&secret));
}

fn an_erasure_reaches_deliveries_still_waiting(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Status(503));
    let app = spawn(&backend, test_hooks);
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    let (_, secret) = register(&app, &admin, &receiver.url, &["accepted", "erased"]);
    assert_eq!(accept(&app, &write, "bob", 1).status, 201);
    receiver.wait_until(Duration::from_secs(10), |seen| !seen.is_empty());
    // Erased while its acceptance still waits to be delivered.
    assert_eq!(app.delete_auth("/api/v1/subjects/bob", &admin).status, 200);
    receiver.answer_with(Behaviour::Ok);
    let seen = receiver.wait_for_delivered(2, Duration::from_secs(20));
    let acceptance = seen.iter().find(|s| s.json()["type"] == "accepted").unwrap();
    assert_signed(acceptance, &secret);
    assert_eq!(acceptance.json()["data"]["subject"], Value::Null, "sent after the erasure, without the id");
    let erasure = seen.iter().find(|s| s.json()["type"] == "erased").unwrap();
    assert_eq!(erasure.json()["data"]["subject"], "bob");
}

fn faulty_receivers_lose_nothing(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Ok);
    receiver.script([
        Behaviour::Status(500),
        Behaviour::Hang(Duration::from_secs(3)),
        Behaviour::Reset,
        Behaviour::Redirect,
        Behaviour::Slow(Duration::from_millis(400)),
    ]);
    let app = spawn(&backend, test_hooks);
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    let (id, secret) = register(&app, &admin, &receiver.url, &["accepted"]);
    let subjects: Vec<String> = (0..5).map(|i| format!("subject-{i}")).collect();
    let mut receipts = HashSet::new();
    for s in &subjects {
        let r = accept(&app, &write, s, 1);
        assert_eq!(r.status, 201, "{}", r.body);
        receipts.insert(r.json()["event_id"].as_i64().unwrap());
        // One at a time, so that each meets the next scripted answer.
        receiver.wait_until(Duration::from_secs(10), |seen| seen.len() >= receipts.len());
    }
    let seen = receiver.wait_for_delivered(5, Duration::from_secs(30));
    let delivered: HashSet<i64> = seen.iter().map(|s| s.json()["data"]["event_id"].as_i64().unwrap()).collect();
    assert_eq!(delivered, receipts, "every event reached the receiver");
    for s in &seen {
        assert_signed(s, &secret);
    }
    let answers: Vec<Behaviour> = receiver.seen().iter().map(|s| s.answer).collect();
    for expected in [Behaviour::Status(500), Behaviour::Reset, Behaviour::Redirect] {
        assert!(answers.contains(&expected), "{expected:?} was tried: {answers:?}");
    }
    // Each delivery ended delivered; the four faults cost one more attempt each.
    let log = wait_for_log(&app, &admin, id, |log| log.iter().all(|d| d["state"] == "delivered"));
    let attempts: i64 = log.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 5 + 4, "{log:#?}");
    // The same webhook-id on every attempt of one delivery.
    let hanging = receiver.seen().into_iter().find(|s| matches!(s.answer, Behaviour::Hang(_))).unwrap();
    assert!(seen.iter().any(|s| s.header("webhook-id") == hanging.header("webhook-id")));

    let metrics = app.get("/metrics").body;
    let counter = |outcome: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("assent_webhook_attempts_total{{outcome=\"{outcome}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(counter("delivered"), 5.0, "{metrics}");
    assert!(counter("retried") >= 4.0, "{metrics}");
}

fn failed_deliveries_are_kept_and_retried_by_hand(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Status(500));
    let app = spawn(&backend, |s| {
        test_hooks(s);
        s.webhooks.retry.period = Duration::from_millis(600);
    });
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    let (id, _) = register(&app, &admin, &receiver.url, &["accepted"]);
    for subject in ["carol", "dave", "erin"] {
        assert_eq!(accept(&app, &write, subject, 1).status, 201);
    }
    let log = wait_for_log(&app, &admin, id, |log| log.len() == 3 && log.iter().all(|d| d["state"] == "failed"));
    for d in &log {
        assert!(d["attempts"].as_i64().unwrap() >= 2, "retried before giving up: {d}");
        assert_eq!(d["last_status"], 500);
        let error = d["last_error"].as_str().unwrap();
        assert!(error.contains("500") && error.contains("receiver says 500"), "{error}");
        assert_eq!(d["next_attempt_at"], Value::Null);
    }
    let failed = log_of(&app, &admin, id, "?state=failed");
    assert_eq!(failed.len(), 3);
    let listed = app.get_auth("/api/v1/webhooks", &admin).json();
    assert_eq!(listed["webhooks"][0]["failed"], 3);
    let metrics = app.get("/metrics").body;
    assert!(metrics.contains("assent_webhook_attempts_total{outcome=\"failed\"} 3"), "{metrics}");
    receiver.answer_with(Behaviour::Ok);

    // From the admin view: the failure and its error are shown, with a button per delivery.
    let signin = app.post_form("/admin/signin", &[("key", &admin)], None);
    let cookie = signin.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let page = app.get_with("/admin/webhooks", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&receiver.url) && page.body.contains("receiver says 500"), "{}", page.body);
    assert!(page.body.contains("action=\"/admin/webhooks/retry\""), "{}", page.body);
    let first = failed[0]["id"].to_string();
    let retried =
        app.post_form("/admin/webhooks/retry", &[("endpoint", &id.to_string()), ("delivery", &first)], Some(&cookie));
    assert_eq!(retried.status, 303, "{}", retried.body);
    assert_eq!(retried.header("location"), Some("/admin/webhooks?retried=1"));
    receiver.wait_for_delivered(1, Duration::from_secs(10));
    // A read key neither sees the page (URLs may carry the receiver's tokens) nor retries.
    let reader = app.key("auditor", "read");
    let signin = app.post_form("/admin/signin", &[("key", &reader)], None);
    let read_cookie = signin.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(app.get_with("/admin/webhooks", &[("Cookie", &read_cookie)]).status, 403);
    assert!(!app.get_with("/admin", &[("Cookie", &read_cookie)]).body.contains("/admin/webhooks"));
    let refused = app.post_form("/admin/webhooks/retry", &[("endpoint", &id.to_string())], Some(&read_cookie));
    assert_eq!(refused.status, 403);

    // From the command line: one delivery.
    let second = failed[1]["id"].to_string();
    let out = assent(&["webhooks", "retry", &id.to_string(), "--delivery", &second], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 failed delivery is pending again"));
    receiver.wait_for_delivered(2, Duration::from_secs(10));
    // From the API: every failed one left.
    let r = app.post(&format!("/api/v1/webhooks/{id}/retry"), &admin, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["retried"], 1);
    receiver.wait_for_delivered(3, Duration::from_secs(10));
    let log = wait_for_log(&app, &admin, id, |log| log.iter().all(|d| d["state"] == "delivered"));
    assert_eq!(log.len(), 3);
    // Nothing failed is left to retry.
    let r = app.post(&format!("/api/v1/webhooks/{id}/retry"), &admin, &json!({"delivery": failed[0]["id"]}));
    assert_eq!(r.status, 404, "{}", r.body);
    let out = assent(&["webhooks", "deliveries", &id.to_string()], &app.db.url, app.policies.path());
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("delivered").count(), 3);
}

fn deliveries_never_reach_private_addresses_unless_allowed(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Ok);
    let app = spawn(&backend, |s| {
        test_hooks(s);
        s.webhooks.allow_private = false;
    });
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    // Registration refuses them: literally, and by name.
    for url in [receiver.url.clone(), format!("http://localhost:{}/hooks", receiver.port)] {
        let r = app.post("/api/v1/webhooks", &admin, &json!({"url": url, "events": ["accepted"]}));
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "invalid_url");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("private address"), "{}", r.body);
    }
    // An endpoint that passed registration (a name that resolved elsewhere then, say) is checked
    // again at delivery, on the addresses the client would connect to.
    for (n, url) in [format!("http://localhost:{}/hooks", receiver.port), receiver.url.clone()].iter().enumerate() {
        app.sql(&format!(
            "INSERT INTO webhook_endpoints (id, url, events, secret, created_at, created_by) VALUES \
             ({}, '{url}', ',accepted,', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '2026-12-01 00:00:00', 'test')",
            100 + n
        ));
    }
    assert_eq!(accept(&app, &write, "frank", 1).status, 201);
    for id in [100, 101] {
        let log = wait_for_log(&app, &admin, id, |log| log.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1)));
        let error = log[0]["last_error"].as_str().unwrap();
        assert!(error.contains("private address"), "{error}");
        assert_eq!(log[0]["state"], "pending", "still retried (the endpoint may be fixed)");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.seen().is_empty(), "nothing reached the private address");
}

fn bad_webhook_input_is_refused(backend: Backend) {
    let app = spawn(&backend, test_hooks);
    let admin = app.key("ops", "admin");
    let write = app.key("host", "write");
    let bound = app.audience_key("sdk-ops", "admin", Some("sdk-users"));
    let cases = [
        (json!({"url": "ftp://example.com/hook", "events": ["accepted"]}), "invalid_url"),
        (json!({"url": "javascript:alert(1)", "events": ["accepted"]}), "invalid_url"),
        (json!({"url": "not a url", "events": ["accepted"]}), "invalid_url"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2100)), "events": ["accepted"]}), "invalid_url"),
        (json!({"url": "https://example.com/hook", "events": ["signed"]}), "unknown_event"),
        (json!({"url": "https://user:pw@example.com/hook", "events": ["accepted"]}), "invalid_url"),
        (json!({"url": format!("https://example.com/{}", "é".repeat(400)), "events": ["accepted"]}), "invalid_url"),
        (json!({"url": "https://example.com/hook", "events": []}), "unknown_event"),
        (json!({"url": "https://example.com/hook"}), "bad_request"),
        (json!({"url": "https://example.com/hook", "events": ["accepted"], "extra": 1}), "bad_request"),
    ];
    for (body, code) in cases {
        let r = app.post("/api/v1/webhooks", &admin, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], code, "{body}: {}", r.body);
    }
    let unknown = app.post("/api/v1/webhooks", &admin, &json!({"url": "https://example.com/", "events": ["signed"]}));
    assert!(unknown.body.contains("signed"), "{}", unknown.body);
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["accepted"]});
    assert_eq!(app.post("/api/v1/webhooks", &write, &body).status, 403);
    assert_eq!(app.post("/api/v1/webhooks", &bound, &body).status, 403);
    assert_eq!(app.post_raw("/api/v1/webhooks", None, &body.to_string()).status, 401);
    assert_eq!(app.get_auth("/api/v1/webhooks", &write).status, 403);
    for path in ["/api/v1/webhooks/77/deliveries", "/api/v1/webhooks/0/deliveries", "/api/v1/webhooks/x/deliveries"] {
        let r = app.get_auth(path, &admin);
        let want = if path.contains("/77/") { 404 } else { 400 };
        assert_eq!(r.status, want, "{path}: {}", r.body);
    }
    assert_eq!(app.delete_auth("/api/v1/webhooks/77", &admin).status, 404);
    assert_eq!(app.post("/api/v1/webhooks/77/retry", &admin, &json!({})).status, 404);
    let (id, _) = register(&app, &admin, "http://127.0.0.1:9/hook", &["accepted"]);
    for query in ["?state=lost", "?limit=0", "?limit=1001", "?before=-1", "?limit=ten", "?colour=red"] {
        let r = app.get_auth(&format!("/api/v1/webhooks/{id}/deliveries{query}"), &admin);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
    }
    assert_eq!(app.post(&format!("/api/v1/webhooks/{id}/retry"), &admin, &json!({"delivery": 0})).status, 400);
    // Removed: gone from the list, nothing more is written for it, its log stays.
    assert_eq!(app.delete_auth(&format!("/api/v1/webhooks/{id}"), &admin).status, 204);
    assert_eq!(app.delete_auth(&format!("/api/v1/webhooks/{id}"), &admin).status, 404);
    assert_eq!(app.get_auth("/api/v1/webhooks", &admin).json()["webhooks"], json!([]));
    assert_eq!(accept(&app, &write, "gina", 1).status, 201);
    assert_eq!(log_of(&app, &admin, id, ""), Vec::<Value>::new());
    // The command line refuses the same, saying why, with exit 1.
    let out =
        assent(&["webhooks", "add", "ftp://example.com/", "--events", "accepted"], &app.db.url, app.policies.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http or https"));
    let out = assent(
        &["webhooks", "add", "https://example.com/", "--events", "accepted,nope"],
        &app.db.url,
        app.policies.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event type `nope`"));
    // A loopback endpoint only with the flag, which takes no value unless given with `=`.
    let add = ["webhooks", "add", "http://127.0.0.1:9/cli", "--events", "accepted"];
    let out = assent(&add, &app.db.url, app.policies.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let out = assent(&[&["--webhook-allow-private"], &add[..]].concat(), &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("whsec_"));
    let out = assent(&[&["--webhook-allow-private=no"], &add[..]].concat(), &app.db.url, app.policies.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

fn new_versions_are_announced(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Ok);
    let app = spawn(&backend, test_hooks);
    let admin = app.key("ops", "admin");
    let (_, secret) = register(&app, &admin, &receiver.url, &["published"]);
    let v2 = std::fs::read_to_string(app.policies.path().join("cookie-statement/v1.md")).unwrap();
    let v2 = v2.replacen("effective: 2025-03-01", "effective: 2026-01-01", 1);
    let v2 = v2.replacen("---\n", "---\nsummary: Names the cookies we set.\n", 1);
    std::fs::write(app.policies.path().join("cookie-statement/v2.md"), format!("{v2}\nOne more line.\n")).unwrap();
    let out = assent(&["sync"], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Published by another process: this server finds it at its next poll.
    let seen = receiver.wait_for_delivered(1, Duration::from_secs(10));
    assert_signed(&seen[0], &secret);
    let body = seen[0].json();
    assert_eq!(body["type"], "published");
    assert_eq!(body["data"]["document"], "cookie-statement");
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(body["data"]["summary"], "Names the cookies we set.");
    let listed = app.get("/api/v1/documents/cookie-statement/versions").json();
    assert_eq!(body["data"]["sha256"], listed[1]["sha256"]);
}

/// Two servers on one PostgreSQL: every delivery is sent by one of them, once.
fn two_servers_deliver_each_event_once(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // several servers share a PostgreSQL database (contract §11)
    }
    let receiver = Receiver::start(Behaviour::Ok);
    let a = spawn(&backend, test_hooks);
    let b = a.another_server(test_hooks);
    let admin = a.key("ops", "admin");
    let write = a.key("host", "write");
    register(&a, &admin, &receiver.url, &["accepted"]);
    const EVENTS: usize = 200;
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (a, b, write) = (&a, &b, &write);
            s.spawn(move || {
                for i in 0..EVENTS / 4 {
                    let server = if i % 2 == 0 { a } else { b };
                    let r = accept(server, write, &format!("w{worker}-{i}"), 1);
                    assert_eq!(r.status, 201, "{}", r.body);
                }
            });
        }
    });
    receiver.wait_for_delivered(EVENTS, Duration::from_secs(60));
    // Whatever is still in flight arrives within a lease, and none twice.
    std::thread::sleep(Duration::from_secs(1));
    let seen = receiver.seen();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for s in &seen {
        *ids.entry(s.header("webhook-id").to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(ids.len(), EVENTS);
    let delivered = |app: &TestApp| -> f64 {
        let metrics = app.get("/metrics").body;
        metrics
            .lines()
            .find(|l| l.starts_with("assent_webhook_attempts_total{outcome=\"delivered\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (by_a, by_b) = (delivered(&a), delivered(&b));
    assert_eq!(by_a + by_b, EVENTS as f64, "a: {by_a}, b: {by_b}");
    assert!(by_a > 0.0 && by_b > 0.0, "both servers delivered: a {by_a}, b {by_b}");
}

on_both_databases!(
    deliveries_are_signed_and_announce_only_what_committed,
    an_erasure_reaches_deliveries_still_waiting,
    faulty_receivers_lose_nothing,
    failed_deliveries_are_kept_and_retried_by_hand,
    deliveries_never_reach_private_addresses_unless_allowed,
    bad_webhook_input_is_refused,
    new_versions_are_announced,
    two_servers_deliver_each_event_once,
);
