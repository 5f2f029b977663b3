//! Security headers. Pages get a strict Content-Security-Policy (no inline script or style, so
//! an injected `<script>` cannot run even if escaping ever failed), no framing, no referrer
//! (URLs may name calls) and no caching (a shared machine's back button must not show a
//! screen-pop after logout). Every response, JSON included, gets `nosniff` so a browser never
//! guesses a type other than the one sent.

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// For the routes of `crate::web`: pages, redirects, assets.
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Assets choose their own caching; everything else is private to one session.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// For the whole application (the JSON API above all): the declared type is the only type.
pub async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
