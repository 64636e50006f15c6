#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod outbox;
mod pool;

pub use pool::{IDLE_IN_TRANSACTION, MIGRATOR, connect};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use domain::ids::{BookingId, ConcertId, QueueTicketId, Shard, TierId};
use domain::money::Money;
use domain::record::{Booking, BookingRecord, BookingStatus, Packed};
use domain::values::{Email, IdempotencyKey, Quantity};

/// What Postgres holds of a settled booking: its final status and, when it failed, why.
pub type Outcome = (BookingStatus, Option<String>);

/// The outcome of those `ids` that Postgres already holds: a row, or a dead letter (failed).
pub async fn outcomes(
    db: &mut PgConnection,
    ids: &[BookingId],
) -> Result<HashMap<BookingId, Outcome>, sqlx::Error> {
    let ids = uuids(ids);
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", status AS "status!: BookingStatus", failure_reason
           FROM bookings WHERE id = ANY($1)
           UNION ALL
           SELECT booking_id, 'failed', reason FROM dead_letters WHERE booking_id = ANY($1)"#,
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id.into(), (row.status, row.failure_reason)))
        .collect())
}

/// Those of `ids` Postgres holds a row or a dead letter of.
pub async fn known(db: &PgPool, ids: &[BookingId]) -> Result<Vec<BookingId>, sqlx::Error> {
    let known = sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM bookings WHERE id = ANY($1)
           UNION ALL SELECT booking_id FROM dead_letters WHERE booking_id = ANY($1)"#,
        &uuids(ids)
    )
    .fetch_all(db)
    .await?;
    Ok(known.into_iter().map(BookingId::from).collect())
}

/// The UUIDs of `ids`, to bind as a `uuid[]` (the query macros check a bind's type as written).
fn uuids<Id: Copy + Into<Uuid>>(ids: &[Id]) -> Vec<Uuid> {
    ids.iter().copied().map(Into::into).collect()
}

/// A booking's row, as the API shows it.
#[derive(Debug)]
struct BookingRow {
    id: Uuid,
    ticket_tier_id: Uuid,
    concert_id: Uuid,
    user_email: String,
    quantity: i16,
    total_price: Decimal,
    currency: String,
    status: BookingStatus,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    idempotency_key: String,
}

impl TryFrom<BookingRow> for BookingRecord {
    type Error = sqlx::Error;

    fn try_from(row: BookingRow) -> Result<Self, Self::Error> {
        Ok(BookingRecord {
            booking: Booking {
                id: row.id.into(),
                ticket_tier_id: row.ticket_tier_id.into(),
                concert_id: row.concert_id.into(),
                user_email: Email::parse(&row.user_email).map_err(|e| corrupt("user_email", e))?,
                quantity: Quantity::new(i64::from(row.quantity))
                    .map_err(|e| corrupt("quantity", e))?,
                total_price: Money::new(row.total_price).map_err(|e| corrupt("total_price", e))?,
                currency: row.currency.parse().map_err(|e| corrupt("currency", e))?,
                created_at: row.created_at,
                idempotency_key: IdempotencyKey::parse(&row.idempotency_key)
                    .map_err(|e| corrupt("idempotency_key", e))?,
            },
            status: row.status,
            failure_reason: row.failure_reason,
        })
    }
}

/// A booking the settler has written: its row, or the dead letter it was resolved into when no
/// row could hold it (failed, with the letter's reason).
pub async fn booking(db: &PgPool, id: BookingId) -> Result<Option<BookingRecord>, sqlx::Error> {
    let row = sqlx::query_as!(
        BookingRow,
        r#"SELECT id, ticket_tier_id, concert_id, user_email, quantity, total_price, currency,
                  status AS "status: BookingStatus", failure_reason, created_at, idempotency_key
           FROM bookings WHERE id = $1"#,
        id.uuid()
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        let dead = sqlx::query!(
            "SELECT entry, reason FROM dead_letters WHERE booking_id = $1",
            id.uuid()
        )
        .fetch_optional(db)
        .await?;
        return Ok(dead.and_then(|dead| {
            let packed = Packed::from_json(&dead.entry).ok()?;
            Some(BookingRecord {
                booking: packed.booking,
                status: BookingStatus::Failed,
                failure_reason: Some(dead.reason),
            })
        }));
    };
    row.try_into().map(Some)
}

