//! The re-prompt flow in a real headless Chromium, driven over WebDriver: a stand-in host
//! application sends a subject to Assent, the browser sees the changed words, answers, and lands
//! back on the host with a receipt. Also Decline, Withdraw from `/me`, and an expired link.
//!
//! Needs Debian's `chromium` and `chromium-driver`; runs when `ASSENT_TEST_BROWSER=1` (as
//! `.ci/run` sets it) and says loudly when it is skipped.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use fantoccini::wd::{PrintConfiguration, PrintSize};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::{Backend, TestApp, assent, write};

fn enabled() -> bool {
    if std::env::var("ASSENT_TEST_BROWSER").is_ok_and(|v| v == "1") {
        return true;
    }
    static WARN: Once = Once::new();
    WARN.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: the browser tests. Install chromium and chromium-driver and set ASSENT_TEST_BROWSER=1 to run them (.ci/run does). ***\n"
        );
    });
    false
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let binary = std::env::var("ASSENT_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (apt-get install chromium-driver)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let binary = std::env::var("ASSENT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1280,1000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// A stand-in host application: `/back` shows what Assent sent back.
fn host_app() -> (String, actix_web::dev::ServerHandle) {
    async fn back(req: HttpRequest) -> HttpResponse {
        let q: std::collections::HashMap<String, String> =
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default();
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        HttpResponse::Ok().content_type("text/html").body(format!(
            "<!doctype html><title>Host</title><h1>Back on the host</h1><p id=outcome>{}</p><p id=receipt>{}</p>",
            get("outcome"),
            get("receipt")
        ))
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().route("/back", web::get().to(back)))
                .workers(1)
                .bind("127.0.0.1:0")
                .expect("bind host app");
            let addr = server.addrs()[0];
            let server = server.run();
            let _ = tx.send((format!("http://{addr}"), server.handle()));
            let _ = server.await;
        });
    });
    rx.recv().expect("host app started")
}

