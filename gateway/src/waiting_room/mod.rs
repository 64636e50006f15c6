//! Waiting rooms (DESIGN "Sales windows and the waiting room"): people join a concert's queue,
//! early joiners are drawn into a random order at opening, later ones queue in arrival order, and
//! one admitter at a time across all gateways lets places in at the concert's rate. A place's
//! position is its number minus how far admission has reached, so a tick costs the same for any
//! number of people waiting.

pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::{HashesInterface, KeysInterface, ListInterface, Pool};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use domain::ids::{ConcertId, QueueTicketId, Shard, TierId};
use domain::record::format_timestamp;
use domain::values::Email;
use redis_store::keys::{Keyspace, RoomKey, held_until, ticket_field};
use redis_store::recovery::ShardGuard;
use redis_store::scripts::queue::{Admitter, Draw, Joined, QueueScripts, Room, RoomState, Tick};
use redis_store::scripts::{Replication, ScriptError};

use crate::catalog::{CatalogHandle, Concert};
use crate::metrics;
use token::AdmissionSecret;

/// How often each gateway runs (or tries to run) every open room's admission tick: admissions
/// come a tenth of a second's worth at a time, not in one burst a second.
const TICK: Duration = Duration::from_millis(100);
/// How long a room's admitter holds its lease without renewing it: another gateway takes over
/// within this long of the holder dying.
const LEASE: Duration = Duration::from_secs(1);

/// Why a waiting room could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("concert {0} sells without a waiting room: book directly")]
    NoWaitingRoom(ConcertId),
    #[error("sales closed at {}", format_timestamp(closed_at))]
    SalesClosed { closed_at: DateTime<Utc> },
    #[error("queue ticket {0} does not exist")]
    TicketNotFound(QueueTicketId),
    #[error("shard {0} is recovering from a loss of Redis data")]
    Recovering(Shard),
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Written on the master, not yet on enough replicas: the client may ask again.
    #[error("the write reached {acked} of {wanted} replicas in time")]
    NotReplicated { acked: i64, wanted: u8 },
    #[error(transparent)]
    Script(ScriptError),
}

impl From<ScriptError> for QueueError {
    fn from(error: ScriptError) -> Self {
        match error {
            ScriptError::Redis(error) => QueueError::Redis(error),
            ScriptError::NotReplicated { acked, wanted } => {
                QueueError::NotReplicated { acked, wanted }
            }
            other => QueueError::Script(other),
        }
    }
}

/// The waiting rooms: their scripts, secret and keys, shared by the handlers and the admitter.
#[derive(Debug)]
pub struct WaitingRooms {
    redis: Pool,
    keys: Keyspace,
    guard: Arc<ShardGuard>,
    catalog: Arc<CatalogHandle>,
    scripts: QueueScripts,
    secret: AdmissionSecret,
    token_ttl: Duration,
    /// This gateway's name as a room's admitter.
    owner: String,
}

/// A queue ticket as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    pub id: QueueTicketId,
    pub concert_id: ConcertId,
    /// People ahead plus one while waiting, 0 once admitted; `null` for an early joiner until
    /// the draw at opening.
    pub position: Option<u64>,
    pub admitted: bool,
    /// The credential that reads this ticket: `?token=` on `GET /api/queue/{id}` and its
    /// `/events`. The id alone reads nothing.
    pub ticket_token: String,
    /// True once the concert sold out before this ticket was admitted.
    pub sold_out: bool,
    /// True while admission is paused: no tickets are left, but unsettled bookings may still give
    /// some back. Nobody is admitted meanwhile, so no wait can be told from the position.
    pub paused: bool,
    /// Sent as `Admission-Token` with the booking, once admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
    /// When the token stops admitting.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// `{"queueTicket": ...}`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketEnvelope {
    pub queue_ticket: TicketView,
}

/// What is known of a ticket, read from Redis.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: QueueTicketId,
    pub concert_id: ConcertId,
    pub shard: Shard,
    /// `None` for an early joiner until the draw.
    pub place: Option<u64>,
    /// Its token's expiry (unix ms), once admitted.
    pub expires_at_ms: Option<i64>,
    /// Who joined with it: its admission books for this email alone.
    pub email: String,
    /// Its credential ([`AdmissionSecret::ticket_token`]), made once when the ticket is read: a
    /// stream sends the ticket at every admission tick, an HMAC each time would cost every one.
    pub token: String,
}

impl Ticket {
    pub fn position(&self, admitted: u64) -> Option<u64> {
        match self.expires_at_ms {
            Some(_) => Some(0),
            None => self
                .place
                .map(|place| place.saturating_sub(admitted).max(1)),
        }
    }
}

fn room<'t>(concert: &Concert, tiers: &'t [TierId], now: DateTime<Utc>) -> Room<'t> {
    Room {
        concert_id: concert.id,
        shard: concert.shard,
        opens_at_ms: concert.sales_open_at.timestamp_millis(),
        keep_until: held_until(concert.date, now),
        tiers,
    }
}

