//! Reconciliation: for every tier, `available (Redis) + pending (Redis) + confirmed (Postgres)`
//! must equal the tier's total. Tiers missing from Redis are rebuilt from Postgres first.
//!
//! Redis is read before Postgres, so a booking settling between the two reads counts twice and
//! shows as a drift of minus its quantity for one check; only a drift seen in two checks in a
//! row is reported.

use std::collections::HashMap;

use fred::prelude::Pool;
use sqlx::PgPool;
use uuid::Uuid;

use booking::keys::{Keyspace, Shard};
use booking::stock::{self, Counter, StockError, TierRef};

/// One tier's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierBalance {
    pub tier_id: Uuid,
    pub total: i64,
    pub available: i64,
    pub pending: i64,
    pub confirmed: i64,
}

impl TierBalance {
    /// Tickets unaccounted for: positive when some went missing, negative when oversold.
    pub fn drift(&self) -> i64 {
        self.total - self.available - self.pending - self.confirmed
    }
}

/// Checks every tier, rebuilding those Redis lacks first.
pub async fn check(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
) -> Result<Vec<TierBalance>, StockError> {
    let rows: Vec<(Uuid, Uuid, i16, i32)> = sqlx::query_as(
        "SELECT t.id, t.concert_id, c.shard, t.total_quantity \
         FROM ticket_tiers t JOIN concerts c ON c.id = t.concert_id ORDER BY c.date, t.id",
    )
    .fetch_all(db)
    .await?;
    let tiers: Vec<TierRef> = rows
        .iter()
        .filter_map(|(tier_id, concert_id, shard, _)| {
            Some(TierRef {
                shard: Shard::new(u8::try_from(*shard).ok()?),
                concert_id: *concert_id,
                tier_id: *tier_id,
            })
        })
        .collect();
    stock::rebuild_missing(redis, db, keys, &tiers).await?;
    let located = || tiers.iter().map(|tier| (tier.shard, tier.tier_id));
    let available = stock::read(redis, keys, Counter::Available, located()).await?;
    let pending = stock::read(redis, keys, Counter::Pending, located()).await?;
    let confirmed: HashMap<Uuid, i64> = sqlx::query_as(
        "SELECT ticket_tier_id, SUM(quantity)::int8 FROM bookings \
         WHERE status = 'confirmed' GROUP BY ticket_tier_id",
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    Ok(rows
        .into_iter()
        .map(|(tier_id, _, _, total)| TierBalance {
            tier_id,
            total: i64::from(total),
            available: available.get(&tier_id).copied().flatten().unwrap_or(0),
            pending: pending.get(&tier_id).copied().flatten().unwrap_or(0),
            confirmed: confirmed.get(&tier_id).copied().unwrap_or(0),
        })
        .collect())
}

/// Remembers the last check, so that only a drift seen twice in a row is reported.
#[derive(Debug, Default)]
pub struct DriftWatch {
    last: HashMap<Uuid, i64>,
}

impl DriftWatch {
    /// Takes in a check; returns the tiers whose drift persisted since the previous one.
    pub fn observe(&mut self, balances: &[TierBalance]) -> Vec<TierBalance> {
        let mut persistent = Vec::new();
        let mut current = HashMap::with_capacity(balances.len());
        for balance in balances {
            let drift = balance.drift();
            let confirmed = drift != 0 && self.last.get(&balance.tier_id) == Some(&drift);
            crate::metrics::stock_drift(balance.tier_id, if confirmed { drift } else { 0 });
            if confirmed {
                persistent.push(balance.clone());
            }
            current.insert(balance.tier_id, drift);
        }
        self.last = current;
        persistent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(tier_id: Uuid, available: i64) -> TierBalance {
        TierBalance {
            tier_id,
            total: 10,
            available,
            pending: 2,
            confirmed: 3,
        }
    }

    #[test]
    fn only_a_drift_seen_twice_is_reported() {
        let tier = Uuid::new_v4();
        let mut watch = DriftWatch::default();
        assert!(watch.observe(&[balance(tier, 5)]).is_empty(), "balanced");
        assert!(
            watch.observe(&[balance(tier, 4)]).is_empty(),
            "first sighting"
        );
        let reported = watch.observe(&[balance(tier, 4)]);
        assert_eq!(
            reported.iter().map(TierBalance::drift).collect::<Vec<_>>(),
            [1]
        );
        assert!(watch.observe(&[balance(tier, 5)]).is_empty(), "healed");
    }
}
