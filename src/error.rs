//! The HTTP error type of every handler, mapped to status codes in this one place. Its bodies
//! never carry internals: the details go to the log, the client gets a short reason.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// 409: the request is well-formed but clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 422: a script (or other document) that does not pass its checker, with every problem.
    #[error("{message}")]
    Invalid {
        message: String,
        problems: serde_json::Value,
    },
    /// A request an extractor refused before its handler ran (`crate::api::extract`): 400
    /// (malformed JSON, path or query), 415 (not JSON), 422 (JSON of the wrong shape).
    #[error("{reason}")]
    Rejected { status: StatusCode, reason: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Rejected { status, .. } => *status,
            Self::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = match &self {
            Self::Invalid { message, problems } => {
                serde_json::json!({ "error": message, "problems": problems })
            }
            _ => serde_json::json!({ "error": self.to_string() }),
        };
        let mut response = json_body(status, &body);
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn json_body(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An error answer made outside a handler (the body intake, the layers), in the API's shape.
pub fn refusal(status: StatusCode, reason: &str) -> Response {
    json_body(status, &serde_json::json!({ "error": reason }))
}

/// The paths of the API: the JSON API, Twilio's webhooks and the metrics. Pages have their
/// own HTML error pages.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/twilio/") || path == "/metrics"
}

/// Middleware: an error answer of the API that did not come from a handler (an unknown route's
/// 404, a 405, the in-flight limit's or the timeout's 503, a panic's 500) gets the JSON error
/// body as well, with the status's reason; so every error of the API has one shape.
pub async fn json_error_bodies(request: Request, next: Next) -> Response {
    let api = is_api(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let reason = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": reason }).to_string();
    Response::from_parts(parts, Body::from(body))
}
