//! The problem answers many operations share, each described once here and referred to by name
//! (`#/components/responses/...`) from the operations that give it; each holds the body it
//! describes.

use utoipa::ToResponse;

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
