//! `GET /api/calls/{CallSid}`: the screen-pop of one call, for agents (of its department) and
//! admins. `GET /api/me`: who the token or session belongs to (the pages' scripts start from
//! it). The agent console's own endpoints are in `console` and `live`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};

use super::ScreenPop;
use super::auth::AuthUser;
use super::view::{Viewer, may_see};
use super::{console, live};
use crate::api::extract::{Json, Path};
use crate::domain::CallSid;
use crate::error::ApiError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/calls/{call_sid}", get(screen_pop))
        .route(
            "/api/calls/{call_sid}/outcome",
            post(console::record_outcome),
        )
        .route("/api/agent/queue", get(console::queue))
        .route("/api/agent/events", get(live::stream))
        .route(
            "/api/settings/visible-attributes",
            get(console::visible_attributes).put(console::set_visible_attributes),
        )
        .route("/api/me", get(me))
        .merge(super::pop::router())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Me {
    name: String,
    role: crate::store::users::Role,
    departments: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/me",
    tag = "agent",
    summary = "Who am I",
    description = "The user the token or session belongs to.",
    responses(
        (status = 200, description = "The user.", body = Me),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
async fn me(AuthUser(user): AuthUser) -> Json<Me> {
    Json(Me {
        name: user.name,
        role: user.role,
        departments: user.departments,
    })
}

#[utoipa::path(
    get,
    path = "/api/calls/{call_sid}",
    tag = "agent",
    summary = "A call's screen-pop",
    description = "Who is calling (the caller's number masked for agents, in full for admins), how sure callgate is and why, and the risk flags. A call of another department is answered 404, like one that does not exist.",
    params(("call_sid" = String, Path, description = "The call's CallSid (`CA` and 32 hex digits).")),
    responses(
        (status = 200, description = "The screen-pop.", body = ScreenPop),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
async fn screen_pop(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(call_sid): Path<String>,
) -> Result<Json<ScreenPop>, ApiError> {
    let sid = CallSid::parse(&call_sid).map_err(|_| ApiError::NotFound)?;
    let now = state.clock.now_ms();
    let pop = state
        .store
        .read(move |db| {
            let Some(call) = db.call(sid.as_str())? else {
                return Ok(None);
            };
            // Another department's call is answered as if it did not exist.
            if !may_see(&user, call.department.as_deref()) {
                return Ok(None);
            }
            ScreenPop::load(db, &call, now, Viewer::of(&user)).map(Some)
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(pop))
}
