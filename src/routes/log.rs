//! The log's endpoints (contract §7): the verifier key, the newest signed checkpoint, proofs,
//! and the leaves themselves, so an auditor can rebuild the tree from the API alone.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::auth::require;
use super::errors::ErrorBody;
use super::openapi::AccessErrors;
use super::{ApiError, AppState};
use crate::domain::Scope;
use crate::log::{self, ProofError};

impl From<ProofError> for ApiError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::OutOfRange(message) => ApiError::bad_request(message),
            ProofError::Db(db) => db.into(),
        }
    }
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").insert_header(("Cache-Control", "no-cache")).body(body)
}

/// The log's verifier key in signed-note form (public).
///
/// `GET /api/v1/log/key`
#[utoipa::path(get, path = "/api/v1/log/key", tag = "log",
    responses((status = 200, description = "The verifier key: name+keyid+base64", body = String, content_type = "text/plain")))]
pub async fn key(state: web::Data<AppState>) -> HttpResponse {
    text(format!("{}\n", state.log_key.verifier()))
}

/// The newest checkpoint, signed.
pub async fn newest_checkpoint(state: &AppState) -> Result<String, ApiError> {
    let head = state.db.run(log::head).await?;
    Ok(state.log_key.checkpoint(head.size, &head.root))
}

/// The log's newest signed checkpoint.
///
/// `GET /api/v1/log/checkpoint`
#[utoipa::path(get, path = "/api/v1/log/checkpoint", tag = "log", security(("bearer" = ["read"])),
    responses((status = 200, description = "The newest signed checkpoint (read scope)", body = String, content_type = "text/plain"), AccessErrors))]
pub async fn checkpoint(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    require(&state, &req, Scope::Read).await?;
    Ok(text(newest_checkpoint(&state).await?))
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    pub index: u64,
    pub size: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InclusionJson {
    index: u64,
    size: u64,
    hashes: Vec<String>,
}

/// A leaf's RFC 9162 audit path in the tree of the first `size` leaves.
///
/// `GET /api/v1/log/proof/inclusion?index=I&size=N`
#[utoipa::path(get, path = "/api/v1/log/proof/inclusion", tag = "log", security(("bearer" = ["read"])),
    params(("index" = u64, Query, description = "The leaf, below `size`"), ("size" = u64, Query, description = "A tree size, at most the newest checkpoint's")),
    responses((status = 200, description = "The audit path of a leaf (read scope)", body = InclusionJson), (status = 400, description = "Out of range", body = ErrorBody), AccessErrors))]
pub async fn inclusion(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &req, Scope::Read).await?;
    let InclusionQuery { index, size } = q.into_inner();
    let hashes = state.db.run(move |c| log::inclusion_proof(c, index, size)).await?;
    Ok(HttpResponse::Ok().json(InclusionJson { index, size, hashes: hashes.iter().map(log::to_hex).collect() }))
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    pub from: u64,
    pub size: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsistencyJson {
    from: u64,
    size: u64,
    hashes: Vec<String>,
}

/// The RFC 9162 proof that the tree of `from` leaves is a prefix of that of `size`.
///
/// `GET /api/v1/log/proof/consistency?from=M&size=N`
#[utoipa::path(get, path = "/api/v1/log/proof/consistency", tag = "log", security(("bearer" = ["read"])),
    params(("from" = u64, Query, description = "The older tree size, at most `size`"), ("size" = u64, Query, description = "A tree size, at most the newest checkpoint's")),
    responses((status = 200, description = "A consistency proof (read scope)", body = ConsistencyJson), (status = 400, description = "Out of range", body = ErrorBody), AccessErrors))]
pub async fn consistency(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &req, Scope::Read).await?;
    let ConsistencyQuery { from, size } = q.into_inner();
    let hashes = state.db.run(move |c| log::consistency_proof(c, from, size)).await?;
    Ok(HttpResponse::Ok().json(ConsistencyJson { from, size, hashes: hashes.iter().map(log::to_hex).collect() }))
}

#[derive(Deserialize)]
pub struct LeavesQuery {
    pub start: u64,
    pub end: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeafJson {
    index: i64,
    data: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeavesJson {
    leaves: Vec<LeafJson>,
}

/// At most 1,000 leaves of the log, each its exact bytes in base64.
///
/// `GET /api/v1/log/leaves?start=A&end=B`
#[utoipa::path(get, path = "/api/v1/log/leaves", tag = "log", security(("bearer" = ["read"])),
    params(("start" = u64, Query, description = "The first leaf, at most `end`"), ("end" = u64, Query, description = "The leaf after the last, at most the tree's size (at most 1,000 leaves are returned)")),
    responses((status = 200, description = "Leaves' exact bytes in base64, at most 1,000 (read scope)", body = LeavesJson), (status = 400, description = "Out of range", body = ErrorBody), AccessErrors))]
pub async fn leaves(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LeavesQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &req, Scope::Read).await?;
    let LeavesQuery { start, end } = q.into_inner();
    let rows = state.db.run(move |c| log::leaves(c, start, end)).await?;
    let leaves =
        rows.into_iter().map(|r| LeafJson { index: r.idx, data: STANDARD.encode(r.data.as_bytes()) }).collect();
    Ok(HttpResponse::Ok().json(LeavesJson { leaves }))
}
