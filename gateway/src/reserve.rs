//! The reservation script (`lua/reserve.lua`): the one Redis call of the booking path.

use std::collections::HashMap;

use fred::prelude::Client;
use fred::types::Value;
use fred::types::scripts::Script;

use booking::keys::{IDEMPOTENCY_TTL_SECONDS, Keyspace, Shard};
use booking::record::{BookingRecord, RecordError};

/// What the script decided.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Stock taken, booking recorded and appended to the stream; `available` is left.
    Accepted { available: i64 },
    /// The key is known with the same request: the booking as it is now.
    Replayed(Box<BookingRecord>),
    /// The key is known with a different request.
    KeyReused,
    /// Fewer than the requested tickets are left.
    OutOfStock { available: i64 },
    /// The customer already holds `held` tickets of the concert.
    CustomerLimit { held: i64 },
    /// Redis holds no stock for the tier (it lost its data, or the tier is brand new).
    StockMissing,
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from the reservation script: {0}")]
    Reply(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// One reservation attempt, with everything the script needs.
#[derive(Debug)]
pub struct Reservation<'a> {
    /// The pending booking to record; its id, tier and concert name the keys.
    pub record: &'a BookingRecord,
    pub shard: Shard,
    /// What makes two requests "the same" under one idempotency key.
    pub fingerprint: String,
    /// Tickets one customer may hold per concert; 0 means no limit.
    pub max_per_customer: u32,
    /// Unix seconds when the customer's held count may be forgotten.
    pub held_expires_at: i64,
}

/// The loaded script; cheap to share.
#[derive(Debug, Clone)]
pub struct ReserveScript(Script);

impl Default for ReserveScript {
    fn default() -> Self {
        Self(Script::from_lua(include_str!("../../lua/reserve.lua")))
    }
}

impl ReserveScript {
    /// Loads the script into Redis' script cache ahead of the first booking.
    pub async fn load(&self, client: &Client) -> Result<(), fred::error::Error> {
        self.0.load(client).await
    }

    /// Runs the script by SHA, loading it again if Redis answers NOSCRIPT (after a restart or a
    /// failover the script cache is empty).
    ///
    /// KEYS (all on the booking's shard, so one hash tag):
    /// 1. `stock:<tierId>`: available tickets
    /// 2. `idem:<idempotencyKey>`: the idempotency record
    /// 3. `booking:<bookingId>`: the booking record
    /// 4. `held:<concertId>:<email>`: tickets the customer holds for the concert
    /// 5. `bookings`: the shard's stream
    /// 6. `pending:<tierId>`: tickets of the tier in unsettled bookings
    ///
    /// ARGV:
    /// 1. request fingerprint
    /// 2. quantity
    /// 3. tickets one customer may hold per concert (0: no limit)
    /// 4. lifetime of the idempotency record, seconds
    /// 5. unix time the held count expires
    /// 6. stock channel
    /// 7. concert id
    /// 8. tier id (7 and 8 name the stock event)
    /// 9. and on: the booking record as field/value pairs
    pub async fn run(
        &self,
        client: &Client,
        keys: &Keyspace,
        reservation: &Reservation<'_>,
    ) -> Result<Outcome, ReserveError> {
        let record = reservation.record;
        let shard = reservation.shard;
        let script_keys = vec![
            keys.stock(shard, record.ticket_tier_id),
            keys.idempotency(shard, &record.idempotency_key),
            keys.booking(shard, record.id),
            keys.held(shard, record.concert_id, &record.user_email),
            keys.stream(shard),
            keys.pending(shard, record.ticket_tier_id),
        ];
        let mut args = vec![
            reservation.fingerprint.clone(),
            record.quantity.to_string(),
            reservation.max_per_customer.to_string(),
            IDEMPOTENCY_TTL_SECONDS.to_string(),
            reservation.held_expires_at.to_string(),
            keys.stock_channel(),
            record.concert_id.to_string(),
            record.ticket_tier_id.to_string(),
        ];
        for (name, value) in record.to_fields() {
            args.push(name.to_owned());
            args.push(value);
        }
        let reply: Value = self
            .0
            .evalsha_with_reload(client, script_keys, args)
            .await?;
        parse_reply(reply)
    }
}

fn parse_reply(reply: Value) -> Result<Outcome, ReserveError> {
    let Value::Array(mut parts) = reply else {
        return Err(ReserveError::Reply(format!("{reply:?}")));
    };
    let detail = if parts.len() > 1 { parts.pop() } else { None };
    let code = parts.first().and_then(Value::as_i64);
    let number = |detail: Option<Value>| {
        detail
            .as_ref()
            .and_then(Value::as_i64)
            .ok_or_else(|| ReserveError::Reply(format!("missing count: {detail:?}")))
    };
    match code {
        Some(0) => Ok(Outcome::Accepted {
            available: number(detail)?,
        }),
        Some(1) => {
            let fields = match detail {
                Some(Value::Array(items)) => pairs(items)?,
                other => {
                    return Err(ReserveError::Reply(format!(
                        "replay without fields: {other:?}"
                    )));
                }
            };
            Ok(Outcome::Replayed(Box::new(BookingRecord::from_fields(
                &fields,
            )?)))
        }
        Some(2) => Ok(Outcome::KeyReused),
        Some(3) => Ok(Outcome::OutOfStock {
            available: number(detail)?,
        }),
        Some(4) => Ok(Outcome::CustomerLimit {
            held: number(detail)?,
        }),
        Some(5) => Ok(Outcome::StockMissing),
        _ => Err(ReserveError::Reply(format!("unknown code {code:?}"))),
    }
}

/// A flat `[field, value, field, value, ...]` reply as a map.
pub fn pairs(items: Vec<Value>) -> Result<HashMap<String, String>, ReserveError> {
    let mut fields = HashMap::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        match (name.into_string(), value.into_string()) {
            (Some(name), Some(value)) => {
                fields.insert(name, value);
            }
            _ => return Err(ReserveError::Reply("non-string field in record".to_owned())),
        }
    }
    Ok(fields)
}
