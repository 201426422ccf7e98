//! The subject endpoints: status, acceptances, declines, withdrawals and the event history.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::require;
use super::errors::ErrorBody;
use super::openapi::{AccessErrors, KeyedErrors};
use super::params::{IpAddress, SubjectPath};
use super::{ApiError, AppState};
use crate::db::ledger::events_of;
use crate::domain::rules::{self, AudienceError, Refusal, State};
use crate::domain::{IdempotencyKey, Scope, SubjectId};
use crate::ledger::decide::{self, Ask, DecideError};
use crate::ledger::export::EventView;
use crate::ledger::{self, Evidence, Method, RecordError, Recorded};
use crate::views::rfc3339;

/// The subject id from the path, exactly as the host application sent it.
fn subject(req: &HttpRequest) -> Result<SubjectId, ApiError> {
    // The raw segment, decoded here: the router's own decoding replaces invalid UTF-8 with
    // U+FFFD, which would quietly turn one subject into another.
    let raw = req.uri().path().strip_prefix("/api/v1/subjects/").and_then(|rest| rest.split('/').next()).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the subject id is not valid UTF-8"))?;
    SubjectId::parse(&decoded).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentStatusJson {
    slug: String,
    state: State,
    accepted_version: Option<u32>,
    current_version: Option<u32>,
    upcoming_version: Option<u32>,
    required_since: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusJson<'a> {
    #[schema(value_type = String)]
    subject: &'a SubjectId,
    up_to_date: bool,
    documents: Vec<DocumentStatusJson>,
}

#[derive(Deserialize)]
pub struct AudienceQuery {
    pub audience: Option<String>,
}

impl From<AudienceError> for ApiError {
    fn from(e: AudienceError) -> Self {
        match e {
            AudienceError::OtherThanKeys { .. } | AudienceError::Bound { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "other_audience", e.to_string())
            }
            AudienceError::Invalid(_) | AudienceError::Unknown(..) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_audience", e.to_string())
            }
        }
    }
}

/// Is this subject up to date?
///
/// `GET /api/v1/subjects/{id}/status[?audience=]`
#[utoipa::path(get, path = "/api/v1/subjects/{subject}/status", tag = "subjects", security(("bearer" = ["read"])),
    params(SubjectPath, ("audience" = Option<String>, Query, description = "Only the agreements of this audience")),
    responses((status = 200, description = "Whether the subject is up to date (read scope)", body = StatusJson), KeyedErrors))]
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AudienceQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Read).await?;
    let subject = subject(&req)?;
    let catalog = state.catalog.get(&state.db).await?;
    let audience = rules::audience_for(&catalog, key.audience.as_ref(), q.audience.as_deref())?;
    let who = state.subject_keys.key(&subject);
    let decisions = state.db.read(move |c| ledger::decisions(c, &who)).await?;
    let statuses = rules::status(&catalog, &decisions, audience.as_ref(), Utc::now());
    let body = StatusJson {
        subject: &subject,
        up_to_date: statuses.iter().all(rules::DocumentStatus::satisfied),
        documents: statuses
            .into_iter()
            .map(|s| DocumentStatusJson {
                slug: s.slug.to_string(),
                state: s.state,
                accepted_version: s.accepted_version.map(|v| v.get()),
                current_version: s.current_version.map(|v| v.get()),
                upcoming_version: s.upcoming_version.map(|v| v.get()),
                required_since: s.required_since.map(rfc3339),
            })
            .collect(),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// What the host application saw of the subject's client.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    #[schema(value_type = Option<IpAddress>, inline)]
    pub ip: Option<String>,
    /// At most 1,024 bytes, without control characters.
    #[schema(max_length = 1024, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub user_agent: Option<String>,
    /// The language the subject read the document in (as sent), at most 64 bytes.
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub locale: Option<String>,
}

impl EvidenceBody {
    /// The evidence the ledger keeps: checked, and the address minimised as configured
    /// (`ASSENT_IP_MODE`). One path for the API and Assent's own pages.
    pub fn minimised(&self, state: &AppState) -> Result<Evidence, crate::domain::InvalidValue> {
        Evidence::new(
            self.ip.as_deref(),
            self.user_agent.as_deref(),
            self.locale.as_deref(),
            state.settings.ip_mode,
            &state.ip_secret,
        )
    }
}