/// Where a page of a customer's bookings starts: after the booking made at `created_at` with
/// `id` (newest first, the id breaking ties), so bookings written meanwhile never shift a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Up to `limit` settled bookings of `email`, newest first, after `after`.
pub async fn bookings_of(
    db: &PgPool,
    email: &str,
    after: Option<BookingCursor>,
    limit: i64,
) -> Result<Vec<BookingRecord>, sqlx::Error> {
    let (created_at, id) = after.map_or((None, None), |c| (Some(c.created_at), Some(c.id)));
    let rows = sqlx::query_as!(
        BookingRow,
        r#"SELECT id, ticket_tier_id, concert_id, user_email, quantity, total_price, currency,
                  status AS "status: BookingStatus", failure_reason, created_at, idempotency_key
           FROM bookings
           WHERE user_email = $1
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
           ORDER BY created_at DESC, id DESC
           LIMIT $4"#,
        email,
        created_at,
        id,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(BookingRecord::try_from).collect()
}

/// A value Postgres holds that the domain refuses: the column and why.
pub fn corrupt(column: &str, error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: error.to_string().into(),
    }
}

/// Whether Postgres answers at all.
pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT 1 AS ping").fetch_one(db).await?;
    Ok(())
}

/// How long an advisory lock lasts once taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockLasts {
    /// Until the connection closes.
    Session,
    /// Until the transaction ends.
    Transaction,
}

/// Takes the advisory lock `(class, shard)` if it is free.
pub async fn try_lock(
    db: &mut PgConnection,
    class: i32,
    shard: Shard,
    lasts: LockLasts,
) -> Result<bool, sqlx::Error> {
    let statement = match lasts {
        LockLasts::Session => "SELECT pg_try_advisory_lock($1, $2)",
        LockLasts::Transaction => "SELECT pg_try_advisory_xact_lock($1, $2)",
    };
    sqlx::query_scalar(statement)
        .bind(class)
        .bind(i32::from(shard.index()))
        .fetch_one(db)
        .await
}

/// Moves `shard` on to its next epoch (1 for its first) and returns it.
pub async fn next_epoch(db: &mut PgConnection, shard: Shard) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO shard_epochs (shard, epoch) VALUES ($1, 1)
         ON CONFLICT (shard) DO UPDATE SET epoch = shard_epochs.epoch + 1, recovered_at = now()
         RETURNING epoch",
        i16::from(shard.index())
    )
    .fetch_one(db)
    .await
}

/// The current epoch of `shard`, locked `FOR SHARE` so a recovery moving it on waits for the
/// caller's transaction; `None` before its first recovery.
pub async fn epoch_for_share(
    db: &mut PgConnection,
    shard: Shard,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT epoch FROM shard_epochs WHERE shard = $1 FOR SHARE",
        i16::from(shard.index())
    )
    .fetch_optional(db)
    .await
}

/// A tier's size and how many of its tickets are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierSales {
    pub tier_id: TierId,
    pub total: i64,
    pub confirmed: i64,
}

/// Every tier of the concerts on `shard`, with its confirmed tickets.
pub async fn shard_sales(
    db: &mut PgConnection,
    shard: Shard,
) -> Result<Vec<TierSales>, sqlx::Error> {
    sqlx::query_as!(
        TierSales,
        r#"SELECT t.id AS tier_id, t.total_quantity::int8 AS "total!",
                  COALESCE(SUM(b.quantity) FILTER (WHERE b.status = 'confirmed'), 0)::int8
                      AS "confirmed!"
           FROM ticket_tiers t JOIN concerts c ON c.id = t.concert_id
           LEFT JOIN bookings b ON b.ticket_tier_id = t.id
           WHERE c.shard = $1 GROUP BY t.id, t.total_quantity"#,
        i16::from(shard.index())
    )
    .fetch_all(db)
    .await
}

