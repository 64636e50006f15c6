//! The Redis keyspace.
//!
//! A concert belongs to one of `shards` logical shards, chosen when it is created and stored with
//! it in Postgres. Every key of a shard starts with the hash tag `{<prefix>:<shard>}`, so all keys
//! one script touches hash to the same Redis Cluster slot and scripts run unchanged on a cluster.
//! Channels are not keys and carry only the prefix.
//!
//! | key | type | holds | lifetime |
//! | --- | --- | --- | --- |
//! | `{p:s}:epoch` | string (integer) | the shard's epoch; absent while the shard is unready or recovering, when every script on it refuses | set by recovery |
//! | `{p:s}:run-id` | string | the `run_id` of the Redis server the epoch was set on; another one means that server restarted or failed over | set by recovery |
//! | `{p:s}:stock:<tierId>` | string (integer) | tickets still available in the tier | set by recovery and concert creation |
//! | `{p:s}:pending:<tierId>` | string (integer) | tickets in accepted bookings not yet settled | set by recovery |
//! | `{p:s}:idem:<concertId>:<idempotencyKey>` | string | `<bookingId> <fingerprint>`: the booking the key made and the request that made it | 24 h |
//! | `{p:s}:booking:<bookingId>` | hash | `b` the packed booking, `s` its status, `r` why it failed | until settled, then an hour; Postgres answers after |
//! | `{p:s}:held:<concertId>` | hash | customer's email -> tickets they hold for the concert (pending + confirmed); one hash per concert, since a key of its own with an expiry cost each booking about a tenth of Redis' rate | a day after the concert, from the settler's sweep (a booking creates it without one) |
//! | `{p:s}:queue:<concertId>:seq` | string (integer) | people who joined the concert's waiting room | until a day after the concert |
//! | `{p:s}:queue:<concertId>:early` | list | tickets of those who joined before sales opened (or before a postponed opening), in arrival order, until their draw; admission waits while it holds any | until the draw |
//! | `{p:s}:queue:<concertId>:places` | hash | place in line -> ticket id (late joiners at joining, early ones at the draw) | until a day after the concert |
//! | `{p:s}:queue:<concertId>:admitted` | string (integer) | how far admission has reached: places up to it are admitted | until a day after the concert |
//! | `{p:s}:queue:<concertId>:clock` | hash | the admitter's `last` tick (ms), its fractional `carry` of admissions and the room's `state` (`open`, `paused`, `soldout`) | until a day after the concert |
//! | `{p:s}:queue:<concertId>:lease` | string | the gateway admitting for the concert now | a few seconds, renewed while it lives |
//! | `{p:s}:queue:<concertId>:place-of` | hash | early joiner's ticket id -> the place the draw gave it (one of the drawn joiners' arrival numbers) | until a day after the concert |
//! | `{p:s}:queue:<concertId>:expiry` | hash | admitted ticket id -> its token's expiry (unix ms) | until a day after the concert |
//! | `{p:s}:queue:<concertId>:spent` | hash | admitted ticket id -> the booking its admission was spent on (rebuilt by recovery from the bookings' rows) | until a day after the concert |
//! | `{p:s}:queue:<concertId>:outstanding` | sorted set | admitted tickets not yet spent, by the expiry of their token | until spent or expired |
//! | `{p:s}:queue:<concertId>:email:<email>` | string | the ticket that email joined with: one place per person | until a day after the concert |
//! | `{p:s}:queue-ticket:<ticketId>` | hash | `c` concert id, `n` arrival number, `m` the email that joined (its admission books for it alone), `e` 1 for an early joiner (its place is in `place-of`; a late one's place is its arrival number) | until a day after the concert |
//! | `{p:s}:fence` | string (integer) | counts replays that waited for the replicas; written only so that `WAIT` covers every earlier write | none (one small key per shard) |
//! | `{p:s}:bookings` | stream | accepted bookings waiting for settlement: `b` the packed booking, `e` the epoch it was accepted in (group `settlers`) | trimmed behind the oldest unacknowledged entry |
//!
//! | channel | payload |
//! | --- | --- |
//! | `<p>:stock` | `<concertId> <tierId> <available>` after every stock change |
//! | `<p>:booking-status` | `<bookingId> <status>` when a booking settles |
//! | `<p>:catalog` | `<concertId>` when a concert is created or changed: other gateways reload their catalog |
//! | `<p>:queue` | `<concertId> <admittedUpTo> <open\|paused\|soldout>` after every admission tick |

use domain::ids::{BookingId, ConcertId, QueueTicketId, Shard, TierId};
use uuid::Uuid;

/// How long an idempotency record lives in Redis (and is rebuilt from Postgres after a loss).
pub const IDEMPOTENCY_TTL_SECONDS: u64 = 24 * 60 * 60;
/// The consumer group every settler joins on every shard's stream.
pub const SETTLER_GROUP: &str = "settlers";

