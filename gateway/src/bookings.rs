//! `POST /api/bookings` and `GET /api/bookings/{id}`.
//!
//! Booking is one Redis round trip: the request is validated and priced against the in-memory
//! catalog, then the reservation script decides everything else atomically. Postgres is never on
//! this path; it only answers for bookings Redis no longer holds.

use std::collections::HashMap;

use std::time::Instant;

use chrono::{DateTime, Utc};
use email_address::EmailAddress;
use fred::prelude::HashesInterface;
use http::header::LOCATION;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use booking::ids::{new_booking_id, shard_of_booking};
use booking::money::{Currency, Money};
use booking::record::{BookingRecord, BookingStatus};

use crate::body::{Body, json};
use crate::error::ApiError;
use crate::metrics;
use crate::reserve::{Outcome, Reservation, ReserveError};
use crate::state::AppState;
use crate::validate::{Checker, parse_json};

/// Header that carries the idempotency key, as an alternative to the body field.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer that repeats an earlier booking instead of making one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

const MAX_QUANTITY: i64 = 10;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// A customer's held count outlives the concert by this long.
const HELD_GRACE_SECONDS: i64 = 24 * 60 * 60;

/// A booking request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRequest {
    pub ticket_tier_id: Uuid,
    /// Trimmed and lower-cased, so one customer is one email however it is typed.
    pub user_email: String,
    pub quantity: u8,
    pub total_price: Money,
    pub currency: Currency,
    pub idempotency_key: String,
}

impl BookingRequest {
    /// Parses a body and the `Idempotency-Key` header, listing every problem at once.
    pub fn parse(body: &mut [u8], headers: &HeaderMap) -> Result<Self, ApiError> {
        let value = parse_json(body)?;
        let mut check = Checker::default();
        let header_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
            None => None,
            Some(raw) => idempotency_key(&mut check, raw.to_str().ok(), "Idempotency-Key"),
        };
        let Some(object) = check.object(&value, "") else {
            return check.finish(None);
        };

        let ticket_tier_id = check
            .required(object, "", "ticketTierId")
            .and_then(|v| check.uuid(v, "ticketTierId"));
        let user_email = check
            .required(object, "", "userEmail")
            .and_then(|v| check.text(v, "userEmail", 3, MAX_EMAIL_CHARS))
            .and_then(|email| match EmailAddress::is_valid(email) {
                true => Some(email.to_lowercase()),
                false => {
                    check.error("userEmail", "format", "must be an email address");
                    None
                }
            });
        let quantity = check
            .required(object, "", "quantity")
            .and_then(|v| check.integer(v, "quantity", 1, MAX_QUANTITY))
            .and_then(|n| u8::try_from(n).ok());
        let total_price = check
            .required(object, "", "totalPrice")
            .and_then(|v| check.money(v, "totalPrice"));
        let currency = match object.get("currency") {
            None => Some(Currency::Usd),
            Some(v) => check
                .text(v, "currency", 1, 8)
                .and_then(|code| match code.parse() {
                    Ok(currency) => Some(currency),
                    Err(reason) => {
                        check.error("currency", "range", reason);
                        None
                    }
                }),
        };
        let body_key = object
            .get("idempotencyKey")
            .and_then(|v| check.text(v, "idempotencyKey", 1, MAX_IDEMPOTENCY_KEY_CHARS))
            .and_then(|key| idempotency_key(&mut check, Some(key), "idempotencyKey"));
        let idempotency_key = match (body_key, header_key) {
            (Some(body), Some(header)) if body != header => {
                check.error(
                    "idempotencyKey",
                    "conflict",
                    "differs from the Idempotency-Key header; send one or make them equal",
                );
                None
            }
            (Some(key), _) | (None, Some(key)) => Some(key),
            (None, None) => {
                if object.get("idempotencyKey").is_none()
                    && headers.get(IDEMPOTENCY_KEY_HEADER).is_none()
                {
                    check.error(
                        "idempotencyKey",
                        "required",
                        "is required, in the body or the Idempotency-Key header",
                    );
                }
                None
            }
        };

        let request = (|| {
            Some(BookingRequest {
                ticket_tier_id: ticket_tier_id?,
                user_email: user_email?,
                quantity: quantity?,
                total_price: total_price?,
                currency: currency?,
                idempotency_key: idempotency_key?,
            })
        })();
        check.finish(request)
    }

    /// What makes two requests under one idempotency key "the same request".
    fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.ticket_tier_id, self.user_email, self.quantity, self.total_price, self.currency
        )
    }
}

/// Visible ASCII only: the key becomes part of a Redis key name and a header value.
fn idempotency_key(check: &mut Checker, key: Option<&str>, field: &str) -> Option<String> {
    let valid = key.filter(|key| {
        (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_graphic())
    });
    if valid.is_none() {
        check.error(
            field,
            "format",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"),
        );
    }
    valid.map(str::to_owned)
}

