//! Postgres: the database is created when missing and `migrations/` applied at start by every
//! binary; sqlx serializes concurrent runs with an advisory lock.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a pooled connection before it answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `url`, creating the database when it does not exist yet, and migrates it.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    if !Postgres::database_exists(url).await? {
        // Another process may win the race to create it; only its absence afterwards is an error.
        if let Err(error) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(error);
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
