//! The operations endpoints: `/metrics` (admins) and `/healthz` (anyone).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::agent::auth::AuthUser;
use crate::error::ApiError;
use crate::store::users::Role;

/// Prometheus metrics, for admins only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Metrics in the OpenMetrics text format: webhook latency, verifications, lockouts, hand-offs, errors. Admins only: agents get 403.",
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn metrics(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ivr.metrics.render(),
    ))
}

/// Ready when the database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Health check",
    description = "Ready when the database answers. No login.",
    responses(
        (status = 200, description = "Ready.", content_type = "text/plain", body = String, example = "ok"),
        (status = 503, description = "The database does not answer (within 3 s).")
    ),
    security(())
)]
pub async fn healthz(State(state): State<AppState>) -> Result<&'static str, StatusCode> {
    // A database that does not answer at all is as unready as one that refuses: a balancer's
    // check gets its 503 within seconds, and drains the node.
    let ping = state.store.read(|db| db.ping());
    match tokio::time::timeout(HEALTH_DEADLINE, ping).await {
        Ok(Ok(())) => Ok("ok"),
        Ok(Err(_)) | Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// How long `/healthz` waits for the database.
const HEALTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);
