//! `/admin`: coverage, acceptances over time, subject search, the event list and exports, for
//! privacy and legal staff. Signed in with a `read` or `admin` key; the session is a row on the
//! server (`crate::sessions`) whose random token is the cookie (never the key in a URL).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::audit::{EventQuery, parse_filter};
use super::{AppState, PageError};
use crate::db::from_stored_time;
use crate::db::keys::key_by_id;
use crate::db::ledger::{acceptances_between, event_horizon, events_of, list_events};
use crate::domain::{Scope, SubjectId, rules};
use crate::sessions;
use crate::views::human_time;

const SESSION_COOKIE: &str = "assent_admin";

/// Who is signed in.
pub struct Session {
    pub name: String,
    pub scope: Scope,
}

fn signin_redirect() -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/signin")).finish()
}

/// The session on a request: a live `read` or `admin` key behind a session that has not ended,
/// expired or idled out (`crate::sessions`).
async fn session(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, PageError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else { return Ok(None) };
    let token = cookie.value().to_owned();
    if token.len() != 64 {
        return Ok(None);
    }
    let idle = state.settings.admin_idle_timeout;
    let row = state
        .db
        .run(move |c| match sessions::check(c, &token, idle, Utc::now())? {
            Some(key_id) => key_by_id(c, key_id),
            None => Ok(None),
        })
        .await?;
    // The admin view shows every audience: a key bound to one never opens it.
    Ok(row
        .filter(|k| k.revoked_at.is_none() && k.audience.is_none())
        .and_then(|k| Some((k.name, k.scope.parse::<Scope>().ok()?)))
        .filter(|(_, scope)| *scope != Scope::Write)
        .map(|(name, scope)| Session { name, scope }))
}

#[derive(Template)]
#[template(path = "admin_signin.html")]
struct SigninPage<'a> {
    error: Option<&'a str>,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    match body {
        Ok(b) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(b),
        Err(e) => actix_web::ResponseError::error_response(&PageError::from(e)),
    }
}

/// `GET /admin/signin`
pub async fn signin_form() -> HttpResponse {
    html(StatusCode::OK, SigninPage { error: None }.render())
}

#[derive(Deserialize)]
pub struct SigninForm {
    pub key: String,
}

/// A POST from another site is refused: it would sign someone in with a key of the other
/// site's choosing, or out, without them asking. Browsers say where a request comes from in
/// `Sec-Fetch-Site`; older ones only in `Origin` (`null` counts as foreign).
fn same_origin(state: &AppState, req: &HttpRequest) -> Result<(), PageError> {
    let refuse =
        || PageError { status: StatusCode::FORBIDDEN, message: "This form can only be sent from this site.".into() };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err(refuse()) };
    }
    match header("origin") {
        None => Ok(()), // not a browser form post (curl, scripts): no ambient session to abuse
        Some(origin) => {
            // As origins, so that `HOST:443` and `https://host`, or case, do not differ.
            let ours = url::Url::parse(&super::origin(state, req).url()).map(|u| u.origin());
            let theirs = url::Url::parse(origin).map(|u| u.origin());
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) if ours == theirs && ours.is_tuple() => Ok(()),
                _ => Err(refuse()),
            }
        }
    }
}

/// `POST /admin/signin`: a wrong key is refused without saying whether such a key exists.
pub async fn signin(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SigninForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&state, &req)?;
    let presented = form.into_inner().key.trim().to_owned();
    let client = super::client_addr(&state, &req);
    let opened = match sessions::sign_in(&state.db, &state.signins, client, presented).await? {
        sessions::SignIn::Opened(opened) => opened,
        sessions::SignIn::Refused => {
            return Ok(html(
                StatusCode::UNAUTHORIZED,
                SigninPage {
                    error: Some(
                        "That key cannot sign in here. Use a read or admin key that is not bound to an audience: this view shows every audience.",
                    ),
                }
                .render(),
            ));
        }
        sessions::SignIn::Throttled(wait) => {
            let mut page = html(
                StatusCode::TOO_MANY_REQUESTS,
                SigninPage { error: Some("Too many failed sign-ins. Wait a few minutes, then try again.") }.render(),
            );
            if let Ok(value) = header::HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(page);
        }
    };
    let cookie = Cookie::build(SESSION_COOKIE, opened.token)
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(super::origin(&state, &req).scheme == "https")
        .max_age(CookieDuration::hours(sessions::SESSION_HOURS))
        .finish();
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin")).cookie(cookie).finish())
}

