//! Settling bookings: the stages every stream entry goes through, in order.
//!
//! 1. parse the entry into a booking (an unreadable one is dead-lettered);
//! 2. decide its outcome: the one Postgres already holds for a redelivered entry, or a charge
//!    (the booking id is the payment's idempotency key, so a repeated charge is not a second one);
//! 3. commit the outcomes to Postgres in one statement (retried while Postgres is unreachable);
//! 4. apply them in Redis with the settle script (status, stock back on a decline, events);
//! 5. acknowledge the entries.
//!
//! A crash between any two stages leaves the entry unacknowledged; whoever settles it again finds
//! the committed outcome in stage 2 and the applied one in stage 4, so nothing happens twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fred::prelude::Pool;
use futures::future::join_all;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use booking::keys::{Keyspace, Shard};
use booking::record::{BookingRecord, BookingStatus};

use crate::finalize::{Applied, FinalizeScript};
use crate::metrics;
use crate::payment::{PaymentOutcome, PaymentProvider};
use crate::store::{self, Settlement};
use crate::stream::{Consumer, Entry};

/// Why a batch stopped before it was acknowledged. Its entries stay pending and are settled again.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("shutting down with the batch unfinished")]
    ShuttingDown,
}

/// What one call to [`Settler::process_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Entries were read; this many were settled and acknowledged.
    Settled(usize),
    /// The stream had nothing new.
    Empty,
}

/// A booking whose outcome is known, with the entry that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub entry_id: String,
    pub settlement: Settlement,
    /// Postgres already held it: the entry was delivered before.
    pub redelivered: bool,
}

/// How long to wait before retrying Postgres, doubling up to the maximum.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Settler<P> {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub consumer: Consumer,
    pub provider: Arc<P>,
    pub finalize: FinalizeScript,
    pub batch_size: usize,
    pub claim_idle: Duration,
    pub max_deliveries: u64,
    /// Cancelled on shutdown: stops retries, so a batch stuck on Postgres ends unacknowledged.
    pub shutdown: CancellationToken,
}

impl<P: PaymentProvider> Settler<P> {
    /// Reads up to a batch of new entries from `shard` and settles them.
    pub async fn process_batch(&self, shard: Shard) -> Result<Processed, SettleError> {
        let entries = self.consumer.read(shard, self.batch_size, false).await?;
        if entries.is_empty() {
            return Ok(Processed::Empty);
        }
        self.settle(shard, entries).await.map(Processed::Settled)
    }

    /// Settles what this consumer held when it last stopped (its own pending entries).
    pub async fn recover_own(&self) -> Result<usize, SettleError> {
        let mut settled = 0;
        for shard in self.keys.shards() {
            loop {
                let entries = self.consumer.read(shard, self.batch_size, true).await?;
                if entries.is_empty() {
                    break;
                }
                let count = entries.len();
                let done = self.settle(shard, entries).await?;
                settled += done;
                if done < count {
                    // Some stay pending (they failed again); the reclaim loop retries them.
                    break;
                }
            }
        }
        Ok(settled)
    }

    /// Takes over entries other consumers have held too long; those delivered too often are
    /// resolved as failed and dead-lettered.
    pub async fn reclaim(&self) -> Result<usize, SettleError> {
        let mut settled = 0;
        for shard in self.keys.shards() {
            let (claimed, exhausted) = self
                .consumer
                .claim_stale(shard, self.claim_idle, self.batch_size, self.max_deliveries)
                .await?;
            if !claimed.is_empty() {
                tracing::info!(%shard, count = claimed.len(), "reclaimed stale entries");
                settled += self.settle(shard, claimed).await?;
            }
            for entry in exhausted {
                settled += self.give_up(shard, entry).await?;
            }
        }
        Ok(settled)
    }

    /// Stages 1-5 for entries of one shard; returns how many were acknowledged. The entries stay
    /// held by this consumer (renewed) while it works on them.
    pub async fn settle(&self, shard: Shard, entries: Vec<Entry>) -> Result<usize, SettleError> {
        let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
        tokio::select! {
            settled = self.settle_held(shard, entries) => settled,
            never = self.consumer.keep_held(shard, &ids, self.claim_idle) => match never {},
        }
    }

    async fn settle_held(&self, shard: Shard, entries: Vec<Entry>) -> Result<usize, SettleError> {
        let mut bookings = Vec::with_capacity(entries.len());
        let mut unreadable = Vec::new();
        for entry in entries {
            match BookingRecord::from_fields(&entry.fields) {
                Ok(record) => bookings.push((entry.id, record)),
                Err(error) => {
                    tracing::error!(entry = %entry.id, %error, "unreadable stream entry");
                    self.consumer
                        .dead_letter(shard, &entry, &error.to_string())
                        .await?;
                    metrics::dead_lettered();
                    unreadable.push(entry.id);
                }
            }
        }
        self.consumer.ack(shard, &unreadable).await?;
        let decided = self.decide(bookings).await?;
        let committed = self.commit(decided).await?;
        let done = self.apply(shard, &committed).await;
        self.consumer.ack(shard, &done).await?;
        Ok(done.len() + unreadable.len())
    }

