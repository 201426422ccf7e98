//! What changed between versions of a document, and since the versions a subject accepted.
//!
//! Published versions never change, so a diff is a pure function of (document, from, to): it is
//! computed once and kept in a cache bounded by the bytes it holds.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::versions::version_source;
use crate::db::{DbConnection, DbError};
use crate::domain::{Catalog, Slug, VersionNumber};
use crate::render::diff::{self, TextChanges};

/// The difference between two versions of one document.
#[derive(Debug)]
pub struct DocumentDiff {
    pub slug: Slug,
    pub from: VersionNumber,
    pub to: VersionNumber,
    /// Block-aligned, word-level changes of the rendered text.
    pub changes: TextChanges,
    /// A unified diff of the two files, front matter included: `patch` turns `from` into `to`.
    pub unified: String,
}

type Key = (Slug, u32, u32);

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<Key, Arc<DocumentDiff>> for ByBytes {
    fn weight(&self, _key: &Key, value: &Arc<DocumentDiff>) -> u64 {
        u64::try_from(value.changes.weight() + value.unified.len()).unwrap_or(u64::MAX).max(1)
    }
}

/// Diffs already computed, bounded by the bytes they hold.
pub struct DiffCache {
    cache: quick_cache::sync::Cache<Key, Arc<DocumentDiff>, ByBytes>,
}

impl DiffCache {
    pub fn new(max_bytes: u64) -> Self {
        // quick_cache wants an estimate of the entry count; a diff is typically tens of KB.
        let estimated = usize::try_from(max_bytes / 32_768).unwrap_or(1024).max(16);
        Self { cache: quick_cache::sync::Cache::with_weighter(estimated, max_bytes, ByBytes) }
    }

    /// A diff computed before, without touching the database.
    pub fn get(&self, slug: &Slug, from: VersionNumber, to: VersionNumber) -> Option<Arc<DocumentDiff>> {
        self.cache.get(&(slug.clone(), from.get(), to.get()))
    }

    /// The diff of two versions, from the cache or computed now. `None` when either version
    /// does not exist.
    pub fn diff(
        &self,
        conn: &mut DbConnection,
        slug: &Slug,
        from: VersionNumber,
        to: VersionNumber,
    ) -> Result<Option<Arc<DocumentDiff>>, DbError> {
        if let Some(hit) = self.get(slug, from, to) {
            return Ok(Some(hit));
        }
        let (Some(old), Some(new)) = (version_source(conn, slug, from)?, version_source(conn, slug, to)?) else {
            return Ok(None);
        };
        let computed = Arc::new(DocumentDiff {
            slug: slug.clone(),
            from,
            to,
            changes: diff::diff(&old.body, &new.body),
            unified: diff::unified(
                &old.source,
                &new.source,
                &format!("a/{slug}/v{from}.md"),
                &format!("b/{slug}/v{to}.md"),
            ),
        });
        self.cache.insert((slug.clone(), from.get(), to.get()), computed.clone());
        Ok(Some(computed))
    }
}

/// One document of an agreement that a subject is asked about.
#[derive(Debug)]
pub struct PendingChange {
    pub slug: Slug,
    pub title: String,
    /// The version the subject accepted last, if any.
    pub accepted: Option<VersionNumber>,
    /// The version the subject is asked to accept.
    pub to: VersionNumber,
    /// What changed since `accepted`; `None` when the subject never accepted (show the whole text).
    pub diff: Option<Arc<DocumentDiff>>,
}

