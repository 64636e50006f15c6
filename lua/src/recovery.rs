//! Surviving Redis losing its data (DESIGN invariant 7).
//!
//! Each shard has an epoch, kept twice: `{p:s}:epoch` in Redis (with the `run_id` of the server it
//! was set on) and `shard_epochs` in Postgres. Every script on a shard refuses while its epoch key
//! is absent, and the reservation script stamps each stream entry with the epoch it was accepted
//! in. A settler commits a confirmation only while its entry's epoch is the one in Postgres (read
//! `FOR SHARE` in the same transaction), so once recovery has moved the epoch on, nothing reserved
//! before the loss can be confirmed against stock that no longer counts it: such a booking has to
//! be reserved again in the new epoch (through the same script) or fail.
//!
//! A shard needs recovery when its epoch key is gone (Redis restarted empty, or the shard was
//! never initialised) or was set on another server (Redis restarted from an older file, or failed
//! over to a replica that missed the last writes; `guard.lua` closes such a shard the moment it
//! sees it). A restarted server has an empty script cache, so the first script anyone runs there
//! answers NOSCRIPT, and the guard looks at every shard before any script that changes stock is
//! loaded again (`redis_store::scripts`): nothing is booked on a server nobody checked. Recovery runs
//! in any process that notices, one at a time per shard (a Postgres advisory lock), and is safe to
//! repeat:
//!
//! 1. close the shard (delete the epoch key): bookings on it answer 503, the others go on;
//! 2. move the epoch on in Postgres, which waits for confirmations being committed;
//! 3. carry the bookings still in the stream that Postgres has not settled into the new epoch
//!    (a new stream entry each) and mark the settled ones final, so their late outcome changes
//!    nothing;
//! 4. rebuild every tier's stock (total - confirmed - carried), the pending counts, customers'
//!    held counts, and the idempotency records of the last 24 hours from Postgres;
//! 5. commit, then open the shard with the new epoch and this server's run id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::ids::{BookingId, ConcertId, Shard, TierId};
use domain::money::Money;
use domain::record::{BookingStatus, Packed, field, fingerprint, idempotency_record};
use domain::values::{Email, IdempotencyKey, Quantity};
use fred::prelude::{Client, ClientLike, HashesInterface, KeysInterface, Pool, StreamsInterface};
use fred::types::{Expiration, SetOptions};
use pg_store::{LockLasts, TierSales};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::keys::{
    HELD_GRACE_SECONDS, IDEMPOTENCY_TTL_SECONDS, Keyspace, RoomKey, SETTLER_GROUP, held_until,
};
use crate::scripts::guard::{GuardScript, ShardState};
use crate::scripts::{ScriptError, Verify};
use crate::stock::{self, Counter, TierRef};

/// First key of the advisory lock that serialises recovery of a shard (the shard is the second).
const LOCK_CLASS: i32 = 0x7469_7872;
/// Entries read, keys written, or ids looked up per round trip.
const PAGE: usize = 1_000;

/// Why a shard was recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing of it was left: Redis lost everything (or the shard is new).
    Lost,
    /// Closed: its epoch was set on another server, so Redis may have lost the last writes (or
    /// a recovery was cut off).
    Restarted,
}

impl Cause {
    /// Its name as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Restarted => "restarted",
        }
    }
}

/// What one recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub shard: Shard,
    pub cause: Cause,
    pub epoch: u64,
    /// Tiers whose stock was rebuilt.
    pub tiers: usize,
    /// Unsettled bookings still in the stream, carried into the new epoch.
    pub carried: usize,
    /// Bookings still in the stream that Postgres had settled.
    pub settled: usize,
    pub idempotency_records: usize,
    pub held_counts: usize,
    /// Waiting-room admissions written back as spent.
    pub spent_admissions: usize,
    pub took: Duration,
}

/// The result of asking for a shard's recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The shard is whole (another process recovered it first).
    Whole {
        epoch: u64,
    },
    /// Another process is recovering it now.
    Busy,
    Recovered(Report),
}

/// Recovers `shard` unless it is whole or another process is at it.
pub async fn recover(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
    shard: Shard,
) -> Result<Recovery, StoreError> {
    let started = Instant::now();
    // A connection of its own, closed at the end: the lock is held until the shard is open
    // again, and is released with the connection if this process dies first.
    let mut lock = db.acquire().await?.detach();
    let locked = pg_store::try_lock(&mut lock, LOCK_CLASS, shard, LockLasts::Session).await?;
    if !locked {
        return Ok(Recovery::Busy);
    }
    let recovered = recover_locked(redis, &mut lock, keys, shard, started).await;
    // Closing the connection releases the lock whatever happened.
    let _ = sqlx::Connection::close(lock).await;
    recovered
}

