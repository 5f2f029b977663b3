//! `GET /api/calls/{sid}/journey`: a call's journey, step by step, with the time spent at each,
//! for admins tracing where callers struggle.

use axum::extract::State;
use serde::Serialize;

use super::auth::Admin;
use crate::agent::view::Viewer;
use crate::api::extract::{Json, Path};
use crate::domain::CallSid;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::to_rfc3339;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Journey {
    call_sid: String,
    /// Masked, by the one rule for callers' numbers (`Viewer::caller_number`): a journey traces
    /// where callers struggle, which needs no one's number.
    caller: String,
    script: String,
    script_version: Option<i64>,
    level: &'static str,
    department: Option<String>,
    end_reason: Option<String>,
    /// How long the caller waited in the queue (hand-off to its result), when known.
    queue_wait_ms: Option<i64>,
    /// What the agent recorded: resolved, confirmed category, note, recurring-problem tag.
    outcome: Option<crate::store::outcomes::Outcome>,
    events: Vec<Event>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = JourneyEvent)]
pub struct Event {
    at: Option<String>,
    step: String,
    event: String,
    detail: Option<String>,
    /// Time until the next event: what this moment of the call cost the caller.
    spent_ms: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/calls/{call_sid}/journey",
    operation_id = "call_journey",
    tag = "calls",
    summary = "A call's journey",
    description = "The call step by step, with the time spent at each step. Admins only: agents get 403.",
    params(("call_sid" = String, Path, description = "The call's CallSid (`CA` and 32 hex digits).")),
    responses(
        (status = 200, description = "The journey.", body = Journey),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(sid): Path<String>,
) -> Result<Json<Journey>, ApiError> {
    let sid = CallSid::parse(&sid).map_err(|_| ApiError::NotFound)?;
    let (call, outcome) = state
        .store
        .read(move |db| {
            let call = db.call(sid.as_str())?;
            let outcome = db.outcome(sid.as_str())?;
            Ok(call.map(|c| (c, outcome)))
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let journey = &call.state.journey;
    let queue_wait_ms = call.handed_off_at.and_then(|from| {
        journey
            .iter()
            .find(|e| e.event == "hand-off ended")
            .map(|e| e.at - from)
    });
    let events = journey
        .iter()
        .enumerate()
        .map(|(i, e)| Event {
            at: to_rfc3339(e.at),
            step: e.step.clone(),
            event: e.event.clone(),
            detail: e.detail.clone(),
            spent_ms: journey.get(i + 1).map(|next| next.at - e.at),
        })
        .collect();
    Ok(Json(Journey {
        caller: Viewer::Analysis.caller_number(&call.caller),
        level: call.level().as_str(),
        department: call.department.clone(),
        end_reason: call.end_reason.clone(),
        queue_wait_ms,
        outcome,
        script: call.script.clone(),
        script_version: call.script_version,
        call_sid: call.call_sid,
        events,
    }))
}
