//! For the people who answer to regulators: filtered event listings with exact cursors,
//! coverage per version, and streamed exports.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;

use super::auth::require;
use super::errors::ErrorBody;
use super::openapi::KeyedErrors;
use super::params::{EventFilterParams, SlugPath, SlugVersionPath};
use super::{ApiError, AppState, lookup};
use crate::db::ledger::{EventFilter, event_horizon, list_events};
use crate::domain::rules;
use crate::domain::{Audience, Catalog, Scope};
use crate::ledger::export::{EventView, FilterError, FilterText, Format, export};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub document: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
    pub format: Option<String>,
}

/// Turns query parameters into a filter, refusing what does not parse (the rule is
/// [`crate::ledger::export::parse_filter`], which the command line shares).
pub fn parse_filter(
    q: &EventQuery,
    catalog: &Catalog,
    keys: &crate::ledger::SubjectKeys,
    audience: Option<&Audience>,
) -> Result<EventFilter, ApiError> {
    let text = FilterText {
        document: q.document.as_deref(),
        version: q.version.as_deref(),
        kind: q.kind.as_deref(),
        subject: q.subject.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    crate::ledger::export::parse_filter(text, catalog, Some(keys), audience).map_err(|e| match e {
        FilterError::Refused(r) => ApiError::from(r),
        FilterError::Invalid(message) => ApiError::bad_request(message),
    })
}

/// The cursor of a page: the last event id it holds. Cursors of earlier builds (`c1:ID` in
/// base64url) are still read.
fn encode_cursor(id: i64) -> String {
    id.to_string()
}

fn decode_cursor(raw: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request("`after` is not a cursor from this API (pass `next` of the page before)");
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse::<i64>().map_err(|_| bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("c1:").and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 0).ok_or_else(bad)
}

/// A page of events.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page (the last event id on this one); `null` when the page
    /// is not full.
    pub next: Option<String>,
}

/// Events, oldest first, filtered and paged.
///
/// `GET /api/v1/events?document=&version=&kind=&subject=&since=&until=&after=&limit=`
#[utoipa::path(get, path = "/api/v1/events", tag = "audit", security(("bearer" = ["read"])),
    params(EventFilterParams, ("after" = Option<String>, Query, description = "`next` of the page before (an event id): the events after it", pattern = "^[0-9]{0,18}$"),
        ("limit" = Option<String>, Query, description = "1 to 1000, default 100", pattern = "^([1-9][0-9]{0,2}|1000)?$")),
    responses((status = 200, description = "Events, oldest first (read scope)", body = EventsPage), KeyedErrors))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Read).await?;
    if q.format.is_some() {
        return Err(ApiError::bad_request("`format` belongs to /api/v1/export"));
    }
    let catalog = state.catalog.get(&state.db).await?;
    let filter = parse_filter(&q, &catalog, &state.subject_keys, key.audience.as_ref())?;
    let after = q.after.as_deref().filter(|s| !s.is_empty()).map(decode_cursor).transpose()?.unwrap_or(0);
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 100,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit `{raw}` must be a whole number from 1 to 1000")))?,
    };
    let rows = state
        .db
        .run(move |c| {
            let horizon = event_horizon(c)?;
            list_events(c, &filter, after, horizon, limit)
        })
        .await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| encode_cursor(r.row.id))).flatten();
    let events = rows.iter().map(EventView::of).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(EventsPage { events, next }))
}

/// Of the subjects whose latest acceptance covered a version, how many stand where now.
///
/// `GET /api/v1/documents/{slug}/versions/{n}/stats`
#[utoipa::path(get, path = "/api/v1/documents/{slug}/versions/{version}/stats", tag = "audit", security(("bearer" = ["read"])),
    params(SlugVersionPath),
    responses((status = 200, description = "Of the subjects whose latest acceptance covered the version, their state now (read scope)", body = crate::coverage::Tally),
        KeyedErrors))]
