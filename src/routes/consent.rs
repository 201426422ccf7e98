//! The re-prompt flow: signed consent links, the consent page (what changed since the subject
//! last accepted), recording the decision, and the subject's own record at `/me`.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::auth::require;
use super::errors::ErrorBody;
use super::openapi::AccessErrors;
use super::subjects::EvidenceBody;
use super::{ApiError, AppState, PageError};
use crate::consent::{Claims, TokenError, seal, sign, unseal, verify};
use crate::db::ledger::{consent_events, events_of, states_of};
use crate::domain::rules;
use crate::domain::{Audience, Catalog, IdempotencyKey, Scope, Slug, SubjectId, VersionNumber};
use crate::ledger::decide::{self, Ask};
use crate::ledger::{self, Evidence, Kind, Method, Recorded};
use crate::render::SafeHtml;
use crate::views::{Item, human_period, human_time, layout, rfc3339};

const CSRF_COOKIE: &str = "assent_csrf";

/// Longest a consent link may live.
pub const MAX_TTL_SECONDS: i64 = 7 * 24 * 3600;

// ---- links ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The subject id: 1 to 256 bytes of UTF-8 without control characters.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    pub subject: String,
    /// Where the page sends the subject afterwards: an absolute URL on one of the origins in
    /// `ASSENT_ALLOWED_RETURN_ORIGINS` (this server's document names them).
    pub return_to: String,
    /// How long the link works, in seconds (default 3600, at most 7 days).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(default, deserialize_with = "super::params::whole_or_none")]
    pub ttl_seconds: Option<i64>,
    /// Ask only about this audience's documents (this server's document names them).
    pub audience: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkJson {
    pub url: String,
    pub expires_at: String,
}

/// Makes a signed consent link (shared by the API and `assent link`).
pub fn make_link(
    link_key: &[u8],
    origins: &crate::consent::ReturnOrigins,
    base_url: &str,
    subject: &str,
    return_to: &str,
    ttl_seconds: i64,
    audience: Option<crate::domain::Audience>,
) -> Result<LinkJson, crate::domain::InvalidValue> {
    use crate::domain::InvalidValue;
    let subject = SubjectId::parse(subject)?;
    let return_to = origins.check(return_to)?;
    if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        return Err(InvalidValue(format!("ttl_seconds must be 1 to {MAX_TTL_SECONDS}")));
    }
    let expires = Utc::now() + Duration::seconds(ttl_seconds);
    let nonce = crate::ledger::keys::random_bytes::<16>().map(hex::encode).map_err(|e| InvalidValue(e.to_string()))?;
    let claims = Claims {
        sub: subject.to_string(),
        ret: return_to.to_string(),
        exp: expires.timestamp(),
        nonce,
        iat: Utc::now().timestamp(),
        aud: audience,
    };
    let token = sign(link_key, &claims).map_err(|e| InvalidValue(e.to_string()))?;
    Ok(LinkJson {
        url: format!("{}/consent?token={token}", base_url.trim_end_matches('/')),
        expires_at: rfc3339(claims.expires_at()),
    })
}

/// A signed consent link that sends a subject through the consent page and back.
///
/// `POST /api/v1/consent-links`
#[utoipa::path(post, path = "/api/v1/consent-links", tag = "subjects", security(("bearer" = ["write"])), request_body = LinkBody,
    responses((status = 201, description = "A signed consent link (write scope)", body = LinkJson), (status = 400, description = "A bad subject, return_to, ttl or audience", body = ErrorBody),
        AccessErrors))]
pub async fn create_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LinkBody>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Write).await?;
    let catalog = state.catalog.get(&state.db).await?;
    let audience = rules::audience_for(&catalog, key.audience.as_ref(), body.audience.as_deref())?;
    let link = make_link(
        &state.link_key,
        &state.settings.return_origins,
        &super::base_url(&state, &req),
        &body.subject,
        &body.return_to,
        body.ttl_seconds.unwrap_or(3600),
        audience,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(HttpResponse::Created().json(link))
}

// ---- pages ----

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

