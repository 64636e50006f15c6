//! What tests read from and plant in Postgres, checked at compile time like the binaries' own
//! statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use domain::record::BookingStatus;

/// Booking rows per status.
pub async fn bookings_by_status(db: &PgPool) -> HashMap<String, i64> {
    sqlx::query!(
        r#"SELECT status::text AS "status!", COUNT(*) AS "rows!" FROM bookings GROUP BY status"#
    )
    .fetch_all(db)
    .await
    .expect("bookings counted")
    .into_iter()
    .map(|row| (row.status, row.rows))
    .collect()
}

/// The token of the latest sign-in link mailed to `email` (as stored: normalised), read from the
/// outbox's mail.
pub async fn signin_link_token(db: &PgPool, email: &str) -> String {
    let body = sqlx::query_scalar!(
        "SELECT body FROM mail_outbox WHERE recipient = $1 AND kind = 'signin'
         ORDER BY created_at DESC LIMIT 1",
        email
    )
    .fetch_one(db)
    .await
    .expect("a sign-in mail");
    body.split("/signin?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the link in the mail")
        .to_owned()
}

/// Every booking's payment reference, in id order.
pub async fn payment_references(db: &PgPool) -> Vec<Option<String>> {
    sqlx::query_scalar!("SELECT payment_reference FROM bookings ORDER BY id")
        .fetch_all(db)
        .await
        .expect("payment references")
}

/// Every booking's failure reason, in id order.
pub async fn failure_reasons(db: &PgPool) -> Vec<Option<String>> {
    sqlx::query_scalar!("SELECT failure_reason FROM bookings ORDER BY id")
        .fetch_all(db)
        .await
        .expect("failure reasons")
}

/// Rows of the status history.
pub async fn status_history_rows(db: &PgPool) -> i64 {
    sqlx::query_scalar!(r#"SELECT COUNT(*) AS "rows!" FROM booking_status_history"#)
        .fetch_one(db)
        .await
        .expect("history counted")
}

/// Every dead letter's booking and reason, in the order they were written.
pub async fn dead_letters(db: &PgPool) -> Vec<(Option<Uuid>, String)> {
    sqlx::query!("SELECT booking_id, reason FROM dead_letters ORDER BY id")
        .fetch_all(db)
        .await
        .expect("dead letters")
        .into_iter()
        .map(|row| (row.booking_id, row.reason))
        .collect()
}

/// The ids of every booking row and every dead letter, repeats kept.
pub async fn settled_ids(db: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM bookings UNION ALL SELECT booking_id FROM dead_letters"#
    )
    .fetch_all(db)
    .await
    .expect("settled ids")
}

/// The waiting-room admission booking `id`'s row says it spent.
pub async fn admission_of(db: &PgPool, id: Uuid) -> Option<Uuid> {
    sqlx::query_scalar!("SELECT admission_ticket_id FROM bookings WHERE id = $1", id)
        .fetch_one(db)
        .await
        .expect("the booking's row")
}

/// A booking row written straight into Postgres, as the settler would have written it.
#[derive(Debug, Clone)]
pub struct PlantedBooking<'a> {
    pub id: Uuid,
    pub idempotency_key: &'a str,
    pub tier_id: Uuid,
    pub concert_id: Uuid,
    pub user_email: &'a str,
    pub quantity: i16,
    pub total_price: Decimal,
    pub status: BookingStatus,
    pub failure_reason: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    /// The waiting-room admission it spent.
    pub admission_ticket_id: Option<Uuid>,
}

/// Writes `booking`'s row.
pub async fn plant_booking(db: &PgPool, booking: PlantedBooking<'_>) {
    sqlx::query!(
        "INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                               quantity, total_price, currency, status, failure_reason, created_at,
                               admission_ticket_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'USD', $8, $9, $10, $11)",
        booking.id,
        booking.idempotency_key,
        booking.tier_id,
        booking.concert_id,
        booking.user_email,
        booking.quantity,
        booking.total_price,
        booking.status as BookingStatus,
        booking.failure_reason,
        booking.created_at,
        booking.admission_ticket_id,
    )
    .execute(db)
    .await
    .expect("booking planted");
}

