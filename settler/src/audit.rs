//! The invariant checker: what `settler audit` prints, the periodic check exports, and the tests
//! call after every fault.
//!
//! - Every tier: `available (Redis) + pending (Redis) + confirmed (Postgres) = total`, confirmed
//!   never above total, no count below zero, its stock present.
//! - Every shard: whole (its epoch set on the server answering now), and no booking unsettled for
//!   longer than `stuck_after`: a booking that will never settle holds its tickets as pending, which
//!   the balance above cannot see.
//!
//! Redis is read before Postgres, so a booking settling between the two reads counts twice and
//! shows as a drift of minus its quantity for one check: the periodic check reports only a drift
//! seen twice in a row, and `settler audit` checks twice, a second apart.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::Pool;
use sqlx::PgPool;

use domain::ids::{Shard, TierId};
use redis_store::error::StoreError;
use redis_store::keys::{Keyspace, SETTLER_GROUP};
use redis_store::scripts::guard::{GuardScript, ShardState};
use redis_store::scripts::trim::{Mode, TrimScript};
use redis_store::stock::{self, Counter};

use crate::store;

/// One tier's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierBalance {
    pub tier_id: TierId,
    pub shard: Shard,
    pub total: i64,
    /// `None` when Redis holds no stock for the tier.
    pub available: Option<i64>,
    pub pending: i64,
    pub confirmed: i64,
}

impl TierBalance {
    /// Tickets unaccounted for: positive when some went missing, negative when oversold.
    pub fn drift(&self) -> i64 {
        self.total - self.available.unwrap_or(0) - self.pending - self.confirmed
    }
}

/// One shard's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHealth {
    pub shard: Shard,
    pub whole: bool,
    /// Entries delivered and not acknowledged, plus those not delivered yet (when reported).
    pub unsettled: i64,
    /// How long the oldest unsettled booking has waited.
    pub oldest_unsettled: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub tiers: Vec<TierBalance>,
    pub shards: Vec<ShardHealth>,
    pub stuck_after: Duration,
}

impl Audit {
    /// Every broken invariant, in words; empty when the books balance.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for tier in &self.tiers {
            let id = tier.tier_id;
            if tier.available.is_none() {
                problems.push(format!("tier {id}: no stock in Redis"));
            }
            if tier.drift() != 0 {
                problems.push(format!("tier {id}: drift {}", tier.drift()));
            }
            if tier.confirmed > tier.total {
                problems.push(format!(
                    "tier {id}: {} confirmed of {}",
                    tier.confirmed, tier.total
                ));
            }
            if tier.available.is_some_and(|available| available < 0) || tier.pending < 0 {
                problems.push(format!("tier {id}: a count below zero"));
            }
        }
        for shard in &self.shards {
            if !shard.whole {
                problems.push(format!("shard {}: not whole", shard.shard));
            }
            if let Some(waited) = shard.oldest_unsettled
                && waited > self.stuck_after
            {
                problems.push(format!(
                    "shard {}: a booking unsettled for {} s",
                    shard.shard,
                    waited.as_secs()
                ));
            }
        }
        problems
    }
}

/// Reads the books of every tier and the health of every shard.
pub async fn run(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
    stuck_after: Duration,
) -> Result<Audit, StoreError> {
    let tiers: Vec<(TierId, Shard, i64)> = store::tiers(db)
        .await?
        .into_iter()
        .filter_map(|tier| {
            Some((
                tier.id,
                Shard::new(u8::try_from(tier.shard).ok()?),
                i64::from(tier.total_quantity),
            ))
        })
        .collect();
    let located = || tiers.iter().map(|(id, shard, _)| (*shard, *id));
    let available = stock::read(redis, keys, Counter::Available, located()).await?;
    let pending = stock::read(redis, keys, Counter::Pending, located()).await?;
    let confirmed = store::confirmed_per_tier(db).await?;
    let tiers = tiers
        .into_iter()
        .map(|(tier_id, shard, total)| TierBalance {
            tier_id,
            shard,
            total,
            available: available.get(&tier_id).copied().flatten(),
            pending: pending.get(&tier_id).copied().flatten().unwrap_or(0),
            confirmed: confirmed.get(&tier_id).copied().unwrap_or(0),
        })
        .collect();

    let (guard, trim) = (GuardScript::default(), TrimScript::default());
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let mut shards = Vec::new();
    for shard in keys.shards() {
        let state = guard.check(redis.next(), keys, shard).await?.state;
        let depth = trim
            .run(redis.next(), keys, shard, SETTLER_GROUP, Mode::Report)
            .await?;
        shards.push(ShardHealth {
            shard,
            whole: matches!(state, ShardState::Whole { .. }),
            unsettled: depth.pending + depth.lag.unwrap_or(0),
            oldest_unsettled: depth
                .oldest_unsettled_ms
                .map(|at| Duration::from_millis(now_ms.saturating_sub(at))),
        });
    }
    Ok(Audit {
        tiers,
        shards,
        stuck_after,
    })
}

/// Remembers the last check, so that only a drift seen twice in a row is reported.
#[derive(Debug, Default)]
pub struct DriftWatch {
    last: HashMap<TierId, i64>,
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
    use uuid::Uuid;

    fn balance(tier_id: TierId, available: i64) -> TierBalance {
        TierBalance {
            tier_id,
            shard: Shard::new(0),
            total: 10,
            available: Some(available),
            pending: 2,
            confirmed: 3,
        }
    }

    #[test]
    fn only_a_drift_seen_twice_is_reported() {
        let tier = TierId::from(Uuid::new_v4());
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

    #[test]
    fn every_broken_invariant_is_named() {
        let tier = TierId::from(Uuid::new_v4());
        let oversold = TierBalance {
            confirmed: 11,
            available: Some(-1),
            pending: 0,
            ..balance(tier, 0)
        };
        let audit = Audit {
            tiers: vec![balance(tier, 5), oversold],
            shards: vec![
                ShardHealth {
                    shard: Shard::new(0),
                    whole: true,
                    unsettled: 1,
                    oldest_unsettled: Some(Duration::from_secs(1)),
                },
                ShardHealth {
                    shard: Shard::new(1),
                    whole: false,
                    unsettled: 3,
                    oldest_unsettled: Some(Duration::from_secs(600)),
                },
            ],
            stuck_after: Duration::from_secs(300),
        };
        let problems = audit.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("confirmed of 10"));
        assert!(problems[1].contains("below zero"));
        assert!(problems[2].contains("not whole"));
        assert!(problems[3].contains("unsettled for 600 s"));
    }
}
