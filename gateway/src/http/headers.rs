//! The API's own header names (defined in `api_types::headers`, where clients take them too) as
//! the gateway uses them: the CORS lists and the request id.

use api_types::headers::{
    ADMISSION_TOKEN, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, LAST_EVENT_ID, PREFER,
    PREFERENCE_APPLIED, REQUEST_ID,
};
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};

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

/// The credential of an `Authorization: Bearer <credential>` header; `None` without one. Another
/// scheme, or an unreadable header, is an empty credential: present, and matching nothing.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?;
    let credential = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim_start_matches(' '))
        .unwrap_or_default();
    Some(credential)
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
