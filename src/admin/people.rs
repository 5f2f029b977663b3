//! `/api/accounts` and `/api/users`: the customer accounts and the agents/admins, managed from
//! the admin page. Answers never carry a hash or a secret; the two secrets made here (a new
//! account's authenticator URI, a new user's API token) are shown once, in the answer that made
//! them, and never logged or audited. Every change writes its audit entry in the same
//! transaction as the change itself.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::auth::Admin;
use crate::api::extract::{Json, Path, Query};
use crate::domain::{AccountCode, AccountId, AccountName, AttributeKey, PhoneNumber, mask_number};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::accounts::{self, AddAccountError, NewAccount};
use crate::store::users::{self, Role};
use crate::store::{Db, to_rfc3339};
use crate::verify::totp;

/// Accounts listed at once at most.
const MAX_LIST: u32 = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    q: Option<String>,
    limit: Option<u32>,
}

/// An account as the admin page shows it: the phone masked, no hash, no secret.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AdminAccountView)]
pub struct AccountView {
    id: String,
    name: String,
    phone: String,
    has_code: bool,
    has_totp: bool,
    test: bool,
    attributes: BTreeMap<String, String>,
    failed_count: i64,
    /// When a lock on keypad verification ends, if the account is locked now.
    locked_until: Option<String>,
    created_at: Option<String>,
}

impl AccountView {
    fn of(a: accounts::Account, now: i64) -> Self {
        Self {
            phone: mask_number(&a.phone),
            locked_until: a.locked_until.filter(|&t| t > now).and_then(to_rfc3339),
            created_at: to_rfc3339(a.created_at),
            id: a.id,
            name: a.name,
            has_code: a.has_code,
            has_totp: a.has_totp,
            test: a.test,
            attributes: a.attributes,
            failed_count: a.failed_count,
        }
    }
}

