//! `Admin`: an `AuthUser` (token or session cookie with CSRF) whose role is admin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::agent::auth::AuthUser;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::users::{Role, User};

pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
        Ok(Self(user))
    }
}
