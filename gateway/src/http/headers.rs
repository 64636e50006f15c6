//! The header names the API reads and writes beyond HTTP's own, each written once: the handlers,
//! the plumbing, CORS and the tests all take them from here.

use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};

/// A purchase attempt's key (or a queue join's), instead of the body's `idempotencyKey`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// A waiting room's admission, for a concert that has one.
pub const ADMISSION_TOKEN: HeaderName = HeaderName::from_static("admission-token");
/// Set on an answer that repeats an earlier booking instead of making one.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// `Prefer: wait=N` (RFC 7240): the client would rather wait for the booking's outcome.
pub const PREFER: HeaderName = HeaderName::from_static("prefer");
/// Says which preference was honoured: `wait=N`.
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
/// The request's id, taken from the client (or a proxy) or generated, on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The client addresses a proxy saw, believed only from `TRUSTED_PROXIES`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Tells nginx-like proxies not to buffer an event stream.
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
/// Where a reconnecting event-stream client left off.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Request headers a cross-origin page may send, beyond the CORS-safelisted ones.
pub const CORS_REQUEST: [HeaderName; 7] = [
    CONTENT_TYPE,
    IDEMPOTENCY_KEY,
    ADMISSION_TOKEN,
    AUTHORIZATION,
    PREFER,
    LAST_EVENT_ID,
    REQUEST_ID,
];
/// Response headers a cross-origin page may read.
pub const CORS_EXPOSED: [HeaderName; 5] = [
    LOCATION,
    RETRY_AFTER,
    IDEMPOTENT_REPLAYED,
    REQUEST_ID,
    PREFERENCE_APPLIED,
];

/// `names` as one comma-separated header value.
pub fn list(names: &[HeaderName]) -> String {
    names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The client's request id if it is a sensible one, else a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensible_request_id_is_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&headers), "has space");
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
    }
}
