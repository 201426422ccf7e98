//! HTTP: the route table, and one file per area. Handlers extract, parse into domain types,
//! ask `db`, and hand plain data to a view.

pub mod admin;
pub mod api;
pub mod audit;
mod auth;
pub mod catalog;
pub mod consent;
pub mod diffs;
pub mod errors;
pub mod feed;
pub mod keys;
pub mod log;
mod lookup;
pub mod metrics;
pub mod openapi;
pub mod pages;
mod params;
pub mod prebuilt;
pub mod record;
mod reference;
pub mod subjects;
pub mod webhooks;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::changes::DiffCache;
use crate::config::Settings;
use crate::db::Db;
pub use auth::KeyCache;
pub use errors::{ApiError, PageError};
pub use metrics::Metrics;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub diffs: Arc<DiffCache>,
    pub catalog: catalog::CatalogCache,
    /// The policy pages as they are served, drawn once per state of the catalog.
    pub pages: prebuilt::PageCache,
    /// Turns for exports, [`audit::EXPORTS_AT_ONCE`] of them.
    pub exports: Arc<tokio::sync::Semaphore>,
    pub keys: KeyCache,
    /// When the catalog and keys were last changed, by anyone.
    pub freshness: Arc<crate::freshness::Freshness>,
    /// Failed admin sign-ins, per address and key.
    pub signins: crate::sessions::Throttle,
    pub recorder: crate::ledger::lane::Recorder,
    /// Finds a subject's rows by a keyed hash of its id.
    pub subject_keys: crate::ledger::SubjectKeys,
    /// Signs the log's checkpoints.
    pub log_key: crate::log::note::LogKey,
    /// The key for keyed IP hashes (`ASSENT_IP_MODE=hashed`).
    pub ip_secret: Vec<u8>,
    /// The key that signs consent links.
    pub link_key: Vec<u8>,
}

/// What this request says about where it came from and where it was sent, as received.
fn forwarding(req: &HttpRequest) -> crate::consent::Forwarding<'_> {
    let all = |name: &str| req.headers().get_all(name).filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    crate::consent::Forwarding {
        scheme: if req.app_config().secure() { "https" } else { "http" },
        host: req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str())),
        forwarded: all("forwarded"),
        x_forwarded_for: all("x-forwarded-for"),
        x_forwarded_host: all("x-forwarded-host"),
        x_forwarded_proto: all("x-forwarded-proto"),
    }
}

/// Where this request reached the server, for absolute URLs, the `Origin` check and `Secure`
/// cookies: `ASSENT_PUBLIC_URL` when set; otherwise the `Host` header, or a trusted proxy's
/// forwarded headers (`ASSENT_TRUSTED_PROXIES`, `ASSENT_FORWARDED_HEADERS`). A client's own
/// `X-Forwarded-Host` counts for nothing.
pub fn origin(state: &AppState, req: &HttpRequest) -> crate::consent::Origin {
    if let Some(public) = state.settings.public_url.as_deref().and_then(crate::consent::Origin::of_url) {
        return public;
    }
    state.settings.trusted_proxies.origin(req.peer_addr().map(|a| a.ip()), &forwarding(req), req.app_config().host())
}

/// The client's address: the peer's, or what a trusted proxy says it is.
pub fn client_addr(state: &AppState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    state.settings.trusted_proxies.client(req.peer_addr().map(|a| a.ip()), &forwarding(req))
}

/// The base of this server's absolute URLs (links in the feed, consent links):
/// `ASSENT_PUBLIC_URL` as given, path included, or the request's [`origin`].
pub fn base_url(state: &AppState, req: &HttpRequest) -> String {
    match state.settings.public_url.as_deref() {
        Some(public) => public.trim_end_matches('/').to_owned(),
        None => origin(state, req).url(),
    }
}