async fn recover_locked(
    redis: &Pool,
    lock: &mut sqlx::PgConnection,
    keys: &Keyspace,
    shard: Shard,
    started: Instant,
) -> Result<Recovery, StoreError> {
    let client = redis.next();
    let found = GuardScript::default().check(client, keys, shard).await?;
    let cause = match found.state {
        ShardState::Whole { epoch } => return Ok(Recovery::Whole { epoch }),
        ShardState::Lost => Cause::Lost,
        ShardState::Closed => Cause::Restarted,
    };
    tracing::warn!(%shard, ?cause, "shard recovering: its bookings wait until it is rebuilt");
    let _: i64 = client.del(keys.epoch(shard)).await?;
    let mut tx = sqlx::Connection::begin(lock).await?;
    let epoch = pg_store::next_epoch(&mut tx, shard).await?;
    let epoch = u64::try_from(epoch).unwrap_or_default();
    ensure_group(client, keys, shard).await?;

    let survivors = survivors(client, keys, shard).await?;
    let outcomes = settled_outcomes(&mut tx, &survivors).await?;
    let (carried, settled): (Vec<&Packed>, Vec<&Packed>) = survivors
        .iter()
        .partition(|packed| !outcomes.contains_key(&packed.booking.id));
    mark_final(client, keys, shard, &settled, &outcomes).await?;
    carry(client, keys, shard, epoch, &carried).await?;
    let rebuild = Rebuild {
        client,
        keys,
        shard,
        carried: &carried,
    };
    let tiers = rebuild.stock(&mut tx).await?;
    let held_counts = rebuild.held(&mut tx).await?;
    let idempotency_records = rebuild.idempotency(&mut tx).await?;
    let spent_admissions = rebuild.spent_admissions(&mut tx).await?;
    // The new epoch is durable before the shard opens in it, and the shard opens before the
    // lock is released: another recovery can only start from an open shard, or a closed one.
    tx.commit().await?;
    let _: () = client
        .mset(vec![
            (keys.run_id(shard), found.run_id),
            (keys.epoch(shard), epoch.to_string()),
        ])
        .await?;
    let report = Report {
        shard,
        cause,
        epoch,
        tiers,
        carried: carried.len(),
        settled: settled.len(),
        idempotency_records,
        held_counts,
        spent_admissions,
        took: started.elapsed(),
    };
    tracing::warn!(?report, "shard recovered");
    Ok(Recovery::Recovered(report))
}

/// The settlers' group on the shard's stream (and the stream), unless it exists.
async fn ensure_group(client: &Client, keys: &Keyspace, shard: Shard) -> Result<(), StoreError> {
    let created: Result<(), fred::error::Error> = client
        .xgroup_create(keys.stream(shard), SETTLER_GROUP, "0", true)
        .await;
    match created {
        Err(error) if !error.details().starts_with("BUSYGROUP") => Err(error.into()),
        _ => Ok(()),
    }
}

/// Every booking still in the shard's stream, once each. The stream is trimmed only behind its
/// oldest unacknowledged entry, so it holds every booking a settler has not finished; those it
/// holds that Postgres has settled are told apart by [`settled_outcomes`]. Entries that do not
/// read back were not written by the reservation script and hold no stock.
async fn survivors(
    client: &Client,
    keys: &Keyspace,
    shard: Shard,
) -> Result<Vec<Packed>, StoreError> {
    let stream = keys.stream(shard);
    let mut seen = HashSet::new();
    let mut bookings = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let page: Vec<(String, HashMap<String, String>)> = client
            .xrange(stream.as_str(), start.as_str(), "+", Some(PAGE as u64))
            .await?;
        let Some((last, _)) = page.last() else { break };
        start = format!("({last}");
        let full = page.len() == PAGE;
        for (_, fields) in page {
            let packed = fields.get(field::PACKED).map(|b| Packed::from_json(b));
            if let Some(Ok(packed)) = packed
                && seen.insert(packed.booking.id)
            {
                bookings.push(packed);
            }
        }
        if !full {
            break;
        }
    }
    Ok(bookings)
}

