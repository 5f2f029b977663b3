//! What admins do through the API (and the `/admin` page, which calls it): edit, check,
//! version and publish IVR scripts, read the audit trail, and try a draft in the call simulator.
//! Agents get 403 on all of it.

pub mod auth;
pub mod graph;
pub mod journey;
pub mod people;
pub mod scripts;
pub mod simulator;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::Db;
use crate::usecases::{self, Refused};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/scripts", get(scripts::list))
        .route("/api/scripts/check", post(scripts::check_draft))
        .route("/api/scripts/{name}", get(scripts::show).put(scripts::save))
        .route("/api/scripts/{name}/versions", get(scripts::versions))
        .route(
            "/api/scripts/{name}/versions/{version}",
            get(scripts::version),
        )
        .route("/api/scripts/{name}/publish", post(scripts::publish))
        .route("/api/scripts/{name}/rollback", post(scripts::rollback))
        .route("/api/audit", get(scripts::audit))
        .route("/api/calls/{call_sid}/journey", get(journey::show))
        .route("/api/reports", get(crate::reports::api::list))
        .route("/api/reports/{name}", get(crate::reports::api::report))
        .route("/api/simulator", post(simulator::start))
        .route("/api/simulator/{session}", post(simulator::step))
        .route(
            "/api/accounts",
            get(people::list_accounts).post(people::add_account),
        )
        .route("/api/accounts/{id}", delete(people::remove_account))
        .route("/api/accounts/{id}/unlock", post(people::unlock_account))
        .route("/api/users", get(people::list_users).post(people::add_user))
        .route("/api/users/{name}", delete(people::remove_user))
}

/// A refusal of a use case as the API answers it.
impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Invalid(message) => Self::BadRequest(message),
            Refused::NotFound(_) => Self::NotFound,
            Refused::Conflict(message) => Self::Conflict(message),
            Refused::Unchecked { message, problems } => Self::Invalid {
                message,
                problems: serde_json::to_value(problems).unwrap_or_default(),
            },
        }
    }
}

/// Runs a use case in the single writer's next transaction and answers once it is committed:
/// a refusal commits too (with the audit entry it may have written), a failure rolls back.
pub(crate) async fn run_use_case<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Db) -> usecases::Result<T> + Send + 'static,
{
    state
        .store
        .write(move |db| usecases::settle(work(db)))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}
