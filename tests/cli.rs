//! The command line as scripts use it: flags where people put them, output that a pipe can
//! cut short, logs fit for a file, and one clear line when the database is not there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use common::{Backend, TestApp, TestDatabase, assent, shipped_policies};

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assent"));
    c.env("ASSENT_POLICIES", shipped_policies()).env("ASSENT_LOG", "info");
    c
}

/// `assent --bind ADDR` serves, as `assent serve --bind ADDR` does, and its log is plain text
/// when it goes to a file or a pipe.
fn bind_at_the_top_level_and_plain_logs(backend: Backend) {
    let db = TestDatabase::create(&backend);
    for args in [&["--bind", "127.0.0.1:0"][..], &["serve", "--bind", "127.0.0.1:0"][..]] {
        let (serving, seen) =
            serve_and_read_log(binary().args(args).env("ASSENT_DATABASE_URL", &db.url).env_remove("NO_COLOR"));
        let address = serving.unwrap_or_else(|| panic!("{args:?} did not serve:\n{}", seen.join("\n")));
        assert!(!address.ends_with(":0") && address.starts_with("127.0.0.1:"), "{address}");
        assert!(seen.iter().all(|l| !l.contains('\u{1b}')), "colour codes in a piped log: {seen:?}");
    }
}

/// Reads a server's log until a line says where it serves (or the log ends, or a minute
/// passes), then stops it.
fn serve_and_read_log(command: &mut Command) -> (Option<String>, Vec<String>) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let serving = loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else { break None };
        seen.push(line.clone());
        if let Some(at) = line.split("serving at http://").nth(1) {
            break Some(at.trim_end_matches(|c: char| c == '"' || c == '}' || c.is_whitespace()).to_owned());
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    (serving, seen)
}

fn json_logs_and_a_bad_log_format(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let (serving, seen) = serve_and_read_log(
        binary().args(["--bind", "127.0.0.1:0"]).env("ASSENT_DATABASE_URL", &db.url).env("ASSENT_LOG_FORMAT", "json"),
    );
    assert!(serving.is_some(), "{seen:?}");
    let logged: Vec<serde_json::Value> = seen
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"].as_str().is_some_and(|m| m.contains("serving at"))),
        "{seen:?}"
    );

    let bad =
        binary().arg("sync").env("ASSENT_DATABASE_URL", &db.url).env("ASSENT_LOG_FORMAT", "xml").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "error: ASSENT_LOG_FORMAT `xml`: use `text` (the default) or `json`"
    );
}