pub async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Read).await?;
    let (slug, number) = path.into_inner();
    let catalog = state.catalog.get(&state.db).await?;
    let doc = lookup::document(&catalog, &slug)?;
    rules::within(doc, key.audience.as_ref())?;
    let version = lookup::version(doc, &number)?.number;
    let (slug, now) = (doc.slug.clone(), Utc::now());
    let tally = state
        .db
        .run(move |c| {
            let doc = catalog.document(&slug).ok_or_else(|| crate::db::DbError::Corrupt(format!("{slug} vanished")))?;
            crate::coverage::stats(c, &catalog, doc, version, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(tally))
}

/// An agreement's coverage: every known subject counted once, in the state its status gives it now.
///
/// `GET /api/v1/documents/{slug}/coverage[?audience=]`
#[utoipa::path(get, path = "/api/v1/documents/{slug}/coverage", tag = "audit", security(("bearer" = ["read"])),
    params(SlugPath, ("audience" = Option<String>, Query, description = "Checks that the agreement applies to this audience")),
    responses((status = 200, description = "Every known subject, in the state its status gives it now (read scope)", body = crate::coverage::Coverage),
        KeyedErrors, (status = 422, description = "A part or an informational document", body = ErrorBody)))]
pub async fn coverage(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<super::subjects::AudienceQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Read).await?;
    let catalog = state.catalog.get(&state.db).await?;
    let audience = rules::audience_for(&catalog, key.audience.as_ref(), q.audience.as_deref())?;
    let doc = rules::agreement(&catalog, &path.into_inner())?;
    rules::within(doc, audience.as_ref())?;
    let (slug, now) = (doc.slug.clone(), Utc::now());
    let coverage = state
        .db
        .run(move |c| {
            let doc = catalog.document(&slug).ok_or_else(|| crate::db::DbError::Corrupt(format!("{slug} vanished")))?;
            crate::coverage::coverage(c, &catalog, doc, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(coverage))
}

/// Sends what the export writes to the HTTP response in chunks.
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the client went away"))?;
        }
        Ok(())
    }
}

/// Every matching event, streamed as CSV or JSON lines (admin).
///
/// `GET /api/v1/export?format=csv|jsonl&since=&until=&document=`
#[utoipa::path(get, path = "/api/v1/export", tag = "audit", security(("bearer" = ["admin"])),
    params(("format" = Option<String>, Query, description = "`csv` (default) or `jsonl`", pattern = "^(csv|jsonl)$"), EventFilterParams),
    responses((status = 200, description = "Every matching event, streamed (admin scope)", 
        content((String = "text/csv"), (String = "application/x-ndjson"))),
        KeyedErrors))]
pub async fn export_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Admin).await?;
    stream_export(&state, &q, key.audience.as_ref()).await
}

/// Exports that run at once on one server, each on a database connection of its own.
pub const EXPORTS_AT_ONCE: usize = 2;

/// Streams an export as the response body.
pub async fn stream_export(
    state: &AppState,
    q: &EventQuery,
    audience: Option<&Audience>,
) -> Result<HttpResponse, ApiError> {
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("csv")
        .parse()
        .map_err(|e: crate::domain::InvalidValue| ApiError::bad_request(e.to_string()))?;
    if q.after.is_some() || q.limit.is_some() {
        return Err(ApiError::bad_request("an export has no `after` or `limit`: it streams every matching event"));
    }
    let catalog = state.catalog.get(&state.db).await?;
    let filter = parse_filter(q, &catalog, &state.subject_keys, audience)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let db = state.db.clone();
    // An export reads for as long as its reader takes: on a connection of its own, so that it
    // holds none of the pool's (4 on SQLite) from the requests that must answer at once, and
    // at most EXPORTS_AT_ONCE at a time per server; the next one waits for a turn.
    let turn = state
        .exports
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::from(crate::db::DbError::Task("the server is stopping".into())))?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut out = ChunkSender { buf: Vec::with_capacity(64 * 1024), tx: tx.clone() };
        let result = db
            .dedicated()
            .map_err(crate::ledger::export::ExportError::from)
            .and_then(|mut c| export(&mut c, &filter, format, &mut out));
        if let Err(e) = result {
            tracing::error!(error = %e, "export failed midway");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    let name = format!("attachment; filename=\"assent-events-{}.{ext}\"", Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, name))
        .streaming(stream))
}
