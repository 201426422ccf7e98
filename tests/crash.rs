//! Durability: many concurrent acceptances, the server killed with SIGKILL mid-way, restarted;
//! every acknowledged event must be there and `assent verify` clean.

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
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

    let (mut server, address) = start(&db.url, policies.path());
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    std::thread::scope(|s| {
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
        // Kill mid-way, while requests are in flight.
        while acked.lock().unwrap().len() < 300 {
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
    let _ = server.kill();
    let _ = server.wait();
    assert!(missing.is_empty(), "acknowledged events lost after SIGKILL: {missing:?}");
    let verify = assent(&["verify"], &db.url, policies.path());
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

on_both_databases!(durable_after_sigkill);