fn message(status: StatusCode, heading: &str, text: &str, link: Option<(&str, &str)>) -> HttpResponse {
    let page = MessagePage { heading, message: text, link };
    match page.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(_) => HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(text.to_owned()),
    }
}

fn token_page(e: TokenError) -> HttpResponse {
    match e {
        TokenError::Invalid => message(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "The link is incomplete or has been changed. Go back to the application you came from and follow its link again.",
            None,
        ),
        TokenError::Expired => message(
            StatusCode::GONE,
            "This link has expired",
            "Links to this page work for a limited time. Go back to the application you came from: it will give you a new one.",
            None,
        ),
        TokenError::Erased => message(
            StatusCode::GONE,
            "This record was erased",
            "The personal data behind this link was erased at your request or the operator's. Nothing more can be seen or recorded with it.",
            None,
        ),
    }
}

/// The token's claims and subject, or the page that explains why not.
async fn claims_of(state: &AppState, token: &str) -> Result<(Claims, SubjectId), TokenError> {
    let claims = verify(&state.link_key, token, Utc::now())?;
    let subject = claims.subject().map_err(|_| TokenError::Invalid)?;
    let key = state.subject_keys.key(&subject);
    let erased = state.db.run(move |c| crate::db::ledger::latest_of_kind(c, &key, Kind::Erased.as_str())).await;
    match erased {
        Ok(Some(e)) if e.row.recorded_at.and_utc().timestamp() >= claims.iat => Err(TokenError::Erased),
        Ok(_) => Ok((claims, subject)),
        Err(e) => {
            // A link that cannot be checked against erasures does not open.
            tracing::error!(error = %e, "checking a link against erasures failed");
            Err(TokenError::Invalid)
        }
    }
}

