//! What the catalog holds: concerts and their tiers, as one immutable snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use domain::ids::{ConcertId, Shard, TierId};
use domain::money::Money;
use redis_store::stock::TierRef;

#[derive(Debug, Clone, PartialEq)]
pub struct Concert {
    pub id: ConcertId,
    pub name: String,
    pub description: String,
    pub location: String,
    pub date: DateTime<Utc>,
    /// Bookings are taken from this moment...
    pub sales_open_at: DateTime<Utc>,
    /// ...until this one.
    pub sales_close_at: DateTime<Utc>,
    /// Admissions per second of its waiting room; `None` when it has none.
    pub admit_per_second: Option<u32>,
    pub shard: Shard,
    pub tiers: Vec<Tier>,
}

impl Concert {
    /// This concert's tier ids with its shard, for stock reads.
    pub fn tier_keys(&self) -> impl Iterator<Item = (Shard, TierId)> + '_ {
        self.tiers.iter().map(|tier| (self.shard, tier.id))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub id: TierId,
    pub concert_id: ConcertId,
    pub name: String,
    pub price: Money,
    pub total_quantity: u32,
}

/// A tier with what booking it needs to know about its concert.
#[derive(Debug, Clone)]
pub struct TierEntry {
    pub concert: Arc<Concert>,
    pub tier: Tier,
}

/// One immutable snapshot of the catalog; replaced whole on refresh.
#[derive(Debug, Default)]
pub struct Catalog {
    pub(super) concerts: Vec<Arc<Concert>>,
    tiers: HashMap<TierId, TierEntry>,
}

impl Catalog {
    /// Concerts by date; each one's tiers dearest first, the order Postgres lists them in, so a
    /// concert just created shows its tiers as it will after every refresh.
    pub fn new(mut concerts: Vec<Concert>) -> Self {
        concerts.sort_by(|a, b| a.date.cmp(&b.date).then(a.id.cmp(&b.id)));
        for concert in &mut concerts {
            concert
                .tiers
                .sort_by(|a, b| b.price.cmp(&a.price).then_with(|| a.name.cmp(&b.name)));
        }
        let concerts: Vec<Arc<Concert>> = concerts.into_iter().map(Arc::new).collect();
        let tiers = concerts
            .iter()
            .flat_map(|concert| {
                concert.tiers.iter().map(|tier| {
                    let entry = TierEntry {
                        concert: Arc::clone(concert),
                        tier: tier.clone(),
                    };
                    (tier.id, entry)
                })
            })
            .collect();
        Self { concerts, tiers }
    }

    pub fn concerts(&self) -> &[Arc<Concert>] {
        &self.concerts
    }

    pub fn concert(&self, id: ConcertId) -> Option<&Arc<Concert>> {
        self.concerts.iter().find(|concert| concert.id == id)
    }

    pub fn tier(&self, id: TierId) -> Option<&TierEntry> {
        self.tiers.get(&id)
    }

    /// Every tier id with its shard, for stock reads.
    pub fn tiers(&self) -> impl Iterator<Item = (Shard, TierId)> + '_ {
        self.concerts.iter().flat_map(|concert| concert.tier_keys())
    }

    /// Every tier with where its keys live, for stock rebuilds.
    pub fn tier_refs(&self) -> Vec<TierRef> {
        self.concerts
            .iter()
            .flat_map(|concert| {
                concert.tiers.iter().map(|tier| TierRef {
                    shard: concert.shard,
                    concert_id: concert.id,
                    tier_id: tier.id,
                })
            })
            .collect()
    }

    /// This catalog with `concert` added (or replaced).
    pub fn with(&self, concert: Concert) -> Self {
        let mut concerts: Vec<Concert> = self
            .concerts
            .iter()
            .filter(|known| known.id != concert.id)
            .map(|known| known.as_ref().clone())
            .collect();
        concerts.push(concert);
        Self::new(concerts)
    }
}
