//! Server-sent event streams: `GET /api/concerts/stream` (live stock),
//! `GET /api/bookings/{id}/events` (one booking's status until it is final) and
//! `GET /api/queue/{id}/events` (a waiting-room ticket's position until it is admitted).
//!
//! A stock stream opens with a `snapshot` of every tier, then relays `stock` events from the hub.
//! A client that falls behind the hub, or any client after the hub lost messages, is sent a new
//! snapshot rather than the backlog, so a slow reader costs neither memory nor other clients'
//! latency. Every event has an `id:`; a reconnecting client (`Last-Event-ID`) simply gets a fresh
//! snapshot. A comment every 15 s keeps proxies from closing idle streams. Streams end when the
//! gateway shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use domain::ids::{BookingId, ConcertId, TierId};
use futures::stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use api_types::headers::X_ACCEL_BUFFERING;
use domain::record::BookingRecord;

use crate::api::bookings;
use crate::api::problems::{RateLimited, StreamProblems, StreamUnavailable};
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::validate::path_id;
use crate::live::hub::{Hub, QueueTick, StatusChange, StockUpdate, frame};
use crate::live::snapshots::SnapshotError;
use crate::metrics::{self, SseClient};
use crate::state::{BookingDesk, Streams};
use crate::waiting_room::WaitingRooms;
use crate::waiting_room::{Ticket, TicketEnvelope};
use redis_store::scripts::queue::RoomState;

/// How often an idle stream sends a comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
const HEARTBEAT_FRAME: &[u8] = b": heartbeat\n\n";
/// How often a booking stream re-reads its booking, should a status message have been missed.
const RECHECK: Duration = Duration::from_secs(5);

/// Every [`RECHECK`], from one period after now.
fn recheck() -> Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

fn heartbeat() -> Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// Headers that keep proxies from buffering or caching the stream.
fn stream_response(frames: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response<Body> {
    let frames = futures::StreamExt::map(frames, |bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    response
}

/// An open stream's source of frames after the first.
trait Feed: Send + 'static {
    /// The next frame, or `None` to end the stream.
    fn next(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// The response streaming `first`, then whatever `feed` yields.
fn open(first: Bytes, feed: impl Feed) -> Response<Body> {
    let rest = stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|frame| (frame, feed))
    });
    stream_response(futures::StreamExt::chain(
        stream::once(std::future::ready(first)),
        rest,
    ))
}

/// One server-sent event, as `text/event-stream` carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSentEvent {
    /// The event's name (`snapshot`, `stock`, `status`).
    event: String,
    /// Its id, increasing within one gateway.
    id: String,
    /// JSON: a `Snapshot`, a `StockEvent` or a `BookingEvent`, by event.
    data: String,
}

/// One tier's stock in a `snapshot` event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierStock {
    concert_id: ConcertId,
    ticket_tier_id: TierId,
    available_quantity: i64,
}

/// The `snapshot` event: every tier's stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct Snapshot {
    tiers: Vec<TierStock>,
}

/// A `snapshot` event of every tier's stock, read from Redis now.
async fn snapshot(streams: &Streams) -> Result<Bytes, SnapshotError> {
    let tiers = streams.catalog.current().tier_refs();
    let available = streams
        .stock
        .available(tiers.iter().map(|tier| (tier.shard, tier.tier_id)))
        .await?;
    let tiers = tiers
        .into_iter()
        .map(|tier| TierStock {
            concert_id: tier.concert_id,
            ticket_tier_id: tier.tier_id,
            available_quantity: available.get(&tier.tier_id).copied().flatten().unwrap_or(0),
        })
        .collect();
    let data = simd_json::to_string(&Snapshot { tiers })
        .map_err(|error| SnapshotError::Unwritable(error.to_string()))?;
    metrics::sse_event("snapshot");
    Ok(frame("snapshot", streams.hub.next_event_id(), &data))
}

