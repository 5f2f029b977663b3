//! The browser side: login sessions, their cookie, CSRF, page access by role, security headers,
//! then the same flows in headless Chromium.

use crate::common::browser::Browser;
use crate::common::{TestApp, callgate_cli, contains};
use axum::Router;
use axum::routing::post;
use callgate::agent::auth::AuthUser;
use callgate::store::sessions;
use callgate::store::users::Role;
use callgate::web::headers::CONTENT_SECURITY_POLICY;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A client that shows redirects instead of following them, and keeps no cookies.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_login(app: &TestApp, token: &str, next: &str) -> reqwest::Response {
    http()
        .post(format!("{}/login", app.addr))
        .form(&[("token", token), ("next", next)])
        .send()
        .await
        .unwrap()
}

fn location(headers: &HeaderMap) -> &str {
    headers
        .get(LOCATION)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Logs in and returns the `cg_session=...` pair to send back.
async fn session(app: &TestApp, token: &str) -> String {
    let r = post_login(app, token, "").await;
    assert_eq!(r.status(), 303);
    let cookie = set_cookie(r.headers());
    cookie.split(';').next().unwrap().to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", app.addr))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The login form's hidden `next` (the template escapes `/` as `&#x2f;`; a browser reads it back).
fn hidden_next(html: &str) -> String {
    let start = html.find(r#"name="next" value=""#).expect("a next field") + 19;
    html[start..start + html[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

/// The CSRF token a page hands its scripts.
async fn csrf_token(app: &TestApp, cookie: &str) -> String {
    let html = get(app, "/agent", cookie).await.text().await.unwrap();
    let start = html.find(r#"<meta name="csrf-token" content=""#).unwrap() + 33;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_secure_cookie_and_stores_only_its_hash() {
    let app = TestApp::spawn().await;
    let token = app.user("Ada Admin", Role::Admin);
    let r = post_login(&app, &token, "/admin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(r.headers()), "/admin");
    let cookie = set_cookie(r.headers());
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(
        attrs[0].starts_with("cg_session=") && attrs[0].len() == 11 + 43,
        "{cookie}"
    );
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=43200",
    ] {
        assert!(attrs.contains(&attr), "{attr} missing: {cookie}");
    }
    let id = &attrs[0][11..];
    let db = app.database_bytes();
    assert!(
        !contains(&db, id.as_bytes()),
        "the raw session id is stored"
    );
    assert!(contains(&db, &sessions::id_hash(id)));

    let page = get(&app, "/admin", attrs[0]).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Ada Admin") && html.contains("Scripts"),
        "{html}"
    );
    assert!(html.contains(r#"<meta name="csrf-token""#));
    assert!(html.contains(r#"action="/logout""#));
}

#[tokio::test]
async fn a_wrong_token_gets_the_form_again_with_401_and_no_cookie() {
    let app = TestApp::spawn().await;
    app.user("Ada Admin", Role::Admin);
    let mut bodies = Vec::new();
    for wrong in ["cg_not-a-real-token", "", &"x".repeat(500)] {
        let r = post_login(&app, wrong, "/admin").await;
        assert_eq!(r.status(), 401, "{wrong:?}");
        assert!(r.headers().get(SET_COOKIE).is_none());
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("That token was not accepted"), "{html}");
        assert_eq!(hidden_next(&html), "/admin");
        bodies.push(html);
    }
    // Nothing tells a malformed token from an unknown one.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn pages_send_a_logged_out_browser_to_the_login_page_and_back() {
    let app = TestApp::spawn().await;
    let r = get(&app, "/admin", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(r.headers()), "/login?next=%2Fadmin");
    let r = get(&app, "/agent?tab=2", "cg_session=garbage").await;
    assert_eq!(location(r.headers()), "/login?next=%2Fagent%3Ftab%3D2");
    let bogus = format!("cg_session={}", "A".repeat(43));
    let r = get(&app, "/", &bogus).await;
    assert_eq!(location(r.headers()), "/login?next=%2F");

    let form = get(&app, "/login?next=%2Fadmin", "").await;
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert_eq!(hidden_next(&html), "/admin");
}

#[tokio::test]
async fn agents_get_403_on_admin_pages_and_see_their_departments() {
    let app = TestApp::spawn().await;
    let token = app.user_in("Olga Agent", Role::Agent, "billing,technical");
    let cookie = session(&app, &token).await;
    let r = get(&app, "/admin", &cookie).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("403") && html.contains("admins only"),
        "{html}"
    );
    assert!(html.contains("Olga Agent"));

    let r = get(&app, "/agent", &cookie).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Screen-pops") && html.contains("billing") && html.contains("technical"));
    assert!(
        !html.contains(r#"href="/admin""#),
        "agents are not shown the admin link"
    );

    let me: serde_json::Value = get(&app, "/api/me", &cookie).await.json().await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({"name": "Olga Agent", "role": "agent", "departments": ["billing", "technical"]})
    );
    // The root sends each role to its own page.
    assert_eq!(location(get(&app, "/", &cookie).await.headers()), "/agent");
}

#[tokio::test]
async fn pages_and_assets_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    let token = app.user("Ada Admin", Role::Admin);
    let cookie = session(&app, &token).await;
    for (path, status) in [
        ("/login", 200),
        ("/admin", 200),
        ("/agent", 200),
        ("/nope", 404),
    ] {
        // The login page is for logged-out browsers (a session is sent on from it).
        let sent = if path == "/login" {
            ""
        } else {
            cookie.as_str()
        };
        let r = get(&app, path, sent).await;
        assert_eq!(r.status(), status, "{path}");
        if status != 200 {
            continue;
        }
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "inline code in {path}"
        );
    }
    for (path, ty) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
    ] {
        let r = get(&app, path, "").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], ty);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            r.headers()["content-security-policy"],
            CONTENT_SECURITY_POLICY
        );
        assert!(!r.text().await.unwrap().is_empty());
    }
    assert_eq!(get(&app, "/assets/../Cargo.toml", "").await.status(), 404);
    assert_eq!(get(&app, "/assets/secret.txt", "").await.status(), 404);
    // The JSON API: nosniff, with either kind of authentication or none.
    let r = get(&app, "/api/me", &cookie).await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let r = get(&app, "/api/me", "").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

/// `POST /probe` behind `AuthUser`, beside the real application: no API route changes data
/// yet, and CSRF must be proven on one that would.
async fn spawn_with_probe(app: &TestApp) -> String {
    let probe = Router::new()
        .route(
            "/api/probe",
            post(|AuthUser(user): AuthUser| async move { user.name }),
        )
        .with_state(app.state.clone());
    let router = callgate::startup::app(app.state.clone()).merge(probe);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn cookie_authenticated_api_writes_need_the_csrf_token_bearer_ones_do_not() {
    let app = TestApp::spawn().await;
    let token = app.user("Ada Admin", Role::Admin);
    let cookie = session(&app, &token).await;
    let csrf = csrf_token(&app, &cookie).await;
    assert_eq!(csrf.len(), 43);
    let addr = spawn_with_probe(&app).await;
    let probe = |headers: Vec<(&'static str, String)>| {
        let mut request = http().post(format!("{addr}/api/probe"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(probe(vec![("Cookie", cookie.clone())]).await, 403);
    let wrong = format!("{}x", &csrf[..42]);
    assert_eq!(
        probe(vec![("Cookie", cookie.clone()), ("X-CSRF-Token", wrong)]).await,
        403
    );
    assert_eq!(
        probe(vec![
            ("Cookie", cookie.clone()),
            ("X-CSRF-Token", csrf.clone())
        ])
        .await,
        200
    );
    // Another session's token is no good either.
    let other = session(&app, &token).await;
    let other_csrf = csrf_token(&app, &other).await;
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        probe(vec![
            ("Cookie", cookie.clone()),
            ("X-CSRF-Token", other_csrf)
        ])
        .await,
        403
    );
    // Bearer: no CSRF token, and the cookie beside it changes nothing.
    assert_eq!(
        probe(vec![("Authorization", format!("Bearer {token}"))]).await,
        200
    );
    assert_eq!(
        probe(vec![
            ("Authorization", "Bearer cg_wrong".into()),
            ("Cookie", cookie.clone()),
            ("X-CSRF-Token", csrf.clone()),
        ])
        .await,
        401
    );
    assert_eq!(probe(vec![]).await, 401);
    // Reading needs no CSRF token.
    assert_eq!(get(&app, "/api/me", &cookie).await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session_for_good() {
    let app = TestApp::spawn().await;
    let token = app.user("Ada Admin", Role::Admin);
    let cookie = session(&app, &token).await;
    let csrf = csrf_token(&app, &cookie).await;
    let logout = |csrf: String| {
        http()
            .post(format!("{}/logout", app.addr))
            .header("Cookie", cookie.clone())
            .form(&[("csrf_token", csrf)])
            .send()
    };
    // Without the form's token (a forged form) the session stays.
    let r = logout("nope".into()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(get(&app, "/admin", &cookie).await.status(), 200);

    let r = logout(csrf).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(r.headers()), "/login");
    let cleared = set_cookie(r.headers());
    assert!(
        cleared.starts_with("cg_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(get(&app, "/admin", &cookie).await.status(), 303);
    assert_eq!(get(&app, "/api/me", &cookie).await.status(), 401);
    let left: i64 = app
        .sql()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn an_expired_session_is_refused_and_deleted() {
    let app = TestApp::spawn().await;
    let token = app.user("Ada Admin", Role::Admin);
    let cookie = session(&app, &token).await;
    let conn = app.sql();
    conn.execute("UPDATE web_sessions SET expires_at = 1", [])
        .unwrap();
    assert_eq!(get(&app, "/api/me", &cookie).await.status(), 401);
    let left: i64 = conn
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        location(get(&app, "/admin", &cookie).await.headers()),
        "/login?next=%2Fadmin"
    );
}

#[tokio::test]
async fn login_never_redirects_off_site() {
    let app = TestApp::spawn().await;
    let admin = app.user("Ada Admin", Role::Admin);
    let agent = app.user("Olga Agent", Role::Agent);
    for next in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
        "",
    ] {
        let r = post_login(&app, &admin, next).await;
        assert_eq!(location(r.headers()), "/admin", "{next:?}");
        let r = post_login(&app, &agent, next).await;
        assert_eq!(location(r.headers()), "/agent", "{next:?}");
    }
    let r = post_login(&app, &agent, "/agent?tab=2").await;
    assert_eq!(location(r.headers()), "/agent?tab=2");
    // The form does not carry the bad target either.
    let html = get(&app, "/login?next=%2F%2Fevil.example", "")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("evil.example"));
    assert_eq!(hidden_next(&html), "");
    // A post from another site is refused (login CSRF).
    let r = http()
        .post(format!("{}/login", app.addr))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("token", admin.as_str()), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn the_cli_stores_an_agents_departments() {
    let app = TestApp::spawn().await;
    let out = callgate_cli(
        &app.data_dir,
        &[
            "user",
            "add",
            "Bob",
            "--role",
            "agent",
            "--departments",
            "Billing, technical",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap();
    let user = app
        .store()
        .read_sync(|db| db.user_by_token(token))
        .unwrap()
        .unwrap();
    assert_eq!(user.departments, ["billing", "technical"]);
    let out = callgate_cli(
        &app.data_dir,
        &[
            "user",
            "add",
            "Eve",
            "--role",
            "agent",
            "--departments",
            "bill ing",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("department"));
}

// Headless Chromium. The app's public URL is its own http address here: Chromium does not send
// a Secure cookie over plain http (the Secure flag is checked above instead).

#[tokio::test]
async fn browser_an_admin_logs_in_sees_the_admin_page_and_logs_out() {
    let app = TestApp::spawn_without_proxy().await;
    let token = app.user("Ada Admin", Role::Admin);
    let browser = Browser::start().await;

    browser.goto(&format!("{}/admin", app.addr)).await;
    browser.wait_for_path("/login").await;
    assert_eq!(browser.path().await, "/login?next=%2Fadmin");
    browser.type_into("token", &token).await;
    browser.click("login").await;

    browser.wait_for_path("/admin").await;
    assert_eq!(browser.text_of("user-name").await, "Ada Admin");
    assert!(browser.page().await.contains("Scripts"));
    // The CSS and the script loaded under the CSP.
    let bar = browser
        .eval("return getComputedStyle(document.querySelector('.topbar')).display")
        .await;
    assert_eq!(bar, "flex");
    let me = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             window.callgate.api('/api/me').then(me => done(me.name), e => done('error: ' + e));",
        )
        .await;
    assert_eq!(me, "Ada Admin");
    // The cookie is out of scripts' reach.
    assert_eq!(browser.eval("return document.cookie").await, "");

    browser.click("logout").await;
    browser.wait_for_path("/login").await;
    browser.wait_for_id("token").await;
    browser.goto(&format!("{}/admin", app.addr)).await;
    browser.wait_for_path("/login").await;
    browser.quit().await;
}

#[tokio::test]
async fn browser_an_agent_is_shown_the_403_page_on_admin_pages() {
    let app = TestApp::spawn_without_proxy().await;
    let token = app.user_in("Olga Agent", Role::Agent, "billing");
    let browser = Browser::start().await;

    browser.goto(&format!("{}/login", app.addr)).await;
    browser.type_into("token", "cg_wrong-token").await;
    browser.click("login").await;
    assert!(
        browser
            .text_of("login-error")
            .await
            .contains("not accepted")
    );
    browser.type_into("token", &token).await;
    browser.click("login").await;
    browser.wait_for_path("/agent").await;
    assert_eq!(browser.text_of("user-name").await, "Olga Agent");

    browser.goto(&format!("{}/admin", app.addr)).await;
    assert_eq!(browser.text_of("error-title").await, "403 Forbidden");
    assert!(browser.page().await.contains("admins only"));
    browser.quit().await;
}
