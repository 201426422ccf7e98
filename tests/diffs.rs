//! Diffs between versions: the redline page, the API, the CLI, and "what changed since".

mod common;

use std::collections::HashMap;

use common::{Backend, TestApp, assent, write};

fn paragraphs(n: usize, tag: &str) -> String {
    (1..=n).map(|i| format!("Paragraph {i} of the {tag} section stays exactly as it was.\n\n")).collect()
}

/// Version 1 → 2 rewords a sentence deep in a long text, adds a section and drops a list item;
/// version 3 changes only its front matter.
fn folder(dir: &std::path::Path) {
    let v1 = format!(
        "---\ntitle: Privacy\neffective: 2020-01-01\npart_of: terms\n---\n## Scope\n\n{}## Retention\n\nWe keep your data for ten years.\n\n- logs\n- backups\n- archives\n\n{}",
        paragraphs(8, "scope"),
        paragraphs(8, "closing")
    );
    let v2 = format!(
        "---\ntitle: Privacy\neffective: 2021-01-01\npart_of: terms\nsummary: Shorter retention.\n---\n## Scope\n\n{}## Retention\n\nWe keep your data for two years.\n\n- logs\n- archives\n\n## Your rights\n\nYou may ask us to delete your data.\n\n{}",
        paragraphs(8, "scope"),
        paragraphs(8, "closing")
    );
    let v3 = v2
        .replace("effective: 2021-01-01", "effective: 2021-02-01\nmaterial: false")
        .replace("summary: Shorter retention.", "summary: Only the date and this note change.");
    write(dir, "privacy/v1.md", &v1);
    write(dir, "privacy/v2.md", &v2);
    write(dir, "privacy/v3.md", &v3);
    write(dir, "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nYou agree to be reasonable.\n");
    write(dir, "terms/v2.md", "---\ntitle: Terms\neffective: 2021-01-01\n---\nYou agree to be reasonable and kind.\n");
}

fn the_page_marks_changed_words_and_folds_the_rest(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let page = app.get("/policies/privacy/diff?from=1&to=2");
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    assert!(b.contains("We keep your data for <del>ten</del><ins>two</ins> years."), "{b}");
    assert!(b.contains("<del class=\"block\"><ul>\n<li>backups</li>"), "deleted list item: {b}");
    assert!(b.contains("<ins class=\"block\"><h2>Your rights</h2>"), "{b}");
    assert!(
        b.contains("<details class=\"fold\"><summary>7 unchanged blocks</summary>"),
        "unchanged stretches fold: {b}"
    );
    assert!(b.contains("<a href=\"#change-1\">Retention</a>"), "sections that changed: {b}");
    assert!(b.contains("<a href=\"#change-4\">Your rights</a>") || b.contains(">Your rights</a></li>"), "{b}");
    assert!(b.contains("Shorter retention."), "the newer version's summary is shown");
    assert!(b.contains("Effective 1 January 2020") && b.contains("Effective 1 January 2021"));
    assert!(b.contains("<option value=\"1\" selected>"), "pickers show the choice");
    assert!(!b.contains("## Retention"), "formatted text, not raw Markdown");
}

fn the_split_view_puts_versions_side_by_side(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let page = app.get("/policies/privacy/diff?from=1&to=2&view=split");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<div class=\"cell cell-old\"><p>We keep your data for <del>ten</del> years.</p>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<div class=\"cell cell-new\"><p>We keep your data for <ins>two</ins> years.</p>"),
        "{}",
        page.body
    );
}

fn defaults_and_either_order_work(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let latest = app.get("/policies/privacy/diff");
    assert_eq!(latest.status, 200);
    assert!(
        latest.body.contains("Version 2</a></h2>") && latest.body.contains("Version 3</a></h2>"),
        "defaults to previous → current"
    );
    assert!(latest.body.contains("The text of these versions is the same"), "{}", latest.body);
    let backwards = app.get("/policies/privacy/diff?from=2&to=1");
    assert!(backwards.body.contains("We keep your data for <del>two</del><ins>ten</ins> years."), "{}", backwards.body);
    let jump = app.get("/policies/privacy/diff?from=1&to=3");
    assert!(jump.body.contains("Also included: 1 version in between"), "{}", jump.body);
    let same = app.get("/policies/privacy/diff?from=2&to=2");
    assert!(same.body.contains("comparing version 2 with itself"));
}

fn bad_diff_requests_are_refused_clearly(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    assert_eq!(app.get("/policies/privacy/diff?from=abc&to=2").status, 400);
    assert_eq!(app.get("/policies/privacy/diff?from=1&to=9").status, 404);
    assert_eq!(app.get("/policies/nope/diff?from=1&to=2").status, 404);
    let view = app.get("/policies/privacy/diff?from=1&to=2&view=sideways");
    assert_eq!(view.status, 400);
    assert!(view.body.contains("is not a view"));
    let api = app.get("/api/v1/documents/privacy/diff?from=x&to=2");
    assert_eq!(api.status, 400);
    assert_eq!(api.json()["error"]["code"], "bad_request");
    assert_eq!(app.get("/api/v1/documents/privacy/diff?from=1&to=99").json()["error"]["code"], "not_found");
}

