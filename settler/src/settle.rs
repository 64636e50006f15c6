//! Settling bookings: the stages every stream entry goes through, in order.
//!
//! 1. read the entry back (the packed booking and the epoch it was accepted in);
//! 2. decide its outcome: the one Postgres already holds for a redelivered entry, or a charge
//!    (the booking id is the payment's idempotency key, so a repeated charge is not a second one);
//! 3. commit the outcomes to Postgres in one transaction, retried while Postgres is unreachable
//!    and fenced by the shard's epoch: a confirmation accepted before Redis lost the shard's data
//!    is not written but reserved again in the current epoch, through the same script as any
//!    booking (a new stream entry then settles it), or failed and refunded when its tickets, its
//!    idempotency key or the customer's allowance are gone;
//! 4. apply them in Redis with the settle script (status, stock back on a decline, events),
//!    waiting while the shard recovers;
//! 5. acknowledge the entries.
//!
//! A crash between any two stages leaves the entry unacknowledged; whoever settles it again finds
//! the committed outcome in stage 2 and the applied one in stage 4, so nothing happens twice.
//!
//! A booking that can never be written (Postgres refuses its row for a reason retrying cannot
//! change, its entry does not read back, or it was delivered too often) is resolved as failed
//! once: refunded, recorded in `dead_letters`, its tickets given back, acknowledged. It holds back
//! nothing behind it: not its batch, its stream's trimming, nor a settler's recovery.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fred::prelude::Pool;
use futures::future::join_all;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use domain::ids::{BookingId, Shard};
use domain::record::{BookingStatus, Packed, Stub, field};
use redis_store::error::StoreError;
use redis_store::keys::Keyspace;
use redis_store::recovery::ShardGuard;
use redis_store::scripts::reserve::{Outcome, Reservation, ReserveScript};
use redis_store::scripts::settle::{self, Applied, SettleScript};

use crate::metrics;
use crate::payment::{PaymentError, PaymentOutcome, PaymentProvider};
use crate::store::{self, DeadLetter, Settlement, Stamped, Written};
use crate::stream::{Consumer, Entry};

/// Why a batch stopped before it was acknowledged. Its entries stay pending and are settled again.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Payment(#[from] PaymentError),
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
    /// The shard epoch the booking was accepted in.
    pub epoch: u64,
    pub settlement: Settlement,
    /// Postgres already held it: the entry was delivered before.
    pub redelivered: bool,
}

/// An entry that does not read back as a whole booking.
#[derive(Debug, Clone)]
struct Broken {
    entry_id: String,
    epoch: u64,
    /// The packed booking as the entry holds it.
    entry: String,
    /// Enough of it to give its tickets back, if that much reads.
    stub: Option<Stub>,
    reason: String,
}

/// What became of a confirmation fenced out by a recovery of its shard.
enum Readmitted {
    /// Accepted in the current epoch (again, or carried over by the recovery): a newer entry
    /// settles it, this one is done.
    Carried,
    /// Its tickets, key or allowance are gone: it fails, refunded.
    Failed(Box<Decided>),
}

/// What customers read on a booking that failed for a reason of ours, not theirs.
const COULD_NOT_RECORD: &str = "the booking could not be recorded; it was not charged";
/// How long to wait before retrying Postgres, doubling up to the maximum.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long to wait for a shard to finish recovering before trying it again.
const RECOVERY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct Settler<P> {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub consumer: Consumer,
    pub provider: Arc<P>,
    pub settle: SettleScript,
    pub reserve: ReserveScript,
    pub guard: Arc<ShardGuard>,
    pub batch_size: usize,
    pub claim_idle: Duration,
    pub max_deliveries: u64,
    /// Cancelled on shutdown: stops retries, so a batch stuck on Postgres ends unacknowledged.
    pub shutdown: CancellationToken,
}

/// Reads an entry back: the packed booking and the epoch it was accepted in.
fn read(entry: Entry) -> Result<(String, u64, Packed), Box<Broken>> {
    let epoch = entry
        .fields
        .get(field::EPOCH)
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or(0);
    let raw = entry.fields.get(field::PACKED).cloned().unwrap_or_default();
    match Packed::from_json(&raw) {
        Ok(packed) => Ok((entry.id, epoch, packed)),
        Err(error) => Err(Box::new(Broken {
            stub: Stub::from_json(&raw),
            entry_id: entry.id,
            epoch,
            entry: raw,
            reason: error.to_string(),
        })),
    }
}

