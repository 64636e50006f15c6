//! `POST /api/bookings` and `GET /api/bookings/{id}`.
//!
//! Booking is one Redis round trip: the request is validated and priced against the in-memory
//! catalog, then the reservation script decides everything else atomically. Postgres is never on
//! this path; it only answers for bookings Redis no longer holds.

use std::time::{Duration, Instant};

use chrono::Utc;
use fred::error::ErrorKind;
use fred::prelude::{ClientLike, HashesInterface};
use http::header::LOCATION;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use api_types::BookingBody;
use api_types::headers::{
    ADMISSION_TOKEN, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, PREFER, PREFERENCE_APPLIED,
};
use domain::ids::{BookingId, QueueTicketId, Shard, TierId};
use domain::money::{Currency, Money};
use domain::record::{Booking, BookingRecord, BookingStatus, Packed, field};
use domain::values::{Email, IdempotencyKey, MAX_QUANTITY, Quantity};
use redis_store::keys::held_until;
use redis_store::scripts::ScriptError;
use redis_store::scripts::reserve::{Earlier, Outcome, Reservation};

use crate::api::problems::{
    BodyLate, BodyTooLarge, Invalid, NotJson, RateLimited, ReadProblems, Recovering,
};
use crate::catalog::TierEntry;
use crate::http::body::{Body, json};
use crate::http::error::{ApiError, Problem};
use crate::http::limits::Slot;
use crate::http::validate::{Checker, parse_form, path_id};
use crate::metrics;
use crate::state::BookingDesk;

/// How long a booking whose reservation timed out waits to learn what the script did.
const UNKNOWN_OUTCOME_WAIT: Duration = Duration::from_secs(2);
/// The longest wait a client may ask for; a longer one is cut to this.
const MAX_PREFERRED_WAIT: Duration = Duration::from_secs(10);

/// The wait a request's `Prefer` header asks for, capped at `MAX_PREFERRED_WAIT`; `None` when
/// it asks for none (a preference that cannot be read is ignored, as RFC 7240 says).
pub fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|preference| {
            let (name, value) = preference.split(';').next()?.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            let seconds: u64 = value.trim().trim_matches('"').parse().ok()?;
            (seconds > 0).then(|| Duration::from_secs(seconds).min(MAX_PREFERRED_WAIT))
        })
}

/// The booking once it is final, or as it stands when `wait` has passed (or the gateway is
/// stopping). Woken by the booking's status message, not by polling; the booking is read once
/// after subscribing, so a settlement before the subscription is not missed.
async fn outcome_within(
    desk: &BookingDesk,
    record: BookingRecord,
    wait: Duration,
) -> BookingRecord {
    let deadline = tokio::time::Instant::now() + wait;
    let id = record.booking.id;
    let mut changes = desk.hub.status();
    let mut current = record;
    loop {
        match find(desk, id).await {
            Ok(Some(found)) => current = found,
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "re-reading a booking awaited failed"),
        }
        if current.status.is_final() {
            return current;
        }
        loop {
            let change = tokio::select! {
                () = desk.shutdown.cancelled() => return current,
                change = tokio::time::timeout_at(deadline, changes.recv()) => change,
            };
            match change {
                Err(_) | Ok(Err(RecvError::Closed)) => return current,
                Ok(Ok(change)) if change.booking_id != id => {}
                Ok(Ok(_) | Err(RecvError::Lagged(_))) => break,
            }
        }
    }
}

/// A booking request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRequest {
    pub ticket_tier_id: TierId,
    pub user_email: Email,
    pub quantity: Quantity,
    pub total_price: Money,
    pub currency: Currency,
    pub idempotency_key: IdempotencyKey,
    /// The `Admission-Token` header as sent, for a concert with a waiting room.
    pub admission_token: Option<String>,
}

/// A booking body as sent, each field any JSON value, so every bad one is reported at once.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingForm {
    ticket_tier_id: Option<Value>,
    user_email: Option<Value>,
    quantity: Option<Value>,
    total_price: Option<Value>,
    currency: Option<Value>,
    idempotency_key: Option<Value>,
}

