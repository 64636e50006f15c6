//! What a bench run is told (the environment) and what it owns: a key prefix and a database of
//! its own, removed afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use redis_store::keys::Keyspace;
use runtime::config::Backends;

use testkit::Isolated;

pub(crate) const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
/// One key each for every gateway of a run, as a deployment has: a place joined on one gateway
/// is followed, and a session started on one is used, on any other.
const ADMISSION_SECRET: &str = "bench-admission-secret-0123456789abcdef";
const AUTH_SIGNING_KEY: &str = "bench-signing-key-0123456789abcdef";

/// How long removing the run's keys and database may take: a run leaves millions of keys, which
/// later tests would otherwise scan past on every cleanup.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

/// `make bench`: every performance figure of the design in one run, written as a table.
#[derive(Debug, clap::Parser)]
pub(crate) struct Settings {
    #[command(flatten)]
    pub backends: Backends,
    /// Seconds of each timed run.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10)]
    pub seconds: u64,
    /// Connections of the closed-loop runs; the fixed-rate run gets four times as many.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 64)]
    pub connections: usize,
    /// Script calls of each Redis-only run.
    #[arg(long, env = "BENCH_REDIS_REQUESTS", default_value_t = 500_000)]
    pub redis_requests: usize,
    /// Event streams of the fan-out runs.
    #[arg(long, env = "BENCH_SSE_CLIENTS", default_value_t = 50_000)]
    pub sse_clients: usize,
    /// Gateways the fan-out runs spread their streams over.
    #[arg(long, env = "BENCH_SSE_GATEWAYS", default_value_t = 4)]
    pub sse_gateways: usize,
    /// Where the table and the charts are written.
    #[arg(long, env = "BENCH_OUT", default_value = "target/bench")]
    pub out: PathBuf,
}

/// One run's own key prefix and database, removed when it is dropped.
#[derive(Debug)]
pub(crate) struct Run {
    pub keys: Keyspace,
    pub isolated: Isolated,
    pub redis: fred::prelude::Client,
}

impl Run {
    pub(crate) fn new(settings: &Settings, redis: fred::prelude::Client) -> Self {
        let mut names = Isolated::names(settings.backends.redis_shards);
        names.redis_url = settings.backends.redis_url.clone();
        let isolated = Isolated::adopt(names).with_patience(CLEANUP_PATIENCE);
        Self {
            keys: isolated.names.keyspace(),
            isolated,
            redis,
        }
    }

    pub(crate) fn gateway_env(
        &self,
        settings: &Settings,
        addr: SocketAddr,
        seed_demo: bool,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("GATEWAY_ADDR", addr.to_string()),
            ("REDIS_URL", settings.backends.redis_url.clone()),
            ("DATABASE_URL", self.isolated.names.database_url.clone()),
            ("KEY_PREFIX", self.keys.prefix().to_owned()),
            ("REDIS_SHARDS", self.keys.shard_count().to_string()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("ADMISSION_SECRET", ADMISSION_SECRET.to_owned()),
            ("AUTH_SIGNING_KEY", AUTH_SIGNING_KEY.to_owned()),
            ("SEED_DEMO", seed_demo.to_string()),
            ("RATE_LIMIT_PER_IP", "0".to_owned()),
            ("BOOKING_LIMIT_PER_IP", "0".to_owned()),
            ("MAX_TICKETS_PER_CUSTOMER", "0".to_owned()),
            ("MAX_SSE_CLIENTS", "25000".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
    }
}
