//! `GET /api/reports/{name}?from=&to=[&format=csv&table=N]` (admins), and the `/admin/reports`
//! page, which draws the same reports server-side: charts as SVG, tables as HTML.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use minijinja::context;
use serde::Deserialize;

use super::{NAMES, Report};
use crate::admin::auth::Admin;
use crate::api::extract::{Json, Path, Query};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::web::session::AdminUser;
use crate::web::templates;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A report `GET /api/reports/{name}` computes.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReportInfo {
    pub name: &'static str,
    pub title: &'static str,
}

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// `YYYY-MM-DD` (start of that day, UTC) or RFC 3339; default: 7 days before `to`.
    from: Option<String>,
    /// Exclusive; `YYYY-MM-DD` means the end of that day. Default: now.
    to: Option<String>,
    /// `csv` for one table (`table`) as CSV; JSON otherwise.
    format: Option<String>,
    /// With `format=csv`: which table, from 0 (default 0).
    table: Option<usize>,
    /// The `/admin/reports` page only: one report instead of all.
    #[param(ignore)]
    name: Option<String>,
}

fn parse_time(s: &str, end_of_day: bool) -> Result<i64, ApiError> {
    let s = s.trim();
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        let midnight = day.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        return midnight
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| ApiError::BadRequest(format!("bad date {s:?}")));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::BadRequest(format!("{s:?}: use YYYY-MM-DD or RFC 3339")))
}

impl Period {
    /// The period's bounds; without `to`, it ends at `now`.
    fn bounds(&self, now: i64) -> Result<(i64, i64), ApiError> {
        let to = match &self.to {
            Some(t) => parse_time(t, true)?,
            None => now,
        };
        let from = match &self.from {
            Some(f) => parse_time(f, false)?,
            None => to - 7 * DAY_MS,
        };
        if from >= to {
            return Err(ApiError::BadRequest("`from` must be before `to`".into()));
        }
        if to - from > 400 * DAY_MS {
            return Err(ApiError::BadRequest(
                "a report covers at most 400 days".into(),
            ));
        }
        Ok((from, to))
    }
}

async fn compute(state: &AppState, name: String, from: i64, to: i64) -> Result<Report, ApiError> {
    if !NAMES.iter().any(|(n, _)| *n == name) {
        return Err(ApiError::NotFound);
    }
    let threshold = state.settings.limits.global_alert_per_minute;
    state
        .store
        .read(move |db| super::build(db, &name, from, to, threshold))
        .await
        .map_err(ApiError::internal)
}

#[utoipa::path(
    get,
    path = "/api/reports",
    operation_id = "list_reports",
    tag = "reports",
    summary = "List the reports",
    description = "The name and title of every report. Admins only: agents get 403.",
    responses(
        (status = 200, description = "The reports.", body = Vec<ReportInfo>),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn list(Admin(_admin): Admin) -> Json<Vec<ReportInfo>> {
    Json(
        NAMES
            .iter()
            .map(|&(name, title)| ReportInfo { name, title })
            .collect(),
    )
}

#[utoipa::path(
    get,
    path = "/api/reports/{name}",
    operation_id = "report",
    tag = "reports",
    summary = "Compute a report",
    description = "A report over a period (at most 400 days) as JSON, or one of its tables as CSV with `format=csv&table=N`. Admins only: agents get 403.",
    params(("name" = String, Path, description = "The report's name, from `GET /api/reports`."), Period),
    responses(
        (status = 200, description = "The report (JSON), or one table (CSV).", content((crate::reports::Report = "application/json"), (String = "text/csv"))),
        (status = 400, description = "The request is malformed; `error` says why.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such resource.", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid bearer token or session cookie.", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (agents get 403), or a cookie request without a valid `X-CSRF-Token`.", body = crate::openapi::ErrorBody)
    ),
    security(("bearer" = []), ("cg_session" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(name): Path<String>,
    Query(period): Query<Period>,
) -> Result<Response, ApiError> {
    let (from, to) = period.bounds(state.clock.now_ms())?;
    let report = compute(&state, name, from, to).await?;
    if period.format.as_deref() == Some("csv") {
        let index = period.table.unwrap_or(0);
        let table = report.tables.get(index).ok_or(ApiError::NotFound)?;
        let filename = format!("callgate-{}-{}.csv", report.name, index);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            table.to_csv(),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

/// `GET /admin/reports[?name=&from=&to=]`: every report (or one), drawn on the server.
pub async fn page(
    State(state): State<AppState>,
    AdminUser(user): AdminUser,
    // An HTML page: axum's own rejection, not the JSON API's.
    axum::extract::Query(period): axum::extract::Query<Period>,
) -> Response {
    let (from, to) = match period.bounds(state.clock.now_ms()) {
        Ok(b) => b,
        Err(e) => return templates::error_page(StatusCode::BAD_REQUEST, &e.to_string(), None),
    };
    let names: Vec<&str> = match period.name.as_deref() {
        Some(n) if NAMES.iter().any(|(x, _)| *x == n) => vec![n],
        _ => NAMES.iter().map(|(n, _)| *n).collect(),
    };
    let mut reports = Vec::new();
    for name in names {
        match compute(&state, name.to_owned(), from, to).await {
            Ok(r) => {
                let chart = super::svg::chart(&r);
                reports.push(context! { report => minijinja::Value::from(minijinja::value::Serde(&r)), chart => chart });
            }
            Err(e) => {
                tracing::error!(error = %e, report = name, "report failed");
                return templates::internal_error();
            }
        }
    }
    let day = |ms: i64| {
        crate::store::to_rfc3339(ms)
            .map(|s| s.chars().take(10).collect::<String>())
            .unwrap_or_default()
    };
    templates::page(
        StatusCode::OK,
        "reports.html",
        context! {
            reports => reports,
            from => day(from),
            to => day(to - 1),
            ..user.context()
        },
    )
}
