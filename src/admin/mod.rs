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

use crate::startup::AppState;

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
