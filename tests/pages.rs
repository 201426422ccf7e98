//! The public HTML pages, as a reader's browser gets them.

mod common;

use common::{Backend, TestApp, write};

const FAR_FUTURE: &str = "2999-01-01";

/// A folder with a current, a superseded and an upcoming version, and a translation.
fn timeline(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\n## Scope\n\nThe first terms.\n");
    write(
        dir,
        "terms/v2.md",
        "---\ntitle: Terms\neffective: 2021-01-01\nsummary: Clearer scope.\n---\n## Scope\n\nThe second terms.\n\n## Contact\n\nWrite to us.\n",
    );
    write(dir, "terms/v2.de.md", "---\ntitle: Bedingungen\n---\n## Geltungsbereich\n\nDie zweiten Bedingungen.\n");
    write(
        dir,
        "terms/v3.md",
        &format!(
            "---\ntitle: Terms\neffective: {FAR_FUTURE}\nsummary: Future terms.\n---\n## Scope\n\nThe third terms.\n"
        ),
    );
    write(
        dir,
        "privacy/v1.md",
        "---\ntitle: Privacy Notice\neffective: 2020-01-01\npart_of: terms\n---\nWe keep little.\n",
    );
}

fn index_lists_every_document_with_current_and_upcoming(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let page = app.get("/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert!(page.body.contains(r#"<a href="/policies/terms">Terms</a>"#), "{}", page.body);
    assert!(page.body.contains("Version 2, in effect since 1 January 2021"), "{}", page.body);
    assert!(page.body.contains("takes effect on 1 January 2999"), "{}", page.body);
    assert!(page.body.contains("Part of the <a href=\"/policies/terms\">Terms</a>"), "{}", page.body);
}

fn the_shipped_policies_are_served(backend: Backend) {
    let app = TestApp::spawn(&backend);
    let index = app.get("/");
    for title in ["Privacy Policy", "Developer Service Usage Agreement", "SDK Privacy Policy", "Cookie Statement"] {
        assert!(index.body.contains(title), "index lacks {title}");
    }
    let policy = app.get("/policies/privacy-policy");
    assert_eq!(policy.status, 200);
    assert!(policy.body.contains("<h2 id=\"1-scope-of-application\">1. Scope of Application</h2>"), "{}", policy.body);
    assert!(policy.body.contains("href=\"#1-scope-of-application\""), "table of contents missing");
    assert!(policy.body.contains("Developer Service Usage Agreement"), "part_of link missing");
    let sdk = app.get("/policies/sdk-privacy-policy");
    assert!(sdk.body.contains("Perfect Corp."));
    assert!(
        !sdk.body.contains("By using the website, you agree to our use of cookies"),
        "the website's cookie notice is not policy text"
    );
}

fn a_policy_page_shows_the_current_version_with_contents(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let page = app.get("/policies/terms");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The second terms."), "{}", page.body);
    assert!(page.body.contains("Version 2 of 3"));
    assert!(page.body.contains("<a href=\"#contact\">Contact</a>"), "toc: {}", page.body);
    assert!(page.body.contains("What changed:</strong> Clearer scope."));
    assert!(page.body.contains("Version 3 takes effect on 1 January 2999."), "upcoming notice missing");
    assert!(page.body.contains("/policies/terms/versions"), "history link missing");
    assert!(page.body.contains("Integral parts of this agreement: <a href=\"/policies/privacy\">Privacy Notice</a>"));
}

fn an_old_version_says_a_newer_one_exists(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let page = app.get("/policies/terms/versions/1");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The first terms."));
    assert!(
        page.body.contains(
            "This is an earlier version, in effect from 1 January 2020 until 1 January 2021. A newer version is in effect."
        ),
        "{}",
        page.body
    );
    assert!(page.body.contains("Version 1 ·"), "a superseded page counts no versions (it never changes)");
    assert!(page.body.contains(r#"<a href="/policies/terms">Read the current version</a>"#));
    let current = app.get("/policies/terms/versions/2");
    assert!(!current.body.contains("earlier version"), "the current version has no superseded banner");
    let upcoming = app.get("/policies/terms/versions/3");
    assert!(
        upcoming.body.contains("This version takes effect on 1 January 2999. Until then, version 2"),
        "{}",
        upcoming.body
    );
}

fn the_versions_page_lists_every_version(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let page = app.get("/policies/terms/versions");
    assert_eq!(page.status, 200);
    let v3 = page.body.find("Version 3</a>").expect("v3 listed");
    let v2 = page.body.find("Version 2</a>").expect("v2 listed");
    let v1 = page.body.find("Version 1</a>").expect("v1 listed");
    assert!(v3 < v2 && v2 < v1, "newest first");
    assert!(page.body.contains("Upcoming"));
    assert!(page.body.contains("Current"));
    assert!(page.body.contains("Future terms."));
    assert!(page.body.contains("also in Deutsch"));
}

fn accept_language_picks_a_translation(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let german = app.get_with("/policies/terms", &[("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")]);
    assert!(german.body.contains("Die zweiten Bedingungen."), "{}", german.body);
    assert!(german.body.contains("<html lang=\"de\">"));
    let english = app.get_with("/policies/terms", &[("Accept-Language", "en-US,de;q=0.5")]);
    assert!(english.body.contains("The second terms."));
    let explicit = app.get_with("/policies/terms?lang=en", &[("Accept-Language", "de")]);
    assert!(explicit.body.contains("The second terms."), "?lang= overrides the header");
    let unknown = app.get_with("/policies/terms", &[("Accept-Language", "fr")]);
    assert!(unknown.body.contains("The second terms."));
    assert!(german.body.contains("hreflang=\"en\""), "a language switcher links the original");
}

fn unknown_documents_and_versions_are_404_and_bad_versions_400(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    for path in [
        "/policies/nope",
        "/policies/terms/versions/9",
        "/policies/terms/versions/0",
        "/policies/NOT_A_SLUG",
        "/policies/nope/versions",
        "/no/such/page",
        "/policies/terms/versions/99999999999999999999",
    ] {
        let page = app.get(path);
        assert_eq!(page.status, 404, "{path}");
        assert!(page.content_type.starts_with("text/html"), "{path}: {}", page.content_type);
        assert!(page.body.contains("Not found"), "{path}");
    }
    let bad_query = app.get("/policies/terms?lang=de&lang=en");
    assert_eq!(bad_query.status, 400);
    assert!(bad_query.content_type.starts_with("text/html"), "a page answers with a page");
    for path in ["/policies/terms/versions/two", "/policies/terms/versions/-1", "/policies/terms/versions/1.5"] {
        let page = app.get(path);
        assert_eq!(page.status, 400, "{path}");
        assert!(page.body.contains("is not a version number"), "{path}: {}", page.body);
    }
}

fn the_atom_feed_lists_versions_newest_first(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let feed = app.get("/feed.atom");
    assert_eq!(feed.status, 200);
    assert!(feed.content_type.starts_with("application/atom+xml"));
    assert!(feed.body.starts_with("<?xml"), "{}", feed.body);
    let v3 = feed.body.find("Terms — version 3").expect("v3 in feed");
    let v1 = feed.body.find("Terms — version 1").expect("v1 in feed");
    assert!(v3 < v1, "newest first");
    assert!(feed.body.contains(&format!("{}/policies/terms/versions/2", app.address)));
    assert_eq!(feed.body.matches("<entry>").count(), 4, "translations are not separate entries");
}

/// A client's own forwarded headers count for nothing: the feed's links, consent links and the
/// `Secure` flag come from the Host header; a trusted proxy's do count (contract §11).
fn forwarded_headers_are_believed_only_from_trusted_proxies(backend: Backend) {
    let app = TestApp::spawn_configured(&backend, timeline, |s| {
        s.return_origins = assent::consent::ReturnOrigins::parse("https://app.example").unwrap();
    });
    let host = app.address.trim_start_matches("http://").to_owned();
    let forged =
        [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"), ("Forwarded", "host=evil.example")];
    let feed = app.get_with("/feed.atom", &forged);
    assert!(!feed.body.contains("evil.example"), "{}", feed.body);
    assert!(feed.body.contains(&format!("http://{host}/policies/terms/versions/2")), "{}", feed.body);
    assert_eq!(feed.header("cache-control"), Some("public, max-age=300"));
    assert!(feed.header("vary").is_some_and(|v| v.contains("X-Forwarded-Host") && v.contains("Host")));
    let key = app.key("host", "write");
    let link = app.post_with(
        "/api/v1/consent-links",
        &key,
        &serde_json::json!({"subject": "fwd", "return_to": "https://app.example/back"}),
        &forged,
    );
    assert_eq!(link.status, 201, "{}", link.body);
    assert!(link.json()["url"].as_str().unwrap().starts_with(&format!("http://{host}/consent?")), "{}", link.body);
    assert_eq!(link.header("cache-control"), Some("no-store"), "the JSON API is not cached");
    let page = app.get("/policies/terms");
    assert_eq!(page.header("cache-control"), Some("public, max-age=60"));
    assert!(page.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-language")));
    assert_eq!(app.get("/policies/nope").header("cache-control"), Some("no-store"), "errors are not kept");
    assert_eq!(app.get("/admin/signin").header("cache-control"), Some("no-store"));
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let consent = app.get_with(url.trim_start_matches(&app.address), &forged);
    assert!(
        consent.header("set-cookie").is_some_and(|c| !c.contains("Secure")),
        "a client's own X-Forwarded-Proto does not make cookies Secure"
    );
    let cross = app.post_form_with("/admin/signin", &[("key", "x")], &[("Origin", "https://evil.example")]);
    assert_eq!(cross.status, 403, "a forged X-Forwarded-Host cannot pass the Origin check either");

    // ASSENT_PUBLIC_URL, path and all, builds the links.
    let public = TestApp::spawn_configured(&backend, timeline, |s| {
        s.public_url = Some("https://example.org/assent/".into());
        s.return_origins = assent::consent::ReturnOrigins::parse("https://app.example").unwrap();
    });
    let feed = public.get_with("/feed.atom", &forged);
    assert!(feed.body.contains("https://example.org/assent/policies/terms/versions/2"), "{}", feed.body);
    assert!(!feed.header("vary").unwrap_or("").contains("X-Forwarded-Host"), "links no longer vary with the request");
    let key = public.key("host", "write");
    let link = public.post(
        "/api/v1/consent-links",
        &key,
        &serde_json::json!({"subject": "p", "return_to": "https://app.example/back"}),
    );
    assert!(link.json()["url"].as_str().unwrap().starts_with("https://example.org/assent/consent?"), "{}", link.body);

    // Behind a proxy this server trusts (the tests' client is 127.0.0.1), its headers count.
    let behind = TestApp::spawn_configured(&backend, timeline, |s| {
        s.trusted_proxies = assent::consent::TrustedProxies::parse("127.0.0.1", Default::default()).unwrap();
        s.return_origins = assent::consent::ReturnOrigins::parse("https://app.example").unwrap();
    });
    let feed =
        behind.get_with("/feed.atom", &[("X-Forwarded-Host", "policies.example"), ("X-Forwarded-Proto", "https")]);
    assert!(feed.body.contains("https://policies.example/policies/terms/versions/2"), "{}", feed.body);
    // It sets X-Forwarded-*: a `Forwarded` it passes through is a client's, and counts for nothing.
    let passed = behind.get_with("/feed.atom", &[("Forwarded", "for=192.0.2.1;proto=https;host=\"rfc.example\"")]);
    assert!(!passed.body.contains("rfc.example"), "{}", passed.body);
    // A proxy that sets RFC 7239 `Forwarded` (ASSENT_FORWARDED_HEADERS=forwarded) is believed
    // for it, and for it alone.
    let rfc_behind = TestApp::spawn_configured(&backend, timeline, |s| {
        s.trusted_proxies =
            assent::consent::TrustedProxies::parse("127.0.0.1", assent::consent::ProxyHeaders::Forwarded).unwrap();
    });
    let rfc = rfc_behind.get_with("/feed.atom", &[("Forwarded", "for=192.0.2.1;proto=https;host=\"rfc.example\"")]);
    assert!(rfc.body.contains("https://rfc.example/policies/"), "{}", rfc.body);
    let x = rfc_behind.get_with("/feed.atom", &[("X-Forwarded-Host", "policies.example")]);
    assert!(!x.body.contains("policies.example"), "{}", x.body);
    let key = behind.key("host", "write");
    let link = behind.post(
        "/api/v1/consent-links",
        &key,
        &serde_json::json!({"subject": "fwd", "return_to": "https://app.example/back"}),
    );
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let path = url.trim_start_matches("http://").split_once('/').map(|(_, p)| format!("/{p}")).unwrap();
    let plain = behind.get(&path);
    assert!(plain.header("set-cookie").is_some_and(|c| !c.contains("Secure")), "plain HTTP: no Secure cookie");
    let tls = behind.get_with(&path, &[("X-Forwarded-Proto", "https")]);
    assert!(tls.header("set-cookie").is_some_and(|c| c.contains("Secure")), "behind TLS: Secure");
}

/// The raw bytes of a page, asked for with `headers`.
fn raw(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.get(format!("{}{path}", app.address));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let head =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    (resp.status().as_u16(), head, resp.body_mut().read_to_vec().unwrap())
}

fn header<'a>(head: &'a [(String, String)], name: &str) -> Option<&'a str> {
    head.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Version, current and diff pages are served as pre-built bytes: a strong ETag that a
/// revalidation meets with 304, gzip and Brotli forms of the very same page, `immutable` on a
/// superseded version; and a publication makes a changed page's ETag change.
fn pages_carry_validators_and_prebuilt_encodings(backend: Backend) {
    use std::io::Read;
    let app = TestApp::spawn_with(&backend, timeline);
    for path in ["/policies/terms/versions/1", "/policies/terms", "/policies/terms/diff?from=1&to=2"] {
        let (status, head, plain) = raw(&app, path, &[]);
        assert_eq!(status, 200, "{path}");
        let etag = header(&head, "etag").unwrap_or_else(|| panic!("{path}: no ETag")).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{path}: a strong ETag: {etag}");
        assert!(header(&head, "vary").is_some_and(|v| v.contains("Accept-Encoding")), "{path}");
        let (again, head304, body) = raw(&app, path, &[("If-None-Match", &etag)]);
        assert_eq!((again, body.len()), (304, 0), "{path}: a revalidation is answered 304, without a body");
        assert_eq!(header(&head304, "etag"), Some(etag.as_str()));

        let (_, head, gz) = raw(&app, path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{path}");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, plain, "{path}: the gzip form is the same page");
        assert_ne!(header(&head, "etag"), Some(etag.as_str()), "each encoding has its own strong ETag");

        let (_, head, br) = raw(&app, path, &[("Accept-Encoding", "gzip, deflate, br")]);
        assert_eq!(header(&head, "content-encoding"), Some("br"), "{path}");
        let mut unpacked = Vec::new();
        brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, plain, "{path}: the Brotli form is the same page");
        assert!(br.len() < gz.len() && gz.len() < plain.len(), "{path}");
        let (again, _, _) =
            raw(&app, path, &[("Accept-Encoding", "br"), ("If-None-Match", header(&head, "etag").unwrap())]);
        assert_eq!(again, 304, "{path}: the Brotli form's ETag revalidates too");
    }
    let cache = |path: &str| header(&raw(&app, path, &[]).1, "cache-control").map(str::to_owned);
    assert_eq!(cache("/policies/terms/versions/1").as_deref(), Some("public, max-age=31536000, immutable"));
    assert_eq!(cache("/policies/terms/versions/2").as_deref(), Some("public, max-age=60"), "current: may change");
    assert_eq!(cache("/policies/terms").as_deref(), Some("public, max-age=60"));
    // A translation is its own page.
    let de = app.get_with("/policies/terms", &[("Accept-Language", "de")]);
    assert!(de.body.contains("Die zweiten Bedingungen."), "{}", de.body);
    assert!(!app.get("/policies/terms").body.contains("Die zweiten"), "the original is not served the German page");

    // A publication redraws the pages it changes, and only those: the privacy notice's
    // current page (new text, new ETag: its old ETag no longer revalidates), the diff page's
    // version pickers; the terms page, whose bytes did not change, keeps its ETag.
    let etag_of = |path: &str| header(&raw(&app, path, &[]).1, "etag").unwrap().to_owned();
    let privacy = etag_of("/policies/privacy");
    assert!(app.get("/policies/privacy").body.contains("We keep little."));
    let terms = etag_of("/policies/terms");
    let diff = etag_of("/policies/privacy/diff?from=1&to=1");
    write(
        app.policies.path(),
        "privacy/v2.md",
        "---\ntitle: Privacy Notice\neffective: 2022-01-01\npart_of: terms\n---\nWe keep less.\n",
    );
    let out = common::assent(&["sync"], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, head, body) = raw(&app, "/policies/privacy", &[("If-None-Match", &privacy)]);
    assert_eq!(status, 200, "the old page's ETag no longer matches");
    assert_ne!(header(&head, "etag"), Some(privacy.as_str()));
    assert!(String::from_utf8_lossy(&body).contains("We keep less."));
    assert_ne!(etag_of("/policies/privacy/diff?from=1&to=1"), diff, "the diff page now offers version 2");
    assert_eq!(etag_of("/policies/terms"), terms, "a page whose bytes did not change keeps its ETag");
    // The superseded page is marked immutable, so it names nothing that may still change.
    let old = app.get("/policies/privacy/versions/1");
    assert!(old.body.contains("This is an earlier version") && !old.body.contains("integral part"), "{}", old.body);
}

fn every_get_route_answers_head(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    for path in ["/healthz", "/", "/policies/terms", "/policies/terms/versions/1", "/feed.atom", "/api/v1/documents"] {
        let get = app.get(path);
        let head = app.head(path);
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(head.content_type, get.content_type, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
    }
    assert_eq!(app.head("/policies/no-such-thing").status, 404);
}

fn health_metrics_and_the_stylesheet_are_served(backend: Backend) {
    let app = TestApp::spawn_with(&backend, timeline);
    let health = app.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    app.get("/policies/terms");
    let metrics = app.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains(r#"assent_http_requests_total{method="GET",route="/policies/{slug}",status="200"} 1"#),
        "{}",
        metrics.body
    );
    let css = app.get("/assets/assent.css");
    assert_eq!(css.status, 200);
    assert!(css.content_type.starts_with("text/css"));
    assert!(css.body.contains("@media print"));
    assert!(css.body.contains("prefers-color-scheme: dark"));
}

fn pages_load_nothing_from_other_hosts(backend: Backend) {
    let app = TestApp::spawn(&backend);
    for path in ["/", "/policies/privacy-policy", "/policies/privacy-policy/versions"] {
        let page = app.get(path);
        for needle in ["src=\"http", "src=\"//", "stylesheet\" href=\"http", "@import"] {
            assert!(!page.body.contains(needle), "{path} refers to another host: {needle}");
        }
    }
}

on_both_databases!(
    pages_carry_validators_and_prebuilt_encodings,
    index_lists_every_document_with_current_and_upcoming,
    the_shipped_policies_are_served,
    a_policy_page_shows_the_current_version_with_contents,
    an_old_version_says_a_newer_one_exists,
    the_versions_page_lists_every_version,
    accept_language_picks_a_translation,
    unknown_documents_and_versions_are_404_and_bad_versions_400,
    the_atom_feed_lists_versions_newest_first,
    forwarded_headers_are_believed_only_from_trusted_proxies,
    health_metrics_and_the_stylesheet_are_served,
    pages_load_nothing_from_other_hosts,
    every_get_route_answers_head,
);
