//! The webhook endpoints: `POST /twilio/voice` (a call comes in), `POST /twilio/ivr/{step}` (the
//! flow's own `<Gather>`/`<Redirect>`/`<Dial>` actions) and `POST /twilio/status`. The two URLs
//! configured on the number also answer GET, for numbers set to call with GET.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::Instrument;

use super::render::{self, HANDOFF_RESULT, Twiml};
use super::voice;
use super::webhook::{SignedForm, read_call};
use crate::agent::live;
use crate::api::extract::Path;
use crate::error::ApiError;
use crate::ivr::engine::{self, CallInput, Event};
use crate::startup::AppState;

/// How long a webhook waits for its database work before the caller hears the apology: well
/// within Twilio's 15 s, and before the router's own time limit answers 503 (which Twilio reads
/// out as an application error).
const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(7);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/twilio/voice", post(incoming_call).get(incoming_call_get))
        .route("/twilio/ivr/{step}", post(flow_step))
        .route(
            "/twilio/status",
            post(status_callback).get(status_callback_get),
        )
}

#[utoipa::path(
    post,
    path = "/twilio/voice",
    operation_id = "incoming_call",
    tag = "twilio",
    summary = "A call comes in (Twilio webhook)",
    description = "The voice URL of the number: answers with the script's first TwiML. Also answers GET (parameters in the query) for numbers set to call with GET.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 signature of the URL and the form parameters, with the account's auth token.")),
    request_body(description = "Twilio's webhook parameters (CallSid, From, To, Digits, SpeechResult, StirVerstat, ...).", content_type = "application/x-www-form-urlencoded", content(("application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "TwiML for the call.", content_type = "text/xml", body = String),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = crate::openapi::ErrorBody),
        (status = 503, description = "Overloaded: Twilio then uses the number's fallback URL.", body = crate::openapi::ErrorBody)
    ),
    security(("twilio_signature" = []))
)]
async fn incoming_call(
    State(state): State<AppState>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    run_flow(&state, &form, Event::Incoming).await
}

#[utoipa::path(
    post,
    path = "/twilio/ivr/{step}",
    tag = "twilio",
    summary = "A step of the flow (Twilio webhook)",
    description = "The action URL of the flow's own `<Gather>`, `<Redirect>` and `<Dial>` verbs.",
    params(("step" = String, Path, description = "The step the call is in."), ("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 signature of the URL and the form parameters, with the account's auth token.")),
    request_body(description = "Twilio's webhook parameters (CallSid, From, To, Digits, SpeechResult, StirVerstat, ...).", content_type = "application/x-www-form-urlencoded", content(("application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "TwiML for the call.", content_type = "text/xml", body = String),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = crate::openapi::ErrorBody),
        (status = 503, description = "Overloaded: Twilio then uses the number's fallback URL.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody)
    ),
    security(("twilio_signature" = []))
)]
async fn flow_step(
    State(state): State<AppState>,
    Path(step): Path<String>,
    form: SignedForm,
) -> Result<Response, ApiError> {
    // Step names are short lowercase identifiers (the checker enforces it); anything else was
    // never in a document callgate sent.
    let valid = (1..=40).contains(&step.len())
        && step
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(ApiError::NotFound);
    }
    let event = if step == HANDOFF_RESULT {
        Event::HandoffResult(
            form.get("DialCallStatus")
                .or_else(|| form.get("QueueResult"))
                .filter(|v| v.len() <= 32)
                .map(str::to_owned),
        )
    } else {
        Event::Input(step)
    };
    run_flow(&state, &form, event).await
}

async fn run_flow(state: &AppState, form: &SignedForm, event: Event) -> Result<Response, ApiError> {
    let params = read_call(form, state.settings.region)
        .inspect_err(|_| state.ivr.metrics.error("bad_request"))?;
    let endpoint = match &event {
        Event::Incoming => "voice".to_owned(),
        Event::Input(step) => step.clone(),
        Event::HandoffResult(_) => HANDOFF_RESULT.to_owned(),
    };
    let started = std::time::Instant::now();
    // Every log line of this webhook, on this task or on the writer thread, carries the CallSid:
    // a call's lines are found by it.
    let span = tracing::info_span!("webhook", call_sid = %params.call_sid);
    let answer = run_flow_in(state, params, event).instrument(span).await;
    let histogram = state
        .ivr
        .metrics
        .webhook_seconds
        .get_or_create(&crate::metrics::Endpoint { endpoint });
    histogram.observe(started.elapsed().as_secs_f64());
    answer
}