/// `POST /admin/signout`: ends the session on the server (on every server), not only in this
/// browser.
pub async fn signout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    same_origin(&state, &req)?;
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let token = cookie.value().to_owned();
        state.db.run(move |c| sessions::close(c, &token, Utc::now())).await?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/admin").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/admin/signin")).cookie(gone).finish())
}

/// One agreement's coverage: every known subject, in the state its status gives it now.
pub struct Bar {
    pub label: String,
    pub slug: String,
    pub version: u32,
    pub segments: Vec<Segment>,
}

/// One state's share of a bar.
pub struct Segment {
    pub state: &'static str,
    pub count: i64,
    /// Percent of the bar, and where it starts.
    pub width: f64,
    pub offset: f64,
}

impl Bar {
    fn new(label: String, slug: String, version: u32, c: &crate::coverage::Coverage) -> Self {
        let counts = c.by_state();
        let total = counts.iter().map(|(_, n)| n).sum::<i64>().max(1) as f64;
        let mut offset = 0.0;
        let segments = counts
            .into_iter()
            .map(|(state, count)| {
                let width = count as f64 * 100.0 / total;
                let s = Segment { state, count, width, offset };
                offset += width;
                s
            })
            .collect();
        Self { label, slug, version, segments }
    }

    /// `12 accepted, 3 pending, …` for the bar's accessible name.
    pub fn described(&self) -> String {
        self.segments.iter().map(|s| format!("{} {}", s.count, s.state)).collect::<Vec<_>>().join(", ")
    }
}

pub struct Day {
    pub label: String,
    pub count: i64,
    pub x: f64,
    pub y: f64,
    pub height: f64,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Dashboard {
    who: String,
    admin: bool,
    bars: Vec<Bar>,
    days: Vec<Day>,
    max_day: i64,
    total_30: i64,
    /// (subject, when) of erasure requests not yet carried out.
    erasure_requests: Vec<(String, String)>,
    /// The newest signed checkpoint, to save somewhere the database's owner cannot edit.
    checkpoint: String,
}

const CHART_HEIGHT: f64 = 160.0;
const CHART_DAYS: i64 = 30;

/// `GET /admin`
pub async fn dashboard(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    let catalog = state.catalog.get(&state.db).await?;
    let now = Utc::now();
    let cat = catalog.clone();
    let (bars, days) = state
        .db
        .run(move |c| -> Result<_, crate::db::DbError> {
            let mut bars = Vec::new();
            for doc in rules::agreements(&cat) {
                let Some(shown) = doc.shown(now) else { continue };
                let coverage = crate::coverage::coverage(c, &cat, doc, now)?;
                let label = format!("{}, version {}", shown.title, shown.number);
                bars.push(Bar::new(label, doc.slug.to_string(), shown.number.get(), &coverage));
            }
            let today = Utc::now().date_naive();
            let mut days = Vec::new();
            for back in (0..CHART_DAYS).rev() {
                let day = today - Duration::days(back);
                let (Some(from), Some(to)) = (day.and_hms_opt(0, 0, 0), (day + Duration::days(1)).and_hms_opt(0, 0, 0))
                else {
                    continue;
                };
                days.push((day.format("%-d %b").to_string(), acceptances_between(c, from, to)?));
            }
            Ok((bars, days))
        })
        .await?;
    let max_day = days.iter().map(|d| d.1).max().unwrap_or(0);
    let total_30 = days.iter().map(|d| d.1).sum();
    let days = days
        .into_iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let height = if max_day == 0 { 0.0 } else { count as f64 * CHART_HEIGHT / max_day as f64 };
            Day { label, count, x: 40.0 + i as f64 * 18.0, y: 10.0 + CHART_HEIGHT - height, height }
        })
        .collect();
    let requests = state.db.run(|c| crate::db::ledger::open_erasure_requests(c, 100)).await?;
    let erasure_requests = requests
        .iter()
        .map(|e| (e.subject().unwrap_or("(erased)").to_owned(), human_time(from_stored_time(e.row.recorded_at))))
        .collect();
    let head = state.db.run(crate::log::head).await?;
    let checkpoint = state.log_key.checkpoint(head.size, &head.root);
    let page = Dashboard {
        who: who.name,
        admin: who.scope == Scope::Admin,
        bars,
        days,
        max_day,
        total_30,
        erasure_requests,
        checkpoint,
    };
    Ok(html(StatusCode::OK, page.render()))
}

pub struct EventLine {
    pub id: i64,
    pub when: String,
    pub subject: String,
    pub kind: String,
    pub covers: String,
    pub method: String,
    pub chain: String,
}