impl BookingRequest {
    /// Parses a body and the `Idempotency-Key` header, listing every problem at once. A
    /// signed-in customer's booking takes their email: `userEmail` may be left out, and any
    /// other is refused.
    pub fn parse(
        body: &[u8],
        headers: &HeaderMap,
        signed_in: Option<&Email>,
    ) -> Result<Self, ApiError> {
        let form: BookingForm = parse_form(body)?;
        let mut check = Checker::default();
        let header_key = match headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(raw) => check.parsed(
                "Idempotency-Key",
                "format",
                IdempotencyKey::parse(raw.to_str().unwrap_or_default()),
            ),
        };
        let ticket_tier_id = check
            .required(&form.ticket_tier_id, "ticketTierId")
            .and_then(|v| check.id(v, "ticketTierId"));
        let user_email = match (signed_in, &form.user_email) {
            (Some(email), None | Some(Value::Null)) => Some(email.clone()),
            _ => check.email(&form.user_email, "userEmail"),
        };
        let quantity = check
            .required(&form.quantity, "quantity")
            .and_then(|v| check.integer(v, "quantity", 1, i64::from(MAX_QUANTITY)))
            .and_then(|n| check.parsed("quantity", "range", Quantity::new(n)));
        let total_price = check
            .required(&form.total_price, "totalPrice")
            .and_then(|v| check.money(v, "totalPrice"));
        let currency = match &form.currency {
            None | Some(Value::Null) => Some(Currency::Usd),
            Some(v) => check
                .text(v, "currency", 1, 8)
                .and_then(|code| check.parsed("currency", "range", code.parse())),
        };
        let body_key = match &form.idempotency_key {
            None | Some(Value::Null) => None,
            Some(v) => check.string(v, "idempotencyKey").and_then(|text| {
                check.parsed("idempotencyKey", "format", IdempotencyKey::parse(text))
            }),
        };
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
                if form.idempotency_key.is_none() && headers.get(IDEMPOTENCY_KEY).is_none() {
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
                admission_token: headers
                    .get(ADMISSION_TOKEN)
                    .and_then(|token| token.to_str().ok())
                    .map(str::to_owned),
            })
        })();
        let request = check.finish(request)?;
        match signed_in {
            Some(email) if *email != request.user_email => Err(ApiError::EmailMismatch {
                signed_in: email.as_str().to_owned(),
            }),
            _ => Ok(request),
        }
    }
}

/// A booking as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingEnvelope<'a> {
    booking: &'a BookingRecord,
}

/// What booking did: made a booking, or found the one made earlier under the same key.
#[derive(Debug)]
pub enum Booked {
    Created(BookingRecord),
    Replayed(BookingRecord),
}

/// Books `request`: prices it against the catalog, then runs the reservation script once. A
/// request the catalog refuses (price, sales window, admission) is first looked up by its key:
/// one that booked before answers what it made.
pub async fn book(desk: &BookingDesk, request: BookingRequest) -> Result<Booked, ApiError> {
    let catalog = desk.catalog.current();
    let entry = catalog
        .tier(request.ticket_tier_id)
        .ok_or(ApiError::TicketTierNotFound(request.ticket_tier_id))?;
    let concert = &entry.concert;
    let now = Utc::now();
    let mut packed = Packed {
        booking: Booking {
            id: BookingId::new(concert.shard),
            ticket_tier_id: request.ticket_tier_id,
            concert_id: concert.id,
            user_email: request.user_email,
            quantity: request.quantity,
            total_price: request.total_price,
            currency: request.currency,
            created_at: now,
            idempotency_key: request.idempotency_key,
        },
        held_until: held_until(concert.date, now),
        customer_limit: desk.max_tickets_per_customer,
        admission: None,
    };
    let token = request.admission_token.as_deref();
    let admission = match admissible(desk, entry, &packed.booking, token) {
        Ok(admission) => admission,
        Err(refusal) => return booked_before(desk, concert.shard, &packed.booking, refusal).await,
    };
    packed.admission = admission;
    let reservation = Reservation {
        packed: &packed,
        admission,
    };
    let outcome = reserve(desk, concert.shard, reservation).await?;
    let booking = packed.booking;
    match outcome {
        Outcome::Accepted { .. } => {
            desk.accepted.record(concert.shard, booking.id);
            if admission.is_some() {
                metrics::admission_spent(concert.id);
            }
            Ok(Booked::Created(BookingRecord::pending(booking)))
        }
        // Our own reservation answered a second time (asked again after a timeout).
        Outcome::Replayed(id) if id == booking.id => {
            desk.accepted.record(concert.shard, booking.id);
            Ok(Booked::Created(BookingRecord::pending(booking)))
        }
        Outcome::Replayed(id) => replayed(desk, id).await,
        Outcome::KeyReused => Err(ApiError::IdempotencyKeyReused),
        Outcome::AdmissionSpent => Err(ApiError::AdmissionRequired(
            "this admission was already used for another booking",
        )),
        Outcome::OutOfStock { available } => Err(ApiError::OutOfStock {
            requested: booking.quantity.get(),
            available,
        }),
        Outcome::CustomerLimit { held } => Err(ApiError::CustomerLimitExceeded {
            limit: desk.max_tickets_per_customer,
            held,
        }),
        Outcome::StockMissing => {
            desk.stock.missing.notify_one();
            Err(ApiError::StockNotLoaded(booking.ticket_tier_id))
        }
        Outcome::Recovering => {
            desk.guard.wake();
            Err(ApiError::ShardRecovering(concert.shard))
        }
    }
}

