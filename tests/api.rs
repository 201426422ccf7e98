//! The public document endpoints of the JSON API.

mod common;

use common::{Backend, TestApp, write};

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\n# Terms\n\nOne.\n");
    write(
        dir,
        "terms/v2.md",
        "---\ntitle: Terms of Use\neffective: 2021-06-01T12:00:00+02:00\nmaterial: false\nsummary: Typos.\n---\n# Terms\n\nOne, fixed.\n",
    );
    write(dir, "terms/v2.zh.md", "---\ntitle: 使用条款\n---\n# 条款\n\n一。\n");
    write(dir, "terms/v3.md", "---\ntitle: Terms of Use\neffective: 2999-01-01\n---\n# Terms\n\nThree.\n");
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nPrivate.\n");
    write(
        dir,
        "cookies/v1.md",
        "---\ntitle: Cookies\neffective: 2020-01-01\nacceptance: informational\n---\nCrumbs.\n",
    );
    write(dir, "later/v1.md", "---\ntitle: Later\neffective: 2999-01-01\n---\nNot yet.\n");
}

fn documents_lists_current_and_upcoming_versions(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let resp = app.get("/api/v1/documents");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.starts_with("application/json"));
    let docs = resp.json();
    let by_slug = |slug: &str| {
        docs.as_array().unwrap().iter().find(|d| d["slug"] == slug).cloned().unwrap_or_else(|| panic!("{slug} missing"))
    };
    let terms = by_slug("terms");
    assert_eq!(terms["title"], "Terms of Use");
    assert_eq!(terms["current_version"], 2);
    assert_eq!(terms["upcoming_version"], 3);
    assert_eq!(terms["acceptance"], "required");
    assert!(terms["part_of"].is_null());
    assert_eq!(by_slug("privacy")["part_of"], "terms");
    assert_eq!(by_slug("cookies")["acceptance"], "informational");
    let later = by_slug("later");
    assert!(later["current_version"].is_null());
    assert_eq!(later["upcoming_version"], 1);
}

fn versions_lists_metadata_with_hashes(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let versions = app.get("/api/v1/documents/terms/versions").json();
    let list = versions.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["version"], 1);
    assert_eq!(list[1]["effective"], "2021-06-01T10:00:00Z");
    assert_eq!(list[1]["material"], false);
    assert_eq!(list[1]["summary"], "Typos.");
    assert_eq!(list[1]["locales"], serde_json::json!(["zh"]));
    let file = std::fs::read(app.policies.path().join("terms/v2.md")).unwrap();
    assert_eq!(list[1]["sha256"], assent::domain::sha256_hex(&file), "the hash is of the file's exact bytes");
}

fn a_version_carries_markdown_and_sanitised_html(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let v = app.get("/api/v1/documents/terms/versions/2").json();
    assert_eq!(v["version"], 2);
    assert_eq!(v["title"], "Terms of Use");
    assert_eq!(v["markdown"], "# Terms\n\nOne, fixed.\n");
    assert_eq!(v["html"], "<h1 id=\"terms\">Terms</h1>\n<p>One, fixed.</p>\n");
    assert!(v["locale"].is_null());
    let zh = app.get("/api/v1/documents/terms/versions/2?locale=zh").json();
    assert_eq!(zh["title"], "使用条款");
    assert_eq!(zh["locale"], "zh");
    assert_eq!(zh["markdown"], "# 条款\n\n一。\n");
    let file = std::fs::read(app.policies.path().join("terms/v2.zh.md")).unwrap();
    assert_eq!(zh["source_sha256"], assent::domain::sha256_hex(&file));
}

fn api_errors_are_json_with_the_right_status(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let cases = [
        ("/api/v1/documents/nope/versions", 404, "not_found"),
        ("/api/v1/documents/nope/versions/1", 404, "not_found"),
        ("/api/v1/documents/terms/versions/7", 404, "not_found"),
        ("/api/v1/documents/terms/versions/x", 400, "bad_request"),
        ("/api/v1/documents/terms/versions/1?locale=fr", 404, "not_found"),
        ("/api/v1/documents/terms/versions/1?locale=not_a_tag", 400, "bad_request"),
        ("/api/v1/nothing-here", 404, "not_found"),
        ("/api/v1/documents/terms/versions/1?locale=%ZZ", 400, "bad_request"),
    ];
    for (path, status, code) in cases {
        let resp = app.get(path);
        assert_eq!(resp.status, status, "{path}: {}", resp.body);
        assert!(resp.content_type.starts_with("application/json"), "{path}");
        let body = resp.json();
        assert_eq!(body["error"]["code"], code, "{path}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}");
    }
}

fn hostile_markdown_never_reaches_a_page(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |dir| {
        write(
            dir,
            "evil/v1.md",
            "---\ntitle: Evil <script>alert('t')</script>\neffective: 2020-01-01\nsummary: <img src=x onerror=alert(1)>\n---\n<script>alert(1)</script>\n\n[x](javascript:alert(2))\n\n<a href=\"jAvAsCrIpT:alert(3)\" onmouseover=\"alert(4)\">y</a>\n\n<img src=\"x\" onerror=\"alert(5)\">\n",
        );
    });
    for path in ["/policies/evil", "/policies/evil/versions", "/"] {
        let body = app.get(path).body;
        assert_no_active_content(path, &body);
    }
    // The API returns the Markdown verbatim (it is the published text); its `html` is sanitised.
    let version = app.get("/api/v1/documents/evil/versions/1").json();
    assert_no_active_content("api html", version["html"].as_str().unwrap());
}

/// No tag may carry script, an event handler or a `javascript:` URL. Escaped text (`&#60;img
/// onerror=…&#62;`) is harmless and allowed.
fn assert_no_active_content(what: &str, html: &str) {
    for tag in html.split('<').skip(1).map(|rest| rest.split('>').next().unwrap_or("").to_lowercase()) {
        assert!(!tag.starts_with("script"), "{what}: <{tag}>");
        assert!(!tag.contains("javascript:"), "{what}: <{tag}>");
        for handler in ["onerror", "onmouseover", "onclick", "onload"] {
            assert!(!tag.contains(handler), "{what}: <{tag}>");
        }
    }
}

on_both_databases!(
    documents_lists_current_and_upcoming_versions,
    versions_lists_metadata_with_hashes,
    a_version_carries_markdown_and_sanitised_html,
    api_errors_are_json_with_the_right_status,
    hostile_markdown_never_reaches_a_page,
);
