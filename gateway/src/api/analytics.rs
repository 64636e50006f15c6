//! `GET /api/analytics/dashboard`: the query string read into a dashboard query, answered by the
//! dashboard service (`crate::analytics`).

use chrono::{DateTime, NaiveDate, Utc};
use http::Response;
use uuid::Uuid;

use crate::analytics::{Dashboard, DashboardQuery, Dashboards, Period, open_end, open_start};
use crate::api::problems::{Forbidden, Invalid, RateLimited, Unauthorized, Unavailable};
use crate::http::body::Body;
use crate::http::error::{ApiError, FieldError};

/// `YYYY-MM-DD` (a whole UTC day) or an RFC 3339 timestamp. A date as `endDate` includes that day.
fn bound(
    check: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    end: bool,
) -> Option<DateTime<Utc>> {
    let parsed = match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) => {
            let day = if end { date.succ_opt()? } else { date };
            Ok(day.and_hms_opt(0, 0, 0)?.and_utc())
        }
        Err(_) => DateTime::parse_from_rfc3339(value).map(|at| at.with_timezone(&Utc)),
    };
    match parsed {
        Ok(at) if at >= open_start() && at <= open_end() => Some(at),
        Ok(_) => {
            check.push(FieldError::new(
                field,
                "range",
                "must be from the year 0000 to 9999",
            ));
            None
        }
        Err(_) => {
            check.push(FieldError::new(
                field,
                "format",
                "must be a date (2026-12-01) or an RFC 3339 timestamp (2026-12-01T18:00:00Z)",
            ));
            None
        }
    }
}

/// Parses the query string; every bad parameter is listed.
pub fn parse_query(query: Option<&str>) -> Result<DashboardQuery, ApiError> {
    let mut errors = Vec::new();
    let mut parsed = DashboardQuery {
        concert_id: None,
        start: None,
        end: None,
        period: Period::Day,
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "concertId" | "startDate" | "endDate" | "period" if value.is_empty() => {
                errors.push(FieldError::new(
                    name.as_ref(),
                    "required",
                    "must not be empty",
                ));
            }
            "concertId" => match Uuid::parse_str(&value) {
                Ok(id) => parsed.concert_id = Some(id),
                Err(_) => errors.push(FieldError::new("concertId", "format", "must be a UUID")),
            },
            "startDate" => parsed.start = bound(&mut errors, "startDate", &value, false),
            "endDate" => parsed.end = bound(&mut errors, "endDate", &value, true),
            "period" => match value.as_ref() {
                "hour" => parsed.period = Period::Hour,
                "day" => parsed.period = Period::Day,
                "week" => parsed.period = Period::Week,
                _ => errors.push(FieldError::new(
                    "period",
                    "range",
                    "must be hour, day or week",
                )),
            },
            _ => {}
        }
    }
    if let (Some(start), Some(end)) = (parsed.start, parsed.end)
        && start >= end
    {
        errors.push(FieldError::new(
            "endDate",
            "range",
            "must be after startDate",
        ));
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Confirmed sales for all concerts or one, within an optional window, by hour, day or ISO week
/// (UTC). Dates are `YYYY-MM-DD` (whole UTC days, `endDate` included) or RFC 3339 timestamps
/// (`endDate` excluded). Open to anyone while `ANALYTICS_PUBLIC` is true (the default), else to
/// `analyst` and `admin` credentials.
#[utoipa::path(get, path = "/api/analytics/dashboard", operation_id = "dashboard", tag = "analytics",
    security((), ("operator" = [])),
    params(
        ("concertId" = Option<Uuid>, Query, description = "One concert only"),
        ("startDate" = Option<String>, Query, format = Date, description = "From: a date (`2026-12-01`, the whole UTC day) or an RFC 3339 timestamp"),
        ("endDate" = Option<String>, Query, format = Date, description = "To, after `startDate`: a date (included) or an RFC 3339 timestamp (excluded)"),
        ("period" = Option<Period>, Query, description = "Bucket width (default `day`)"),
    ),
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 400, response = Invalid),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(dashboards: &Dashboards, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let query = parse_query(query)?;
    let body = dashboards
        .answer(query)
        .await
        .map_err(|error| ApiError::Analytics(error.0))?;
    let mut response = Response::new(crate::http::body::full(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::tests::at;

    #[test]
    fn bad_filters_are_each_named() {
        let fields = |query: &str| match parse_query(Some(query)) {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
            }
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(
            fields("period=month&concertId=x&startDate=yesterday"),
            ["period", "concertId", "startDate"]
        );
        assert_eq!(
            fields("startDate=2026-02-01&endDate=2026-01-01"),
            ["endDate"]
        );
    }

    #[test]
    fn dates_cover_whole_days() {
        let query = parse_query(Some("startDate=2026-01-01&endDate=2026-01-01&period=week"))
            .expect("valid");
        assert_eq!(query.start, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(
            query.end,
            Some(at("2026-01-02T00:00:00Z")),
            "the end date is included"
        );
        assert_eq!(query.period, Period::Week);
    }
}