/// The booking `id` that an idempotency record names, as a replay answers it.
async fn replayed(desk: &BookingDesk, id: BookingId) -> Result<Booked, ApiError> {
    match find(desk, id).await? {
        Some(record) => Ok(Booked::Replayed(record)),
        None => Err(ApiError::Internal(format!(
            "idempotency record names booking {id}, which is nowhere"
        ))),
    }
}

/// The checks against the catalog: the price, the sales window, and for a concert with a waiting
/// room the admission `token`, which names the queue ticket the booking spends.
fn admissible(
    desk: &BookingDesk,
    entry: &TierEntry,
    booking: &Booking,
    token: Option<&str>,
) -> Result<Option<QueueTicketId>, ApiError> {
    let expected = entry
        .tier
        .price
        .times(u32::from(booking.quantity.get()))
        .ok_or_else(|| ApiError::Internal("tier price out of range".to_owned()))?;
    if expected != booking.total_price {
        return Err(ApiError::PriceMismatch {
            expected,
            given: booking.total_price,
        });
    }
    let concert = &entry.concert;
    let now = booking.created_at;
    if now < concert.sales_open_at {
        return Err(ApiError::SalesNotOpen {
            opens_at: concert.sales_open_at,
        });
    }
    if now >= concert.sales_close_at {
        return Err(ApiError::SalesClosed {
            closed_at: concert.sales_close_at,
        });
    }
    match concert.admit_per_second {
        None => Ok(None),
        Some(_) => desk
            .waiting_rooms
            .secret()
            .verify(concert.id, token, booking.user_email.as_str(), now)
            .map(Some)
            .map_err(|refusal| ApiError::AdmissionRequired(refusal.reason())),
    }
}

/// What `booking`'s key made before, or `refusal` when it made nothing (DESIGN invariant 3: the
/// same key and request answer the same booking, whatever changed since).
async fn booked_before(
    desk: &BookingDesk,
    shard: Shard,
    booking: &Booking,
    refusal: ApiError,
) -> Result<Booked, ApiError> {
    let earlier = desk
        .reserve
        .earlier(desk.redis.next(), &desk.keys, shard, booking)
        .await
        .map_err(|error| match error {
            ScriptError::Redis(error) => ApiError::Redis(error),
            error @ ScriptError::NotReplicated { .. } => {
                tracing::warn!(%error, "replayed booking not replicated in time");
                ApiError::OutcomeUnknown
            }
            error => ApiError::Internal(error.to_string()),
        })?;
    match earlier {
        Earlier::Booked(id) => replayed(desk, id).await,
        Earlier::KeyReused => Err(ApiError::IdempotencyKeyReused),
        Earlier::Nothing => Err(refusal),
        Earlier::Recovering => {
            desk.guard.wake();
            Err(ApiError::ShardRecovering(shard))
        }
    }
}

