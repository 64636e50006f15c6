//! `ApiError`: every way a request can fail, mapped in one place to a status and an RFC 9457
//! problem body.
//!
//! Policy: 4xx bodies say exactly what was wrong with the request, so a client can fix it; 5xx
//! bodies say nothing about the cause (it goes to the log, with the request's path); a dependency
//! that is down is a 503 with `Retry-After`, never a 500.

use std::time::Duration;

use domain::ids::{BookingId, ConcertId, QueueTicketId, TierId};
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use domain::ids::Shard;
use domain::money::Money;
use domain::record::BookingRecord;
use domain::roles::Role;
use uuid::Uuid;

use crate::http::response::{Body, full};

/// Which per-address limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Bookings,
    /// Wrong credentials.
    Authentication,
    /// Sign-in links asked for one email or by one address.
    SignInLinks,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Bookings => "bookings",
            Limit::Authentication => "authentication",
            Limit::SignInLinks => "sign-in links",
        }
    }
}

/// One problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the body, e.g. `quantity` or `ticketTiers[1].price`.
    pub field: String,
    /// Stable machine-readable reason: `required`, `type`, `range`, `format`, `conflict`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("the body must be JSON")]
    UnsupportedMediaType,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read: {0}")]
    UnreadableBody(String),
    #[error("the body did not arrive in time")]
    BodyTimeout,
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the token is unknown, spent or expired")]
    TokenRefused,
    #[error("this needs a credential of the {needed} role (or admin)")]
    Forbidden { needed: Role },
    #[error("the API keys could not be read lately; they are not trusted until they are")]
    KeysUnknown,
    #[error("API key {0} does not exist")]
    ApiKeyNotFound(Uuid),
    #[error("concert {0} does not exist")]
    ConcertNotFound(ConcertId),
    #[error("ticket tier {0} does not exist")]
    TicketTierNotFound(TierId),
    #[error("booking {0} does not exist")]
    BookingNotFound(BookingId),
    #[error("queue ticket {0} does not exist")]
    QueueTicketNotFound(QueueTicketId),
    #[error("concert {0} sells without a waiting room: book directly")]
    NoWaitingRoom(ConcertId),
    #[error("{0}")]
    AdmissionRequired(&'static str),
    #[error("{requested} tickets requested, {available} left")]
    OutOfStock { requested: u8, available: i64 },
    #[error("sales open at {}", domain::record::format_timestamp(opens_at))]
    SalesNotOpen {
        opens_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("sales closed at {}", domain::record::format_timestamp(closed_at))]
    SalesClosed {
        closed_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("totalPrice {given} does not match {expected} (price x quantity)")]
    PriceMismatch { expected: Money, given: Money },
    #[error(
        "signed in as {signed_in}: a booking takes that email (leave userEmail out, or send it)"
    )]
    EmailMismatch { signed_in: String },
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a customer may hold at most {limit} tickets per concert; {held} already held")]
    CustomerLimitExceeded { limit: u32, held: i64 },
    #[error("over the {} limit; retry in {retry_after:?}", limit.name())]
    RateLimited { limit: Limit, retry_after: Duration },
    #[error("at the limit of requests in flight")]
    Overloaded,
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[source] sqlx::Error),
    #[error("analytics: {0}")]
    Analytics(String),
    #[error("stock of tier {0} is not loaded in Redis yet")]
    StockNotLoaded(TierId),
    #[error("shard {0} is recovering from a loss of Redis data")]
    ShardRecovering(Shard),
    #[error("the reservation's outcome is unknown: Redis did not answer in time")]
    OutcomeUnknown,
    #[error("{}", .0.failure_reason.as_deref().unwrap_or("payment declined"))]
    PaymentDeclined(Box<BookingRecord>),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Postgres(error)
    }
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// What a problem says, for clients that show one field: the `detail`, or for a validation
/// failure each bad field's message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Message {
    One(String),
    Each(Vec<String>),
}

/// An RFC 9457 problem: what went wrong with a request, with a stable `code`. `message`,
/// `statusCode` and `error` repeat `detail`, `status` and `title` for clients that read those.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem<'a> {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    /// What was wrong; a 5xx says nothing of the cause.
    detail: String,
    /// The path of the request.
    instance: &'a str,
    /// Stable and machine-readable: `ValidationFailed`, `TicketTierOutOfStock`, ...
    code: &'static str,
    /// Every bad field (`ValidationFailed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// Tickets left (`TicketTierOutOfStock`).
    #[serde(skip_serializing_if = "Option::is_none")]
    available_quantity: Option<i64>,
    /// The booking whose payment was declined (`PaymentDeclined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    booking: Option<&'a BookingRecord>,
    /// `detail`, or for `ValidationFailed` each field's `field message`.
    message: Message,
    /// `status` again.
    status_code: u16,
    /// `title` again.
    error: &'static str,
}