/// An acceptance or a decline.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// The agreement (a slug).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "service-agreement")]
    pub document: String,
    /// The current version, or an upcoming one.
    #[schema(minimum = 1, example = 1)]
    #[serde(deserialize_with = "super::params::whole")]
    pub version: u32,
    #[serde(default)]
    pub evidence: EvidenceBody,
    /// The same key again returns the first receipt: 1 to 200 bytes without control characters,
    /// not starting with `consent:` (the consent page's own).
    #[schema(min_length = 1, max_length = 200, pattern = "^(?!consent:)[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    pub idempotency_key: Option<String>,
}

/// A withdrawal of the standing acceptance of an agreement.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalBody {
    /// The agreement (a slug).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "service-agreement")]
    pub document: String,
    #[serde(default)]
    pub evidence: EvidenceBody,
    #[schema(min_length = 1, max_length = 200, pattern = "^(?!consent:)[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    pub idempotency_key: Option<String>,
}

/// A decision as it was sent, in the one form the request hash has always been taken over (so
/// that keys recorded by earlier builds still replay): `{document, version, evidence,
/// idempotency_key}`, `version` null for a withdrawal.
#[derive(Serialize)]
struct Sent<'a> {
    document: &'a str,
    version: Option<u32>,
    evidence: &'a EvidenceBody,
    idempotency_key: &'a Option<String>,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        match r {
            Refusal::UnknownDocument(_) | Refusal::UnknownVersion { .. } => ApiError::not_found(message),
            Refusal::Superseded { .. } => ApiError::new(StatusCode::CONFLICT, "superseded", message),
            Refusal::OtherAudience { .. } => ApiError::new(StatusCode::FORBIDDEN, "other_audience", message),
            Refusal::Informational(_) | Refusal::PartOf { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_an_agreement", message)
            }
        }
    }
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Refused(r) => r.into(),
            DecideError::Invalid(message) => ApiError::bad_request(message),
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::IdempotencyConflict => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                "this idempotency_key was already used for a different request",
            ),
            RecordError::NothingToWithdraw(_) => {
                ApiError::new(StatusCode::CONFLICT, "nothing_to_withdraw", e.to_string())
            }
            RecordError::Backwards { accepted, .. } => ApiError {
                accepted_version: Some(accepted),
                ..ApiError::new(StatusCode::CONFLICT, "backwards", e.to_string())
            },
            RecordError::NothingToErase => ApiError::not_found(e.to_string()),
            RecordError::Db(db) => db.into(),
        }
    }
}

/// Record an acceptance.
///
/// `POST /api/v1/subjects/{id}/acceptances`
#[utoipa::path(post, path = "/api/v1/subjects/{subject}/acceptances", tag = "subjects", security(("bearer" = ["write"])),
    params(SubjectPath), request_body = DecisionBody,
    responses((status = 201, description = "Recorded and committed (write scope)", body = crate::ledger::Receipt),
        (status = 200, description = "The same idempotency key and request again: the first receipt", body = crate::ledger::Receipt),
        KeyedErrors, (status = 409, description = "Superseded, or a step backwards", body = ErrorBody),
        (status = 413, description = "A body over 16 KiB", body = ErrorBody),
        (status = 422, description = "Not an agreement, or an idempotency key reused for another request", body = ErrorBody)))]
pub async fn accept(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    decide(state, req, body.document, Some(body.version), body.evidence, body.idempotency_key, ledger::Kind::Accepted)
        .await
}

/// Record a decline.
///
/// `POST /api/v1/subjects/{id}/declines`
#[utoipa::path(post, path = "/api/v1/subjects/{subject}/declines", tag = "subjects", security(("bearer" = ["write"])),
    params(SubjectPath), request_body = DecisionBody,
    responses((status = 201, description = "Recorded and committed (write scope)", body = crate::ledger::Receipt),
        (status = 200, description = "A replay", body = crate::ledger::Receipt), KeyedErrors,
        (status = 409, description = "Superseded", body = ErrorBody), (status = 413, description = "A body over 16 KiB", body = ErrorBody),
        (status = 422, description = "Not an agreement, or an idempotency key reused", body = ErrorBody)))]
pub async fn decline(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    decide(state, req, body.document, Some(body.version), body.evidence, body.idempotency_key, ledger::Kind::Declined)
        .await
}

