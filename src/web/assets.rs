//! CSS and JS compiled into the binary: one file to deploy, and the pages can never meet assets
//! of another version. Only the names listed here are served; nothing is read from disk.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name, content type, body)
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "reports.css",
        "text/css; charset=utf-8",
        include_str!("assets/reports.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("assets/admin.css"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin.js"),
    ),
    (
        "agent.css",
        "text/css; charset=utf-8",
        include_str!("assets/agent.css"),
    ),
    (
        "agent.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/agent.js"),
    ),
];

/// `GET /assets/{file}`. Revalidated on every use (`no-cache`) rather than cached for long:
/// the names carry no version, and an upgrade must show its own CSS at once.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
