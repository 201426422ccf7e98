//! Publishing a validated policy folder: new versions are rendered and stored in one
//! transaction; a published version whose bytes changed stops the whole sync.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::Connection;

use super::{PolicySet, Problem};
use crate::db::versions::{FileKey, NewVersion, ensure_document, insert_version, published_hashes};
use crate::db::{DbConnection, DbError};
use crate::render;

/// What a sync published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// One line per published file, such as `privacy-policy v2 (zh)`.
    pub published: Vec<String>,
    /// Files already published with the same bytes.
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The folder may not be published as it is; nothing was changed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Problem>),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// Publishes every new version of `set`, all or nothing.
pub fn sync(conn: &mut DbConnection, set: &PolicySet, now: DateTime<Utc>) -> Result<SyncReport, SyncError> {
    conn.transaction(|conn| {
        let stored = published_hashes(conn)?;
        let mut report = SyncReport::default();
        let mut problems = Vec::new();
        let mut seen: HashSet<FileKey> = HashSet::new();
        for doc in &set.documents {
            for version in doc.publishable() {
                let files = std::iter::once((None, &version.file, version.front.title.as_str(), version.front.summary.as_deref()))
                    .chain(version.translations.iter().map(|t| {
                        (Some(&t.locale), &t.file, t.front.title.as_str(), t.front.summary.as_deref())
                    }));
                for (locale, file, title, summary) in files {
                    let key = FileKey {
                        slug: doc.slug.to_string(),
                        version: i32::try_from(file.number.get()).unwrap_or(i32::MAX),
                        locale: locale.map(|l| l.to_string()).unwrap_or_default(),
                    };
                    match stored.get(&key) {
                        Some(sha) if *sha == file.sha256 => report.unchanged += 1,
                        Some(sha) => problems.push(Problem::new(&file.path, None, format!(
                            "this version is published and its bytes changed (published sha256 {}, file sha256 {}): published versions never change; restore the file and publish the correction as a new version, with `material: false` if it is editorial",
                            short(sha),
                            short(&file.sha256)
                        ))),
                        None => {
                            let rendered = render::render(&file.body);
                            let document_id = ensure_document(conn, &doc.slug, now)?;
                            let version_id = insert_version(conn, document_id, &NewVersion {
                                number: file.number,
                                locale,
                                title,
                                effective: version.front.effective,
                                material: version.front.material,
                                summary,
                                part_of: version.front.part_of.as_ref(),
                                acceptance: version.front.acceptance.as_str(),
                                audiences: &version.front.audiences,
                                reaccept_after: version.front.reaccept_after,
                                sha256: &file.sha256,
                                source: &file.source,
                                body: &file.body,
                                html: &rendered.html,
                                toc: &rendered.toc,
                            }, now)?;
                            // The outbox: announced to the endpoints subscribed to `published`, in
                            // this transaction.
                            crate::db::webhooks::enqueue_version(conn, version_id, crate::db::to_stored_time(now))?;
                            report.published.push(match locale {
                                Some(l) => format!("{} v{} ({l})", doc.slug, file.number),
                                None => format!("{} v{}", doc.slug, file.number),
                            });
                        }
                    }
                    seen.insert(key);
                }
            }
        }
        for key in stored.keys().filter(|k| !seen.contains(k)) {
            let dir = set.documents.iter().find(|d| d.slug.as_str() == key.slug).map(|d| d.dir.clone());
            let name = if key.locale.is_empty() { format!("v{}.md", key.version) } else { format!("v{}.{}.md", key.version, key.locale) };
            let path = dir.map_or_else(|| std::path::PathBuf::from(&key.slug).join(&name), |d| d.join(&name));
            problems.push(Problem::new(&path, None, "this version is published but its file is missing (or marked draft): published versions stay published; restore the file"));
        }
        if problems.is_empty() {
            crate::log::integrate(conn)?;
            Ok(report)
        } else {
            problems.sort_by(|a, b| a.file.cmp(&b.file));
            Err(SyncError::Refused(problems))
        }
    })
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
