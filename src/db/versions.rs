//! Published documents and versions: written once by `sync`, read by the pages and the API.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{documents, versions};
use super::{DbConnection, DbError, from_stored_time, to_stored_time};
use crate::domain::{Audience, Catalog, DocumentInfo, Locale, Slug, VersionInfo, VersionNumber};
use crate::render::{SafeHtml, TocEntry};

/// A version (or translation) to publish.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub number: VersionNumber,
    pub locale: Option<&'a Locale>,
    pub title: &'a str,
    pub effective: DateTime<Utc>,
    pub material: bool,
    pub summary: Option<&'a str>,
    pub part_of: Option<&'a Slug>,
    pub acceptance: &'a str,
    pub audiences: &'a [Audience],
    pub reaccept_after: Option<chrono::TimeDelta>,
    pub sha256: &'a str,
    pub source: &'a str,
    pub body: &'a str,
    pub html: &'a SafeHtml,
    pub toc: &'a [TocEntry],
}

/// What identifies a published file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub slug: String,
    pub version: i32,
    /// '' for the original.
    pub locale: String,
}

/// The content hash of every published file.
pub fn published_hashes(conn: &mut DbConnection) -> Result<HashMap<FileKey, String>, DbError> {
    let rows: Vec<(String, i32, String, String)> = versions::table
        .inner_join(documents::table)
        .select((documents::slug, versions::version, versions::locale, versions::sha256))
        .load(conn)?;
    Ok(rows.into_iter().map(|(slug, version, locale, sha)| (FileKey { slug, version, locale }, sha)).collect())
}

/// The id of a document, creating it when it is new.
pub fn ensure_document(conn: &mut DbConnection, slug: &Slug, now: DateTime<Utc>) -> Result<i64, DbError> {
    let existing: Option<i64> =
        documents::table.filter(documents::slug.eq(slug.as_str())).select(documents::id).get_result(conn).optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    Ok(diesel::insert_into(documents::table)
        .values((documents::slug.eq(slug.as_str()), documents::created_at.eq(to_stored_time(now))))
        .returning(documents::id)
        .get_result(conn)?)
}

pub fn insert_version(
    conn: &mut DbConnection,
    document_id: i64,
    v: &NewVersion<'_>,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let toc = serde_json::to_string(v.toc).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let number = i32::try_from(v.number.get()).map_err(|_| DbError::Corrupt("version number too large".into()))?;
    let id: i64 = diesel::insert_into(versions::table)
        .values((
            versions::document_id.eq(document_id),
            versions::version.eq(number),
            versions::locale.eq(v.locale.map_or("", Locale::as_str)),
            versions::title.eq(v.title),
            versions::effective.eq(to_stored_time(v.effective)),
            versions::material.eq(v.material),
            versions::summary.eq(v.summary),
            versions::part_of.eq(v.part_of.map(Slug::as_str)),
            versions::acceptance.eq(v.acceptance),
            versions::sha256.eq(v.sha256),
            versions::source.eq(v.source),
            versions::body.eq(v.body),
            versions::html.eq(v.html.as_str()),
            versions::toc.eq(toc),
            versions::published_at.eq(to_stored_time(now)),
            versions::audiences.eq(join_audiences(v.audiences)),
            versions::reaccept_after.eq(v.reaccept_after.map(|d| d.num_seconds())),
        ))
        .returning(versions::id)
        .get_result(conn)?;
    // The log takes in every published version.
    super::log::enqueue(conn, super::log::Source::Version(id))?;
    Ok(id)
}

/// Audiences as stored: comma-separated and sorted; `None` for everyone.
fn join_audiences(audiences: &[Audience]) -> Option<String> {
    (!audiences.is_empty()).then(|| audiences.iter().map(Audience::as_str).collect::<Vec<_>>().join(","))
}

fn split_audiences(stored: Option<&str>) -> Result<Vec<Audience>, crate::domain::InvalidValue> {
    stored.map_or(Ok(Vec::new()), |s| s.split(',').map(Audience::parse).collect())
}

type MetaRow = (
    String,
    i32,
    String,
    String,
    chrono::NaiveDateTime,
    bool,
    Option<String>,
    Option<String>,
    String,
    String,
    chrono::NaiveDateTime,
    Option<String>,
    Option<i64>,
);