/// Runs the reservation script. When it times out its outcome is unknown (it may have run): if the
/// connection is up (Redis is slow, not gone), it is asked again on that connection, which answers
/// after the first run and is safe to repeat (the same booking finds its own idempotency record).
/// Only if that too goes unanswered, or the connection is down, is the outcome reported unknown.
async fn reserve(
    desk: &BookingDesk,
    shard: domain::ids::Shard,
    reservation: Reservation<'_>,
) -> Result<Outcome, ApiError> {
    let client = desk.redis.next();
    let started = Instant::now();
    let first = desk
        .reserve
        .run(client, &desk.keys, shard, reservation, &*desk.guard)
        .await;
    metrics::script(started.elapsed());
    let timed_out = match first {
        Ok(outcome) => return Ok(outcome),
        // On the master, not yet on enough replicas: a failover now could lose it, so it is not
        // answered as booked; the same key asks again safely.
        Err(error @ ScriptError::NotReplicated { .. }) => {
            tracing::warn!(booking_id = %reservation.packed.booking.id, %error, "reservation not replicated in time");
            return Err(ApiError::OutcomeUnknown);
        }
        Err(ScriptError::Redis(error)) if *error.kind() == ErrorKind::Timeout => error,
        Err(ScriptError::Redis(error)) => return Err(ApiError::Redis(error)),
        Err(error) => return Err(ApiError::Internal(error.to_string())),
    };
    if !client.is_connected() {
        tracing::warn!(booking_id = %reservation.packed.booking.id, error = %timed_out, "reservation outcome unknown: redis is away");
        return Err(ApiError::OutcomeUnknown);
    }
    tracing::warn!(booking_id = %reservation.packed.booking.id, error = %timed_out, "reservation timed out; asking again");
    desk
        .reserve
        .run_within(
            client,
            &desk.keys,
            shard,
            reservation,
            UNKNOWN_OUTCOME_WAIT,
            &*desk.guard,
        )
        .await
        .map_err(|error| {
            tracing::warn!(booking_id = %reservation.packed.booking.id, %error, "reservation outcome unknown");
            ApiError::OutcomeUnknown
        })
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
        Err(ApiError::OutcomeUnknown) => "unknown",
        Err(ApiError::SalesNotOpen { .. } | ApiError::SalesClosed { .. }) => "not_on_sale",
        Err(ApiError::AdmissionRequired(_)) => "not_admitted",
        Err(ApiError::EmailMismatch { .. } | ApiError::Unauthorized) => "not_this_customer",
        Err(_) => "unavailable",
    }
}

