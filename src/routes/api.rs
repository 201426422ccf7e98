//! The public document endpoints of the JSON API (`/api/v1/documents…`).

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::errors::ErrorBody;
use super::openapi::DocumentErrors;
use super::params::{SlugPath, SlugVersionPath};
use super::{ApiError, AppState, lookup};
use crate::db::versions::version_text;
use crate::domain::{Locale, Slug, VersionInfo};
use crate::views::rfc3339;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentJson {
    #[schema(value_type = String)]
    pub slug: Slug,
    pub title: String,
    pub current_version: Option<u32>,
    pub upcoming_version: Option<u32>,
    /// `required` or `informational`.
    pub acceptance: &'static str,
    #[schema(value_type = Option<String>)]
    pub part_of: Option<Slug>,
}

/// Every document, with its current and upcoming version.
///
/// `GET /api/v1/documents`
#[utoipa::path(get, path = "/api/v1/documents", tag = "documents",
    responses((status = 200, description = "Every published document", body = [DocumentJson]), (status = 503, description = "The database is not answering", body = ErrorBody)))]
pub async fn list_documents(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.get(&state.db).await?;
    let now = Utc::now();
    let body: Vec<DocumentJson> = catalog
        .documents
        .iter()
        .map(|d| DocumentJson {
            slug: d.slug.clone(),
            title: d.title(now).to_owned(),
            current_version: d.current(now).map(|v| v.number.get()),
            upcoming_version: d.upcoming(now).map(|v| v.number.get()),
            acceptance: d.acceptance().as_str(),
            part_of: d.part_of().cloned(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionJson {
    pub version: u32,
    pub title: String,
    pub effective: String,
    pub material: bool,
    pub summary: Option<String>,
    pub sha256: String,
    #[schema(value_type = Vec<String>)]
    pub locales: Vec<Locale>,
}

impl From<&VersionInfo> for VersionJson {
    fn from(v: &VersionInfo) -> Self {
        Self {
            version: v.number.get(),
            title: v.title.clone(),
            effective: rfc3339(v.effective),
            material: v.material,
            summary: v.summary.clone(),
            sha256: v.sha256.clone(),
            locales: v.locales.clone(),
        }
    }
}

/// Every version of a document, oldest first.
///
/// `GET /api/v1/documents/{slug}/versions`
#[utoipa::path(get, path = "/api/v1/documents/{slug}/versions", tag = "documents", params(SlugPath),
    responses((status = 200, description = "Every version, oldest first", body = [VersionJson]), DocumentErrors))]
pub async fn list_versions(state: web::Data<AppState>, slug: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let body: Vec<VersionJson> = doc.versions.iter().map(VersionJson::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
pub struct LocaleQuery {
    pub locale: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionTextJson {
    #[serde(flatten)]
    pub meta: VersionJson,
    /// The locale of this text; absent for the original.
    #[schema(value_type = Option<String>)]
    pub locale: Option<Locale>,
    /// The Markdown body (after the front matter).
    pub markdown: String,
    /// The rendered, sanitised HTML of the body.
    pub html: String,
    /// The exact file, front matter included: its SHA-256 is `sha256`.
    pub source_sha256: String,
}

/// One version: its Markdown and sanitised HTML, or a translation's.
///
/// `GET /api/v1/documents/{slug}/versions/{n}?locale=`
#[utoipa::path(get, path = "/api/v1/documents/{slug}/versions/{version}", tag = "documents",
    params(SlugVersionPath, ("locale" = Option<String>, Query, description = "A translation's BCP 47 tag (empty, or the original's: the original)", max_length = 35, pattern = "^([A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)?$")),
    responses((status = 200, description = "The version, its Markdown and sanitised HTML", body = VersionTextJson), DocumentErrors))]
pub async fn show_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<LocaleQuery>,
) -> Result<HttpResponse, ApiError> {
    let (slug, number) = path.into_inner();
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    let version = lookup::version(doc, &number)?;
    let locale = match query.locale.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(raw) if raw.eq_ignore_ascii_case(&state.settings.original_locale) => None,
        Some(raw) => {
            let wanted = Locale::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let found = version.locales.iter().find(|l| l.as_str().eq_ignore_ascii_case(wanted.as_str())).cloned();
            Some(found.ok_or_else(|| {
                let have: Vec<&str> = version.locales.iter().map(Locale::as_str).collect();
                ApiError::not_found(format!(
                    "version {} of `{}` has no `{raw}` translation; available: {}",
                    version.number,
                    doc.slug,
                    if have.is_empty() { "none".to_owned() } else { have.join(", ") }
                ))
            })?)
        }
    };
    let (s, n, l) = (doc.slug.clone(), version.number, locale.clone());
    let text = state
        .db
        .run(move |c| version_text(c, &s, n, l.as_ref()))
        .await?
        .ok_or_else(|| ApiError::not_found("this version's text is missing"))?;
    let mut meta = VersionJson::from(version);
    meta.title = text.title;
    meta.summary = text.summary;
    Ok(HttpResponse::Ok().json(VersionTextJson {
        meta,
        locale,
        markdown: text.body,
        html: text.html.into_string(),
        source_sha256: text.sha256,
    }))
}
