//! Audiences (contract §6), periodic re-acceptance (`reaccept_after`, state `expired`) and a
//! part's material change, seen the same way by status, coverage, stats and the consent page.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::{Backend, TestApp, write};

const HOST: &str = "http://host.example.test";

/// `terms` (developers) with its part `privacy`; `sdk` (sdk-users); `cookies` for everyone.
fn folder(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\naudiences: [developers]\n---\nTerms.\n");
    write(
        dir,
        "privacy/v1.md",
        "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\naudiences: [developers]\n---\nPrivate.\n",
    );
    write(dir, "sdk/v1.md", "---\ntitle: SDK Policy\neffective: 2020-01-01\naudiences: sdk-users\n---\nSDK.\n");
    write(dir, "cookies/v1.md", "---\ntitle: Cookies\neffective: 2020-01-01\n---\nCookies.\n");
}

fn app(backend: &Backend, fill: impl FnOnce(&std::path::Path)) -> TestApp {
    TestApp::spawn_configured(backend, fill, |s| {
        s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap();
    })
}

fn slugs(status: &Value) -> Vec<String> {
    status["documents"].as_array().unwrap().iter().map(|d| d["slug"].as_str().unwrap().to_owned()).collect()
}

fn status(app: &TestApp, key: &str, subject: &str, query: &str) -> (u16, Value) {
    let r = app.get_auth(&format!("/api/v1/subjects/{subject}/status{query}"), key);
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

fn audiences_restrict_status_keys_links_and_coverage(backend: Backend) {
    let app = app(&backend, folder);
    let open = app.key("platform", "write");
    let sdk_key = app.audience_key("sdk-app", "write", Some("sdk-users"));

    let (code, all) = status(&app, &open, "u1", "");
    assert_eq!(code, 200);
    assert_eq!(slugs(&all), ["cookies", "sdk", "terms"], "without an audience, every agreement");
    let (_, dev) = status(&app, &open, "u1", "?audience=developers");
    assert_eq!(slugs(&dev), ["cookies", "terms"], "developers owe terms (and what applies to everyone)");
    let (_, sdk) = status(&app, &open, "u1", "?audience=sdk-users");
    assert_eq!(slugs(&sdk), ["cookies", "sdk"]);
    for bad in ["?audience=nobody", "?audience=Not%20A%20Name", "?audience=%0C", "?audience=%20"] {
        let (code, body) = status(&app, &open, "u1", bad);
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "unknown_audience", "{body}");
    }

    // A key bound to an audience: restricted without asking, refused for another's documents.
    let (_, bound) = status(&app, &sdk_key, "u1", "");
    assert_eq!(slugs(&bound), ["cookies", "sdk"]);
    let (code, body) = status(&app, &sdk_key, "u1", "?audience=developers");
    assert_eq!(code, 403, "{body}");
    for (what, body) in [
        ("acceptances", json!({"document": "terms", "version": 1})),
        ("declines", json!({"document": "terms", "version": 1})),
        ("withdrawals", json!({"document": "terms"})),
    ] {
        let r = app.post(&format!("/api/v1/subjects/u1/{what}"), &sdk_key, &body);
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "other_audience");
    }
    assert_eq!(app.get_auth("/api/v1/documents/terms/coverage", &sdk_key).status, 403);
    assert_eq!(app.get_auth("/api/v1/documents/terms/versions/1/stats", &sdk_key).status, 403);
    assert_eq!(app.get_auth("/api/v1/events?document=terms", &sdk_key).status, 403);
    let r = app.post("/api/v1/subjects/u1/acceptances", &sdk_key, &json!({"document": "sdk", "version": 1}));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.post("/api/v1/subjects/u1/acceptances", &open, &json!({"document": "terms", "version": 1}));
    assert_eq!(r.status, 201, "{}", r.body);
    let seen: Vec<Value> = app.get_auth("/api/v1/events", &sdk_key).json()["events"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 1, "the bound key sees its audience's events only: {seen:?}");
    assert_eq!(seen[0]["document"], "sdk");
    assert_eq!(app.get_auth("/api/v1/subjects/u1/events", &sdk_key).json().as_array().unwrap().len(), 1);
    assert_eq!(app.get_auth("/api/v1/subjects/u1/events", &open).json().as_array().unwrap().len(), 2);

    // Coverage: an unknown audience is 400, another audience's document 403, its own 200.
    assert_eq!(app.get_auth("/api/v1/documents/sdk/coverage?audience=nobody", &open).status, 400);
    assert_eq!(app.get_auth("/api/v1/documents/sdk/coverage?audience=developers", &open).status, 403);
    let c = app.get_auth("/api/v1/documents/sdk/coverage?audience=sdk-users", &sdk_key).json();
    assert_eq!((c["total"].as_i64(), c["accepted"].as_i64()), (Some(1), Some(1)), "{c}");

    // A consent link for an audience asks only about its documents.
    let r = app.post(
        "/api/v1/consent-links",
        &open,
        &json!({"subject": "u2", "return_to": format!("{HOST}/back"), "audience": "sdk-users"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap()[app.address.len()..].to_owned();
    let page = app.get(&url);
    assert!(page.body.contains("SDK Policy") && !page.body.contains("Terms"), "{}", page.body);
    let r = app.post(
        "/api/v1/consent-links",
        &open,
        &json!({"subject": "u2", "return_to": format!("{HOST}/back"), "audience": "nobody"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = app.post(
        "/api/v1/consent-links",
        &sdk_key,
        &json!({"subject": "u2", "return_to": format!("{HOST}/back"), "audience": "developers"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // What spans every audience is not for a bound key: erasure, its requests, the admin view.
    let bound_admin = app.audience_key("sdk-admin", "admin", Some("sdk-users"));
    assert_eq!(app.delete_auth("/api/v1/subjects/u1", &bound_admin).status, 403);
    assert_eq!(app.get_auth("/api/v1/erasure-requests", &bound_admin).status, 403);
    let signin = app.post_form("/admin/signin", &[("key", &bound_admin)], None);
    assert_eq!(signin.status, 401, "{}", signin.body);
    assert!(signin.body.contains("not bound to an audience"), "{}", signin.body);
}

/// `terms` must be accepted again every 2 seconds.
fn expiring(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\nreaccept_after: 2s\n---\nTerms.\n");
}

fn an_old_acceptance_expires_everywhere_at_once(backend: Backend) {
    let app = app(&backend, expiring);
    let key = app.key("host", "write");
    let r = app.post("/api/v1/subjects/u1/acceptances", &key, &json!({"document": "terms", "version": 1}));
    assert_eq!(r.status, 201, "{}", r.body);
    let accepted_at = chrono::DateTime::parse_from_rfc3339(r.json()["recorded_at"].as_str().unwrap()).unwrap();
    let (_, fresh) = status(&app, &key, "u1", "");
    assert_eq!(fresh["documents"][0]["state"], "accepted", "{fresh}");
    assert_eq!(app.get_auth("/api/v1/documents/terms/coverage", &key).json()["accepted"], 1);

    std::thread::sleep(Duration::from_millis(2300));
    let (_, old) = status(&app, &key, "u1", "");
    let doc = &old["documents"][0];
    assert_eq!(doc["state"], "expired", "{old}");
    assert_eq!(old["up_to_date"], false);
    assert_eq!(doc["accepted_version"], 1);
    let since = chrono::DateTime::parse_from_rfc3339(doc["required_since"].as_str().unwrap()).unwrap();
    assert_eq!(since - accepted_at, chrono::TimeDelta::seconds(2), "required_since is when it expired: {old}");
    let c = app.get_auth("/api/v1/documents/terms/coverage", &key).json();
    assert_eq!((c["accepted"].as_i64(), c["expired"].as_i64()), (Some(0), Some(1)), "{c}");
    assert_eq!(app.get_auth("/api/v1/documents/terms/versions/1/stats", &key).json()["expired"], 1);

    // The consent page says why it asks again, instead of an empty comparison.
    let r = app.post("/api/v1/consent-links", &key, &json!({"subject": "u1", "return_to": format!("{HOST}/back")}));
    let url = r.json()["url"].as_str().unwrap()[app.address.len()..].to_owned();
    let page = app.get(&url);
    assert!(page.body.contains("It has been over 2 seconds since you accepted it"), "{}", page.body);
    assert!(!page.body.contains("words added"), "no empty redline: {}", page.body);

    // Accepting again counts afresh.
    let r = app.post("/api/v1/subjects/u1/acceptances", &key, &json!({"document": "terms", "version": 1}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(status(&app, &key, "u1", "").1["documents"][0]["state"], "accepted");
    assert_eq!(app.get_auth("/api/v1/documents/terms/coverage", &key).json()["accepted"], 1);
}

fn terms_and_privacy(dir: &std::path::Path) {
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nTerms.\n");
    write(dir, "privacy/v1.md", "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\nWe keep it.\n");
}

fn a_parts_material_change_makes_status_coverage_and_stats_agree(backend: Backend) {
    let app = app(&backend, terms_and_privacy);
    let key = app.key("host", "write");
    // u2 accepts while privacy v1 is the newest: its acceptance covers privacy v1.
    let accept = |who: &str| {
        let r =
            app.post(&format!("/api/v1/subjects/{who}/acceptances"), &key, &json!({"document": "terms", "version": 1}));
        assert_eq!(r.status, 201, "{}", r.body);
    };
    accept("u2");
    // Then privacy v2, material, is published to take effect in a few seconds; u1 accepts
    // after that, so its acceptance covers privacy v2 already.
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(6)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write(
        app.policies.path(),
        "privacy/v2.md",
        &format!(
            "---\ntitle: Privacy\neffective: {soon}\npart_of: terms\nsummary: We now delete it after a year.\n---\nWe delete it.\n"
        ),
    );
    let out = common::assent(&["sync"], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(2100)); // the server's catalog is fresh within 2 s
    accept("u1");
    let c = app.get_auth("/api/v1/documents/terms/coverage", &key).json();
    assert_eq!(c["accepted"], 2, "before v2 takes effect both are up to date: {c}");
    std::thread::sleep(Duration::from_millis(4000));
    let (_, s1) = status(&app, &key, "u1", "");
    let (_, s2) = status(&app, &key, "u2", "");
    assert_eq!(s1["documents"][0]["state"], "accepted", "{s1}");
    assert_eq!(s2["documents"][0]["state"], "pending", "{s2}");
    let c = app.get_auth("/api/v1/documents/terms/coverage", &key).json();
    assert_eq!((c["accepted"].as_i64(), c["pending"].as_i64()), (Some(1), Some(1)), "coverage agrees with status: {c}");
    let terms = app.get_auth("/api/v1/documents/terms/versions/1/stats", &key).json();
    assert_eq!((terms["accepted"].as_i64(), terms["pending"].as_i64()), (Some(1), Some(1)), "{terms}");
    let privacy = app.get_auth("/api/v1/documents/privacy/versions/1/stats", &key).json();
    assert_eq!((privacy["accepted"].as_i64(), privacy["pending"].as_i64()), (Some(0), Some(1)), "{privacy}");

    // The re-prompt shows the part's own summary.
    let r = app.post("/api/v1/consent-links", &key, &json!({"subject": "u2", "return_to": format!("{HOST}/back")}));
    let url = r.json()["url"].as_str().unwrap()[app.address.len()..].to_owned();
    let page = app.get(&url);
    assert!(page.body.contains("We now delete it after a year."), "{}", page.body);
}

/// Acceptances made days apart, on either side of the expiry cutoff and on its day.
fn acceptances_on_either_side_of_the_cutoff_day(backend: Backend) {
    let app = app(&backend, |dir| {
        write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\nreaccept_after: 3d\n---\nTerms.\n")
    });
    let key = app.key("host", "write");
    for who in ["old", "cutoff-day-before", "cutoff-day-after", "recent", "now"] {
        let r =
            app.post(&format!("/api/v1/subjects/{who}/acceptances"), &key, &json!({"document": "terms", "version": 1}));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Move acceptances back in time, as if made earlier (the counts follow through the
    // triggers): 10 days; 3 days and 1 minute; 3 days less 1 minute; 2 days.
    let ago = |d: chrono::TimeDelta| (chrono::Utc::now() - d).naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let keys = app.subject_keys();
    for (who, back) in [
        ("old", chrono::TimeDelta::days(10)),
        ("cutoff-day-before", chrono::TimeDelta::days(3) + chrono::TimeDelta::minutes(1)),
        ("cutoff-day-after", chrono::TimeDelta::days(3) - chrono::TimeDelta::minutes(1)),
        ("recent", chrono::TimeDelta::days(2)),
    ] {
        app.sql(&format!(
            "UPDATE subject_documents SET accepted_at = '{}' WHERE subject_key = {}",
            ago(back),
            app.bytes(&keys.key_of(who))
        ));
    }
    let state = |who: &str| status(&app, &key, who, "").1["documents"][0]["state"].clone();
    assert_eq!(
        ["old", "cutoff-day-before", "cutoff-day-after", "recent", "now"].map(state),
        [json!("expired"), json!("expired"), json!("accepted"), json!("accepted"), json!("accepted")]
    );
    let coverage = || app.get_auth("/api/v1/documents/terms/coverage", &key).json();
    let c = coverage();
    assert_eq!((c["expired"].as_i64(), c["accepted"].as_i64()), (Some(2), Some(3)), "{c}");
    // Folding the appended changes into the counts (PostgreSQL) changes no figure.
    let db = assent::db::Db::open(&app.db.url, 1).unwrap();
    assent::db::coverage::fold(&mut db.get().unwrap()).unwrap();
    let mut folded = coverage();
    folded["as_of"] = c["as_of"].clone();
    assert_eq!(folded, c);

    // Those moved times are not what the events say, and `verify` says so; so is a count
    // that does not match the rows.
    let verify = || {
        let out = common::assent(&["verify"], &app.db.url, app.policies.path());
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, said) = verify();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("says the latest acceptance is"), "{said}");
    app.sql("UPDATE subject_documents SET accepted_at = updated_at WHERE document = 'terms'");
    let (code, said) = verify();
    assert_eq!(code, Some(0), "{said}");
    app.sql("INSERT INTO coverage_counts (document, state, accepted_covers, accepted_day, n) VALUES ('terms', 'accepted', '[]', '2020-01-01', 3)");
    let (code, said) = verify();
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(
            "coverage counts: terms accepted, accepted on 2020-01-01 covering []: 3 counted, but the status rows say 0"
        ),
        "{said}"
    );
}

on_both_databases!(
    acceptances_on_either_side_of_the_cutoff_day,
    audiences_restrict_status_keys_links_and_coverage,
    an_old_acceptance_expires_everywhere_at_once,
    a_parts_material_change_makes_status_coverage_and_stats_agree,
);
