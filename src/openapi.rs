//! The OpenAPI description of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types' `ToSchema` derives, and served at `GET /api/openapi.json`
//! (public: it describes the API, it holds no data).

use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::ivr::script::Problem;

mod constraints;

/// The body of every error answer of the JSON API.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A short reason, for people.
    pub error: String,
    /// With 422 only: every problem the checker found.
    #[schema(nullable = false)]
    pub problems: Option<Vec<Problem>>,
}

/// A script sent as JSON (the TOML text may also be the body itself).
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct SourceBody {
    /// The script's TOML text.
    pub source: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callgate",
        description = "Caller verification for Twilio voice calls: the JSON API of the admin page and the agent console, \
                       the Twilio webhooks, and the operator's endpoints.\n\n\
                       The JSON API takes an API token (`Authorization: Bearer cg_...`) or the `cg_session` cookie of a \
                       logged-in browser; with the cookie, requests that change something (POST, PUT, DELETE) must also \
                       carry the session's CSRF token in `X-CSRF-Token`. Admin endpoints answer 403 to agents."
    ),
    paths(
        crate::admin::scripts::list,
        crate::admin::scripts::check_draft,
        crate::admin::scripts::show,
        crate::admin::scripts::save,
        crate::admin::scripts::versions,
        crate::admin::scripts::version,
        crate::admin::scripts::publish,
        crate::admin::scripts::rollback,
        crate::admin::scripts::audit,
        crate::admin::journey::show,
        crate::admin::simulator::start,
        crate::admin::simulator::step,
        crate::admin::people::list_accounts,
        crate::admin::people::add_account,
        crate::admin::people::remove_account,
        crate::admin::people::unlock_account,
        crate::admin::people::list_users,
        crate::admin::people::add_user,
        crate::admin::people::remove_user,
        crate::reports::api::list,
        crate::reports::api::report,
        crate::agent::routes::screen_pop,
        crate::agent::routes::me,
        crate::agent::console::record_outcome,
        crate::agent::console::queue,
        crate::agent::console::visible_attributes,
        crate::agent::console::set_visible_attributes,
        crate::agent::live::stream,
        crate::twilio::routes::incoming_call,
        crate::twilio::routes::incoming_call_get,
        crate::twilio::routes::flow_step,
        crate::twilio::routes::status_callback,
        crate::twilio::routes::status_callback_get,
        crate::startup::ops::healthz,
        crate::startup::ops::metrics,
        openapi_json,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "scripts", description = "IVR scripts: edit, check, version, publish (admins)"),
        (name = "audit", description = "The tamper-evident audit trail (admins)"),
        (name = "calls", description = "Calls as admins trace them"),
        (name = "reports", description = "Reports, as JSON or CSV (admins)"),
        (name = "simulator", description = "The call simulator of the admin page (admins)"),
        (name = "people", description = "Accounts and users (admins)"),
        (name = "agent", description = "The agent console and screen-pops (agents and admins)"),
        (name = "settings", description = "Settings (admins)"),
        (name = "twilio", description = "Twilio's webhooks: signed forms in, TwiML out"),
        (name = "operations", description = "Health, metrics and this description"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cg_...")
                    .description(Some(
                        "An API token (`callgate user add` or `POST /api/users`): `Authorization: Bearer cg_...`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cg_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "cg_session",
                "The session cookie set by `POST /login`. Unsafe methods (POST, PUT, DELETE) must also send \
                 the session's CSRF token in the `X-CSRF-Token` header, else 403.",
            ))),
        );
        components.add_security_scheme(
            "twilio_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Twilio-Signature",
                "Twilio's signature of the webhook (HMAC-SHA1 of the URL and the sorted form parameters, \
                 keyed with the Twilio auth token).",
            ))),
        );
    }
}

/// The description as JSON, built once: the annotations' document, with what they do not say
/// (`constraints`).
pub fn json() -> String {
    let mut doc =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI description serializes");
    constraints::refine(&mut doc);
    doc.to_string()
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    summary = "This description",
    description = "The OpenAPI description of the API, generated from the code. No login.",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
    security(())
)]
pub async fn openapi_json(
    axum::extract::State(doc): axum::extract::State<std::sync::Arc<str>>,
) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&super::json()).unwrap()
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    /// Each `{param}` of a path is declared once, as a path parameter, by each operation;
    /// no parameter is declared twice.
    #[test]
    fn path_parameters_match_the_templates() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let template: Vec<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|s| s.split('}').next())
                .collect();
            for (method, op) in item.as_object().unwrap() {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                for p in &params {
                    let key = (p["name"].as_str().unwrap().to_owned(), p["in"].to_string());
                    assert!(seen.insert(key), "{method} {path}: {p} declared twice");
                }
                let in_path: Vec<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let mut a = in_path.clone();
                let mut b = template.clone();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "{method} {path}");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(
                    seen.insert(id.clone()),
                    "{method} {path}: operationId {id:?} twice"
                );
            }
        }
    }
}
