//! Durability: many concurrent acceptances and erasures, the server killed with SIGKILL mid-way,
//! restarted; every acknowledged event and erasure must be there and `assent verify` clean. And
//! the crash points (`ASSENT_CRASH_AT`, see `src/crash.rs`): a process that dies inside an
//! erasure, between a commit and the log, or half-way through integrating leaves the old state or
//! the new one, never a mixture, and `verify` passes. Webhook deliveries outlive a SIGKILL and a
//! crash between taking a delivery and sending it, and none is sent for what did not commit.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestDatabase, assent, copy_dir, shipped_policies};
use serde_json::{Value, json};

/// Starts `assent serve` on a free port and returns it with its address.
fn start(db: &str, policies: &Path) -> (Child, String) {
    start_crashing(db, policies, "")
}

/// Starts `assent serve`, set to die at the crash point `at` (none when empty).
fn start_crashing(db: &str, policies: &Path, at: &str) -> (Child, String) {
    start_with(db, policies, at, &[])
}

/// Starts `assent serve` with more environment.
fn start_with(db: &str, policies: &Path, at: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
        .envs(env.iter().copied())
        .env("ASSENT_CRASH_AT", at)
        .env("ASSENT_DATABASE_URL", db)
        .env("ASSENT_POLICIES", policies)
        .env("ASSENT_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start assent");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("serving at http://") {
                let _ = tx.send(line[at + "serving at ".len()..].trim().to_owned());
            }
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(60)).expect("the server said where it listens");
    (child, address)
}

