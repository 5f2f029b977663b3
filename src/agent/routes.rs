//! `GET /api/calls/{CallSid}`: the screen-pop of one call, for agents and admins.
//! `GET /api/me`: who the token or session belongs to (the pages' scripts start from it).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::ScreenPop;
use super::auth::AuthUser;
use crate::domain::CallSid;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::{calls, now_ms};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/calls/{call_sid}", get(screen_pop))
        .route("/api/me", get(me))
}

#[derive(serde::Serialize)]
struct Me {
    name: String,
    role: crate::store::users::Role,
    departments: Vec<String>,
}

async fn me(AuthUser(user): AuthUser) -> Json<Me> {
    Json(Me {
        name: user.name,
        role: user.role,
        departments: user.departments,
    })
}

async fn screen_pop(
    State(state): State<AppState>,
    AuthUser(_user): AuthUser,
    Path(call_sid): Path<String>,
) -> Result<Json<ScreenPop>, ApiError> {
    let sid = CallSid::parse(&call_sid).map_err(|_| ApiError::NotFound)?;
    let pop = state
        .store
        .run(move |conn| {
            let Some(call) = calls::get(conn, sid.as_str())? else {
                return Ok(None);
            };
            ScreenPop::load(conn, &call, now_ms()).map(Some)
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(pop))
}
