//! Postgres: the database is created when missing and `migrations/` applied at start by every
//! binary; sqlx serializes concurrent runs with an advisory lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The migrations of this crate's own folder (the macro wants a path with a parent, so it names
/// the folder from the workspace).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a pooled connection before it answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long start-up waits for a Postgres that is down or still starting.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How long Postgres lets a session of ours sit idle inside a transaction before it ends the
/// session and rolls the transaction back. A process cut off from Postgres in the middle of a
/// transaction (a partition: its connection hangs, and Postgres cannot tell) would otherwise hold
/// its row locks for as long as the partition lasts, and every other settler writing the same
/// rows (a tier's hourly sales) would wait with it. Longer than any transaction of ours waits on
/// something else: the mail sender's SMTP delivery, at most 10 s, is the longest.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(15);

/// Connects to `url`, creating the database when it does not exist yet, and migrates it. A
/// Postgres that is unreachable or still starting is waited for, up to `START_PATIENCE`.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + START_PATIENCE;
    loop {
        match try_connect(url, max_connections).await {
            Err(error) if is_starting(&error) && tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "postgres not ready; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            connected => return connected,
        }
    }
}

/// Postgres refusing connections, or starting up or shutting down (class 57P).
fn is_starting(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("57P")),
        _ => false,
    }
}

async fn try_connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    if !Postgres::database_exists(url).await? {
        // Another process may win the race to create it; only its absence afterwards is an error.
        if let Err(error) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(error);
        }
    }
    let options = PgConnectOptions::from_str(url)?.options([(
        "idle_in_transaction_session_timeout",
        format!("{}ms", IDLE_IN_TRANSACTION.as_millis()),
    )]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
