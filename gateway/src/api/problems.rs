//! The problem answers many operations share, each described once here and referred to by name
//! (`#/components/responses/...`) from the operations that give it; each holds the body it
//! describes.

use utoipa::{IntoResponses, ToResponse};

use crate::http::error::Problem;

/// Every bad field is listed in `errors`.
#[derive(Debug, ToResponse)]
#[response(
    description = "Invalid: every bad field is listed in `errors`",
    content_type = "application/problem+json"
)]
pub struct Invalid(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(description = "No valid bearer token", content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`")))]
pub struct Unauthorized(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(
    description = "The admin API is off (no `ADMIN_TOKEN`)",
    content_type = "application/problem+json"
)]
pub struct AdminOff(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(
    description = "The body did not arrive in time",
    content_type = "application/problem+json"
)]
pub struct BodyLate(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(
    description = "The body is too large",
    content_type = "application/problem+json"
)]
pub struct BodyTooLarge(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(
    description = "The body is not JSON",
    content_type = "application/problem+json"
)]
pub struct NotJson(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(description = "Rate limited", content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait")))]
pub struct RateLimited(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(description = "A dependency is down or the gateway is at capacity",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait")))]
pub struct Unavailable(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(description = "Redis is down, or too many streams are open",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait")))]
pub struct StreamUnavailable(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(
    description = "Nothing has that id: the problem's `code` names what was looked for",
    content_type = "application/problem+json"
)]
pub struct NotFound(pub Problem<'static>);

#[derive(Debug, ToResponse)]
#[response(description = "A dependency is down, a shard is recovering or the gateway is at \
    capacity; `OutcomeUnknown` when a booking's outcome is not known yet (retrying with the same \
    idempotency key is safe)",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait")))]
pub struct Recovering(pub Problem<'static>);

/// What an admin write may be refused with, whatever it writes.
#[derive(Debug, IntoResponses)]
pub enum AdminWriteProblems {
    #[response(status = 400)]
    Invalid(#[ref_response] Invalid),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    AdminOff(#[ref_response] AdminOff),
    #[response(status = 408)]
    BodyLate(#[ref_response] BodyLate),
    #[response(status = 413)]
    BodyTooLarge(#[ref_response] BodyTooLarge),
    #[response(status = 415)]
    NotJson(#[ref_response] NotJson),
    #[response(status = 429)]
    RateLimited(#[ref_response] RateLimited),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// What reading one booking or concert by its id may be refused with.
#[derive(Debug, IntoResponses)]
pub enum ReadProblems {
    #[response(status = 400)]
    Invalid(#[ref_response] Invalid),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 429)]
    RateLimited(#[ref_response] RateLimited),
    #[response(status = 503)]
    Recovering(#[ref_response] Recovering),
}

/// What opening one booking's or ticket's event stream may be refused with.
#[derive(Debug, IntoResponses)]
pub enum StreamProblems {
    #[response(status = 400)]
    Invalid(#[ref_response] Invalid),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 429)]
    RateLimited(#[ref_response] RateLimited),
    #[response(status = 503)]
    StreamUnavailable(#[ref_response] StreamUnavailable),
}