fn lines(rows: &[crate::db::ledger::Event]) -> Result<Vec<EventLine>, PageError> {
    rows.iter()
        .map(|event| {
            let r = crate::ledger::receipt(event)?;
            let row = &event.row;
            Ok(EventLine {
                id: row.id,
                when: human_time(from_stored_time(row.recorded_at)),
                subject: event.subject().unwrap_or("(erased)").to_owned(),
                kind: row.kind.clone(),
                covers: r
                    .covers
                    .iter()
                    .map(|c| format!("{} v{}", c.document, c.version))
                    .collect::<Vec<_>>()
                    .join(", "),
                method: row.method.clone(),
                chain: row.chain_hash.chars().take(12).collect(),
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin_events.html")]
struct EventsPage {
    who: String,
    admin: bool,
    lines: Vec<EventLine>,
    q: EventQueryView,
    next: Option<String>,
    export_query: String,
}

#[derive(Default)]
pub struct EventQueryView {
    pub document: String,
    pub version: String,
    pub kind: String,
    pub subject: String,
    pub since: String,
    pub until: String,
}

/// `GET /admin/events`: the event list with the API's filters.
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    let catalog = state.catalog.get(&state.db).await?;
    let filter = parse_filter(&q, &catalog, &state.subject_keys, None).map_err(PageError::from)?;
    let after = q.after.as_deref().and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
    const PAGE: i64 = 50;
    let rows = state
        .db
        .run(move |c| {
            let horizon = event_horizon(c)?;
            list_events(c, &filter, after, horizon, PAGE)
        })
        .await?;
    let view = EventQueryView {
        document: q.document.clone().unwrap_or_default(),
        version: q.version.clone().unwrap_or_default(),
        kind: q.kind.clone().unwrap_or_default(),
        subject: q.subject.clone().unwrap_or_default(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
    };
    let query = |extra: &[(&str, String)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("document", &view.document),
            ("version", &view.version),
            ("kind", &view.kind),
            ("subject", &view.subject),
            ("since", &view.since),
            ("until", &view.until),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let next =
        (rows.len() as i64 == PAGE).then(|| rows.last().map(|r| query(&[("after", r.row.id.to_string())]))).flatten();
    let export_query = query(&[]);
    let page = EventsPage {
        who: who.name,
        admin: who.scope == Scope::Admin,
        lines: lines(&rows)?,
        q: view,
        next,
        export_query,
    };
    Ok(html(StatusCode::OK, page.render()))
}

#[derive(Template)]
#[template(path = "admin_subject.html")]
struct SubjectPage {
    who: String,
    admin: bool,
    subject: String,
    statuses: Vec<(String, String, String)>,
    lines: Vec<EventLine>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct SubjectQuery {
    pub q: Option<String>,
}

/// `GET /admin/subjects?q=`: one subject's status and events.
pub async fn subject(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<SubjectQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    let raw = q.q.clone().unwrap_or_default();
    let mut page = SubjectPage {
        who: who.name,
        admin: who.scope == Scope::Admin,
        subject: raw.clone(),
        statuses: Vec::new(),
        lines: Vec::new(),
        error: None,
    };
    match SubjectId::parse(raw.trim()) {
        Err(e) => page.error = Some(if raw.is_empty() { "Enter a subject id.".into() } else { e.to_string() }),
        Ok(id) => {
            let catalog = state.catalog.get(&state.db).await?;
            let key = state.subject_keys.key(&id);
            let (rows, decisions) = state
                .db
                .run(move |c| Ok::<_, crate::db::DbError>((events_of(c, &key)?, crate::ledger::decisions(c, &key)?)))
                .await?;
            page.statuses = rules::status(&catalog, &decisions, None, Utc::now())
                .into_iter()
                .map(|s| {
                    (
                        s.slug.to_string(),
                        s.state.as_str().to_owned(),
                        s.accepted_version.map(|v| format!("version {v}")).unwrap_or_else(|| "-".into()),
                    )
                })
                .collect();
            page.lines = lines(&rows)?;
            if rows.is_empty() {
                page.error = Some("No events for this subject.".into());
            }
        }
    }
    Ok(html(StatusCode::OK, page.render()))
}

/// `GET /admin/export?format=`: the API's export, for a signed-in admin.
pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    if who.scope != Scope::Admin {
        return Err(PageError { status: StatusCode::FORBIDDEN, message: "Exports need an admin key.".into() });
    }
    super::audit::stream_export(&state, &q, None).await.map_err(PageError::from)
}

/// `GET /admin/record?q=`: a subject's printable evidence record, for staff.
pub async fn record(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<SubjectQuery>,
) -> Result<HttpResponse, PageError> {
    if session(&state, &req).await?.is_none() {
        return Ok(signin_redirect());
    }
    let subject =
        SubjectId::parse(q.q.as_deref().unwrap_or("").trim()).map_err(|e| PageError::bad_request(e.to_string()))?;
    let origin = super::origin(&state, &req).host;
    let view = super::record::record_page(&state, &subject, origin).await?;
    if view.rows.is_empty() {
        return Err(PageError::not_found(format!("No events are recorded for {:?}.", subject.as_str())));
    }
    Ok(html(StatusCode::OK, view.render()))
}

/// A failed delivery, as the webhooks page lists it.
pub struct FailureLine {
    pub id: i64,
    pub kind: &'static str,
    pub attempts: i32,
    pub last_attempt: String,
    pub last_error: String,
}

pub struct EndpointLine {
    pub id: i64,
    pub url: String,
    pub events: String,
    pub created: String,
    pub created_by: String,
    pub pending: i64,
    pub failed: i64,
    /// The newest failed deliveries.
    pub failures: Vec<FailureLine>,
}

#[derive(Template)]
#[template(path = "admin_webhooks.html")]
struct WebhooksPage {
    who: String,
    admin: bool,
    endpoints: Vec<EndpointLine>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct WebhooksQuery {
    pub retried: Option<usize>,
}

/// How many failed deliveries the page lists per endpoint.
const FAILURES_SHOWN: i64 = 20;

/// `GET /admin/webhooks`: endpoints, what waits, and the failed deliveries with their last error.
pub async fn webhooks(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<WebhooksQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    // Endpoint URLs can carry the receiver's own tokens: admin keys only, as in the API.
    if who.scope != Scope::Admin {
        return Err(PageError { status: StatusCode::FORBIDDEN, message: "Webhooks need an admin key.".into() });
    }
    let listed = state
        .db
        .run(|c| -> Result<_, crate::webhooks::WebhookError> {
            let mut out = Vec::new();
            for e in crate::webhooks::list(c)? {
                let failed = crate::webhooks::deliveries(c, e.id, Some("failed"), None, FAILURES_SHOWN)?;
                out.push((e, failed.deliveries));
            }
            Ok(out)
        })
        .await
        .map_err(webhook_page_error)?;
    let time = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| human_time(t.with_timezone(&Utc)))
            .unwrap_or_else(|_| t.to_owned())
    };
    let endpoints = listed
        .into_iter()
        .map(|(e, failed)| EndpointLine {
            id: e.id,
            url: e.url,
            events: e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
            created: time(&e.created_at),
            created_by: e.created_by,
            pending: e.pending,
            failed: e.failed,
            failures: failed
                .into_iter()
                .map(|d| FailureLine {
                    id: d.id,
                    kind: d.event_type.as_str(),
                    attempts: d.attempts,
                    last_attempt: d.last_attempt_at.as_deref().map(time).unwrap_or_else(|| "-".into()),
                    last_error: d.last_error.unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    let notice = q.retried.map(|n| match n {
        1 => "1 failed delivery is pending again: it is sent within seconds.".to_owned(),
        n => format!("{n} failed deliveries are pending again: they are sent within seconds."),
    });
    let page = WebhooksPage { who: who.name, admin: who.scope == Scope::Admin, endpoints, notice };
    Ok(html(StatusCode::OK, page.render()))
}

fn webhook_page_error(e: crate::webhooks::WebhookError) -> PageError {
    match e {
        crate::webhooks::WebhookError::Db(db) => db.into(),
        crate::webhooks::WebhookError::NoEndpoint(_) | crate::webhooks::WebhookError::NoFailedDelivery { .. } => {
            PageError::not_found(e.to_string())
        }
        other => PageError::bad_request(other.to_string()),
    }
}

#[derive(Deserialize)]
pub struct RetryForm {
    pub endpoint: i64,
    pub delivery: Option<i64>,
}

/// `POST /admin/webhooks/retry`: retry one failed delivery, or every failed one of an endpoint
/// (admin keys only).
pub async fn retry_webhooks(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&state, &req)?;
    let Some(who) = session(&state, &req).await? else { return Ok(signin_redirect()) };
    if who.scope != Scope::Admin {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            message: "Retrying deliveries needs an admin key.".into(),
        });
    }
    let RetryForm { endpoint, delivery } = form.into_inner();
    let n = state
        .db
        .run(move |c| crate::webhooks::retry(c, endpoint, delivery, Utc::now()))
        .await
        .map_err(webhook_page_error)?;
    state.recorder.wake_webhooks();
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/admin/webhooks?retried={n}"))).finish())
}