async fn wait_for_url(client: &Client, prefix: &str) -> url::Url {
    let started = Instant::now();
    loop {
        let url = client.current_url().await.expect("current url");
        if url.as_str().starts_with(prefix) {
            return url;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never reached {prefix}; at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, waiting for it to appear (pages load
/// asynchronously after a click or a navigation, slower when the machine is busy).
async fn text_of(client: &Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        match client.find(Locator::Css(css)).await {
            Ok(element) => return element.text().await.unwrap_or_default(),
            Err(e) if started.elapsed() > Duration::from_secs(15) => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the first element matching `css` says `expected`.
async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let text = text_of(client, css).await;
        if text == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{css} says {text:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where screenshots and printed pages are kept for a person to look at.
fn artefact(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

async fn screenshot(client: &Client, name: &str) {
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(artefact(&format!("{name}.png")), png);
    }
}

/// Prints the current page to PDF on `size` paper, keeps it, and gives back its pages' count
/// and the width and height of the first page in points, read from the PDF itself.
async fn print_pdf(client: &Client, size: PrintSize, name: &str) -> (usize, f64, f64) {
    let config = PrintConfiguration::builder().size(size).build().expect("a print configuration");
    let pdf = client.print(config).await.expect("Chromium prints the page");
    assert!(pdf.starts_with(b"%PDF-"), "{name}: not a PDF");
    let _ = std::fs::write(artefact(&format!("{name}.pdf")), &pdf);
    let text = String::from_utf8_lossy(&pdf);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    let media = text.split("/MediaBox [").nth(1).expect("a MediaBox");
    let numbers: Vec<f64> =
        media.split(']').next().unwrap_or("").split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert_eq!(numbers.len(), 4, "{name}: MediaBox {media:.40}");
    (pages, numbers[2] - numbers[0], numbers[3] - numbers[1])
}

fn the_consent_flow_in_a_real_browser(backend: Backend) {
    if !enabled() {
        return;
    }
    let (host, host_handle) = host_app();
    // Version 2 takes effect a few seconds after start, so that a subject can accept version 1
    // first and then be re-prompted for real.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let host_origin = host.clone();
    let app = TestApp::spawn_configured(
        &backend,
        |dir| {
            write(
                dir,
                "terms/v1.md",
                "---\ntitle: Terms of Service\neffective: 2020-01-01\n---\n## Data\n\nWe keep your data for ten years.\n",
            );
            write(
                dir,
                "terms/v2.md",
                &format!(
                    "---\ntitle: Terms of Service\neffective: {soon}\nsummary: We keep data for less time.\n---\n## Data\n\nWe keep your data for two years.\n"
                ),
            );
            write(
                dir,
                "privacy/v1.md",
                "---\ntitle: Privacy Notice\neffective: 2020-01-01\npart_of: terms\n---\nWe are careful.\n",
            );
        },
        move |s| s.return_origins = assent::consent::ReturnOrigins::parse(&host_origin).unwrap(),
    );
    let write_key = app.key("host", "write");
    let read_key = app.key("audit", "read");
    let accepted =
        app.post("/api/v1/subjects/alice/acceptances", &write_key, &json!({"document": "terms", "version": 1}));
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    std::thread::sleep(Duration::from_millis(3500));
    let link = |subject: &str, ttl: i64| -> String {
        let r = app.post(
            "/api/v1/consent-links",
            &write_key,
            &json!({"subject": subject, "return_to": format!("{host}/back"), "ttl_seconds": ttl}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["url"].as_str().unwrap().to_owned()
    };
    let status = |subject: &str| app.get_auth(&format!("/api/v1/subjects/{subject}/status"), &read_key).json();
    assert_eq!(status("alice")["documents"][0]["state"], "pending");

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;

        // Accept: the page shows the changed words, and the host gets the outcome and a receipt.
        client.goto(&link("alice", 600)).await.unwrap();
        wait_for_text(&client, "h1", "Please review this agreement").await;
        assert_eq!(text_of(&client, ".change del").await, "ten");
        assert_eq!(text_of(&client, ".change ins").await, "two");
        screenshot(&client, &format!("consent-{}", app.db.url.split(':').next().unwrap_or("db"))).await;
        client.find(Locator::Css("button[value='accept']")).await.unwrap().click().await.unwrap();
        let back = wait_for_url(&client, &format!("{host}/back")).await;
        assert!(back.query().unwrap_or("").contains("outcome=accepted"), "{back}");
        wait_for_text(&client, "#outcome", "accepted").await;
        assert!(!text_of(&client, "#receipt").await.is_empty());
        let s = status("alice");
        assert_eq!(s["up_to_date"], true, "{s}");
        assert_eq!(s["documents"][0]["accepted_version"], 2);

        // Decline.
        client.goto(&link("bob", 600)).await.unwrap();
        assert!(
            text_of(&client, "main").await.contains("We keep your data for two years."),
            "never accepted: full text"
        );
        client.find(Locator::Css("button[value='decline']")).await.unwrap().click().await.unwrap();
        wait_for_url(&client, &format!("{host}/back")).await;
        wait_for_text(&client, "#outcome", "declined").await;
        assert_eq!(status("bob")["documents"][0]["state"], "declined");

        // Withdraw from /me.
        let me = link("alice", 600).replace("/consent?", "/me?");
        client.goto(&me).await.unwrap();
        wait_for_text(&client, "h1", "Your consent record").await;
        screenshot(&client, "me").await;
        client.find(Locator::Css("form[action='/me/withdraw'] button")).await.unwrap().click().await.unwrap();
        let started = Instant::now();
        while !text_of(&client, "main").await.contains("Your withdrawal is recorded.") {
            assert!(started.elapsed() < Duration::from_secs(15), "no withdrawal confirmation");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status("alice")["documents"][0]["state"], "withdrawn");

        // An expired link explains itself.
        let expiring = link("carol", 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.goto(&expiring).await.unwrap();
        wait_for_text(&client, "h1", "This link has expired").await;

        client.close().await.unwrap();
    });
    actix_web::rt::System::new().block_on(host_handle.stop(false));
}

/// A re-prompt that comes from a part's material change, and one from an expired acceptance, on
/// one page; accepting answers both.
fn a_part_change_and_an_expiry_in_a_real_browser(backend: Backend) {
    if !enabled() {
        return;
    }
    let (host, host_handle) = host_app();
    let host_origin = host.clone();
    let app = TestApp::spawn_configured(
        &backend,
        |dir| {
            write(dir, "terms/v1.md", "---\ntitle: Terms of Service\neffective: 2020-01-01\n---\nBe nice.\n");
            write(
                dir,
                "privacy/v1.md",
                "---\ntitle: Privacy Notice\neffective: 2020-01-01\npart_of: terms\n---\nWe keep your data.\n",
            );
            write(
                dir,
                "sdk/v1.md",
                "---\ntitle: SDK Policy\neffective: 2020-01-01\nreaccept_after: 3s\n---\nThe SDK counts crashes.\n",
            );
        },
        move |s| s.return_origins = assent::consent::ReturnOrigins::parse(&host_origin).unwrap(),
    );
    let write_key = app.key("host", "write");
    for document in ["terms", "sdk"] {
        let r = app.post("/api/v1/subjects/dana/acceptances", &write_key, &json!({"document": document, "version": 1}));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // A material version of the part is published after dana accepted, taking effect shortly.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write(
        app.policies.path(),
        "privacy/v2.md",
        &format!(
            "---\ntitle: Privacy Notice\neffective: {soon}\npart_of: terms\nsummary: We now delete your data after a year.\n---\nWe delete your data.\n"
        ),
    );
    let out = assent(&["sync"], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(4000)); // v2 in effect, the SDK acceptance expired
    let status = |document: usize| {
        app.get_auth("/api/v1/subjects/dana/status", &write_key).json()["documents"][document]["state"].clone()
    };
    assert_eq!((status(0), status(1)), (json!("expired"), json!("pending")), "sdk, then terms");
    let r = app.post(
        "/api/v1/consent-links",
        &write_key,
        &json!({"subject": "dana", "return_to": format!("{host}/back"), "ttl_seconds": 600}),
    );
    let url = r.json()["url"].as_str().unwrap().to_owned();

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        client.goto(&url).await.unwrap();
        wait_for_text(&client, "h1", "Please review these agreements").await;
        let terms = text_of(&client, "#agreement-terms + p.meta").await;
        assert!(terms.contains("It has changed since you last accepted it."), "{terms}");
        let main = text_of(&client, "main").await;
        assert!(main.contains("What changed in version 2: We now delete your data after a year."), "{main}");
        assert_eq!(text_of(&client, ".change del").await, "keep");
        assert_eq!(text_of(&client, ".change ins").await, "delete");
        let sdk = text_of(&client, "#agreement-sdk + p.meta").await;
        assert!(sdk.contains("It has been over 3 seconds since you accepted it"), "{sdk}");
        screenshot(&client, "consent-part-and-expiry").await;
        client.find(Locator::Css("button[value='accept']")).await.unwrap().click().await.unwrap();
        let back = wait_for_url(&client, &format!("{host}/back")).await;
        assert!(back.query().unwrap_or("").contains("outcome=accepted"), "{back}");
        client.close().await.unwrap();
    });
    let s = app.get_auth("/api/v1/subjects/dana/status", &write_key).json();
    assert_eq!(s["up_to_date"], true, "{s}");
    actix_web::rt::System::new().block_on(host_handle.stop(false));
}

fn the_admin_view_in_a_real_browser(backend: Backend) {
    if !enabled() {
        return;
    }
    let app = TestApp::spawn(&backend);
    let write_key = app.key("host", "write");
    let read_key = app.key("dpo", "read");
    for i in 0..12 {
        let what = if i % 5 == 4 { "declines" } else { "acceptances" };
        let r = app.post(
            &format!("/api/v1/subjects/user-{i}/{what}"),
            &write_key,
            &json!({"document": "service-agreement", "version": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    app.post("/api/v1/subjects/user-0/withdrawals", &write_key, &json!({"document": "service-agreement"}));
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        client.goto(&format!("{}/admin", app.address)).await.unwrap();
        wait_for_url(&client, &format!("{}/admin/signin", app.address)).await;
        client.find(Locator::Css("#key")).await.unwrap().send_keys(&read_key).await.unwrap();
        client.find(Locator::Css("form.stacked button")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "h1", "Coverage").await;
        let table = text_of(&client, "table.coverage").await;
        assert!(table.contains("Developer Service Usage Agreement, version 1"), "{table}");
        assert!(client.find(Locator::Css("svg.chart rect.day")).await.is_ok());
        screenshot(&client, "admin").await;

        client.find(Locator::Css("#subject-search")).await.unwrap().send_keys("user-0").await.unwrap();
        client.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
        wait_for_url(&client, &format!("{}/admin/subjects", app.address)).await;
        assert!(text_of(&client, "main").await.contains("withdrawn"));

        client.goto(&format!("{}/admin/events?kind=declined", app.address)).await.unwrap();
        let events = text_of(&client, "table.events").await;
        assert!(events.contains("user-4") && events.contains("user-9") && !events.contains("user-1 "), "{events}");
        screenshot(&client, "admin-events").await;
        client.close().await.unwrap();
    });
}

/// The printable evidence record: reached from `/me`, it shows each decision with its log index
/// and the signed checkpoint, and prints to A4 and Letter without losing the hashes off the edge.
fn the_evidence_record_in_a_real_browser(backend: Backend) {
    if !enabled() {
        return;
    }
    let app = TestApp::spawn_configured(
        &backend,
        |dir| common::copy_dir(&common::shipped_policies(), dir),
        |s| s.return_origins = assent::consent::ReturnOrigins::parse("https://app.example.com").unwrap(),
    );
    let write_key = app.key("host", "write");
    let read_key = app.key("audit", "read");
    let mut receipts = Vec::new();
    for (what, body) in [
        ("acceptances", json!({"document": "service-agreement", "version": 1, "evidence": {"ip": "198.51.100.7"}})),
        ("withdrawals", json!({"document": "service-agreement"})),
        ("acceptances", json!({"document": "service-agreement", "version": 1})),
    ] {
        let r = app.post(&format!("/api/v1/subjects/erin/{what}"), &write_key, &body);
        assert_eq!(r.status, 201, "{}", r.body);
        receipts.push(r.json());
    }
    let link = app.post(
        "/api/v1/consent-links",
        &write_key,
        &json!({"subject": "erin", "return_to": "https://app.example.com/back", "ttl_seconds": 600}),
    );
    assert_eq!(link.status, 201, "{}", link.body);
    let me = link.json()["url"].as_str().unwrap().replace("/consent?", "/me?");
    let checkpoint = app.get_auth("/api/v1/log/checkpoint", &read_key).body;
    let db = app.db.url.split(':').next().unwrap_or("db").to_owned();

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        client.goto(&me).await.unwrap();
        wait_for_text(&client, "h1", "Your consent record").await;
        client.find(Locator::LinkText("Printable evidence record")).await.unwrap().click().await.unwrap();
        wait_for_text(&client, "h1", "Evidence record").await;
        let decisions = client.find_all(Locator::Css("section.decision")).await.unwrap();
        assert_eq!(decisions.len(), receipts.len(), "one section per decision");
        for (section, receipt) in decisions.iter().zip(&receipts) {
            let text = section.text().await.unwrap();
            let index = receipt["log_index"].as_u64().unwrap().to_string();
            assert!(
                text.contains(&format!("Log index\n{index}")) || text.contains(&format!("Log index {index}")),
                "{text}"
            );
            assert!(text.contains(receipt["chain_hash"].as_str().unwrap()), "{text}");
        }
        let shown = text_of(&client, "pre.checkpoint").await;
        assert_eq!(shown.trim_end(), checkpoint.trim_end(), "the newest signed checkpoint, as the API serves it");
        // Nothing sticks out of the page: the 64-character hashes wrap.
        let overflow = client
            .execute("return document.documentElement.scrollWidth > document.documentElement.clientWidth;", vec![])
            .await
            .unwrap();
        assert_eq!(overflow, json!(false), "the record is wider than the window");
        screenshot(&client, &format!("record-{db}")).await;

        let (pages, width, height) = print_pdf(&client, PrintSize::A4, &format!("record-a4-{db}")).await;
        assert!(pages >= 1, "the A4 PDF has pages");
        assert!((width - 595.0).abs() < 2.0 && (height - 842.0).abs() < 2.0, "A4 is 595x842 pt, got {width}x{height}");
        let (pages, width, height) = print_pdf(&client, PrintSize::US_LETTER, &format!("record-letter-{db}")).await;
        assert!(pages >= 1, "the Letter PDF has pages");
        assert!(
            (width - 612.0).abs() < 2.0 && (height - 792.0).abs() < 2.0,
            "Letter is 612x792 pt, got {width}x{height}"
        );
        client.close().await.unwrap();
    });
}

on_both_databases!(
    the_consent_flow_in_a_real_browser,
    a_part_change_and_an_expiry_in_a_real_browser,
    the_admin_view_in_a_real_browser,
    the_evidence_record_in_a_real_browser
);
