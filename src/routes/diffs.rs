//! What changed between two versions: the redline page and its JSON/unified-diff twin.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::lookup::{self, LookupError};
use super::openapi::DocumentErrors;
use super::params::SlugPath;
use super::{ApiError, AppState, PageError};
use crate::changes::DocumentDiff;
use crate::domain::{DocumentInfo, Slug, VersionInfo};
use crate::render::diff::{Change, Segment};
use crate::views::{Item, SectionLink, human_time, layout};

#[derive(Deserialize)]
pub struct DiffQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub view: Option<String>,
}

/// The two versions asked for. Without `to`, the current version; without `from`, the one
/// before `to`.
fn pick<'a>(doc: &'a DocumentInfo, q: &DiffQuery) -> Result<(&'a VersionInfo, &'a VersionInfo), LookupError> {
    let to = match q.to.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => lookup::version(doc, raw)?,
        None => doc
            .shown(Utc::now())
            .ok_or_else(|| LookupError::NoVersion(format!("`{}` has no published version", doc.slug)))?,
    };
    let from = match q.from.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => lookup::version(doc, raw)?,
        None => doc.versions.iter().rev().find(|v| v.number < to.number).unwrap_or(to),
    };
    Ok((from, to))
}

async fn compute(
    state: &AppState,
    slug: &Slug,
    from: &VersionInfo,
    to: &VersionInfo,
) -> Result<Arc<DocumentDiff>, crate::db::DbError> {
    if let Some(hit) = state.diffs.get(slug, from.number, to.number) {
        return Ok(hit);
    }
    let (cache, slug, a, b) = (state.diffs.clone(), slug.clone(), from.number, to.number);
    let found = state.db.run(move |conn| cache.diff(conn, &slug, a, b)).await?;
    found.ok_or_else(|| crate::db::DbError::Corrupt("a listed version has no stored text".into()))
}

pub struct Side {
    pub number: u32,
    pub title: String,
    pub effective: String,
    pub material: bool,
    pub summary: Option<String>,
}

impl From<&VersionInfo> for Side {
    fn from(v: &VersionInfo) -> Self {
        Self {
            number: v.number.get(),
            title: v.title.clone(),
            effective: human_time(v.effective),
            material: v.material,
            summary: v.summary.clone(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "diff.html")]
pub struct DiffPage {
    pub slug: String,
    pub title: String,
    pub split: bool,
    pub from: Side,
    pub to: Side,
    pub between: Vec<Side>,
    pub insertions: usize,
    pub deletions: usize,
    pub sections: Vec<SectionLink>,
    pub items: Vec<Item>,
    pub numbers: Vec<u32>,
    pub identical: bool,
    pub same_version: bool,
}

/// `GET /policies/{slug}/diff?from=A&to=B&view=inline|split`
pub async fn show_diff(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<DiffQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let split = match query.view.as_deref() {
        None | Some("" | "inline") => false,
        Some("split") => true,
        Some(other) => return Err(PageError::bad_request(format!("`{other}` is not a view: use `inline` or `split`"))),
    };
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let (from, to) = pick(doc, &query)?;
    let key = format!("diff|{}|{}|{}|{}", doc.slug, from.number, to.number, if split { "split" } else { "inline" });
    let page = state
        .pages
        .get_or_draw(key, &catalog, || async {
            let diff = compute(&state, &doc.slug, from, to).await?;
            let (items, sections) = layout(&diff.changes.blocks);
            let (low, high) =
                if from.number <= to.number { (from.number, to.number) } else { (to.number, from.number) };
            let html = DiffPage {
                slug: doc.slug.to_string(),
                title: to.title.clone(),
                split,
                between: doc.versions.iter().filter(|v| v.number > low && v.number < high).map(Side::from).collect(),
                from: Side::from(from),
                to: Side::from(to),
                insertions: diff.changes.insertions,
                deletions: diff.changes.deletions,
                identical: diff.changes.is_empty(),
                same_version: from.number == to.number,
                sections,
                items,
                numbers: doc.versions.iter().map(|v| v.number.get()).collect(),
            }
            .render()?;
            // Any pair may be asked for: quicker Brotli than for a version's page.
            super::prebuilt::Prebuilt::draw(html, super::prebuilt::CHANGING, super::prebuilt::Effort::Quick).await
        })
        .await?;
    Ok(page.respond(&req))
}

/// A changed block in the API's shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HunkJson<'a> {
    pub kind: Change,
    pub section: Option<&'a str>,
    pub old_markdown: Option<&'a str>,
    pub new_markdown: Option<&'a str>,
    pub segments: &'a [Segment],
    pub insertions: usize,
    pub deletions: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DiffJson<'a> {
    #[schema(value_type = String)]
    pub document: &'a Slug,
    pub from: u32,
    pub to: u32,
    pub insertions: usize,
    pub deletions: usize,
    pub hunks: Vec<HunkJson<'a>>,
    pub unified: &'a str,
}

/// What changed between two versions (`Accept: text/x-diff` for the unified diff).
///
/// `GET /api/v1/documents/{slug}/diff?from=A&to=B`
#[utoipa::path(get, path = "/api/v1/documents/{slug}/diff", tag = "documents",
    params(SlugPath, ("from" = Option<String>, Query, description = "The older version (default: the one before `to`)", pattern = "^([1-9][0-9]{0,8})?$"),
        ("to" = Option<String>, Query, description = "The newer version (default: the current one)", pattern = "^([1-9][0-9]{0,8})?$")),
    responses((status = 200, description = "What changed; with `Accept: text/x-diff`, the unified diff as text", 
        content((DiffJson = "application/json"), (String = "text/x-diff"))), DocumentErrors))]
pub async fn api_diff(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<DiffQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let (from, to) = pick(doc, &query)?;
    let diff = compute(&state, &doc.slug, from, to).await?;
    let wants_patch = req.headers().get("accept").and_then(|h| h.to_str().ok()).is_some_and(|a| {
        a.split(',').any(|t| t.trim().starts_with("text/x-diff") || t.trim().starts_with("text/x-patch"))
    });
    if wants_patch {
        return Ok(HttpResponse::Ok().content_type("text/x-diff; charset=utf-8").body(diff.unified.clone()));
    }
    let hunks = diff
        .changes
        .blocks
        .iter()
        .filter(|b| b.change != Change::Unchanged)
        .map(|b| HunkJson {
            kind: b.change,
            section: b.section.as_deref(),
            old_markdown: b.old_markdown.as_deref(),
            new_markdown: b.new_markdown.as_deref(),
            segments: &b.segments,
            insertions: b.insertions,
            deletions: b.deletions,
        })
        .collect();
    Ok(HttpResponse::Ok().json(DiffJson {
        document: &doc.slug,
        from: from.number.get(),
        to: to.number.get(),
        insertions: diff.changes.insertions,
        deletions: diff.changes.deletions,
        hunks,
        unified: &diff.unified,
    }))
}
