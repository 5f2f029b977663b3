//! `/api/scripts`: list, read, save drafts (422 with every problem when the checker refuses),
//! versions, publish and roll back; `/api/audit`: the trail. Publishing swaps the live set at
//! once: the next call takes the new version, calls in progress keep theirs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::graph::{self, Graph};
use crate::api::extract::{Json, Path, Query};
use crate::error::ApiError;
use crate::ivr::script::{self, Problem, Script, ScriptSet, Severity};
use crate::startup::AppState;
use crate::store::{audit, scripts as stored};

/// A script source may not be larger than this.
const MAX_SOURCE_BYTES: usize = 60 * 1024;

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

fn invalid(problems: &[Problem]) -> ApiError {
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    ApiError::Invalid {
        message: format!("the script has {errors} error(s)"),
        problems: serde_json::to_value(problems).unwrap_or_default(),
    }
}

/// Checks a text for saving as a version of `name`: every checker problem, plus a name that
/// does not match the URL. On success, the script and its warnings.
fn checked_for(
    state: &AppState,
    name: &str,
    source: &str,
) -> Result<(Script, Vec<Problem>), ApiError> {
    let mut checked = script::check(source, state.ivr.scripts.env());
    if let Some(s) = &checked.script
        && s.name != name
    {
        let line = source
            .lines()
            .position(|l| l.trim_start().starts_with("name"))
            .map_or(1, |i| i + 1);
        checked.problems.push(Problem {
            severity: Severity::Error,
            line,
            col: 1,
            message: format!("the script is named {:?} but is saved as {name:?}", s.name),
        });
        return Err(invalid(&checked.problems));
    }
    match checked.script {
        Some(script) => Ok((script, checked.problems)),
        None => Err(invalid(&checked.problems)),
    }
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
    // One check gives both the verdict and the warnings returned with the saved draft.
    let (_, warnings) = checked_for(&state, &name, &source)?;
    let (n, author) = (name.clone(), user.name.clone());
    let clock = state.clock.clone();
    let version = state
        .store
        .write(move |db| db.add_script_version(&n, &source, "api", &author, clock.now_ms()))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(script = %name, version, "script draft saved");
    Ok((
        StatusCode::CREATED,
        Json(Saved {
            name,
            version,
            published: false,
            problems: warnings,
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
    publish_version(&state, &user.name, name, body.version).await
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
    let n = name.clone();
    let current = state
        .store
        .read(move |db| db.published_version(&n))
        .await
        .map_err(ApiError::internal)?;
    if current.is_some_and(|c| body.version >= c) {
        return Err(ApiError::Conflict(format!(
            "version {} is not earlier than the published version {}",
            body.version,
            current.unwrap_or_default()
        )));
    }
    publish_version(&state, &user.name, name, body.version).await
}

async fn publish_version(
    state: &AppState,
    actor: &str,
    name: String,
    version: i64,
) -> Result<Json<Published>, ApiError> {
    let n = name.clone();
    let source = state
        .store
        .read(move |db| db.script_source(&n, version))
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    // Checked again: sound files may have gone since the draft was saved.
    let (mut candidate, _) = checked_for(state, &name, &source)?;
    candidate.version = version;
    // The whole set must still hold together (a number bound twice, no default).
    let live = state.ivr.scripts.live();
    let mut list: Vec<Arc<Script>> = live.all().filter(|s| s.name != name).cloned().collect();
    list.push(Arc::new(candidate));
    ScriptSet::from_scripts(list).map_err(|e| ApiError::Conflict(format!("{e:#}")))?;

    let (n, who) = (name.clone(), actor.to_owned());
    let clock = state.clock.clone();
    let previous = state
        .store
        .write(move |db| {
            let previous = db.published_version(&n)?;
            db.publish_script(&n, version, &who, clock.now_ms())?;
            Ok(previous)
        })
        .await
        .map_err(ApiError::internal)?;
    let catalog_state = state.clone();
    state
        .store
        .read(move |db| catalog_state.ivr.scripts.reload(db))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(script = %name, version, "script published");
    Ok(Json(Published {
        name,
        published_version: version,
        previous_version: previous,
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
