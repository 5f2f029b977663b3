//! Authentication of agents and admins: `Authorization: Bearer <token>`, as an extractor.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::users::{self, User};

/// A request made by a known agent or admin. Handlers that take it are closed to everyone else.
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or(ApiError::Unauthorized)?
            .to_owned();
        let user = state
            .store
            .run(move |conn| users::by_token(conn, &token))
            .await
            .map_err(ApiError::internal)?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(user))
    }
}
