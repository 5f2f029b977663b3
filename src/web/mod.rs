//! The browser side: agents and admins log in with their API token and get a session cookie;
//! the admin pages and the agent console are server-rendered shells whose scripts call the
//! JSON API with that cookie and the session's CSRF token.
//!
//! - `session`: login, logout, the `WebUser` / `AdminUser` extractors, cookie handling.
//! - `pages`: the HTML pages themselves.
//! - `templates`: the template engine (autoescaping) and the page/error renderers.
//! - `assets`: CSS and JS compiled into the binary.
//! - `headers`: security headers for pages (strict CSP) and `nosniff` for everything.

pub mod assets;
pub mod headers;
pub mod pages;
pub mod session;
pub mod templates;

use axum::Router;
use axum::middleware::map_response;
use axum::routing::{get, post};

use crate::startup::AppState;

/// Every route of the browser side, with the page security headers on each of them.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/admin", get(pages::admin))
        .route("/admin/reports", get(crate::reports::api::page))
        .route("/agent", get(pages::agent))
        .route("/assets/{file}", get(assets::serve))
        .layer(map_response(headers::page_headers))
}
