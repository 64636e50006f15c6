//! `lua/queue_join.lua`, `lua/queue_draw.lua` and `lua/queue_admit.lua`: a concert's waiting
//! room, every key on the concert's shard.

use domain::ids::{ConcertId, QueueTicketId, Shard, TierId};
use fred::prelude::{Client, KeysInterface};
use fred::types::Value;
use fred::types::scripts::Script;

use super::{Replication, Reply, ScriptError, Verify, acknowledged, deciding, decode, integer};
use crate::keys::{Keyspace, RoomKey};

/// What joining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new ticket: its arrival number, its place (`None` for an early joiner until the draw),
    /// how far admission has reached, and where the room stands.
    New {
        arrival: u64,
        place: Option<u64>,
        admitted: u64,
        state: RoomState,
    },
    /// The key joined before: its ticket.
    Known(QueueTicketId),
    /// The shard is recovering from a loss of Redis data.
    Recovering,
}

/// Where a room's admission stands, as `queue_admit.lua` records it in the room's clock and
/// publishes it with every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomState {
    /// Admitting at the room's rate.
    #[default]
    Open,
    /// No stock left, but unsettled bookings may still give tickets back: nobody is admitted,
    /// and nobody can tell how long that lasts.
    Paused,
    /// No stock left and none can come back.
    SoldOut,
}

impl RoomState {
    /// The state as the script writes it: `open`, `paused` or `soldout`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "paused" => Some(Self::Paused),
            "soldout" => Some(Self::SoldOut),
            _ => None,
        }
    }
}

/// The room state at `index` of `script`'s reply.
fn state_at(script: &'static str, reply: &[Value], index: usize) -> Result<RoomState, ScriptError> {
    reply
        .get(index)
        .and_then(Value::as_str)
        .as_deref()
        .and_then(RoomState::parse)
        .ok_or_else(|| ScriptError::reply(script, reply))
}

/// What one admission tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    Admitted {
        /// Places up to this one are admitted.
        up_to: u64,
        /// Admitted by this tick.
        now: u64,
        /// Tokens found expired unspent by this tick (their places were given to others).
        expired: u64,
        /// Everyone who ever joined.
        joined: u64,
        state: RoomState,
    },
    /// Another gateway holds the lease.
    NotHolder,
    /// The early joiners are not drawn yet.
    NotDrawn,
    Recovering,
}

/// What drawing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// Drawn now, or by another gateway before.
    Done,
    /// Sales are not open yet by Redis' clock.
    TooEarly,
    /// Someone joined early after the list was read: read it again.
    Changed,
}

/// The concert a waiting room belongs to, as its scripts need it.
#[derive(Debug, Clone, Copy)]
pub struct Room<'a> {
    pub concert_id: ConcertId,
    pub shard: Shard,
    /// Sales open at this unix time in milliseconds: joiners before it are drawn.
    pub opens_at_ms: i64,
    /// The room's keys expire at this unix time (a day after the concert).
    pub keep_until: i64,
    pub tiers: &'a [TierId],
}

impl Room<'_> {
    fn key(&self, keys: &Keyspace, what: RoomKey) -> String {
        keys.queue(self.shard, self.concert_id, what)
    }
}

/// Who admits, and how: one gateway's admitter of a room.
#[derive(Debug, Clone, Copy)]
pub struct Admitter<'a> {
    /// The gateway's name in the room's lease.
    pub owner: &'a str,
    pub per_second: u32,
    /// How long an admission token lasts, ms.
    pub token_ms: u64,
    /// How long the lease lasts unrenewed, ms.
    pub lease_ms: u64,
}

/// The room's three scripts, and the replicas what they tell a client (a ticket, a draw, an
/// admission) must reach first.
#[derive(Debug, Clone)]
pub struct QueueScripts {
    join: Script,
    draw: Script,
    admit: Script,
    replication: Replication,
}

impl Default for QueueScripts {
    fn default() -> Self {
        Self {
            join: deciding(include_str!("../../queue_join.lua")),
            draw: deciding(include_str!("../../queue_draw.lua")),
            admit: deciding(include_str!("../../queue_admit.lua")),
            replication: Replication::NONE,
        }
    }
}

impl QueueScripts {
    /// The scripts answering only once `replication`'s replicas hold what they answer: a
    /// failover then forgets no ticket handed out, no place drawn and no admission granted.
    pub fn with_replication(replication: Replication) -> Self {
        Self {
            replication,
            ..Self::default()
        }
    }

