//! The stock snapshot new and resynchronising event streams share.

use bytes::Bytes;
use tokio::time::Instant;

use crate::http::error::ApiError;

/// The latest snapshot read (its frame, or Redis' error) and when it began. Clients that arrive
/// while one is being read share the next one, so a connection storm (an on-sale opening, or every
/// client resynchronising after pub/sub reconnected) costs Redis one read at a time instead of one
/// per client, and with Redis down they all get the same quick 503 instead of a timeout each.
#[derive(Debug, Default)]
pub struct Snapshots(tokio::sync::Mutex<Option<(Instant, Result<Bytes, fred::error::Error>)>>);

impl Snapshots {
    /// A snapshot whose read began at or after `since` (so it holds every change published
    /// before): the latest, or one `read` now.
    pub async fn since<F>(
        &self,
        since: Instant,
        read: impl FnOnce() -> F,
    ) -> Result<Bytes, ApiError>
    where
        F: Future<Output = Result<Bytes, ApiError>>,
    {
        let mut latest = self.0.lock().await;
        if let Some((started, outcome)) = &*latest
            && *started >= since
        {
            return outcome.clone().map_err(ApiError::Redis);
        }
        let started = Instant::now();
        let read = read().await;
        let outcome = match &read {
            Ok(frame) => Ok(frame.clone()),
            Err(ApiError::Redis(error)) => Err(error.clone()),
            Err(_) => return read,
        };
        *latest = Some((started, outcome));
        read
    }
}
