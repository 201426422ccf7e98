//! The public HTML pages: the index, a policy (current or any version), and its version list.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::prebuilt::{CHANGING, Effort, IMMUTABLE, Prebuilt};
use super::{AppState, PageError, lookup};
use crate::db::versions::version_text;
use crate::domain::{Catalog, DocumentInfo, Locale, VersionInfo, negotiate_locale};
use crate::render::{SafeHtml, TocEntry};
use crate::views::human_time;

fn language_name(tag: &str) -> String {
    let name = match tag.to_ascii_lowercase().as_str() {
        "en" => "English",
        "zh" | "zh-cn" | "zh-hans" => "中文",
        "de" => "Deutsch",
        "fr" => "Français",
        "es" => "Español",
        "pt" => "Português",
        "pt-br" => "Português (Brasil)",
        "ja" => "日本語",
        "it" => "Italiano",
        "nl" => "Nederlands",
        _ => return tag.to_owned(),
    };
    name.to_owned()
}

pub struct Related {
    pub slug: String,
    pub title: String,
}

pub struct IndexEntry {
    pub slug: String,
    pub title: String,
    pub version: Option<u32>,
    pub effective: Option<String>,
    pub upcoming: Option<(u32, String)>,
    pub informational: bool,
    pub part_of: Option<Related>,
    pub versions: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub documents: Vec<IndexEntry>,
}

fn related(catalog: &Catalog, doc: &DocumentInfo, now: DateTime<Utc>) -> Option<Related> {
    let parent = catalog.document(doc.part_of()?)?;
    Some(Related { slug: parent.slug.to_string(), title: parent.title(now).to_owned() })
}

/// `GET /`: every published document with its current and upcoming versions.
pub async fn index(state: web::Data<AppState>) -> Result<IndexPage, PageError> {
    let catalog = state.catalog.get(&state.db).await?;
    let now = Utc::now();
    let mut documents: Vec<IndexEntry> = catalog
        .documents
        .iter()
        .map(|doc| IndexEntry {
            slug: doc.slug.to_string(),
            title: doc.title(now).to_owned(),
            version: doc.current(now).map(|v| v.number.get()),
            effective: doc.current(now).map(|v| human_time(v.effective)),
            upcoming: doc.upcoming(now).map(|v| (v.number.get(), human_time(v.effective))),
            informational: doc.acceptance() == crate::domain::Acceptance::Informational,
            part_of: related(&catalog, doc, now),
            versions: doc.versions.len(),
        })
        .collect();
    // Agreements first, each followed by its parts.
    documents.sort_by(|a, b| {
        let key = |e: &IndexEntry| {
            (e.part_of.as_ref().map_or(e.title.clone(), |p| p.title.clone()), e.part_of.is_some(), e.title.clone())
        };
        key(a).cmp(&key(b))
    });
    Ok(IndexPage { documents })
}

pub struct Notice {
    pub kind: &'static str,
    pub text: String,
    pub href: String,
    pub link: String,
}

pub struct LanguageLink {
    pub label: String,
    pub tag: String,
    pub href: String,
    pub active: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "document.html")]
pub struct DocumentPage {
    pub lang: String,
    pub slug: String,
    pub title: String,
    pub number: u32,
    pub latest: u32,
    pub effective: String,
    pub effective_iso: String,
    pub material: bool,
    pub summary: Option<String>,
    pub sha256: String,
    pub toc: Vec<TocEntry>,
    pub body: SafeHtml,
    pub notices: Vec<Notice>,
    pub languages: Vec<LanguageLink>,
    pub part_of: Option<Related>,
    pub parts: Vec<Related>,
    pub informational: bool,
    /// A superseded version's page, which nothing can change any more: it names no other
    /// version by number and counts none.
    pub archived: bool,
}

#[derive(Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
}

