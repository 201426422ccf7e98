//! What changed between two versions: the redline page and its JSON/unified-diff twin.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::lookup::{self, LookupError};
use super::pages::human_time;
use super::{ApiError, AppState, PageError};
use crate::changes::DocumentDiff;
use crate::domain::{DocumentInfo, Slug, VersionInfo};
use crate::render::SafeHtml;
use crate::render::diff::{Change, DiffBlock, Segment};

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

pub struct SectionLink {
    pub text: String,
    pub href: String,
}

/// One thing on the page: a change, a block of context, or a folded unchanged stretch.
pub struct Item {
    /// `change`, `context` or `fold`.
    pub kind: &'static str,
    /// For changes: `changed`, `inserted` or `deleted`.
    pub change: &'static str,
    pub id: String,
    pub count: usize,
    pub html: SafeHtml,
    pub old_html: SafeHtml,
    pub new_html: SafeHtml,
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

/// Blocks shown around each change.
const CONTEXT: usize = 1;

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Unchanged => "unchanged",
        Change::Changed => "changed",
        Change::Inserted => "inserted",
        Change::Deleted => "deleted",
    }
}

/// Lays the blocks out: every change, a little context around it, and the rest folded.
pub fn layout(blocks: &[DiffBlock]) -> (Vec<Item>, Vec<SectionLink>) {
    let changed: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i].change != Change::Unchanged).collect();
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= CONTEXT);
    let mut items = Vec::new();
    let mut sections: Vec<SectionLink> = Vec::new();
    let mut fold: Vec<&DiffBlock> = Vec::new();
    let flush = |fold: &mut Vec<&DiffBlock>, items: &mut Vec<Item>| {
        if fold.is_empty() {
            return;
        }
        let html = SafeHtml::concat(fold.iter().map(|b| &b.html));
        items.push(Item {
            kind: "fold",
            change: "",
            id: String::new(),
            count: fold.len(),
            old_html: SafeHtml::default(),
            new_html: SafeHtml::default(),
            html,
        });
        fold.clear();
    };
    let mut n = 0;
    for (i, b) in blocks.iter().enumerate() {
        if b.change == Change::Unchanged {
            if near(i) {
                flush(&mut fold, &mut items);
                items.push(Item {
                    kind: "context",
                    change: "",
                    id: String::new(),
                    count: 1,
                    html: b.html.clone(),
                    old_html: b.html.clone(),
                    new_html: b.html.clone(),
                });
            } else {
                fold.push(b);
            }
            continue;
        }
        flush(&mut fold, &mut items);
        n += 1;
        let id = format!("change-{n}");
        let section = b.section.clone().unwrap_or_else(|| "Opening text".to_owned());
        if sections.last().is_none_or(|s| s.text != section) {
            sections.push(SectionLink { text: section, href: format!("#{id}") });
        }
        items.push(Item {
            kind: "change",
            change: change_name(b.change),
            id,
            count: 1,
            html: b.html.clone(),
            old_html: b.old_html.clone(),
            new_html: b.new_html.clone(),
        });
    }
    flush(&mut fold, &mut items);
    (items, sections)
}

/// `GET /policies/{slug}/diff?from=A&to=B&view=inline|split`
pub async fn show_diff(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<DiffQuery>,
) -> Result<DiffPage, PageError> {
    let split = match query.view.as_deref() {
        None | Some("" | "inline") => false,
        Some("split") => true,
        Some(other) => return Err(PageError::bad_request(format!("`{other}` is not a view: use `inline` or `split`"))),
    };
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let (from, to) = pick(doc, &query)?;
    let diff = compute(&state, &doc.slug, from, to).await?;
    let (items, sections) = layout(&diff.changes.blocks);
    let (low, high) = if from.number <= to.number { (from.number, to.number) } else { (to.number, from.number) };
    Ok(DiffPage {
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
    })
}

/// A changed block in the API's shape.
#[derive(Serialize)]
pub struct HunkJson<'a> {
    pub kind: Change,
    pub section: Option<&'a str>,
    pub old_markdown: Option<&'a str>,
    pub new_markdown: Option<&'a str>,
    pub segments: &'a [Segment],
    pub insertions: usize,
    pub deletions: usize,
}

#[derive(Serialize)]
pub struct DiffJson<'a> {
    pub document: &'a Slug,
    pub from: u32,
    pub to: u32,
    pub insertions: usize,
    pub deletions: usize,
    pub hunks: Vec<HunkJson<'a>>,
    pub unified: &'a str,
}

/// `GET /api/v1/documents/{slug}/diff?from=A&to=B`; `Accept: text/x-diff` for the unified diff.
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