    /// Stage 2: the outcome of each booking. Bookings whose charge could not be made are left out
    /// (and so stay pending).
    pub async fn decide(
        &self,
        bookings: Vec<(String, BookingRecord)>,
    ) -> Result<Vec<Decided>, SettleError> {
        let ids: Vec<uuid::Uuid> = bookings.iter().map(|(_, record)| record.id).collect();
        let known = self.retry_db(|| store::settled(&self.db, &ids)).await?;
        let decisions = bookings.into_iter().map(|(entry_id, mut record)| {
            let known = known.get(&record.id).cloned();
            async move {
                if let Some((status, reason)) = known {
                    record.status = status;
                    record.failure_reason = reason;
                    let settlement = Settlement { record, payment_reference: None };
                    return Some(Decided { entry_id, settlement, redelivered: true });
                }
                let started = std::time::Instant::now();
                let charged = self
                    .provider
                    .charge(record.id, record.total_price, record.currency)
                    .await;
                metrics::payment_took(started.elapsed());
                let payment_reference = match charged {
                    Ok(PaymentOutcome::Approved { reference }) => {
                        record.status = BookingStatus::Confirmed;
                        Some(reference)
                    }
                    Ok(PaymentOutcome::Declined { reason }) => {
                        record.status = BookingStatus::Failed;
                        record.failure_reason = Some(reason);
                        None
                    }
                    Err(error) => {
                        tracing::warn!(booking_id = %record.id, %error, "charge failed; will retry");
                        return None;
                    }
                };
                let settlement = Settlement { record, payment_reference };
                Some(Decided { entry_id, settlement, redelivered: false })
            }
        });
        Ok(join_all(decisions).await.into_iter().flatten().collect())
    }

    /// Stage 3: one statement for the batch, retried while Postgres is unreachable. Should
    /// Postgres refuse the batch itself, each booking is written alone, so one bad row cannot hold
    /// back the rest; the refused ones stay pending. Returns the bookings now in Postgres.
    pub async fn commit(&self, decided: Vec<Decided>) -> Result<Vec<Decided>, SettleError> {
        let fresh = |batch: &[Decided]| -> Vec<Settlement> {
            batch
                .iter()
                .filter(|d| !d.redelivered)
                .map(|d| d.settlement.clone())
                .collect()
        };
        let whole = fresh(&decided);
        match self.retry_db(|| store::commit(&self.db, &whole)).await {
            Ok(_) => return Ok(decided),
            Err(SettleError::Postgres(error)) if decided.len() > 1 => {
                tracing::error!(%error, "postgres refused a batch; writing its bookings one by one");
            }
            Err(error) => return Err(error),
        }
        let mut committed = Vec::with_capacity(decided.len());
        for one in decided {
            let single = fresh(std::slice::from_ref(&one));
            match self.retry_db(|| store::commit(&self.db, &single)).await {
                Ok(_) => committed.push(one),
                Err(SettleError::Postgres(error)) => {
                    tracing::error!(booking_id = %one.settlement.record.id, %error, "postgres refused a booking");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(committed)
    }

    /// Stage 4: applies each outcome in Redis; returns the entries now safe to acknowledge.
    pub async fn apply(&self, shard: Shard, decided: &[Decided]) -> Vec<String> {
        let applied = decided.iter().map(|d| async move {
            let record = &d.settlement.record;
            let result = self
                .finalize
                .apply(
                    self.redis.next(),
                    &self.keys,
                    shard,
                    record,
                    record.status,
                    record.failure_reason.as_deref(),
                )
                .await;
            match result {
                Ok(applied) => {
                    if applied == Applied::Unknown {
                        tracing::warn!(booking_id = %record.id, "settled a booking Redis no longer knows");
                    }
                    metrics::settled(record.status, d.redelivered);
                    if !d.redelivered {
                        let waited = Utc::now().signed_duration_since(record.created_at);
                        metrics::accept_to_final(waited.to_std().unwrap_or_default());
                    }
                    tracing::debug!(booking_id = %record.id, status = %record.status, ?applied, "settled");
                    Some(d.entry_id.clone())
                }
                Err(error) => {
                    tracing::warn!(booking_id = %record.id, %error, "applying the outcome failed; will retry");
                    None
                }
            }
        });
        join_all(applied).await.into_iter().flatten().collect()
    }

    /// An entry delivered too often: resolved as failed (stock back) rather than left pending, and
    /// dead-lettered with the reason.
    async fn give_up(&self, shard: Shard, entry: Entry) -> Result<usize, SettleError> {
        let reason = format!("not settled after {} deliveries", self.max_deliveries);
        tracing::error!(entry = %entry.id, %reason, "dead-lettering stream entry");
        self.consumer.dead_letter(shard, &entry, &reason).await?;
        metrics::dead_lettered();
        let Ok(mut record) = BookingRecord::from_fields(&entry.fields) else {
            self.consumer
                .ack(shard, std::slice::from_ref(&entry.id))
                .await?;
            return Ok(1);
        };
        let id = [record.id];
        let known = self.retry_db(|| store::settled(&self.db, &id)).await?;
        let redelivered = match known.get(&record.id) {
            Some((status, reason)) => {
                record.status = *status;
                record.failure_reason = reason.clone();
                true
            }
            None => {
                record.status = BookingStatus::Failed;
                record.failure_reason = Some("settlement failed".to_owned());
                false
            }
        };
        let decided = vec![Decided {
            entry_id: entry.id,
            settlement: Settlement {
                record,
                payment_reference: None,
            },
            redelivered,
        }];
        let committed = self.commit(decided).await?;
        let done = self.apply(shard, &committed).await;
        self.consumer.ack(shard, &done).await?;
        Ok(done.len())
    }

    /// Runs a Postgres call, retrying transient failures with backoff until shutdown.
    async fn retry_db<T, F, Fut>(&self, mut call: F) -> Result<T, SettleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut delay = RETRY_MIN;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if store::is_transient(&error) => {
                    tracing::warn!(%error, retry_in = ?delay, "postgres unavailable; holding the batch");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return Err(SettleError::ShuttingDown),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