/// Books tickets: one atomic reservation in Redis, answered at once with the booking `pending`;
/// payment follows, and the booking ends `confirmed` or `failed` (follow it at its `Location`,
/// or its events). The same idempotency key with the same body answers the same booking. With
/// `Prefer: wait=N` the answer waits up to N seconds (10 at most) for the outcome. A guest says
/// who books in `userEmail`; a signed-in customer's booking (their access token as a bearer)
/// takes their email, and `userEmail`, if sent, must be it.
#[utoipa::path(post, path = "/api/bookings", operation_id = "createBooking", tag = "bookings",
    params(
        ("Idempotency-Key" = Option<IdempotencyKey>, Header, nullable = false, description = "The purchase attempt's key, instead of `idempotencyKey` in the body"),
        ("Admission-Token" = Option<String>, Header, description = "For a concert with a waiting room: the `admissionToken` of an admitted queue ticket; it books once"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240, N seconds, at most 10): answer with the booking's outcome if it settles within N seconds, 201 confirmed or 422 `PaymentDeclined`; else the usual 202"),
    ),
    request_body = BookingBody,
    responses(
        (status = 201, description = "With `Prefer: wait`: the booking, confirmed", body = BookingEnvelope,
            headers(
                ("Location" = String, description = "The booking: `/api/bookings/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when this repeats an earlier booking"),
                ("Preference-Applied" = String, description = "`wait=N`"),
            )
        ),
        (status = 202, description = "Accepted: the booking, pending", body = BookingEnvelope,
            headers(
                ("Location" = String, description = "The booking: `/api/bookings/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when this repeats an earlier booking"),
            ),
            links(
                ("GetBooking" = (operation_id = "getBooking", parameters(("id" = "$response.body#/booking/id")))),
                ("BookingEvents" = (operation_id = "bookingEvents", parameters(("id" = "$response.body#/booking/id")))),
            )
        ),
        (status = 400, response = Invalid),
        (status = 401, description = "`Unauthorized`: a bearer credential that is no valid access token (a guest sends none)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`AdmissionRequired`: the concert has a waiting room and no valid, unspent admission token for it and this email was sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket tier", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = BodyLate),
        (status = 409, description = "Not enough tickets left (`TicketTierOutOfStock`), or outside the concert's sales window (`SalesNotOpen` with `Retry-After`, `SalesClosed`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds until sales open"))),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Wrong `totalPrice`, the key used with another request for this concert, over the customer's ticket limit, or (`EmailMismatch`) a signed-in customer's booking for another email; with `Prefer: wait`, `PaymentDeclined` with the failed booking in `booking`", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = RateLimited),
        (status = 503, response = Recovering),
    )
)]
pub async fn create(
    desk: &BookingDesk,
    headers: &HeaderMap,
    body: Vec<u8>,
    slot: Option<Slot>,
) -> Result<Response<Body>, ApiError> {
    let request = desk.tokens.from_headers(headers).and_then(|signed_in| {
        let email = signed_in.map(|customer| customer.email);
        BookingRequest::parse(&body, headers, email.as_ref())
    });
    let booked = match request {
        Ok(request) => book(desk, request).await,
        Err(error) => Err(error),
    };
    metrics::booking(outcome(&booked));
    let (mut record, replayed) = match booked? {
        Booked::Created(record) => (record, false),
        Booked::Replayed(record) => (record, true),
    };
    tracing::Span::current().record("booking_id", tracing::field::display(record.booking.id));
    tracing::debug!(replayed, "booking accepted");
    // Waiting for the settlement is no work for this gateway: it holds no slot of those in flight.
    drop(slot);
    let wait = preferred_wait(headers);
    if let Some(wait) = wait {
        record = outcome_within(desk, record, wait).await;
    }
    let applied = wait.filter(|_| record.status.is_final());
    let mut response = match (applied, record.status) {
        (Some(_), BookingStatus::Confirmed) => {
            json(StatusCode::CREATED, &BookingEnvelope { booking: &record })?
        }
        (Some(_), _) => {
            ApiError::PaymentDeclined(Box::new(record.clone())).into_response("/api/bookings")
        }
        (None, _) => json(StatusCode::ACCEPTED, &BookingEnvelope { booking: &record })?,
    };
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/bookings/{}", record.booking.id)) {
        headers.insert(LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    if let Some(Ok(applied)) =
        applied.map(|wait| HeaderValue::from_str(&format!("wait={}", wait.as_secs())))
    {
        headers.insert(PREFERENCE_APPLIED, applied);
    }
    Ok(response)
}

/// A booking and where it stands: `pending`, then `confirmed` or `failed`.
#[utoipa::path(get, path = "/api/bookings/{id}", operation_id = "getBooking", tag = "bookings",
    params(("id" = Uuid, Path, description = "The booking")),
    responses((status = 200, description = "The booking", body = BookingEnvelope), ReadProblems))]
pub async fn get(desk: &BookingDesk, id: &str) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    let record = find(desk, id).await?.ok_or(ApiError::BookingNotFound(id))?;
    json(StatusCode::OK, &BookingEnvelope { booking: &record })
}

