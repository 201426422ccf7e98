//! Read-your-writes on every server (contract §11): two servers on one database, changes made
//! by the command line, and the very next request on each server sees them.

mod common;

use serde_json::json;

use common::{Backend, TestApp, assent, write};

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms one.\n");
}

/// A key revoked by `assent keys revoke` is refused by both servers on the very next request,
/// though both had it cached; ten times over, so that no lucky timing passes it.
fn a_revoked_key_is_refused_on_every_server_at_once(backend: Backend) {
    let a = TestApp::spawn_with(&backend, folder);
    let b = a.another_server(|_| {});
    for round in 0..10 {
        let name = format!("host-{round}");
        let key = a.key(&name, "read");
        for server in [&a, &b] {
            for _ in 0..3 {
                assert_eq!(server.get_auth("/api/v1/subjects/s/status", &key).status, 200, "round {round}");
            }
        }
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
        for server in [&a, &b] {
            for _ in 0..3 {
                assert_eq!(server.get_auth("/api/v1/subjects/s/status", &key).status, 200, "round {round}");
            }
        }
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

on_both_databases!(
    a_revoked_key_is_refused_on_every_server_at_once,
    a_key_revoked_through_one_server_is_refused_by_the_other_at_once,
    a_sync_is_in_force_on_every_server_at_once,
);
