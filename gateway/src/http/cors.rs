//! Cross-origin access to `/api/*` (`CORS_ALLOWED_ORIGINS`): a browser page served from an allowed
//! origin may call the API and open its event streams. A preflight from an allowed origin is
//! answered 204 with the methods and headers the API takes; every answer to an allowed origin
//! names it and the headers a client may read. Any other origin gets no CORS headers at all, so
//! its browser refuses the answer: never a wider grant than configured.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response};

use std::sync::LazyLock;

use crate::config::AllowedOrigins;
use crate::http::headers;
use crate::http::response::{Body, no_content};

/// Methods the API answers.
const METHODS: &str = "GET, HEAD, POST, PATCH, OPTIONS";
/// `Access-Control-Allow-Headers` and `-Expose-Headers`: the lists in `headers`, joined once.
static REQUEST_HEADERS: LazyLock<HeaderValue> = LazyLock::new(|| joined(&headers::CORS_REQUEST));
static EXPOSED_HEADERS: LazyLock<HeaderValue> = LazyLock::new(|| joined(&headers::CORS_EXPOSED));

fn joined(names: &[http::HeaderName]) -> HeaderValue {
    // Header names are visible ASCII, so their list is a valid value.
    HeaderValue::from_str(&headers::list(names)).unwrap_or(HeaderValue::from_static(""))
}
/// How long a browser may reuse a preflight's answer, seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

impl AllowedOrigins {
    /// The `Access-Control-Allow-Origin` an `origin` is granted, if any.
    fn grant(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            Self::None => None,
            Self::Any => Some(HeaderValue::from_static("*")),
            Self::Listed(origins) => {
                let origin = origin.to_str().ok()?;
                origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
                    .then(|| HeaderValue::from_str(origin).ok())
                    .flatten()
            }
        }
    }
}

/// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) of a
/// path under `/api/` from an allowed origin; `None` leaves the request to its route.
pub fn preflight(
    allowed: &AllowedOrigins,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    if method != Method::OPTIONS
        || !path.starts_with("/api/")
        || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let granted = allowed.grant(headers.get(ORIGIN)?)?;
    let mut response = no_content();
    let out = response.headers_mut();
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, granted);
    out.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    out.insert(ACCESS_CONTROL_ALLOW_HEADERS, REQUEST_HEADERS.clone());
    out.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    out.append(VARY, HeaderValue::from_static("origin"));
    Some(response)
}

/// Adds the CORS headers to an answer of `path` for a request from `origin`: the grant and the
/// readable headers when the origin is allowed, and `Vary: Origin` whenever CORS is on, since
/// the answer then depends on who asks.
pub fn decorate(
    allowed: &AllowedOrigins,
    path: &str,
    origin: Option<&HeaderValue>,
    headers: &mut HeaderMap,
) {
    if *allowed == AllowedOrigins::None || !path.starts_with("/api/") {
        return;
    }
    headers.append(VARY, HeaderValue::from_static("origin"));
    if let Some(granted) = origin.and_then(|origin| allowed.grant(origin)) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, granted);
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_HEADERS.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::allowed_origins;

    fn listed() -> AllowedOrigins {
        allowed_origins("https://Tickets.example, http://localhost:3000/").expect("origins")
    }

    fn preflight_headers(origin: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_static(origin));
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        headers
    }

    #[test]
    fn only_an_allowed_origin_gets_a_preflight_answer() {
        let answer = preflight(
            &listed(),
            &Method::OPTIONS,
            "/api/bookings",
            &preflight_headers("http://localhost:3000"),
        )
        .expect("answered");
        assert_eq!(answer.status(), http::StatusCode::NO_CONTENT);
        assert_eq!(
            answer.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://localhost:3000"
        );
        assert!(
            answer.headers()[ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .is_ok_and(|allowed| allowed.contains("idempotency-key"))
        );
        let evil = preflight_headers("https://evil.example");
        assert!(preflight(&listed(), &Method::OPTIONS, "/api/bookings", &evil).is_none());
        let local = preflight_headers("http://localhost:3000");
        assert!(
            preflight(
                &AllowedOrigins::None,
                &Method::OPTIONS,
                "/api/bookings",
                &local
            )
            .is_none()
        );
        assert!(preflight(&listed(), &Method::OPTIONS, "/metrics", &local).is_none());
    }

    #[test]
    fn answers_name_only_an_allowed_origin() {
        let mut headers = HeaderMap::new();
        let evil = HeaderValue::from_static("https://evil.example");
        decorate(&listed(), "/api/concerts", Some(&evil), &mut headers);
        assert!(!headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(headers[VARY], "origin");

        let mut headers = HeaderMap::new();
        let allowed = HeaderValue::from_static("https://tickets.example");
        decorate(&listed(), "/api/concerts", Some(&allowed), &mut headers);
        assert_eq!(
            headers[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://tickets.example"
        );
        assert!(headers.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));

        let mut headers = HeaderMap::new();
        decorate(
            &AllowedOrigins::Any,
            "/api/concerts",
            Some(&evil),
            &mut headers,
        );
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");

        let mut headers = HeaderMap::new();
        decorate(
            &AllowedOrigins::None,
            "/api/concerts",
            Some(&allowed),
            &mut headers,
        );
        assert!(headers.is_empty());
    }
}
