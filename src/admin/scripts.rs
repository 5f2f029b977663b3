//! `/api/scripts`: list, read, save drafts (422 with every problem when the checker refuses),
//! versions, publish and roll back; `/api/audit`: the trail. Publishing swaps the live set at
//! once: the next call takes the new version, calls in progress keep theirs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::graph::{self, Graph};
use super::run_use_case;
use crate::api::extract::{Json, Path, Query};
use crate::error::ApiError;
use crate::ivr::script::{self, Problem};
use crate::startup::AppState;
use crate::store::{Db, audit, scripts as stored};
use crate::usecases::Actor;
use crate::usecases::scripts::{self as use_case, Draft, MAX_SOURCE_BYTES};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScriptSummary {
    #[serde(flatten)]
    row: stored::ScriptRow,
    description: Option<String>,
    numbers: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/scripts",
    operation_id = "list_scripts",
    tag = "scripts",
    summary = "List the IVR scripts",
    description = "Every script with its published and latest versions, description and numbers. Admins only: agents get 403.",
    responses(
        (status = 200, description = "The scripts.", body = Vec<ScriptSummary>),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Json<Vec<ScriptSummary>>, ApiError> {
    let rows = state
        .store
        .read(|db| db.scripts())
        .await
        .map_err(ApiError::internal)?;
    let live = state.ivr.scripts.live();
    Ok(Json(
        rows.into_iter()
            .map(|row| {
                let published = live.get(&row.name);
                ScriptSummary {
                    description: published.as_ref().and_then(|s| s.description.clone()),
                    numbers: published.map(|s| s.numbers.clone()).unwrap_or_default(),
                    row,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    version: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScriptDetail {
    name: String,
    version: i64,
    published_version: Option<i64>,
    latest_version: i64,
    source: String,
    problems: Vec<Problem>,
    graph: Option<Graph>,
}

/// A script's published version (or `?version=N`), with its problems and its graph.
#[utoipa::path(
    get,
    path = "/api/scripts/{name}",
    operation_id = "show_script",
    tag = "scripts",
    summary = "Read a script",
    description = "A script's published version (or `?version=N`, else the latest), with its problems and graph. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name."), VersionQuery),
    responses(
        (status = 200, description = "The script.", body = ScriptDetail),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<ScriptDetail>, ApiError> {
    let lookup = name.clone();
    let found = state
        .store
        .read(move |db| {
            let published = db.published_version(&lookup)?;
            let Some((latest, latest_source)) = db.latest_script(&lookup)? else {
                return Ok(None);
            };
            let version = q.version.or(published).unwrap_or(latest);
            let source = if version == latest {
                Some(latest_source)
            } else {
                db.script_source(&lookup, version)?
            };
            Ok(source.map(|s| (version, published, latest, s)))
        })
        .await
        .map_err(ApiError::internal)?;
    let (version, published_version, latest_version, source) = found.ok_or(ApiError::NotFound)?;
    let checked = script::check(&source, state.ivr.scripts.env());
    Ok(Json(ScriptDetail {
        name,
        version,
        published_version,
        latest_version,
        graph: checked.script.as_ref().map(graph::build),
        problems: checked.problems,
        source,
    }))
}

#[derive(Deserialize)]
struct SourceBody {
    source: String,
}

/// The script text of a request: JSON `{"source": "..."}`, or the TOML itself as the body.
fn source_of(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    if body.len() > MAX_SOURCE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "a script may be at most {MAX_SOURCE_BYTES} bytes"
        )));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        let parsed: SourceBody =
            serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        Ok(parsed.source)
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("the script must be UTF-8 text".into()))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    ok: bool,
    name: Option<String>,
    problems: Vec<Problem>,
    graph: Option<Graph>,
}

/// The editor's live check: nothing is saved.
#[utoipa::path(
    post,
    path = "/api/scripts/check",
    tag = "scripts",
    summary = "Check a draft",
    description = "Runs the checker on a script text without saving anything: the editor's live check. Admins only: agents get 403.",
    request_body(description = "The script: JSON `{\"source\": \"...\"}`, or the TOML text itself as the body.", content((crate::openapi::SourceBody = "application/json"), (String = "application/toml"), (String = "text/plain"))),
    responses(
        (status = 200, description = "The checker's verdict, problems and graph.", body = CheckResult),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn check_draft(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CheckResult>, ApiError> {
    let source = source_of(&headers, &body)?;
    let checked = script::check(&source, state.ivr.scripts.env());
    let ok = checked.script.is_some();
    Ok(Json(CheckResult {
        ok,
        name: checked.script.as_ref().map(|s| s.name.clone()),
        graph: checked.script.as_ref().map(graph::build),
        problems: checked.problems,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Saved {
    name: String,
    version: i64,
    published: bool,
    problems: Vec<Problem>,
}

/// `PUT /api/scripts/{name}`: saves a draft version (a new script when the name is new).
#[utoipa::path(
    put,
    path = "/api/scripts/{name}",
    operation_id = "save_script",
    tag = "scripts",
    summary = "Save a draft version",
    description = "Saves a new draft version (a new script when the name is new). Nothing is published. The script must pass the checker and carry the name of the URL. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name.")),
    request_body(description = "The script: JSON `{\"source\": \"...\"}`, or the TOML text itself as the body.", content((crate::openapi::SourceBody = "application/json"), (String = "application/toml"), (String = "text/plain"))),
    responses(
        (status = 201, description = "Saved as a new draft version; `problems` holds any warnings.", body = Saved),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The script does not pass the checker: `problems` lists every problem.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn save(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Saved>), ApiError> {
    let source = source_of(&headers, &body)?;
    let draft = Draft::check(&name, source, state.ivr.scripts.env()).map_err(ApiError::from)?;
    let actor = Actor::user(&user.name);
    let clock = state.clock.clone();
    let saved = run_use_case(&state, move |db| {
        use_case::save_draft(db, &actor, draft, "api", clock.now_ms())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Saved {
            name: saved.name,
            version: saved.version,
            published: false,
            problems: saved.warnings,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/scripts/{name}/versions",
    operation_id = "list_script_versions",
    tag = "scripts",
    summary = "List a script's versions",
    description = "Every saved version of a script, newest first. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name.")),
    responses(
        (status = 200, description = "The versions.", body = Vec<crate::store::scripts::Version>),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn versions(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(name): Path<String>,
) -> Result<Json<Vec<stored::Version>>, ApiError> {
    let list = state
        .store
        .read(move |db| db.script_versions(&name))
        .await
        .map_err(ApiError::internal)?;
    if list.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(list))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionSource {
    name: String,
    version: i64,
    source: String,
}

#[utoipa::path(
    get,
    path = "/api/scripts/{name}/versions/{version}",
    operation_id = "show_script_version",
    tag = "scripts",
    summary = "Read one version",
    description = "The source of one saved version. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name."), ("version" = i64, Path, description = "The version number.")),
    responses(
        (status = 200, description = "The version's source.", body = VersionSource),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn version(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path((name, version)): Path<(String, i64)>,
) -> Result<Json<VersionSource>, ApiError> {
    let n = name.clone();
    let source = state
        .store
        .read(move |db| db.script_source(&n, version))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(VersionSource {
        name,
        version,
        source,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PublishBody {
    #[serde(deserialize_with = "crate::api::extract::integer")]
    version: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Published {
    name: String,
    published_version: i64,
    previous_version: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/api/scripts/{name}/publish",
    tag = "scripts",
    summary = "Publish a version",
    description = "Publishes a saved version: the next call takes it, calls in progress keep theirs. The version is checked again, and the whole set of scripts must still hold together. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name.")),
    request_body = PublishBody,
    responses(
        (status = 200, description = "Published.", body = Published),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The request clashes with the current state; `error` says how.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The script does not pass the checker: `problems` lists every problem.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(name): Path<String>,
    Json(body): Json<PublishBody>,
) -> Result<Json<Published>, ApiError> {
    publish_or_roll_back(&state, &user.name, name, body.version, use_case::publish).await
}

/// A rollback is a publish of an earlier version; it is refused for a version that is not
/// earlier, so a mistyped number cannot push an untested draft live.
#[utoipa::path(
    post,
    path = "/api/scripts/{name}/rollback",
    tag = "scripts",
    summary = "Roll back to an earlier version",
    description = "Publishes a version earlier than the published one (409 for a version that is not earlier). Admins only: agents get 403.",
    params(("name" = String, Path, description = "The script's name.")),
    request_body = PublishBody,
    responses(
        (status = 200, description = "Rolled back.", body = Published),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The request clashes with the current state; `error` says how.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The script does not pass the checker: `problems` lists every problem.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn rollback(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(name): Path<String>,
    Json(body): Json<PublishBody>,
) -> Result<Json<Published>, ApiError> {
    publish_or_roll_back(&state, &user.name, name, body.version, use_case::rollback).await
}

type PublishUseCase = fn(
    &dyn Db,
    script::Env<'_>,
    &Actor,
    &str,
    i64,
    i64,
) -> crate::usecases::Result<use_case::Published>;

/// Runs the publish or rollback use case, then has this server take the new set at once (other
/// servers notice the publish within two seconds).
async fn publish_or_roll_back(
    state: &AppState,
    actor: &str,
    name: String,
    version: i64,
    use_case: PublishUseCase,
) -> Result<Json<Published>, ApiError> {
    let (ivr, actor) = (state.ivr.clone(), Actor::user(actor));
    let clock = state.clock.clone();
    let published = run_use_case(state, move |db| {
        use_case(
            db,
            ivr.scripts.env(),
            &actor,
            &name,
            version,
            clock.now_ms(),
        )
    })
    .await?;
    let catalog = state.ivr.clone();
    state
        .store
        .read(move |db| catalog.scripts.reload(db))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Published {
        name: published.name,
        published_version: published.published_version,
        previous_version: published.previous_version,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    subject: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    summary = "Read the audit trail",
    description = "The latest entries of the tamper-evident audit trail (each chained to the previous by `hash`), newest first. Admins only: agents get 403.",
    params(AuditQuery),
    responses(
        (status = 200, description = "The entries.", body = Vec<crate::store::audit::Entry>),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<audit::Entry>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state
        .store
        .read(move |db| db.recent_audit(q.subject.as_deref(), limit))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(entries))
}
