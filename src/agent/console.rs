//! The agent console's API (cookie session with CSRF, or a bearer token):
//! - `GET /api/agent/queue`: the calls waiting and the recent ones, of the agent's departments,
//!   with the event number the live stream continues from;
//! - `POST /api/calls/{sid}/outcome`: the agent's outcome of a call;
//! - `GET|PUT /api/settings/visible-attributes`: which account attributes agents see (admins).

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::auth::AuthUser;
use super::live::Tracked;
use super::view::{CallView, Viewer, departments_of, may_see};
use crate::admin::run_use_case;
use crate::api::extract::{Json, Path};
use crate::domain::CallSid;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::events::{self, Kind};
use crate::store::outcomes::Outcome;
use crate::store::users::{Role, User};
use crate::usecases::Actor;
use crate::usecases::settings::set_visible_attributes as set_visible;

/// The most calls the queue view lists in each part.
const QUEUE_LIMIT: u32 = 200;
const RECENT_LIMIT: u32 = 30;
const RECENT_WINDOW_MS: i64 = 12 * 3600 * 1000;
const MAX_NOTE_CHARS: usize = 2000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Queue {
    /// Where `GET /api/agent/events?since=` continues.
    pub last_seq: i64,
    pub waiting: Vec<CallView>,
    pub recent: Vec<CallView>,
    pub departments: Option<Vec<String>>,
    /// Every department of the published scripts, for the outcome's confirmed category.
    pub known_departments: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/agent/queue",
    tag = "agent",
    summary = "The agent's queue",
    description = "The calls waiting and the recent ones, of the agent's departments, with the event number the live stream continues from.",
    responses(
        (status = 200, description = "The queue.", body = Queue),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn queue(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Queue>, ApiError> {
    let departments = departments_of(&user);
    let viewer = Viewer::of(&user);
    let known_departments: Vec<String> = state
        .ivr
        .scripts
        .live()
        .all()
        .flat_map(|s| s.departments.keys().cloned().collect::<Vec<_>>())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let clock = state.clock.clone();
    let queue = state
        .store
        .read(move |db| {
            let now = clock.now_ms();
            // The number first: an event committed while the lists are read is sent again
            // by the stream rather than missed.
            let last_seq = db.last_event_seq()?;
            let depts = departments.as_deref();
            let mut waiting = Vec::new();
            for (sid, dept) in db.waiting_calls(QUEUE_LIMIT)? {
                if events::visible(depts, dept.as_deref())
                    && let Some(v) = CallView::by_sid(db, &sid, viewer, now)?
                {
                    waiting.push(v);
                }
            }
            let mut recent = Vec::new();
            let since = now - RECENT_WINDOW_MS;
            for (sid, dept) in db.recent_handoffs(since, QUEUE_LIMIT)? {
                if recent.len() >= RECENT_LIMIT as usize {
                    break;
                }
                if events::visible(depts, dept.as_deref())
                    && let Some(v) = CallView::by_sid(db, &sid, viewer, now)?
                {
                    recent.push(v);
                }
            }
            Ok(Queue {
                last_seq,
                waiting,
                recent,
                departments,
                known_departments,
            })
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(queue))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OutcomeForm {
    pub resolved: bool,
    /// The department the call really was for.
    pub category: String,
    #[serde(default)]
    pub note: String,
    /// The "recurring problem" tag.
    #[serde(default)]
    pub recurring: bool,
}

fn clean_note(note: &str) -> Result<String, ApiError> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(note
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect())
}

/// `POST /api/calls/{sid}/outcome`: stores the agent's outcome with the call and tells the
/// consoles. A call of another department is answered 404, like one that does not exist.
#[utoipa::path(
    post,
    path = "/api/calls/{call_sid}/outcome",
    tag = "agent",
    summary = "Record a call's outcome",
    description = "Stores the agent's outcome of a call and tells the consoles. A call of another department is answered 404.",
    params(("call_sid" = String, Path, description = "The call's CallSid (`CA` and 32 hex digits).")),
    request_body = OutcomeForm,
    responses(
        (status = 200, description = "The call as the console shows it.", body = CallView),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "A cookie request that changes something without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn record_outcome(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(call_sid): Path<String>,
    Json(form): Json<OutcomeForm>,
) -> Result<Json<CallView>, ApiError> {
    let sid = CallSid::parse(&call_sid).map_err(|_| ApiError::NotFound)?;
    let category = match crate::store::users::parse_departments(&form.category) {
        Ok(list) if list.len() == 1 => list.into_iter().next().unwrap_or_default(),
        _ => {
            return Err(ApiError::BadRequest(
                "category must be one department name".into(),
            ));
        }
    };
    let note = clean_note(&form.note)?;
    let viewer = Viewer::of(&user);
    let agent = user.name.clone();
    let sid_str = sid.as_str().to_owned();
    let clock = state.clock.clone();
    let result = state
        .store
        .write(move |db| {
            let Some(call) = db.call(&sid_str)? else {
                return Ok(Err(ApiError::NotFound));
            };
            if !may_see(&user, call.department.as_deref()) {
                return Ok(Err(ApiError::NotFound));
            }
            if call.handed_off_at.is_none() {
                return Ok(Err(ApiError::BadRequest(
                    "the call was not handed to an agent".into(),
                )));
            }
            let now = clock.now_ms();
            db.record_outcome(
                &sid_str,
                &Outcome {
                    resolved: form.resolved,
                    category,
                    note,
                    recurring: form.recurring,
                    agent,
                    at: now,
                },
            )?;
            // An agent who records an outcome has taken the call.
            if db.queue_status(&sid_str)?.as_deref() == Some(events::WAITING) {
                db.set_queue_status(&sid_str, events::ANSWERED, now)?;
            }
            let seq =
                db.append_call_event(&sid_str, Kind::Outcome, call.department.as_deref(), now)?;
            let view = CallView::by_sid(db, &sid_str, viewer, now)?;
            Ok(Ok((seq, view)))
        })
        .await
        .map_err(ApiError::internal)??;
    let (seq, view) = result;
    state.hub.publish(&Tracked {
        events: vec![seq],
        crm_queued: false,
    });
    tracing::info!(call_sid = %sid, "call outcome recorded");
    view.map(Json).ok_or(ApiError::NotFound)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisibleAttributes {
    /// The keys agents see; `null` for every attribute.
    pub attributes: Option<Vec<String>>,
}

fn admin_only(user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[utoipa::path(
    get,
    path = "/api/settings/visible-attributes",
    tag = "settings",
    summary = "Attributes agents see",
    description = "Which account attributes agents see (`null`: all). Admins only: agents get 403.",
    responses(
        (status = 200, description = "The setting.", body = VisibleAttributes),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn visible_attributes(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<VisibleAttributes>, ApiError> {
    admin_only(&user)?;
    let attributes = state
        .store
        .read(|db| db.visible_attributes())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(VisibleAttributes { attributes }))
}

#[utoipa::path(
    put,
    path = "/api/settings/visible-attributes",
    tag = "settings",
    summary = "Set the attributes agents see",
    description = "Sets which account attributes agents see (`null`: all). Admins only: agents get 403.",
    request_body = VisibleAttributes,
    responses(
        (status = 200, description = "The new setting.", body = VisibleAttributes),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn set_visible_attributes(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Json(body): Json<VisibleAttributes>,
) -> Result<Json<VisibleAttributes>, ApiError> {
    admin_only(&user)?;
    let actor = Actor::user(&user.name);
    let clock = state.clock.clone();
    let keys = run_use_case(&state, move |db| {
        set_visible(db, &actor, body.attributes.as_deref(), clock.now_ms())
    })
    .await?;
    Ok(Json(VisibleAttributes { attributes: keys }))
}
