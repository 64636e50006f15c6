//! The catalog's Postgres statements: concerts and tiers read and written (each write with its
//! audit-log entry, in the same transaction), and the demo seed's lock. Every statement is
//! checked against the migrations at compile time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use domain::ids::{ConcertId, Shard};
use domain::money::Money;
use pg_store::audit::{self, Actor, Change};
use pg_store::corrupt;

use super::model::{Catalog, Concert, Tier};

/// Reads the whole catalog.
pub async fn catalog(db: &PgPool) -> Result<Catalog, sqlx::Error> {
    let concerts = sqlx::query!(
        "SELECT id, name, description, location, date, sales_open_at, sales_close_at,
                admit_per_second, shard
         FROM concerts ORDER BY date, id"
    )
    .fetch_all(db)
    .await?;
    let tiers = sqlx::query!(
        "SELECT id, concert_id, name, price, total_quantity FROM ticket_tiers
         ORDER BY concert_id, price DESC, name"
    )
    .fetch_all(db)
    .await?;
    let mut tiers_by_concert: HashMap<ConcertId, Vec<Tier>> = HashMap::new();
    for row in tiers {
        let tier = Tier {
            id: row.id.into(),
            concert_id: row.concert_id.into(),
            name: row.name,
            price: Money::new(row.price).map_err(|error| corrupt("price", error))?,
            total_quantity: u32::try_from(row.total_quantity)
                .map_err(|error| corrupt("total_quantity", error))?,
        };
        tiers_by_concert
            .entry(ConcertId::from(row.concert_id))
            .or_default()
            .push(tier);
    }
    let concerts = concerts
        .into_iter()
        .map(|row| {
            Ok(Concert {
                id: row.id.into(),
                tiers: tiers_by_concert
                    .remove(&ConcertId::from(row.id))
                    .unwrap_or_default(),
                name: row.name,
                description: row.description,
                location: row.location,
                date: row.date,
                sales_open_at: row.sales_open_at,
                sales_close_at: row.sales_close_at,
                admit_per_second: row
                    .admit_per_second
                    .map(|rate| {
                        u32::try_from(rate).map_err(|error| corrupt("admit_per_second", error))
                    })
                    .transpose()?,
                shard: Shard::new(
                    u8::try_from(row.shard).map_err(|error| corrupt("shard", error))?,
                ),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Catalog::new(concerts))
}

/// Inserts a concert and its tiers (in one statement) on `db`, inside the caller's transaction,
/// and records that `actor` created it.
pub async fn insert_concert(
    db: &mut PgConnection,
    concert: &Concert,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO concerts
             (id, name, description, location, date, sales_open_at, sales_close_at, shard,
              admit_per_second)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        concert.id.uuid(),
        concert.name,
        concert.description,
        concert.location,
        concert.date,
        concert.sales_open_at,
        concert.sales_close_at,
        i16::from(concert.shard.index()),
        concert
            .admit_per_second
            .map(|rate| i32::try_from(rate).unwrap_or(i32::MAX)),
    )
    .execute(&mut *db)
    .await?;
    let ids: Vec<Uuid> = concert.tiers.iter().map(|t| t.id.uuid()).collect();
    let names: Vec<String> = concert.tiers.iter().map(|t| t.name.clone()).collect();
    let prices: Vec<Decimal> = concert.tiers.iter().map(|t| t.price.amount()).collect();
    let totals: Vec<i32> = concert
        .tiers
        .iter()
        .map(|t| i32::try_from(t.total_quantity).unwrap_or(i32::MAX))
        .collect();
    sqlx::query!(
        "INSERT INTO ticket_tiers (id, concert_id, name, price, total_quantity)
         SELECT id, $2, name, price, total
         FROM UNNEST($1::uuid[], $3::text[], $4::numeric[], $5::int[]) AS t(id, name, price, total)",
        &ids,
        concert.id.uuid(),
        &names,
        &prices,
        &totals,
    )
    .execute(&mut *db)
    .await?;
    let tiers: Vec<_> = concert
        .tiers
        .iter()
        .map(|tier| {
            serde_json::json!({
                "id": tier.id,
                "name": tier.name,
                "price": tier.price.amount().to_string(),
                "totalQuantity": tier.total_quantity,
            })
        })
        .collect();
    let details = serde_json::json!({
        "name": concert.name,
        "date": concert.date,
        "salesOpenAt": concert.sales_open_at,
        "salesCloseAt": concert.sales_close_at,
        "admitPerSecond": concert.admit_per_second,
        "ticketTiers": tiers,
    });
    audit::append(
        db,
        Change {
            actor,
            action: "concert.created",
            target: format!("concert:{}", concert.id),
            details,
        },
    )
    .await
}

/// Moves concert `id`'s sales opening and sets or removes its waiting room (`Some(None)`);
/// `None` leaves a field as it is; records that `actor` changed it. Returns whether the concert
/// exists.
pub async fn change_sales(
    db: &PgPool,
    actor: &Actor,
    id: ConcertId,
    sales_open_at: Option<DateTime<Utc>>,
    admit_per_second: Option<Option<u32>>,
) -> Result<bool, sqlx::Error> {
    let (set_rate, rate) = match admit_per_second {
        None => (false, None),
        Some(rate) => (
            true,
            rate.map(|rate| i32::try_from(rate).unwrap_or(i32::MAX)),
        ),
    };
    let mut tx = db.begin().await?;
    let updated = sqlx::query!(
        "UPDATE concerts SET sales_open_at = COALESCE($2, sales_open_at),
             admit_per_second = CASE WHEN $3 THEN $4 ELSE admit_per_second END
         WHERE id = $1",
        id.uuid(),
        sales_open_at,
        set_rate,
        rate,
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let mut details = serde_json::Map::new();
    if let Some(opens) = sales_open_at {
        details.insert("salesOpenAt".to_owned(), serde_json::json!(opens));
    }
    if let Some(rate) = admit_per_second {
        details.insert("admitPerSecond".to_owned(), serde_json::json!(rate));
    }
    audit::append(
        &mut tx,
        Change {
            actor,
            action: "concert.changed",
            target: format!("concert:{id}"),
            details: details.into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Takes the transaction lock `key`, waiting for whoever holds it.
pub async fn lock_for_transaction(db: &mut PgConnection, key: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1) AS locked", key)
        .fetch_one(db)
        .await?;
    Ok(())
}

/// Whether any concert exists.
pub async fn has_concerts(db: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM concerts) AS "exists!""#)
        .fetch_one(db)
        .await
}
