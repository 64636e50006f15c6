//! Stock in Redis, seen from outside the scripts: reading the per-tier counters, and the plain
//! messages the scripts publish on the stock and booking-status channels.

use std::collections::HashMap;

use domain::ids::{BookingId, ConcertId, Shard, TierId};
use domain::record::BookingStatus;
use fred::prelude::{KeysInterface, Pool, PubsubInterface};
use futures::future::try_join_all;

use crate::keys::Keyspace;

/// A tier and where its keys live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierRef {
    pub shard: Shard,
    pub concert_id: ConcertId,
    pub tier_id: TierId,
}

/// Which per-tier counter to read.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// Tickets still available.
    Available,
    /// Tickets in bookings accepted but not yet settled.
    Pending,
}

/// The counter of each `(shard, tier id)`; `None` where Redis holds no such key. One MGET per
/// shard, since only keys of one shard share a cluster slot.
pub async fn read(
    redis: &Pool,
    keys: &Keyspace,
    counter: Counter,
    tiers: impl IntoIterator<Item = (Shard, TierId)>,
) -> Result<HashMap<TierId, Option<i64>>, fred::error::Error> {
    let mut by_shard: HashMap<Shard, Vec<TierId>> = HashMap::new();
    for (shard, tier_id) in tiers {
        by_shard.entry(shard).or_default().push(tier_id);
    }
    let reads = by_shard.into_iter().map(|(shard, tier_ids)| async move {
        let names: Vec<String> = tier_ids
            .iter()
            .map(|id| match counter {
                Counter::Available => keys.stock(shard, *id),
                Counter::Pending => keys.pending(shard, *id),
            })
            .collect();
        let counts: Vec<Option<i64>> = redis.mget(names).await?;
        Ok::<_, fred::error::Error>(tier_ids.into_iter().zip(counts))
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

/// The stock message without its count: the scripts append the count after every change.
pub fn message_prefix(concert_id: ConcertId, tier_id: TierId) -> String {
    format!("{concert_id} {tier_id} ")
}

/// A stock change as published: `<concertId> <tierId> <available>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockChange {
    pub concert_id: ConcertId,
    pub tier_id: TierId,
    pub available: i64,
}

impl StockChange {
    pub fn parse(message: &str) -> Option<Self> {
        let mut parts = message.split(' ');
        let change = Self {
            concert_id: parts.next()?.parse().ok()?,
            tier_id: parts.next()?.parse().ok()?,
            available: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(change)
    }
}

/// A booking status change as published: `<bookingId> <status>`.
pub fn status_message(booking_id: BookingId, status: BookingStatus) -> String {
    format!("{booking_id} {status}")
}

/// The booking of a status message.
pub fn parse_status_message(message: &str) -> Option<BookingId> {
    let (id, status) = message.split_once(' ')?;
    status.parse::<BookingStatus>().ok()?;
    id.parse().ok()
}

/// Publishes a stock change for live clients, as the scripts do.
pub async fn publish(
    redis: &Pool,
    keys: &Keyspace,
    concert_id: ConcertId,
    tier_id: TierId,
    available: i64,
) -> Result<(), fred::error::Error> {
    let message = format!("{}{available}", message_prefix(concert_id, tier_id));
    redis.next().publish(keys.stock_channel(), message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back() {
        let (concert_id, tier_id) = (uuid::Uuid::new_v4().into(), uuid::Uuid::new_v4().into());
        let message = format!("{}42", message_prefix(concert_id, tier_id));
        assert_eq!(
            StockChange::parse(&message),
            Some(StockChange {
                concert_id,
                tier_id,
                available: 42
            })
        );
        assert_eq!(StockChange::parse("nope 1 2"), None);
        let id = BookingId::new(Shard::new(0));
        assert_eq!(
            parse_status_message(&status_message(id, BookingStatus::Failed)),
            Some(id)
        );
        assert_eq!(parse_status_message(&format!("{id} maybe")), None);
    }
}