/// `history` has column headers; `history --json | head -1` and `export | head -1` end quietly,
/// with SIGPIPE's status.
fn history_headers_and_a_closed_pipe(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let key = app.key("host", "write");
    for _ in 0..3 {
        let r = app.post(
            "/api/v1/subjects/piped/acceptances",
            &key,
            &json!({"document": "service-agreement", "version": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let table = assent(&["history", "piped"], &app.db.url, app.policies.path());
    let text = String::from_utf8_lossy(&table.stdout);
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    for column in ["SEQ", "RECORDED AT", "KIND", "COVERS", "VIA", "BY", "IP", "CHAIN HASH"] {
        assert!(header.contains(column), "{header}");
    }
    let first = rows.next().unwrap();
    assert!(first.trim_start().starts_with("1 "), "{first}");
    assert_eq!(first.find("accepted"), header.find("KIND"), "columns line up:\n{header}\n{first}");

    // The reader is gone before the first line is written: the write fails with EPIPE.
    let out = with_reader_gone(&app, &["history", "piped", "--json"], 0);
    assert_eq!(out.status.code(), Some(141), "SIGPIPE's status: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // An export larger than its write buffer, cut off by its reader after one line.
    for i in 0..700 {
        let r = app.post(
            &format!("/api/v1/subjects/bulk-{i}/acceptances"),
            &key,
            &json!({"document": "service-agreement", "version": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for format in ["csv", "jsonl"] {
        let out = with_reader_gone(&app, &["export", "--format", format], 1);
        assert_eq!(out.status.code(), Some(141), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs `args` on the app's database with a reader that reads `lines` lines of its output and
/// goes away.
fn with_reader_gone(app: &TestApp, args: &[&str], lines: usize) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(args)
        .env("ASSENT_DATABASE_URL", &app.db.url)
        .env("ASSENT_POLICIES", app.policies.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{args:?} wrote less than {lines} lines");
    }
    drop(reader);
    child.wait_with_output().unwrap()
}

/// `assent link` builds its links on the bind address when there is no public URL.
fn link_falls_back_to_the_bind_address(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let out = Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["link", "linked", "--return-to", "https://app.example/done"])
        .env("ASSENT_DATABASE_URL", &app.db.url)
        .env("ASSENT_POLICIES", app.policies.path())
        .env("ASSENT_ALLOWED_RETURN_ORIGINS", "https://app.example")
        .env("ASSENT_BIND", "127.0.0.1:9417")
        .env_remove("ASSENT_PUBLIC_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8_lossy(&out.stdout);
    assert!(url.starts_with("http://127.0.0.1:9417/consent?token="), "{url}");
}

/// Every command's `--help` lists its exit codes.
#[test]
fn every_command_lists_its_exit_codes() {
    for command in [
        "", "serve", "sync", "check", "diff", "keys", "history", "verify", "log", "erase", "export", "webhooks", "link",
    ] {
        let out = binary().args([command, "--help"].iter().filter(|a| !a.is_empty())).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command}");
        assert!(help.contains("Exit codes: 0 "), "`assent {command} --help` lists no exit codes:\n{help}");
        assert!(help.contains("141"), "{command}");
    }
}

/// A wrong setting means the command could not run: exit 2 and one line, whatever the command.
#[test]
fn a_wrong_setting_exits_2_with_one_line() {
    let db = TestDatabase::create(&Backend::Sqlite);
    for (name, value) in
        [("ASSENT_DB_POOL_WAIT", "soon"), ("ASSENT_IP_MODE", "some"), ("ASSENT_TRUSTED_PROXIES", "nope")]
    {
        let out = binary().arg("sync").env("ASSENT_DATABASE_URL", &db.url).env(name, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn a_public_url_that_is_not_one_is_refused() {
    let db = TestDatabase::create(&Backend::Sqlite);
    let out = binary()
        .arg("sync")
        .env("ASSENT_DATABASE_URL", &db.url)
        .env("ASSENT_PUBLIC_URL", "policies.example.com")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ASSENT_PUBLIC_URL `policies.example.com`: use an absolute http(s) URL")
    );
}

on_both_databases!(
    bind_at_the_top_level_and_plain_logs,
    json_logs_and_a_bad_log_format,
    history_headers_and_a_closed_pipe,
    link_falls_back_to_the_bind_address,
);

/// A PostgreSQL database that does not exist: one line at once, saying what to do, not seconds
/// of the pool's retries and the reason twice.
#[test]
fn a_missing_postgres_database_is_one_clear_line() {
    let Some(Backend::Postgres(admin)) = Backend::postgres() else { return };
    let base = admin.split('?').next().unwrap_or(&admin);
    let cut = base.rfind('/').filter(|i| *i > "postgres://".len()).unwrap_or(base.len());
    let url = format!("{}/assent_no_such_database", &base[..cut]);
    for args in [&["sync"][..], &["--bind", "127.0.0.1:0"][..], &["history", "x"][..]] {
        let started = Instant::now();
        let out = binary().args(args).env("ASSENT_DATABASE_URL", &url).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{args:?} took {:?}", started.elapsed());
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            lines[0].contains("\"assent_no_such_database\" does not exist") && lines[0].contains("createdb"),
            "{stderr}"
        );
        assert_eq!(lines[0].matches("does not exist").count(), 1, "the reason once: {stderr}");
    }
}
