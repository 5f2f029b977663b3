//! The HTML pages. They are shells: the admin pages (scripts, audit) and the agent console
//! (screen-pops) fill them through the JSON API, with the CSRF token from `<meta>`.

use axum::http::StatusCode;
use axum::response::Response;

use super::session::{AdminUser, WebUser, home_of, redirect};
use super::templates;

/// `GET /`: each role's own start page (or, through `WebUser`, the login page).
pub async fn home(user: WebUser) -> Response {
    redirect(home_of(user.user.role))
}

/// `GET /admin`: admins only.
pub async fn admin(AdminUser(user): AdminUser) -> Response {
    templates::page(StatusCode::OK, "admin.html", user.context())
}

/// `GET /agent`: agents and admins (an admin may stand in for an agent).
pub async fn agent(user: WebUser) -> Response {
    templates::page(StatusCode::OK, "agent.html", user.context())
}
