//! The consent flow without a browser: links, refusals, CSRF, security headers, `/me`.

mod common;

use serde_json::json;

use common::{Backend, Response, TestApp, assent, write};

const HOST: &str = "http://host.example.test";

fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nWe keep your data for ten years.\n");
    write(
        dir,
        "terms/v2.md",
        "---\ntitle: Terms\neffective: 2021-01-01\nsummary: Shorter retention.\n---\nWe keep your data for two years.\n",
    );
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nWe are careful.\n");
}

fn app(backend: &Backend) -> (TestApp, String) {
    let app = TestApp::spawn_configured(backend, folder, |s| {
        s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap();
    });
    let key = app.key("host", "write");
    (app, key)
}

fn link(app: &TestApp, key: &str, subject: &str) -> String {
    let r =
        app.post("/api/v1/consent-links", key, &json!({"subject": subject, "return_to": format!("{HOST}/back?x=1")}));
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.address), "{url}");
    url[app.address.len()..].to_owned()
}

fn token_of(path: &str) -> String {
    path.split("token=").nth(1).unwrap().to_owned()
}

/// The value of a hidden form field.
fn hidden(page: &Response, name: &str) -> String {
    page.body.split(&format!("name=\"{name}\" value=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned()
}

/// The CSRF cookie a page set and the hidden field it carries.
fn csrf(page: &Response) -> (String, String) {
    let cookie = page.header("set-cookie").expect("a CSRF cookie").split(';').next().unwrap().to_owned();
    let field = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, field)
}

/// The usual folder plus terms v3 taking effect three seconds from now, and whatever `more` adds.
fn app_with_v3_soon(backend: &Backend, more: impl FnOnce(&std::path::Path)) -> TestApp {
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    TestApp::spawn_configured(
        backend,
        |dir| {
            folder(dir);
            write(
                dir,
                "terms/v3.md",
                &format!(
                    "---\ntitle: Terms\neffective: {soon}\nsummary: Even shorter.\n---\nWe keep your data for one year.\n"
                ),
            );
            more(dir);
        },
        |s| s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap(),
    )
}

fn a_link_opens_a_page_that_shows_what_changed(backend: Backend) {
    // terms v3 takes effect three seconds from now: accept v2 before, and v3 is owed after.
    let app = app_with_v3_soon(&backend, |_| {});
    let key = app.key("host", "write");
    assert_eq!(
        app.post("/api/v1/subjects/u1/acceptances", &key, &json!({"document": "terms", "version": 2})).status,
        201
    );
    let up_to_date = app.get(&link(&app, &key, "u1"));
    assert!(up_to_date.body.contains("You are up to date"), "{}", up_to_date.body);
    assert!(up_to_date.body.contains("outcome=up_to_date"), "{}", up_to_date.body);

    let never = app.get(&link(&app, &key, "u2"));
    assert_eq!(never.status, 200, "{}", never.body);
    assert!(never.body.contains("We keep your data for two years."), "never accepted: the full text");
    assert!(never.body.contains("You have not accepted it yet."));
    assert!(never.body.contains("Version 3 of this agreement takes effect on"), "the upcoming version is announced");
    assert!(never.body.contains("value=\"accept_upcoming\""), "and can be accepted early");

    std::thread::sleep(std::time::Duration::from_millis(3500));
    let pending = app.get(&link(&app, &key, "u1"));
    assert_eq!(pending.status, 200);
    assert!(pending.body.contains("It has changed since you last accepted it."), "{}", pending.body);
    assert!(pending.body.contains("Terms: changes since version 2, which you accepted"), "{}", pending.body);
    assert!(
        pending.body.contains("We keep your data for <del>two years</del><ins>one year</ins>."),
        "{}",
        pending.body
    );
    assert!(pending.body.contains("Even shorter."));
}

fn accepting_records_with_evidence_and_redirects_back(backend: Backend) {
    let (app, key) = app(&backend);
    let path = link(&app, &key, "u3");
    let page = app.get_with(&path, &[("User-Agent", "Browser/1.0"), ("Accept-Language", "de-DE")]);
    let (cookie, field) = csrf(&page);
    assert!(
        page.header("set-cookie").unwrap().contains("HttpOnly")
            && page.header("set-cookie").unwrap().contains("SameSite=Strict")
    );
    let token = token_of(&path);
    let r = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").unwrap();
    assert!(location.starts_with("http://host.example.test/back?x=1&outcome=accepted&receipt="), "{location}");
    let read = app.key("audit", "read");
    let events = app.get_auth("/api/v1/subjects/u3/events", &read).json();
    assert_eq!(events[0]["method"], "consent_page");
    assert_eq!(events[0]["evidence"]["ip"], "127.0.0.0/24");
    assert_eq!(events[0]["covers"].as_array().unwrap().len(), 2, "terms and its part");
    assert_eq!(app.get_auth("/api/v1/subjects/u3/status", &read).json()["up_to_date"], true);

    let again = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", "decline")],
        Some(&cookie),
    );
    assert_eq!(again.status, 200);
    assert!(again.body.contains("already recorded"), "{}", again.body);
    assert_eq!(app.get_auth("/api/v1/subjects/u3/events", &read).json().as_array().unwrap().len(), 1, "nothing new");
    let reopened = app.get(&path);
    assert!(reopened.body.contains("Your answer is recorded"));
}

