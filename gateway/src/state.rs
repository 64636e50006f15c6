//! What every request shares.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::Pool;
use ipnet::IpNet;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use redis_store::keys::Keyspace;
use redis_store::recovery::ShardGuard;
use redis_store::scripts::reserve::ReserveScript;
use runtime::config::Secret;

use crate::waiting_room::WaitingRooms;

use crate::analytics::Dashboards;
use crate::catalog::CatalogHandle;
use crate::config::{AllowedOrigins, ConnectionLimits};
use crate::http::limits::{Capacity, RateLimits};
use crate::live::hub::Hub;
use crate::live::snapshots::Snapshots;
use crate::losses::AcceptedLog;
use crate::web::WebApp;

#[derive(Debug)]
pub struct AppState {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub catalog: Arc<CatalogHandle>,
    /// Which origins' pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: AllowedOrigins,
    /// The dashboard, on a Postgres pool of its own.
    pub dashboards: Dashboards,
    pub reserve: ReserveScript,
    /// Which shards are whole, and their recovery when Redis lost their data.
    pub guard: Arc<ShardGuard>,
    /// Bookings accepted lately, to count those Redis then lost.
    pub accepted: Arc<AcceptedLog>,
    /// How long after a shard's recovery its earlier bookings are looked for.
    pub loss_check_delay: Duration,
    pub waiting_rooms: Arc<WaitingRooms>,
    /// Woken when a request finds a tier without stock in Redis, so it is loaded at once.
    pub stock_missing: Notify,
    pub admin_token: Option<Secret>,
    pub max_tickets_per_customer: u32,
    /// The live feed's fan-out.
    pub hub: Arc<Hub>,
    /// The stock snapshot new and resynchronising streams share.
    pub snapshots: Snapshots,
    pub limits: RateLimits,
    pub trusted_proxies: Vec<IpNet>,
    /// Requests answered at once.
    pub request_capacity: Capacity,
    /// Connections open at once.
    pub connection_capacity: Capacity,
    /// Deadlines every connection is held to.
    pub connection_limits: ConnectionLimits,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Event streams open at once.
    pub sse_capacity: Capacity,
    /// The web app's files, served at `/`; empty when it was not built.
    pub web: WebApp,
    pub metrics: runtime::telemetry::Exporter,
    /// Cancelled when the gateway shuts down: event streams end.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// The address a request is limited by.
    pub fn client_address(&self, peer: std::net::SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::http::limits::client_address(peer, headers, &self.trusted_proxies)
    }
}
