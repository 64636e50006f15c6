//! Postgres writes of the settler: one statement per batch, idempotent by booking id, and
//! confirmations fenced by their shard's epoch (see `redis_store::recovery`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use domain::ids::{BookingId, ConcertId, QueueTicketId, Shard, TierId};
use domain::record::{BookingStatus, Packed};
use pg_store::Outcome;

/// A booking with its final status, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub packed: Packed,
    pub status: BookingStatus,
    pub failure_reason: Option<String>,
    pub payment_reference: Option<String>,
}

/// A settlement to commit, with the epoch of the shard its booking was accepted in.
#[derive(Debug, Clone, Copy)]
pub struct Stamped<'a> {
    pub epoch: u64,
    pub settlement: &'a Settlement,
}

/// The final status of those `ids` that Postgres already holds: a row, or a dead letter (failed).
pub async fn settled(
    db: &PgPool,
    ids: &[BookingId],
) -> Result<HashMap<BookingId, Outcome>, sqlx::Error> {
    pg_store::outcomes(&mut *db.acquire().await?, ids).await
}

/// What became of one settlement in [`commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Its row is in Postgres now.
    Inserted,
    /// Postgres held its booking already (another delivery got there first): the outcome it
    /// holds, which is the one to apply.
    Existing(BookingStatus, Option<String>),
    /// A confirmation accepted in another epoch of its shard: not written.
    Fenced,
}

/// Writes `batch` for `shard` in one transaction: reads the shard's epoch `FOR SHARE` (so a
/// recovery moving it on waits for this commit), then writes every settlement except
/// confirmations accepted in another epoch, which Redis may have lost the stock of. Returns what
/// became of each settlement.
pub async fn commit(
    db: &PgPool,
    shard: Shard,
    batch: &[Stamped<'_>],
) -> Result<Vec<Written>, sqlx::Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let current = pg_store::epoch_for_share(&mut tx, shard).await?;
    let written: Vec<bool> = batch
        .iter()
        .map(|stamped| {
            stamped.settlement.status != BookingStatus::Confirmed
                || i64::try_from(stamped.epoch).ok() == current
        })
        .collect();
    let settlements: Vec<&Settlement> = batch
        .iter()
        .zip(&written)
        .filter(|(_, written)| **written)
        .map(|(stamped, _)| stamped.settlement)
        .collect();
    let inserted = insert(&mut tx, &settlements).await?;
    let existing: Vec<BookingId> = settlements
        .iter()
        .map(|s| s.packed.booking.id)
        .filter(|id| !inserted.contains(id))
        .collect();
    let held = if existing.is_empty() {
        HashMap::new()
    } else {
        pg_store::outcomes(&mut tx, &existing).await?
    };
    tx.commit().await?;
    Ok(batch
        .iter()
        .zip(written)
        .map(|(stamped, written)| {
            let id = stamped.settlement.packed.booking.id;
            match (written, held.get(&id)) {
                (false, _) => Written::Fenced,
                (true, Some((status, reason))) => Written::Existing(*status, reason.clone()),
                (true, None) => Written::Inserted,
            }
        })
        .collect())
}