fn refusals_are_clear_pages_and_record_nothing(backend: Backend) {
    let (app, key) = app(&backend);
    let path = link(&app, &key, "u4");
    let token = token_of(&path);
    let page = app.get(&path);
    let (cookie, field) = csrf(&page);
    let no_cookie = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        None,
    );
    assert_eq!(no_cookie.status, 403);
    assert!(no_cookie.body.contains("Nothing was recorded"));
    let wrong = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &"0".repeat(64)), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(wrong.status, 403);
    // No csrf field at all: the same refusal, not a 400 for a malformed form.
    let missing = app.post_form(
        "/consent",
        &[("token", &token), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(missing.body.contains("Nothing was recorded"), "{}", missing.body);
    for (form, fields) in [("/me/withdraw", &[("document", "service-agreement")][..]), ("/me/erasure", &[][..])] {
        let mut fields = fields.to_vec();
        fields.push(("token", &token));
        let r = app.post_form(form, &fields, Some(&cookie));
        assert_eq!(r.status, 403, "{form}: {}", r.body);
    }
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let bad = app.get(&format!("/consent?token={tampered}"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("This link does not work"), "{}", bad.body);
    assert_eq!(app.get("/consent").status, 400);
    assert_eq!(app.get("/me?token=v1.junk.junk").status, 400);
    let posted = app.post_form(
        "/consent",
        &[("token", &tampered), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(posted.status, 400);
    let read = app.key("audit", "read");
    assert_eq!(app.get_auth("/api/v1/subjects/u4/events", &read).json(), json!([]));

    let foreign =
        app.post("/api/v1/consent-links", &key, &json!({"subject": "u4", "return_to": "https://evil.example/steal"}));
    assert_eq!(foreign.status, 400);
    assert!(foreign.json()["error"]["message"].as_str().unwrap().contains("return_to must be on one of"));
    let lookalike = app.post(
        "/api/v1/consent-links",
        &key,
        &json!({"subject": "u4", "return_to": "http://host.example.test.evil.example/"}),
    );
    assert_eq!(lookalike.status, 400);
    let too_long = app.post(
        "/api/v1/consent-links",
        &key,
        &json!({"subject": "u4", "return_to": format!("{HOST}/"), "ttl_seconds": 99_999_999}),
    );
    assert_eq!(too_long.status, 400);
    let read_only =
        app.post("/api/v1/consent-links", &read, &json!({"subject": "u4", "return_to": format!("{HOST}/")}));
    assert_eq!(read_only.status, 403);
}

fn every_page_carries_security_headers(backend: Backend) {
    let (app, key) = app(&backend);
    for path in ["/".to_owned(), "/policies/terms".to_owned(), link(&app, &key, "u5")] {
        let r = app.get(&path);
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "no script is allowed at all: {csp}");
        assert!(csp.contains("form-action 'self' http://host.example.test"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "tokens in URLs must not leak to other sites");
        assert!(!r.body.contains("<script"), "{path} has script");
    }
}

fn me_shows_the_record_withdraws_and_downloads(backend: Backend) {
    let (app, key) = app(&backend);
    app.post("/api/v1/subjects/u6/acceptances", &key, &json!({"document": "terms", "version": 2}));
    let path = link(&app, &key, "u6");
    let token = token_of(&path);
    let me = app.get(&format!("/me?token={token}"));
    assert_eq!(me.status, 200);
    assert!(me.body.contains("href=\"/policies/terms/versions/2\""), "{}", me.body);
    assert!(me.body.contains("Privacy, version 1"));
    let (cookie, field) = csrf(&me);
    let r = app.post_form("/me/withdraw", &[("token", &token), ("csrf", &field), ("document", "terms")], Some(&cookie));
    assert_eq!(r.status, 303, "{}", r.body);
    let after = app.get_with(r.header("location").unwrap(), &[("Cookie", &cookie)]);
    assert!(after.body.contains("Your withdrawal is recorded."), "{}", after.body);
    assert!(after.body.contains("Nothing is accepted at the moment."));
    let download = app.get(&format!("/me/record.json?token={token}"));
    assert!(download.header("content-disposition").unwrap().contains("attachment"));
    let record = download.json();
    assert_eq!(record["subject"], "u6");
    let kinds: Vec<&str> = record["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["accepted", "withdrawn"]);
    let none =
        app.post_form("/me/withdraw", &[("token", &token), ("csrf", &field), ("document", "terms")], Some(&cookie));
    assert_eq!(none.status, 409);
}

fn the_cli_prints_a_signed_link(backend: Backend) {
    let (app, _) = app(&backend);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(["link", "cli-user", "--return-to", "http://host.example.test/done", "--ttl", "10m"])
        .env("ASSENT_DATABASE_URL", &app.db.url)
        .env("ASSENT_POLICIES", app.policies.path())
        .env("ASSENT_ALLOWED_RETURN_ORIGINS", HOST)
        .env("ASSENT_PUBLIC_URL", &app.address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let page = app.get(&url[app.address.len()..]);
    assert_eq!(page.status, 200, "a link signed by the CLI opens on the server (one shared secret)");
    assert!(page.body.contains("Please review"));
    let refused = assent(&["link", "x", "--return-to", "https://evil.example/"], &app.db.url, app.policies.path());
    assert!(!refused.status.success());
}

fn an_answer_to_a_page_that_changed_is_not_recorded(backend: Backend) {
    let app = app_with_v3_soon(&backend, |dir| {
        write(dir, "sdk/v1.md", "---\ntitle: SDK\neffective: 2020-01-01\n---\nSDK terms.\n")
    });
    let key = app.key("host", "write");
    let read = app.key("audit", "read");
    let path = link(&app, &key, "u7");
    let token = token_of(&path);
    let page = app.get(&path);
    assert!(page.body.contains("Please review these agreements"), "two agreements pending: {}", page.body);
    let (cookie, field) = csrf(&page);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    // Version 3 took effect while the page was open: nothing is recorded, the page comes back.
    let stale = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert!(stale.body.contains("Something changed while this page was open"), "{}", stale.body);
    assert!(stale.body.contains("one year"));
    assert_eq!(app.get_auth("/api/v1/subjects/u7/events", &read).json(), json!([]));
    let forged = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", "made-up"), ("choice", "accept")],
        Some(&cookie),
    );
    assert!(forged.body.contains("Something changed"), "an unsealed `shown` records nothing");
    // Answering the page as it is now records both agreements, in one go.
    let fresh = app.post_form(
        "/consent",
        &[("token", &token), ("csrf", &field), ("shown", &hidden(&stale, "shown")), ("choice", "accept")],
        Some(&cookie),
    );
    assert_eq!(fresh.status, 303, "{}", fresh.body);
    let receipts = fresh.header("location").unwrap().split("receipt=").nth(1).unwrap().to_owned();
    assert_eq!(receipts.split("%2C").count(), 2, "{receipts}");
    let events = app.get_auth("/api/v1/subjects/u7/events", &read).json();
    let mut decided: Vec<(String, i64)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["document"].as_str().unwrap().to_owned(), e["version"].as_i64().unwrap()))
        .collect();
    decided.sort();
    assert_eq!(decided, vec![("sdk".to_owned(), 1), ("terms".to_owned(), 3)], "the versions on the page as it is now");
}

/// A subject who accepted the upcoming version and withdrew is offered the current one, which it
/// may no longer accept (acceptance never moves backwards): the page says so, records nothing,
/// and leads back to the form, where accepting the upcoming version works.
fn a_refused_step_backwards_leads_back_to_the_upcoming_version(backend: Backend) {
    let app = TestApp::spawn_configured(
        &backend,
        |dir| {
            folder(dir);
            write(dir, "terms/v3.md", "---\ntitle: Terms\neffective: 2999-01-01\n---\nWe keep nothing.\n");
        },
        |s| s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap(),
    );
    let key = app.key("host", "write");
    let accept = json!({"document": "terms", "version": 3});
    assert_eq!(app.post("/api/v1/subjects/u9/acceptances", &key, &accept).status, 201);
    assert_eq!(app.post("/api/v1/subjects/u9/withdrawals", &key, &json!({"document": "terms"})).status, 201);

    let path = link(&app, &key, "u9");
    let token = token_of(&path);
    let page = app.get(&path);
    let (cookie, field) = csrf(&page);
    let answer = |choice: &str| {
        app.post_form(
            "/consent",
            &[("token", &token), ("csrf", &field), ("shown", &hidden(&page, "shown")), ("choice", choice)],
            Some(&cookie),
        )
    };
    let refused = answer("accept");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("Please accept the newer version"), "{}", refused.body);
    assert!(refused.body.contains("You accepted version 3 of Terms before"), "{}", refused.body);
    assert!(refused.body.contains(&format!("href=\"/consent?token={token}\"")), "{}", refused.body);
    let read = app.key("audit", "read");
    let events = || app.get_auth("/api/v1/subjects/u9/events", &read).json().as_array().unwrap().len();
    assert_eq!(events(), 2, "nothing recorded");

    let accepted = answer("accept_upcoming");
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(events(), 3);
    let status = app.get_auth("/api/v1/subjects/u9/status", &read).json();
    assert_eq!(status["up_to_date"], true, "{status}");
}

/// The page shows what each version since the subject's acceptance says changed, in order, for
/// the agreement and for each part; a re-prompt that comes from a part shows the part's summary,
/// not the agreement's old one.
fn the_page_shows_every_summary_since_the_accepted_version(backend: Backend) {
    let app = TestApp::spawn_configured(
        &backend,
        |dir| {
            write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTen years.\n");
            write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nCareful.\n");
        },
        |s| s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap(),
    );
    let key = app.key("host", "write");
    let accept = |subject: &str, version: u32| {
        let r = app.post(
            &format!("/api/v1/subjects/{subject}/acceptances"),
            &key,
            &json!({"document": "terms", "version": version}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    };
    let publish = |files: &[(&str, &str)]| {
        for (rel, text) in files {
            write(app.policies.path(), rel, text);
        }
        let out = assent(&["sync"], &app.db.url, app.policies.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The server takes in a publication within its catalog's refresh time.
        std::thread::sleep(std::time::Duration::from_millis(2500));
    };
    accept("early", 1);
    publish(&[
        ("terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\nsummary: Shorter retention.\n---\nTwo years.\n"),
        ("terms/v3.md", "---\ntitle: Terms\neffective: 2022-01-01\nsummary: Even shorter.\n---\nOne year.\n"),
        (
            "privacy/v2.md",
            "---\ntitle: Privacy\neffective: 2021-01-01\npart_of: terms\nsummary: A new processor.\n---\nCareful, with help.\n",
        ),
    ]);
    let page = app.get(&link(&app, &key, "early"));
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    let at = |text: &str| body.find(text).unwrap_or_else(|| panic!("no `{text}` in {body}"));
    assert!(at("What changed, version by version") < at("Version 2: Shorter retention."));
    assert!(at("Version 2: Shorter retention.") < at("Version 3: Even shorter."), "in order");
    assert!(at("What changed in version 2:</strong> A new processor.") > at("Version 3: Even shorter."));
    // Someone who never accepted reads the whole text; nothing is presented as a change.
    let first = app.get(&link(&app, &key, "newcomer"));
    assert!(first.body.contains("One year."), "{}", first.body);
    assert!(!first.body.contains("What changed"), "{}", first.body);

    accept("late", 3);
    publish(&[(
        "privacy/v3.md",
        "---\ntitle: Privacy\neffective: 2023-01-01\npart_of: terms\nsummary: Shared with partners.\n---\nShared.\n",
    )]);
    let page = app.get(&link(&app, &key, "late"));
    assert!(page.body.contains("What changed in version 3:</strong> Shared with partners."), "{}", page.body);
    assert!(!page.body.contains("Even shorter."), "the agreement did not change for this subject: {}", page.body);
}

on_both_databases!(
    the_page_shows_every_summary_since_the_accepted_version,
    a_refused_step_backwards_leads_back_to_the_upcoming_version,
    an_answer_to_a_page_that_changed_is_not_recorded,
    a_link_opens_a_page_that_shows_what_changed,
    accepting_records_with_evidence_and_redirects_back,
    refusals_are_clear_pages_and_record_nothing,
    every_page_carries_security_headers,
    me_shows_the_record_withdraws_and_downloads,
    the_cli_prints_a_signed_link,
);