/// A customer's held count for a concert outlives the concert by this long.
pub const HELD_GRACE_SECONDS: i64 = 24 * 60 * 60;

/// Unix seconds until which a customer's held count for a concert on `date` is kept.
pub fn held_until(date: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> i64 {
    date.max(now).timestamp() + HELD_GRACE_SECONDS
}

/// How long a settled booking's record stays in Redis for cheap reads; Postgres answers after.
pub const SETTLED_RECORD_TTL_SECONDS: u64 = 60 * 60;

/// The key names of one deployment (one `KEY_PREFIX`).
#[derive(Clone, Debug)]
pub struct Keyspace {
    prefix: String,
    shard_count: u8,
}

impl Keyspace {
    /// `prefix` must not contain `{` or `}` (`runtime::config::key_prefix` refuses them).
    pub fn new(prefix: impl Into<String>, shard_count: u8) -> Self {
        Self {
            prefix: prefix.into(),
            shard_count: shard_count.max(1),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn shard_count(&self) -> u8 {
        self.shard_count
    }

    /// The shard a new concert is placed on; stored with the concert, so changing the shard count
    /// later moves nothing that exists.
    pub fn shard_for_new_concert(&self, concert_id: ConcertId) -> Shard {
        let hash = concert_id.uuid().as_bytes().iter().fold(0u32, |acc, byte| {
            acc.wrapping_mul(31).wrapping_add(u32::from(*byte))
        });
        // The modulo of a u8 count always fits in a u8.
        Shard::new((hash % u32::from(self.shard_count)) as u8)
    }

    /// Every shard, for consumers that read all streams.
    pub fn shards(&self) -> impl Iterator<Item = Shard> + use<> {
        (0..self.shard_count).map(Shard::new)
    }

    /// `{prefix:shard}` followed by `parts`, written into one allocation: keys are built for
    /// every booking, and the formatting machinery costs several times the copying.
    fn key(&self, shard: Shard, parts: &[&str]) -> String {
        let mut shard_digits = [0u8; 3];
        let shard_text = u8_text(shard.index(), &mut shard_digits);
        let length = self.prefix.len()
            + shard_text.len()
            + 3
            + parts.iter().map(|part| part.len()).sum::<usize>();
        let mut key = String::with_capacity(length);
        key.push('{');
        key.push_str(&self.prefix);
        key.push(':');
        key.push_str(shard_text);
        key.push('}');
        for part in parts {
            key.push_str(part);
        }
        key
    }

    pub fn epoch(&self, shard: Shard) -> String {
        self.key(shard, &[":epoch"])
    }

    pub fn run_id(&self, shard: Shard) -> String {
        self.key(shard, &[":run-id"])
    }

    pub fn stock(&self, shard: Shard, tier_id: TierId) -> String {
        let mut buffer = Uuid::encode_buffer();
        self.key(shard, &[":stock:", id_text(tier_id, &mut buffer)])
    }

    pub fn pending(&self, shard: Shard, tier_id: TierId) -> String {
        let mut buffer = Uuid::encode_buffer();
        self.key(shard, &[":pending:", id_text(tier_id, &mut buffer)])
    }

    /// Idempotency keys are scoped to a concert: one purchase attempt is for one concert, and
    /// keeping the record on the concert's shard keeps booking to one Redis round trip.
    pub fn idempotency(
        &self,
        shard: Shard,
        concert_id: ConcertId,
        idempotency_key: &str,
    ) -> String {
        let mut buffer = Uuid::encode_buffer();
        let concert = id_text(concert_id, &mut buffer);
        self.key(shard, &[":idem:", concert, ":", idempotency_key])
    }

    pub fn booking(&self, shard: Shard, booking_id: BookingId) -> String {
        let mut buffer = Uuid::encode_buffer();
        self.key(shard, &[":booking:", id_text(booking_id, &mut buffer)])
    }

    /// The concert's held counts: a hash from customer email to tickets.
    pub fn held(&self, shard: Shard, concert_id: ConcertId) -> String {
        let mut buffer = Uuid::encode_buffer();
        self.key(shard, &[":held:", id_text(concert_id, &mut buffer)])
    }

    pub fn stream(&self, shard: Shard) -> String {
        self.key(shard, &[":bookings"])
    }

    /// A counter written only so that a `WAIT` after it covers everything the master wrote
    /// before (see [`crate::scripts::Replication::fence`]).
    pub fn fence(&self, shard: Shard) -> String {
        self.key(shard, &[":fence"])
    }

    pub fn stock_channel(&self) -> String {
        format!("{}:stock", self.prefix)
    }

    pub fn booking_status_channel(&self) -> String {
        format!("{}:booking-status", self.prefix)
    }

    pub fn catalog_channel(&self) -> String {
        format!("{}:catalog", self.prefix)
    }

    /// One of a concert's waiting room's keys.
    pub fn queue(&self, shard: Shard, concert_id: ConcertId, key: RoomKey) -> String {
        self.room_key(shard, concert_id, &[key.suffix()])
    }

    fn room_key(&self, shard: Shard, concert_id: ConcertId, suffix: &[&str]) -> String {
        let mut buffer = Uuid::encode_buffer();
        let concert = id_text(concert_id, &mut buffer);
        let mut parts = vec![":queue:", concert, ":"];
        parts.extend_from_slice(suffix);
        self.key(shard, &parts)
    }

    /// A ticket's id names its shard (see `ids`), so it is found without its concert.
    pub fn queue_ticket(&self, shard: Shard, ticket_id: QueueTicketId) -> String {
        let mut buffer = Uuid::encode_buffer();
        self.key(shard, &[":queue-ticket:", id_text(ticket_id, &mut buffer)])
    }

    /// The place `email` holds in the concert's room: one per person.
    pub fn queue_place(&self, shard: Shard, concert_id: ConcertId, email: &str) -> String {
        self.room_key(shard, concert_id, &["email:", email])
    }

    pub fn queue_channel(&self) -> String {
        format!("{}:queue", self.prefix)
    }
}

/// The fields of a `queue-ticket` hash.
pub mod ticket_field {
    /// The concert's id.
    pub const CONCERT: &str = "c";
    /// The arrival number.
    pub const ARRIVAL: &str = "n";
    /// `1` for an early joiner.
    pub const EARLY: &str = "e";
    /// The email that joined.
    pub const EMAIL: &str = "m";
}

/// The keys of a concert's waiting room, as the table above names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKey {
    Seq,
    Early,
    Places,
    Admitted,
    Clock,
    Lease,
    PlaceOf,
    Expiry,
    Spent,
    Outstanding,
}

impl RoomKey {
    fn suffix(self) -> &'static str {
        match self {
            Self::Seq => "seq",
            Self::Early => "early",
            Self::Places => "places",
            Self::Admitted => "admitted",
            Self::Clock => "clock",
            Self::Lease => "lease",
            Self::PlaceOf => "place-of",
            Self::Expiry => "expiry",
            Self::Spent => "spent",
            Self::Outstanding => "outstanding",
        }
    }
}

/// `id` in its hyphenated lower-case form, written into `buffer`.
fn id_text(id: impl Into<Uuid>, buffer: &mut [u8; 45]) -> &str {
    id.into().hyphenated().encode_lower(buffer)
}

/// `value` in decimal, written into `digits`.
fn u8_text(value: u8, digits: &mut [u8; 3]) -> &str {
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + rest % 10;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[start..]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_as_documented() {
        let keys = Keyspace::new("tix", 200);
        let id: Uuid = "0193a5f2-7c1e-7a11-8000-00000000abcd"
            .parse()
            .expect("a uuid");
        for (shard, digits) in [(0, "0"), (7, "7"), (42, "42"), (199, "199")] {
            let shard = Shard::new(shard);
            assert_eq!(keys.epoch(shard), format!("{{tix:{digits}}}:epoch"));
            assert_eq!(
                keys.stock(shard, id.into()),
                format!("{{tix:{digits}}}:stock:{id}")
            );
            assert_eq!(
                keys.idempotency(shard, id.into(), "k-1"),
                format!("{{tix:{digits}}}:idem:{id}:k-1")
            );
            assert_eq!(
                keys.held(shard, id.into()),
                format!("{{tix:{digits}}}:held:{id}")
            );
            assert_eq!(
                keys.queue(shard, id.into(), RoomKey::Spent),
                format!("{{tix:{digits}}}:queue:{id}:spent")
            );
        }
    }

    #[test]
    fn every_key_of_a_shard_shares_one_hash_tag() {
        let keys = Keyspace::new("tix", 16);
        let shard = Shard::new(3);
        let id = Uuid::nil();
        for key in [
            keys.stock(shard, id.into()),
            keys.idempotency(shard, id.into(), "k{1}"),
            keys.epoch(shard),
            keys.run_id(shard),
            keys.booking(shard, id.into()),
            keys.held(shard, id.into()),
            keys.stream(shard),
            keys.pending(shard, id.into()),
        ] {
            assert!(key.starts_with("{tix:3}:"), "{key}");
        }
    }

    #[test]
    fn new_concerts_spread_over_all_shards() {
        let keys = Keyspace::new("tix", 4);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(keys.shard_for_new_concert(Uuid::new_v4().into()));
        }
        assert_eq!(seen.len(), 4);
    }
}
