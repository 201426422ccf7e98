//! A model-based test. `proptest` generates random policy histories (material and editorial
//! versions, a part, versions taking effect seconds after start or far in the future, versions
//! published mid-way with `assent sync`, audiences, `reaccept_after`) and random decisions per
//! subject at real, random moments. They
//! are sent to the real server, and every answer is compared with a small reference model of
//! contract §2 (with the README's reading of where it is silent: a stale acceptance is `pending`
//! rather than `expired`): each decision's status code, every subject's `/status` (with and
//! without an audience), the consent page's list, coverage, stats and the export. The model
//! keeps no counts and no groups: it replays its own records for every figure.
//!
//! The model and the server read the same clock. Checks and decisions are made only away from
//! the moments where an answer changes (a version taking effect, an acceptance expiring), so a
//! few milliseconds between the two cannot make them disagree. `ASSENT_MODEL_CASES` sets how
//! many histories each database gets (default 8).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use common::{Backend, TestApp, write};

const HOST: &str = "http://host.example.test";
/// No decision or check is made this close before (or just after) a moment where answers change.
const GUARD_BEFORE: TimeDelta = TimeDelta::milliseconds(600);
const GUARD_AFTER: TimeDelta = TimeDelta::milliseconds(80);

// ---- what proptest generates ----

/// When a version takes effect.
#[derive(Debug, Clone, Copy)]
enum When {
    /// Days after 2020-01-01: long in effect.
    Past(u8),
    /// Seconds after the policy folder is written: takes effect during the test.
    Soon(u8),
    /// In the year 2999: upcoming throughout.
    Future,
}