async fn run_flow_in(
    state: &AppState,
    params: CallInput,
    event: Event,
) -> Result<Response, ApiError> {
    let ivr = state.ivr.clone();
    let for_flow = params.clone();
    let span = tracing::Span::current();
    let crm = state.settings.crm_webhook.is_some();
    let clock = state.clock.clone();
    let job = state.store.write(move |db| {
        let _in_call = span.enter();
        let now = clock.now_ms();
        // The call row is read once, by the engine; the tracker compares before and after.
        let answered = voice::answer(db, &ivr, &for_flow, event, now)?;
        // In the same transaction: the agents' events exist exactly when the change does.
        let tracked =
            live::track_flow(db, &ivr, answered.before.as_ref(), &answered.call, crm, now)?;
        Ok((answered.twiml, tracked))
    });
    // A database that does not answer (cut off, hung, restarting) must not keep the caller
    // in silence until Twilio gives up: past the deadline the caller hears the apology. The
    // job may still commit later; the caller, told to call back, has hung up by then.
    let result = match tokio::time::timeout(STORE_DEADLINE, job).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "the database did not answer within {} s",
            STORE_DEADLINE.as_secs()
        )),
    };
    // Committed: now the consoles and the CRM task may hear of it.
    let result = result.map(|(doc, tracked)| {
        state.hub.publish(&tracked);
        doc
    });
    let doc = result.unwrap_or_else(|e| {
        // The caller is on the line: a polite goodbye, not a 5xx (which Twilio would read out
        // as "an application error has occurred").
        tracing::error!(error = %format!("{e:#}"), "call flow failed; caller told to call back");
        state.ivr.metrics.error("technical_error");
        let apology = engine::apology(&state.ivr, params.called.as_deref());
        Twiml::of(&state.ivr).document(&apology, None)
    });
    Ok(twiml_response(render::to_xml(&doc)))
}

pub fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

#[utoipa::path(
    post,
    path = "/twilio/status",
    operation_id = "status_callback",
    tag = "twilio",
    summary = "Call status callback (Twilio webhook)",
    description = "Twilio reports a call's progress (`CallStatus`, `CallDuration`). Also answers GET.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 signature of the URL and the form parameters, with the account's auth token.")),
    request_body(description = "Twilio's webhook parameters (CallSid, From, To, Digits, SpeechResult, StirVerstat, ...).", content_type = "application/x-www-form-urlencoded", content(("application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = crate::openapi::ErrorBody)
    ),
    security(("twilio_signature" = []))
)]
async fn status_callback(
    State(state): State<AppState>,
    form: SignedForm,
) -> Result<StatusCode, ApiError> {
    let params = read_call(&form, state.settings.region)?;
    let status = form
        .get("CallStatus")
        .filter(|s| s.len() <= 20 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .ok_or_else(|| ApiError::BadRequest("missing or malformed parameter CallStatus".into()))?
        .to_owned();
    let duration = form.get("CallDuration").and_then(|d| d.parse::<i64>().ok());
    let sid = params.call_sid.as_str().to_owned();
    // The agent's leg of a `<Dial>` reports on the caller's call through `ParentCallSid`.
    let parent = form
        .get("ParentCallSid")
        .and_then(|p| crate::domain::CallSid::parse(p).ok());
    tracing::info!(call_sid = %sid, status = %status, "status callback");
    let clock = state.clock.clone();
    let tracked = state
        .store
        .write(move |db| {
            let now = clock.now_ms();
            if let Some(parent) = parent {
                return live::track_status(db, parent.as_str(), &status, now);
            }
            db.record_call_status(&sid, &status, duration, now)?;
            live::track_status(db, &sid, &status, now)
        })
        .await
        .map_err(ApiError::internal)?;
    state.hub.publish(&tracked);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/twilio/voice",
    operation_id = "incoming_call_get",
    tag = "twilio",
    summary = "A call comes in (Twilio webhook, GET)",
    description = "The same as the POST, for numbers set to call with GET: Twilio's parameters come in the query string, and the signature covers the full URL.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 signature of the full URL, with the account's auth token.")),
    responses(
        (status = 200, description = "TwiML for the call.", content_type = "text/xml", body = String),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = crate::openapi::ErrorBody),
        (status = 503, description = "Overloaded: Twilio then uses the number's fallback URL.", body = crate::openapi::ErrorBody)
    ),
    security(("twilio_signature" = []))
)]
async fn incoming_call_get(state: State<AppState>, form: SignedForm) -> Result<Response, ApiError> {
    incoming_call(state, form).await
}

#[utoipa::path(
    get,
    path = "/twilio/status",
    operation_id = "status_callback_get",
    tag = "twilio",
    summary = "Call status callback (Twilio webhook, GET)",
    description = "The same as the POST, for numbers set to call with GET: Twilio's parameters come in the query string, and the signature covers the full URL.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 signature of the full URL, with the account's auth token.")),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = crate::openapi::ErrorBody)
    ),
    security(("twilio_signature" = []))
)]
async fn status_callback_get(
    state: State<AppState>,
    form: SignedForm,
) -> Result<StatusCode, ApiError> {
    status_callback(state, form).await
}
