//! Reading a Twilio webhook: the `SignedForm` extractor authenticates the request by its
//! `X-Twilio-Signature` before any handler sees a parameter; `read_call` then reads the
//! parameters callgate uses into the engine's `CallInput`, refusing malformed ones with a clear
//! 400.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Uri;

use super::signature;
use crate::domain::{CallSid, CallerId, Keypad, Region, StirVerstat};
use crate::error::ApiError;
use crate::ivr::engine::{CallInput, Speech};
use crate::startup::AppState;

/// The form parameters of a webhook whose signature was checked.
#[derive(Debug, Clone)]
pub struct SignedForm {
    pub params: Vec<(String, String)>,
}

impl SignedForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The URL Twilio signed: the configured public base (what Twilio was told to call, which is not
/// what a server behind a proxy sees) plus the path and query as received.
pub fn signed_url(public_url: &str, uri: &Uri) -> String {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{}{}", public_url.trim_end_matches('/'), path_and_query)
}

impl SignedForm {
    /// Reads the form-encoded parameters and checks the signature: the parameters and whether the
    /// signature is valid (always, when `tokens` is `None`: signature checking is switched off).
    /// A GET's parameters travel in the signed URL, so none are appended to it. Pure, so the
    /// fuzzer (`fuzz/fuzz_targets/webhook_form.rs`) drives exactly what a request goes through.
    pub fn check(
        form: &[u8],
        is_get: bool,
        tokens: Option<&[String]>,
        url: &str,
        header: Option<&str>,
    ) -> Result<(Vec<(String, String)>, bool), ApiError> {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(form)
            .map_err(|_| ApiError::BadRequest("parameters are not a form-encoded list".into()))?;
        let signed_params: &[(String, String)] = if is_get { &[] } else { &params };
        let valid = match tokens {
            None => true,
            Some(tokens) => {
                header.is_some_and(|h| signature::is_valid(tokens, url, signed_params, h))
            }
        };
        Ok((params, valid))
    }
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let uri = req.uri().clone();
        // A number can be configured to call with GET: the parameters then travel in the query
        // string, which is part of the signed URL, and nothing else is signed.
        let is_get = req.method() == axum::http::Method::GET;
        let header = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::BadRequest("request body could not be read".into()))?;
        let form = if is_get {
            uri.query().unwrap_or_default().as_bytes()
        } else {
            &body[..]
        };
        let settings = &state.settings;
        let tokens = if settings.insecure_skip_signature {
            None
        } else {
            Some(settings.twilio_auth_tokens())
        };
        let url = signed_url(&settings.public_url, &uri);
        let (params, valid) = Self::check(form, is_get, tokens, &url, header.as_deref())?;
        if !valid {
            tracing::warn!(
                path = uri.path(),
                signature_present = header.is_some(),
                "refused webhook: X-Twilio-Signature does not match (check CALLGATE_PUBLIC_URL and the auth token)"
            );
            state.ivr.metrics.error("bad_signature");
            return Err(ApiError::Forbidden);
        }
        Ok(Self { params })
    }
}

/// A transcript longer than this is cut: no department phrase needs more.
const MAX_SPEECH_CHARS: usize = 500;

/// Twilio's transcript (`SpeechResult`, `Confidence`), when a `<Gather>` heard words.
fn read_speech(form: &SignedForm) -> Option<Speech> {
    let text: String = form
        .get("SpeechResult")?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SPEECH_CHARS)
        .collect();
    if text.trim().is_empty() {
        return None;
    }
    let confidence = form
        .get("Confidence")
        .and_then(|c| c.trim().parse::<f64>().ok())
        .filter(|c| c.is_finite())
        .map(|c| c.clamp(0.0, 1.0));
    Some(Speech { text, confidence })
}

/// Reads a voice webhook's parameters into what the engine takes, refusing malformed ones with
/// a clear 400.
pub fn read_call(form: &SignedForm, region: Region) -> Result<CallInput, ApiError> {
    let call_sid = form
        .get("CallSid")
        .ok_or_else(|| ApiError::BadRequest("missing parameter CallSid".into()))
        .and_then(|raw| CallSid::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string())))?;
    let called = form
        .get("To")
        .map(str::trim)
        .filter(|to| !to.is_empty() && to.len() <= 64 && !to.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(CallInput {
        call_sid,
        caller: CallerId::from_twilio(form.get("From"), region),
        called,
        stir: StirVerstat::parse(form.get("StirVerstat")),
        digits: Keypad::from_digits(form.get("Digits")),
        speech: read_speech(form),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_url_joins_base_and_path() {
        let uri: Uri = "/twilio/voice?b=2&a=1".parse().unwrap();
        assert_eq!(
            signed_url("https://cg.example/", &uri),
            "https://cg.example/twilio/voice?b=2&a=1"
        );
        assert_eq!(
            signed_url("https://cg.example/pre", &uri),
            "https://cg.example/pre/twilio/voice?b=2&a=1"
        );
    }
}