    /// The three scripts' texts as Redis runs them: `(file, source)`.
    pub fn sources(&self) -> [(&'static str, String); 3] {
        [
            ("queue_join.lua", super::text(&self.join)),
            ("queue_draw.lua", super::text(&self.draw)),
            ("queue_admit.lua", super::text(&self.admit)),
        ]
    }

    /// Joins `room` with a new ticket `ticket_id` for `email`, unless that email joined before.
    ///
    /// KEYS: 1. `epoch` 2. `queue:<concertId>:email:<email>` 3. `queue:<concertId>:seq`
    /// 4. `queue:<concertId>:early` 5. `queue:<concertId>:places` 6. `queue-ticket:<ticketId>`
    /// 7. `queue:<concertId>:admitted` 8. `queue:<concertId>:clock`
    ///
    /// ARGV: 1. the new ticket's id 2. the concert id 3. sales opening, unix ms 4. unix time the
    /// room's keys expire 5. the email
    pub async fn join(
        &self,
        client: &Client,
        keys: &Keyspace,
        room: &Room<'_>,
        ticket_id: QueueTicketId,
        email: &str,
        verify: &impl Verify,
    ) -> Result<Joined, ScriptError> {
        let script_keys = vec![
            keys.epoch(room.shard),
            keys.queue_place(room.shard, room.concert_id, email),
            room.key(keys, RoomKey::Seq),
            room.key(keys, RoomKey::Early),
            room.key(keys, RoomKey::Places),
            keys.queue_ticket(room.shard, ticket_id),
            room.key(keys, RoomKey::Admitted),
            room.key(keys, RoomKey::Clock),
        ];
        let args = vec![
            ticket_id.to_string(),
            room.concert_id.to_string(),
            room.opens_at_ms.to_string(),
            room.keep_until.to_string(),
            email.to_owned(),
        ];
        let fence = keys.fence(room.shard);
        let reply = acknowledged(
            &self.join,
            client,
            script_keys,
            args,
            self.replication,
            fence,
            verify,
        )
        .await?;
        let (code, reply) = decode("queue_join.lua", reply)?;
        let number = |index| {
            integer(&reply, index)
                .and_then(|value| u64::try_from(value).ok())
                .ok_or_else(|| ScriptError::reply("queue_join.lua", &reply))
        };
        match code {
            Reply::Done => Ok(Joined::New {
                arrival: number(1)?,
                place: Some(number(2)?).filter(|place| *place > 0),
                admitted: number(3)?,
                state: state_at("queue_join.lua", &reply, 4)?,
            }),
            Reply::Known => reply
                .get(1)
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok())
                .map(Joined::Known)
                .ok_or_else(|| ScriptError::reply("queue_join.lua", &reply)),
            Reply::Recovering => Ok(Joined::Recovering),
            _ => Err(ScriptError::reply("queue_join.lua", &reply)),
        }
    }

    /// The ticket `email` joined `concert_id`'s room with before, changing nothing:
    /// what a join refused before the script (sales closed, the room removed) answers instead.
    /// With replication, a ticket found is answered once the replicas hold it.
    pub async fn joined_before(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        concert_id: ConcertId,
        email: &str,
    ) -> Result<Option<QueueTicketId>, ScriptError> {
        let known: Option<String> = client
            .get(keys.queue_place(shard, concert_id, email))
            .await?;
        let Some(known) = known else {
            return Ok(None);
        };
        let ticket = known
            .parse()
            .map_err(|_| ScriptError::reply("queue_join.lua", &known))?;
        self.replication.fence(client, keys.fence(shard)).await?;
        Ok(Some(ticket))
    }