impl ApiError {
    /// Status, stable code and title of each error.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            RouteNotFound => (StatusCode::NOT_FOUND, "NotFound", "Not found"),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "Method not allowed",
            ),
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "MalformedJson", "Malformed JSON"),
            Validation(_) => (
                StatusCode::BAD_REQUEST,
                "ValidationFailed",
                "Validation failed",
            ),
            UnreadableBody(_) => (StatusCode::BAD_REQUEST, "UnreadableBody", "Unreadable body"),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "Request body too slow",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "Unsupported media type",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "Payload too large",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
            TokenRefused => (StatusCode::UNAUTHORIZED, "TokenRefused", "Token refused"),
            Forbidden { .. } => (StatusCode::FORBIDDEN, "Forbidden", "Forbidden"),
            ApiKeyNotFound(_) => (StatusCode::NOT_FOUND, "ApiKeyNotFound", "API key not found"),
            ConcertNotFound(_) => (
                StatusCode::NOT_FOUND,
                "ConcertNotFound",
                "Concert not found",
            ),
            TicketTierNotFound(_) => (
                StatusCode::NOT_FOUND,
                "TicketTierNotFound",
                "Ticket tier not found",
            ),
            BookingNotFound(_) => (
                StatusCode::NOT_FOUND,
                "BookingNotFound",
                "Booking not found",
            ),
            OutOfStock { .. } => (
                StatusCode::CONFLICT,
                "TicketTierOutOfStock",
                "Not enough tickets left",
            ),
            QueueTicketNotFound(_) => (
                StatusCode::NOT_FOUND,
                "QueueTicketNotFound",
                "Queue ticket not found",
            ),
            NoWaitingRoom(_) => (StatusCode::CONFLICT, "NoWaitingRoom", "No waiting room"),
            AdmissionRequired(_) => (
                StatusCode::FORBIDDEN,
                "AdmissionRequired",
                "Admission required",
            ),
            SalesNotOpen { .. } => (StatusCode::CONFLICT, "SalesNotOpen", "Sales not open yet"),
            SalesClosed { .. } => (StatusCode::CONFLICT, "SalesClosed", "Sales closed"),
            PriceMismatch { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "PriceMismatch",
                "Total price does not match",
            ),
            EmailMismatch { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "EmailMismatch",
                "Not the signed-in customer's email",
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "IdempotencyKeyReused",
                "Idempotency key reused",
            ),
            CustomerLimitExceeded { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "CustomerLimitExceeded",
                "Ticket limit per customer exceeded",
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimited",
                "Too many requests",
            ),
            OutcomeUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "OutcomeUnknown",
                "Outcome unknown",
            ),
            PaymentDeclined(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "PaymentDeclined",
                "Payment declined",
            ),
            Redis(_) | Postgres(_) | Analytics(_) | StockNotLoaded(_) | ShardRecovering(_)
            | Overloaded | KeysUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error",
            ),
        }
    }

    /// The problem response for a request to `instance` (its path).
    pub fn into_response(self, instance: &str) -> Response<Body> {
        let (status, code, title) = self.classify();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, instance, code, "request failed");
            match (status, &self) {
                (_, ApiError::OutcomeUnknown) => "Whether this was done is not known yet. \
                    Retrying with the same idempotency key is safe: it answers with what was made \
                    (the booking, the queue ticket) if it was, and makes it once if it was not."
                    .to_owned(),
                (StatusCode::SERVICE_UNAVAILABLE, _) => {
                    "A service this request needs is unavailable; retry shortly.".to_owned()
                }
                _ => "The server failed to answer this request.".to_owned(),
            }
        } else {
            tracing::debug!(error = %self, instance, code, "request refused");
            self.to_string()
        };
        let message = match &self {
            ApiError::Validation(errors) => Message::Each(
                errors
                    .iter()
                    .map(|error| format!("{} {}", error.field, error.message))
                    .collect(),
            ),
            _ => Message::One(detail.clone()),
        };
        let problem = Problem {
            kind: format!("/problems/{code}"),
            title,
            status: status.as_u16(),
            detail,
            instance,
            code,
            errors: match &self {
                ApiError::Validation(errors) => Some(errors),
                _ => None,
            },
            available_quantity: match &self {
                ApiError::OutOfStock { available, .. } => Some(*available),
                _ => None,
            },
            booking: match &self {
                ApiError::PaymentDeclined(record) => Some(record.as_ref()),
                _ => None,
            },
            message,
            status_code: status.as_u16(),
            error: title,
        };
        // A problem body is made of strings and numbers, so it always serializes.
        let body = simd_json::to_vec(&problem).unwrap_or_default();
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(allow) = HeaderValue::from_str(&allow) {
                    headers.insert(ALLOW, allow);
                }
            }
            ApiError::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::SalesNotOpen { opens_at } => {
                let seconds = (opens_at - chrono::Utc::now()).num_seconds().max(0) + 1;
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up: a client retrying at once would be refused again.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        response
    }
}
