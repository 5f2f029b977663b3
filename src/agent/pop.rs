//! `/pop/{token}`: a short-lived signed screen-pop URL that a CRM frame (or Flex's CRM
//! container) opens without a callgate login. The hand-off carries it to the desktop (task
//! attribute `pop_url`, client `<Parameter name="pop_url">`, SIP header `X-Callgate-Pop`).
//!
//! The token is `base64url("<expiry secs>.<CallSid>") "." base64url(HMAC-SHA256[..16])`, keyed
//! with a key derived from the server key file for this purpose only (`Purpose::PopUrl`), so
//! it cannot be forged, altered or extended. It opens until it expires, and once per agent
//! session: the first browser to open it gets a `cg_pop` session cookie (HttpOnly) the URL is
//! bound to; opening it from another browser session is refused.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::context;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::view::{CallView, Viewer};
use crate::startup::AppState;
use crate::store::pop::PopBinding;
use crate::verify::{Keyring, Purpose};
use crate::web::templates;

/// The cookie a screen-pop URL is bound to.
pub const COOKIE: &str = "cg_pop";
/// Bytes of the HMAC kept in the token: 128 bits.
const MAC_LEN: usize = 16;
const MAX_TOKEN_LEN: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/pop/{token}", get(open))
}

fn mac(keys_hash: &[u8]) -> &[u8] {
    &keys_hash[..MAC_LEN.min(keys_hash.len())]
}

/// A token for `call_sid` that expires at `expires_at_ms`.
pub fn token(keys: &Keyring, call_sid: &str, expires_at_ms: i64) -> String {
    let payload = format!("{}.{call_sid}", expires_at_ms.div_euclid(1000));
    let (_, hash) = keys.keyed_hash(Purpose::PopUrl, &payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(mac(&hash))
    )
}

/// The absolute URL for `call_sid`.
pub fn url(keys: &Keyring, public_url: &str, call_sid: &str, expires_at_ms: i64) -> String {
    format!("{public_url}/pop/{}", token(keys, call_sid, expires_at_ms))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    Valid {
        call_sid: String,
        expires_at: i64,
    },
    Expired,
    /// Malformed, altered or signed with an unknown key.
    Invalid,
}

/// Checks a token's signature (under every key version, for rotations) and expiry.
pub fn check(keys: &Keyring, token: &str, now: i64) -> Checked {
    let parsed = (|| {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, sig) = token.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let (exp, sid) = payload.split_once('.')?;
        let exp: i64 = exp.parse().ok()?;
        Some((payload.clone(), sig, exp, sid.to_owned()))
    })();
    let Some((payload, sig, exp, call_sid)) = parsed else {
        return Checked::Invalid;
    };
    let signed = sig.len() == MAC_LEN
        && keys
            .keyed_hash_candidates(Purpose::PopUrl, &payload)
            .iter()
            .any(|(_, hash)| bool::from(mac(hash).ct_eq(&sig)));
    if !signed || crate::domain::CallSid::parse(&call_sid).is_err() {
        return Checked::Invalid;
    }
    let expires_at = exp.saturating_mul(1000);
    if expires_at <= now {
        return Checked::Expired;
    }
    Checked::Valid {
        call_sid,
        expires_at,
    }
}

fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// The `cg_pop` cookie of the request, if it has the shape of one.
fn binding_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|id| {
            id.len() == 43
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

fn new_binding() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A session cookie (no Max-Age: it ends with the browser session). In a CRM's frame it is a
/// third-party cookie, which browsers only keep as `SameSite=None; Secure`: so behind https.
/// Over plain http (local trials) browsers refuse `SameSite=None` without `Secure`, so it is
/// `Lax` there.
fn cookie_header(state: &AppState, value: &str) -> Option<HeaderValue> {
    let site = if state.settings.public_url.starts_with("https:") {
        "SameSite=None; Secure"
    } else {
        "SameSite=Lax"
    };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/pop; HttpOnly; {site}")).ok()
}

/// The page's headers: the strict CSP, except that the configured CRM origins may frame it.
fn pop_headers(state: &AppState, response: &mut Response) {
    let origins = &state.settings.crm_frame_origins;
    let ancestors = if origins.is_empty() {
        "'none'".to_owned()
    } else {
        origins.join(" ")
    };
    let csp = crate::web::headers::CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {ancestors}"),
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if origins.is_empty() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn page(state: &AppState, status: StatusCode, ctx: minijinja::Value) -> Response {
    let mut response = templates::page(status, "pop.html", ctx);
    pop_headers(state, &mut response);
    response
}

fn refusal(state: &AppState, status: StatusCode, message: &str) -> Response {
    page(state, status, context! { error => message })
}

/// A JSON value as a template value (minijinja's own serde support is not enabled).
fn to_template(v: serde_json::Value) -> minijinja::Value {
    use minijinja::Value;
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(a) => {
            Value::from(a.into_iter().map(to_template).collect::<Vec<_>>())
        }
        serde_json::Value::Object(o) => Value::from(
            o.into_iter()
                .map(|(k, v)| (k, to_template(v)))
                .collect::<std::collections::BTreeMap<String, Value>>(),
        ),
    }
}

/// `GET /pop/{token}`.
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = state.clock.now_ms();
    let (call_sid, expires_at) = match check(&state.ivr.keys.get(), &token, now) {
        Checked::Valid {
            call_sid,
            expires_at,
        } => (call_sid, expires_at),
        Checked::Expired => {
            return refusal(
                &state,
                StatusCode::GONE,
                "This screen-pop link has expired. Open the call in the agent console.",
            );
        }
        Checked::Invalid => {
            return refusal(&state, StatusCode::NOT_FOUND, "No such screen-pop.");
        }
    };
    let existing = binding_cookie(&headers);
    let binding = existing.clone().unwrap_or_else(new_binding);
    let token_hash = sha256(&token);
    let binding_hash = sha256(&binding);
    let sid = call_sid.clone();
    let bound = state
        .store
        .write(move |db| db.bind_pop_url(&token_hash, &binding_hash, &sid, now, expires_at))
        .await;
    match bound {
        Ok(PopBinding::Bound) => {}
        Ok(PopBinding::Other) => {
            tracing::warn!(target: "callgate::security", "screen-pop URL opened from a second browser session: refused");
            return refusal(
                &state,
                StatusCode::FORBIDDEN,
                "This screen-pop link was already opened in another session.",
            );
        }
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "binding a screen-pop URL failed");
            return templates::internal_error();
        }
    }
    let view = state
        .store
        .read(move |db| CallView::by_sid(db, &call_sid, Viewer::PopUrl, now))
        .await;
    let mut response = match view {
        Ok(Some(view)) => page(
            &state,
            StatusCode::OK,
            context! { pop => to_template(serde_json::to_value(&view).unwrap_or_default()) },
        ),
        Ok(None) => refusal(&state, StatusCode::NOT_FOUND, "No such screen-pop."),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "loading a screen-pop failed");
            return templates::internal_error();
        }
    };
    if existing.is_none()
        && let Some(cookie) = cookie_header(&state, &binding)
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::load_or_create(dir.path()).unwrap();
        (dir, keys)
    }

    #[test]
    fn a_token_checks_until_it_expires_and_not_once_altered() {
        let (_d, keys) = keys();
        let sid = "CA0123456789abcdef0123456789abcdef";
        let t = token(&keys, sid, 1_000_000_000);
        assert_eq!(
            check(&keys, &t, 999_000_000),
            Checked::Valid {
                call_sid: sid.into(),
                expires_at: 1_000_000_000
            }
        );
        assert_eq!(check(&keys, &t, 1_000_000_000), Checked::Expired);
        // Another call or a later expiry with the old signature.
        let (_, sig) = t.split_once('.').unwrap();
        for payload in [
            format!("1000000.{}", sid.replace('0', "1")),
            format!("9000000.{sid}"),
        ] {
            let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(payload));
            assert_eq!(check(&keys, &forged, 0), Checked::Invalid);
        }
        assert_eq!(check(&keys, "x", 0), Checked::Invalid);
        assert_eq!(check(&keys, &t[..t.len() - 1], 0), Checked::Invalid);
        let (_d2, other) = self::keys();
        assert_eq!(check(&other, &t, 0), Checked::Invalid);
        assert!(t.len() < 100, "{t}");
    }
}