/// The outcome Postgres holds for each of `bookings` it has settled (a row, or a dead letter).
async fn settled_outcomes(
    tx: &mut Transaction<'_, Postgres>,
    bookings: &[Packed],
) -> Result<HashMap<BookingId, (BookingStatus, Option<String>)>, StoreError> {
    let mut outcomes = HashMap::new();
    for chunk in bookings.chunks(PAGE) {
        let ids: Vec<BookingId> = chunk.iter().map(|packed| packed.booking.id).collect();
        outcomes.extend(pg_store::outcomes(tx, &ids).await?);
    }
    Ok(outcomes)
}

/// Marks bookings Postgres has settled as final in Redis, so applying their outcome later
/// changes no count: the counts are rebuilt with them settled.
async fn mark_final(
    client: &Client,
    keys: &Keyspace,
    shard: Shard,
    settled: &[&Packed],
    outcomes: &HashMap<BookingId, (BookingStatus, Option<String>)>,
) -> Result<(), StoreError> {
    for chunk in settled.chunks(PAGE) {
        let pipeline = client.pipeline();
        for packed in chunk {
            let id = packed.booking.id;
            let Some((status, reason)) = outcomes.get(&id) else {
                continue;
            };
            let mut fields = vec![
                (field::PACKED, packed.to_json()),
                (field::STATUS, status.as_str().to_owned()),
            ];
            if let Some(reason) = reason {
                fields.push((field::REASON, reason.clone()));
            }
            let _: () = HashesInterface::hset(&pipeline, keys.booking(shard, id), fields).await?;
        }
        let _: Vec<fred::types::Value> = pipeline.all().await?;
    }
    Ok(())
}

/// Gives every unsettled booking a record and a stream entry of the new epoch: its entry of the
/// old epoch can no longer confirm it, this one can.
async fn carry(
    client: &Client,
    keys: &Keyspace,
    shard: Shard,
    epoch: u64,
    carried: &[&Packed],
) -> Result<(), StoreError> {
    for chunk in carried.chunks(PAGE) {
        let pipeline = client.pipeline();
        for packed in chunk {
            let json = packed.to_json();
            let _: () = HashesInterface::hset(
                &pipeline,
                keys.booking(shard, packed.booking.id),
                vec![
                    (field::PACKED, json.clone()),
                    (field::STATUS, BookingStatus::Pending.as_str().to_owned()),
                ],
            )
            .await?;
            let _: () = pipeline
                .xadd(
                    keys.stream(shard),
                    false,
                    None,
                    "*",
                    vec![(field::PACKED, json), (field::EPOCH, epoch.to_string())],
                )
                .await?;
        }
        let _: Vec<fred::types::Value> = pipeline.all().await?;
    }
    Ok(())
}

/// What a recovery rebuilds the shard's counts and records from: Postgres (read in the
/// recovery's transaction) and the bookings it carried into the new epoch.
#[derive(Clone, Copy)]
struct Rebuild<'a> {
    client: &'a Client,
    keys: &'a Keyspace,
    shard: Shard,
    carried: &'a [&'a Packed],
}