/// Every published document with its versions' metadata (no bodies).
pub fn load_catalog(conn: &mut DbConnection) -> Result<Catalog, DbError> {
    let rows: Vec<MetaRow> = versions::table
        .inner_join(documents::table)
        .select((
            documents::slug,
            versions::version,
            versions::locale,
            versions::title,
            versions::effective,
            versions::material,
            versions::summary,
            versions::part_of,
            versions::acceptance,
            versions::sha256,
            versions::published_at,
            versions::audiences,
            versions::reaccept_after,
        ))
        .order((documents::slug.asc(), versions::version.asc(), versions::locale.asc()))
        .load(conn)?;
    let mut catalog = Catalog::default();
    for row in rows {
        let (
            slug,
            number,
            locale,
            title,
            effective,
            material,
            summary,
            part_of,
            acceptance,
            sha256,
            published_at,
            audiences,
            reaccept_after,
        ) = row;
        let corrupt = |what: &str| DbError::Corrupt(format!("{what} of {slug} v{number}"));
        if catalog.documents.last().is_none_or(|d| d.slug.as_str() != slug) {
            let parsed = Slug::parse(&slug).map_err(|_| corrupt("slug"))?;
            catalog.documents.push(DocumentInfo { slug: parsed, versions: Vec::new() });
        }
        let Some(doc) = catalog.documents.last_mut() else {
            continue;
        };
        let number_typed = u32::try_from(number).ok().and_then(VersionNumber::new).ok_or_else(|| corrupt("number"))?;
        if !locale.is_empty() {
            let locale = Locale::parse(&locale).map_err(|_| corrupt("locale"))?;
            if let Some(v) = doc.versions.iter_mut().find(|v| v.number == number_typed) {
                v.locales.push(locale);
            }
            continue;
        }
        doc.versions.push(VersionInfo {
            number: number_typed,
            title,
            effective: from_stored_time(effective),
            material,
            summary,
            part_of: part_of.map(|p| Slug::parse(&p)).transpose().map_err(|_| corrupt("part_of"))?,
            acceptance: acceptance.parse().map_err(|_| corrupt("acceptance"))?,
            audiences: split_audiences(audiences.as_deref()).map_err(|_| corrupt("audiences"))?,
            reaccept_after: reaccept_after
                .map(|s| chrono::TimeDelta::try_seconds(s).filter(|d| *d > chrono::TimeDelta::zero()))
                .map(|d| d.ok_or_else(|| corrupt("reaccept_after")))
                .transpose()?,
            sha256,
            published_at: from_stored_time(published_at),
            locales: Vec::new(),
        });
    }
    Ok(catalog)
}

/// The stored text of one published file.
#[derive(Debug, Clone)]
pub struct VersionText {
    pub title: String,
    pub summary: Option<String>,
    pub sha256: String,
    pub body: String,
    pub html: SafeHtml,
    pub toc: Vec<TocEntry>,
}

/// One version's rendered text, in `locale` ('' for the original).
pub fn version_text(
    conn: &mut DbConnection,
    slug: &Slug,
    number: VersionNumber,
    locale: Option<&Locale>,
) -> Result<Option<VersionText>, DbError> {
    let number = i32::try_from(number.get()).unwrap_or(i32::MAX);
    let row: Option<(String, Option<String>, String, String, String, String)> = versions::table
        .inner_join(documents::table)
        .filter(documents::slug.eq(slug.as_str()))
        .filter(versions::version.eq(number))
        .filter(versions::locale.eq(locale.map_or("", Locale::as_str)))
        .select((versions::title, versions::summary, versions::sha256, versions::body, versions::html, versions::toc))
        .get_result(conn)
        .optional()?;
    row.map(|(title, summary, sha256, body, html, toc)| {
        let toc = serde_json::from_str(&toc)
            .map_err(|e| DbError::Corrupt(format!("table of contents of {slug} v{number}: {e}")))?;
        Ok(VersionText { title, summary, sha256, body, html: SafeHtml::from_stored(html), toc })
    })
    .transpose()
}

/// The exact file and the Markdown body of one original version, for diffs.
pub struct VersionSource {
    pub source: String,
    pub body: String,
}

pub fn version_source(
    conn: &mut DbConnection,
    slug: &Slug,
    number: VersionNumber,
) -> Result<Option<VersionSource>, DbError> {
    let number = i32::try_from(number.get()).unwrap_or(i32::MAX);
    let row: Option<(String, String)> = versions::table
        .inner_join(documents::table)
        .filter(documents::slug.eq(slug.as_str()))
        .filter(versions::version.eq(number))
        .filter(versions::locale.eq(""))
        .select((versions::source, versions::body))
        .get_result(conn)
        .optional()?;
    Ok(row.map(|(source, body)| VersionSource { source, body }))
}