/// What the waiting rooms run on: Redis, its keys and shard guard, and the catalog.
#[derive(Debug, Clone)]
pub struct Backing {
    pub redis: Pool,
    pub keys: Keyspace,
    pub guard: Arc<ShardGuard>,
    pub catalog: Arc<CatalogHandle>,
    /// The replicas a ticket, a draw or an admission reaches before anyone is told of it.
    pub replication: Replication,
}

impl WaitingRooms {
    pub fn new(backing: Backing, secret: AdmissionSecret, token_ttl: Duration) -> Self {
        let Backing {
            redis,
            keys,
            guard,
            catalog,
            replication,
        } = backing;
        Self {
            redis,
            keys,
            guard,
            catalog,
            scripts: QueueScripts::with_replication(replication),
            secret,
            token_ttl,
            owner: Uuid::now_v7().to_string(),
        }
    }

    pub fn secret(&self) -> &AdmissionSecret {
        &self.secret
    }

    /// Joins `concert`'s waiting room for `email`: one place per email, so a second join answers
    /// the first place, even once the room would refuse a new join.
    pub async fn join(
        &self,
        concert: &Concert,
        email: &Email,
    ) -> Result<(TicketView, bool), QueueError> {
        let now = Utc::now();
        let refusal = if concert.admit_per_second.is_none() {
            Some(QueueError::NoWaitingRoom(concert.id))
        } else if now >= concert.sales_close_at {
            Some(QueueError::SalesClosed {
                closed_at: concert.sales_close_at,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let earlier = self
                .scripts
                .joined_before(
                    self.redis.next(),
                    &self.keys,
                    concert.shard,
                    concert.id,
                    email.as_str(),
                )
                .await?;
            return match earlier {
                Some(id) => Ok((self.ticket_view(id).await?, false)),
                None => Err(refusal),
            };
        }
        let ticket_id = QueueTicketId::new(concert.shard);
        let tiers: Vec<TierId> = concert.tiers.iter().map(|tier| tier.id).collect();
        let joined = self
            .scripts
            .join(
                self.redis.next(),
                &self.keys,
                &room(concert, &tiers, now),
                ticket_id,
                email.as_str(),
                &*self.guard,
            )
            .await?;
        match joined {
            Joined::New {
                place,
                admitted,
                state,
                ..
            } => {
                let ticket = Ticket {
                    id: ticket_id,
                    concert_id: concert.id,
                    shard: concert.shard,
                    place,
                    expires_at_ms: None,
                    email: email.as_str().to_owned(),
                    token: self.secret.ticket_token(ticket_id),
                };
                Ok((self.view(&ticket, admitted, state), true))
            }
            Joined::Known(id) => Ok((self.ticket_view(id).await?, false)),
            Joined::Recovering => {
                self.guard.wake();
                Err(QueueError::Recovering(concert.shard))
            }
        }
    }

    /// What the client is told of `ticket` when admission has reached `admitted` and the room
    /// is in `state`.
    pub fn view(&self, ticket: &Ticket, admitted: u64, state: RoomState) -> TicketView {
        let token = ticket.expires_at_ms.map(|expires| {
            self.secret
                .issue(ticket.concert_id, ticket.id, &ticket.email, expires)
        });
        TicketView {
            id: ticket.id,
            concert_id: ticket.concert_id,
            position: ticket.position(admitted),
            admitted: ticket.expires_at_ms.is_some(),
            ticket_token: ticket.token.clone(),
            sold_out: state == RoomState::SoldOut && ticket.expires_at_ms.is_none(),
            paused: state == RoomState::Paused && ticket.expires_at_ms.is_none(),
            admission_token: token,
            expires_at: ticket
                .expires_at_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .map(|at| format_timestamp(&at)),
        }
    }

    /// Reads `id` from Redis, with how far its room's admission has reached and where it stands.
    pub async fn read(&self, id: QueueTicketId) -> Result<(Ticket, u64, RoomState), QueueError> {
        let shard = id
            .shard(self.keys.shard_count())
            .ok_or(QueueError::TicketNotFound(id))?;
        let client = self.redis.next();
        let fields: HashMap<String, String> =
            client.hgetall(self.keys.queue_ticket(shard, id)).await?;
        let concert_id = fields
            .get(ticket_field::CONCERT)
            .and_then(|concert| concert.parse().ok())
            .ok_or(QueueError::TicketNotFound(id))?;
        let key = |what| self.keys.queue(shard, concert_id, what);
        // The rest in one round trip: a crowd opening its streams at once waits on Redis once
        // per stream, not four times.
        let rest = client.pipeline();
        let early = fields.get(ticket_field::EARLY).map(String::as_str) == Some("1");
        if early {
            rest.hget::<(), _, _>(key(RoomKey::PlaceOf), id.to_string())
                .await?;
        }
        rest.hget::<(), _, _>(key(RoomKey::Expiry), id.to_string())
            .await?;
        rest.get::<(), _>(key(RoomKey::Admitted)).await?;
        rest.hget::<(), _, _>(key(RoomKey::Clock), "state").await?;
        let mut replies: std::collections::VecDeque<fred::types::Value> =
            rest.all::<Vec<fred::types::Value>>().await?.into();
        let mut next = || replies.pop_front().unwrap_or(fred::types::Value::Null);
        let place = if early {
            next().convert::<Option<u64>>()?
        } else {
            fields
                .get(ticket_field::ARRIVAL)
                .and_then(|arrival| arrival.parse().ok())
        };
        let expires_at_ms: Option<i64> = next().convert()?;
        let admitted: Option<u64> = next().convert()?;
        let room_state: Option<String> = next().convert()?;
        let ticket = Ticket {
            id,
            concert_id,
            shard,
            place,
            expires_at_ms,
            email: fields.get(ticket_field::EMAIL).cloned().unwrap_or_default(),
            token: self.secret.ticket_token(id),
        };
        Ok((
            ticket,
            admitted.unwrap_or(0),
            room_state
                .as_deref()
                .and_then(RoomState::parse)
                .unwrap_or_default(),
        ))
    }

    /// Lets `token` read ticket `id` only if it is the ticket's credential; any other is told
    /// the ticket does not exist.
    pub fn authorize(&self, id: QueueTicketId, token: Option<&str>) -> Result<(), QueueError> {
        if self.secret.holds(id, token) {
            Ok(())
        } else {
            Err(QueueError::TicketNotFound(id))
        }
    }

    pub async fn ticket_view(&self, id: QueueTicketId) -> Result<TicketView, QueueError> {
        let (ticket, admitted, state) = self.read(id).await?;
        Ok(self.view(&ticket, admitted, state))
    }

    /// One tick of every room on sale: draws the early joiners where that is due, then admits.
    async fn tick(&self) {
        let now = Utc::now();
        let catalog = self.catalog.current();
        for concert in catalog.concerts() {
            let Some(per_second) = concert.admit_per_second else {
                continue;
            };
            if now < concert.sales_open_at || now >= concert.sales_close_at {
                continue;
            }
            let tiers: Vec<TierId> = concert.tiers.iter().map(|tier| tier.id).collect();
            let room = room(concert, &tiers, now);
            if let Err(error) = self.admit(&room, per_second).await {
                tracing::warn!(concert_id = %concert.id, %error, "admission tick failed; next tick retries");
            }
        }
    }

    async fn admit(&self, room: &Room<'_>, per_second: u32) -> Result<(), ScriptError> {
        let admitter = Admitter {
            owner: &self.owner,
            per_second,
            token_ms: u64::try_from(self.token_ttl.as_millis()).unwrap_or(u64::MAX),
            lease_ms: u64::try_from(LEASE.as_millis()).unwrap_or(1_000),
        };
        let tick = self
            .scripts
            .admit(self.redis.next(), &self.keys, room, admitter, &*self.guard)
            .await?;
        match tick {
            Tick::Admitted {
                up_to,
                now,
                expired,
                joined,
                ..
            } => metrics::waiting_room(room.concert_id, joined.saturating_sub(up_to), now, expired),
            Tick::NotDrawn => self.draw(room).await?,
            Tick::NotHolder => {}
            Tick::Recovering => self.guard.wake(),
        }
        Ok(())
    }

    /// Draws the early joiners' order (any gateway may; the first draw of a list stands): the
    /// places they are shuffled over are their own arrival numbers.
    async fn draw(&self, room: &Room<'_>) -> Result<(), ScriptError> {
        let client = self.redis.next();
        let order: Vec<String> = client
            .lrange(
                self.keys.queue(room.shard, room.concert_id, RoomKey::Early),
                0,
                -1,
            )
            .await?;
        let listed = order.len();
        // A ticket whose record is gone (it expired with its room) is drawn no place.
        let tickets: Vec<QueueTicketId> = order
            .iter()
            .filter_map(|ticket| ticket.parse().ok())
            .collect();
        let arrivals: Vec<Option<u64>> = if tickets.is_empty() {
            Vec::new()
        } else {
            let pipeline = client.pipeline();
            for ticket in &tickets {
                pipeline
                    .hget::<(), _, _>(
                        self.keys.queue_ticket(room.shard, *ticket),
                        ticket_field::ARRIVAL,
                    )
                    .await?;
            }
            pipeline
                .try_all::<Option<u64>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?
        };
        let (mut places, mut order): (Vec<u64>, Vec<String>) = arrivals
            .into_iter()
            .zip(&tickets)
            .filter_map(|(arrival, ticket)| Some((arrival?, ticket.to_string())))
            .unzip();
        places.sort_unstable();
        self.secret.draw(room.concert_id, &mut order);
        let drawn = order.len();
        let places = places.into_iter().zip(order).collect();
        match self
            .scripts
            .draw(client, &self.keys, room, listed, places, &*self.guard)
            .await?
        {
            Draw::Done => {
                tracing::info!(concert_id = %room.concert_id, drawn, "early joiners drawn");
            }
            Draw::TooEarly | Draw::Changed => {}
        }
        Ok(())
    }

    /// Ticks every open room until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => self.tick().await,
            }
        }
    }
}
