//! The live feed's source: one Redis pub/sub subscription per gateway process, fanned out to every
//! local event stream through broadcast channels.
//!
//! Stock changes arrive as the scripts published them (`<concertId> <tierId> <available>`, the
//! count after the change) and are framed once as an unnamed SSE event (so a client listening
//! with `EventSource.onmessage` alone receives it), shared by every client. Booking
//! status changes (`<bookingId> <status>`) go to a second channel, so a flood of settlements never crowds the stock feed. Both channels are bounded: a
//! client that falls behind loses its place and is sent a fresh snapshot instead (see `api::events`);
//! so is everyone after the subscription reconnects, since messages published meanwhile are lost.
//! A third channel says a concert was created, which wakes this gateway's catalog refresh; a
//! fourth carries each waiting room's admission ticks to the streams of the people waiting in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use domain::ids::{BookingId, ConcertId, TierId};
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy, Server,
};
use fred::types::Message;
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use redis_store::keys::Keyspace;
use redis_store::scripts::queue::RoomState;
use redis_store::stock::{StockChange, parse_status_message};

/// Events a stream client may fall behind by before it is resynchronised with a snapshot.
const STOCK_BUFFER: usize = 1024;
const STATUS_BUFFER: usize = 4096;
const QUEUE_BUFFER: usize = 1024;
/// Messages fred buffers between the socket and the fan-out task.
const SUBSCRIBER_BUFFER: usize = 8192;

/// One SSE event. `data` is compact JSON, so it is a single line.
pub fn frame(event: &str, id: u64, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
}

/// One unnamed SSE event, which browsers deliver as a `message`.
pub fn message_frame(id: u64, data: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
}

/// What stock clients receive.
#[derive(Debug, Clone)]
pub enum StockUpdate {
    /// A complete SSE stock event, ready to write.
    Event(Bytes),
    /// Events may have been lost: every client should send a fresh snapshot.
    Resync,
}

/// A waiting room's admission tick: places up to `admitted` may book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTick {
    pub concert_id: ConcertId,
    pub admitted: u64,
    pub state: RoomState,
}

impl QueueTick {
    /// A tick as published: `<concertId> <admittedUpTo> <open|paused|soldout>`.
    fn parse(message: &str) -> Option<Self> {
        let mut parts = message.split(' ');
        let tick = Self {
            concert_id: parts.next()?.parse().ok()?,
            admitted: parts.next()?.parse().ok()?,
            state: RoomState::parse(parts.next()?)?,
        };
        parts.next().is_none().then_some(tick)
    }
}

/// A booking whose status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub booking_id: BookingId,
}

/// A stock change, sent as an unnamed event: a tier's stock after the change, as
/// `availableQuantity` and again as `newAvailableQuantity` for clients that read that name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockEvent {
    pub concert_id: ConcertId,
    pub ticket_tier_id: TierId,
    pub available_quantity: i64,
    pub new_available_quantity: i64,
}

#[derive(Debug)]
pub struct Hub {
    stock: broadcast::Sender<StockUpdate>,
    status: broadcast::Sender<StatusChange>,
    queue: broadcast::Sender<QueueTick>,
    /// The `id:` of the next event, shared by every stream of this process.
    next_id: AtomicU64,
    /// Another gateway created a concert, or messages may have been lost.
    catalog_changed: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            stock: broadcast::channel(STOCK_BUFFER).0,
            status: broadcast::channel(STATUS_BUFFER).0,
            queue: broadcast::channel(QUEUE_BUFFER).0,
            next_id: AtomicU64::new(1),
            catalog_changed: Notify::new(),
        }
    }
}

impl Hub {
    pub fn stock(&self) -> broadcast::Receiver<StockUpdate> {
        self.stock.subscribe()
    }

    pub fn status(&self) -> broadcast::Receiver<StatusChange> {
        self.status.subscribe()
    }

    pub fn queue(&self) -> broadcast::Receiver<QueueTick> {
        self.queue.subscribe()
    }

    pub fn next_event_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Frames a stock message from Redis and sends it to every stock client.
    pub fn publish_stock(&self, payload: &str) {
        let Some(change) = StockChange::parse(payload) else {
            tracing::warn!(payload, "unreadable stock message");
            return;
        };
        let event = StockEvent {
            concert_id: change.concert_id,
            ticket_tier_id: change.tier_id,
            available_quantity: change.available,
            new_available_quantity: change.available,
        };
        let Ok(data) = simd_json::to_string(&event) else {
            return;
        };
        let frame = message_frame(self.next_event_id(), &data);
        // No receivers is fine: nobody is watching.
        let _ = self.stock.send(StockUpdate::Event(frame));
    }

