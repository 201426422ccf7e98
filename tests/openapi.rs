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

on_both_databases!(the_document_covers_every_api_route, other_methods_are_405_with_allow);
