//! The stock snapshot new and resynchronising event streams share.

use bytes::Bytes;
use tokio::time::Instant;

/// Why a snapshot could not be had. Cloned to every client that shares the failed read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading stock: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("writing the snapshot: {0}")]
    Unwritable(String),
}

/// The latest snapshot read (its frame, or Redis' error) and when it began. Clients that arrive
/// while one is being read share the next one, so a connection storm (an on-sale opening, or every
/// client resynchronising after pub/sub reconnected) costs Redis one read at a time instead of one
/// per client, and with Redis down they all get the same quick 503 instead of a timeout each.
#[derive(Debug, Default)]
pub struct Snapshots(tokio::sync::Mutex<Option<(Instant, Result<Bytes, SnapshotError>)>>);

impl Snapshots {
    /// A snapshot whose read began at or after `since` (so it holds every change published
    /// before): the latest, or one `read` now.
    pub async fn since<F>(
        &self,
        since: Instant,
        read: impl FnOnce() -> F,
    ) -> Result<Bytes, SnapshotError>
    where
        F: Future<Output = Result<Bytes, SnapshotError>>,
    {
        let mut latest = self.0.lock().await;
        if let Some((started, outcome)) = &*latest
            && *started >= since
        {
            return outcome.clone();
        }
        let started = Instant::now();
        let read = read().await;
        *latest = Some((started, read.clone()));
        read
    }
}