/// Plants `count` confirmed bookings of one ticket at 10 USD for `tier_id`, spread over the last
/// `spread_seconds`.
pub async fn plant_confirmed(
    db: &PgPool,
    concert_id: Uuid,
    tier_id: Uuid,
    count: i32,
    spread_seconds: i32,
) {
    sqlx::query!(
        "INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                               quantity, total_price, currency, status, created_at)
         SELECT gen_random_uuid(), 'k' || i, $1, $2, 'a@b.co', 1, 10, 'USD', 'confirmed',
                now() - (i % $4) * interval '1 second'
         FROM generate_series(1, $3) i",
        tier_id,
        concert_id,
        count,
        spread_seconds,
    )
    .execute(db)
    .await
    .expect("bookings planted");
}

/// The dashboard's answer computed the plain way, straight from the confirmed bookings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainDashboard {
    pub revenue: Option<Decimal>,
    pub tickets: Option<i64>,
    /// Revenue and tickets per bucket, in time order.
    pub over_time: Vec<(DateTime<Utc>, Decimal, i64)>,
    /// Tier name, concert name and revenue, most revenue first, then by name.
    pub by_tier: Vec<(String, String, Decimal)>,
}

/// Confirmed sales of one concert or all in `[start, end)` (either end open), bucketed by
/// `period` (a `date_trunc` unit, in UTC).
pub async fn plain_dashboard(
    db: &PgPool,
    concert_id: Option<Uuid>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    period: &str,
) -> Result<PlainDashboard, sqlx::Error> {
    let totals = sqlx::query!(
        r#"SELECT SUM(total_price) AS revenue, SUM(quantity)::int8 AS tickets FROM bookings
           WHERE status = 'confirmed' AND ($1::uuid IS NULL OR concert_id = $1)
             AND ($2::timestamptz IS NULL OR created_at >= $2)
             AND ($3::timestamptz IS NULL OR created_at < $3)"#,
        concert_id,
        start,
        end,
    )
    .fetch_one(db)
    .await?;
    let over_time = sqlx::query!(
        r#"SELECT date_trunc($4, created_at, 'UTC') AS "bucket!", SUM(total_price) AS "revenue!",
                  SUM(quantity)::int8 AS "tickets!"
           FROM bookings
           WHERE status = 'confirmed' AND ($1::uuid IS NULL OR concert_id = $1)
             AND ($2::timestamptz IS NULL OR created_at >= $2)
             AND ($3::timestamptz IS NULL OR created_at < $3)
           GROUP BY 1 ORDER BY 1"#,
        concert_id,
        start,
        end,
        period,
    )
    .fetch_all(db)
    .await?;
    let by_tier = sqlx::query!(
        r#"SELECT t.name AS tier_name, c.name AS concert_name, SUM(b.total_price) AS "revenue!"
           FROM bookings b
           JOIN ticket_tiers t ON t.id = b.ticket_tier_id JOIN concerts c ON c.id = b.concert_id
           WHERE b.status = 'confirmed' AND ($1::uuid IS NULL OR b.concert_id = $1)
             AND ($2::timestamptz IS NULL OR b.created_at >= $2)
             AND ($3::timestamptz IS NULL OR b.created_at < $3)
           GROUP BY t.id, t.name, c.name ORDER BY 3 DESC, c.name, t.name"#,
        concert_id,
        start,
        end,
    )
    .fetch_all(db)
    .await?;
    Ok(PlainDashboard {
        revenue: totals.revenue,
        tickets: totals.tickets,
        over_time: over_time
            .into_iter()
            .map(|row| (row.bucket, row.revenue, row.tickets))
            .collect(),
        by_tier: by_tier
            .into_iter()
            .map(|row| (row.tier_name, row.concert_name, row.revenue))
            .collect(),
    })
}