impl<P: PaymentProvider> Settler<P> {
    /// Reads up to a batch of new entries from `shard` and settles them.
    pub async fn process_batch(&self, shard: Shard) -> Result<Processed, SettleError> {
        let entries = self.read_entries(shard, false).await?;
        if entries.is_empty() {
            return Ok(Processed::Empty);
        }
        self.settle(shard, entries).await.map(Processed::Settled)
    }

    /// Reads entries, waking the shard guard when the group is gone (Redis lost the stream).
    async fn read_entries(&self, shard: Shard, own: bool) -> Result<Vec<Entry>, SettleError> {
        self.consumer
            .read(shard, self.batch_size, own)
            .await
            .map_err(|error| {
                if error.details().starts_with("NOGROUP") {
                    self.guard.wake();
                }
                SettleError::Store(StoreError::Redis(error))
            })
    }

    /// Settles what this consumer held when it last stopped (its own pending entries). A shard
    /// that fails is left to the reclaim loop; the others go on.
    pub async fn recover_own(&self) -> usize {
        let mut settled = 0;
        for shard in self.keys.shards() {
            loop {
                let entries = match self.read_entries(shard, true).await {
                    Ok(entries) if entries.is_empty() => break,
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::warn!(%shard, %error, "recovering held entries failed; reclaim will retry");
                        break;
                    }
                };
                let count = entries.len();
                match self.settle(shard, entries).await {
                    Ok(done) => {
                        settled += done;
                        if done < count {
                            // Some stay pending (they failed again); the reclaim loop retries them.
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%shard, %error, "recovering held entries failed; reclaim will retry");
                        break;
                    }
                }
            }
        }
        settled
    }

    /// Takes over entries other consumers have held too long; those delivered too often are
    /// resolved as failed. A shard that fails is retried next time; the others go on.
    pub async fn reclaim(&self) -> usize {
        let mut settled = 0;
        for shard in self.keys.shards() {
            match self.reclaim_shard(shard).await {
                Ok(done) => settled += done,
                Err(error) => tracing::warn!(%shard, %error, "reclaiming stale entries failed"),
            }
        }
        settled
    }

    async fn reclaim_shard(&self, shard: Shard) -> Result<usize, SettleError> {
        let (claimed, exhausted) = self
            .consumer
            .claim_stale(shard, self.claim_idle, self.batch_size, self.max_deliveries)
            .await
            .map_err(StoreError::from)?;
        let mut settled = 0;
        if !claimed.is_empty() {
            tracing::info!(%shard, count = claimed.len(), "reclaimed stale entries");
            settled += self.settle(shard, claimed).await?;
        }
        for entry in exhausted {
            settled += self.give_up(shard, entry).await?;
        }
        Ok(settled)
    }

    /// Stages 1-5 for entries of one shard; returns how many were acknowledged. The entries stay
    /// held by this consumer (renewed) while it works on them.
    pub async fn settle(&self, shard: Shard, entries: Vec<Entry>) -> Result<usize, SettleError> {
        let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
        let span = tracing::info_span!("batch", %shard, entries = ids.len());
        tokio::select! {
            settled = self.settle_held(shard, entries).instrument(span) => settled,
            never = self.consumer.keep_held(shard, &ids, self.claim_idle) => match never {},
        }
    }

    async fn settle_held(&self, shard: Shard, entries: Vec<Entry>) -> Result<usize, SettleError> {
        let mut done = Vec::with_capacity(entries.len());
        let mut bookings = Vec::with_capacity(entries.len());
        for entry in entries {
            match read(entry) {
                Ok(booking) => bookings.push(booking),
                Err(broken) => {
                    let entry_id = broken.entry_id.clone();
                    if self.resolve_broken(shard, *broken).await? {
                        done.push(entry_id);
                    }
                }
            }
        }
        let decided = self.decide(bookings).await?;
        let Committed {
            mut written,
            fenced,
            refused,
        } = self.commit(shard, decided).await?;
        let mut failed = Vec::new();
        for decided in fenced {
            let entry_id = decided.entry_id.clone();
            match self.readmit(shard, decided).await? {
                Readmitted::Carried => done.push(entry_id),
                Readmitted::Failed(decided) => failed.push(*decided),
            }
        }
        let again = self.commit(shard, failed).await?;
        written.extend(again.written);
        for (decided, reason) in refused.into_iter().chain(again.refused) {
            let entry_id = decided.entry_id.clone();
            if self.resolve_refused(shard, decided, &reason).await? {
                done.push(entry_id);
            }
        }
        done.extend(self.apply(shard, &written).await?);
        self.consumer
            .ack(shard, &done)
            .await
            .map_err(StoreError::from)?;
        Ok(done.len())
    }

    /// Stage 2: the outcome of each booking. Bookings whose charge could not be made are left out
    /// (and so stay pending).
    pub async fn decide(
        &self,
        bookings: Vec<(String, u64, Packed)>,
    ) -> Result<Vec<Decided>, SettleError> {
        let ids: Vec<BookingId> = bookings.iter().map(|(_, _, p)| p.booking.id).collect();
        let known = self.retry_db(|| store::settled(&self.db, &ids)).await?;
        let decisions = bookings.into_iter().map(|(entry_id, epoch, packed)| {
            let known = known.get(&packed.booking.id).cloned();
            // One span per entry, named by its booking, as the gateway's request span is.
            let span =
                tracing::info_span!("entry", booking_id = %packed.booking.id, entry = %entry_id);
            async move {
                let id = packed.booking.id;
                if let Some((status, failure_reason)) = known {
                    let settlement = Settlement {
                        packed,
                        status,
                        failure_reason,
                        payment_reference: None,
                    };
                    return Some(Decided {
                        entry_id,
                        epoch,
                        settlement,
                        redelivered: true,
                    });
                }
                let started = std::time::Instant::now();
                let charged = self
                    .provider
                    .charge(id, packed.booking.total_price, packed.booking.currency)
                    .await;
                metrics::payment_took(started.elapsed());
                let (status, failure_reason, payment_reference) = match charged {
                    Ok(PaymentOutcome::Approved { reference }) => {
                        (BookingStatus::Confirmed, None, Some(reference))
                    }
                    Ok(PaymentOutcome::Declined { reason }) => {
                        (BookingStatus::Failed, Some(reason), None)
                    }
                    Ok(PaymentOutcome::Refunded) => (
                        BookingStatus::Failed,
                        Some("payment refunded".to_owned()),
                        None,
                    ),
                    Err(error) => {
                        tracing::warn!(booking_id = %id, %error, "charge failed; will retry");
                        return None;
                    }
                };
                let settlement = Settlement {
                    packed,
                    status,
                    failure_reason,
                    payment_reference,
                };
                Some(Decided {
                    entry_id,
                    epoch,
                    settlement,
                    redelivered: false,
                })
            }
            .instrument(span)
        });
        Ok(join_all(decisions).await.into_iter().flatten().collect())
    }

    /// Stage 3: one transaction for the batch, retried while Postgres is unreachable. Should
    /// Postgres refuse the batch itself, each booking is written alone, so one bad row cannot hold
    /// back the rest.
    pub async fn commit(
        &self,
        shard: Shard,
        decided: Vec<Decided>,
    ) -> Result<Committed, SettleError> {
        let mut committed = Committed::default();
        let (known, fresh): (Vec<Decided>, Vec<Decided>) =
            decided.into_iter().partition(|d| d.redelivered);
        committed.written.extend(known);
        if fresh.is_empty() {
            return Ok(committed);
        }
        match self.write(shard, &fresh).await {
            Ok(written) => {
                committed.sort(fresh, written);
                return Ok(committed);
            }
            Err(SettleError::Store(StoreError::Postgres(error))) if fresh.len() > 1 => {
                tracing::error!(%error, "postgres refused a batch; writing its bookings one by one");
            }
            Err(SettleError::Store(StoreError::Postgres(error))) => {
                committed
                    .refused
                    .extend(fresh.into_iter().map(|d| (d, error.to_string())));
                return Ok(committed);
            }
            Err(error) => return Err(error),
        }
        for one in fresh {
            match self.write(shard, std::slice::from_ref(&one)).await {
                Ok(written) => committed.sort(vec![one], written),
                Err(SettleError::Store(StoreError::Postgres(error))) => {
                    committed.refused.push((one, error.to_string()));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(committed)
    }

    async fn write(&self, shard: Shard, batch: &[Decided]) -> Result<Vec<Written>, SettleError> {
        let stamped: Vec<Stamped<'_>> = batch
            .iter()
            .map(|d| Stamped {
                epoch: d.epoch,
                settlement: &d.settlement,
            })
            .collect();
        self.retry_db(|| store::commit(&self.db, shard, &stamped))
            .await
    }

    /// A confirmation fenced out by a recovery: reserve it again in the current epoch, as the
    /// gateway did the first time (same booking, key and rules).
    async fn readmit(&self, shard: Shard, decided: Decided) -> Result<Readmitted, SettleError> {
        let booking = &decided.settlement.packed.booking;
        loop {
            let outcome = self
                .reserve
                .run(
                    self.redis.next(),
                    &self.keys,
                    shard,
                    Reservation {
                        packed: &decided.settlement.packed,
                        // Admitted once already: its waiting-room admission is not asked again.
                        admission: None,
                    },
                    &*self.guard,
                )
                .await;
            let reason = match outcome {
                Ok(Outcome::Accepted { .. }) => {
                    tracing::warn!(booking_id = %booking.id, "accepted again after a loss of Redis data");
                    metrics::readmitted("carried");
                    return Ok(Readmitted::Carried);
                }
                Ok(Outcome::Replayed(id)) if id == booking.id => {
                    metrics::readmitted("carried");
                    return Ok(Readmitted::Carried);
                }
                Ok(Outcome::Replayed(_) | Outcome::KeyReused) => {
                    "its idempotency key was used for another booking after a system failure"
                }
                Ok(Outcome::OutOfStock { .. }) => {
                    "the tickets were no longer available after a system failure"
                }
                Ok(Outcome::CustomerLimit { .. }) => {
                    "the customer's ticket limit was reached after a system failure"
                }
                Ok(Outcome::AdmissionSpent) => {
                    "its waiting-room admission was used for another booking after a system failure"
                }
                Ok(Outcome::StockMissing | Outcome::Recovering) => {
                    self.guard.wake();
                    self.pause(RECOVERY_PAUSE).await?;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(booking_id = %booking.id, %error, "reserving again failed; retrying");
                    self.pause(RECOVERY_PAUSE).await?;
                    continue;
                }
            };
            tracing::warn!(booking_id = %booking.id, reason, "failed after a loss of Redis data");
            metrics::readmitted("failed");
            self.refund(booking.id).await?;
            let mut failed = decided;
            failed.settlement.status = BookingStatus::Failed;
            failed.settlement.failure_reason = Some(reason.to_owned());
            failed.settlement.payment_reference = None;
            return Ok(Readmitted::Failed(Box::new(failed)));
        }
    }

    /// Stage 4: applies each outcome in Redis; returns the entries now safe to acknowledge.
    pub async fn apply(
        &self,
        shard: Shard,
        decided: &[Decided],
    ) -> Result<Vec<String>, SettleError> {
        let applied = decided.iter().map(|d| {
            let booking = &d.settlement.packed.booking;
            let span = tracing::info_span!("entry", booking_id = %booking.id, entry = %d.entry_id);
            async move {
            let applied = self
                .apply_one(
                    shard,
                    &Stub::from(booking),
                    d.settlement.status,
                    d.settlement.failure_reason.as_deref(),
                )
                .await?;
            if applied {
                metrics::settled(d.settlement.status, d.redelivered);
                if !d.redelivered {
                    let waited = Utc::now().signed_duration_since(booking.created_at);
                    metrics::accept_to_final(waited.to_std().unwrap_or_default());
                }
                tracing::debug!(status = %d.settlement.status, epoch = d.epoch, redelivered = d.redelivered, "settled");
            }
            Ok::<_, SettleError>(applied.then(|| d.entry_id.clone()))
            }
            .instrument(span)
        });
        let mut done = Vec::with_capacity(decided.len());
        for applied in join_all(applied).await {
            done.extend(applied?);
        }
        Ok(done)
    }

    /// Applies one outcome, waiting while the shard recovers. `false` when Redis failed (the entry
    /// stays pending and is applied again later).
    async fn apply_one(
        &self,
        shard: Shard,
        booking: &Stub,
        status: BookingStatus,
        reason: Option<&str>,
    ) -> Result<bool, SettleError> {
        loop {
            let result = self
                .settle
                .apply(
                    self.redis.next(),
                    &self.keys,
                    shard,
                    settle::Outcome {
                        booking,
                        status,
                        reason,
                    },
                    &*self.guard,
                )
                .await;
            match result {
                Ok(Applied::Recovering) => {
                    self.guard.wake();
                    self.pause(RECOVERY_PAUSE).await?;
                }
                Ok(applied) => {
                    if applied == Applied::Unknown {
                        tracing::warn!(booking_id = %booking.id, "settled a booking Redis no longer knows");
                    }
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(booking_id = %booking.id, %error, "applying the outcome failed; will retry");
                    return Ok(false);
                }
            }
        }
    }

    /// An entry that does not read back: recorded as a dead letter and, if it names its booking,
    /// refunded and failed with its tickets given back. Returns whether it is resolved.
    async fn resolve_broken(&self, shard: Shard, broken: Broken) -> Result<bool, SettleError> {
        tracing::error!(entry = %broken.entry_id, reason = %broken.reason, "entry does not read back as a booking");
        self.resolve(shard, broken).await
    }

    /// A booking Postgres refused for good: resolved as failed, like an unreadable entry.
    async fn resolve_refused(
        &self,
        shard: Shard,
        decided: Decided,
        error: &str,
    ) -> Result<bool, SettleError> {
        let packed = &decided.settlement.packed;
        tracing::error!(booking_id = %packed.booking.id, %error, "postgres refused a booking for good");
        self.resolve(
            shard,
            Broken {
                entry_id: decided.entry_id,
                epoch: decided.epoch,
                entry: packed.to_json(),
                stub: Some(Stub::from(&packed.booking)),
                reason: format!("refused by postgres: {error}"),
            },
        )
        .await
    }

    async fn resolve(&self, shard: Shard, broken: Broken) -> Result<bool, SettleError> {
        let booking_id = broken.stub.as_ref().map(|stub| stub.id);
        if let Some(id) = booking_id {
            self.refund(id).await?;
        }
        let letter = DeadLetter {
            shard,
            epoch: broken.epoch,
            stream_entry_id: &broken.entry_id,
            booking_id,
            entry: &broken.entry,
            reason: &broken.reason,
        };
        self.retry_db(|| store::dead_letter(&self.db, letter))
            .await?;
        metrics::dead_lettered();
        match &broken.stub {
            Some(stub) => {
                self.apply_one(shard, stub, BookingStatus::Failed, Some(COULD_NOT_RECORD))
                    .await
            }
            None => Ok(true),
        }
    }

    /// An entry delivered too often: its outcome if Postgres has one, else resolved as failed.
    async fn give_up(&self, shard: Shard, entry: Entry) -> Result<usize, SettleError> {
        let (entry_id, epoch, packed) = match read(entry) {
            Ok(read) => read,
            Err(broken) => {
                let entry_id = broken.entry_id.clone();
                let resolved = self.resolve_broken(shard, *broken).await?;
                return self.acknowledge(shard, resolved.then_some(entry_id)).await;
            }
        };
        let id = [packed.booking.id];
        let known = self.retry_db(|| store::settled(&self.db, &id)).await?;
        if let Some((status, failure_reason)) = known.get(&packed.booking.id).cloned() {
            let decided = Decided {
                entry_id,
                epoch,
                settlement: Settlement {
                    packed,
                    status,
                    failure_reason,
                    payment_reference: None,
                },
                redelivered: true,
            };
            let done = self.apply(shard, &[decided]).await?;
            return self.acknowledge(shard, done.into_iter().next()).await;
        }
        let broken = Broken {
            entry: packed.to_json(),
            stub: Some(Stub::from(&packed.booking)),
            entry_id: entry_id.clone(),
            epoch,
            reason: format!("not settled after {} deliveries", self.max_deliveries),
        };
        let resolved = self.resolve_broken(shard, broken).await?;
        self.acknowledge(shard, resolved.then_some(entry_id)).await
    }

    async fn acknowledge(
        &self,
        shard: Shard,
        entry_id: Option<String>,
    ) -> Result<usize, SettleError> {
        let ids: Vec<String> = entry_id.into_iter().collect();
        self.consumer
            .ack(shard, &ids)
            .await
            .map_err(StoreError::from)?;
        Ok(ids.len())
    }

    async fn refund(&self, booking_id: BookingId) -> Result<(), SettleError> {
        self.provider.refund(booking_id).await?;
        metrics::refunded();
        Ok(())
    }

    /// Waits `duration`, or fails at once when shutting down.
    async fn pause(&self, duration: Duration) -> Result<(), SettleError> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(SettleError::ShuttingDown),
            () = tokio::time::sleep(duration) => Ok(()),
        }
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
                    self.pause(delay).await?;
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(error) => return Err(StoreError::Postgres(error).into()),
            }
        }
    }
}

/// What stage 3 made of a batch.
#[derive(Debug, Default)]
pub struct Committed {
    /// In Postgres now (or already): to apply in Redis.
    pub written: Vec<Decided>,
    /// Confirmations accepted before a recovery of their shard: to reserve again.
    pub fenced: Vec<Decided>,
    /// Refused for good, with Postgres' reason.
    pub refused: Vec<(Decided, String)>,
}

impl Committed {
    fn sort(&mut self, batch: Vec<Decided>, written: Vec<Written>) {
        for (mut decided, written) in batch.into_iter().zip(written) {
            match written {
                Written::Inserted => self.written.push(decided),
                // Redis follows what Postgres holds, whoever wrote it.
                Written::Existing(status, reason) => {
                    decided.settlement.status = status;
                    decided.settlement.failure_reason = reason;
                    decided.redelivered = true;
                    self.written.push(decided);
                }
                Written::Fenced => self.fenced.push(decided),
            }
        }
    }
}
