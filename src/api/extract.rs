//! The JSON API's extractors: axum's `Json`, `Path` and `Query`, whose rejections are answered
//! with the JSON error body of every other API error (`crate::error::ApiError`), not axum's
//! plain text. Handlers of the JSON API import these instead of axum's (axum's
//! "customize-extractor-error" pattern); `crate::openapi` documents the statuses they answer
//! for every operation that takes a body or parameters.
//!
//! | rejection                                   | status |
//! |---------------------------------------------|--------|
//! | no `Content-Type: application/json`          | 415    |
//! | a body that is not JSON                     | 400    |
//! | JSON of the wrong shape (type, missing field) | 422    |
//! | a path or query that does not parse         | 400    |

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A JSON request body; also the JSON answer (`Json(value)`), as axum's.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The path's parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The query string's parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A rejection as the API answers it: its status and axum's reason. A 5xx rejection (a route
/// and its handler that do not fit together) is the server's fault: logged, and answered as
/// every internal error is.
fn rejected(status: StatusCode, reason: String) -> ApiError {
    if status.is_server_error() {
        ApiError::internal(anyhow::anyhow!("extractor rejection: {reason}"))
    } else {
        ApiError::Rejected { status, reason }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

/// An integer field of a JSON body, read as JSON Schema reads `"type": "integer"`: `7` and
/// `7.0` alike (serde's `i64` takes only the first). For `#[serde(deserialize_with)]`.
pub fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(IntegerVisitor)
}

/// `integer`, for an optional field (absent or `null`: `None`).
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(OptionalInteger)
}

struct IntegerVisitor;

impl serde::de::Visitor<'_> for IntegerVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // Exactly the floats with an i64 value: whole, and inside [-2^63, 2^63).
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
            #[allow(clippy::cast_possible_truncation)]
            Ok(v as i64)
        } else {
            Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
        }
    }
}

struct OptionalInteger;

impl<'de> serde::de::Visitor<'de> for OptionalInteger {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        integer(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::integer")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional_integer")]
        m: Option<i64>,
    }

    fn read(json: &str) -> Result<(i64, Option<i64>), serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|b| (b.n, b.m))
    }

    #[test]
    fn integers_are_read_as_json_schema_reads_them() {
        assert_eq!(read(r#"{"n": 7}"#).unwrap(), (7, None));
        assert_eq!(read(r#"{"n": -7.0, "m": 3}"#).unwrap(), (-7, Some(3)));
        assert_eq!(read(r#"{"n": 1e3, "m": null}"#).unwrap(), (1000, None));
        assert_eq!(read(r#"{"n": -9223372036854775808}"#).unwrap().0, i64::MIN);
        for refused in [
            r#"{"n": 7.5}"#,
            r#"{"n": "7"}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 9.3e18}"#,
            r#"{"n": 1, "m": 0.5}"#,
            r#"{}"#,
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
    }
}
