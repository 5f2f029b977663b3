//! The baseline: a bare axum handler that answers every POST with one fixed TwiML document of
//! the size callgate's own answers have, doing no work at all. What the machine does with it is
//! the ceiling callgate is measured against. Served by `examples/bare_twiml.rs`; not part of the
//! product.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

const DOCUMENT: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
    r#"<Say voice="Polly.Ewa" language="pl-PL">Dzień dobry, tu pomoc techniczna.</Say>"#,
    r##"<Gather action="http://127.0.0.1/twilio/ivr/account-code" method="POST" input="dtmf" finishOnKey="#" timeout="8">"##,
    r#"<Say voice="Polly.Ewa" language="pl-PL">Wpisz swój kod klienta albo jednorazowy kod połączenia z aplikacji i zakończ krzyżykiem.</Say>"#,
    r#"</Gather><Redirect method="POST">http://127.0.0.1/twilio/ivr/account-code</Redirect></Response>"#
);

pub fn app() -> Router {
    Router::new().fallback(post(fixed_twiml))
}

async fn fixed_twiml() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        DOCUMENT,
    )
}