/// A booking as the API answers it.
#[derive(Serialize)]
struct BookingBody<'a> {
    booking: &'a BookingRecord,
}

/// What booking did: made a booking, or found the one made earlier under the same key.
#[derive(Debug)]
pub enum Booked {
    Created(BookingRecord),
    Replayed(BookingRecord),
}

/// Books `request`: prices it against the catalog, then runs the reservation script once.
pub async fn book(state: &AppState, request: BookingRequest) -> Result<Booked, ApiError> {
    let catalog = state.catalog.current();
    let entry = catalog
        .tier(request.ticket_tier_id)
        .ok_or(ApiError::TicketTierNotFound(request.ticket_tier_id))?;
    let expected = entry
        .tier
        .price
        .times(u32::from(request.quantity))
        .ok_or_else(|| ApiError::Internal("tier price out of range".to_owned()))?;
    if expected != request.total_price {
        return Err(ApiError::PriceMismatch {
            expected,
            given: request.total_price,
        });
    }
    let concert = &entry.concert;
    let now = Utc::now();
    let record = BookingRecord {
        id: new_booking_id(concert.shard),
        ticket_tier_id: request.ticket_tier_id,
        concert_id: concert.id,
        user_email: request.user_email.clone(),
        quantity: request.quantity,
        total_price: request.total_price,
        currency: request.currency,
        status: BookingStatus::Pending,
        failure_reason: None,
        created_at: now,
        idempotency_key: request.idempotency_key.clone(),
    };
    let reservation = Reservation {
        record: &record,
        shard: concert.shard,
        fingerprint: request.fingerprint(),
        max_per_customer: state.max_tickets_per_customer,
        held_expires_at: concert.date.max(now).timestamp() + HELD_GRACE_SECONDS,
    };
    let started = Instant::now();
    let outcome = state
        .reserve
        .run(state.redis.next(), &state.keys, &reservation)
        .await
        .map_err(|error| match error {
            ReserveError::Redis(error) => ApiError::Redis(error),
            other => ApiError::Internal(other.to_string()),
        })?;
    metrics::script(started.elapsed());
    match outcome {
        Outcome::Accepted { .. } => Ok(Booked::Created(record)),
        // The client resent our own script after a reconnect: this request made that booking.
        Outcome::Replayed(stored) if stored.id == record.id => Ok(Booked::Created(*stored)),
        Outcome::Replayed(stored) => Ok(Booked::Replayed(*stored)),
        Outcome::KeyReused => Err(ApiError::IdempotencyKeyReused),
        Outcome::OutOfStock { available } => Err(ApiError::OutOfStock {
            requested: request.quantity,
            available,
        }),
        Outcome::CustomerLimit { held } => Err(ApiError::CustomerLimitExceeded {
            limit: state.max_tickets_per_customer,
            held,
        }),
        Outcome::StockMissing => {
            state.stock_missing.notify_one();
            Err(ApiError::StockNotLoaded(request.ticket_tier_id))
        }
    }
}

/// The `outcome` label of a booking attempt.
fn outcome(booked: &Result<Booked, ApiError>) -> &'static str {
    match booked {
        Ok(Booked::Created(_)) => "accepted",
        Ok(Booked::Replayed(_)) => "replayed",
        Err(ApiError::Validation(_) | ApiError::MalformedJson(_)) => "invalid",
        Err(ApiError::TicketTierNotFound(_)) => "tier_not_found",
        Err(ApiError::OutOfStock { .. }) => "out_of_stock",
        Err(ApiError::PriceMismatch { .. }) => "price_mismatch",
        Err(ApiError::IdempotencyKeyReused) => "key_reused",
        Err(ApiError::CustomerLimitExceeded { .. }) => "customer_limit",
        Err(_) => "unavailable",
    }
}

