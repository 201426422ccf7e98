//! `assent check` and `assent sync` on good and bad policy folders, through the real binary.

mod common;

use std::path::Path;

use common::{Backend, TestDatabase, assent, write};

const OK: &str = "---\ntitle: Terms\neffective: 2020-01-01\n---\nText.\n";

fn check(dir: &Path) -> (bool, String) {
    let out = assent(&["check", &dir.to_string_lossy()], "sqlite://unused.db", dir);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts `check` fails with a line that names `file:line` (or just `file:`) and says `words`.
fn assert_problem(dir: &Path, location: &str, words: &str) {
    let (ok, stderr) = check(dir);
    assert!(!ok, "check passed but should report {location}: {words}");
    let wanted = format!("{}/{location}", dir.display());
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&wanted))
        .unwrap_or_else(|| panic!("no problem at {wanted}; got:\n{stderr}"));
    assert!(line.contains(words), "`{line}` does not say `{words}`");
}

fn folder() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn the_shipped_policies_are_valid() {
    let (ok, stderr) = check(&common::shipped_policies());
    assert!(ok, "{stderr}");
}

#[test]
fn malformed_yaml_is_reported_with_its_line() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: Terms\neffective: [2020-01-01\n---\nText.\n");
    assert_problem(d.path(), "terms/v1.md:3: ", "front matter");
}

#[test]
fn unknown_keys_are_named() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\nmaterail: false\n---\nText.\n");
    assert_problem(d.path(), "terms/v1.md:4: ", "materail");
}

#[test]
fn missing_keys_and_bad_values_are_reported() {
    let d = folder();
    write(d.path(), "a/v1.md", "---\neffective: 2020-01-01\n---\nText.\n");
    write(d.path(), "b/v1.md", "---\ntitle: B\n---\nText.\n");
    write(d.path(), "c/v1.md", "---\ntitle: C\neffective: next tuesday\n---\nText.\n");
    write(d.path(), "e/v1.md", "---\ntitle: E\neffective: 2020-01-01\nacceptance: maybe\n---\nText.\n");
    write(d.path(), "f/v1.md", "# No front matter\n");
    assert_problem(d.path(), "a/v1.md:2: ", "title");
    assert_problem(d.path(), "b/v1.md:2: ", "effective");
    assert_problem(d.path(), "c/v1.md:3: ", "next tuesday");
    assert_problem(d.path(), "e/v1.md:4: ", "acceptance");
    assert_problem(d.path(), "f/v1.md:1: ", "front matter");
}

#[test]
fn a_bad_slug_is_refused() {
    let d = folder();
    write(d.path(), "Terms_Of_Use/v1.md", OK);
    assert_problem(d.path(), "Terms_Of_Use: ", "not a valid slug");
}

#[test]
fn version_gaps_are_refused() {
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/v3.md", OK);
    assert_problem(d.path(), "terms: ", "v2.md is missing");
}

#[test]
fn part_of_must_name_a_document_and_not_loop() {
    let d = folder();
    write(d.path(), "a/v1.md", "---\ntitle: A\neffective: 2020-01-01\npart_of: b\n---\nA.\n");
    write(d.path(), "b/v1.md", "---\ntitle: B\neffective: 2020-01-01\npart_of: a\n---\nB.\n");
    write(d.path(), "c/v1.md", "---\ntitle: C\neffective: 2020-01-01\npart_of: nowhere\n---\nC.\n");
    // Each names the line of its `part_of`.
    assert_problem(d.path(), "a/v1.md:4: ", "cycle");
    assert_problem(d.path(), "c/v1.md:4: ", "names no document");
}

#[test]
fn invalid_utf8_is_reported_at_its_line() {
    let d = folder();
    std::fs::create_dir_all(d.path().join("terms")).unwrap();
    std::fs::write(
        d.path().join("terms/v1.md"),
        b"---\ntitle: Terms\neffective: 2020-01-01\n---\nfine\n\xff\xfe bad\n",
    )
    .unwrap();
    assert_problem(d.path(), "terms/v1.md:6: ", "UTF-8");
}

#[test]
fn an_empty_body_is_refused() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\n\n   \n");
    assert_problem(d.path(), "terms/v1.md:4: ", "body is empty");
}

#[test]
fn a_huge_file_is_refused_without_reading_it() {
    let d = folder();
    let mut big = String::from(OK);
    big.push_str(&"x".repeat(10 * 1024 * 1024));
    write(d.path(), "terms/v1.md", &big);
    assert_problem(d.path(), "terms/v1.md: ", "at most");
}

#[test]
fn effective_dates_must_not_go_backwards() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: 2021-01-01\n---\nOne.\n");
    write(d.path(), "terms/v2.md", "---\ntitle: T\neffective: 2020-01-01\n---\nTwo.\n");
    assert_problem(d.path(), "terms/v2.md: ", "earlier than that of v1");
}

