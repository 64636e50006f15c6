//! `lua/reserve.lua`: the one Redis call of the booking path.

use std::time::Duration;

use domain::ids::{BookingId, QueueTicketId, Shard};
use domain::record::{Booking, IDEMPOTENCY_RECORD_ID_CHARS, Packed};
use fred::prelude::{Client, ClientLike, KeysInterface, LuaInterface};
use fred::types::Value;
use fred::types::config::Options;
use fred::types::scripts::Script;

use super::{Replication, Reply, ScriptError, Verify, acknowledged, deciding, decode, integer};
use crate::keys::{IDEMPOTENCY_TTL_SECONDS, Keyspace, RoomKey};
use crate::stock;

const NAME: &str = "reserve.lua";

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stock taken, booking recorded and appended to the stream; `available` is left.
    Accepted { available: i64 },
    /// The key is known with the same request: the booking it made (this one, when the same
    /// booking is reserved again).
    Replayed(BookingId),
    /// The key is known with a different request.
    KeyReused,
    /// Fewer than the requested tickets are left.
    OutOfStock { available: i64 },
    /// The customer already holds `held` tickets of the concert.
    CustomerLimit { held: i64 },
    /// Redis holds no stock for the tier (it is brand new, or its key was lost on its own).
    StockMissing,
    /// The shard's data is being rebuilt after Redis lost it: nothing was written.
    Recovering,
    /// The waiting-room admission was spent on another booking.
    AdmissionSpent,
}

/// What an idempotency key made before, looked up without reserving anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// The key is known with the same request: the booking it made.
    Booked(BookingId),
    /// The key is known with a different request.
    KeyReused,
    /// The key made nothing (or its record expired).
    Nothing,
    /// The shard's data is being rebuilt: its records cannot be trusted yet.
    Recovering,
}

/// One booking to reserve, with the waiting-room admission it spends, if its concert has one.
#[derive(Debug, Clone, Copy)]
pub struct Reservation<'a> {
    pub packed: &'a Packed,
    /// The queue ticket whose admission the booking spends; `None` without a waiting room, and
    /// for a booking accepted again after a loss of Redis data (it was admitted once already).
    pub admission: Option<QueueTicketId>,
}

/// The loaded script, and the replicas a booking must reach before it is answered; cheap to
/// share.
#[derive(Debug, Clone)]
pub struct ReserveScript {
    script: Script,
    replication: Replication,
}

impl Default for ReserveScript {
    fn default() -> Self {
        Self {
            script: deciding(include_str!("../../reserve.lua")),
            replication: Replication::NONE,
        }
    }
}

impl ReserveScript {
    /// The script answering a booking (accepted or replayed) only once `replication`'s replicas
    /// hold it: the script and `WAIT` go out together, in one round trip.
    pub fn with_replication(replication: Replication) -> Self {
        Self {
            replication,
            ..Self::default()
        }
    }

    /// The script's text as Redis runs it.
    pub fn source(&self) -> String {
        super::text(&self.script)
    }

    /// Loads the script into Redis' script cache ahead of the first booking.
    pub async fn load(&self, client: &Client) -> Result<(), fred::error::Error> {
        self.script.load(client).await
    }

    pub fn sha1(&self) -> &str {
        self.script.sha1()
    }

    /// KEYS (all on the booking's shard, so one hash tag):
    /// 1. `epoch`: present while the shard's data is whole
    /// 2. `stock:<tierId>`: available tickets
    /// 3. `idem:<concertId>:<idempotencyKey>`: the idempotency record
    /// 4. `booking:<bookingId>`: the booking record
    /// 5. `held:<concertId>`: tickets each customer holds for the concert
    /// 6. `bookings`: the shard's stream
    /// 7. `pending:<tierId>`: tickets of the tier in unsettled bookings
    /// 8. `queue:<concertId>:spent`: admissions spent, by queue ticket (only with an admission)
    /// 9. `queue:<concertId>:outstanding`: admissions not yet spent, by expiry (only with an
    ///    admission)
    ///
    /// ARGV:
    /// 1. the idempotency record, `<bookingId> <fingerprint>`
    ///    ([`domain::record::Booking::idempotency_record`])
    /// 2. the packed booking (the record's and the stream entry's `b`)
    /// 3. quantity
    /// 4. tickets one customer may hold per concert (0: no limit)
    /// 5. lifetime of the idempotency record, seconds
    /// 6. the customer's email: their field of the held counts
    /// 7. stock channel
    /// 8. the stock message without its count (`<concertId> <tierId> `)
    /// 9. the queue ticket whose admission this booking spends (only with an admission)
    /// 10. unix time the spent admissions are kept until (only with an admission)
    ///
    /// Every argument of a script call costs Redis a Lua string and its collection, so the
    /// admission's keys and arguments are passed only when there is one.
    pub fn keys_and_args(
        keys: &Keyspace,
        shard: Shard,
        reservation: Reservation<'_>,
    ) -> (Vec<String>, Vec<String>) {
        let Reservation { packed, admission } = reservation;
        let booking = &packed.booking;
        let mut script_keys = vec![
            keys.epoch(shard),
            keys.stock(shard, booking.ticket_tier_id),
            keys.idempotency(shard, booking.concert_id, booking.idempotency_key.as_str()),
            keys.booking(shard, booking.id),
            keys.held(shard, booking.concert_id),
            keys.stream(shard),
            keys.pending(shard, booking.ticket_tier_id),
        ];
        let mut args = vec![
            booking.idempotency_record(),
            packed.to_json(),
            booking.quantity.to_string(),
            packed.customer_limit.to_string(),
            IDEMPOTENCY_TTL_SECONDS.to_string(),
            booking.user_email.to_string(),
            keys.stock_channel(),
            stock::message_prefix(booking.concert_id, booking.ticket_tier_id),
        ];
        if let Some(ticket) = admission {
            script_keys.push(keys.queue(shard, booking.concert_id, RoomKey::Spent));
            script_keys.push(keys.queue(shard, booking.concert_id, RoomKey::Outstanding));
            args.push(ticket.to_string());
            args.push(packed.held_until.to_string());
        }
        (script_keys, args)
    }

