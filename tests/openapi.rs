//! The OpenAPI document (contract §10): served, 3.1, and covering every `/api/v1` route of the
//! one route table (`src/routes/mod.rs`), no more and no fewer.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

use common::{Backend, TestApp};

/// `(method, path)` of every route in the `/api/v1` scope of the route table.
fn api_routes() -> BTreeSet<(String, String)> {
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs")).unwrap();
    let scope = table.split("web::scope(\"/api/v1\")").nth(1).expect("the /api/v1 scope");
    let scope = scope.split(".default_service(").next().unwrap();
    let mut routes = BTreeSet::new();
    for part in scope.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        let method = rest.split("web::").nth(1).unwrap().split("()").next().unwrap();
        routes.insert((method.to_owned(), format!("/api/v1{path}")));
    }
    assert!(routes.len() >= 20, "read the route table: {routes:?}");
    routes
}

fn the_document_covers_every_api_route(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let r = app.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);
    let doc: Value = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    let routes = api_routes();
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(stale.is_empty(), "documented routes that the route table does not have: {stale:?}");

    // The Bearer scheme, and every keyed route says it needs it.
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let public = [
        "/api/v1/documents",
        "/api/v1/documents/{slug}/versions",
        "/api/v1/documents/{slug}/versions/{version}",
        "/api/v1/documents/{slug}/diff",
        "/api/v1/log/key",
        "/api/v1/openapi.json",
    ];
    for (method, path) in &routes {
        let op = &doc["paths"][path][method];
        let keyed = !public.contains(&path.as_str());
        assert_eq!(op["security"].is_array(), keyed, "{method} {path}: security {}", op["security"]);
        // Every operation documents its error shape.
        if path != "/api/v1/openapi.json" && path != "/api/v1/log/key" {
            let errors: Vec<&String> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|c| c.starts_with('4') || c.starts_with('5'))
                .collect();
            assert!(!errors.is_empty(), "{method} {path} documents no error");
        }
    }
    // The scope a keyed route names is the one it needs: a key of the scope below is refused.
    let below = [("write", app.key("reader", "read")), ("admin", app.key("writer", "write"))];
    for (method, path) in &routes {
        let Some(security) = doc["paths"][path][method]["security"].as_array() else { continue };
        let scopes: Vec<&str> =
            security.iter().flat_map(|s| s["bearer"].as_array().unwrap()).filter_map(Value::as_str).collect();
        assert!(matches!(scopes[..], ["read"] | ["write"] | ["admin"]), "{method} {path}: scopes {scopes:?}");
        let Some((_, key)) = below.iter().find(|(scope, _)| *scope == scopes[0]) else { continue };
        let url = path
            .replace("{slug}", "service-agreement")
            .replace("{version}", "1")
            .replace("{subject}", "someone")
            .replace("{id}", "1");
        let r = match method.as_str() {
            "get" => app.get_auth(&url, key),
            // A well-formed body: the scope is what refuses it.
            "post" => {
                let body = match path.rsplit('/').next().unwrap() {
                    "consent-links" => r#"{"subject": "someone", "return_to": "http://127.0.0.1:3000/"}"#,
                    "acceptances" | "declines" => r#"{"document": "service-agreement", "version": 1}"#,
                    "withdrawals" => r#"{"document": "service-agreement"}"#,
                    "webhooks" => r#"{"url": "https://example.com/hook", "events": ["accepted"]}"#,
                    _ => "{}",
                };
                app.post_raw(&url, Some(key), body)
            }
            "delete" => app.delete_auth(&url, key),
            other => panic!("{other} {path}: no request for this method"),
        };
        assert_eq!(r.status, 403, "{method} {path} with a key of the scope below {}: {}", scopes[0], r.body);
    }
    // Schemas come from the types the handlers serialise.
    let schemas = &doc["components"]["schemas"];
    for (name, field) in
        [("Coverage", "expired"), ("Receipt", "chain_hash"), ("EventView", "hashes"), ("StatusJson", "up_to_date")]
    {
        assert!(
            schemas[name]["properties"][field].is_object() || schemas[name]["allOf"].is_array(),
            "schema {name} lacks {field}: {}",
            schemas[name]
        );
    }
    assert!(schemas["ErrorBody"]["properties"]["error"].is_object(), "{}", schemas["ErrorBody"]);
}

/// A method no route declares, on a path that has routes: 405 with `Allow` (from the document).
fn other_methods_are_405_with_allow(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let key = app.key("admin", "admin");
    let r = app.post_raw("/api/v1/documents", Some(&key), "{}");
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    let r = app.delete_auth("/api/v1/subjects/someone/status", &key);
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = app.get_auth("/api/v1/subjects/someone/acceptances", &key);
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(app.get_auth("/api/v1/no/such/thing", &key).status, 404);
    assert_eq!(app.get_auth("/api/v1/documents/x/y/z/w", &key).status, 404);
}

/// `/api`: the reference a person reads, from the same document: every operation with the key it
/// needs, every schema it names, links that land, no script.
fn the_reference_page_shows_every_operation(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let doc: Value = app.get("/api/v1/openapi.json").json();
    let r = app.get("/api");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("text/html"), "{}", r.content_type);
    let page = &r.body;
    assert!(!page.contains("<script"), "the reference runs no script");
    assert!(page.contains("href=\"/assets/assent.css\""), "in the site's style");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let heading = format!(">{}</span> <code>{}</code></h3>", method.to_uppercase(), path.replace('&', "&amp;"));
            let at = page.find(&heading).unwrap_or_else(|| panic!("{method} {path} is not on /api"));
            // The access line right under the heading.
            let access = &page[at..at + 400];
            match op["security"][0]["bearer"][0].as_str() {
                Some(scope) => {
                    assert!(access.contains(&format!("A key of scope {scope}")), "{method} {path}: {access}")
                }
                None => assert!(access.contains("Public: no key"), "{method} {path}: {access}"),
            }
        }
    }
    // Every in-page link lands on an id of the page, and every schema has its section.
    for target in page.split("href=\"#").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        assert!(page.contains(&format!("id=\"{target}\"")), "a link to #{target}, which is not on the page");
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("<code>{name}</code></h3>")), "schema {name} is not on /api");
    }
    // What a reader needs to call a route: the parameter, its rule, the body's fields.
    assert!(page.contains("<code>idempotency_key</code>"), "DecisionBody's fields are listed");
    assert!(
        page.contains("one of accepted, declined, withdrawn, erased, erasure_requested, published"),
        "webhook events"
    );
    let head = app.head("/api");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

on_both_databases!(
    the_document_covers_every_api_route,
    other_methods_are_405_with_allow,
    the_reference_page_shows_every_operation
);
