//! One accepted connection's limits, so that no client can hold the gateway by connecting and
//! then saying nothing, or saying it slowly:
//!
//! - its first request's headers must arrive within the header timeout *from accept* (a socket
//!   that sends nothing, or half an HTTP/2 preface, or trickles its headers, is closed then);
//! - a connection with no request in progress and no byte either way for the idle timeout is
//!   closed (HTTP/1 keep-alive and HTTP/2 alike; an event stream writes a heartbeat every 15 s);
//! - a request body must arrive within the body timeout (`body.rs`), read before the request
//!   takes an in-flight slot (`routes`).
//!
//! The connection's bytes are counted by [`Watched`], its requests by [`Activity::request`], and
//! a watchdog drops the connection when a limit is passed: one timer per connection, woken only
//! at its next deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::ConnectionLimits;

/// What a connection has done, shared by its IO, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    /// Milliseconds from accept to the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests that reached the service (their headers were read).
    requests: AtomicU64,
    /// Requests being worked on.
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// A request reached the service; it is in progress until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Resolves when the connection has passed one of `limits`; the caller then drops it.
    pub async fn watchdog(&self, limits: ConnectionLimits) {
        let header_deadline = self.accepted + limits.header_timeout;
        loop {
            let now = Instant::now();
            if self.requests.load(Ordering::Relaxed) == 0 {
                if now >= header_deadline {
                    crate::metrics::connection_closed("header_timeout");
                    return;
                }
                tokio::time::sleep_until(header_deadline).await;
                continue;
            }
            let last_io =
                self.accepted + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
            let idle_deadline = last_io + limits.idle_timeout;
            if self.in_flight.load(Ordering::Relaxed) == 0 && now >= idle_deadline {
                crate::metrics::connection_closed("idle_timeout");
                return;
            }
            // A request in progress is bounded by its own timeouts; look again an idle period on.
            tokio::time::sleep_until(idle_deadline.max(now + limits.idle_timeout / 4)).await;
        }
    }
}

/// A request in progress on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose every byte read or written counts as activity.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_dropped_at_the_header_timeout_from_accept() {
        let activity = Activity::new();
        // Bytes trickling in do not buy time: only a whole request's headers do.
        activity.touch();
        let started = Instant::now();
        activity.watchdog(LIMITS).await;
        assert_eq!(started.elapsed(), LIMITS.header_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_dropped_but_not_one_working_on_a_request() {
        let activity = Activity::new();
        let request = activity.request();
        let watchdog = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.watchdog(LIMITS).await }
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!watchdog.is_finished(), "a request in progress keeps it");
        drop(request);
        let answered = Instant::now();
        watchdog.await.expect("joined");
        let idle = answered.elapsed();
        assert!(
            idle >= LIMITS.idle_timeout && idle <= LIMITS.idle_timeout + LIMITS.idle_timeout / 4,
            "{idle:?}"
        );
    }
}