fn version_pages_link_to_the_previous_changes(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let v2 = app.get("/policies/privacy/versions/2");
    assert!(v2.body.contains("href=\"/policies/privacy/diff?from=1&amp;to=2\""), "{}", v2.body);
    let list = app.get("/policies/privacy/versions");
    assert!(list.body.contains("href=\"/policies/privacy/diff?from=2&amp;to=3\""));
    assert!(list.body.contains("href=\"/policies/privacy/diff?from=1&amp;to=2\""));
    let v1 = app.get("/policies/privacy/versions/1");
    assert!(!v1.body.contains("/diff?"), "version 1 has no previous version");
}

fn the_api_returns_hunks_and_a_patch_that_applies(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let json = app.get("/api/v1/documents/privacy/diff?from=1&to=2").json();
    assert_eq!(json["from"], 1);
    assert_eq!(json["to"], 2);
    assert_eq!(json["deletions"], 2, "{json}");
    assert_eq!(json["insertions"], 1 + 2 + 8, "{json}");
    let hunks = json["hunks"].as_array().unwrap();
    let reworded = hunks.iter().find(|h| h["kind"] == "changed").unwrap();
    assert_eq!(reworded["section"], "Retention");
    assert_eq!(reworded["old_markdown"], "We keep your data for ten years.");
    assert_eq!(reworded["new_markdown"], "We keep your data for two years.");
    assert_eq!(reworded["segments"][1], serde_json::json!({"op": "delete", "text": "ten"}));
    assert!(hunks.iter().any(|h| h["kind"] == "inserted" && h["section"] == "Your rights"));
    assert!(hunks.iter().any(|h| h["kind"] == "deleted" && h["old_markdown"] == "- backups"), "{hunks:?}");
    assert!(json["unified"].as_str().unwrap().starts_with("--- a/privacy/v1.md\n+++ b/privacy/v2.md\n"));

    let patch = app.get_with("/api/v1/documents/privacy/diff?from=1&to=2", &[("Accept", "text/x-diff")]);
    assert_eq!(patch.status, 200);
    assert!(patch.content_type.starts_with("text/x-diff"));
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("v1.md");
    std::fs::copy(app.policies.path().join("privacy/v1.md"), &target).unwrap();
    std::fs::write(work.path().join("change.diff"), &patch.body).unwrap();
    let applied = std::process::Command::new("patch")
        .arg(&target)
        .arg(work.path().join("change.diff"))
        .output()
        .expect("run patch");
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stdout));
    assert_eq!(std::fs::read(&target).unwrap(), std::fs::read(app.policies.path().join("privacy/v2.md")).unwrap());
}

fn the_cli_prints_word_and_unified_diffs(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let out = assent(&["diff", "privacy", "1", "2"], &app.db.url, app.policies.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("privacy: version 1 → version 2 (11 words inserted, 2 deleted)"), "{text}");
    assert!(text.contains("§ Retention\n  We keep your data for [-ten-]{+two+} years."), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped");
    let out = assent(&["diff", "privacy", "1", "2", "--format", "unified"], &app.db.url, app.policies.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("-We keep your data for ten years.\n+We keep your data for two years.\n"), "{text}");
    let bad = assent(&["diff", "privacy", "1", "9"], &app.db.url, app.policies.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has no version 9"));
}

fn changes_since_covers_an_agreement_and_its_parts(backend: Backend) {
    let app = TestApp::spawn_with(&backend, folder);
    let db = assent::db::Db::open(&app.db.url, 1).unwrap();
    let mut conn = db.get().unwrap();
    let catalog = assent::db::versions::load_catalog(&mut conn).unwrap();
    let cache = assent::changes::DiffCache::new(1 << 20);
    let slug = |s: &str| assent::domain::Slug::parse(s).unwrap();
    let v = |n: u32| assent::domain::VersionNumber::new(n).unwrap();
    let accepted = HashMap::from([(slug("terms"), v(1)), (slug("privacy"), v(1))]);
    let changes =
        assent::changes::changes_since(&mut conn, &cache, &catalog, &slug("terms"), &accepted, chrono::Utc::now())
            .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].slug, slug("terms"));
    let privacy = &changes[1];
    assert_eq!((privacy.accepted, privacy.to), (Some(v(1)), v(3)), "v1 → v3 across several versions at once");
    let diff = privacy.diff.as_ref().unwrap();
    assert!(diff.changes.blocks.iter().any(|b| b.html.as_str().contains("<del>ten</del><ins>two</ins>")));
    let never = assent::changes::changes_since(
        &mut conn,
        &cache,
        &catalog,
        &slug("terms"),
        &HashMap::new(),
        chrono::Utc::now(),
    )
    .unwrap();
    assert!(never.iter().all(|c| c.accepted.is_none() && c.diff.is_none()), "never accepted: the whole text is shown");
    let current = HashMap::from([(slug("terms"), v(2)), (slug("privacy"), v(3))]);
    assert!(
        assent::changes::changes_since(&mut conn, &cache, &catalog, &slug("terms"), &current, chrono::Utc::now())
            .unwrap()
            .is_empty()
    );
}

on_both_databases!(
    the_page_marks_changed_words_and_folds_the_rest,
    the_split_view_puts_versions_side_by_side,
    defaults_and_either_order_work,
    bad_diff_requests_are_refused_clearly,
    version_pages_link_to_the_previous_changes,
    the_api_returns_hunks_and_a_patch_that_applies,
    the_cli_prints_word_and_unified_diffs,
    changes_since_covers_an_agreement_and_its_parts,
);
