//! The HTTP application: every route, and the layers every request passes through (body
//! intake, load shedding, timeout, body limit, tracing, panic catching).

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::AppState;
use super::ops::{healthz, metrics};

/// Twilio's webhooks are small forms; anything larger is not from Twilio.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Twilio gives up after 15 s; answer well before.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole HTTP application, so tests can drive it with `oneshot` as well as over TCP.
pub fn app(state: AppState) -> Router {
    // Load shedding: at the limit a request is refused at once with 503, instead of queueing
    // until every caller's silence grows past Twilio's 15 s.
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            tracing::warn!("overloaded: request shed with 503");
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .load_shed()
        // One count shared by every route: `Router::layer` applies a layer to each route on its
        // own, and a plain `concurrency_limit` would then count per route.
        .layer(GlobalConcurrencyLimitLayer::new(
            state.settings.max_in_flight.max(1),
        ));
    let intake = Arc::new(crate::intake::Intake::new(
        state.settings.body_read_timeout,
        MAX_BODY_BYTES,
        state.settings.max_body_reads_per_address,
        state.ivr.metrics.clone(),
    ));
    // Generated from the code once, at start; public, since it describes the API, not data.
    let openapi: Arc<str> = crate::openapi::json().into();
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/api/openapi.json",
            get(crate::openapi::openapi_json).with_state(openapi),
        )
        .route("/metrics", get(metrics))
        .merge(crate::twilio::routes::router())
        .merge(crate::agent::routes::router())
        .merge(crate::admin::router())
        .merge(crate::web::router())
        // Only the recordings the sound index knows (`crate::ivr::sounds`).
        .route("/sounds/{language}/{file}", get(crate::ivr::sounds::serve))
        .layer(axum::middleware::map_response(crate::web::headers::nosniff))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(shed)
        // Outside the in-flight limit: a body is read (or refused) before its request takes a
        // place, so slow senders hold none (see `crate::intake`).
        .layer(axum::middleware::from_fn_with_state(
            intake,
            crate::intake::read_body,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::new())
        // Outermost: every error of the API leaves in its one shape, wherever it was made.
        .layer(axum::middleware::from_fn(crate::error::json_error_bodies))
        .with_state(state)
}

/// The span of a request (at DEBUG, as tower-http's own): method and path, without the query,
/// and with a screen-pop URL's token left out, since the token opens the pop.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/pop/") {
        "/pop/[token]"
    } else {
        path
    };
    tracing::debug_span!("request", method = %request.method(), path = %path)
}