/// Inserts the bookings, their status history and the sales rollups in one statement. A booking
/// already written (or resolved into a dead letter) is left as it is, and only newly inserted
/// confirmed bookings are added to the rollups (in key order, so concurrent batches cannot
/// deadlock), so a redelivery adds nothing anywhere. Returns the bookings inserted.
async fn insert(
    db: &mut sqlx::PgConnection,
    settlements: &[&Settlement],
) -> Result<std::collections::HashSet<BookingId>, sqlx::Error> {
    if settlements.is_empty() {
        return Ok(Default::default());
    }
    let bookings = settlements.iter().map(|s| &s.packed.booking);
    let ids: Vec<Uuid> = bookings.clone().map(|b| b.id.uuid()).collect();
    let keys: Vec<String> = bookings
        .clone()
        .map(|b| b.idempotency_key.as_str().to_owned())
        .collect();
    let tiers: Vec<Uuid> = bookings.clone().map(|b| b.ticket_tier_id.uuid()).collect();
    let concerts: Vec<Uuid> = bookings.clone().map(|b| b.concert_id.uuid()).collect();
    let emails: Vec<String> = bookings.clone().map(|b| b.user_email.to_string()).collect();
    let quantities: Vec<i16> = bookings
        .clone()
        .map(|b| i16::from(b.quantity.get()))
        .collect();
    let totals: Vec<rust_decimal::Decimal> =
        bookings.clone().map(|b| b.total_price.amount()).collect();
    let currencies: Vec<String> = bookings
        .clone()
        .map(|b| b.currency.code().to_owned())
        .collect();
    let created: Vec<chrono::DateTime<chrono::Utc>> = bookings.map(|b| b.created_at).collect();
    let statuses: Vec<BookingStatus> = settlements.iter().map(|s| s.status).collect();
    let reasons: Vec<Option<String>> = settlements
        .iter()
        .map(|s| s.failure_reason.clone())
        .collect();
    let references: Vec<Option<String>> = settlements
        .iter()
        .map(|s| s.payment_reference.clone())
        .collect();
    let admissions: Vec<Option<Uuid>> = settlements
        .iter()
        .map(|s| s.packed.admission.map(QueueTicketId::uuid))
        .collect();
    let inserted = sqlx::query_scalar!(
        r#"WITH input AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[],
                                  $6::int2[], $7::numeric[], $8::text[], $9::booking_status[], $10::text[],
                                  $11::timestamptz[], $12::text[], $13::uuid[])
             AS t(id, idempotency_key, ticket_tier_id, concert_id, user_email, quantity,
                  total_price, currency, status, failure_reason, created_at, payment_reference,
                  admission_ticket_id)
         ), inserted AS (
             INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                                   quantity, total_price, currency, status, failure_reason,
                                   created_at, payment_reference, admission_ticket_id)
             SELECT id, idempotency_key, ticket_tier_id, concert_id, user_email, quantity,
                    total_price, currency, status, failure_reason, created_at,
                    payment_reference, admission_ticket_id
             FROM input
             WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.booking_id = input.id)
             ON CONFLICT (id) DO NOTHING
             RETURNING id, ticket_tier_id, concert_id, quantity, total_price, status,
                       failure_reason, created_at, updated_at
         ), rolled_up AS (
             INSERT INTO sales_hourly (concert_id, ticket_tier_id, hour, revenue, tickets)
             SELECT concert_id, ticket_tier_id, date_trunc('hour', created_at, 'UTC'),
                    SUM(total_price), SUM(quantity)
             FROM inserted WHERE status = 'confirmed'
             GROUP BY 1, 2, 3
             ORDER BY 1, 2, 3
             ON CONFLICT (concert_id, ticket_tier_id, hour) DO UPDATE
             SET revenue = sales_hourly.revenue + EXCLUDED.revenue,
                 tickets = sales_hourly.tickets + EXCLUDED.tickets
         )
         INSERT INTO booking_status_history (booking_id, status, reason, at)
         SELECT id, 'pending'::booking_status, NULL, created_at FROM inserted
         UNION ALL
         SELECT id, status, failure_reason, updated_at FROM inserted
         RETURNING booking_id"#,
        &ids,
        &keys,
        &tiers,
        &concerts,
        &emails,
        &quantities,
        &totals,
        &currencies,
        &statuses as &[BookingStatus],
        &reasons as &[Option<String>],
        &created,
        &references as &[Option<String>],
        &admissions as &[Option<Uuid>],
    )
    .fetch_all(db)
    .await?;
    Ok(inserted.into_iter().map(BookingId::from).collect())
}

/// An accepted booking that can never be written, as the stream held it.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub shard: Shard,
    pub epoch: u64,
    pub stream_entry_id: &'a str,
    pub booking_id: Option<BookingId>,
    pub entry: &'a str,
    pub reason: &'a str,
}

/// Records a dead letter once: a booking, or an entry of a shard and epoch, is recorded only the
/// first time, however often it is delivered.
pub async fn dead_letter(db: &PgPool, letter: DeadLetter<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO dead_letters (booking_id, shard, epoch, stream_entry_id, entry, reason)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        letter.booking_id.map(BookingId::uuid),
        i16::from(letter.shard.index()),
        i64::try_from(letter.epoch).unwrap_or(i64::MAX),
        letter.stream_entry_id,
        letter.entry,
        letter.reason
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A tier as the audit reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierRow {
    pub id: TierId,
    pub shard: i16,
    pub total_quantity: i32,
}

/// A concert's shard and date: where its held counts live and how long they are kept.
#[derive(Debug)]
pub struct ConcertRow {
    pub id: ConcertId,
    pub shard: i16,
    pub date: DateTime<Utc>,
}

pub async fn concerts(db: &PgPool) -> Result<Vec<ConcertRow>, sqlx::Error> {
    sqlx::query_as!(ConcertRow, "SELECT id, shard, date FROM concerts")
        .fetch_all(db)
        .await
}

/// Every tier, with its concert's shard, in the catalog's order.
pub async fn tiers(db: &PgPool) -> Result<Vec<TierRow>, sqlx::Error> {
    sqlx::query_as!(
        TierRow,
        "SELECT t.id, c.shard, t.total_quantity
         FROM ticket_tiers t JOIN concerts c ON c.id = t.concert_id ORDER BY c.date, t.id"
    )
    .fetch_all(db)
    .await
}

/// Confirmed tickets per tier, of the tiers that sold any.
pub async fn confirmed_per_tier(db: &PgPool) -> Result<HashMap<TierId, i64>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT ticket_tier_id, SUM(quantity)::int8 AS "confirmed!" FROM bookings
           WHERE status = 'confirmed' GROUP BY ticket_tier_id"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.ticket_tier_id.into(), row.confirmed))
        .collect())
}

/// Whether retrying later can succeed: Postgres unreachable, restarting or overloaded. Anything
/// else (a constraint, a type, a value out of range) is permanent: retrying changes nothing.
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
