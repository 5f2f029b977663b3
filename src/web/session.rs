//! Logging in with an API token, the `cg_session` cookie, and the extractors pages use.
//!
//! The cookie is HttpOnly (scripts never see the id), SameSite=Strict (no other site's page can
//! make the browser send it, the first CSRF defence), and Secure behind https. Requests that
//! change something with the cookie must also carry the session's CSRF token (`X-CSRF-Token`
//! for the API, a hidden form field for forms): the second defence, for browsers or proxies
//! that do not honour SameSite.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::templates;
use crate::startup::AppState;
use crate::store::sessions::{ENCODED_LEN, Lookup, SESSION_TTL_MS, Session};
use crate::store::users::{Role, User};

pub const COOKIE: &str = "cg_session";
/// The header the JSON API reads the CSRF token from.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Tokens are 46 characters; anything much longer is not a token.
const MAX_TOKEN_LEN: usize = 200;
const MAX_NEXT_LEN: usize = 512;

/// The session id in the request's `cg_session` cookie, if it has the shape of one.
fn session_cookie(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|id| {
            id.len() == ENCODED_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|id| Zeroizing::new(id.to_owned()))
}

/// The live session of the request's cookie. An expired session is deleted on sight, so an
/// old cookie can never come back to life.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> anyhow::Result<Option<Session>> {
    let Some(id) = session_cookie(headers) else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    let lookup = {
        let id = id.clone();
        state
            .store
            .read(move |db| db.lookup_session(&id, now))
            .await?
    };
    match lookup {
        Lookup::Valid(session) => Ok(Some(session)),
        Lookup::Expired => {
            state
                .store
                .write(move |db| db.delete_session(&id, now))
                .await?;
            Ok(None)
        }
        Lookup::Unknown => Ok(None),
    }
}

/// Constant-time comparison, so the time taken tells nothing about how much of a guess was right.
pub fn csrf_matches(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// True when `method` can change something, and so needs the CSRF token.
pub fn is_unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// A logged-in agent or admin, for pages. Without a valid session a page answers with a 303 to
/// the login page, which brings the browser back here afterwards.
#[derive(Debug, Clone)]
pub struct WebUser {
    pub user: User,
    /// For forms (hidden field) and scripts (`<meta name="csrf-token">`).
    pub csrf_token: String,
}

impl WebUser {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Checks a CSRF token sent with a form.
    pub fn csrf_matches(&self, sent: &str) -> bool {
        csrf_matches(sent, &self.csrf_token)
    }

    /// The layout's view of this user.
    pub fn context(&self) -> minijinja::Value {
        templates::user_context(&self.user, &self.csrf_token)
    }

    /// The 403 page, shown to this user.
    pub fn forbidden(&self, message: &str) -> Response {
        templates::error_page(
            StatusCode::FORBIDDEN,
            message,
            Some((&self.user, &self.csrf_token)),
        )
    }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current_session(state, &parts.headers).await {
            Ok(Some(session)) => Ok(Self {
                user: session.user,
                csrf_token: session.csrf_token,
            }),
            Ok(None) => {
                let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
                Err(redirect(&format!("/login?next={next}")))
            }
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "reading the web session failed");
                Err(templates::internal_error())
            }
        }
    }
}

/// A logged-in admin; an agent gets the 403 page.
#[derive(Debug, Clone)]
pub struct AdminUser(pub WebUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = WebUser::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(user.forbidden("This page is for admins only."));
        }
        Ok(Self(user))
    }
}

/// A 303 See Other to a local path (the browser follows it with a GET).
pub fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => templates::internal_error(),
    }
}

/// `next` if it is a path on this site, so the login page cannot be made to send a freshly
/// logged-in user elsewhere (`//evil.example` and `/\evil.example` are other hosts to a browser).
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= MAX_NEXT_LEN
        && next.bytes().all(|b| b.is_ascii_graphic());
    local.then_some(next)
}

/// Where a user goes after login when no (valid) `next` was asked for.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Agent => "/agent",
    }
}

/// `Set-Cookie` for the session: `id` for `max_age_secs`, or an empty value with 0 to clear it.
fn session_cookie_header(state: &AppState, id: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let secure = if state.settings.public_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// Whether a login post came from callgate's own page (login CSRF, where SameSite cannot help:
/// there is no cookie yet). A browser says where a post comes from in three headers, any of
/// which a page cannot forge:
///
/// - `Sec-Fetch-Site`: anything but `same-origin` (or `none`, typed by the user) is refused;
/// - `Origin`: must be the public URL's origin (scheme, host and port). `null` is accepted only
///   with `Sec-Fetch-Site: same-origin`: callgate's pages send no referrer, so browsers post
///   from its own login form with `Origin: null`, and a sandboxed frame elsewhere, which also
///   posts as `null`, is `cross-site`;
/// - `Referer`, when there is no `Origin`: its origin must be the public URL's.
///
/// A request with none of them is accepted: every current browser sends `Origin` with a POST,
/// so it comes from a client that is not a browser (a script holding the token), which no other
/// site can drive.
fn from_own_page(headers: &HeaderMap, public_url: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin_of = |url: &str| {
        url::Url::parse(url)
            .ok()
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
    };
    let public = origin_of(public_url);
    let is_public = |sent: &str| public.is_some() && origin_of(sent) == public;
    let fetch_site = header("sec-fetch-site");
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    if headers.contains_key(header::ORIGIN) {
        return match header("origin") {
            Some("null") => fetch_site == Some("same-origin"),
            Some(origin) => is_public(origin),
            None => false,
        };
    }
    if headers.contains_key(header::REFERER) {
        return header("referer").is_some_and(is_public);
    }
    true
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

#[derive(Default, serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    templates::page(
        status,
        "login.html",
        context! { next => safe_next(next).unwrap_or(""), error => error },
    )
}

