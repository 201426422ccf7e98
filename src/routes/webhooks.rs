//! The webhook endpoints of the API (contract §9), admin only: register, list, remove, the
//! delivery log and retrying failed deliveries. The rules are `crate::webhooks`'.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::require;
use super::errors::ErrorBody;
use super::openapi::{AccessErrors, KeyedErrors};
use super::{ApiError, AppState};
use crate::domain::Scope;
use crate::ledger::keys::Authenticated;
use crate::webhooks::{self, DeliveryPage, Endpoint, EventType, Registered, Subscription, WebhookError};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_url", e.to_string()),
            WebhookError::UnknownEvent(_) => ApiError::new(StatusCode::BAD_REQUEST, "unknown_event", e.to_string()),
            WebhookError::BadValue(_) => ApiError::bad_request(e.to_string()),
            WebhookError::NoEndpoint(_) | WebhookError::NoFailedDelivery { .. } => ApiError::not_found(e.to_string()),
            WebhookError::Db(db) => db.into(),
        }
    }
}

/// Webhooks announce every audience's events: only an admin key bound to none manages them.
async fn admin(state: &AppState, req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let key = require(state, req, Scope::Admin).await?;
    key.unbound("manage webhooks, which announce the events of every audience")?;
    Ok(key)
}

/// An endpoint id from the path.
fn endpoint_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("`{raw}` is not a webhook id (a whole number from 1)")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// `http` or `https`, at most 2 KiB; its host must resolve to public addresses only, unless
    /// the server allows private ones (`ASSENT_WEBHOOK_ALLOW_PRIVATE`).
    #[schema(max_length = 2048, pattern = "^https?://[^\\s/?#@]+([/?#][!-~]*)?$")]
    pub url: String,
    /// The types to announce.
    #[schema(min_items = 1, value_type = Vec<EventType>)]
    pub events: Vec<String>,
}

/// Register an endpoint (admin).
///
/// `POST /api/v1/webhooks`
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = ["admin"])), request_body = WebhookBody,
    responses((status = 201, description = "Registered; the secret is shown only now (admin scope)", body = Registered),
        (status = 400, description = "A URL that is not http(s), too long, or leads to a private address; an unknown event type", body = ErrorBody),
        AccessErrors, (status = 413, description = "A body over 16 KiB", body = ErrorBody)))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<WebhookBody>,
) -> Result<HttpResponse, ApiError> {
    let key = admin(&state, &req).await?;
    let WebhookBody { url, events } = body.into_inner();
    let subscription = Subscription::parse(&events)?;
    let allow_private = state.settings.webhooks.allow_private;
    let registered =
        state.db.run(move |c| webhooks::register(c, &url, subscription, &key.name, allow_private, Utc::now())).await?;
    Ok(HttpResponse::Created().json(registered))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhooksJson {
    webhooks: Vec<Endpoint>,
}

/// Every endpoint (admin).
///
/// `GET /api/v1/webhooks`
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = ["admin"])),
    responses((status = 200, description = "Every endpoint, without secrets (admin scope)", body = WebhooksJson), AccessErrors))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admin(&state, &req).await?;
    let webhooks = state.db.run(webhooks::list).await?;
    Ok(HttpResponse::Ok().json(WebhooksJson { webhooks }))
}

/// Remove an endpoint; what it still had to deliver is cancelled (admin).
///
/// `DELETE /api/v1/webhooks/{id}`
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "The endpoint's id", minimum = 1, maximum = 9223372036854775807_i64)),
    responses((status = 204, description = "Removed (admin scope)"), KeyedErrors))]
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin(&state, &req).await?;
    let id = endpoint_id(&id)?;
    state.db.run(move |c| webhooks::remove(c, id, Utc::now())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub state: Option<String>,
    pub before: Option<String>,
    pub limit: Option<String>,
}

/// An endpoint's delivery log, newest first (admin).
///
/// `GET /api/v1/webhooks/{id}/deliveries?state=&before=&limit=`
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "The endpoint's id", minimum = 1, maximum = 9223372036854775807_i64),
        ("state" = Option<String>, Query, description = "Only deliveries in this state", pattern = "^(pending|delivered|failed|cancelled)?$"),
        ("before" = Option<String>, Query, description = "`next` of the page before (a delivery id): older deliveries", pattern = "^([1-9][0-9]{0,17})?$"),
        ("limit" = Option<String>, Query, description = "1 to 1000, default 100", pattern = "^([1-9][0-9]{0,2}|1000)?$")),
    responses((status = 200, description = "Deliveries, newest first, with their attempts and last error (admin scope)", body = DeliveryPage), KeyedErrors))]
pub async fn deliveries(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    admin(&state, &req).await?;
    let id = endpoint_id(&id)?;
    let number = |raw: Option<&str>, name: &str, range: std::ops::RangeInclusive<i64>| {
        raw.filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} `{s}` must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ))
                })
            })
            .transpose()
    };
    let before = number(q.before.as_deref(), "before", 1..=i64::MAX)?;
    let limit = number(q.limit.as_deref(), "limit", 1..=1000)?.unwrap_or(100);
    let wanted = q.state.clone().filter(|s| !s.is_empty());
    let page = state.db.run(move |c| webhooks::deliveries(c, id, wanted.as_deref(), before, limit)).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// One failed delivery to retry; without it, every failed delivery of the endpoint.
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(default, deserialize_with = "super::params::whole_or_none")]
    pub delivery: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RetriedJson {
    /// How many failed deliveries are pending again.
    retried: usize,
}

/// Make failed deliveries pending again, due now, with a new retry period (admin).
///
/// `POST /api/v1/webhooks/{id}/retry`
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/retry", tag = "webhooks", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "The endpoint's id", minimum = 1, maximum = 9223372036854775807_i64)), request_body = RetryBody,
    responses((status = 200, description = "Pending again (admin scope)", body = RetriedJson), KeyedErrors,
        (status = 413, description = "A body over 16 KiB", body = ErrorBody)))]
pub async fn retry(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<RetryBody>,
) -> Result<HttpResponse, ApiError> {
    admin(&state, &req).await?;
    let id = endpoint_id(&id)?;
    let delivery = body.delivery;
    if delivery.is_some_and(|d| d < 1) {
        return Err(ApiError::bad_request("`delivery` is a delivery id (a whole number from 1)"));
    }
    let retried = state.db.run(move |c| webhooks::retry(c, id, delivery, Utc::now())).await?;
    state.recorder.wake_webhooks();
    Ok(HttpResponse::Ok().json(RetriedJson { retried }))
}
