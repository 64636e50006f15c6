//! Shards, and the ids that name one. Booking ids are UUIDv7 (time-ordered, so Postgres indexes
//! stay compact) whose last byte, one of the random ones, names the booking's shard. Any process
//! can then find a booking's Redis record from its id alone, with one lookup and no directory.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// One logical shard: a concert and every booking of it live on one, and its Redis keys share a
/// hash tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(u8);

impl Shard {
    pub fn new(index: u8) -> Self {
        Self(index)
    }

    pub fn index(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Declares an id type: a UUID that cannot be taken for another kind's, shown, parsed and
/// stored as the plain UUID (and, with the `postgres` feature, a `uuid` column).
macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[cfg_attr(feature = "postgres", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }
    )*};
}

ids! {
    /// A concert.
    ConcertId;
    /// A ticket tier of a concert.
    TierId;
    /// A booking: a UUIDv7 whose last byte names its shard.
    BookingId;
    /// A waiting-room ticket: made like a booking id, so it names its shard too.
    QueueTicketId;
}

/// The shard a shard-naming id's last byte names, if it is one this deployment could have made.
fn named_shard(id: Uuid, shard_count: u8) -> Option<Shard> {
    let index = id.as_bytes()[15];
    (index < shard_count).then(|| Shard::new(index))
}

/// A UUIDv7 whose last byte, one of the random ones, is `shard`.
fn on_shard(shard: Shard) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[15] = shard.index();
    Uuid::from_bytes(bytes)
}

impl BookingId {
    /// A new booking id on `shard`.
    pub fn new(shard: Shard) -> Self {
        Self(on_shard(shard))
    }

    /// The shard this id names, if it is one of `shard_count`.
    pub fn shard(self, shard_count: u8) -> Option<Shard> {
        named_shard(self.0, shard_count)
    }
}

impl QueueTicketId {
    /// A new ticket id on `shard`.
    pub fn new(shard: Shard) -> Self {
        Self(on_shard(shard))
    }

    /// The shard this id names, if it is one of `shard_count`.
    pub fn shard(self, shard_count: u8) -> Option<Shard> {
        named_shard(self.0, shard_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_id_remembers_its_shard_and_stays_a_v7() {
        let id = BookingId::new(Shard::new(7));
        assert_eq!(id.uuid().get_version_num(), 7);
        assert_eq!(id.shard(16), Some(Shard::new(7)));
        assert_eq!(id.shard(4), None);
    }

    #[test]
    fn booking_ids_are_time_ordered() {
        let first = BookingId::new(Shard::new(1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = BookingId::new(Shard::new(0));
        assert!(first < second);
    }

    #[test]
    fn ids_read_and_print_as_their_uuid() {
        let uuid = Uuid::new_v4();
        let id = ConcertId::from_uuid(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(uuid.to_string().parse::<ConcertId>().ok(), Some(id));
        assert_eq!(
            serde_json::to_string(&id).ok(),
            serde_json::to_string(&uuid).ok()
        );
        assert!("not-an-id".parse::<TierId>().is_err());
    }
}