/// `Cache-Control` for answers that set none: the public pages may be kept a minute, and vary
/// with the reader's languages; their errors, the JSON API (per key, changing with every
/// decision), the admin, consent and `/me` pages are `no-store`.
pub async fn cache_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{CACHE_CONTROL, HeaderValue, VARY};
    let path = req.path().to_owned();
    let mut resp = next.call(req).await?;
    let status = resp.status();
    let headers = resp.headers_mut();
    if !headers.contains_key(CACHE_CONTROL) {
        let public = path == "/" || path.starts_with("/policies/");
        if public && status.is_success() {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
            headers.append(VARY, HeaderValue::from_static("Accept-Language"));
        } else if public || ["/api/", "/admin", "/me", "/consent"].iter().any(|p| path.starts_with(p)) {
            // Per key, per session or per subject, or an error that must not outlive its cause.
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    Ok(resp)
}

/// Middleware: every GET route also answers HEAD (contract §5). The request is routed as a GET;
/// actix's HTTP encoder then sends the headers of the answer without its body.
pub async fn head_as_get(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// The one route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The API first, its status check first of all: actix tries routes in order, and each
    // pattern with a `{…}` in it costs a regex match (a status check went through ten).
    cfg.service(
        web::scope("/api/v1")
            .route("/subjects/{subject}/status", web::get().to(subjects::status))
            .route("/subjects/{subject}/acceptances", web::post().to(subjects::accept))
            .route("/subjects/{subject}/declines", web::post().to(subjects::decline))
            .route("/subjects/{subject}/withdrawals", web::post().to(subjects::withdraw))
            .route("/subjects/{subject}/events", web::get().to(subjects::events))
            .route("/subjects/{subject}", web::delete().to(subjects::erase))
            .route("/documents", web::get().to(api::list_documents))
            .route("/documents/{slug}/versions", web::get().to(api::list_versions))
            .route("/documents/{slug}/versions/{version}", web::get().to(api::show_version))
            .route("/documents/{slug}/diff", web::get().to(diffs::api_diff))
            .route("/consent-links", web::post().to(consent::create_link))
            .route("/events", web::get().to(audit::list))
            .route("/export", web::get().to(audit::export_events))
            .route("/documents/{slug}/versions/{version}/stats", web::get().to(audit::stats))
            .route("/documents/{slug}/coverage", web::get().to(audit::coverage))
            .route("/erasure-requests", web::get().to(subjects::erasure_requests))
            .route("/log/key", web::get().to(log::key))
            .route("/log/checkpoint", web::get().to(log::checkpoint))
            .route("/log/proof/inclusion", web::get().to(log::inclusion))
            .route("/log/proof/consistency", web::get().to(log::consistency))
            .route("/log/leaves", web::get().to(log::leaves))
            .route("/keys/{name}", web::delete().to(keys::revoke))
            .route("/webhooks", web::post().to(webhooks::register))
            .route("/webhooks", web::get().to(webhooks::list))
            .route("/webhooks/{id}", web::delete().to(webhooks::remove))
            .route("/webhooks/{id}/deliveries", web::get().to(webhooks::deliveries))
            .route("/webhooks/{id}/retry", web::post().to(webhooks::retry))
            .route("/openapi.json", web::get().to(openapi::document))
            .default_service(web::to(api_not_found)),
    );
    cfg.route("/", web::get().to(pages::index))
        .route("/policies/{slug}", web::get().to(pages::show_current))
        .route("/policies/{slug}/versions", web::get().to(pages::list_versions))
        .route("/policies/{slug}/versions/{version}", web::get().to(pages::show_version))
        .route("/policies/{slug}/diff", web::get().to(diffs::show_diff))
        .route("/consent", web::get().to(consent::show))
        .route("/consent", web::post().to(consent::answer))
        .route("/me", web::get().to(consent::me))
        .route("/me/withdraw", web::post().to(consent::withdraw))
        .route("/me/record.json", web::get().to(consent::record_json))
        .route("/me/record", web::get().to(consent::record_page))
        .route("/me/erasure", web::post().to(consent::request_erasure))
        .route("/admin/record", web::get().to(admin::record))
        .route("/admin", web::get().to(admin::dashboard))
        .route("/admin/signin", web::get().to(admin::signin_form))
        .route("/admin/signin", web::post().to(admin::signin))
        .route("/admin/signout", web::post().to(admin::signout))
        .route("/admin/events", web::get().to(admin::events))
        .route("/admin/subjects", web::get().to(admin::subject))
        .route("/admin/export", web::get().to(admin::export))
        .route("/admin/webhooks", web::get().to(admin::webhooks))
        .route("/admin/webhooks/retry", web::post().to(admin::retry_webhooks))
        .route("/api", web::get().to(reference::reference))
        .route("/feed.atom", web::get().to(feed::atom))
        .route("/healthz", web::get().to(metrics::healthz))
        .route("/metrics", web::get().to(metrics::prometheus))
        .route("/assets/assent.css", web::get().to(stylesheet))
        .default_service(web::to(page_not_found));
}

const STYLESHEET: &str = include_str!("../../templates/assent.css");

/// The one stylesheet, served by Assent itself.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(STYLESHEET)
}

/// No route answers: 405 with `Allow` where the path has routes for other methods, 404 otherwise.
async fn api_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(allow) = openapi::allowed_methods(req.path()) {
        let error = ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} does not answer {}: it answers {allow}", req.path(), req.method()),
        );
        let mut response = actix_web::ResponseError::error_response(&error);
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(actix_web::http::header::ALLOW, value);
        }
        return Ok(response);
    }
    Err(ApiError::not_found(format!("no API endpoint {} {}", req.method(), req.path())))
}

async fn page_not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::not_found("There is no page at this address. The list of policies is on the home page."))
}

/// Largest JSON body the API reads.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// A JSON body that does not parse or is too large: 400 or 413 in the API's error shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_JSON_BYTES} bytes"),
        )
        .into(),
        E::ContentType => ApiError::bad_request("send the body as JSON with `Content-Type: application/json`").into(),
        other => ApiError::bad_request(format!("the body is not valid: {other}")).into(),
    }
}

/// A form that does not parse: an error page.
pub fn form_error(err: actix_web::error::UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    PageError::bad_request(format!("The form could not be read: {err}")).into()
}

/// The Content-Security-Policy of every response: nothing but this server's own stylesheet, no
/// script at all, no framing (a framed consent page invites click-jacking), and forms that
/// post here, whose answer may redirect to the allowed return origins.
pub fn content_security_policy(settings: &Settings) -> String {
    let mut form_action = String::from("'self'");
    for origin in settings.return_origins.origins() {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// A query string that does not parse: a JSON error under `/api`, an error page elsewhere
/// (never actix's plain text).
pub fn query_error(err: actix_web::error::QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    if req.path().starts_with("/api/") {
        ApiError::bad_request(format!("query: {err}")).into()
    } else {
        PageError::bad_request(format!("The address has a query that cannot be read: {err}")).into()
    }
}
