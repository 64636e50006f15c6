//! Counting the bookings Redis lost (DESIGN invariant 7): this gateway remembers what it answered
//! 202 for the last two minutes, and when a shard's epoch moves on (Redis lost or may have lost its
//! data), it looks for each booking it accepted there before: in Redis (carried over, or held by a
//! settler and accepted again) or in Postgres (settled). One found nowhere was acknowledged and
//! then lost before any settler read it: it is counted and logged with its id.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::KeysInterface;
use tokio::time::Instant;

use domain::ids::{BookingId, Shard};

use fred::prelude::Pool;
use sqlx::PgPool;

use redis_store::keys::Keyspace;

/// How long an accepted booking is remembered, and how many at most.
const KEEP: Duration = Duration::from_secs(120);
const CAPACITY: usize = 500_000;
/// Bookings looked up per round trip.
const PAGE: usize = 1_000;

/// Bookings accepted lately: `(when, shard, id)`, oldest first.
#[derive(Debug, Default)]
pub struct AcceptedLog(Mutex<VecDeque<(Instant, Shard, BookingId)>>);

impl AcceptedLog {
    pub fn record(&self, shard: Shard, id: BookingId) {
        let now = Instant::now();
        let mut recent = self.lock();
        while recent
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > KEEP || recent.len() >= CAPACITY)
        {
            recent.pop_front();
        }
        recent.push_back((now, shard, id));
    }

    /// Bookings accepted on `shard` before `until`.
    fn before(&self, shard: Shard, until: Instant) -> Vec<BookingId> {
        self.lock()
            .iter()
            .filter(|(at, on, _)| *on == shard && *at < until)
            .map(|(_, _, id)| *id)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Shard, BookingId)>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Where a booking could be: what looking for lost ones needs.
#[derive(Debug, Clone)]
pub struct Places {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub accepted: Arc<AcceptedLog>,
}

/// After `shard`'s epoch moved on at `moved_at`: waits `delay` (for settlers to finish or
/// re-accept what they held), then counts and logs the bookings accepted there before that are
/// nowhere. Returns them.
pub async fn count_lost(
    places: Places,
    shard: Shard,
    moved_at: Instant,
    delay: Duration,
) -> Vec<BookingId> {
    tokio::time::sleep(delay).await;
    let accepted = places.accepted.before(shard, moved_at);
    let mut lost = Vec::new();
    for chunk in accepted.chunks(PAGE) {
        match nowhere(&places, shard, chunk).await {
            Ok(missing) => lost.extend(missing),
            Err(error) => {
                tracing::warn!(%shard, %error, "looking for lost bookings failed");
                return lost;
            }
        }
    }
    for id in &lost {
        tracing::error!(booking_id = %id, %shard, "booking accepted, then lost with Redis' data");
    }
    tracing::warn!(
        %shard,
        accepted = accepted.len(),
        lost = lost.len(),
        "bookings accepted before the shard's recovery checked"
    );
    crate::metrics::lost(lost.len() as u64);
    lost
}

/// Those of `ids` in neither Redis nor Postgres.
async fn nowhere(
    places: &Places,
    shard: Shard,
    ids: &[BookingId],
) -> anyhow::Result<Vec<BookingId>> {
    let settled = pg_store::known(&places.db, ids).await?;
    let client = places.redis.next();
    let pipeline = client.pipeline();
    for id in ids {
        let _: () = pipeline.exists(places.keys.booking(shard, *id)).await?;
    }
    let in_redis: Vec<i64> = pipeline.all().await?;
    Ok(ids
        .iter()
        .zip(in_redis)
        .filter(|(id, exists)| *exists == 0 && !settled.contains(id))
        .map(|(id, _)| *id)
        .collect())
}