#[test]
fn audiences_and_reaccept_after_are_checked_with_their_line() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: 2020-01-01\naudiences: [developers]\n---\nT.\n");
    write(
        d.path(),
        "privacy/v1.md",
        "---\ntitle: P\neffective: 2020-01-01\npart_of: terms\naudiences: [sdk-users]\n---\nP.\n",
    );
    write(d.path(), "notes/v1.md", "---\ntitle: N\neffective: 2020-01-01\npart_of: terms\n---\nN.\n");
    write(d.path(), "bad/v1.md", "---\ntitle: B\neffective: 2020-01-01\naudiences: [Has Spaces]\n---\nB.\n");
    write(d.path(), "worse/v1.md", "---\ntitle: W\neffective: 2020-01-01\nreaccept_after: every year\n---\nW.\n");
    write(d.path(), "sdk/v1.md", "---\ntitle: S\neffective: 2020-01-01\n---\nS.\n");
    write(d.path(), "sdk/v1.zh.md", "---\ntitle: 条款\naudiences: [everyone]\n---\n条款。\n");
    assert_problem(d.path(), "privacy/v1.md:5: ", "differs from that of `terms`");
    assert_problem(d.path(), "notes/v1.md:4: ", "everyone (no `audiences`)");
    assert_problem(d.path(), "bad/v1.md:4: ", "`audiences`");
    assert_problem(d.path(), "worse/v1.md:4: ", "`reaccept_after`");
    assert_problem(d.path(), "sdk/v1.zh.md:3: ", "`audiences` differs");
}

#[test]
fn only_a_material_version_may_bring_or_shorten_reaccept_after() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: 2020-01-01\n---\nT.\n");
    write(
        d.path(),
        "terms/v2.md",
        "---\ntitle: T\neffective: 2020-02-01\nmaterial: false\nreaccept_after: 365d\n---\nT.\n",
    );
    assert_problem(d.path(), "terms/v2.md:5: ", "editorial");
    write(d.path(), "terms/v2.md", "---\ntitle: T\neffective: 2020-02-01\nreaccept_after: 365d\n---\nT.\n");
    write(
        d.path(),
        "terms/v3.md",
        "---\ntitle: T\neffective: 2020-03-01\nmaterial: false\nreaccept_after: 400d\n---\nT.\n",
    );
    let (ok, stderr) = check(d.path());
    assert!(ok, "a material version may bring it, an editorial one lengthen it: {stderr}");
}

#[test]
fn a_draft_does_not_decide_a_parts_audiences() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: 2020-01-01\naudiences: [developers]\n---\nT.\n");
    write(d.path(), "privacy/v1.md", "---\ntitle: P\neffective: 2020-01-01\npart_of: terms\n---\nP.\n");
    write(
        d.path(),
        "privacy/v2.md",
        "---\ntitle: P\neffective: 2020-01-01\npart_of: terms\ndraft: true\naudiences: [developers]\n---\nP.\n",
    );
    assert_problem(d.path(), "privacy/v1.md:4: ", "differs from that of `terms`");
}

#[test]
fn a_document_cannot_join_or_leave_an_agreement() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: 2020-01-01\n---\nT.\n");
    write(d.path(), "privacy/v1.md", "---\ntitle: P\neffective: 2020-01-01\npart_of: terms\n---\nP.\n");
    write(d.path(), "privacy/v2.md", "---\ntitle: P\neffective: 2020-02-01\n---\nP.\n");
    write(d.path(), "notes/v1.md", "---\ntitle: N\neffective: 2020-01-01\n---\nN.\n");
    write(d.path(), "notes/v2.md", "---\ntitle: N\neffective: 2020-02-01\npart_of: terms\n---\nN.\n");
    assert_problem(d.path(), "privacy/v2.md: ", "no `part_of` differs from v1 (`part_of: terms`)");
    assert_problem(d.path(), "notes/v2.md:4: ", "`part_of: terms` differs from v1 (no `part_of`)");
}

#[test]
fn a_broken_document_causes_no_errors_about_others() {
    let d = folder();
    write(d.path(), "terms/v1.md", "---\ntitle: T\neffective: someday\n---\nT.\n");
    write(d.path(), "privacy/v1.md", "---\ntitle: P\neffective: 2020-01-01\npart_of: terms\n---\nP.\n");
    let (ok, stderr) = check(d.path());
    assert!(!ok);
    assert!(stderr.contains("terms/v1.md:3: "), "{stderr}");
    assert!(!stderr.contains("privacy"), "nothing is wrong with privacy: {stderr}");
}

#[test]
fn translations_need_their_original_and_must_agree_with_it() {
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/v2.de.md", "---\ntitle: Bedingungen\n---\nText.\n");
    write(d.path(), "terms/v1.fr.md", "---\ntitle: Conditions\neffective: 2021-01-01\n---\nTexte.\n");
    write(d.path(), "terms/v1.not_a_tag.md", "---\ntitle: X\n---\nX.\n");
    assert_problem(d.path(), "terms/v2.de.md: ", "no v2.md");
    assert_problem(d.path(), "terms/v1.fr.md:3: ", "`effective` differs");
    assert_problem(d.path(), "terms/v1.not_a_tag.md: ", "language tag");
}

