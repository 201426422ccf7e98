//! Read-your-writes on every server (contract §11): two servers on one database, changes made
//! by the command line, and the very next request on each server sees them.

mod common;

use serde_json::json;

use common::{Backend, TestApp, assent, write};

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
}

/// Uses `key` a few times on each server, so that each has it cached.
fn cached_on(servers: &[&TestApp], key: &str, round: usize) {
    for server in servers {
        for _ in 0..3 {
            assert_eq!(server.get_auth("/api/v1/subjects/s/status", key).status, 200, "round {round}");
        }
    }
}

/// A key revoked by `assent keys revoke` is refused by both servers on the very next request,
/// though both had it cached; ten times over, so that no lucky timing passes it.
fn a_revoked_key_is_refused_on_every_server_at_once(backend: Backend) {
    let a = TestApp::spawn_with(&backend, folder);
    let b = a.another_server(|_| {});
    for round in 0..10 {
        let name = format!("host-{round}");
        let key = a.key(&name, "read");
        cached_on(&[&a, &b], &key, round);
        let out = assent(&["keys", "revoke", &name], &a.db.url, a.policies.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for (which, server) in [("a", &a), ("b", &b)] {
            let r = server.get_auth("/api/v1/subjects/s/status", &key);
            assert_eq!(r.status, 401, "round {round}, server {which}: the revoked key still worked: {}", r.body);
        }
    }
}

/// A key revoked through one server (`DELETE /api/v1/keys/{name}`) is refused by the other on
/// the very next request, ten times over; the API says what it revoked, and refuses what it
/// cannot revoke.
fn a_key_revoked_through_one_server_is_refused_by_the_other_at_once(backend: Backend) {
    let a = TestApp::spawn_with(&backend, folder);
    let b = a.another_server(|_| {});
    let admin = a.key("ops", "admin");
    for round in 0..10 {
        let name = format!("host-{round}");
        let key = a.key(&name, "read");
        cached_on(&[&a, &b], &key, round);
        let (by, other) = if round % 2 == 0 { (&b, &a) } else { (&a, &b) };
        let r = by.delete_auth(&format!("/api/v1/keys/{name}"), &admin);
        assert_eq!(r.status, 200, "round {round}: {}", r.body);
        assert_eq!(r.json()["name"], name.as_str(), "{}", r.body);
        for (which, server) in [("the other", other), ("the revoking", by)] {
            let r = server.get_auth("/api/v1/subjects/s/status", &key);
            assert_eq!(r.status, 401, "round {round}, {which} server: the revoked key still worked: {}", r.body);
        }
    }
    let again = b.delete_auth("/api/v1/keys/host-0", &admin);
    assert_eq!(again.status, 404, "{}", again.body);
    assert!(again.body.contains("no live key"), "{}", again.body);
    let bad = b.delete_auth("/api/v1/keys/no%20such", &admin);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let reader = a.key("reader", "read");
    assert_eq!(b.delete_auth("/api/v1/keys/ops", &reader).status, 403);
    assert_eq!(a.get_auth("/api/v1/subjects/s/status", &admin).status, 200, "the admin key still works");
}

/// A version published by `assent sync` is in force on both servers on the very next request.
fn a_sync_is_in_force_on_every_server_at_once(backend: Backend) {
    let a = TestApp::spawn_with(&backend, folder);
    let b = a.another_server(|_| {});
    let key = a.key("host", "write");
    let r = a.post("/api/v1/subjects/fresh/acceptances", &key, &json!({"document": "terms", "version": 1}));
    assert_eq!(r.status, 201, "{}", r.body);
    for server in [&a, &b] {
        let status = server.get_auth("/api/v1/subjects/fresh/status", &key).json();
        assert_eq!(status["documents"][0]["state"], "accepted", "{status}");
    }
    write(a.policies.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\n---\nTerms two.\n");
    let out = assent(&["sync"], &a.db.url, a.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (which, server) in [("a", &a), ("b", &b)] {
        let status = server.get_auth("/api/v1/subjects/fresh/status", &key).json();
        assert_eq!(status["documents"][0]["state"], "pending", "server {which}: {status}");
        assert_eq!(status["documents"][0]["current_version"], 2, "server {which}: {status}");
        let page = server.get("/policies/terms");
        assert!(page.body.contains("Terms two."), "server {which}");
    }
}

/// On PostgreSQL, a change whose notification never arrives (here: made with the triggers off,
/// and only the generation row moved, as a pooler that drops `LISTEN` would leave it) is still
/// seen by the watcher's once-a-second read of the generation, well before the 3 s after which
/// an unwatched cache would be distrusted anyway.
#[test]
fn postgres_a_lost_notification_is_made_up_for_by_the_heartbeat() {
    use diesel::{Connection, RunQueryDsl};
    let Some(backend) = Backend::postgres() else { return };
    let app = TestApp::spawn_with(&backend, folder);
    let key = app.key("quiet", "read");
    let started = std::time::Instant::now();
    while !app.get("/metrics").body.contains("assent_change_watcher_up 1") {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the watcher never started looking");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(app.get_auth("/api/v1/subjects/s/status", &key).status, 200);
    let mut c = diesel::PgConnection::establish(&app.db.url).unwrap();
    diesel::sql_query("SET session_replication_role = replica").execute(&mut c).unwrap();
    diesel::sql_query("UPDATE api_keys SET revoked_at = now() WHERE name = 'quiet'").execute(&mut c).unwrap();
    assert_eq!(app.get_auth("/api/v1/subjects/s/status", &key).status, 200, "nothing announced it yet");
    diesel::sql_query("UPDATE assent_changes SET generation = generation + 1").execute(&mut c).unwrap();
    let moved = std::time::Instant::now();
    while app.get_auth("/api/v1/subjects/s/status", &key).status != 401 {
        assert!(moved.elapsed() < std::time::Duration::from_millis(2_500), "the heartbeat did not see the change");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

on_both_databases!(
    a_revoked_key_is_refused_on_every_server_at_once,
    a_key_revoked_through_one_server_is_refused_by_the_other_at_once,
    a_sync_is_in_force_on_every_server_at_once,
);