fn durable_after_sigkill(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let policies = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), policies.path());
    let key_out = assent(&["keys", "create", "crash", "--scope", "write"], &db.url, policies.path());
    assert!(key_out.status.success(), "{}", String::from_utf8_lossy(&key_out.stderr));
    let key = String::from_utf8(key_out.stdout).unwrap().trim().to_owned();

    let admin = assent(&["keys", "create", "dpo", "--scope", "admin"], &db.url, policies.path());
    let admin = String::from_utf8(admin.stdout).unwrap().trim().to_owned();

    let (mut server, address) = start(&db.url, policies.path());
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let erased: Arc<Mutex<Vec<String>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    // Subjects to erase while the acceptances run and the server is killed.
    let doomed: Vec<String> = (0..400).map(|i| format!("gone-{i}")).collect();
    for subject in &doomed {
        let r = agent
            .post(format!("{address}/api/v1/subjects/{subject}/acceptances"))
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(json!({"document": "service-agreement", "version": 1, "evidence": {"ip": "192.0.2.66"}}).to_string())
            .expect("seeded");
        assert_eq!(r.status().as_u16(), 201);
    }
    std::thread::scope(|s| {
        {
            let (erased, killed, agent, address, admin, doomed) = (&erased, &killed, &agent, &address, &admin, &doomed);
            s.spawn(move || {
                for subject in doomed {
                    let sent = agent
                        .delete(format!("{address}/api/v1/subjects/{subject}"))
                        .header("Authorization", &format!("Bearer {admin}"))
                        .call();
                    match sent {
                        Ok(resp) if resp.status().as_u16() == 200 => erased.lock().unwrap().push(subject.clone()),
                        Ok(resp) => panic!("erasing {subject}: unexpected status {}", resp.status()),
                        Err(_) if killed.load(Ordering::SeqCst) => return,
                        Err(e) => panic!("erasure failed before the kill: {e}"),
                    }
                }
            });
        }
        for worker in 0..8 {
            let (acked, killed, agent, address, key) = (acked.clone(), killed.clone(), agent.clone(), &address, &key);
            s.spawn(move || {
                for i in 0..400 {
                    let subject = format!("crash-{worker}-{}", i % 7);
                    let body = json!({"document": "service-agreement", "version": 1, "evidence": {"ip": "192.0.2.1"}});
                    let sent = agent
                        .post(format!("{address}/api/v1/subjects/{subject}/acceptances"))
                        .header("Authorization", &format!("Bearer {key}"))
                        .header("Content-Type", "application/json")
                        .send(body.to_string());
                    match sent {
                        Ok(mut resp) if resp.status().as_u16() == 201 => {
                            let receipt: Value =
                                serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
                                    .expect("a 201 carries a receipt");
                            acked.lock().unwrap().push(receipt);
                        }
                        Ok(resp) => panic!("unexpected status {}", resp.status()),
                        Err(_) if killed.load(Ordering::SeqCst) => return,
                        Err(e) => panic!("request failed before the kill: {e}"),
                    }
                }
            });
        }
        // Kill mid-way, while requests are in flight, once erasures are under way too.
        let started = std::time::Instant::now();
        while acked.lock().unwrap().len() < 300 || erased.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(60), "no erasure was acknowledged within a minute");
            std::thread::sleep(Duration::from_millis(5));
        }
        killed.store(true, Ordering::SeqCst);
        server.kill().expect("SIGKILL");
        let _ = server.wait();
    });
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300, "only {} acknowledged", acked.len());

    let (mut server, address) = start(&db.url, policies.path());
    let read =
        String::from_utf8(assent(&["keys", "create", "audit", "--scope", "read"], &db.url, policies.path()).stdout)
            .unwrap();
    let mut missing = Vec::new();
    let mut by_subject: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for receipt in &acked {
        let subject = receipt["subject"].as_str().unwrap().to_owned();
        if !by_subject.contains_key(&subject) {
            let mut resp = agent
                .get(format!("{address}/api/v1/subjects/{subject}/events"))
                .header("Authorization", &format!("Bearer {}", read.trim()))
                .call()
                .expect("events");
            let events: Vec<Value> = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
            by_subject.insert(subject.clone(), events);
        }
        let found = by_subject[&subject]
            .iter()
            .any(|e| e["event_id"] == receipt["event_id"] && e["chain_hash"] == receipt["chain_hash"]);
        if !found {
            missing.push(receipt["event_id"].clone());
        }
    }
    let erased = erased.lock().unwrap().clone();
    assert!(!erased.is_empty() && erased.len() < doomed.len(), "the kill came while erasing ({} erased)", erased.len());
    for subject in &doomed {
        let mut resp = agent
            .get(format!("{address}/api/v1/subjects/{subject}/events"))
            .header("Authorization", &format!("Bearer {}", read.trim()))
            .call()
            .expect("events");
        let events = resp.body_mut().read_to_string().unwrap();
        let was_erased = events.contains("\"kind\":\"erased\"");
        assert_eq!(
            !was_erased,
            events.contains("192.0.2.0"),
            "{subject}: erased and personal data, or neither: {events}"
        );
        if erased.contains(subject) {
            assert!(was_erased, "an acknowledged erasure was lost after SIGKILL: {subject}: {events}");
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(missing.is_empty(), "acknowledged events lost after SIGKILL: {missing:?}");
    let verify = assent(&["verify"], &db.url, policies.path());
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// `assent` with `ASSENT_CRASH_AT=at`.
fn assent_crashing(args: &[&str], at: &str, db: &str, policies: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(args)
        .env("ASSENT_DATABASE_URL", db)
        .env("ASSENT_POLICIES", policies)
        .env("ASSENT_LOG", "warn")
        .env("ASSENT_CRASH_AT", at)
        .output()
        .expect("run assent")
}

fn died(out: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal().is_some() && String::from_utf8_lossy(&out.stderr).contains("dying here")
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `verify` passes; gives back what it printed.
fn verified(db: &str, policies: &Path, when: &str) -> String {
    let out = assent(&["verify"], db, policies);
    assert!(out.status.success(), "{when}: verify failed:\n{}", text(&out));
    text(&out)
}

fn crash_points_leave_the_old_state_or_the_new(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let policies = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), policies.path());
    let key =
        String::from_utf8(assent(&["keys", "create", "crash", "--scope", "write"], &db.url, policies.path()).stdout)
            .unwrap()
            .trim()
            .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let accept = |address: &str, subject: &str| {
        agent
            .post(format!("{address}/api/v1/subjects/{subject}/acceptances"))
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(
                json!({"document": "service-agreement", "version": 1,
                       "evidence": {"ip": "203.0.113.9", "user_agent": "CrashAgent/1.0"}})
                .to_string(),
            )
    };
    let (mut server, address) = start(&db.url, policies.path());
    for subject in ["ana", "ben", "cy"] {
        assert_eq!(accept(&address, subject).expect("accepted").status().as_u16(), 201);
    }
    let _ = server.kill();
    let _ = server.wait();

    // An erasure that dies inside its transaction, after committing but before the log takes
    // it in, and half-way through integrating (inside the transaction on SQLite, after the
    // commit on PostgreSQL).
    let sqlite = matches!(backend, Backend::Sqlite);
    for (subject, at, committed) in [
        ("ana", "erase-before-commit", false),
        ("ben", "after-commit-before-integration", true),
        ("cy", "integrating", !sqlite),
    ] {
        let out = assent_crashing(&["erase", subject], at, &db.url, policies.path());
        assert!(died(&out), "{at}: the erasure did not die there:\n{}", text(&out));
        verified(&db.url, policies.path(), at);
        let history = text(&assent(&["history", subject, "--json"], &db.url, policies.path()));
        let erased = history.contains("\"kind\":\"erased\"");
        let address_kept = history.contains("203.0.113.0") && history.contains("CrashAgent/1.0");
        assert_eq!(erased, committed, "{at}: erased {erased}, expected {committed}:\n{history}");
        assert_eq!(address_kept, !erased, "{at}: an erased event with personal data left, or the reverse:\n{history}");
        // Finish the job: the erasure either still needs doing, or was done.
        let again = assent(&["erase", subject], &db.url, policies.path());
        assert_eq!(again.status.success(), !committed, "{at}: erase again:\n{}", text(&again));
        let history = text(&assent(&["history", subject, "--json"], &db.url, policies.path()));
        assert!(!history.contains("203.0.113.0"), "{at}: the address is gone in the end:\n{history}");
    }

    // What a crash left queued, the next sync (as every start runs) takes into the log.
    let synced = assent(&["sync"], &db.url, policies.path());
    assert!(synced.status.success(), "{}", text(&synced));
    let report = verified(&db.url, policies.path(), "after the erasures");
    assert!(!report.contains("wait to enter the log"), "{report}");

    // An acceptance whose server dies half-way through integrating: the group commit that holds
    // it rolls back whole, its event with its leaf, on both databases (the lanes integrate inside
    // the batch's transaction), and the subject has no event after the restart.
    let (mut server, address) = start_crashing(&db.url, policies.path(), "integrating");
    assert!(accept(&address, "dee").is_err(), "the server died before answering");
    let _ = server.wait();
    let report = verified(&db.url, policies.path(), "a server died integrating");
    assert!(!report.contains("wait to enter the log"), "{report}");
    let (mut server, address) = start(&db.url, policies.path());
    let read =
        String::from_utf8(assent(&["keys", "create", "audit", "--scope", "read"], &db.url, policies.path()).stdout)
            .unwrap();
    let mut resp = agent
        .get(format!("{address}/api/v1/subjects/dee/events"))
        .header("Authorization", &format!("Bearer {}", read.trim()))
        .call()
        .expect("events");
    let events: Vec<Value> = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(events.is_empty(), "an unacknowledged acceptance that died integrating was kept: {events:?}");
    let report = verified(&db.url, policies.path(), "after the restart");
    assert!(!report.contains("wait to enter the log"), "{report}");
}

/// The settings the webhook crash test runs servers with: the receiver is on 127.0.0.1, and the
/// delays are short (a 1 s timeout makes a lease of 7 s).
const HOOKS: [(&str, &str); 3] =
    [("ASSENT_WEBHOOK_ALLOW_PRIVATE", "1"), ("ASSENT_WEBHOOK_TIMEOUT", "1s"), ("ASSENT_WEBHOOK_RETRY_FIRST", "200ms")];

fn webhook_deliveries_survive_crashes(backend: Backend) {
    use common::receiver::{Behaviour, Receiver};
    let db = TestDatabase::create(&backend);
    let policies = tempfile::tempdir().unwrap();
    copy_dir(&shipped_policies(), policies.path());
    let key =
        String::from_utf8(assent(&["keys", "create", "host", "--scope", "write"], &db.url, policies.path()).stdout)
            .unwrap()
            .trim()
            .to_owned();
    let receiver = Receiver::start(Behaviour::Status(500));
    let added = Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["webhooks", "add", &receiver.url, "--events", "accepted,erased"])
        .envs(HOOKS)
        .env("ASSENT_DATABASE_URL", &db.url)
        .env("ASSENT_POLICIES", policies.path())
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let accept = |address: &str, subject: &str| {
        agent
            .post(format!("{address}/api/v1/subjects/{subject}/acceptances"))
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(json!({"document": "service-agreement", "version": 1}).to_string())
    };
    let event_id = |resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>| -> i64 {
        let mut resp = resp.expect("answered");
        assert_eq!(resp.status().as_u16(), 201);
        let receipt: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        receipt["event_id"].as_i64().unwrap()
    };

    // Acknowledged while the receiver fails, then SIGKILL: nothing delivered yet, all still owed.
    let (mut server, address) = start_with(&db.url, policies.path(), "", &HOOKS);
    let acked: Vec<i64> = (0..40).map(|i| event_id(accept(&address, &format!("hooked-{i}")))).collect();
    receiver.wait_until(Duration::from_secs(10), |seen| seen.len() >= 5);
    server.kill().expect("SIGKILL");
    let _ = server.wait();
    // An erasure that dies before its commit announces nothing.
    let out = assent_crashing(&["erase", "hooked-0"], "erase-before-commit", &db.url, policies.path());
    assert!(died(&out), "{}", text(&out));

    receiver.answer_with(Behaviour::Ok);
    let (mut server, _) = start_with(&db.url, policies.path(), "", &HOOKS);
    let delivered = receiver.wait_for_delivered(acked.len(), Duration::from_secs(30));
    let _ = server.kill();
    let _ = server.wait();
    let ids: std::collections::HashSet<i64> =
        delivered.iter().map(|s| s.json()["data"]["event_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, acked.iter().copied().collect(), "every acknowledged event was delivered after the restart");
    assert!(
        receiver.seen().iter().all(|s| !s.body.contains("\"erased\"")),
        "the erasure that never committed was announced"
    );

    // A server that dies after taking a delivery, before sending it: the next one sends it once
    // the lease has passed.
    let before = receiver.seen().len();
    let (mut server, address) = start_with(&db.url, policies.path(), "webhook-taken", &HOOKS);
    let _ = accept(&address, "taken");
    let status = server.wait().expect("the server died");
    assert!(!status.success(), "it died at the crash point");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.seen().len(), before, "nothing was sent before the crash");
    let (mut server, _) = start_with(&db.url, policies.path(), "", &HOOKS);
    let seen = receiver.wait_until(Duration::from_secs(30), |seen| {
        seen.iter().any(|s| s.delivered() && s.json()["data"]["subject"] == "taken")
    });
    let _ = server.kill();
    let _ = server.wait();
    let taken: Vec<_> = seen.iter().filter(|s| s.body.contains("\"taken\"")).collect();
    assert_eq!(taken.len(), 1, "sent once: {taken:?}");
    verified(&db.url, policies.path(), "after the webhook crashes");
}

on_both_databases!(
    durable_after_sigkill,
    crash_points_leave_the_old_state_or_the_new,
    webhook_deliveries_survive_crashes
);