/// Redis first (it holds every unsettled booking, and settled ones for an hour, with their live
/// status), then Postgres. A Redis failure only matters if Postgres does not have the booking
/// either.
pub async fn find(desk: &BookingDesk, id: BookingId) -> Result<Option<BookingRecord>, ApiError> {
    let from_redis = match id.shard(desk.keys.shard_count()) {
        None => Ok(None),
        Some(shard) => {
            let fields: Result<(Option<String>, Option<String>, Option<String>), _> = desk
                .redis
                .hmget(
                    desk.keys.booking(shard, id),
                    vec![field::PACKED, field::STATUS, field::REASON],
                )
                .await;
            match fields {
                Ok((None, _, _)) => Ok(None),
                Ok((packed, status, reason)) => {
                    BookingRecord::from_hash(packed.as_deref(), status.as_deref(), reason)
                        .map(Some)
                        .map_err(|error| ApiError::Internal(error.to_string()))
                }
                Err(error) => Err(ApiError::Redis(error)),
            }
        }
    };
    match from_redis {
        Ok(Some(record)) => Ok(Some(record)),
        Ok(None) => Ok(pg_store::booking(&desk.db, id).await?),
        Err(redis_error) => match pg_store::booking(&desk.db, id).await? {
            Some(record) => Ok(Some(record)),
            None => Err(redis_error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_preference_is_read_capped_and_otherwise_ignored() {
        let wait = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(PREFER, HeaderValue::from_static(value));
            }
            preferred_wait(&headers)
        };
        assert_eq!(wait(&["wait=5"]), Some(Duration::from_secs(5)));
        assert_eq!(
            wait(&["respond-async, Wait = 3"]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            wait(&["handling=lenient", "wait=\"2\""]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(wait(&["wait=3600"]), Some(MAX_PREFERRED_WAIT), "capped");
        for ignored in [
            "wait=0",
            "wait=soon",
            "wait=-1",
            "respond-async",
            "waiting=4",
        ] {
            assert_eq!(wait(&[ignored]), None, "{ignored}");
        }
        assert_eq!(wait(&[]), None);
    }

    fn parse(body: &str, header: Option<&'static str>) -> Result<BookingRequest, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = header {
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(key));
        }
        BookingRequest::parse(body.as_bytes(), &headers, None)
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
        assert_eq!(request.user_email.as_str(), "fan@example.com");
        assert_eq!(request.quantity.get(), 2);
        assert_eq!(request.total_price.to_string(), "20.00");
        assert_eq!(request.idempotency_key.as_str(), "k-1");
    }

    #[test]
    fn the_body_clients_send_is_the_one_the_gateway_reads() {
        let tier: TierId = TIER.parse().expect("a tier id");
        let body = BookingBody::new(
            tier,
            "Fan@Example.com",
            3,
            "12.50".parse().expect("money"),
            "k-9",
        )
        .expect("valid");
        let sent = serde_json::to_vec(&body).expect("json");
        let read = BookingRequest::parse(&sent, &HeaderMap::new(), None).expect("read back");
        assert_eq!(read.ticket_tier_id, tier);
        assert_eq!(read.user_email.as_str(), "fan@example.com");
        assert_eq!(read.quantity.get(), 3);
        assert_eq!(read.total_price.to_string(), "37.50");
        assert_eq!(read.idempotency_key.as_str(), "k-9");
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
    fn an_email_is_checked_in_the_form_it_is_stored_in() {
        let email = |email: String| {
            format!(
                r#"{{"ticketTierId":"{TIER}","userEmail":"{email}","quantity":1,"totalPrice":10,"idempotencyKey":"a"}}"#
            )
        };
        let labels = [
            "b".repeat(63),
            "b".repeat(62),
            "b".repeat(62),
            "b".repeat(62),
        ];
        let longest = format!("A@{}", labels.join("."));
        assert!(
            parse(&email(longest.clone()), None).is_ok(),
            "254 characters"
        );
        assert_eq!(
            fields(parse(&email(format!("A{longest}")), None)),
            ["userEmail"],
            "255 characters"
        );
        assert_eq!(
            fields(parse(
                &email(format!("{}@example.com", "İ".repeat(160))),
                None
            )),
            ["userEmail"]
        );
    }

    #[test]
    fn the_key_may_come_in_the_header_but_not_twice_differently() {
        let body = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1,"totalPrice":10}}"#
        );
        assert_eq!(
            parse(&body, Some("from-header"))
                .map(|r| r.idempotency_key.to_string())
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
    fn money_is_read_exactly_and_a_field_given_twice_is_refused() {
        for price in ["9.999999999999999999", "10.000000000000000001", "10.001"] {
            let body = format!(
                r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1,"totalPrice":{price},"idempotencyKey":"a"}}"#
            );
            assert_eq!(fields(parse(&body, None)), ["totalPrice"], "{price}");
        }
        let twice = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":2,"quantity":1,"totalPrice":10,"idempotencyKey":"a"}}"#
        );
        assert_eq!(fields(parse(&twice, None)), ["body"]);
    }

    #[test]
    fn fractional_quantities_are_refused() {
        let body = format!(
            r#"{{"ticketTierId":"{TIER}","userEmail":"a@b.co","quantity":1.5,"totalPrice":10,"idempotencyKey":"a"}}"#
        );
        assert_eq!(fields(parse(&body, None)), ["quantity"]);
    }
}
