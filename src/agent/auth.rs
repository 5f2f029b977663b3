//! Authentication of agents and admins, as an extractor. Two ways in:
//! - `Authorization: Bearer <token>`, for the CRM and scripts: no CSRF token needed, since a
//!   browser never adds that header on its own;
//! - the web session cookie (`crate::web::session`), for the pages' scripts: any request but
//!   GET/HEAD must then also carry `X-CSRF-Token` with the session's token, or it is refused
//!   with 403 (the cookie alone would be sent by the browser on a forged request too).
//!
//! A request with an `Authorization` header is judged by it alone, cookie or not.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::users::User;
use crate::web::session::{self as web_session, CSRF_HEADER};

/// A request made by a known agent or admin. Handlers that take it are closed to everyone else.
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => by_bearer(value, state).await,
            None => by_session(parts, state).await,
        }
    }
}

async fn by_bearer(value: &header::HeaderValue, state: &AppState) -> Result<AuthUser, ApiError> {
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or(ApiError::Unauthorized)?
        .to_owned();
    let user = state
        .store
        .read(move |db| db.user_by_token(&token))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::Unauthorized)?;
    Ok(AuthUser(user))
}

async fn by_session(parts: &Parts, state: &AppState) -> Result<AuthUser, ApiError> {
    let session = web_session::current_session(state, &parts.headers)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::Unauthorized)?;
    if web_session::is_unsafe_method(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !web_session::csrf_matches(sent, &session.csrf_token) {
            tracing::warn!(user = %session.user.name, method = %parts.method, "API request without a valid CSRF token refused");
            return Err(ApiError::Forbidden);
        }
    }
    Ok(AuthUser(session.user))
}