impl Rebuild<'_> {
    /// Every tier's stock (total - confirmed - carried) and pending count. Returns the tiers.
    async fn stock(&self, tx: &mut Transaction<'_, Postgres>) -> Result<usize, StoreError> {
        let (client, keys, shard, carried) = (self.client, self.keys, self.shard, self.carried);
        let tiers = pg_store::shard_sales(tx, shard).await?;
        let mut pending: HashMap<TierId, i64> = HashMap::new();
        for packed in carried {
            *pending.entry(packed.booking.ticket_tier_id).or_default() +=
                i64::from(packed.booking.quantity.get());
        }
        let mut counters = Vec::with_capacity(tiers.len() * 2);
        for tier in &tiers {
            let held = pending.get(&tier.tier_id).copied().unwrap_or(0);
            let available = (tier.total - tier.confirmed - held).max(0);
            counters.push((keys.stock(shard, tier.tier_id), available));
            counters.push((keys.pending(shard, tier.tier_id), held));
        }
        for chunk in counters.chunks(PAGE) {
            let _: () = client.mset(chunk.to_vec()).await?;
        }
        Ok(tiers.len())
    }

    /// Customers' held counts: confirmed tickets (Postgres) and carried ones, per concert not yet
    /// a day past. Returns how many were written.
    async fn held(&self, tx: &mut Transaction<'_, Postgres>) -> Result<usize, StoreError> {
        let (client, keys, shard, carried) = (self.client, self.keys, self.shard, self.carried);
        let rows = pg_store::held(tx, shard, HELD_GRACE_SECONDS as f64).await?;
        let now = Utc::now();
        // Per concert: each customer's tickets, and when the concert's hash expires.
        let mut held: HashMap<ConcertId, (HashMap<String, i64>, i64)> = HashMap::new();
        for row in rows {
            let until = held_until(row.concert_date, now);
            let (counts, expires) = held
                .entry(row.concert_id)
                .or_insert((HashMap::new(), until));
            *expires = (*expires).max(until);
            *counts.entry(row.user_email).or_default() += row.tickets;
        }
        for packed in carried {
            let booking = &packed.booking;
            let (counts, expires) = held
                .entry(booking.concert_id)
                .or_insert((HashMap::new(), packed.held_until));
            *expires = (*expires).max(packed.held_until);
            *counts.entry(booking.user_email.to_string()).or_default() +=
                i64::from(booking.quantity.get());
        }
        let written = held.values().map(|(counts, _)| counts.len()).sum();
        let held: Vec<_> = held.into_iter().collect();
        for chunk in held.chunks(PAGE) {
            let pipeline = client.pipeline();
            for (concert, (counts, until)) in chunk {
                let key = keys.held(shard, *concert);
                let _: () = HashesInterface::hset(&pipeline, &key, counts.clone()).await?;
                let _: () = pipeline.expire_at(&key, *until, None).await?;
            }
            let _: Vec<fred::types::Value> = pipeline.all().await?;
        }
        Ok(written)
    }

    /// The waiting-room admissions bookings spent (Postgres' and the carried ones), so that none
    /// books a second time after Redis lost them. Returns how many were written.
    async fn spent_admissions(
        &self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<usize, StoreError> {
        let (client, keys, shard, carried) = (self.client, self.keys, self.shard, self.carried);
        let rows = pg_store::spent_admissions(tx, shard, HELD_GRACE_SECONDS as f64).await?;
        let now = Utc::now();
        let from_rows = rows.into_iter().map(|row| {
            let until = held_until(row.concert_date, now);
            (row.concert_id, row.ticket_id, row.booking_id, until)
        });
        let from_carried = carried.iter().filter_map(|packed| {
            let booking = &packed.booking;
            let ticket = packed.admission?;
            Some((booking.concert_id, ticket, booking.id, packed.held_until))
        });
        let spent: Vec<_> = from_rows.chain(from_carried).collect();
        for chunk in spent.chunks(PAGE) {
            let pipeline = client.pipeline();
            for (concert, ticket, booking, until) in chunk {
                let key = keys.queue(shard, *concert, RoomKey::Spent);
                let _: () = HashesInterface::hset(
                    &pipeline,
                    &key,
                    (ticket.to_string(), booking.to_string()),
                )
                .await?;
                let _: () = pipeline.expire_at(&key, *until, None).await?;
            }
            let _: Vec<fred::types::Value> = pipeline.all().await?;
        }
        Ok(spent.len())
    }

    /// The idempotency records of the bookings of the last 24 hours, where Redis lacks them.
    async fn idempotency(&self, tx: &mut Transaction<'_, Postgres>) -> Result<usize, StoreError> {
        let (client, keys, shard, carried) = (self.client, self.keys, self.shard, self.carried);
        let rows = pg_store::recent_bookings(tx, shard, IDEMPOTENCY_TTL_SECONDS as f64).await?;
        let dead = pg_store::recent_dead_letters(tx, shard, IDEMPOTENCY_TTL_SECONDS as f64).await?;
        let now = Utc::now();
        let from_rows = rows.into_iter().filter_map(|row| {
            let print = fingerprint(
                row.ticket_tier_id,
                &Email::parse(&row.user_email).ok()?,
                Quantity::new(i64::from(row.quantity)).ok()?,
                Money::new(row.total_price).ok()?,
                row.currency.parse().ok()?,
            );
            Some((
                row.concert_id,
                IdempotencyKey::parse(&row.idempotency_key).ok()?,
                row.id,
                print,
                row.created_at,
            ))
        });
        let from_packed = carried
            .iter()
            .copied()
            .cloned()
            .chain(
                dead.iter()
                    .filter_map(|entry| Packed::from_json(entry).ok()),
            )
            .map(|packed| {
                let booking = packed.booking;
                let print = booking.fingerprint();
                (
                    booking.concert_id,
                    booking.idempotency_key,
                    booking.id,
                    print,
                    booking.created_at,
                )
            });
        let records: Vec<_> = from_rows.chain(from_packed).collect();
        for chunk in records.chunks(PAGE) {
            let pipeline = client.pipeline();
            for (concert, key, id, print, created) in chunk {
                let age = now.signed_duration_since(*created).num_seconds().max(0);
                let ttl = (IDEMPOTENCY_TTL_SECONDS as i64 - age).max(1);
                let _: () = pipeline
                    .set(
                        keys.idempotency(shard, *concert, key.as_str()),
                        idempotency_record(*id, print),
                        Some(Expiration::EX(ttl)),
                        Some(SetOptions::NX),
                        false,
                    )
                    .await?;
            }
            let _: Vec<fred::types::Value> = pipeline.all().await?;
        }
        Ok(records.len())
    }
}

