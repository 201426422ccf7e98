//! PostgreSQL going away under load (contract §11): while it is down, answers are quick 503s
//! with `Retry-After`; when it comes back, the server recovers by itself within 5 s; and every
//! acceptance that was acknowledged is there afterwards. The test runs a PostgreSQL of its own
//! (`initdb` and `pg_ctl` into a temporary folder, on a free port), so stopping it disturbs no
//! other test.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::json;

use common::{Backend, TestApp, write};

/// A PostgreSQL server of this test's own.
struct OwnPostgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("initdb").is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

impl OwnPostgres {
    fn start() -> Self {
        let bin = find_bin().expect("initdb and pg_ctl (Debian's postgresql package) for the outage test");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        if running_as_root() {
            let uid = uid_of("postgres").expect("a `postgres` user to run PostgreSQL as");
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let out =
            run_as_postgres(&bin.join("initdb"), &["-D", path(&data), "-U", "postgres", "-A", "trust", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Self { _dir: dir, data, socket_dir, port, bin };
        pg.start_again();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, path(&self.socket_dir));
        let mut all = vec!["-D", path(&self.data), "-o", &options, "-w", "-t", "30"];
        all.extend_from_slice(args);
        let out = run_as_postgres(&self.bin.join("pg_ctl"), &all);
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn start_again(&self) {
        self.pg_ctl(&["-l", path(&self.data.with_extension("log")), "start"]);
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = run_as_postgres(&self.bin.join("pg_ctl"), &["-D", path(&self.data), "-m", "immediate", "stop"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn run_as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).current_dir("/").output().expect("run a PostgreSQL program")
}

fn folder(dir: &Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
}

#[test]
fn a_postgres_outage_is_answered_503_and_recovered_from_with_nothing_lost() {
    if Backend::postgres().is_none() {
        return; // the PostgreSQL half is off (said loudly once by `Backend::postgres`)
    }
    let pg = OwnPostgres::start();
    let app = TestApp::spawn_with(&Backend::Postgres(pg.admin_url()), folder);
    let key = app.key("host", "write");
    let watched = app.key("watched", "read");
    assert_eq!(app.get_auth("/api/v1/subjects/w/status", &watched).status, 200, "now cached");
    let running = AtomicBool::new(true);
    let acked: Mutex<Vec<i64>> = Mutex::new(Vec::new());
    let refused: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let slowest: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let mut recoveries = Vec::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (app, key, running, acked, refused, slowest) = (&app, &key, &running, &acked, &refused, &slowest);
            s.spawn(move || {
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let (status, body) = if t < 3 {
                        let r = app.post(
                            &format!("/api/v1/subjects/o-{t}-{n}/acceptances"),
                            key,
                            &json!({"document": "terms", "version": 1}),
                        );
                        if r.status == 201 {
                            acked.lock().unwrap().push(r.json()["event_id"].as_i64().unwrap());
                        }
                        (r.status, r.body.clone())
                    } else {
                        let r = app.get_auth(&format!("/api/v1/subjects/o-0-{n}/status"), key);
                        (r.status, r.body.clone())
                    };
                    let took = started.elapsed();
                    if status != 201 && status != 200 {
                        refused.lock().unwrap().push(format!("{status} after {took:?}: {body}"));
                        slowest.lock().unwrap().push(took);
                    }
                    // A refusal is quick: the pool waits 1 s, and a request that began as the
                    // database went away may meet that wait twice (a read, then its write). An acceptance that committed as the database went away waits
                    // for the log to take it in (its receipt names its leaf), and is answered
                    // 201 once the database is back.
                    assert!(status == 201 || took < Duration::from_millis(2_500), "a {status} took {took:?}");
                }
            });
        }
        // However the rounds end (a failed assertion included), the load stops, so that the
        // scope can join it and the test reports instead of hanging.
        struct StopLoad<'a>(&'a AtomicBool);
        impl Drop for StopLoad<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _stop = StopLoad(&running);
        std::thread::sleep(Duration::from_secs(1));
        for round in 0..5 {
            pg.stop();
            std::thread::sleep(Duration::from_millis(300));
            let health = app.get("/healthz");
            assert_eq!(health.status, 503, "round {round}: {}", health.body);
            let api = app.get_auth("/api/v1/subjects/x/status", &key);
            assert_eq!(api.status, 503, "round {round}: {}", api.body);
            assert_eq!(api.header("retry-after"), Some("1"));
            assert_eq!(api.json()["error"]["code"], "unavailable");
            let page = app.get("/policies/terms");
            assert_eq!(page.status, 503, "round {round}");
            assert!(page.content_type.starts_with("text/html") && page.body.contains("not answering"), "{}", page.body);
            std::thread::sleep(Duration::from_millis(1_500));
            pg.start_again();
            let back = Instant::now();
            while app.get("/healthz").status != 200 || app.get_auth("/api/v1/subjects/x/status", &key).status != 200 {
                assert!(back.elapsed() < Duration::from_secs(5), "round {round}: not recovered after 5 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            recoveries.push(back.elapsed());
            std::thread::sleep(Duration::from_millis(700));
        }
    });
    let refused = refused.into_inner().unwrap();
    for r in &refused {
        assert!(r.starts_with("503"), "only 503s while it was down: {r}");
        assert!(r.contains("\"error\""), "a JSON error: {r}");
    }
    // Every acknowledged acceptance is in the ledger.
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 100, "the load ran: {} acknowledged", acked.len());
    let mut conn = PgConnection::establish(&app.db.url).unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let stored: HashSet<i64> =
        diesel::sql_query("SELECT id FROM events").load::<Id>(&mut conn).unwrap().into_iter().map(|r| r.id).collect();
    let lost: Vec<&i64> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost: {lost:?}", lost.len());
    let verify = common::assent(&["verify"], &app.db.url, app.policies.path());
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    // The change watcher came back too: a key revoked now is refused on the next request.
    let revoke = common::assent(&["keys", "revoke", "watched"], &app.db.url, app.policies.path());
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    assert_eq!(app.get_auth("/api/v1/subjects/w/status", &watched).status, 401, "the revocation was not heard");
    recoveries.sort();
    let mut slowest = slowest.into_inner().unwrap();
    slowest.sort();
    eprintln!(
        "outage: {} acknowledged, {} refused with 503 (in p50 {:?}, max {:?}), 0 lost; recovery after each restart: {:?} (p50 {:?}, max {:?})",
        acked.len(),
        refused.len(),
        slowest.get(slowest.len() / 2),
        slowest.last(),
        recoveries,
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1]
    );
}

