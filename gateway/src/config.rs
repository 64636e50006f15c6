//! The gateway's configuration, read from the environment and validated before anything starts.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use booking::config::{self, ConfigError};
use sqlx::postgres::PgConnectOptions;

/// URL schemes fred understands: plain, TLS, cluster and sentinel deployments.
const REDIS_SCHEMES: [&str; 5] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
];

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `GATEWAY_ADDR`: where the gateway listens (port 0 picks a free one).
    pub addr: SocketAddr,
    /// `REDIS_URL`: Redis, or one node of a cluster.
    pub redis_url: String,
    /// `DATABASE_URL`: Postgres; the database is created if missing.
    pub database_url: String,
    /// `KEY_PREFIX`: prefix of every Redis key and channel.
    pub key_prefix: String,
    /// `REDIS_SHARDS`: logical shards new concerts are spread over (1-128).
    pub redis_shards: u8,
    /// `REDIS_TIMEOUT_MS`: how long a Redis command may take before the request answers 503.
    pub redis_timeout: Duration,
    /// `SEED_DEMO`: insert the demo concerts into an empty catalog.
    pub seed_demo: bool,
    /// `ADMIN_TOKEN`: bearer token of the admin API; unset turns the admin API off.
    pub admin_token: Option<String>,
    /// `MAX_TICKETS_PER_CUSTOMER`: tickets one email may hold per concert; 0 turns the limit off.
    pub max_tickets_per_customer: u32,
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::from_str_or("GATEWAY_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            redis_url: config::parse_or("REDIS_URL", "redis://127.0.0.1:6379".to_owned(), |url| {
                let scheme = url.split("://").next().unwrap_or_default();
                if !REDIS_SCHEMES.contains(&scheme) {
                    return Err(format!("the scheme must be one of {REDIS_SCHEMES:?}"));
                }
                fred::prelude::Config::from_url(url)
                    .map(|_| url.to_owned())
                    .map_err(|error| error.to_string())
            })?,
            database_url: config::parse_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/tickets".to_owned(),
                |url| {
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                        return Err("the scheme must be postgres:// or postgresql://".to_owned());
                    }
                    PgConnectOptions::from_str(url)
                        .map(|_| url.to_owned())
                        .map_err(|error| error.to_string())
                },
            )?,
            key_prefix: config::key_prefix("KEY_PREFIX", "tix")?,
            redis_shards: config::parse_or("REDIS_SHARDS", 16, |value| {
                match value.parse::<u8>() {
                    Ok(shards @ 1..=128) => Ok(shards),
                    _ => Err("expected a whole number from 1 to 128"),
                }
            })?,
            redis_timeout: config::parse_or(
                "REDIS_TIMEOUT_MS",
                Duration::from_millis(500),
                |value| match value.parse::<u64>() {
                    Ok(ms @ 1..=60_000) => Ok(Duration::from_millis(ms)),
                    _ => Err("expected milliseconds from 1 to 60000"),
                },
            )?,
            seed_demo: config::bool_or("SEED_DEMO", true)?,
            admin_token: config::parse_or("ADMIN_TOKEN", None, |token| {
                if token.len() >= 16 {
                    Ok(Some(token.to_owned()))
                } else {
                    Err("use at least 16 characters")
                }
            })?,
            max_tickets_per_customer: config::parse_or("MAX_TICKETS_PER_CUSTOMER", 10, |value| {
                match value.parse::<u32>() {
                    Ok(limit @ 0..=10_000) => Ok(limit),
                    _ => Err("expected a whole number from 0 (off) to 10000"),
                }
            })?,
        })
    }
}