    /// Every stream client gets a fresh snapshot and the catalog is reloaded.
    pub fn resync(&self) {
        let _ = self.stock.send(StockUpdate::Resync);
        self.catalog_changed.notify_one();
    }

    /// Resolves when the catalog may have changed since the last call (one waiter: the refresh).
    pub async fn catalog_changed(&self) {
        self.catalog_changed.notified().await;
    }

    fn publish_queue(&self, payload: &str) {
        match QueueTick::parse(payload) {
            Some(tick) => {
                let _ = self.queue.send(tick);
            }
            None => tracing::warn!(payload, "unreadable waiting room message"),
        }
    }

    fn publish_status(&self, payload: &str) {
        match parse_status_message(payload) {
            Some(booking_id) => {
                let _ = self.status.send(StatusChange { booking_id });
            }
            None => tracing::warn!(payload, "unreadable booking status message"),
        }
    }
}

/// The process's one pub/sub connection, subscribed to the stock, booking status, catalog and
/// waiting room channels.
#[derive(Debug)]
pub struct Subscription {
    client: SubscriberClient,
    messages: broadcast::Receiver<Message>,
    reconnects: broadcast::Receiver<Server>,
    stock_channel: String,
    status_channel: String,
    catalog_channel: String,
    queue_channel: String,
}

impl Subscription {
    /// Connects and subscribes, waiting at most `wait` for Redis: a gateway that starts serving
    /// with its subscription live has no gap between a client's snapshot and its first event.
    /// The client reconnects by itself; [`Subscription::run`] subscribes again on each connection.
    pub async fn start(
        redis_url: &str,
        keys: &Keyspace,
        wait: Duration,
    ) -> Result<Self, fred::error::Error> {
        let mut config = Config::from_url(redis_url)?;
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_performance_config(|performance| {
                performance.broadcast_channel_capacity = SUBSCRIBER_BUFFER;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
            .build_subscriber_client()?;
        let messages = client.message_rx();
        let mut reconnects = client.reconnect_rx();
        client.connect();
        let channels = [
            keys.stock_channel(),
            keys.booking_status_channel(),
            keys.catalog_channel(),
            keys.queue_channel(),
        ];
        let subscribed = tokio::time::timeout(wait, async {
            client.wait_for_connect().await?;
            client.subscribe(channels.to_vec()).await
        })
        .await;
        match subscribed {
            Ok(Ok(())) => {
                // The first connection is not a reconnect: nothing was missed before it.
                let _ = reconnects.try_recv();
            }
            Ok(Err(error)) => tracing::warn!(%error, "subscribing failed; retrying on reconnect"),
            Err(_) => {
                tracing::warn!("redis is not answering yet; the live feed starts when it does");
            }
        }
        let [
            stock_channel,
            status_channel,
            catalog_channel,
            queue_channel,
        ] = channels;
        Ok(Self {
            client,
            messages,
            reconnects,
            stock_channel,
            status_channel,
            catalog_channel,
            queue_channel,
        })
    }

    /// Feeds `hub` until `shutdown`; every reconnect resubscribes and resynchronises the clients.
    pub async fn run(mut self, hub: Arc<Hub>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                reconnected = self.reconnects.recv() => {
                    if reconnected.is_ok() {
                        // A new connection has no subscriptions, whether or not the first attempt
                        // to subscribe ever succeeded.
                        tracing::info!("pub/sub (re)connected; subscribing and resynchronising live clients");
                        let channels = vec![
                            self.stock_channel.clone(),
                            self.status_channel.clone(),
                            self.catalog_channel.clone(),
                            self.queue_channel.clone(),
                        ];
                        if let Err(error) = self.client.subscribe(channels).await {
                            tracing::warn!(%error, "subscribing failed; retrying on the next reconnect");
                        }
                        hub.resync();
                    }
                }
                message = self.messages.recv() => match message {
                    Ok(message) => {
                        let Some(payload) = message.value.as_str() else { continue };
                        if *message.channel == *self.stock_channel {
                            hub.publish_stock(&payload);
                        } else if *message.channel == *self.status_channel {
                            hub.publish_status(&payload);
                        } else if *message.channel == *self.catalog_channel {
                            hub.catalog_changed.notify_one();
                        } else if *message.channel == *self.queue_channel {
                            hub.publish_queue(&payload);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the fan-out fell behind pub/sub; resynchronising live clients");
                        hub.resync();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        let _ = self.client.quit().await;
    }
}
