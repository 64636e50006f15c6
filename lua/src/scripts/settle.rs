//! `lua/settle.lua`: applies a booking's final status in Redis exactly once.

use fred::prelude::Client;
use fred::types::scripts::Script;

use domain::ids::Shard;
use domain::record::{BookingStatus, Stub};
use fred::types::Value;

use super::{Reply, ScriptError, Verify, deciding, decode, evalsha};
use crate::keys::{Keyspace, SETTLED_RECORD_TTL_SECONDS};
use crate::stock;

/// What the script found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The booking was pending and is now final (a decline gave its stock back).
    Now,
    /// The booking was already final: a redelivery, nothing changed.
    Already,
    /// Redis has no record of the booking: it lost it, and recovery counted it from Postgres.
    Unknown,
    /// The shard is recovering; nothing changed, and the outcome must be applied again later.
    Recovering,
}

/// A booking's final outcome, to apply.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub booking: &'a Stub,
    /// `confirmed` or `failed`.
    pub status: BookingStatus,
    /// Why it failed; `None` when confirmed.
    pub reason: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct SettleScript(Script);

impl Default for SettleScript {
    fn default() -> Self {
        Self(deciding(include_str!("../../settle.lua")))
    }
}

impl SettleScript {
    /// The script's text as Redis runs it.
    pub fn source(&self) -> String {
        super::text(&self.0)
    }

    /// Applies `outcome` to its booking.
    ///
    /// KEYS (all on the booking's shard):
    /// 1. `epoch`: present while the shard's data is whole
    /// 2. `booking:<bookingId>`: the booking record
    /// 3. `stock:<tierId>`: available tickets
    /// 4. `pending:<tierId>`: tickets in unsettled bookings
    /// 5. `held:<concertId>`: tickets each customer holds for the concert
    ///
    /// ARGV:
    /// 1. final status (`confirmed` or `failed`)
    /// 2. failure reason, empty when confirmed
    /// 3. quantity
    /// 4. stock channel
    /// 5. the stock message without its count (`<concertId> <tierId> `)
    /// 6. booking status channel
    /// 7. the status message (`<bookingId> <status>`)
    /// 8. seconds the settled record stays in Redis
    /// 9. the customer's email: their field of the held counts
    pub async fn apply(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        outcome: Outcome<'_>,
        verify: &impl Verify,
    ) -> Result<Applied, ScriptError> {
        let Outcome {
            booking,
            status,
            reason,
        } = outcome;
        let script_keys = vec![
            keys.epoch(shard),
            keys.booking(shard, booking.id),
            keys.stock(shard, booking.ticket_tier_id),
            keys.pending(shard, booking.ticket_tier_id),
            keys.held(shard, booking.concert_id),
        ];
        let args = vec![
            status.as_str().to_owned(),
            reason.unwrap_or_default().to_owned(),
            booking.quantity.to_string(),
            keys.stock_channel(),
            stock::message_prefix(booking.concert_id, booking.ticket_tier_id),
            keys.booking_status_channel(),
            stock::status_message(booking.id, status),
            SETTLED_RECORD_TTL_SECONDS.to_string(),
            booking.user_email.clone(),
        ];
        let reply: Value = evalsha(&self.0, client, script_keys, args, verify).await?;
        match decode("settle.lua", reply)? {
            (Reply::Done, _) => Ok(Applied::Now),
            (Reply::Known, _) => Ok(Applied::Already),
            (Reply::Unknown, _) => Ok(Applied::Unknown),
            (Reply::Recovering, _) => Ok(Applied::Recovering),
            (_, reply) => Err(ScriptError::reply("settle.lua", reply)),
        }
    }
}
