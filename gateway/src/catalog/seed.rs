//! The demo catalog, inserted when `SEED_DEMO=true` and the catalog is empty.

use chrono::{DateTime, Duration, DurationRound, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use domain::ids::{ConcertId, TierId};
use domain::money::Money;
use pg_store::audit::Actor;
use redis_store::keys::Keyspace;
use rust_decimal::Decimal;

use super::model::{Concert, Tier};
use super::store;

/// Serializes seeding between gateways starting together (any constant unique to this use).
const SEED_LOCK: i64 = 0x7469_785f_7365_6564;

/// `(name, price in dollars, total)` of each demo tier.
const DEMO_TIERS: [(&str, u32, u32); 3] = [
    ("VIP", 100, 100),
    ("Front Row", 50, 200),
    ("General Admission", 10, 1000),
];

fn demo_concert(
    keys: &Keyspace,
    name: &str,
    description: &str,
    location: &str,
    date: DateTime<Utc>,
) -> Concert {
    let id = ConcertId::from(Uuid::now_v7());
    Concert {
        id,
        name: name.to_owned(),
        description: description.to_owned(),
        location: location.to_owned(),
        date,
        sales_open_at: Utc::now(),
        sales_close_at: date,
        admit_per_second: None,
        shard: keys.shard_for_new_concert(id),
        tiers: DEMO_TIERS
            .iter()
            .map(|(tier, price, total)| Tier {
                id: TierId::from(Uuid::now_v7()),
                concert_id: id,
                name: (*tier).to_owned(),
                price: Money::new(Decimal::from(*price)).expect("demo prices are valid money"),
                total_quantity: *total,
            })
            .collect(),
    }
}

/// Inserts the demo concerts if there are no concerts at all; returns whether it did.
pub async fn seed_if_empty(db: &PgPool, keys: &Keyspace) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    store::lock_for_transaction(&mut tx, SEED_LOCK).await?;
    if store::has_concerts(&mut tx).await? {
        return Ok(false);
    }
    let hour = Utc::now()
        .duration_trunc(Duration::hours(1))
        .unwrap_or_else(|_| Utc::now());
    let concerts = [
        demo_concert(
            keys,
            "The Galactic Symphony",
            "An orchestral journey through the cosmos, with lights to match.",
            "Royal Albert Hall, London",
            hour + Duration::days(30),
        ),
        demo_concert(
            keys,
            "Summer Vibes Festival",
            "A day of sun, dance and live bands on the Great Lawn.",
            "Central Park, New York",
            hour + Duration::days(60),
        ),
    ];
    for concert in &concerts {
        store::insert_concert(&mut tx, concert, &Actor::system("seed")).await?;
    }
    tx.commit().await?;
    tracing::info!("demo catalog seeded");
    Ok(true)
}