/// The tiers of `ids` with their confirmed tickets.
pub async fn tier_sales(
    db: &mut PgConnection,
    ids: &[TierId],
) -> Result<Vec<TierSales>, sqlx::Error> {
    sqlx::query_as!(
        TierSales,
        r#"SELECT t.id AS tier_id, t.total_quantity::int8 AS "total!",
                  COALESCE(SUM(b.quantity) FILTER (WHERE b.status = 'confirmed'), 0)::int8
                      AS "confirmed!"
           FROM ticket_tiers t LEFT JOIN bookings b ON b.ticket_tier_id = t.id
           WHERE t.id = ANY($1) GROUP BY t.id"#,
        &uuids(ids)
    )
    .fetch_all(db)
    .await
}

/// Confirmed tickets a customer holds for a concert on the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub concert_id: ConcertId,
    pub user_email: String,
    pub tickets: i64,
    pub concert_date: DateTime<Utc>,
}

/// Confirmed tickets per customer and concert on `shard`, for concerts not yet `grace_seconds`
/// past.
pub async fn held(
    db: &mut PgConnection,
    shard: Shard,
    grace_seconds: f64,
) -> Result<Vec<Held>, sqlx::Error> {
    sqlx::query_as!(
        Held,
        r#"SELECT b.concert_id, b.user_email, SUM(b.quantity)::int8 AS "tickets!",
                  c.date AS concert_date
           FROM bookings b JOIN concerts c ON c.id = b.concert_id
           WHERE c.shard = $1 AND b.status = 'confirmed'
             AND c.date > now() - make_interval(secs => $2)
           GROUP BY b.concert_id, b.user_email, c.date"#,
        i16::from(shard.index()),
        grace_seconds
    )
    .fetch_all(db)
    .await
}

/// A waiting-room admission a booking on the shard spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentAdmission {
    pub concert_id: ConcertId,
    pub ticket_id: QueueTicketId,
    pub booking_id: BookingId,
    pub concert_date: DateTime<Utc>,
}

/// The admissions spent by bookings on `shard`, of concerts not yet `grace_seconds` past.
pub async fn spent_admissions(
    db: &mut PgConnection,
    shard: Shard,
    grace_seconds: f64,
) -> Result<Vec<SpentAdmission>, sqlx::Error> {
    sqlx::query_as!(
        SpentAdmission,
        r#"SELECT b.concert_id, b.admission_ticket_id AS "ticket_id!", b.id AS booking_id,
                  c.date AS concert_date
           FROM bookings b JOIN concerts c ON c.id = b.concert_id
           WHERE c.shard = $1 AND b.admission_ticket_id IS NOT NULL
             AND c.date > now() - make_interval(secs => $2)"#,
        i16::from(shard.index()),
        grace_seconds
    )
    .fetch_all(db)
    .await
}

/// What an idempotency record is made of, as a booking row holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRow {
    pub id: BookingId,
    pub concert_id: ConcertId,
    pub idempotency_key: String,
    pub ticket_tier_id: TierId,
    pub user_email: String,
    pub quantity: i16,
    pub total_price: Decimal,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// The bookings of `shard` made in the last `seconds`.
pub async fn recent_bookings(
    db: &mut PgConnection,
    shard: Shard,
    seconds: f64,
) -> Result<Vec<IdempotencyRow>, sqlx::Error> {
    sqlx::query_as!(
        IdempotencyRow,
        "SELECT b.id, b.concert_id, b.idempotency_key, b.ticket_tier_id, b.user_email,
                b.quantity, b.total_price, b.currency, b.created_at
         FROM bookings b JOIN concerts c ON c.id = b.concert_id
         WHERE c.shard = $1 AND b.created_at > now() - make_interval(secs => $2)",
        i16::from(shard.index()),
        seconds
    )
    .fetch_all(db)
    .await
}

/// The stream entries of `shard` dead-lettered in the last `seconds`, as the stream held them.
pub async fn recent_dead_letters(
    db: &mut PgConnection,
    shard: Shard,
    seconds: f64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT entry FROM dead_letters WHERE shard = $1 AND at > now() - make_interval(secs => $2)",
        i16::from(shard.index()),
        seconds
    )
    .fetch_all(db)
    .await
}
