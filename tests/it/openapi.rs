//! `GET /api/openapi.json`: the OpenAPI description generated from the code documents every
//! route the routers register, with its methods.

use crate::common::*;
use serde_json::Value;

/// Every (method, path) of the JSON API and the documented non-`/api` endpoints, as the routers
/// register them (src/admin/mod.rs, src/agent/routes.rs, src/twilio/routes.rs, src/startup.rs).
/// A route added there must be added here, and documented.
const ROUTES: &[(&str, &str)] = &[
    // src/admin/mod.rs
    ("get", "/api/scripts"),
    ("post", "/api/scripts/check"),
    ("get", "/api/scripts/{name}"),
    ("put", "/api/scripts/{name}"),
    ("get", "/api/scripts/{name}/versions"),
    ("get", "/api/scripts/{name}/versions/{version}"),
    ("post", "/api/scripts/{name}/publish"),
    ("post", "/api/scripts/{name}/rollback"),
    ("get", "/api/audit"),
    ("get", "/api/calls/{call_sid}/journey"),
    ("get", "/api/reports"),
    ("get", "/api/reports/{name}"),
    ("post", "/api/simulator"),
    ("post", "/api/simulator/{session}"),
    ("get", "/api/accounts"),
    ("post", "/api/accounts"),
    ("delete", "/api/accounts/{id}"),
    ("post", "/api/accounts/{id}/unlock"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("delete", "/api/users/{name}"),
    // src/agent/routes.rs
    ("get", "/api/calls/{call_sid}"),
    ("post", "/api/calls/{call_sid}/outcome"),
    ("get", "/api/agent/queue"),
    ("get", "/api/agent/events"),
    ("get", "/api/settings/visible-attributes"),
    ("put", "/api/settings/visible-attributes"),
    ("get", "/api/me"),
    // src/startup.rs
    ("get", "/api/openapi.json"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    // src/twilio/routes.rs
    ("post", "/twilio/voice"),
    ("get", "/twilio/voice"),
    ("post", "/twilio/ivr/{step}"),
    ("post", "/twilio/status"),
    ("get", "/twilio/status"),
];

async fn fetch(app: &TestApp) -> Value {
    // No token, no cookie: the description is public.
    let r = app
        .http
        .get(format!("{}/api/openapi.json", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).expect("the description is valid JSON")
}

#[tokio::test]
async fn the_description_is_public_json_of_openapi_3() {
    let app = TestApp::spawn().await;
    let doc = fetch(&app).await;
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "callgate");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cg_session"]["in"], "cookie");
    assert_eq!(schemes["cg_session"]["name"], "cg_session");
    assert_eq!(schemes["twilio_signature"]["name"], "X-Twilio-Signature");
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods() {
    let app = TestApp::spawn().await;
    let doc = fetch(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(method, path)| paths.get(*path).and_then(|p| p.get(*method)).is_none())
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(missing.is_empty(), "not documented: {missing:?}");
    // Nothing documented that is not served.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                assert!(
                    ROUTES.contains(&(method.as_str(), path.as_str())),
                    "documented but not in ROUTES: {method} {path}"
                );
            }
        }
    }
    // Every operation says who may call it and what comes back.
    for (method, path) in ROUTES {
        let op = &paths[*path][*method];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
        assert!(op["summary"].is_string(), "{method} {path}");
    }
}

/// Every `/api` path the source registers with `.route("...")` is in `ROUTES`, so the list
/// above cannot fall behind the routers.
#[test]
fn routes_lists_every_api_route_of_the_routers() {
    let mut registered = Vec::new();
    let mut stack = vec![repo_path("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut rest = text.as_str();
                while let Some(at) = rest.find(".route(") {
                    rest = rest[at + ".route(".len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"') {
                        let end = lit.find('"').unwrap();
                        registered.push(lit[..end].to_owned());
                    }
                }
            }
        }
    }
    assert!(
        registered.iter().any(|p| p == "/api/scripts"),
        "{registered:?}"
    );
    for path in registered.iter().filter(|p| p.starts_with("/api")) {
        assert!(
            ROUTES.iter().any(|(_, p)| p == path),
            "{path} is served but missing from ROUTES (and perhaps from the description)"
        );
    }
}

#[tokio::test]
async fn saving_a_script_documents_201_and_422() {
    let app = TestApp::spawn().await;
    let doc = fetch(&app).await;
    let put = &doc["paths"]["/api/scripts/{name}"]["put"];
    let responses = put["responses"].as_object().expect("responses");
    assert!(responses.contains_key("201"), "{responses:?}");
    assert!(responses.contains_key("422"), "{responses:?}");
    let problems = &responses["422"]["content"]["application/json"]["schema"];
    assert!(problems.is_object(), "{problems}");
    assert!(
        put["description"]
            .as_str()
            .unwrap()
            .contains("agents get 403"),
        "{put}"
    );
    assert!(put["security"].to_string().contains("bearer"), "{put}");
    // The schemas the operations refer to are there.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Saved",
        "Problem",
        "ErrorBody",
        "ScreenPop",
        "Turn",
        "Report",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
}

