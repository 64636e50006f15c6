//! `/api/me`: the signed-in customer, and every booking made with their email.

use chrono::DateTime;
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use domain::record::BookingRecord;
use pg_store::BookingCursor;

use crate::api::problems::{Invalid, RateLimited, Unauthorized, Unavailable};
use crate::customers::{CustomerView, Customers};
use crate::http::body::{Body, json};
use crate::http::error::ApiError;
use crate::http::validate::page_query;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

/// The signed-in customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeEnvelope {
    customer: CustomerView,
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/me", operation_id = "me", tag = "customers",
    security(("customer" = [])),
    responses(
        (status = 200, description = "The customer", body = MeEnvelope),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
    )
)]
pub fn me(customers: &Customers, headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
    let signed_in = customers.require(headers)?;
    json(
        StatusCode::OK,
        &MeEnvelope {
            customer: CustomerView {
                id: signed_in.customer_id,
                email: signed_in.email.as_str().to_owned(),
            },
        },
    )
}

/// A page of the customer's bookings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyBookingsPage {
    /// Newest first.
    bookings: Vec<BookingRecord>,
    /// The `cursor` of the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Every settled booking made with the customer's email, those made as a guest before signing in
/// included, newest first. A page never shifts under bookings made meanwhile: each page starts
/// after the last booking of the one before. A booking still pending shows once it is settled
/// (within a second or so); `GET /api/bookings/{id}` follows it until then.
#[utoipa::path(get, path = "/api/me/bookings", operation_id = "myBookings", tag = "customers",
    security(("customer" = [])),
    params(
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,16}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "The `nextCursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Bookings per page (default 20)"),
    ),
    responses(
        (status = 200, description = "A page of bookings", body = MyBookingsPage),
        (status = 400, response = Invalid),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn bookings(
    customers: &Customers,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let signed_in = customers.require(headers)?;
    let page = page_query(query, parse_cursor, DEFAULT_LIMIT, MAX_LIMIT)?;
    let (bookings, more) = customers.bookings(&signed_in, &page).await?;
    let next_cursor = match more {
        true => bookings.last().map(|last| {
            let created = last.booking.created_at.timestamp_micros();
            format!("{created}_{}", last.booking.id)
        }),
        false => None,
    };
    json(
        StatusCode::OK,
        &MyBookingsPage {
            bookings,
            next_cursor,
        },
    )
}

/// `<created_at in microseconds>_<id>` of the last booking of a page.
fn parse_cursor(text: &str) -> Option<BookingCursor> {
    let (micros, id) = text.split_once('_')?;
    Some(BookingCursor {
        created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: Uuid::parse_str(id).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_a_booking_by_time_and_id() {
        let id = Uuid::now_v7();
        let cursor = parse_cursor(&format!("1765000000123456_{id}")).expect("a cursor");
        assert_eq!(cursor.id, id);
        assert_eq!(cursor.created_at.timestamp_micros(), 1_765_000_000_123_456);
        for bad in ["", "12", "x_y", &format!("12_{id}x"), &format!("_{id}")] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
