//! `DELETE /api/v1/keys/{name}`: revoking an API key through any server (admin). The rule is
//! `crate::ledger::keys::revoke`, the same one `assent keys revoke` follows; every server
//! refuses the key from the next request on (contract §11).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::auth::require;
use super::openapi::KeyedErrors;
use super::{ApiError, AppState};
use crate::domain::Scope;
use crate::ledger::keys::{self, KeyError};

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid(_) => ApiError::bad_request(e.to_string()),
            KeyError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            KeyError::NoLiveKey(_) => ApiError::not_found(e.to_string()),
            KeyError::Db(db) => db.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The key's name.
    name: String,
    /// When it stopped working, on every server (RFC 3339 UTC).
    #[schema(format = DateTime)]
    revoked_at: String,
}

/// Revoke an API key by name: every server refuses it from the next request on, and the
/// admin sessions opened with it end (admin, bound to no audience).
///
/// `DELETE /api/v1/keys/{name}`
#[utoipa::path(delete, path = "/api/v1/keys/{name}", tag = "keys", security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The key's name, as `assent keys create` gave it", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Revoked (admin scope)", body = Revoked), KeyedErrors))]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = require(&state, &req, Scope::Admin).await?;
    key.unbound("revoke keys, which may belong to any audience")?;
    let name = name.into_inner();
    let revoked_at = {
        let name = name.clone();
        state.db.run(move |c| keys::revoke(c, &name, Utc::now())).await?
    };
    state.freshness.changed_here().await;
    Ok(HttpResponse::Ok().json(Revoked { name, revoked_at: crate::views::rfc3339(revoked_at) }))
}