/// The CSRF token from the cookie, or a new one to set.
fn csrf_token(state: &AppState, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = req.cookie(CSRF_COOKIE).filter(|c| c.value().len() == 64) {
        return (c.value().to_owned(), None);
    }
    let token = crate::ledger::keys::random_bytes::<32>().map(hex::encode).unwrap_or_default();
    let secure = super::origin(state, req).scheme == "https";
    let cookie = Cookie::build(CSRF_COOKIE, token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish();
    (token, Some(cookie))
}

fn csrf_ok(req: &HttpRequest, presented: &str) -> bool {
    req.cookie(CSRF_COOKIE)
        .is_some_and(|c| c.value().len() == 64 && bool::from(c.value().as_bytes().ct_eq(presented.as_bytes())))
}

/// A posted form's token and CSRF field, checked; otherwise the page that says why not.
async fn checked_form(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    csrf: &str,
) -> Result<(Claims, SubjectId), Box<HttpResponse>> {
    let claims = claims_of(state, token).await.map_err(|e| Box::new(token_page(e)))?;
    if !csrf_ok(req, csrf) {
        return Err(Box::new(csrf_refused()));
    }
    Ok(claims)
}

fn csrf_refused() -> HttpResponse {
    message(
        StatusCode::FORBIDDEN,
        "Your answer could not be checked",
        "The form was missing its security check (this happens when cookies are blocked, or the page was opened from elsewhere). Nothing was recorded. Go back, reload the page and try again.",
        None,
    )
}

fn page(html: Result<String, askama::Error>, cookie: Option<Cookie<'static>>) -> HttpResponse {
    match html {
        Ok(body) => {
            let mut resp = HttpResponse::Ok();
            resp.content_type("text/html; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(c) = cookie {
                resp.cookie(c);
            }
            resp.body(body)
        }
        Err(e) => actix_web::ResponseError::error_response(&PageError::from(e)),
    }
}

/// One document shown on the consent page: what changed, or its whole text.
pub struct DocumentChange {
    pub slug: String,
    pub title: String,
    pub version: u32,
    pub effective: String,
    /// What each version since the one accepted says changed, oldest first (none when the
    /// subject never accepted the document: it is shown whole).
    pub summaries: Vec<VersionSummary>,
    /// The version accepted before, when there is one.
    pub since: Option<u32>,
    pub insertions: usize,
    pub deletions: usize,
    pub items: Vec<Item>,
    /// The whole text, when the subject never accepted it.
    pub full_text: Option<SafeHtml>,
    pub unchanged: bool,
}

pub struct VersionSummary {
    pub version: u32,
    pub text: String,
}

/// One agreement waiting for the subject's answer.
pub struct PendingAgreement {
    pub slug: String,
    pub title: String,
    pub version: u32,
    pub effective: String,
    pub state: &'static str,
    /// For an acceptance that expired: when it was made and how long one counts.
    pub expired: Option<(String, String)>,
    pub documents: Vec<DocumentChange>,
    pub upcoming: Option<(u32, String)>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    token: String,
    csrf: String,
    /// What the page shows, sealed: the answer is recorded only for exactly this.
    shown: String,
    agreements: Vec<PendingAgreement>,
    any_upcoming: bool,
    return_host: String,
    changed: bool,
}

/// What a consent page shows, as a string: each agreement with its version and upcoming
/// version, and each document with the version shown.
fn fingerprint(agreements: &[PendingAgreement]) -> String {
    agreements
        .iter()
        .map(|a| {
            let docs: Vec<String> = a.documents.iter().map(|d| format!("{}@{}", d.slug, d.version)).collect();
            format!("{}:{}:{}[{}]", a.slug, a.version, a.upcoming.as_ref().map_or(0, |u| u.0), docs.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn consent_page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    claims: &Claims,
    agreements: Vec<PendingAgreement>,
    changed: bool,
) -> HttpResponse {
    let (csrf, cookie) = csrf_token(state, req);
    let shown = seal(&state.link_key, &fingerprint(&agreements)).unwrap_or_default();
    let any_upcoming = agreements.iter().any(|a| a.upcoming.is_some());
    let view = ConsentPage { token, csrf, shown, agreements, any_upcoming, return_host: host_of(&claims.ret), changed };
    page(view.render(), cookie)
}

/// The agreements a subject owes an answer on, with what changed since its last acceptance
/// (`changes::owed`), as the page shows them.
async fn pending(
    state: &AppState,
    subject: &SubjectId,
    audience: Option<&Audience>,
) -> Result<(Arc<Catalog>, Vec<PendingAgreement>), PageError> {
    let catalog = state.catalog.get(&state.db).await?;
    let (who, cat, cache) = (state.subject_keys.key(subject), catalog.clone(), state.diffs.clone());
    let audience = audience.cloned();
    let owed =
        state.db.run(move |conn| crate::changes::owed(conn, &cache, &cat, &who, audience.as_ref(), Utc::now())).await?;
    Ok((catalog, owed.into_iter().map(pending_view).collect()))
}

fn pending_view(owed: crate::changes::Owed) -> PendingAgreement {
    let documents = owed
        .changes
        .into_iter()
        .map(|c| {
            let (items, insertions, deletions, unchanged) = match &c.change.diff {
                Some(d) => {
                    let (mut items, _) = layout(&d.changes.blocks);
                    for item in &mut items {
                        item.html = item.html.demote_headings(2);
                    }
                    (items, d.changes.insertions, d.changes.deletions, d.changes.is_empty())
                }
                None => (Vec::new(), 0, 0, false),
            };
            DocumentChange {
                slug: c.change.slug.to_string(),
                title: c.change.title,
                version: c.change.to.get(),
                effective: human_time(c.version.effective),
                summaries: c
                    .since_accepted
                    .into_iter()
                    .filter_map(|v| v.summary.map(|text| VersionSummary { version: v.number.get(), text }))
                    .collect(),
                since: c.change.accepted.map(VersionNumber::get),
                insertions,
                deletions,
                items,
                full_text: c.full_text.map(|t| t.demote_headings(2)),
                unchanged,
            }
        })
        .collect();
    PendingAgreement {
        slug: owed.status.slug.to_string(),
        title: owed.version.title,
        version: owed.version.number.get(),
        effective: human_time(owed.version.effective),
        state: owed.status.state.as_str(),
        expired: owed.expired.map(|(at, period)| (human_time(at), human_period(period))),
        documents,
        upcoming: owed.upcoming.map(|u| (u.number.get(), human_time(u.effective))),
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

async fn already_answered(state: &AppState, subject: &SubjectId, nonce: &str) -> Result<Vec<i64>, PageError> {
    let (who, nonce) = (state.subject_keys.key(subject), nonce.to_owned());
    let rows = state.db.run(move |c| consent_events(c, &who, &nonce)).await?;
    Ok(rows.into_iter().map(|r| r.row.id).collect())
}

/// `GET /consent?token=`
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let token = q.token.clone().unwrap_or_default();
    let (claims, subject) = match claims_of(&state, &token).await {
        Ok(c) => c,
        Err(e) => return Ok(token_page(e)),
    };
    if !already_answered(&state, &subject, &claims.nonce).await?.is_empty() {
        return Ok(message(
            StatusCode::OK,
            "Your answer is recorded",
            "You have already answered with this link; nothing more is needed.",
            Some((claims.ret.as_str(), "Continue")),
        ));
    }
    let (_, agreements) = pending(&state, &subject, claims.aud.as_ref()).await?;
    if agreements.is_empty() {
        let back = with_query(&claims.ret, &[("outcome", "up_to_date")]);
        return Ok(message(
            StatusCode::OK,
            "You are up to date",
            "There is nothing new for you to review.",
            Some((&back, "Continue")),
        ));
    }
    Ok(consent_page(&state, &req, token, &claims, agreements, false))
}

#[derive(Deserialize)]
pub struct ConsentForm {
    pub token: String,
    /// A missing token is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    pub csrf: String,
    pub shown: String,
    pub choice: String,
}

/// The evidence a browser request carries (user agent, language, and client address), checked
/// and minimised as the API's is.
fn browser_evidence(state: &AppState, req: &HttpRequest) -> Result<Evidence, PageError> {
    sent_evidence(state, req).minimised(state).map_err(|e| PageError::bad_request(e.to_string()))
}

fn sent_evidence(state: &AppState, req: &HttpRequest) -> EvidenceBody {
    let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let ip = super::client_addr(state, req);
    EvidenceBody {
        ip: ip.map(|a| a.to_string()),
        // Browsers may send tabs; evidence refuses control characters, so they are dropped here
        // rather than blocking the subject's answer.
        user_agent: header("user-agent").map(|ua| {
            ua.chars().filter(|c| !c.is_control()).take(crate::ledger::evidence::MAX_USER_AGENT / 4).collect()
        }),
        locale: header("accept-language")
            .map(|l| l.chars().filter(|c| !c.is_control()).take(crate::ledger::evidence::MAX_LOCALE).collect()),
    }
}

/// `POST /consent`: records the decision, then sends the subject back.
pub async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ConsentForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (claims, subject) = match checked_form(&state, &req, &form.token, &form.csrf).await {
        Ok(c) => c,
        Err(page) => return Ok(*page),
    };
    if !already_answered(&state, &subject, &claims.nonce).await?.is_empty() {
        return Ok(message(
            StatusCode::OK,
            "Your answer is already recorded",
            "This link was already used to answer; nothing new was recorded.",
            Some((claims.ret.as_str(), "Continue")),
        ));
    }
    let (kind, upcoming) = match form.choice.as_str() {
        "accept" => (Kind::Accepted, false),
        "accept_upcoming" => (Kind::Accepted, true),
        "decline" => (Kind::Declined, false),
        _ => return Err(PageError::bad_request("Choose Accept or Decline.")),
    };
    let (catalog, agreements) = pending(&state, &subject, claims.aud.as_ref()).await?;
    if agreements.is_empty() {
        return Ok(see_other(&with_query(&claims.ret, &[("outcome", "up_to_date")])));
    }
    // Record only what the subject was shown: if a version took effect or a new agreement
    // became due while the page was open, show the page again instead.
    if unseal(&state.link_key, &form.shown).as_deref() != Some(fingerprint(&agreements).as_str()) {
        return Ok(consent_page(&state, &req, form.token, &claims, agreements, true));
    }
    let now = Utc::now();
    let evidence = browser_evidence(&state, &req)?;
    let mut decisions = Vec::with_capacity(agreements.len());
    for agreement in &agreements {
        let slug = Slug::parse(&agreement.slug).map_err(|e| PageError::bad_request(e.to_string()))?;
        let version = decide::offered(&catalog, &slug, upcoming, now).map_or(agreement.version, |v| v.get());
        let ask = Ask {
            subject: subject.clone(),
            document: agreement.slug.clone(),
            kind,
            version: Some(version),
            evidence: evidence.clone(),
            idempotency_key: Some(IdempotencyKey::for_consent(&claims.nonce, &slug)),
            recorded_by: "consent_page".into(),
            method: Method::ConsentPage,
            sent: None,
            audience: claims.aud.clone(),
        };
        decisions.push(decide::plan(&catalog, &state.subject_keys, ask, now).map_err(ApiError::from)?);
    }
    // One transaction for the whole answer: every agreement is recorded, or none is.
    let recorded = state.recorder.record_all(decisions).await;
    let receipts: Vec<String> = match recorded {
        Ok(all) => {
            all.into_iter().map(|(Recorded::Created(r) | Recorded::Replayed(r))| r.event_id.to_string()).collect()
        }
        Err(ledger::RecordError::Backwards { document, accepted, .. }) => {
            let title = agreements.iter().find(|a| a.slug == document).map_or(document.as_str(), |a| a.title.as_str());
            let text = format!(
                "You accepted version {accepted} of {title} before, and an acceptance cannot go back to an older \
                 version. Nothing was recorded. Go back and choose “Accept, including the upcoming version”."
            );
            let back = format!("/consent?token={}", form.token);
            return Ok(message(StatusCode::CONFLICT, "Please accept the newer version", &text, Some((&back, "Back"))));
        }
        Err(e) => {
            tracing::error!(error = %e, "recording a consent decision failed");
            return Err(PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Your answer could not be recorded; nothing was saved. Please try again in a moment.".into(),
            });
        }
    };
    let outcome = if kind == Kind::Accepted { "accepted" } else { "declined" };
    Ok(see_other(&with_query(&claims.ret, &[("outcome", outcome), ("receipt", &receipts.join(","))])))
}

fn see_other(location: &str) -> HttpResponse {
    let mut resp = HttpResponse::SeeOther().finish();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

// ---- the subject's own record ----

pub struct MeEvent {
    pub when: String,
    pub kind: String,
    pub method: String,
    pub covers: Vec<(String, u32, String)>,
}

pub struct Standing {
    pub slug: String,
    pub title: String,
    pub version: u32,
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    token: String,
    csrf: String,
    subject: String,
    events: Vec<MeEvent>,
    standing: Vec<Standing>,
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct MeQuery {
    pub token: Option<String>,
    pub done: Option<String>,
}

/// `GET /me?token=`: what the subject accepted and when, with a way to withdraw.
pub async fn me(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<MeQuery>,
) -> Result<HttpResponse, PageError> {
    let token = q.token.clone().unwrap_or_default();
    let (_, subject) = match claims_of(&state, &token).await {
        Ok(c) => c,
        Err(e) => return Ok(token_page(e)),
    };
    let catalog = state.catalog.get(&state.db).await?;
    let who = state.subject_keys.key(&subject);
    let (rows, states) =
        state.db.run(move |c| Ok::<_, crate::db::DbError>((events_of(c, &who)?, states_of(c, &who)?))).await?;
    let title_of = |slug: &str| {
        Slug::parse(slug)
            .ok()
            .and_then(|s| catalog.document(&s).map(|d| d.title(Utc::now()).to_owned()))
            .unwrap_or_else(|| slug.to_owned())
    };
    let mut events = Vec::new();
    for event in rows.iter().rev() {
        let receipt = ledger::receipt(event)?;
        let row = &event.row;
        events.push(MeEvent {
            when: human_time(crate::db::from_stored_time(row.recorded_at)),
            kind: row.kind.clone(),
            method: match row.method.as_str() {
                "consent_page" | "me" => "on this site".into(),
                _ => "through the application".into(),
            },
            covers: receipt
                .covers
                .iter()
                .map(|c| (c.document.to_string(), c.version.get(), title_of(c.document.as_str())))
                .collect(),
        });
    }
    let standing = states
        .iter()
        .filter(|s| s.state == "accepted" && rules::agreement(&catalog, &s.document).is_ok())
        .filter_map(|s| {
            Some(Standing {
                slug: s.document.clone(),
                title: title_of(&s.document),
                version: u32::try_from(s.version?).ok()?,
            })
        })
        .collect();
    let (csrf, cookie) = csrf_token(&state, &req);
    let done = match q.done.as_deref() {
        Some("withdrawn") => Some("Your withdrawal is recorded.".to_owned()),
        Some("erasure") => Some(
            "Your request for erasure is recorded. The operator erases your personal data and can tell you when."
                .to_owned(),
        ),
        _ => None,
    };
    let view = MePage { token, csrf, subject: subject.to_string(), events, standing, done };
    Ok(page(view.render(), cookie))
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    pub token: String,
    /// A missing token is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    pub csrf: String,
    pub document: String,
}

/// `POST /me/withdraw`
pub async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<WithdrawForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (_, subject) = match checked_form(&state, &req, &form.token, &form.csrf).await {
        Ok(c) => c,
        Err(page) => return Ok(*page),
    };
    let ask = Ask {
        subject,
        document: form.document,
        kind: Kind::Withdrawn,
        version: None,
        evidence: browser_evidence(&state, &req)?,
        idempotency_key: None,
        recorded_by: "consent_page".into(),
        method: Method::ConsentPage,
        sent: None,
        audience: None,
    };
    let catalog = state.catalog.get(&state.db).await.map_err(ApiError::from)?;
    let decision = decide::plan(&catalog, &state.subject_keys, ask, Utc::now()).map_err(ApiError::from)?;
    match state.recorder.record(decision).await {
        Ok(_) => Ok(see_other(&format!("/me?token={}&done=withdrawn", form.token))),
        Err(ledger::RecordError::NothingToWithdraw(_)) => Err(PageError {
            status: StatusCode::CONFLICT,
            message: "There is no standing acceptance of that document to withdraw.".into(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "recording a withdrawal failed");
            Err(PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Your withdrawal could not be recorded. Please try again.".into(),
            })
        }
    }
}

/// `GET /me/record.json?token=`: the whole record, to keep.
pub async fn record_json(state: web::Data<AppState>, q: web::Query<MeQuery>) -> Result<HttpResponse, PageError> {
    let token = q.token.clone().unwrap_or_default();
    let (_, subject) = match claims_of(&state, &token).await {
        Ok(c) => c,
        Err(e) => return Ok(token_page(e)),
    };
    let who = state.subject_keys.key(&subject);
    let rows = state.db.run(move |c| events_of(c, &who)).await?;
    let events = rows.iter().map(crate::ledger::export::EventView::of).collect::<Result<Vec<_>, _>>()?;
    let body = serde_json::json!({"subject": subject, "exported_at": rfc3339(Utc::now()), "events": events});
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"my-consent-record.json\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string()))
}

/// `GET /me/record?token=`: the printable evidence record.
pub async fn record_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<MeQuery>,
) -> Result<HttpResponse, PageError> {
    let token = q.token.clone().unwrap_or_default();
    let (_, subject) = match claims_of(&state, &token).await {
        Ok(c) => c,
        Err(e) => return Ok(token_page(e)),
    };
    let origin = super::origin(&state, &req).host;
    let view = super::record::record_page(&state, &subject, origin).await?;
    Ok(page(view.render(), None))
}

#[derive(Deserialize)]
pub struct ErasureForm {
    pub token: String,
    /// A missing token is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /me/erasure`: the subject asks for its personal data to be erased.
pub async fn request_erasure(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ErasureForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (_, subject) = match checked_form(&state, &req, &form.token, &form.csrf).await {
        Ok(c) => c,
        Err(page) => return Ok(*page),
    };
    let evidence = browser_evidence(&state, &req)?;
    let key = state.subject_keys.key(&subject);
    match state.recorder.record(ledger::erasure_request(subject, key, evidence)).await {
        Ok(_) => Ok(see_other(&format!("/me?token={}&done=erasure", form.token))),
        Err(e) => {
            tracing::error!(error = %e, "recording an erasure request failed");
            Err(PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Your request could not be recorded. Please try again.".into(),
            })
        }
    }
}
