//! The one response body type, shared by fixed answers, problems and event streams.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Every response body: boxed so fixed answers and event streams share one type.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// `204 No Content`.
pub fn no_content() -> http::Response<Body> {
    let mut response = http::Response::new(full(Bytes::new()));
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    response
}