/// `GET /login`: the form; someone already logged in goes straight on.
/// A malformed query string is treated as none (axum 0.8 has no optional `Query`).
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    if let Ok(Some(session)) = current_session(&state, &headers).await {
        let to = safe_next(&query.next).unwrap_or(home_of(session.user.role));
        return redirect(to);
    }
    login_page(StatusCode::OK, &query.next, None)
}

/// `POST /login`: checks the token, opens a session, sets the cookie, goes to `next`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(mut form): Form<LoginForm>,
) -> Response {
    if !from_own_page(&headers, &state.settings.public_url) {
        tracing::warn!("web login refused: posted from another site's page");
        return templates::error_page(
            StatusCode::FORBIDDEN,
            "Log in from callgate's own page.",
            None,
        );
    }
    // Wiped from memory when done, like every copy of a token.
    let sent = Zeroizing::new(std::mem::take(&mut form.token));
    let token = Zeroizing::new(sent.trim().to_owned());
    let user = if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        None
    } else {
        match state.store.read(move |db| db.user_by_token(&token)).await {
            Ok(user) => user,
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "login lookup failed");
                return templates::internal_error();
            }
        }
    };
    let Some(user) = user else {
        // The same answer whether the token is malformed, unknown or of a removed user.
        tracing::info!("web login refused");
        return login_page(
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("That token was not accepted. Check it and try again."),
        );
    };
    // A cookie from an earlier session in this browser is ended, not left to linger.
    let old = session_cookie(&headers);
    let user_id = user.id;
    let clock = state.clock.clone();
    let created = state
        .store
        .write(move |db| {
            if let Some(old) = old {
                db.delete_session(&old, clock.now_ms())?;
            }
            db.create_session(user_id, clock.now_ms())
        })
        .await;
    let session = match created {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "creating a web session failed");
            return templates::internal_error();
        }
    };
    let Some(cookie) = session_cookie_header(&state, &session.id, SESSION_TTL_MS / 1000) else {
        return templates::internal_error();
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "web login");
    let to = safe_next(&form.next).unwrap_or(home_of(user.role));
    let mut response = redirect(to);
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

#[derive(Default, serde::Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout` (a form with the CSRF token): ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    // A missing or malformed form is a missing token: refused below if a session is open.
    let sent = form.map(|Form(f)| f.csrf_token).unwrap_or_default();
    let session = match current_session(&state, &headers).await {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "reading the web session failed");
            return templates::internal_error();
        }
    };
    if let (Some(session), Some(id)) = (session, session_cookie(&headers)) {
        if !csrf_matches(&sent, &session.csrf_token) {
            return templates::error_page(
                StatusCode::FORBIDDEN,
                "The form was out of date. Go back, reload the page and try again.",
                Some((&session.user, &session.csrf_token)),
            );
        }
        let now = state.clock.now_ms();
        if let Err(err) = state
            .store
            .write(move |db| db.delete_session(&id, now))
            .await
        {
            tracing::error!(error = %format!("{err:#}"), "ending a web session failed");
            return templates::internal_error();
        }
        tracing::info!(user = %session.user.name, "web logout");
    }
    let mut response = redirect("/login");
    if let Some(cookie) = session_cookie_header(&state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next("/admin?x=1"), Some("/admin?x=1"));
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/a b",
            "/\u{7f}",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let id = "a".repeat(ENCODED_LEN);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; cg_session={id}; y=2")).unwrap(),
        );
        assert_eq!(
            session_cookie(&headers).as_deref().map(String::as_str),
            Some(id.as_str())
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("cg_session=short"));
        assert!(session_cookie(&headers).is_none());
        headers.insert(header::COOKIE, HeaderValue::from_static("cg_sessionx=1"));
        assert!(session_cookie(&headers).is_none());
    }

    #[test]
    fn a_login_post_must_come_from_the_public_urls_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        // A public URL with a path prefix has the origin of its host.
        let public = "https://example.com/callgate";
        assert!(from_own_page(
            &headers(&[("origin", "https://example.com")]),
            public
        ));
        assert!(from_own_page(
            &headers(&[("referer", "https://example.com/callgate/login")]),
            public
        ));
        assert!(from_own_page(
            &headers(&[("sec-fetch-site", "none")]),
            public
        ));
        assert!(!from_own_page(
            &headers(&[("origin", "https://example.com.evil.example")]),
            public
        ));
        assert!(!from_own_page(
            &headers(&[("origin", "null"), ("sec-fetch-site", "none")]),
            public
        ));
        // A public URL that names no origin matches nothing a browser sends.
        assert!(!from_own_page(
            &headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            "not a url"
        ));
        assert!(!from_own_page(
            &headers(&[("origin", "https://example.com")]),
            "not a url"
        ));
    }

    #[test]
    fn csrf_needs_an_exact_non_empty_match() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abd", "abc"));
        assert!(!csrf_matches("", ""));
        assert!(!csrf_matches("ab", "abc"));
    }
}