    /// Reserves `reservation` on `shard`. Safe to repeat with the same booking: the second run finds
    /// the first one's idempotency record and answers [`Outcome::Replayed`] with this booking.
    ///
    /// With replication, a replay writes the shard's fence before it waits, since the booking it
    /// finds may have been written on another connection.
    pub async fn run(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        reservation: Reservation<'_>,
        verify: &impl Verify,
    ) -> Result<Outcome, ScriptError> {
        let (script_keys, args) = Self::keys_and_args(keys, shard, reservation);
        let reply = acknowledged(
            &self.script,
            client,
            script_keys,
            args,
            self.replication,
            keys.fence(shard),
            verify,
        )
        .await?;
        parse_reply(reply)
    }

    /// What `booking`'s idempotency key made before, read as the script reads it but changing
    /// nothing: the answer for a request refused before it reaches the script (sales window,
    /// admission, price), so that a client asking again after a lost answer is told the booking
    /// it has, whatever changed since. With replication, a booking found is answered once the
    /// replicas hold it, as the script's own replay is.
    pub async fn earlier(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        booking: &Booking,
    ) -> Result<Earlier, ScriptError> {
        let (epoch, known): (Option<String>, Option<String>) = client
            .mget(vec![
                keys.epoch(shard),
                keys.idempotency(shard, booking.concert_id, booking.idempotency_key.as_str()),
            ])
            .await?;
        let Some(known) = known.filter(|_| epoch.is_some()) else {
            return Ok(if epoch.is_some() {
                Earlier::Nothing
            } else {
                Earlier::Recovering
            });
        };
        let (id, fingerprint) =
            split_record(&known).ok_or_else(|| ScriptError::reply(NAME, &known))?;
        if fingerprint != booking.fingerprint() {
            return Ok(Earlier::KeyReused);
        }
        let id = id.parse().map_err(|_| ScriptError::reply(NAME, &known))?;
        self.replication.fence(client, keys.fence(shard)).await?;
        Ok(Earlier::Booked(id))
    }

    /// [`ReserveScript::run`] allowing `wait` for the answer instead of the client's command
    /// timeout: asking again, on the connection a timed-out run went out on, after an outcome
    /// went unknown. Redis answers commands of one connection in order, so this answer comes
    /// after the first run, if that reached Redis, and tells what it did.
    pub async fn run_within(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        reservation: Reservation<'_>,
        wait: Duration,
        verify: &impl Verify,
    ) -> Result<Outcome, ScriptError> {
        let (script_keys, args) = Self::keys_and_args(keys, shard, reservation);
        let patient = client.with_options(&Options {
            timeout: Some(wait),
            ..Options::default()
        });
        let reply: Value = match patient
            .evalsha(self.sha1(), script_keys.clone(), args.clone())
            .await
        {
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                verify.verify().await?;
                self.load(client).await?;
                patient.evalsha(self.sha1(), script_keys, args).await?
            }
            reply => reply?,
        };
        let outcome = parse_reply(reply)?;
        if matches!(outcome, Outcome::Accepted { .. } | Outcome::Replayed(_)) {
            self.replication.fence(client, keys.fence(shard)).await?;
        }
        Ok(outcome)
    }
}

/// An idempotency record's booking id and fingerprint.
fn split_record(record: &str) -> Option<(&str, &str)> {
    let id = record.get(..IDEMPOTENCY_RECORD_ID_CHARS)?;
    let fingerprint = record
        .get(IDEMPOTENCY_RECORD_ID_CHARS..)?
        .strip_prefix(' ')?;
    Some((id, fingerprint))
}

fn parse_reply(reply: Value) -> Result<Outcome, ScriptError> {
    let (code, parts) = decode(NAME, reply)?;
    let count = |index| integer(&parts, index).ok_or_else(|| ScriptError::reply(NAME, &parts));
    match code {
        Reply::Done => Ok(Outcome::Accepted {
            available: count(1)?,
        }),
        Reply::Known => parts
            .get(1)
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok())
            .map(Outcome::Replayed)
            .ok_or_else(|| ScriptError::reply(NAME, &parts)),
        Reply::KeyReused => Ok(Outcome::KeyReused),
        Reply::OutOfStock => Ok(Outcome::OutOfStock {
            available: count(1)?,
        }),
        Reply::CustomerLimit => Ok(Outcome::CustomerLimit { held: count(1)? }),
        Reply::StockMissing => Ok(Outcome::StockMissing),
        Reply::Recovering => Ok(Outcome::Recovering),
        Reply::AdmissionSpent => Ok(Outcome::AdmissionSpent),
        _ => Err(ScriptError::reply(NAME, &parts)),
    }
}
