//! Shards, and the ids that name one. Booking ids are UUIDv7 (time-ordered, so Postgres indexes
//! stay compact) whose last byte, one of the random ones, names the booking's shard. Any process
//! can then find a booking's Redis record from its id alone, with one lookup and no directory.

use std::fmt;

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

/// A new booking id on `shard`.
pub fn new_booking_id(shard: Shard) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[15] = shard.index();
    Uuid::from_bytes(bytes)
}

/// A waiting-room ticket's id: made like a booking's, so it names its shard too.
pub fn new_queue_ticket_id(shard: Shard) -> Uuid {
    new_booking_id(shard)
}

/// The shard a queue ticket's id names, if it is one this deployment could have made.
pub fn shard_of_queue_ticket(id: Uuid, shard_count: u8) -> Option<Shard> {
    shard_of_booking(id, shard_count)
}

/// The shard a booking id names, if it is one this deployment could have made.
pub fn shard_of_booking(id: Uuid, shard_count: u8) -> Option<Shard> {
    let index = id.as_bytes()[15];
    (index < shard_count).then(|| Shard::new(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_id_remembers_its_shard_and_stays_a_v7() {
        let id = new_booking_id(Shard::new(7));
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(shard_of_booking(id, 16), Some(Shard::new(7)));
        assert_eq!(shard_of_booking(id, 4), None);
    }

    #[test]
    fn booking_ids_are_time_ordered() {
        let first = new_booking_id(Shard::new(1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_booking_id(Shard::new(0));
        assert!(first < second);
    }
}