/// A full disk under SQLite: acceptances are refused with 503 (nothing half-written, no panic),
/// reads go on, and recording resumes once there is room. The test mounts a small tmpfs of its
/// own, so it runs as root only (CI runs as root); elsewhere it says it is skipped.
#[test]
fn a_full_disk_on_sqlite_is_answered_503_and_recovered_from() {
    let mount_point = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs", path(mount_point.path())])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("\n*** SKIPPED: the full-disk test needs to mount a tmpfs (run as root; .ci/run does). ***\n");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.path());
    let db_path = mount_point.path().join("assent.db");
    let app = TestApp::spawn_at(&format!("sqlite://{}", path(&db_path)), folder);
    let key = app.key("host", "write");
    // Leave about 1 MB free, then record until the disk is full.
    let free = {
        let out = Command::new("df").args(["--output=avail", "-B1", path(mount_point.path())]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse::<u64>().unwrap()
    };
    let filler = mount_point.path().join("filler");
    std::fs::write(&filler, vec![0u8; free.saturating_sub(1024 * 1024) as usize]).unwrap();
    let mut created = 0;
    let mut full = None;
    for n in 0..5_000 {
        let r = app.post(
            &format!("/api/v1/subjects/disk-{n}/acceptances"),
            &key,
            &json!({"document": "terms", "version": 1}),
        );
        match r.status {
            201 => created += 1,
            503 => {
                full = Some(r);
                break;
            }
            other => panic!("after {created} acceptances: {other} {}", r.body),
        }
    }
    let full = full.expect("the disk filled up");
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_eq!(full.json()["error"]["code"], "unavailable", "{}", full.body);
    assert_eq!(app.get_auth("/api/v1/subjects/disk-0/status", &key).status, 200, "reads go on");
    assert_eq!(app.get("/policies/terms").status, 200);
    std::fs::remove_file(&filler).unwrap();
    let again = app.post("/api/v1/subjects/after-full/acceptances", &key, &json!({"document": "terms", "version": 1}));
    assert_eq!(again.status, 201, "recording resumes once there is room: {}", again.body);
    let verify = common::assent(&["verify"], &app.db.url, app.policies.path());
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(created > 10, "{created}");
}