/// What a stock stream holds while it is open.
struct StockStream {
    streams: Arc<Streams>,
    updates: broadcast::Receiver<StockUpdate>,
    heartbeat: Interval,
    shutdown: CancellationToken,
    /// Set when the client must be resynchronised before anything else is sent.
    snapshot_due: bool,
    _client: SseClient,
    _permit: OwnedSemaphorePermit,
}

/// What the next moment of a stock stream brings.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Send(Bytes),
    Resync,
    End,
}

/// Waits for the next stock update, heartbeat or shutdown.
async fn relay(
    updates: &mut broadcast::Receiver<StockUpdate>,
    heartbeat: &mut Interval,
    shutdown: &CancellationToken,
) -> Step {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Step::End,
        update = updates.recv() => match update {
            Ok(StockUpdate::Event(frame)) => {
                metrics::sse_event("stock");
                Step::Send(frame)
            }
            Ok(StockUpdate::Resync) | Err(RecvError::Lagged(_)) => Step::Resync,
            Err(RecvError::Closed) => Step::End,
        },
        _ = heartbeat.tick() => Step::Send(Bytes::from_static(HEARTBEAT_FRAME)),
    }
}

impl Feed for StockStream {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.snapshot_due {
                self.snapshot_due = false;
                return match self
                    .streams
                    .snapshots
                    .since(Instant::now(), || snapshot(&self.streams))
                    .await
                {
                    Ok(frame) => Some(frame),
                    Err(error) => {
                        // The client reconnects and gets a snapshot (or a 503) then.
                        tracing::warn!(%error, "resynchronising a stock stream failed; ending it");
                        None
                    }
                };
            }
            match relay(&mut self.updates, &mut self.heartbeat, &self.shutdown).await {
                Step::Send(frame) => return Some(frame),
                Step::Resync => self.snapshot_due = true,
                Step::End => return None,
            }
        }
    }
}

/// Live stock, as server-sent events: a `snapshot` of every tier on connect (and whenever the
/// client fell behind), then an unnamed event (a `message`) per change; `id:` on each, a comment
/// every 15 s.
#[utoipa::path(get, path = "/api/concerts/stream", operation_id = "stockStream", tag = "concerts",
    responses(
        (status = 200, description = "Events: `snapshot` (a `Snapshot`), then an unnamed event (`message`, a `StockEvent`) per change",
            content_type = "text/event-stream", body = ServerSentEvent),
        (status = 429, response = RateLimited),
        (status = 503, response = StreamUnavailable),
    )
)]
pub async fn stock_stream(streams: Arc<Streams>) -> Result<Response<Body>, ApiError> {
    let permit = streams.capacity.admit()?;
    // Subscribed before the snapshot is read, so no change falls between the two.
    let updates = streams.hub.stock();
    let first = streams
        .snapshots
        .since(Instant::now(), || snapshot(&streams))
        .await?;
    let feed = StockStream {
        shutdown: streams.shutdown.clone(),
        streams,
        updates,
        heartbeat: heartbeat(),
        snapshot_due: false,
        _client: SseClient::open("stock"),
        _permit: permit,
    };
    Ok(open(first, feed))
}

/// A `status` event: the booking as it is now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingEvent<'a> {
    booking: &'a BookingRecord,
}

fn status_frame(hub: &Hub, record: &BookingRecord) -> Option<Bytes> {
    let data = simd_json::to_string(&BookingEvent { booking: record }).ok()?;
    metrics::sse_event("status");
    Some(frame("status", hub.next_event_id(), &data))
}

/// What a booking stream holds while it is open.
struct BookingStream {
    streams: Arc<Streams>,
    desk: Arc<BookingDesk>,
    id: BookingId,
    changes: broadcast::Receiver<StatusChange>,
    heartbeat: Interval,
    recheck: Interval,
    shutdown: CancellationToken,
    /// The status last sent; the stream ends after sending a final one.
    sent: domain::record::BookingStatus,
    _client: SseClient,
    _permit: OwnedSemaphorePermit,
}

