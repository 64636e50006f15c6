//! The problem answers many operations share, each described once here and referred to by name
//! (`#/components/responses/...`) from the operations that give it; each holds the body it
//! describes.

use utoipa::{IntoResponses, ToResponse};

use crate::http::error::Problem;

/// Declares each shared answer: a unit holding the problem body, described once as a
/// `#/components/responses/...` entry (with the headers it carries).
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident: $description:literal $(, headers $headers:tt)?;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, ToResponse)]
        #[response(description = $description, content_type = "application/problem+json"
            $(, headers $headers)?)]
        pub struct $name(pub Problem<'static>);
    )*};
}

problem_responses! {
    /// Every bad field is listed in `errors`.
    Invalid: "Invalid: every bad field is listed in `errors`";
    Unauthorized: "No valid bearer token",
        headers(("WWW-Authenticate" = String, description = "`Bearer`"));
    Forbidden: "The credential's role may not do this: `detail` names the role it needs";
    BodyLate: "The body did not arrive in time";
    BodyTooLarge: "The body is too large";
    NotJson: "The body is not JSON";
    RateLimited: "Rate limited", headers(("Retry-After" = u32, description = "Seconds to wait"));
    Unavailable: "A dependency is down or the gateway is at capacity",
        headers(("Retry-After" = u32, description = "Seconds to wait"));
    StreamUnavailable: "Redis is down, or too many streams are open",
        headers(("Retry-After" = u32, description = "Seconds to wait"));
    NotFound: "Nothing has that id: the problem's `code` names what was looked for";
    Recovering: "A dependency is down, a shard is recovering or the gateway is at capacity; \
        `OutcomeUnknown` when a booking or queue ticket is not known to be made yet (retrying \
        with the same idempotency key is safe)",
        headers(("Retry-After" = u32, description = "Seconds to wait"));
}

/// Declares each set of answers operations refer to as one: an enum of the shared answers with
/// the status each is given.
macro_rules! problem_sets {
    ($($(#[$doc:meta])* $set:ident { $($status:literal => $answer:ident),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, IntoResponses)]
        pub enum $set {$(
            #[response(status = $status)]
            $answer(#[ref_response] $answer),
        )*}
    )*};
}

problem_sets! {
    /// What an admin write may be refused with, whatever it writes.
    AdminWriteProblems {
        400 => Invalid, 401 => Unauthorized, 403 => Forbidden, 408 => BodyLate,
        413 => BodyTooLarge, 415 => NotJson, 429 => RateLimited, 503 => Unavailable,
    }
    /// What an operator's read may be refused with.
    OperatorReadProblems {
        401 => Unauthorized, 403 => Forbidden, 429 => RateLimited, 503 => Unavailable,
    }
    /// What a write anyone may make with a JSON body may be refused with.
    WriteProblems {
        400 => Invalid, 408 => BodyLate, 413 => BodyTooLarge, 415 => NotJson,
        429 => RateLimited, 503 => Unavailable,
    }
    /// What reading one booking or concert by its id may be refused with.
    ReadProblems { 400 => Invalid, 404 => NotFound, 429 => RateLimited, 503 => Recovering }
    /// What opening one booking's or ticket's event stream may be refused with.
    StreamProblems { 400 => Invalid, 404 => NotFound, 429 => RateLimited, 503 => StreamUnavailable }
}