/// Withdraw the standing acceptance of an agreement.
///
/// `POST /api/v1/subjects/{id}/withdrawals`
#[utoipa::path(post, path = "/api/v1/subjects/{subject}/withdrawals", tag = "subjects", security(("bearer" = ["write"])),
    params(SubjectPath), request_body = WithdrawalBody,
    responses((status = 201, description = "Recorded and committed (write scope)", body = crate::ledger::Receipt),
        (status = 200, description = "A replay", body = crate::ledger::Receipt), KeyedErrors,
        (status = 409, description = "Nothing stands accepted", body = ErrorBody), (status = 413, description = "A body over 16 KiB", body = ErrorBody),
        (status = 422, description = "Not an agreement, or an idempotency key reused", body = ErrorBody)))]
pub async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<WithdrawalBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    decide(state, req, body.document, None, body.evidence, body.idempotency_key, ledger::Kind::Withdrawn).await
}

#[allow(clippy::too_many_arguments)]
async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    document: String,
    version: Option<u32>,
    evidence: EvidenceBody,
    idempotency_key: Option<String>,
    kind: ledger::Kind,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Write).await?;
    // The request as sent, for telling a retry from a different request under one key.
    let sent = idempotency_key.as_ref().map(|_| {
        let body = Sent { document: &document, version, evidence: &evidence, idempotency_key: &idempotency_key };
        serde_json::json!({"kind": kind.as_str(), "body": body}).to_string()
    });
    let ask = Ask {
        subject: subject(&req)?,
        document,
        kind,
        version,
        evidence: evidence.minimised(&state).map_err(|e| ApiError::bad_request(e.to_string()))?,
        idempotency_key: idempotency_key
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        recorded_by: key.name,
        method: Method::Api,
        sent,
        audience: key.audience,
    };
    let catalog = state.catalog.get(&state.db).await?;
    let decision = decide::plan(&catalog, &state.subject_keys, ask, Utc::now())?;
    // The event is committed before the answer is sent.
    match state.recorder.record(decision).await? {
        Recorded::Created(receipt) => Ok(HttpResponse::Created().json(receipt)),
        Recorded::Replayed(receipt) => Ok(HttpResponse::Ok().json(receipt)),
    }
}

/// Every event of the subject, oldest first.
///
/// `GET /api/v1/subjects/{id}/events`
#[utoipa::path(get, path = "/api/v1/subjects/{subject}/events", tag = "subjects", security(("bearer" = ["read"])), params(SubjectPath),
    responses((status = 200, description = "Every event of the subject, oldest first (read scope)", body = [crate::ledger::export::EventView]), KeyedErrors))]
pub async fn events(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Read).await?;
    let subject = subject(&req)?;
    let who = state.subject_keys.key(&subject);
    let rows = state.db.run(move |c| events_of(c, &who)).await?;
    let catalog = state.catalog.get(&state.db).await?;
    let visible = rules::Visible::to(&catalog, key.audience.as_ref());
    let out = rows
        .iter()
        .filter(|e| visible.sees(e.row.document.as_deref()))
        .map(EventView::of)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(out))
}

/// Erase the subject's personal data (admin).
///
/// `DELETE /api/v1/subjects/{id}`
#[utoipa::path(delete, path = "/api/v1/subjects/{subject}", tag = "subjects", security(("bearer" = ["admin"])), params(SubjectPath),
    responses((status = 200, description = "The subject's personal data is erased (admin scope)", body = crate::ledger::Erasure), KeyedErrors))]
pub async fn erase(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Admin).await?;
    key.unbound("erase a subject, whose record spans every audience")?;
    let subject = subject(&req)?;
    let subject_key = state.subject_keys.key(&subject);
    let job = ledger::lane::EraseJob { subject, subject_key, recorded_by: key.name, method: Method::Api };
    let erasure = state.recorder.erase(job).await?;
    Ok(HttpResponse::Ok().json(erasure))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasureRequestsJson {
    requests: Vec<EventView>,
}

/// Erasure requests from `/me` not yet followed by an erasure (admin).
///
/// `GET /api/v1/erasure-requests`
#[utoipa::path(get, path = "/api/v1/erasure-requests", tag = "subjects", security(("bearer" = ["admin"])),
    responses((status = 200, description = "Erasure requests not yet carried out (admin scope)", body = ErasureRequestsJson), AccessErrors))]
pub async fn erasure_requests(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Admin).await?;
    key.unbound("list erasure requests, which concern every audience")?;
    let rows = state.db.run(|c| crate::db::ledger::open_erasure_requests(c, 1_000)).await?;
    let requests = rows.iter().map(EventView::of).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(ErasureRequestsJson { requests }))
}
