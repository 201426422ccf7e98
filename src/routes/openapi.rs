//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every `/api/v1` route, generated from
//! the handlers' annotations and the types they serialise (contract §10).

use actix_web::{HttpResponse, web};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::errors::ErrorBody;
use super::{ApiError, AppState};
use super::{api, audit, consent, diffs, keys, log, subjects, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Assent",
        description = "Versioned policies, what changed between versions, and a verifiable record of which version each subject accepted. Errors are `{\"error\": {\"code\", \"message\"}}` with a 4xx status; a 5xx is a fault of Assent's own. Times are RFC 3339 UTC."
    ),
    paths(
        api::list_documents,
        api::list_versions,
        api::show_version,
        diffs::api_diff,
        audit::list,
        audit::stats,
        audit::coverage,
        audit::export_events,
        subjects::status,
        subjects::accept,
        subjects::decline,
        subjects::withdraw,
        subjects::events,
        subjects::erase,
        subjects::erasure_requests,
        consent::create_link,
        log::key,
        log::checkpoint,
        log::inclusion,
        log::consistency,
        log::leaves,
        keys::revoke,
        webhooks::register,
        webhooks::list,
        webhooks::remove,
        webhooks::deliveries,
        webhooks::retry,
        document,
    ),
    tags(
        (name = "documents", description = "Published policies, their versions and what changed between them. Public: no key."),
        (name = "subjects", description = "Whether a subject is up to date, recording what it decided, consent links and erasure."),
        (name = "audit", description = "Events, coverage, per-version figures and exports, for legal and privacy staff."),
        (name = "log", description = "The Merkle log of every event and version: signed checkpoints and the proofs that check them."),
        (name = "keys", description = "Revoking API keys through any server (admin); `assent keys` creates and lists them."),
        (name = "webhooks", description = "Endpoints told of events and publications as they commit (admin)."),
        (name = "meta", description = "This document."),
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The `bearer` scheme: `Authorization: Bearer KEY` (`assent keys create`).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `read` for GET, `write` for POST, `admin` for both and more"))
                    .build(),
            ),
        );
    }
}

/// This document, with what only this server knows filled in (its audiences, its allowed return origins).
///
/// `GET /api/v1/openapi.json`
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let doc = this_server(&state).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(doc.to_string()))
}

/// The document as `state`'s server serves it (see [`served`]).
pub async fn this_server(state: &AppState) -> Result<Value, ApiError> {
    let catalog = state.catalog.get(&state.db).await?;
    let audiences: Vec<String> = catalog.audiences().iter().map(|a| a.as_str().to_owned()).collect();
    served(&audiences, state.settings.return_origins.origins())
        .map_err(|e| ApiError::from(crate::db::DbError::Task(format!("the OpenAPI document: {e}"))))
}

/// The document as this server serves it: every parameter or field named `audience` takes one of
/// `audiences`, and a consent link's `return_to` must start with one of `origins`.
pub fn served(audiences: &[String], origins: &[String]) -> Result<Value, serde_json::Error> {
    let mut doc = generated()?;
    // Empty means none, as from a form.
    let names: Vec<Value> =
        audiences.iter().map(|a| Value::String(a.clone())).chain([Value::String(String::new())]).collect();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut()) {
            let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { continue };
            for p in parameters.iter_mut().filter(|p| p["name"] == "audience") {
                p["schema"]["enum"] = Value::Array(names.clone());
            }
        }
    }
    if let Some(link) = doc.pointer_mut("/components/schemas/LinkBody/properties") {
        let mut nullable = names.clone();
        nullable.push(Value::Null);
        link["audience"]["enum"] = Value::Array(nullable);
        if !origins.is_empty() {
            let escaped: Vec<String> = origins.iter().map(|o| regex_escape(o)).collect();
            link["return_to"]["pattern"] = Value::String(format!("^(?:{})(?:[/?#][!-~]*)?$", escaped.join("|")));
        }
    }
    Ok(doc)
}

/// The document as the annotations make it: built once (it is the same until the binary changes).
fn generated() -> Result<Value, serde_json::Error> {
    static GENERATED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    if let Some(doc) = GENERATED.get() {
        return Ok(doc.clone());
    }
    let doc = serde_json::to_value(ApiDoc::openapi())?;
    Ok(GENERATED.get_or_init(|| doc).clone())
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The methods the document declares for the route that `path` (a request path) matches, in
/// `Allow` form (GET brings HEAD); `None` when no route matches. Read from the generated document,
/// so it follows the route table.
pub fn allowed_methods(path: &str) -> Option<String> {
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<String>)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let paths = doc.get("paths").and_then(|p| p.as_object()).cloned().unwrap_or_default();
        paths
            .into_iter()
            .map(|(template, item)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                (segments, methods)
            })
            .collect()
    });
    let asked: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|(segments, _)| {
            segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(t, a)| (t.starts_with('{') && !a.is_empty()) || t == a)
        })
        .map(|(_, methods)| methods.join(", "))
}

// The error answers routes share, for the document only (no handler builds these: errors are
// `ApiError`, which answers with an `ErrorBody`).

/// The errors of a public document route.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum DocumentErrors {
    /// A malformed value
    #[response(status = 400)]
    BadRequest(ErrorBody<'static>),
    /// No such document or version
    #[response(status = 404)]
    NotFound(ErrorBody<'static>),
    /// The database is not answering
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// The errors of a route that needs a key.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum KeyedErrors {
    /// A malformed value
    #[response(status = 400)]
    BadRequest(ErrorBody<'static>),
    /// No valid key
    #[response(status = 401)]
    Unauthorized(ErrorBody<'static>),
    /// The key's scope or audience does not allow it
    #[response(status = 403)]
    Forbidden(ErrorBody<'static>),
    /// No such document or version
    #[response(status = 404)]
    NotFound(ErrorBody<'static>),
    /// The database is not answering
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}

/// The errors of a keyed route without parameters to get wrong.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum AccessErrors {
    /// No valid key
    #[response(status = 401)]
    Unauthorized(ErrorBody<'static>),
    /// The key's scope or audience does not allow it
    #[response(status = 403)]
    Forbidden(ErrorBody<'static>),
    /// The database is not answering
    #[response(status = 503)]
    Unavailable(ErrorBody<'static>),
}