impl Feed for BookingStream {
    async fn next(&mut self) -> Option<Bytes> {
        if self.sent.is_final() {
            return None;
        }
        loop {
            let look = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                change = self.changes.recv() => match change {
                    Ok(change) => change.booking_id == self.id,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick() => true,
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(HEARTBEAT_FRAME)),
            };
            if !look {
                continue;
            }
            match bookings::find(&self.desk, self.id).await {
                Ok(Some(record)) if record.status != self.sent => {
                    self.sent = record.status;
                    return status_frame(&self.streams.hub, &record);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(booking_id = %self.id, %error, "re-reading a booking failed");
                }
            }
        }
    }
}

/// One booking's status, as server-sent events: the booking now, then its final status, then the
/// end; already final, the stream ends after the first event.
#[utoipa::path(get, path = "/api/bookings/{id}/events", operation_id = "bookingEvents", tag = "bookings",
    params(("id" = Uuid, Path, description = "The booking")),
    responses((status = 200, description = "Events: `status` (a `BookingEvent`)", content_type = "text/event-stream", body = ServerSentEvent), StreamProblems))]
pub async fn booking_stream(
    streams: Arc<Streams>,
    desk: Arc<BookingDesk>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    let permit = streams.capacity.admit()?;
    let changes = streams.hub.status();
    let record = bookings::find(&desk, id)
        .await?
        .ok_or(ApiError::BookingNotFound(id))?;
    let first = status_frame(&streams.hub, &record)
        .ok_or_else(|| ApiError::Internal("booking event".to_owned()))?;
    let feed = BookingStream {
        shutdown: streams.shutdown.clone(),
        streams,
        desk,
        id,
        changes,
        heartbeat: heartbeat(),
        recheck: recheck(),
        sent: record.status,
        _client: SseClient::open("booking"),
        _permit: permit,
    };
    Ok(open(first, feed))
}

/// What a waiting-room ticket's stream holds while it is open.
struct QueueStream {
    streams: Arc<Streams>,
    rooms: Arc<WaitingRooms>,
    ticket: Ticket,
    /// How far the room's admission has reached, as last heard.
    admitted: u64,
    state: RoomState,
    ticks: broadcast::Receiver<QueueTick>,
    heartbeat: Interval,
    shutdown: CancellationToken,
    /// The position, and whether admission was paused, last sent; the stream ends after
    /// `admitted` or `soldout`.
    sent: Option<(Option<u64>, bool)>,
    done: bool,
    _client: SseClient,
    _permit: OwnedSemaphorePermit,
}

impl QueueStream {
    /// The event the ticket's state calls for now, if it differs from the last one sent.
    fn event(&mut self) -> Option<Bytes> {
        let rooms = &self.rooms;
        let view = rooms.view(&self.ticket, self.admitted, self.state);
        let now = (view.position, view.paused);
        let event = if view.admitted {
            "admitted"
        } else if view.sold_out {
            "soldout"
        } else if self.sent == Some(now) {
            return None;
        } else {
            "position"
        };
        self.done = event != "position";
        self.sent = Some(now);
        let data = simd_json::to_string(&TicketEnvelope { queue_ticket: view }).ok()?;
        metrics::sse_event(event);
        Some(frame(event, self.streams.hub.next_event_id(), &data))
    }

    /// Reads the ticket again: for its place after the draw, its token once admission reached it,
    /// or after the hub fell behind. Every tick carries the room's whole state (how far
    /// admission reached), so a missed tick is made good by the next: no periodic re-read.
    async fn reread(&mut self) {
        match self.rooms.read(self.ticket.id).await {
            Ok((ticket, admitted, state)) => {
                self.ticket = ticket;
                self.admitted = admitted.max(self.admitted);
                self.state = state;
            }
            Err(error) => {
                tracing::warn!(ticket_id = %self.ticket.id, %error, "re-reading a queue ticket failed");
            }
        }
    }
}

