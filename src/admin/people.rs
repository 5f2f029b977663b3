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
use super::run_use_case;
use crate::api::extract::{Json, Path, Query};
use crate::domain::mask_number;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::accounts;
use crate::store::to_rfc3339;
use crate::store::users::{self, Role};
use crate::usecases::users::ValidUser;
use crate::usecases::{self, Actor};

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

impl NewAccountBody {
    /// The account as typed, for the use case to check.
    fn form(&self) -> usecases::accounts::AccountForm {
        usecases::accounts::AccountForm {
            id: self.id.clone(),
            name: self.name.clone(),
            phone: self.phone.clone(),
            code: self.code.clone(),
            totp: self.totp,
            test: self.test,
            attributes: self.attributes.clone().into_iter().collect(),
            knowledge: self.knowledge.clone().into_iter().collect(),
        }
    }
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
    // Everything is checked before anything is written.
    let account = body.form().validate(state.settings.region)?;
    let (keys, actor) = (state.ivr.keys.get(), Actor::user(&admin.name));
    let clock = state.clock.clone();
    let added = run_use_case(&state, move |db| {
        usecases::accounts::add(db, &keys, &actor, &account, clock.now_ms())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            account: AccountView::of(added.account, state.clock.now_ms()),
            otpauth_uri: added.otpauth_uri,
        }),
    ))
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
    let actor = Actor::user(&admin.name);
    let clock = state.clock.clone();
    run_use_case(&state, move |db| {
        usecases::accounts::remove(db, &actor, &id, clock.now_ms())
    })
    .await?;
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
    let actor = Actor::user(&admin.name);
    let clock = state.clock.clone();
    run_use_case(&state, move |db| {
        usecases::accounts::unlock(db, &actor, &id, clock.now_ms())
    })
    .await?;
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
    let user = ValidUser::parse(&body.name, &body.role, &body.departments)?;
    let (added, actor) = (user.clone(), Actor::user(&admin.name));
    let clock = state.clock.clone();
    let token = run_use_case(&state, move |db| {
        usecases::users::add(db, &actor, &added, clock.now_ms())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            name: user.name,
            role: user.role,
            departments: user.departments,
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
    let actor = Actor::user(&admin.name);
    let clock = state.clock.clone();
    run_use_case(&state, move |db| {
        usecases::users::remove(db, &actor, &name, clock.now_ms())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
