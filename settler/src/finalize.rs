//! The settle script (`lua/settle.lua`): applies a booking's final status in Redis exactly once.

use fred::prelude::Client;
use fred::types::scripts::Script;

use booking::keys::{IDEMPOTENCY_TTL_SECONDS, Keyspace, Shard};
use booking::record::{BookingRecord, BookingStatus};

/// What the script found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The booking was pending and is now final (a decline gave its stock back).
    Now,
    /// The booking was already final: a redelivery, nothing changed.
    Already,
    /// Redis has no record of the booking (it lost its data); stock is rebuilt from Postgres.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct FinalizeScript(Script);

impl Default for FinalizeScript {
    fn default() -> Self {
        Self(Script::from_lua(include_str!("../../lua/settle.lua")))
    }
}

impl FinalizeScript {
    /// Applies `status` (and `reason` for a failure) to the booking `record`.
    ///
    /// KEYS (all on the booking's shard):
    /// 1. `booking:<bookingId>`: the booking record
    /// 2. `idem:<idempotencyKey>`: its idempotency record
    /// 3. `stock:<tierId>`: available tickets
    /// 4. `pending:<tierId>`: tickets in unsettled bookings
    /// 5. `held:<concertId>:<email>`: tickets the customer holds for the concert
    ///
    /// ARGV:
    /// 1. final status (`confirmed` or `failed`)
    /// 2. failure reason, empty when confirmed
    /// 3. quantity
    /// 4. booking id
    /// 5. concert id
    /// 6. tier id
    /// 7. stock channel
    /// 8. booking status channel
    /// 9. seconds the settled record stays in Redis
    pub async fn apply(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        record: &BookingRecord,
        status: BookingStatus,
        reason: Option<&str>,
    ) -> Result<Applied, fred::error::Error> {
        let script_keys = vec![
            keys.booking(shard, record.id),
            keys.idempotency(shard, &record.idempotency_key),
            keys.stock(shard, record.ticket_tier_id),
            keys.pending(shard, record.ticket_tier_id),
            keys.held(shard, record.concert_id, &record.user_email),
        ];
        let args = vec![
            status.as_str().to_owned(),
            reason.unwrap_or_default().to_owned(),
            record.quantity.to_string(),
            record.id.to_string(),
            record.concert_id.to_string(),
            record.ticket_tier_id.to_string(),
            keys.stock_channel(),
            keys.booking_status_channel(),
            IDEMPOTENCY_TTL_SECONDS.to_string(),
        ];
        let applied: i64 = self
            .0
            .evalsha_with_reload(client, script_keys, args)
            .await?;
        Ok(match applied {
            1 => Applied::Now,
            0 => Applied::Already,
            _ => Applied::Unknown,
        })
    }
}