impl Feed for QueueStream {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let reread = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                tick = self.ticks.recv() => match tick {
                    Ok(tick) if tick.concert_id == self.ticket.concert_id => {
                        self.admitted = tick.admitted.max(self.admitted);
                        self.state = tick.state;
                        // Only a ticket without a place yet, or one admission just reached,
                        // asks Redis: a tick costs nothing else per client.
                        self.ticket.place.is_none_or(|place| place <= self.admitted)
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(HEARTBEAT_FRAME)),
            };
            if reread {
                self.reread().await;
            }
            if let Some(event) = self.event() {
                return Some(event);
            }
        }
    }
}

/// A waiting-room ticket as server-sent events: `position` now and whenever it (or `paused`)
/// changes, then `admitted` (with the admission token) or `soldout`, then the end.
#[utoipa::path(get, path = "/api/queue/{id}/events", operation_id = "queueEvents", tag = "waiting room",
    params(
        ("id" = Uuid, Path, description = "The queue ticket"),
        ("token" = String, Query, description = "The ticket's `ticketToken`, from joining"),
    ),
    responses((status = 200, description = "Events `position`, `admitted` and `soldout`, each a `TicketEnvelope`", content_type = "text/event-stream", body = ServerSentEvent), StreamProblems))]
pub async fn queue_stream(
    streams: Arc<Streams>,
    rooms: Arc<WaitingRooms>,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    rooms.authorize(id, crate::api::queue::ticket_token(query).as_deref())?;
    let permit = streams.capacity.admit()?;
    let ticks = streams.hub.queue();
    let (ticket, admitted, state) = rooms.read(id).await?;
    let mut feed = QueueStream {
        shutdown: streams.shutdown.clone(),
        streams,
        rooms,
        ticket,
        admitted,
        state,
        ticks,
        heartbeat: heartbeat(),
        sent: None,
        done: false,
        _client: SseClient::open("queue"),
        _permit: permit,
    };
    let first = feed
        .event()
        .ok_or_else(|| ApiError::Internal("queue event".to_owned()))?;
    Ok(open(first, feed))
}

impl From<SnapshotError> for ApiError {
    fn from(error: SnapshotError) -> Self {
        match error {
            SnapshotError::Redis(error) => ApiError::Redis(error),
            SnapshotError::Unwritable(reason) => ApiError::Internal(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::hub::message_frame;

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_a_heartbeat_every_15_seconds() {
        let (_sender, mut updates) = broadcast::channel::<StockUpdate>(4);
        let mut beat = heartbeat();
        let shutdown = CancellationToken::new();
        let started = tokio::time::Instant::now();
        for n in 1..=3u32 {
            let step = relay(&mut updates, &mut beat, &shutdown).await;
            assert_eq!(step, Step::Send(Bytes::from_static(HEARTBEAT_FRAME)));
            assert_eq!(started.elapsed(), HEARTBEAT * n);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_pass_a_lagging_client_resyncs_and_shutdown_ends() {
        let (sender, mut updates) = broadcast::channel::<StockUpdate>(2);
        let mut beat = heartbeat();
        let shutdown = CancellationToken::new();
        let event = message_frame(7, r#"{"availableQuantity":3}"#);
        sender
            .send(StockUpdate::Event(event.clone()))
            .expect("sent");
        assert_eq!(
            relay(&mut updates, &mut beat, &shutdown).await,
            Step::Send(event)
        );
        for _ in 0..5 {
            sender.send(StockUpdate::Resync).expect("sent");
        }
        assert_eq!(
            relay(&mut updates, &mut beat, &shutdown).await,
            Step::Resync,
            "lagged"
        );
        shutdown.cancel();
        assert_eq!(relay(&mut updates, &mut beat, &shutdown).await, Step::End);
    }

    #[test]
    fn frames_carry_event_id_and_data() {
        assert_eq!(
            frame("snapshot", 42, r#"{"a":1}"#),
            Bytes::from_static(b"event: snapshot\nid: 42\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(
            message_frame(43, r#"{"a":1}"#),
            Bytes::from_static(b"id: 43\ndata: {\"a\":1}\n\n"),
            "stock changes are unnamed: a client with onmessage alone gets them"
        );
    }
}
