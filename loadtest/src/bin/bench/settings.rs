//! What a bench run is told (the environment) and what it owns: a key prefix and a database of
//! its own, removed afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;

use booking::config::{self, Backends};
use booking::keys::Keyspace;

use testkit::Isolated;

pub const ADMIN_TOKEN: &str = "bench-admin-token";
#[derive(Debug)]
pub struct Settings {
    pub backends: Backends,
    /// `DATABASE_URL` without its database name.
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
        Ok(Self {
            backends,
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

/// One run's own key prefix and database, removed when it is dropped.
#[derive(Debug)]
pub struct Run {
    pub keys: Keyspace,
    pub isolated: Isolated,
    pub redis: fred::prelude::Client,
}

impl Run {
    pub fn new(settings: &Settings, redis: fred::prelude::Client) -> Self {
        let mut backends = Isolated::names(settings.backends.redis_shards);
        backends.redis_url = settings.backends.redis_url.clone();
        let isolated = Isolated::adopt(backends);
        Self {
            keys: isolated.backends.keyspace(),
            isolated,
            redis,
        }
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
            ("DATABASE_URL", self.isolated.backends.database_url.clone()),
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
}