#[tokio::test]
async fn webhooks_and_the_event_stream_have_their_media_types() {
    let app = TestApp::spawn().await;
    let doc = fetch(&app).await;
    let voice = &doc["paths"]["/twilio/voice"]["post"];
    assert!(
        voice["requestBody"]["content"]
            .get("application/x-www-form-urlencoded")
            .is_some(),
        "{voice}"
    );
    assert!(
        voice["responses"]["200"]["content"]
            .get("text/xml")
            .is_some(),
        "{voice}"
    );
    assert!(voice.to_string().contains("X-Twilio-Signature"), "{voice}");
    let events = &doc["paths"]["/api/agent/events"]["get"];
    assert!(
        events["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "{events}"
    );
    let csv = &doc["paths"]["/api/reports/{name}"]["get"]["responses"]["200"]["content"];
    assert!(
        csv.get("text/csv").is_some() && csv.get("application/json").is_some(),
        "{csv}"
    );
}

/// The authorization matrix over every `/api` route the app serves (the list above is checked
/// against the sources, so a new route cannot be left out): nobody gets 401, an agent gets 403
/// on everything admin-only, an admin gets past authorization everywhere.
#[tokio::test]
async fn authorization_matrix_of_every_api_route() {
    use callgate::store::users::Role;
    let app = TestApp::spawn().await;
    let admin = app.user("matrix-admin", Role::Admin);
    let agent = app.user("matrix-agent", Role::Agent);
    let mut caller = Caller::new(&app, "+48601234567");
    caller.dial().await;
    let sid = caller.call_sid.clone();
    // What agents may use; every other /api route is for admins.
    let for_agents = [
        ("get", "/api/calls/{call_sid}"),
        ("post", "/api/calls/{call_sid}/outcome"),
        ("get", "/api/agent/queue"),
        ("get", "/api/agent/events"),
        ("get", "/api/me"),
    ];
    let public = [("get", "/api/openapi.json")];
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    for (method, template) in ROUTES.iter().filter(|(_, p)| p.starts_with("/api/")) {
        let path = template
            .replace("{call_sid}", &sid)
            .replace("{name}", "default")
            .replace("{version}", "1")
            .replace("{session}", "0000")
            .replace("{id}", "NOBODY-1");
        let send = |token: Option<&str>| {
            let mut r = client.request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{path}", app.addr),
            );
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.json(&serde_json::json!({})).send()
        };
        let none = send(None).await.unwrap().status().as_u16();
        let as_agent = send(Some(&agent)).await.unwrap().status().as_u16();
        let as_admin = send(Some(&admin)).await.unwrap().status().as_u16();
        let key = (*method, *template);
        if public.contains(&key) {
            assert_eq!(
                (none, as_agent, as_admin),
                (200, 200, 200),
                "{method} {path}"
            );
            continue;
        }
        assert_eq!(none, 401, "{method} {path} without a token");
        if for_agents.contains(&key) {
            assert!(
                ![401, 403].contains(&as_agent),
                "{method} {path} as agent: {as_agent}"
            );
        } else {
            assert_eq!(as_agent, 403, "{method} {path} as agent");
        }
        assert!(
            ![401, 403].contains(&as_admin),
            "{method} {path} as admin: {as_admin}"
        );
    }
}

/// Requests the extractors refuse before a handler runs come back as the JSON error body, with
/// a status the description lists for the operation; so do errors made where no handler runs.
#[tokio::test]
async fn refusals_are_json_error_bodies_with_documented_statuses() {
    use callgate::store::users::Role;
    let app = TestApp::spawn().await;
    let doc = fetch(&app).await;
    let admin = app.user("refusals-admin", Role::Admin);
    let url = |path: &str| format!("{}{path}", app.addr);
    let cases = [
        (
            "no JSON content type",
            ("post", "/api/users"),
            app.http
                .post(url("/api/users"))
                .bearer_auth(&admin)
                .body(r#"{"name": "x", "role": "agent"}"#),
            415,
        ),
        (
            "not JSON",
            ("post", "/api/users"),
            app.http
                .post(url("/api/users"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{"),
            400,
        ),
        (
            "JSON of the wrong shape",
            ("post", "/api/scripts/{name}/publish"),
            app.http
                .post(url("/api/scripts/default/publish"))
                .bearer_auth(&admin)
                .json(&serde_json::json!({ "version": "one" })),
            422,
        ),
        (
            "a query that does not parse",
            ("get", "/api/accounts"),
            app.http
                .get(url("/api/accounts?limit=many"))
                .bearer_auth(&admin),
            400,
        ),
        (
            "a path that does not parse",
            ("get", "/api/scripts/{name}/versions/{version}"),
            app.http
                .get(url("/api/scripts/default/versions/latest"))
                .bearer_auth(&admin),
            400,
        ),
    ];
    for (what, (method, path), request, status) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, "application/json", "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
        let responses = &doc["paths"][path][method]["responses"];
        assert!(
            responses.get(status.to_string()).is_some(),
            "{what}: {method} {path} does not document {status}"
        );
    }
    // No handler at all: an unknown route, a method the route does not have.
    for (request, status) in [
        (app.http.get(url("/api/no-such-thing")), 404),
        (app.http.patch(url("/api/users")).bearer_auth(&admin), 405),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

/// A body's integer field reads as JSON Schema's `integer` reads it: `1.0` is 1.
#[tokio::test]
async fn an_integer_written_with_a_zero_fraction_is_an_integer() {
    use callgate::store::users::Role;
    let app = TestApp::spawn().await;
    let admin = app.user("integers-admin", Role::Admin);
    let r = app
        .http
        .post(format!("{}/api/scripts/default/publish", app.addr))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "version": 1.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}
