//! Postgres writes of the settler: one statement per batch, idempotent by booking id.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use booking::record::{BookingRecord, BookingStatus};

/// A booking with its final status, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The booking, its `status` and `failure_reason` final.
    pub record: BookingRecord,
    pub payment_reference: Option<String>,
}

/// The final status of those `ids` that Postgres already holds (a redelivered entry).
pub async fn settled(
    db: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (BookingStatus, Option<String>)>, sqlx::Error> {
    let rows: Vec<(Uuid, BookingStatus, Option<String>)> =
        sqlx::query_as("SELECT id, status, failure_reason FROM bookings WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, status, reason)| (id, (status, reason)))
        .collect())
}

/// Writes the bookings, their status history and the sales rollups in one statement. A booking
/// already written is left as it is (`ON CONFLICT DO NOTHING`), and only newly inserted confirmed
/// bookings are added to the rollups (in key order, so concurrent batches cannot deadlock), so a
/// redelivery adds nothing anywhere. Returns how many bookings were new.
pub async fn commit(db: &PgPool, settlements: &[Settlement]) -> Result<u64, sqlx::Error> {
    if settlements.is_empty() {
        return Ok(0);
    }
    let records = settlements.iter().map(|s| &s.record);
    let ids: Vec<Uuid> = records.clone().map(|r| r.id).collect();
    let keys: Vec<&str> = records
        .clone()
        .map(|r| r.idempotency_key.as_str())
        .collect();
    let tiers: Vec<Uuid> = records.clone().map(|r| r.ticket_tier_id).collect();
    let concerts: Vec<Uuid> = records.clone().map(|r| r.concert_id).collect();
    let emails: Vec<&str> = records.clone().map(|r| r.user_email.as_str()).collect();
    let quantities: Vec<i16> = records.clone().map(|r| i16::from(r.quantity)).collect();
    let totals: Vec<rust_decimal::Decimal> =
        records.clone().map(|r| r.total_price.amount()).collect();
    let currencies: Vec<&str> = records.clone().map(|r| r.currency.code()).collect();
    let statuses: Vec<&str> = records.clone().map(|r| r.status.as_str()).collect();
    let reasons: Vec<Option<&str>> = records
        .clone()
        .map(|r| r.failure_reason.as_deref())
        .collect();
    let created: Vec<chrono::DateTime<chrono::Utc>> = records.map(|r| r.created_at).collect();
    let references: Vec<Option<&str>> = settlements
        .iter()
        .map(|s| s.payment_reference.as_deref())
        .collect();
    let result = sqlx::query(
        "WITH input AS ( \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], \
                                  $6::int2[], $7::numeric[], $8::text[], $9::text[], $10::text[], \
                                  $11::timestamptz[], $12::text[]) \
             AS t(id, idempotency_key, ticket_tier_id, concert_id, user_email, quantity, \
                  total_price, currency, status, failure_reason, created_at, payment_reference) \
         ), inserted AS ( \
             INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email, \
                                   quantity, total_price, currency, status, failure_reason, \
                                   created_at, payment_reference) \
             SELECT id, idempotency_key, ticket_tier_id, concert_id, user_email, quantity, \
                    total_price, currency, status::booking_status, failure_reason, created_at, \
                    payment_reference \
             FROM input \
             ON CONFLICT (id) DO NOTHING \
             RETURNING id, ticket_tier_id, concert_id, quantity, total_price, status, \
                       failure_reason, created_at, updated_at \
         ), rolled_up AS ( \
             INSERT INTO sales_hourly (concert_id, ticket_tier_id, hour, revenue, tickets) \
             SELECT concert_id, ticket_tier_id, date_trunc('hour', created_at, 'UTC'), \
                    SUM(total_price), SUM(quantity) \
             FROM inserted WHERE status = 'confirmed' \
             GROUP BY 1, 2, 3 \
             ORDER BY 1, 2, 3 \
             ON CONFLICT (concert_id, ticket_tier_id, hour) DO UPDATE \
             SET revenue = sales_hourly.revenue + EXCLUDED.revenue, \
                 tickets = sales_hourly.tickets + EXCLUDED.tickets \
         ) \
         INSERT INTO booking_status_history (booking_id, status, reason, at) \
         SELECT id, 'pending', NULL, created_at FROM inserted \
         UNION ALL \
         SELECT id, status, failure_reason, updated_at FROM inserted",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&tiers)
    .bind(&concerts)
    .bind(&emails)
    .bind(&quantities)
    .bind(&totals)
    .bind(&currencies)
    .bind(&statuses)
    .bind(&reasons)
    .bind(&created)
    .bind(&references)
    .execute(db)
    .await?;
    // Two history rows per new booking.
    Ok(result.rows_affected() / 2)
}

/// Whether retrying later can succeed: Postgres unreachable, restarting or overloaded.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Connection exceptions, insufficient resources, operator intervention, and
            // serialization failures or deadlocks.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}
