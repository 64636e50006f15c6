//! Request and response bodies: reading a bounded JSON body, writing JSON answers.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use crate::http::error::ApiError;
pub use crate::http::response::{Body, full, no_content};

/// Largest request body accepted; a booking is a few hundred bytes, a new concert a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON answer with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    let bytes = simd_json::to_vec(value).map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a JSON request body of at most [`MAX_BODY_BYTES`] within `timeout`, refusing other
/// media types first.
pub async fn read_json<B>(
    headers: &HeaderMap,
    body: B,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect())
        .await
        .map_err(|_| ApiError::BodyTimeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