/// Loads the stock of tiers that whole shards lack (a concert whose stock write failed): total
/// less confirmed (Postgres) less pending (Redis). Pending is read first, so a booking settling
/// in between counts twice: this can undersell, never oversell. Returns how many were loaded.
pub async fn load_missing(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
    tiers: &[TierRef],
) -> Result<usize, StoreError> {
    let available = stock::read(
        redis,
        keys,
        Counter::Available,
        tiers.iter().map(|t| (t.shard, t.tier_id)),
    )
    .await?;
    let mut by_shard: HashMap<Shard, Vec<TierId>> = HashMap::new();
    for tier in tiers {
        if matches!(available.get(&tier.tier_id), Some(None)) {
            by_shard.entry(tier.shard).or_default().push(tier.tier_id);
        }
    }
    let mut loaded = 0;
    for (shard, missing) in by_shard {
        let mut tx = db.begin().await?;
        let locked = pg_store::try_lock(&mut tx, LOCK_CLASS, shard, LockLasts::Transaction).await?;
        let found = GuardScript::default()
            .check(redis.next(), keys, shard)
            .await?;
        if !locked || !matches!(found.state, ShardState::Whole { .. }) {
            // Recovery rebuilds every tier of the shard.
            continue;
        }
        let pending = stock::read(
            redis,
            keys,
            Counter::Pending,
            missing.iter().map(|id| (shard, *id)),
        )
        .await?;
        let sales = pg_store::tier_sales(&mut tx, &missing).await?;
        for TierSales {
            tier_id,
            total,
            confirmed,
        } in sales
        {
            let held = pending.get(&tier_id).copied().flatten().unwrap_or(0);
            let available = (total - confirmed - held).max(0);
            let set: Option<String> = redis
                .set(
                    keys.stock(shard, tier_id),
                    available,
                    None,
                    Some(SetOptions::NX),
                    false,
                )
                .await?;
            if set.is_some() {
                loaded += 1;
                tracing::info!(%tier_id, available, "missing stock loaded from postgres");
            }
        }
    }
    Ok(loaded)
}

/// What a guard saw change on a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochChange {
    pub shard: Shard,
    /// The epoch this process knew before; 0 when it knew none.
    pub from: u64,
    pub to: u64,
    /// Set when this process did the recovery.
    pub recovered: Option<Report>,
}

/// One process's watch over every shard: which are whole (and in which epoch), and recovery of
/// those that are not, checked every second and at once when woken.
#[derive(Debug)]
pub struct ShardGuard {
    redis: Pool,
    db: PgPool,
    keys: Keyspace,
    script: GuardScript,
    /// The epoch each shard is whole in; 0 while it is not known to be whole.
    epochs: Vec<AtomicU64>,
    /// The epoch each shard was last seen whole in, kept while it is not: a change is judged
    /// against it, whoever did the recovery.
    last_seen: Vec<AtomicU64>,
    /// Changes seen by any check (the periodic one, or one before loading a script) that the
    /// periodic loop has not handed on yet.
    unreported: std::sync::Mutex<Vec<EpochChange>>,
    wake: Notify,
}

impl ShardGuard {
    pub fn new(redis: Pool, db: PgPool, keys: Keyspace) -> Self {
        let zeros = || keys.shards().map(|_| AtomicU64::new(0)).collect();
        Self {
            script: GuardScript::default(),
            epochs: zeros(),
            last_seen: zeros(),
            unreported: std::sync::Mutex::default(),
            wake: Notify::new(),
            redis,
            db,
            keys,
        }
    }

