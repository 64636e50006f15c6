//! The dashboard's Postgres statement: confirmed sales per tier and bucket, from the hourly
//! rollups and the bookings at a window's edges. Checked against the migrations at compile time.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

/// A window of sales: whole hours read from the hourly rollups, and up to two partial hours at
/// its edges read from the bookings. Each range is half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SalesWindow {
    pub whole_hours: (DateTime<Utc>, DateTime<Utc>),
    pub first_hour: (DateTime<Utc>, DateTime<Utc>),
    pub last_hour: (DateTime<Utc>, DateTime<Utc>),
}

/// Confirmed sales of one tier in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SalesRow {
    pub bucket: DateTime<Utc>,
    pub tier_id: Uuid,
    pub tier_name: String,
    pub concert_name: String,
    pub revenue: Decimal,
    pub tickets: i64,
}

/// Confirmed sales in `window`, of one concert or all, per tier and bucket of `period` (a
/// `date_trunc` unit, in UTC).
pub(super) async fn sales(
    db: &PgPool,
    window: SalesWindow,
    concert_id: Option<Uuid>,
    period: &str,
) -> Result<Vec<SalesRow>, sqlx::Error> {
    sqlx::query_as!(
        SalesRow,
        r#"SELECT date_trunc($8, sales.at, 'UTC') AS "bucket!", t.id AS tier_id,
                  t.name AS tier_name, c.name AS concert_name,
                  SUM(sales.revenue) AS "revenue!", SUM(sales.tickets)::int8 AS "tickets!"
           FROM (
               SELECT ticket_tier_id, hour AS at, revenue, tickets FROM sales_hourly
               WHERE hour >= $1 AND hour < $2 AND ($7::uuid IS NULL OR concert_id = $7)
               UNION ALL
               SELECT ticket_tier_id, created_at, total_price, quantity::int8 FROM bookings
               WHERE status = 'confirmed' AND ($7::uuid IS NULL OR concert_id = $7)
                 AND ((created_at >= $3 AND created_at < $4)
                      OR (created_at >= $5 AND created_at < $6))
           ) sales
           JOIN ticket_tiers t ON t.id = sales.ticket_tier_id
           JOIN concerts c ON c.id = t.concert_id
           GROUP BY 1, t.id, t.name, c.name"#,
        window.whole_hours.0,
        window.whole_hours.1,
        window.first_hour.0,
        window.first_hour.1,
        window.last_hour.0,
        window.last_hour.1,
        concert_id,
        period,
    )
    .fetch_all(db)
    .await
}