#[test]
fn stray_files_in_a_document_folder_are_named() {
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/notes.txt", "todo");
    write(d.path(), "terms/v01.md", OK);
    assert_problem(d.path(), "terms/notes.txt: ", "not a version file");
    assert_problem(d.path(), "terms/v01.md: ", "leading zeros");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let d = folder();
    write(d.path(), "a/v1.md", "---\ntitle: A\neffective: 2020-01-01\nbogus: 1\n---\nA.\n");
    write(d.path(), "b/v1.md", "---\ntitle: B\n---\nB.\n");
    let (ok, stderr) = check(d.path());
    assert!(!ok);
    assert!(stderr.contains("a/v1.md:4:") && stderr.contains("b/v1.md:2:"), "{stderr}");
    assert!(stderr.contains("2 problems found"), "{stderr}");
}

// ---- sync, on both databases ----

fn sync(db: &TestDatabase, dir: &Path) -> (bool, String, String) {
    let out = assent(&["sync"], &db.url, dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sync_publishes_new_versions_once(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/v1.de.md", "---\ntitle: Bedingungen\n---\nText.\n");
    let (ok, out, err) = sync(&db, d.path());
    assert!(ok, "{err}");
    assert!(out.contains("published terms v1\n") && out.contains("published terms v1 (de)"), "{out}");
    let (ok, out, _) = sync(&db, d.path());
    assert!(ok);
    assert!(out.contains("0 published, 2 already published"), "{out}");
    write(d.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2020-02-01\n---\nText two.\n");
    let (_, out, _) = sync(&db, d.path());
    assert!(out.contains("published terms v2\n") && out.contains("1 published"), "{out}");
}

fn an_edited_published_version_stops_the_whole_sync(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    assert!(sync(&db, d.path()).0);
    write(d.path(), "terms/v1.md", "---\ntitle: Terms\neffective: 2020-01-01\n---\nText, quietly changed.\n");
    write(d.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2020-02-01\n---\nText two.\n");
    write(d.path(), "other/v1.md", OK);
    let (ok, out, err) = sync(&db, d.path());
    assert!(!ok, "sync must refuse: {out}");
    assert!(
        err.contains(&format!("{}/terms/v1.md: this version is published and its bytes changed", d.path().display())),
        "{err}"
    );
    assert!(err.contains("nothing was published"), "{err}");
    // Nothing was half-published: restoring v1 publishes v2 and `other` now, for the first time.
    write(d.path(), "terms/v1.md", OK);
    let (ok, out, err) = sync(&db, d.path());
    assert!(ok, "{err}");
    assert!(out.contains("published other v1\n") && out.contains("published terms v2\n"), "{out}");
}

fn a_removed_published_version_is_refused(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2020-02-01\n---\nText two.\n");
    assert!(sync(&db, d.path()).0);
    std::fs::remove_file(d.path().join("terms/v2.md")).unwrap();
    let (ok, _, err) = sync(&db, d.path());
    assert!(!ok);
    assert!(err.contains("terms/v2.md: this version is published but its file is missing"), "{err}");
}

fn drafts_are_validated_but_never_published(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2020-02-01\ndraft: true\n---\nDraft.\n");
    let (ok, out, err) = sync(&db, d.path());
    assert!(ok, "{err}");
    assert!(out.contains("1 published") && !out.contains("terms v2"), "{out}");
    write(d.path(), "terms/v2.md", "---\ntitle: Terms\neffective: 2020-02-01\n---\nFinal.\n");
    let (_, out, _) = sync(&db, d.path());
    assert!(out.contains("published terms v2"), "{out}");
}

fn an_invalid_folder_publishes_nothing(backend: Backend) {
    let db = TestDatabase::create(&backend);
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    write(d.path(), "bad/v1.md", "---\ntitle: Bad\n---\nNo date.\n");
    let (ok, _, err) = sync(&db, d.path());
    assert!(!ok);
    assert!(err.contains("bad/v1.md:2:"), "{err}");
    std::fs::remove_dir_all(d.path().join("bad")).unwrap();
    let (_, out, _) = sync(&db, d.path());
    assert!(out.contains("published terms v1"), "terms was not published by the refused run: {out}");
}

fn unknown_database_schemes_are_refused(backend: Backend) {
    let _ = backend;
    let d = folder();
    write(d.path(), "terms/v1.md", OK);
    let out = assent(&["sync"], "mysql://root@localhost/x", d.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
}

on_both_databases!(
    sync_publishes_new_versions_once,
    an_edited_published_version_stops_the_whole_sync,
    a_removed_published_version_is_refused,
    drafts_are_validated_but_never_published,
    an_invalid_folder_publishes_nothing,
    unknown_database_schemes_are_refused,
);