    /// Gives the early joiners their places: `places` pairs each ticket of the early list (as
    /// read, `listed` of them) with the place it was drawn, one of the joiners' own arrival
    /// numbers.
    ///
    /// KEYS: 1. `queue:<concertId>:early` 2. `queue:<concertId>:places`
    /// 3. `queue:<concertId>:place-of`
    ///
    /// ARGV: 1. sales opening, unix ms 2. unix time the room's keys expire 3. how many tickets the
    /// early list held when read 4... place and ticket, a pair a joiner
    pub async fn draw(
        &self,
        client: &Client,
        keys: &Keyspace,
        room: &Room<'_>,
        listed: usize,
        places: Vec<(u64, String)>,
        verify: &impl Verify,
    ) -> Result<Draw, ScriptError> {
        let script_keys = vec![
            room.key(keys, RoomKey::Early),
            room.key(keys, RoomKey::Places),
            room.key(keys, RoomKey::PlaceOf),
        ];
        let mut args = Vec::with_capacity(3 + 2 * places.len());
        args.extend([
            room.opens_at_ms.to_string(),
            room.keep_until.to_string(),
            listed.to_string(),
        ]);
        for (place, ticket) in places {
            args.push(place.to_string());
            args.push(ticket);
        }
        let fence = keys.fence(room.shard);
        let reply = acknowledged(
            &self.draw,
            client,
            script_keys,
            args,
            self.replication,
            fence,
            verify,
        )
        .await?;
        match decode("queue_draw.lua", reply)? {
            (Reply::Done | Reply::Known, _) => Ok(Draw::Done),
            (Reply::TooEarly, _) => Ok(Draw::TooEarly),
            (Reply::Changed, _) => Ok(Draw::Changed),
            (_, reply) => Err(ScriptError::reply("queue_draw.lua", reply)),
        }
    }

    /// One admission tick, by `admitter` if it holds or can take the room's lease.
    ///
    /// KEYS: 1. `epoch` 2. `queue:<concertId>:lease` 3. `queue:<concertId>:clock`
    /// 4. `queue:<concertId>:admitted` 5. `queue:<concertId>:seq` 6. `queue:<concertId>:places`
    /// 7. `queue:<concertId>:outstanding` 8. `queue:<concertId>:expiry` 9. `queue:<concertId>:early`,
    /// then `stock:<tierId>` of every tier, then `pending:<tierId>` of every tier
    ///
    /// ARGV: 1. owner 2. admissions per second 3. token lifetime, ms 4. lease, ms 5. the number
    /// of tiers 6. unix time the room's keys expire 7. the queue channel 8. the concert id
    pub async fn admit(
        &self,
        client: &Client,
        keys: &Keyspace,
        room: &Room<'_>,
        admitter: Admitter<'_>,
        verify: &impl Verify,
    ) -> Result<Tick, ScriptError> {
        let mut script_keys = vec![
            keys.epoch(room.shard),
            room.key(keys, RoomKey::Lease),
            room.key(keys, RoomKey::Clock),
            room.key(keys, RoomKey::Admitted),
            room.key(keys, RoomKey::Seq),
            room.key(keys, RoomKey::Places),
            room.key(keys, RoomKey::Outstanding),
            room.key(keys, RoomKey::Expiry),
            room.key(keys, RoomKey::Early),
        ];
        script_keys.extend(room.tiers.iter().map(|tier| keys.stock(room.shard, *tier)));
        script_keys.extend(
            room.tiers
                .iter()
                .map(|tier| keys.pending(room.shard, *tier)),
        );
        let args = vec![
            admitter.owner.to_owned(),
            admitter.per_second.to_string(),
            admitter.token_ms.to_string(),
            admitter.lease_ms.to_string(),
            room.tiers.len().to_string(),
            room.keep_until.to_string(),
            keys.queue_channel(),
            room.concert_id.to_string(),
        ];
        let fence = keys.fence(room.shard);
        let reply = acknowledged(
            &self.admit,
            client,
            script_keys,
            args,
            self.replication,
            fence,
            verify,
        )
        .await?;
        let (code, reply) = decode("queue_admit.lua", reply)?;
        let number = |index| {
            integer(&reply, index)
                .and_then(|value| u64::try_from(value).ok())
                .ok_or_else(|| ScriptError::reply("queue_admit.lua", &reply))
        };
        match code {
            Reply::Done => Ok(Tick::Admitted {
                up_to: number(1)?,
                now: number(2)?,
                expired: number(3)?,
                joined: number(4)?,
                state: state_at("queue_admit.lua", &reply, 5)?,
            }),
            Reply::NotHolder => Ok(Tick::NotHolder),
            Reply::NotDrawn => Ok(Tick::NotDrawn),
            Reply::Recovering => Ok(Tick::Recovering),
            _ => Err(ScriptError::reply("queue_admit.lua", &reply)),
        }
    }
}