#[derive(Debug, Clone)]
struct DocSpec {
    /// Versions after v1 (which is always long in effect), in any order: they are sorted by
    /// when they take effect. `bool`: material.
    later: Vec<(When, bool)>,
    audience: Option<&'static str>,
    reaccept_secs: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Current,
    Newest,
    Older,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Accept {
        subject: u8,
        doc: u8,
        which: Which,
    },
    Decline {
        subject: u8,
        doc: u8,
        which: Which,
    },
    Withdraw {
        subject: u8,
        doc: u8,
    },
    Wait {
        ms: u16,
    },
    /// A new version of `terms`, `privacy` or `sdk` (0, 1, 2) is published mid-way (`assent
    /// sync`), taking effect soon or far ahead.
    Publish {
        doc: u8,
        soon: Option<u8>,
        material: bool,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    /// `terms` (with its part `privacy`) and `sdk`.
    terms: DocSpec,
    privacy_later: Vec<(When, bool)>,
    sdk: DocSpec,
    ops: Vec<Op>,
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![(1u8..200).prop_map(When::Past), (1u8..=3).prop_map(When::Soon), Just(When::Future)]
}

fn later() -> impl Strategy<Value = Vec<(When, bool)>> {
    prop::collection::vec((when(), any::<bool>()), 0..3)
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![3 => Just(Which::Current), 2 => Just(Which::Newest), 1 => Just(Which::Older)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..3, 0u8..2, which()).prop_map(|(subject, doc, which)| Op::Accept { subject, doc, which }),
        2 => (0u8..3, 0u8..2, which()).prop_map(|(subject, doc, which)| Op::Decline { subject, doc, which }),
        2 => (0u8..3, 0u8..2).prop_map(|(subject, doc)| Op::Withdraw { subject, doc }),
        2 => (200u16..1500).prop_map(|ms| Op::Wait { ms }),
        2 => (0u8..3, prop::option::of(1u8..=2), any::<bool>())
            .prop_map(|(doc, soon, material)| Op::Publish { doc, soon, material }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        later(),
        prop::option::of(Just("developers")),
        prop::option::of(prop_oneof![Just(2u8), Just(3u8)]),
        later(),
        later(),
        prop::option::of(Just("sdk-users")),
        prop::option::of(Just(2u8)),
        prop::collection::vec(op(), 1..12),
    )
        .prop_map(|(tl, ta, tr, pl, sl, sa, sr, ops)| Spec {
            terms: DocSpec { later: tl, audience: ta, reaccept_secs: tr },
            privacy_later: pl,
            sdk: DocSpec { later: sl, audience: sa, reaccept_secs: sr },
            ops,
        })
}

// ---- the reference model (contract §2) ----

#[derive(Debug, Clone)]
struct Version {
    number: u32,
    effective: DateTime<Utc>,
    material: bool,
}

#[derive(Debug, Clone)]
struct Doc {
    slug: &'static str,
    versions: Vec<Version>,
    audience: Option<&'static str>,
    reaccept: Option<TimeDelta>,
    /// The part, for `terms`.
    part: Option<usize>,
    agreement: bool,
}

impl Doc {
    fn current(&self, t: DateTime<Utc>) -> Option<&Version> {
        self.versions.iter().rev().find(|v| v.effective <= t)
    }
    fn upcoming(&self, t: DateTime<Utc>) -> Option<&Version> {
        self.versions.last().filter(|v| v.effective > t)
    }
    fn newest(&self) -> u32 {
        self.versions.len() as u32
    }
    /// The newest material version in effect (v1 counts as material).
    fn baseline(&self, t: DateTime<Utc>) -> Option<&Version> {
        self.versions.iter().rev().filter(|v| v.effective <= t).find(|v| v.material || v.number == 1)
    }
}

#[derive(Debug, Clone)]
enum Last {
    Accepted,
    Declined,
    Withdrawn,
}

/// One subject's record on one agreement.
#[derive(Debug, Clone)]
struct Record {
    last: Last,
    /// The latest acceptance: what it covered (slug → version) and when.
    accepted: Option<(BTreeMap<&'static str, u32>, DateTime<Utc>)>,
    highest: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
struct Status {
    slug: String,
    state: &'static str,
    accepted_version: Option<u32>,
    current_version: Option<u32>,
    upcoming_version: Option<u32>,
    required_since: Option<DateTime<Utc>>,
}

struct Model {
    docs: Vec<Doc>,
    /// (subject, agreement index) → record.
    records: HashMap<(u8, usize), Record>,
    /// Subjects with at least one event.
    known: std::collections::BTreeSet<u8>,
    events: usize,
}

impl Model {
    fn agreements(&self) -> impl Iterator<Item = (usize, &Doc)> {
        self.docs.iter().enumerate().filter(|(_, d)| d.agreement)
    }

    fn status(&self, subject: u8, i: usize, t: DateTime<Utc>) -> Status {
        let doc = &self.docs[i];
        let with_parts: Vec<&Doc> = std::iter::once(doc).chain(doc.part.map(|p| &self.docs[p])).collect();
        let required: Vec<(&Doc, &Version)> =
            with_parts.iter().filter_map(|d| d.baseline(t).map(|b| (*d, b))).collect();
        let newest_requirement = required.iter().map(|(_, b)| b.effective).max();
        let record = self.records.get(&(subject, i));
        let (state, accepted_version, required_since) = match record.map(|r| (&r.last, &r.accepted)) {
            None => ("never", None, newest_requirement),
            Some((Last::Declined, _)) => ("declined", None, newest_requirement),
            Some((Last::Withdrawn, _)) => ("withdrawn", None, newest_requirement),
            Some((Last::Accepted, Some((covers, at)))) => {
                let behind = required
                    .iter()
                    .filter(|(d, b)| covers.get(d.slug).is_none_or(|v| *v < b.number))
                    .map(|(_, b)| b.effective)
                    .max();
                let version = covers.get(doc.slug).copied();
                let expires = doc.reaccept.map(|d| *at + d);
                match (behind, expires) {
                    (Some(since), _) => ("pending", version, Some(since)),
                    (None, Some(e)) if e <= t => ("expired", version, Some(e)),
                    (None, _) => ("accepted", version, None),
                }
            }
            Some((Last::Accepted, None)) => unreachable!("an acceptance without what it covered"),
        };
        Status {
            slug: doc.slug.to_owned(),
            state,
            accepted_version,
            current_version: doc.current(t).map(|v| v.number),
            upcoming_version: doc.upcoming(t).map(|v| v.number),
            required_since: if state == "accepted" { None } else { required_since },
        }
    }

    fn satisfied(s: &Status) -> bool {
        s.state == "accepted" || s.required_since.is_none()
    }

    /// The version `which` names for agreement `i` at `t`.
    fn pick(&self, i: usize, which: Which, t: DateTime<Utc>) -> u32 {
        let doc = &self.docs[i];
        let current = doc.current(t).map_or(1, |v| v.number);
        match which {
            Which::Current => current,
            Which::Newest => doc.newest(),
            Which::Older => current.saturating_sub(1).max(1),
        }
    }

    /// The status code the server must answer `op` with at `t`, and the new record on success.
    fn decide(&self, op: Op, t: DateTime<Utc>) -> (u16, Option<Record>) {
        match op {
            Op::Accept { subject, doc, which } | Op::Decline { subject, doc, which } => {
                let i = self.agreement_index(doc);
                let d = &self.docs[i];
                let v = self.pick(i, which, t);
                if d.current(t).is_some_and(|c| v < c.number) {
                    return (409, None); // superseded
                }
                let before = self.records.get(&(subject, i));
                if let Op::Decline { .. } = op {
                    let mut r =
                        before.cloned().unwrap_or(Record { last: Last::Declined, accepted: None, highest: None });
                    r.last = Last::Declined;
                    return (201, Some(r));
                }
                if before.and_then(|r| r.highest).is_some_and(|h| v < h) {
                    return (409, None); // backwards
                }
                let mut covers = BTreeMap::from([(d.slug, v)]);
                if let Some(p) = d.part {
                    covers.insert(self.docs[p].slug, self.docs[p].newest());
                }
                (201, Some(Record { last: Last::Accepted, accepted: Some((covers, t)), highest: Some(v) }))
            }
            Op::Withdraw { subject, doc } => {
                let i = self.agreement_index(doc);
                match self.records.get(&(subject, i)) {
                    Some(r @ Record { last: Last::Accepted, .. }) => {
                        (201, Some(Record { last: Last::Withdrawn, ..r.clone() }))
                    }
                    _ => (409, None), // nothing to withdraw
                }
            }
            Op::Wait { .. } | Op::Publish { .. } => (0, None),
        }
    }

    fn agreement_index(&self, doc: u8) -> usize {
        let slug = if doc == 0 { "terms" } else { "sdk" };
        self.docs.iter().position(|d| d.slug == slug).unwrap_or(0)
    }

    /// Every moment after `from` at which some answer changes.
    fn boundaries(&self) -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> =
            self.docs.iter().flat_map(|d| d.versions.iter().map(|v| v.effective)).collect();
        for ((_, i), r) in &self.records {
            if let (Some(d), Some((_, at))) = (self.docs[*i].reaccept, &r.accepted) {
                out.push(*at + d);
            }
        }
        out
    }

    /// Waits until no answer can change between now and a little later; returns that moment.
    fn quiet_moment(&self) -> DateTime<Utc> {
        loop {
            let t = Utc::now();
            let near = self.boundaries().into_iter().filter(|b| *b > t - GUARD_AFTER && *b < t + GUARD_BEFORE).max();
            match near {
                None => return t,
                Some(b) => {
                    let wait = (b + GUARD_AFTER - t).to_std().unwrap_or(Duration::from_millis(10));
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

// ---- turning a spec into a policy folder and a model ----

fn effective(w: When, start: DateTime<Utc>) -> DateTime<Utc> {
    let epoch = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").map(|t| t.to_utc()).unwrap_or(start);
    match w {
        When::Past(days) => epoch + TimeDelta::days(i64::from(days)),
        When::Soon(secs) => {
            let whole = DateTime::from_timestamp(start.timestamp(), 0).unwrap_or(start);
            whole + TimeDelta::seconds(i64::from(secs) + 1)
        }
        When::Future => epoch + TimeDelta::days(365 * 979),
    }
}

fn versions(later: &[(When, bool)], start: DateTime<Utc>) -> Vec<Version> {
    let mut times: Vec<(DateTime<Utc>, bool)> = later.iter().map(|(w, m)| (effective(*w, start), *m)).collect();
    times.sort_by_key(|(t, _)| *t);
    let first = Version { number: 1, effective: effective(When::Past(0), start), material: true };
    std::iter::once(first)
        .chain(times.into_iter().enumerate().map(|(i, (effective, material))| Version {
            number: i as u32 + 2,
            effective,
            material,
        }))
        .collect()
}

fn build(spec: &Spec, start: DateTime<Utc>) -> Model {
    let terms = Doc {
        slug: "terms",
        versions: versions(&spec.terms.later, start),
        audience: spec.terms.audience,
        reaccept: spec.terms.reaccept_secs.map(|s| TimeDelta::seconds(i64::from(s))),
        part: Some(0),
        agreement: true,
    };
    let privacy = Doc {
        slug: "privacy",
        versions: versions(&spec.privacy_later, start),
        audience: spec.terms.audience,
        reaccept: None,
        part: None,
        agreement: false,
    };
    let sdk = Doc {
        slug: "sdk",
        versions: versions(&spec.sdk.later, start),
        audience: spec.sdk.audience,
        reaccept: spec.sdk.reaccept_secs.map(|s| TimeDelta::seconds(i64::from(s))),
        part: None,
        agreement: true,
    };
    // Sorted by slug, as the server lists them.
    Model { docs: vec![privacy, sdk, terms], records: HashMap::new(), known: Default::default(), events: 0 }
}

fn write_folder(model: &Model, dir: &std::path::Path) {
    for d in &model.docs {
        for v in &d.versions {
            write_version(d, v, dir);
        }
    }
}

fn write_version(d: &Doc, v: &Version, dir: &std::path::Path) {
    {
        {
            let mut front = format!(
                "title: {} policy\neffective: {}\nmaterial: {}\nsummary: Version {} of {}.\n",
                d.slug,
                v.effective.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                v.material,
                v.number,
                d.slug
            );
            if !d.agreement {
                front.push_str("part_of: terms\n");
            }
            if let Some(a) = d.audience {
                front.push_str(&format!("audiences: [{a}]\n"));
            }
            if let Some(r) = d.reaccept {
                front.push_str(&format!("reaccept_after: {}s\n", r.num_seconds()));
            }
            let body = format!("The {} text, version {}.\n\nIt says {} things.\n", d.slug, v.number, v.number * 3);
            write(dir, &format!("{}/v{}.md", d.slug, v.number), &format!("---\n{front}---\n{body}"));
        }
    }
}

// ---- running a case ----

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.to_utc())
}

fn close(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= TimeDelta::milliseconds(1),
        (None, None) => true,
        _ => false,
    }
}

fn run_case(backend: &Backend, spec: &Spec) -> Result<(), TestCaseError> {
    let start = Utc::now();
    let mut model = build(spec, start);
    let app = TestApp::spawn_configured(
        backend,
        |dir| write_folder(&model, dir),
        |s| s.return_origins = assent::consent::ReturnOrigins::parse(HOST).unwrap(),
    );
    let key = app.key("host", "write");
    for (n, op) in spec.ops.iter().enumerate() {
        if let Op::Wait { ms } = op {
            std::thread::sleep(Duration::from_millis(u64::from(*ms)));
            continue;
        }
        if let Op::Publish { doc, soon, material } = *op {
            let i = match doc {
                0 => model.agreement_index(0),
                1 => model.docs.iter().position(|d| d.slug == "privacy").unwrap_or(0),
                _ => model.agreement_index(1),
            };
            let wanted = match soon {
                Some(s) => effective(When::Soon(s), Utc::now()),
                None => effective(When::Future, Utc::now()),
            };
            let previous = model.docs[i].versions.last().map_or(wanted, |v| v.effective);
            let v = Version { number: model.docs[i].newest() + 1, effective: wanted.max(previous), material };
            write_version(&model.docs[i], &v, app.policies.path());
            let out = common::assent(&["sync"], &app.db.url, app.policies.path());
            prop_assert!(out.status.success(), "sync: {}", String::from_utf8_lossy(&out.stderr));
            model.docs[i].versions.push(v);
            // The server sees a publication within 2 s (`routes::catalog`).
            std::thread::sleep(Duration::from_millis(2100));
            continue;
        }
        let t = model.quiet_moment();
        let (expected, record) = model.decide(*op, t);
        let (subject, path, body) = match *op {
            Op::Accept { subject, doc, which } => {
                let i = model.agreement_index(doc);
                (subject, "acceptances", json!({"document": model.docs[i].slug, "version": model.pick(i, which, t)}))
            }
            Op::Decline { subject, doc, which } => {
                let i = model.agreement_index(doc);
                (subject, "declines", json!({"document": model.docs[i].slug, "version": model.pick(i, which, t)}))
            }
            Op::Withdraw { subject, doc } => {
                (subject, "withdrawals", json!({"document": model.docs[model.agreement_index(doc)].slug}))
            }
            Op::Wait { .. } | Op::Publish { .. } => continue,
        };
        let r = app.post(&format!("/api/v1/subjects/s{subject}/{path}"), &key, &body);
        prop_assert_eq!(r.status, expected, "op {} {:?} {}: {}", n, op, body, r.body);
        if let Some(mut record) = record {
            let i = match *op {
                Op::Accept { doc, .. } | Op::Decline { doc, .. } | Op::Withdraw { doc, .. } => {
                    model.agreement_index(doc)
                }
                Op::Wait { .. } | Op::Publish { .. } => continue,
            };
            if let (Last::Accepted, Some((_, at))) = (&record.last, &mut record.accepted) {
                *at = parse_time(&r.json()["recorded_at"]).unwrap_or(t); // the server's own moment
            }
            model.records.insert((subject, i), record);
            model.known.insert(subject);
            model.events += 1;
        }
    }

    // Every figure, each read at a quiet moment of its own.
    for subject in 0u8..3 {
        let t = model.quiet_moment();
        let s = app.get_auth(&format!("/api/v1/subjects/s{subject}/status"), &key).json();
        let expected: Vec<Status> = model.agreements().map(|(i, _)| model.status(subject, i, t)).collect();
        let got = s["documents"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(got.len(), expected.len(), "s{} status: {}", subject, s);
        for (g, e) in got.iter().zip(&expected) {
            let same = g["slug"] == e.slug
                && g["state"] == e.state
                && g["accepted_version"].as_u64().map(|v| v as u32) == e.accepted_version
                && g["current_version"].as_u64().map(|v| v as u32) == e.current_version
                && g["upcoming_version"].as_u64().map(|v| v as u32) == e.upcoming_version
                && close(parse_time(&g["required_since"]), e.required_since);
            prop_assert!(same, "s{} status at {}: server {} model {:?}", subject, t, g, e);
        }
        prop_assert_eq!(s["up_to_date"].as_bool(), Some(expected.iter().all(Model::satisfied)), "s{}: {}", subject, s);

        // An audience restricts status to its agreements.
        if let Some(a) = model.docs.iter().find_map(|d| d.audience) {
            let s = app.get_auth(&format!("/api/v1/subjects/s{subject}/status?audience={a}"), &key).json();
            let slugs: Vec<&str> =
                s["documents"].as_array().map_or(Vec::new(), |d| d.iter().filter_map(|x| x["slug"].as_str()).collect());
            let want: Vec<&str> =
                model.agreements().filter(|(_, d)| d.audience.is_none_or(|x| x == a)).map(|(_, d)| d.slug).collect();
            prop_assert_eq!(slugs, want, "s{} ?audience={}", subject, a);
        }

        // The consent page asks about exactly the agreements status says are owed.
        let link = app.post(
            "/api/v1/consent-links",
            &key,
            &json!({"subject": format!("s{subject}"), "return_to": format!("{HOST}/back")}),
        );
        let url = link.json()["url"].as_str().unwrap_or_default()[app.address.len()..].to_owned();
        let page = app.get(&url).body;
        let shown: Vec<&str> =
            page.split("id=\"agreement-").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        let owed: Vec<&str> = expected.iter().filter(|s| !Model::satisfied(s)).map(|s| s.slug.as_str()).collect();
        prop_assert_eq!(shown, owed, "s{} consent page", subject);
    }

    // Coverage: every known subject once, in its status's state.
    for (i, doc) in model.agreements() {
        let t = model.quiet_moment();
        let c = app.get_auth(&format!("/api/v1/documents/{}/coverage", doc.slug), &key).json();
        let mut want: BTreeMap<&str, i64> =
            ["accepted", "pending", "never", "declined", "withdrawn", "expired"].into_iter().map(|k| (k, 0)).collect();
        for subject in &model.known {
            *want.entry(model.status(*subject, i, t).state).or_default() += 1;
        }
        for (k, n) in &want {
            prop_assert_eq!(c[*k].as_i64(), Some(*n), "coverage of {}.{}: {}", doc.slug, k, c);
        }
        prop_assert_eq!(c["total"].as_i64(), Some(model.known.len() as i64), "coverage total: {}", c);
    }

    // Stats: of the subjects whose latest acceptance covered version n, their state now.
    for doc in &model.docs {
        // A part's versions are counted through its agreement, `terms`.
        let agreement = model.agreement_index(if doc.slug == "sdk" { 1 } else { 0 });
        for v in &doc.versions {
            let t = model.quiet_moment();
            let s = app.get_auth(&format!("/api/v1/documents/{}/versions/{}/stats", doc.slug, v.number), &key).json();
            let mut want: BTreeMap<&str, i64> =
                ["accepted", "pending", "declined", "withdrawn", "expired"].into_iter().map(|k| (k, 0)).collect();
            for ((subject, i), r) in &model.records {
                let covered = r.accepted.as_ref().is_some_and(|(c, _)| c.get(doc.slug) == Some(&v.number));
                if *i == agreement && covered {
                    *want.entry(model.status(*subject, *i, t).state).or_default() += 1;
                }
            }
            for (k, n) in &want {
                prop_assert_eq!(s[*k].as_i64(), Some(*n), "stats of {} v{}.{}: {}", doc.slug, v.number, k, s);
            }
        }
    }

    // The export holds every event acknowledged, once.
    let admin = app.key("dpo", "admin");
    let export = app.get_auth("/api/v1/export?format=jsonl", &admin);
    prop_assert_eq!(export.body.lines().count(), model.events, "export");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ASSENT_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(8)
}

fn the_service_agrees_with_the_reference_model(backend: Backend) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&spec(), |spec| run_case(&backend, &spec));
    if let Err(e) = result {
        panic!("{e}");
    }
}

on_both_databases!(the_service_agrees_with_the_reference_model);