/// `GET /policies/{slug}`: the version in effect now.
pub async fn show_current(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<LangQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let Some(version) = doc.shown(Utc::now()) else {
        return Err(PageError::not_found(format!("`{}` has no published version yet", doc.slug)));
    };
    prebuilt_page(&state, &catalog, doc, version, Shown::Current, query.lang.as_deref(), &req).await
}

/// `GET /policies/{slug}/versions/{n}`: one version, with a banner when it is not current.
pub async fn show_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<LangQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (slug, number) = path.into_inner();
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let version = lookup::version(doc, &number)?;
    prebuilt_page(&state, &catalog, doc, version, Shown::Version, query.lang.as_deref(), &req).await
}

/// Which page shows a version: the current page, or the version's own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Current,
    Version,
}

/// A version's page from the pre-built pages, drawn first if it is not there yet.
async fn prebuilt_page(
    state: &AppState,
    catalog: &Arc<Catalog>,
    doc: &DocumentInfo,
    version: &VersionInfo,
    shown: Shown,
    lang: Option<&str>,
    req: &HttpRequest,
) -> Result<HttpResponse, PageError> {
    let now = Utc::now();
    let accept = req.headers().get("accept-language").and_then(|h| h.to_str().ok());
    let locale = negotiate_locale(&version.locales, lang, accept, &state.settings.original_locale);
    // Superseded: a later version is in effect. Its page says nothing that can change.
    let archived = shown == Shown::Version && doc.current(now).is_some_and(|c| c.number > version.number);
    // Everything the page says that time can change: which versions of this document, and
    // of the documents it names (its agreement, its parts: their titles), are in effect.
    let number = |v: Option<&VersionInfo>| v.map_or(0, |v| v.number.get());
    let mut key = format!(
        "{}|{}|{}|{}|{}|{}",
        if shown == Shown::Current { "current" } else { "version" },
        doc.slug,
        version.number,
        locale.as_ref().map_or("", Locale::as_str),
        number(doc.current(now)),
        number(doc.upcoming(now)),
    );
    let named = doc.part_of().and_then(|p| catalog.document(p)).into_iter().chain(catalog.parts_of(&doc.slug));
    for other in named {
        key.push_str(&format!("|{}:{}", other.slug, number(other.current(now))));
    }
    let page = state
        .pages
        .get_or_draw(key, catalog, || async {
            let html = document_page(state, catalog, doc, version, locale, archived).await?.render()?;
            Prebuilt::draw(html, if archived { IMMUTABLE } else { CHANGING }, Effort::Best).await
        })
        .await?;
    Ok(page.respond(req))
}

async fn document_page(
    state: &AppState,
    catalog: &Catalog,
    doc: &DocumentInfo,
    version: &VersionInfo,
    locale: Option<Locale>,
    archived: bool,
) -> Result<DocumentPage, PageError> {
    let now = Utc::now();
    let original = state.settings.original_locale.clone();
    let (slug, number, wanted) = (doc.slug.clone(), version.number, locale.clone());
    let text = state
        .db
        .run(move |c| version_text(c, &slug, number, wanted.as_ref()))
        .await?
        .ok_or_else(|| PageError::not_found("this version's text is missing"))?;
    let mut languages = Vec::new();
    // A superseded page names nothing that may still change: not the languages (a translation
    // may yet be added), not other documents (their titles may change); the current page does.
    if !version.locales.is_empty() && !archived {
        languages.push(LanguageLink {
            label: language_name(&original),
            tag: original.clone(),
            href: format!("?lang={original}"),
            active: locale.is_none(),
        });
        for l in &version.locales {
            languages.push(LanguageLink {
                label: language_name(l.as_str()),
                tag: l.to_string(),
                href: format!("?lang={l}"),
                active: locale.as_ref() == Some(l),
            });
        }
    }
    Ok(DocumentPage {
        lang: locale.as_ref().map_or(original, Locale::to_string),
        slug: doc.slug.to_string(),
        title: text.title,
        number: version.number.get(),
        latest: doc.latest().map_or(0, |v| v.number.get()),
        effective: human_time(version.effective),
        effective_iso: version.effective.to_rfc3339(),
        material: version.material,
        summary: text.summary,
        sha256: version.sha256.clone(),
        toc: text.toc.into_iter().filter(|t| t.level <= 3).collect(),
        body: text.html,
        notices: if archived { vec![archived_notice(doc, version)] } else { notices(doc, version, now) },
        languages,
        part_of: if archived { None } else { related(catalog, doc, now) },
        parts: if archived {
            Vec::new()
        } else {
            catalog
                .parts_of(&doc.slug)
                .map(|p| Related { slug: p.slug.to_string(), title: p.title(now).to_owned() })
                .collect()
        },
        informational: doc.acceptance() == crate::domain::Acceptance::Informational,
        archived,
    })
}