/// `GET /api/accounts?q=&limit=`
#[utoipa::path(
    get,
    path = "/api/accounts",
    tag = "people",
    summary = "Search accounts",
    description = "Accounts by name, id or phone; phones masked, no codes or secrets. Admins only: agents get 403.",
    params(AccountQuery),
    responses(
        (status = 200, description = "The accounts.", body = Vec<AccountView>),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn list_accounts(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(query): Query<AccountQuery>,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let q: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(64)
        .collect();
    let found = state
        .store
        .read(move |db| db.search_accounts(&q, limit))
        .await
        .map_err(ApiError::internal)?;
    let now = state.clock.now_ms();
    Ok(Json(
        found.into_iter().map(|a| AccountView::of(a, now)).collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewAccountBody {
    id: String,
    name: String,
    phone: String,
    /// The permanent account code (6-12 digits); absent or empty for none.
    #[serde(default)]
    code: Option<String>,
    /// Give the account an authenticator: the answer carries its otpauth URI, once.
    #[serde(default)]
    totp: bool,
    /// A test account, which the call simulator may use.
    #[serde(default)]
    test: bool,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Knowledge answers, question → digits as typed on a keypad (`{"dob": "14031985"}`).
    #[serde(default)]
    knowledge: BTreeMap<String, String>,
}

impl Drop for NewAccountBody {
    fn drop(&mut self) {
        self.code.zeroize();
        for answer in self.knowledge.values_mut() {
            answer.zeroize();
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountCreated {
    #[serde(flatten)]
    account: AccountView,
    /// The authenticator's `otpauth://` URI: shown only in this answer.
    otpauth_uri: Option<String>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn check_attributes(
    attributes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    if attributes.len() > 32 {
        return Err(bad("at most 32 attributes"));
    }
    let mut out = BTreeMap::new();
    for (key, value) in attributes {
        let key = AttributeKey::parse(key).map_err(bad)?.into_string();
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err(bad(format!(
                "attribute {key}: the value must be at most 200 printable characters"
            )));
        }
        out.insert(key, value.clone());
    }
    Ok(out)
}

fn check_knowledge(
    knowledge: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ApiError> {
    if knowledge.len() > 16 {
        return Err(bad("at most 16 knowledge answers"));
    }
    knowledge
        .iter()
        .map(|(question, answer)| {
            let q = question.trim();
            let valid_q = !q.is_empty()
                && q.len() <= 40
                && q.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid_q {
                return Err(bad(format!(
                    "knowledge question {q:?} must be 1-40 lowercase letters, digits, - or _"
                )));
            }
            if answer.is_empty() || answer.len() > 20 || !answer.bytes().all(|b| b.is_ascii_digit())
            {
                // The answer itself is never repeated in an error.
                return Err(bad(format!(
                    "knowledge {q}: the answer must be 1-20 digits, as typed on a keypad"
                )));
            }
            Ok((q.to_owned(), answer.clone()))
        })
        .collect()
}

/// `POST /api/accounts`
#[utoipa::path(
    post,
    path = "/api/accounts",
    tag = "people",
    summary = "Add an account",
    description = "Creates an account; with `totp`, the answer carries the authenticator's otpauth URI, once. A code already in use is refused (409) and the refusal is audited (`account.code_refused`, without the code). Admins only: agents get 403.",
    request_body = NewAccountBody,
    responses(
        (status = 201, description = "Created.", body = AccountCreated),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The request clashes with the current state; `error` says how.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn add_account(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewAccountBody>,
) -> Result<(StatusCode, Json<AccountCreated>), ApiError> {
    // Everything is parsed before anything is written.
    let id = AccountId::parse(body.id.trim()).map_err(bad)?;
    let name = AccountName::parse(&body.name).map_err(bad)?;
    let phone = PhoneNumber::parse(body.phone.trim(), state.settings.region).map_err(bad)?;
    let code = match body.code.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(AccountCode::parse(c).map_err(bad)?),
        _ => None,
    };
    let attributes = check_attributes(&body.attributes)?;
    let knowledge = check_knowledge(&body.knowledge)?;
    let secret = body.totp.then(totp::new_secret);
    let otpauth_uri = secret
        .as_ref()
        .map(|s| totp::provisioning_uri(s, id.as_str()))
        .transpose()
        .map_err(ApiError::internal)?;
    let test = body.test;
    let keys = state.ivr.keys.get();
    let actor = admin.name.clone();
    let clock = state.clock.clone();
    let added = state
        .store
        .write(move |db| {
            let new = NewAccount {
                id: &id,
                name: &name,
                phone: &phone,
                code: code.as_ref(),
                totp_secret: secret.as_deref().map(Vec::as_slice),
                attributes: &attributes,
                knowledge: &knowledge,
                test,
            };
            let now = clock.now_ms();
            match db.add_account(&keys, &new, now) {
                Ok(()) => {}
                Err(AddAccountError::Other(e)) => return Err(e),
                Err(e @ AddAccountError::DuplicateCode) => {
                    // Committed with the answer: a refused code is a probe that must show.
                    accounts::audit_code_refused(db, &actor, &id, now)?;
                    return Ok(Err(ApiError::Conflict(e.to_string())));
                }
                Err(e) => return Ok(Err(ApiError::Conflict(e.to_string()))),
            }
            accounts::audit_added(db, &actor, &new, now)?;
            Ok(Ok(db.account(id.as_str())?))
        })
        .await
        .map_err(ApiError::internal)??
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the new account was not found")))?;
    tracing::info!(admin = %admin.name, account = %added.id, "account added");
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            account: AccountView::of(added, state.clock.now_ms()),
            otpauth_uri,
        }),
    ))
}

/// Runs `change` (which answers whether the subject existed) and its audit entry in one
/// transaction; 404 when there was nothing to change.
async fn audited(
    state: &AppState,
    actor: &str,
    action: &'static str,
    subject: String,
    change: impl FnOnce(&dyn Db) -> anyhow::Result<bool> + Send + 'static,
) -> Result<(), ApiError> {
    let actor = actor.to_owned();
    let clock = state.clock.clone();
    let done = state
        .store
        .write(move |db| {
            if !change(db)? {
                return Ok(false);
            }
            db.append_audit(&actor, action, &subject, "", clock.now_ms())?;
            Ok(true)
        })
        .await
        .map_err(ApiError::internal)?;
    if done {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `DELETE /api/accounts/{id}`
#[utoipa::path(
    delete,
    path = "/api/accounts/{id}",
    tag = "people",
    summary = "Remove an account",
    description = "Deletes an account and its secrets. Admins only: agents get 403.",
    params(("id" = String, Path, description = "The account id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn remove_account(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = AccountId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let key = id.as_str().to_owned();
    audited(
        &state,
        &admin.name,
        "account.remove",
        format!("account:{id}"),
        move |db| db.remove_account(&key),
    )
    .await?;
    tracing::info!(admin = %admin.name, account = %id, "account removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/accounts/{id}/unlock`: lifts a keypad lock and forgets the failure count.
#[utoipa::path(
    post,
    path = "/api/accounts/{id}/unlock",
    tag = "people",
    summary = "Unlock an account",
    description = "Lifts a keypad lock and forgets the failure count. Admins only: agents get 403.",
    params(("id" = String, Path, description = "The account id.")),
    responses(
        (status = 204, description = "Unlocked."),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn unlock_account(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = AccountId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let key = id.as_str().to_owned();
    audited(
        &state,
        &admin.name,
        "account.unlock",
        format!("account:{id}"),
        move |db| db.unlock_account(&key),
    )
    .await?;
    tracing::info!(admin = %admin.name, account = %id, "account unlocked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    name: String,
    role: Role,
    departments: Vec<String>,
    created_at: Option<String>,
}

impl From<users::Listed> for UserView {
    fn from(u: users::Listed) -> Self {
        Self {
            created_at: to_rfc3339(u.created_at),
            name: u.name,
            role: u.role,
            departments: u.departments,
        }
    }
}

/// `GET /api/users`
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "people",
    summary = "List users",
    description = "Agents and admins; never their token hashes. Admins only: agents get 403.",
    responses(
        (status = 200, description = "The users.", body = Vec<UserView>),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let list = state
        .store
        .read(|db| db.users())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(list.into_iter().map(UserView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUserBody {
    name: String,
    role: String,
    #[serde(default)]
    departments: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserCreated {
    name: String,
    role: Role,
    departments: Vec<String>,
    /// The API token (and login): shown only in this answer.
    token: String,
}

/// `POST /api/users`: an agent or admin; the answer carries the token, once.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "people",
    summary = "Add a user",
    description = "Creates an agent or admin; the answer carries the API token, once. Admins only: agents get 403.",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created.", body = UserCreated),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The request clashes with the current state; `error` says how.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn add_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewUserBody>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(bad("the user name must be 1-64 printable characters"));
    }
    let role = Role::parse(body.role.trim())
        .ok_or_else(|| bad("the role must be \"agent\" or \"admin\""))?;
    if body.departments.len() > 32 {
        return Err(bad("at most 32 departments"));
    }
    let departments = users::parse_departments(&body.departments.join(",")).map_err(bad)?;
    let detail =
        serde_json::json!({ "role": role.as_str(), "departments": departments }).to_string();
    let (n, depts, actor) = (name.clone(), departments.clone(), admin.name.clone());
    let clock = state.clock.clone();
    let token = state
        .store
        .write(move |db| {
            if db.user_by_name(&n)?.is_some() {
                return Ok(Err(ApiError::Conflict(format!(
                    "a user named {n:?} already exists"
                ))));
            }
            let now = clock.now_ms();
            let token = db.add_user(&n, role, &depts, now)?;
            db.append_audit(&actor, "user.add", &format!("user:{n}"), &detail, now)?;
            Ok(Ok(token))
        })
        .await
        .map_err(ApiError::internal)??;
    tracing::info!(admin = %admin.name, user = %name, role = role.as_str(), "user added");
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            name,
            role,
            departments,
            token: token.as_str().to_owned(),
        }),
    ))
}

/// `DELETE /api/users/{name}`: an admin cannot delete themselves (and so never the last admin).
#[utoipa::path(
    delete,
    path = "/api/users/{name}",
    tag = "people",
    summary = "Remove a user",
    description = "Deletes a user and ends their sessions (not yourself: 409). Admins only: agents get 403.",
    params(("name" = String, Path, description = "The user's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The request clashes with the current state; `error` says how.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn remove_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if name == admin.name {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    let key = name.clone();
    audited(
        &state,
        &admin.name,
        "user.remove",
        format!("user:{name}"),
        move |db| db.remove_user(&key),
    )
    .await?;
    tracing::info!(admin = %admin.name, user = %name, "user removed");
    Ok(StatusCode::NO_CONTENT)
}
