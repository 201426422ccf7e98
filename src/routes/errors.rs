//! One error type for the JSON API and one for HTML pages. Both log faults of Assent's own
//! (database trouble) and show the user only what they can act on.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

use crate::db::DbError;

/// An API error: `{"error": {"code": "...", "message": "..."}}` with its status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For `backwards`: the newest version the subject accepted, the one to ask for instead.
    pub accepted_version: Option<i32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), accepted_version: None }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable code, such as `not_found`, `backwards` or `other_audience`.
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_version: Option<i32>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        answer(self.status).json(ErrorBody {
            error: ErrorDetail { code: self.code, message: &self.message, accepted_version: self.accepted_version },
        })
    }
}

/// An answer with `status`, and `Retry-After: 1` when it is a 503 (the database is not
/// answering, or has no connection free): a client may try again in a second.
pub fn answer(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        builder.insert_header(("Retry-After", "1"));
    }
    builder
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error");
        if e.is_unavailable() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not answering; try again shortly",
            )
        } else {
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an error of Assent's own; it has been logged")
        }
    }
}

/// An HTML page error.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "That address is not quite right",
            StatusCode::CONFLICT => "That cannot be done",
            _ => "Something went wrong on our side",
        };
        let page = ErrorPage { status: self.status.as_u16(), heading, message: &self.message };
        match page.render() {
            Ok(html) => answer(self.status).content_type("text/html; charset=utf-8").body(html),
            Err(_) => {
                HttpResponse::build(self.status).content_type("text/plain; charset=utf-8").body(self.message.clone())
            }
        }
    }
}

/// An API refusal shown as a page (the same status and message).
impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self { status: e.status, message: e.message }
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error");
        if e.is_unavailable() {
            Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The policy store is not answering. Please try again in a moment.".into(),
            }
        } else {
            Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "Something went wrong on our side; it has been logged.".into(),
            }
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template error");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: "This page could not be drawn.".into() }
    }
}
