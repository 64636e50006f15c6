//! What a bench run is told (the environment) and what it owns: a key prefix and a database of
//! its own, removed afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use booking::config::{self, Backends};
use booking::keys::Keyspace;
use fred::prelude::{ClientLike, KeysInterface};
use sqlx::{Connection, PgConnection};

pub const ADMIN_TOKEN: &str = "bench-admin-token";
#[derive(Debug)]
pub struct Settings {
    pub backends: Backends,
    /// `DATABASE_URL` without its database name.
    pub database_server: String,
    pub seconds: u64,
    /// Connections of the closed-loop runs; the fixed-rate run gets four times as many.
    pub connections: usize,
    pub redis_requests: usize,
    pub sse_clients: usize,
    pub sse_gateways: usize,
    pub out: PathBuf,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let backends = Backends::from_env()?;
        let database_server = backends
            .database_url
            .rsplit_once('/')
            .map(|(server, _)| server.to_owned())
            .context("DATABASE_URL has no database name")?;
        Ok(Self {
            backends,
            database_server,
            seconds: config::from_str_or("BENCH_SECONDS", 10)?,
            connections: config::from_str_or("BENCH_CONNECTIONS", 64)?,
            redis_requests: config::from_str_or("BENCH_REDIS_REQUESTS", 500_000)?,
            sse_clients: config::from_str_or("BENCH_SSE_CLIENTS", 50_000)?,
            sse_gateways: config::from_str_or("BENCH_SSE_GATEWAYS", 4)?,
            out: config::raw("BENCH_OUT")
                .unwrap_or_else(|| "target/bench".to_owned())
                .into(),
        })
    }
}

/// One run's own key prefix and database.
#[derive(Debug)]
pub struct Run {
    pub keys: Keyspace,
    pub database: String,
    pub redis: fred::prelude::Client,
}

impl Run {
    pub fn database_url(&self, settings: &Settings) -> String {
        format!("{}/{}", settings.database_server, self.database)
    }

    pub fn gateway_env(
        &self,
        settings: &Settings,
        addr: SocketAddr,
        seed_demo: bool,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("GATEWAY_ADDR", addr.to_string()),
            ("REDIS_URL", settings.backends.redis_url.clone()),
            ("DATABASE_URL", self.database_url(settings)),
            ("KEY_PREFIX", self.keys.prefix().to_owned()),
            ("REDIS_SHARDS", self.keys.shard_count().to_string()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("SEED_DEMO", seed_demo.to_string()),
            ("RATE_LIMIT_PER_IP", "0".to_owned()),
            ("BOOKING_LIMIT_PER_IP", "0".to_owned()),
            ("MAX_TICKETS_PER_CUSTOMER", "0".to_owned()),
            ("MAX_SSE_CLIENTS", "25000".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
    }

    pub async fn clean_up(&self, settings: &Settings) -> anyhow::Result<()> {
        let pattern = format!("{{{}:*", self.keys.prefix());
        let mut cursor = "0".to_owned();
        loop {
            let (next, keys): (String, Vec<String>) = self
                .redis
                .custom(
                    fred::cmd!("SCAN"),
                    vec![
                        cursor.clone(),
                        "MATCH".into(),
                        pattern.clone(),
                        "COUNT".into(),
                        "1000".into(),
                    ],
                )
                .await?;
            if !keys.is_empty() {
                self.redis.del::<(), _>(keys).await?;
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        let mut admin =
            PgConnection::connect(&format!("{}/postgres", settings.database_server)).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}
