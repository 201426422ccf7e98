//! The example host application (`examples/host_app.rs`) against a real Assent, the whole
//! integration as the README shows it: the status asked on login, the redirect to a consent
//! link, the acceptance, the webhook that tells the app (signature checked by the example with
//! the secret alone), and the receipt when the user comes back. Forged or replayed deliveries are
//! refused by the example and change nothing.
//!
//! The example is the binary `cargo test` builds in `target/debug/examples/` (a plain
//! `cargo test` builds every example; with `--test host_app` alone, run
//! `cargo build --example host_app` first).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

use common::{Backend, TestApp, copy_dir, shipped_policies};

struct HostApp {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for HostApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HostApp {
    /// The next line the example prints that contains `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the host app never printed {needle:?}"),
            }
        }
    }

    /// Every line printed so far.
    fn printed(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_host_app(assent: &str, key: &str, secret: &str, port: u16) -> HostApp {
    let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("examples/host_app");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build --example host_app` (plain `cargo test` builds it)",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .env("ASSENT_URL", assent)
        .env("ASSENT_KEY", key)
        .env("ASSENT_WEBHOOK_SECRET", secret)
        .env("HOST_APP_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example host app");
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let app = HostApp { child, lines };
    app.wait_for("example host app at");
    // It prints before it listens.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the host app never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    app
}

fn the_whole_integration_with_the_example_host_app(backend: Backend) {
    let port = free_port();
    let host = format!("http://127.0.0.1:{port}");
    let origin = host.clone();
    let app = TestApp::spawn_configured(
        &backend,
        |dir| copy_dir(&shipped_policies(), dir),
        move |s| {
            s.return_origins = assent::consent::ReturnOrigins::parse(&origin).unwrap();
            s.webhooks.allow_private = true;
            s.webhooks.retry.first = Duration::from_millis(100);
        },
    );
    let admin = app.key("ops", "admin");
    let write = app.audience_key("host-app", "write", Some("developers"));
    let r = app.post(
        "/api/v1/webhooks",
        &admin,
        &json!({"url": format!("{host}/webhooks/assent"), "events": ["accepted", "declined", "withdrawn", "erased"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let host_app = start_host_app(&app.address, &write, &secret, port);
    let browser: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();

    // 1. Login: the user owes the developers' agreements, so the app sends them to a consent link.
    let mut r = browser.post(format!("{host}/login")).send_form([("user", "dev-7")]).unwrap();
    assert_eq!(r.status(), 303, "{}", r.body_mut().read_to_string().unwrap());
    let location = r.headers().get("location").unwrap().to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/consent?token=", app.address)), "{location}");
    let mut page = browser.get(&location).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.body_mut().read_to_string().unwrap().contains("Accept"), "the consent page");

    // 2. The user accepts (as the page would record it: here through the API, with the app's key).
    let status = app.get_auth("/api/v1/subjects/dev-7/status", &write).json();
    let mut receipts = Vec::new();
    for doc in status["documents"].as_array().unwrap() {
        let r = app.post(
            "/api/v1/subjects/dev-7/acceptances",
            &write,
            &json!({"document": doc["slug"], "version": doc["current_version"]}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        receipts.push(r.json());
    }
    assert!(!receipts.is_empty());

    // 3. The webhook reaches the app, which checks its signature and prints it.
    for receipt in &receipts {
        let line = host_app.wait_for(&format!("(receipt {}, ", receipt["event_id"]));
        assert!(line.contains("accepted: subject \"dev-7\""), "{line}");
        assert!(line.contains(&format!("log index {}", receipt["log_index"])), "{line}");
    }

    // 4. Back on the app with the receipt; the next login lets the user straight in.
    let ids: Vec<String> = receipts.iter().map(|r| r["event_id"].to_string()).collect();
    let mut r =
        browser.get(format!("{host}/back?user=dev-7&outcome=accepted&receipt={}", ids.join(","))).call().unwrap();
    let back = r.body_mut().read_to_string().unwrap();
    assert!(back.contains("your acceptance is recorded") && back.contains(&ids.join(",")), "{back}");
    let mut r = browser.post(format!("{host}/login")).send_form([("user", "dev-7")]).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.body_mut().read_to_string().unwrap().contains("you are up to date"));

    // 5. What the example refuses: no signature, a wrong one, a stale one (a replay).
    let body = r#"{"type":"erased","timestamp":"2026-01-01T00:00:00Z","data":{"subject":"dev-7"}}"#;
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let sign = |id: &str, ts: i64| {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    };
    let now = chrono::Utc::now().timestamp();
    let post = |headers: &[(&str, String)]| {
        let mut req = browser.post(format!("{host}/webhooks/assent")).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send(body).unwrap().status().as_u16()
    };
    assert_eq!(post(&[]), 401, "no signature");
    let forged = [
        ("webhook-id", "msg_x".into()),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", "v1,AAAA".into()),
    ];
    assert_eq!(post(&forged), 401, "a wrong signature");
    let stale = [
        ("webhook-id", "msg_x".into()),
        ("webhook-timestamp", (now - 3600).to_string()),
        ("webhook-signature", sign("msg_x", now - 3600)),
    ];
    assert_eq!(post(&stale), 401, "an hour-old delivery");
    let good = [
        ("webhook-id", "msg_y".into()),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", sign("msg_y", now)),
    ];
    assert_eq!(post(&good), 204, "signed with the secret now: taken");
    host_app.wait_for("webhook msg_y: erased");
    assert_eq!(post(&good), 204, "the same delivery again: taken, not acted on twice");
    let huge = [
        ("webhook-id", "msg_z".into()),
        ("webhook-timestamp", i64::MIN.to_string()),
        ("webhook-signature", "v1,AAAA".into()),
    ];
    assert_eq!(post(&huge), 401, "a timestamp at the edge of i64");
    let printed = host_app.printed();
    assert!(!printed.iter().any(|l| l.contains("webhook msg_x")), "a refused delivery was printed: {printed:?}");
    assert!(
        !printed.iter().any(|l| l.contains("webhook msg_y")),
        "a repeated delivery was acted on twice: {printed:?}"
    );
}

on_both_databases!(the_whole_integration_with_the_example_host_app);