/// What changed in `agreement` and each of its parts since the versions in `accepted`, up to the
/// version an acceptance at `now` would cover: the agreement's current version (or its first,
/// when none is in effect yet) and each part's newest published version (contract §2).
/// Documents whose accepted version is already that version (or a newer one) are left out.
pub fn changes_since(
    conn: &mut DbConnection,
    cache: &DiffCache,
    catalog: &Catalog,
    agreement: &Slug,
    accepted: &HashMap<Slug, VersionNumber>,
    now: DateTime<Utc>,
) -> Result<Vec<PendingChange>, DbError> {
    let Some(root) = catalog.document(agreement) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, doc) in std::iter::once(root).chain(catalog.parts_of(agreement)).enumerate() {
        let target = if i == 0 { doc.shown(now) } else { doc.latest() };
        let Some(target) = target else { continue };
        let from = accepted.get(&doc.slug).copied();
        // Accepted already, or a newer version accepted early (an upcoming one): nothing to show,
        // and never a change backwards.
        if from.is_some_and(|f| f >= target.number) {
            continue;
        }
        let diff = match from {
            Some(f) => cache.diff(conn, &doc.slug, f, target.number)?,
            None => None,
        };
        out.push(PendingChange {
            slug: doc.slug.clone(),
            title: target.title.clone(),
            accepted: from,
            to: target.number,
            diff,
        });
    }
    Ok(out)
}

/// An agreement a subject owes an answer on (contract §2), with what changed since its
/// acceptance: what the consent page shows.
pub struct Owed {
    /// For an acceptance that expired (`reaccept_after`): when it was made, and how long one
    /// counts.
    pub expired: Option<(DateTime<Utc>, chrono::TimeDelta)>,
    pub status: crate::domain::rules::DocumentStatus,
    /// The version an answer now decides on: the agreement's current version.
    pub version: crate::domain::VersionInfo,
    pub upcoming: Option<crate::domain::VersionInfo>,
    /// The agreement and each part that changed since the subject accepted them.
    pub changes: Vec<OwedChange>,
}

pub struct OwedChange {
    pub change: PendingChange,
    /// The version asked about.
    pub version: crate::domain::VersionInfo,
    /// The versions after the accepted one up to the one asked about, oldest first (none when
    /// the subject never accepted the document: it is shown whole, not as a change).
    pub since_accepted: Vec<crate::domain::VersionInfo>,
    /// The whole text, when the subject never accepted the document.
    pub full_text: Option<crate::render::SafeHtml>,
}

/// What the subject whose key is `subject_key` owes at `now`, by the same rules as its status.
pub fn owed(
    conn: &mut DbConnection,
    cache: &DiffCache,
    catalog: &Catalog,
    subject_key: &str,
    audience: Option<&crate::domain::Audience>,
    now: DateTime<Utc>,
) -> Result<Vec<Owed>, DbError> {
    use crate::domain::rules::{self, Decision, State};
    let decisions = crate::ledger::decisions(conn, subject_key)?;
    let mut out = Vec::new();
    for status in rules::status(catalog, &decisions, audience, now).into_iter().filter(|s| !s.satisfied()) {
        let Some(doc) = catalog.document(&status.slug) else { continue };
        let Some(current) = doc.current(now) else { continue };
        let accepted: HashMap<Slug, VersionNumber> = match decisions.get(&doc.slug) {
            Some(Decision::Accepted { covers, .. }) => covers.iter().map(|c| (c.document.clone(), c.version)).collect(),
            _ => HashMap::new(),
        };
        let mut changes = Vec::new();
        for change in changes_since(conn, cache, catalog, &doc.slug, &accepted, now)? {
            let Some(changed) = catalog.document(&change.slug) else { continue };
            let Some(version) = changed.version(change.to).cloned() else { continue };
            let since_accepted = changed
                .versions
                .iter()
                .filter(|v| v.number <= change.to && change.accepted.is_some_and(|a| v.number > a))
                .cloned()
                .collect();
            let full_text = match change.diff {
                Some(_) => None,
                None => crate::db::versions::version_text(conn, &change.slug, change.to, None)?.map(|t| t.html),
            };
            changes.push(OwedChange { change, version, since_accepted, full_text });
        }
        let expired = match (status.state, decisions.get(&doc.slug), rules::reaccept_after(catalog, doc, now)) {
            (State::Expired, Some(Decision::Accepted { at, .. }), Some(period)) => Some((*at, period)),
            _ => None,
        };
        out.push(Owed { version: current.clone(), upcoming: doc.upcoming(now).cloned(), changes, status, expired });
    }
    Ok(out)
}