    /// The epoch `shard` was last seen whole in, if it was.
    pub fn epoch(&self, shard: Shard) -> Option<u64> {
        let epoch = self.epochs.get(usize::from(shard.index()))?;
        Some(epoch.load(Ordering::Acquire)).filter(|epoch| *epoch > 0)
    }

    /// Shards not known to be whole: recovering, or not checked since Redis stopped answering.
    pub fn not_whole(&self) -> Vec<Shard> {
        self.keys
            .shards()
            .filter(|shard| self.epoch(*shard).is_none())
            .collect()
    }

    /// Asks for a check now: a caller saw a sign of loss (a script refusing, a missing group).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn set(&self, shard: Shard, epoch: u64) -> u64 {
        self.epochs
            .get(usize::from(shard.index()))
            .map(|slot| slot.swap(epoch, Ordering::AcqRel))
            .unwrap_or_default()
    }

    /// Records `shard` whole in `epoch`; returns the epoch it was last seen whole in before.
    fn seen_whole(&self, shard: Shard, epoch: u64) -> u64 {
        self.set(shard, epoch);
        self.last_seen
            .get(usize::from(shard.index()))
            .map(|slot| slot.swap(epoch, Ordering::AcqRel))
            .unwrap_or_default()
    }

    /// Checks every shard once, recovering those that are not whole. Returns the epochs that
    /// changed since the last check (also handed on by [`ShardGuard::run`]).
    pub async fn check_all(&self) -> Vec<EpochChange> {
        let mut changes = Vec::new();
        for shard in self.keys.shards() {
            let found = self
                .script
                .check(self.redis.next(), &self.keys, shard)
                .await;
            let (epoch, recovered) = match found.map(|report| report.state) {
                Ok(ShardState::Whole { epoch }) => (epoch, None),
                Ok(_) => {
                    self.set(shard, 0);
                    match recover(&self.redis, &self.db, &self.keys, shard).await {
                        Ok(Recovery::Whole { epoch }) => (epoch, None),
                        Ok(Recovery::Recovered(report)) => (report.epoch, Some(report)),
                        Ok(Recovery::Busy) => continue,
                        Err(error) => {
                            tracing::warn!(%shard, %error, "shard recovery failed; retrying");
                            continue;
                        }
                    }
                }
                Err(error) => {
                    if self.set(shard, 0) > 0 {
                        tracing::warn!(%shard, %error, "shard check failed");
                    }
                    continue;
                }
            };
            let from = self.seen_whole(shard, epoch);
            if from != epoch {
                changes.push(EpochChange {
                    shard,
                    from,
                    to: epoch,
                    recovered,
                });
            }
        }
        if !changes.is_empty() {
            self.lock_unreported().extend(changes.iter().cloned());
            self.wake.notify_one();
        }
        changes
    }

    fn lock_unreported(&self) -> std::sync::MutexGuard<'_, Vec<EpochChange>> {
        match self.unreported.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Checks every `every` (ten times as often while a shard is not whole, so this process sees
    /// another's recovery finish at once; and when woken) until `shutdown`, handing what changed
    /// to `checked` after each check.
    pub async fn run(
        &self,
        every: Duration,
        shutdown: CancellationToken,
        checked: impl Fn(Vec<EpochChange>),
    ) {
        loop {
            let pause = if self.not_whole().is_empty() {
                every
            } else {
                every / 10
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
            }
            self.check_all().await;
            checked(std::mem::take(&mut *self.lock_unreported()));
        }
    }

    /// Waits for Redis, then brings every shard to whole (recovering what needs it); gives up
    /// at `shutdown`. Returns whether every shard is whole.
    pub async fn start(&self, shutdown: &CancellationToken, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if tokio::time::timeout(patience, self.redis.wait_for_connect())
                .await
                .is_ok()
            {
                self.check_all().await;
            }
            if self.not_whole().is_empty() {
                return true;
            }
            if shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// Before a script that changes stock is loaded into a server: every shard checked (those
/// restarted closed at once), and recovered where needed.
impl Verify for ShardGuard {
    async fn verify(&self) -> Result<(), ScriptError> {
        let changes = self.check_all().await;
        if !changes.is_empty() {
            tracing::warn!(?changes, "shards checked before loading a script");
        }
        Ok(())
    }
}
