//! The header names the API reads and writes beyond HTTP's own, each written once: the gateway,
//! its clients and the tests all take them from here.

use http::HeaderName;

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