/// The banner of a superseded version: only what its successor's publication fixed for good.
fn archived_notice(doc: &DocumentInfo, version: &VersionInfo) -> Notice {
    let until = doc
        .versions
        .iter()
        .find(|v| v.number > version.number)
        .map_or_else(String::new, |next| format!(" until {}", human_time(next.effective)));
    Notice {
        kind: "superseded",
        text: format!(
            "This is an earlier version, in effect from {}{}. A newer version is in effect.",
            human_time(version.effective),
            until
        ),
        href: format!("/policies/{}", doc.slug),
        link: "Read the current version".into(),
    }
}

/// Banners that say where a version that is not superseded stands: upcoming, or about to be
/// replaced (a superseded one has [`archived_notice`]).
fn notices(doc: &DocumentInfo, version: &VersionInfo, now: DateTime<Utc>) -> Vec<Notice> {
    let mut out = Vec::new();
    let current = doc.current(now);
    let link_to = |v: &VersionInfo| format!("/policies/{}/versions/{}", doc.slug, v.number);
    if version.effective > now {
        let text = match current {
            Some(c) => format!(
                "This version takes effect on {}. Until then, version {} (in effect since {}) applies.",
                human_time(version.effective),
                c.number,
                human_time(c.effective)
            ),
            None => format!("This version takes effect on {}.", human_time(version.effective)),
        };
        out.push(Notice {
            kind: "upcoming",
            text,
            href: current.map_or_else(String::new, link_to),
            link: current.map_or_else(String::new, |c| format!("Read version {}", c.number)),
        });
    }
    if let Some(u) = doc.upcoming(now).filter(|u| u.number != version.number) {
        out.push(Notice {
            kind: "next",
            text: format!("Version {} takes effect on {}.", u.number, human_time(u.effective)),
            href: link_to(u),
            link: format!("Read version {}", u.number),
        });
    }
    out
}

pub struct VersionRow {
    pub number: u32,
    pub title: String,
    pub effective: String,
    pub effective_iso: String,
    pub material: bool,
    pub summary: Option<String>,
    pub status: &'static str,
    pub languages: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "versions.html")]
pub struct VersionsPage {
    pub slug: String,
    pub title: String,
    pub rows: Vec<VersionRow>,
}

/// `GET /policies/{slug}/versions`: every version, newest first.
pub async fn list_versions(state: web::Data<AppState>, slug: web::Path<String>) -> Result<VersionsPage, PageError> {
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let now = Utc::now();
    let current = doc.current(now).map(|v| v.number);
    let rows = doc
        .versions
        .iter()
        .rev()
        .map(|v| VersionRow {
            number: v.number.get(),
            title: v.title.clone(),
            effective: human_time(v.effective),
            effective_iso: v.effective.to_rfc3339(),
            material: v.material,
            summary: v.summary.clone(),
            status: if v.effective > now {
                "upcoming"
            } else if Some(v.number) == current {
                "current"
            } else {
                "superseded"
            },
            languages: v.locales.iter().map(|l| language_name(l.as_str())).collect::<Vec<_>>().join(", "),
        })
        .collect();
    Ok(VersionsPage { slug: doc.slug.to_string(), title: doc.title(now).to_owned(), rows })
}
