//! HTML templates (minijinja), compiled into the binary. Templates named `*.html` are
//! autoescaped, so a user name or any other stored text is shown as text, never as markup.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use crate::store::users::{Role, User};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("admin.html", include_str!("templates/admin.html")),
    ("agent.html", include_str!("templates/agent.html")),
    ("error.html", include_str!("templates/error.html")),
    ("reports.html", include_str!("templates/reports.html")),
    ("pop.html", include_str!("templates/pop.html")),
];

/// Built once. A template that fails to parse is logged and then answers 500 wherever it is
/// used (the unit test below keeps that from ever shipping).
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(template = name, error = %err, "template does not compile");
        }
    }
    env
});

/// What every page's layout shows about who is logged in.
pub fn user_context(user: &User, csrf_token: &str) -> Value {
    context! {
        user => context! {
            name => user.name.as_str(),
            role => user.role.as_str(),
            is_admin => user.role == Role::Admin,
            departments => user.departments.clone(),
        },
        csrf_token => csrf_token,
    }
}

/// Renders `name` with `ctx` as an HTML response with `status`.
pub fn page(status: StatusCode, name: &str, ctx: Value) -> Response {
    match ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(template = name, error = %err, "rendering a page failed");
            internal_error()
        }
    }
}

/// An error page; `user` is `Some` when the layout may show who is logged in.
pub fn error_page(status: StatusCode, message: &str, user: Option<(&User, &str)>) -> Response {
    let ctx = context! {
        status => status.as_u16(),
        reason => status.canonical_reason().unwrap_or("Error"),
        message => message,
    };
    let ctx = match user {
        Some((u, csrf)) => context! { ..ctx, ..user_context(u, csrf) },
        None => ctx,
    };
    page(status, "error.html", ctx)
}

/// The last resort, when even the error template cannot render: no template involved.
pub fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "internal error",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
        let user = User {
            id: 1,
            name: "<b>Eve</b>".into(),
            role: Role::Admin,
            departments: vec![],
        };
        let html = ENV
            .get_template("admin.html")
            .unwrap()
            .render(user_context(&user, "tok"))
            .unwrap();
        assert!(html.contains("&lt;b&gt;Eve&lt;&#x2f;b&gt;"), "{html}");
        assert!(!html.contains("<b>Eve"));
        assert!(!html.contains("<script>") && !html.contains(" style="));
    }
}