/// `POST /api/bookings`: the one await is the Redis call inside [`book`].
pub async fn create(
    state: &AppState,
    headers: &HeaderMap,
    mut body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    let booked = match BookingRequest::parse(&mut body, headers) {
        Ok(request) => book(state, request).await,
        Err(error) => Err(error),
    };
    metrics::booking(outcome(&booked));
    let (record, replayed) = match booked? {
        Booked::Created(record) => (record, false),
        Booked::Replayed(record) => (record, true),
    };
    tracing::Span::current().record("booking_id", tracing::field::display(record.id));
    tracing::debug!(replayed, "booking accepted");
    let mut response = json(StatusCode::ACCEPTED, &BookingBody { booking: &record })?;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/bookings/{}", record.id)) {
        headers.insert(LOCATION, location);
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /api/bookings/{id}`.
pub async fn get(state: &AppState, id: &str) -> Result<Response<Body>, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| {
        ApiError::Validation(vec![crate::error::FieldError::new(
            "id",
            "format",
            "must be a UUID",
        )])
    })?;
    let record = find(state, id)
        .await?
        .ok_or(ApiError::BookingNotFound(id))?;
    json(StatusCode::OK, &BookingBody { booking: &record })
}

/// Redis first (it holds every booking for a day, with its live status), then Postgres. A Redis
/// failure only matters if Postgres does not have the booking either.
pub async fn find(state: &AppState, id: Uuid) -> Result<Option<BookingRecord>, ApiError> {
    let from_redis = match shard_of_booking(id, state.keys.shard_count()) {
        None => Ok(None),
        Some(shard) => {
            let fields: Result<HashMap<String, String>, _> =
                state.redis.hgetall(state.keys.booking(shard, id)).await;
            match fields {
                Ok(fields) if fields.is_empty() => Ok(None),
                Ok(fields) => BookingRecord::from_fields(&fields)
                    .map(Some)
                    .map_err(|error| ApiError::Internal(error.to_string())),
                Err(error) => Err(ApiError::Redis(error)),
            }
        }
    };
    match from_redis {
        Ok(Some(record)) => Ok(Some(record)),
        Ok(None) => settled(&state.db, id).await,
        Err(redis_error) => match settled(&state.db, id).await? {
            Some(record) => Ok(Some(record)),
            None => Err(redis_error),
        },
    }
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    id: Uuid,
    ticket_tier_id: Uuid,
    concert_id: Uuid,
    user_email: String,
    quantity: i16,
    total_price: rust_decimal::Decimal,
    currency: String,
    status: BookingStatus,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    idempotency_key: String,
}

/// A booking the settler has written to Postgres.
async fn settled(db: &PgPool, id: Uuid) -> Result<Option<BookingRecord>, ApiError> {
    let row: Option<BookingRow> = sqlx::query_as(
        "SELECT id, ticket_tier_id, concert_id, user_email, quantity, total_price, currency, \
                status, failure_reason, created_at, idempotency_key \
         FROM bookings WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let corrupt =
        |column: &str| ApiError::Internal(format!("booking {id} has an invalid {column}"));
    Ok(Some(BookingRecord {
        id: row.id,
        ticket_tier_id: row.ticket_tier_id,
        concert_id: row.concert_id,
        user_email: row.user_email,
        quantity: u8::try_from(row.quantity).map_err(|_| corrupt("quantity"))?,
        total_price: Money::new(row.total_price).map_err(|_| corrupt("total_price"))?,
        currency: row.currency.parse().map_err(|_| corrupt("currency"))?,
        status: row.status,
        failure_reason: row.failure_reason,
        created_at: row.created_at,
        idempotency_key: row.idempotency_key,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, header: Option<&'static str>) -> Result<BookingRequest, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = header {
            headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static(key));
        }
        BookingRequest::parse(&mut body.as_bytes().to_vec(), &headers)
    }

    fn fields(result: Result<BookingRequest, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    const TIER: &str = "0193a1c2-0000-7000-8000-000000000001";

    #[test]
    fn a_valid_request_is_normalised() {
        let body = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":" Fan@Example.COM ","quantity":2,"totalPrice":"20.0","currency":"USD","idempotencyKey":"k-1"}}"#
        );
        let request = parse(&body, None).expect("valid request");
        assert_eq!(request.user_email, "fan@example.com");
        assert_eq!(request.quantity, 2);
        assert_eq!(request.total_price.to_string(), "20.00");
        assert_eq!(request.idempotency_key, "k-1");
    }

    #[test]
    fn every_bad_field_is_listed() {
        let body = r#"{"ticketTierId":"nope","userEmail":"no-at-sign","quantity":11,"totalPrice":"1.001","currency":"EUR","idempotencyKey":"has space"}"#;
        assert_eq!(
            fields(parse(body, None)),
            [
                "ticketTierId",
                "userEmail",
                "quantity",
                "totalPrice",
                "currency",
                "idempotencyKey"
            ]
        );
    }

    #[test]
    fn the_key_may_come_in_the_header_but_not_twice_differently() {
        let body = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1,"totalPrice":10}}"#
        );
        assert_eq!(
            parse(&body, Some("from-header"))
                .map(|r| r.idempotency_key)
                .ok(),
            Some("from-header".to_owned())
        );
        let both = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1,"totalPrice":10,"idempotencyKey":"a"}}"#
        );
        assert_eq!(fields(parse(&both, Some("b"))), ["idempotencyKey"]);
        assert_eq!(fields(parse(&body, None)), ["idempotencyKey"]);
    }

    #[test]
    fn fractional_quantities_are_refused() {
        let body = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1.5,"totalPrice":10,"idempotencyKey":"a"}}"#
        );
        assert_eq!(fields(parse(&body, None)), ["quantity"]);
    }
}
