//! What makes a test its own: a fresh database and a fresh key prefix on the shared Redis and
//! Postgres (`REDIS_URL`, `DATABASE_URL`; default: the local ones), removed when dropped, even
//! when the test fails.

use std::time::Duration;

use fred::prelude::ClientLike;
use sqlx::Postgres;
use sqlx::migrate::MigrateDatabase;
use uuid::Uuid;

use redis_store::keys::Keyspace;

use crate::delete_keys;

/// The Redis every test shares.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The Postgres server every test shares (`DATABASE_URL` without its database).
pub fn postgres_server() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tickets".to_owned());
    match url.rsplit_once('/') {
        Some((server, _database)) => server.to_owned(),
        None => url,
    }
}

/// A database of its own on the shared server, created by whoever connects first (the binaries
/// create a missing database) and force-dropped when this is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    pub url: String,
}

impl ScratchDatabase {
    /// A new database name, `{kind}_{random}`; nothing is created yet.
    pub fn new(kind: &str) -> Self {
        Self {
            url: format!("{}/{kind}_{}", postgres_server(), Uuid::new_v4().simple()),
        }
    }

    /// Creates it now, empty.
    pub async fn create(kind: &str) -> Self {
        let scratch = Self::new(kind);
        Postgres::create_database(&scratch.url)
            .await
            .expect("scratch database created");
        scratch
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        off_runtime(CLEANUP_PATIENCE, async move {
            if let Err(error) = Postgres::force_drop_database(&url).await {
                eprintln!("scratch database {url} left behind: {error}");
            }
        });
    }
}

/// Where a test's data lives: the servers, its own database and key prefix, and its shards. The
/// apps take it as their `Backends` (`apps` feature); the lower crates' tests need only this.
#[derive(Debug, Clone)]
pub struct Names {
    pub redis_url: String,
    pub database_url: String,
    pub key_prefix: String,
    pub redis_shards: u8,
    pub redis_timeout: Duration,
}

impl Names {
    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(self.key_prefix.clone(), self.redis_shards)
    }
}

#[cfg(feature = "apps")]
impl From<Names> for runtime::config::Backends {
    fn from(names: Names) -> Self {
        Self {
            redis_url: names.redis_url,
            database_url: names.database_url,
            key_prefix: names.key_prefix,
            redis_shards: names.redis_shards,
            redis_timeout: names.redis_timeout,
        }
    }
}

#[cfg(feature = "apps")]
impl From<&runtime::config::Backends> for Names {
    fn from(backends: &runtime::config::Backends) -> Self {
        Self {
            redis_url: backends.redis_url.clone(),
            database_url: backends.database_url.clone(),
            key_prefix: backends.key_prefix.clone(),
            redis_shards: backends.redis_shards,
            redis_timeout: backends.redis_timeout,
        }
    }
}

/// A test's own database and key prefix on the shared servers. Its keys are deleted and its
/// database dropped when it is dropped.
#[derive(Debug)]
pub struct Isolated {
    pub names: Names,
    /// How long removing them may take before it gives up (and leaves them behind).
    patience: Duration,
}

impl Isolated {
    /// New names (database, key prefix) with `shards` Redis shards; nothing is created yet, and
    /// nothing is removed unless [`Isolated::adopt`] takes them.
    pub fn names(shards: u8) -> Names {
        let unique = Uuid::new_v4().simple();
        Names {
            redis_url: redis_url(),
            database_url: format!("{}/test_{unique}", postgres_server()),
            key_prefix: format!("test-{unique}"),
            redis_shards: shards,
            redis_timeout: Duration::from_millis(500),
        }
    }

    /// Fresh names with `shards` Redis shards, removed when dropped.
    pub fn new(shards: u8) -> Self {
        Self::adopt(Self::names(shards))
    }

    /// Takes `names`' database and key prefix, to remove them when dropped.
    pub fn adopt(names: Names) -> Self {
        Self {
            names,
            patience: CLEANUP_PATIENCE,
        }
    }

    /// Allows removing them `patience` instead of a test's few seconds: a bench leaves millions
    /// of keys.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let backends = self.names.clone();
        off_runtime(self.patience, async move {
            if let Err(error) = Postgres::force_drop_database(&backends.database_url).await {
                eprintln!(
                    "test database {} left behind: {error}",
                    backends.database_url
                );
            }
            let redis = redis_store::connect(&backends.redis_url, 1, backends.redis_timeout);
            if let Ok(redis) = redis.await {
                delete_keys(redis.next(), &backends.key_prefix, backends.redis_shards).await;
                let _ = redis.quit().await;
            }
        });
    }
}

/// How long removing a test's database or keys may take.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(5);

/// Runs `cleanup` to its end on a runtime of its own on another thread: `Drop` cannot await, and
/// the test's runtime may be the one being torn down.
fn off_runtime(patience: Duration, cleanup: impl Future<Output = ()> + Send + 'static) {
    let done = std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                // A server the test stopped or stalled must not hold the suite.
                let bounded = async { tokio::time::timeout(patience, cleanup).await };
                if runtime.block_on(bounded).is_err() {
                    eprintln!("a test's cleanup gave up after {patience:?}");
                }
            }
            Err(error) => eprintln!("no runtime for a test's cleanup: {error}"),
        }
    });
    let _ = done.join();
}
