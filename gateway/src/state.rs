//! What the gateway shares: the connections, and the services handlers receive. A handler takes
//! the services it uses, never all of this.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::Pool;
use ipnet::IpNet;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use domain::ids::{Shard, TierId};
use redis_store::keys::Keyspace;
use redis_store::recovery::ShardGuard;
use redis_store::scripts::reserve::ReserveScript;
use redis_store::stock::{self, Counter};

use crate::analytics::Dashboards;
use crate::catalog::CatalogHandle;
use crate::config::{AllowedOrigins, ConnectionLimits};
use crate::customers::Customers;
use crate::customers::tokens::AccessTokens;
use crate::http::limits::{Capacity, RateLimits};
use crate::live::hub::Hub;
use crate::live::snapshots::Snapshots;
use crate::losses::AcceptedLog;
use crate::operators::Operators;
use crate::waiting_room::WaitingRooms;
use crate::web::WebApp;

#[derive(Debug)]
pub struct AppState {
    /// The connections the background tasks use, and tests reach into.
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    /// Which shards are whole, and their recovery when Redis lost their data.
    pub guard: Arc<ShardGuard>,
    pub catalog: Arc<CatalogHandle>,
    pub stock: LiveStock,
    pub bookings: Arc<BookingDesk>,
    pub admin: Admin,
    pub operators: Arc<Operators>,
    pub customers: Customers,
    pub waiting_rooms: Arc<WaitingRooms>,
    pub streams: Arc<Streams>,
    /// The dashboard, on a Postgres pool of its own.
    pub dashboards: Dashboards,
    /// The web app's files, served at `/`; empty when it was not built.
    pub web: WebApp,
    pub metrics: runtime::telemetry::Exporter,
    pub edge: Edge,
    /// How long after a shard's recovery its earlier bookings are looked for.
    pub loss_check_delay: Duration,
    /// Cancelled when the gateway shuts down: event streams end, waits for an outcome return.
    pub shutdown: CancellationToken,
}

/// Live stock as Redis holds it, for the catalog's answers.
#[derive(Debug, Clone)]
pub struct LiveStock {
    pub redis: Pool,
    pub keys: Keyspace,
    /// Woken when a request finds a tier without stock in Redis, so it is loaded at once.
    pub missing: Arc<Notify>,
}

impl LiveStock {
    /// Stock of `tiers`; a tier Redis does not know wakes the stock loader and shows 0 meanwhile.
    pub async fn available(
        &self,
        tiers: impl IntoIterator<Item = (Shard, TierId)>,
    ) -> Result<HashMap<TierId, Option<i64>>, fred::error::Error> {
        let stock = stock::read(&self.redis, &self.keys, Counter::Available, tiers).await?;
        if stock.values().any(Option::is_none) {
            self.missing.notify_one();
        }
        Ok(stock)
    }
}

/// What taking and reading a booking needs.
#[derive(Debug)]
pub struct BookingDesk {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub catalog: Arc<CatalogHandle>,
    /// Checks the admission tokens of concerts with a waiting room.
    pub waiting_rooms: Arc<WaitingRooms>,
    /// The reservation, with the replicas a booking must reach before it is answered.
    pub reserve: ReserveScript,
    pub guard: Arc<ShardGuard>,
    /// Bookings accepted lately, to count those Redis then lost.
    pub accepted: Arc<AcceptedLog>,
    pub stock: LiveStock,
    pub max_tickets_per_customer: u32,
    /// Heard from for a booking's outcome when the client prefers to wait for it.
    pub hub: Arc<Hub>,
    /// Verifies a signed-in customer's access token, whose email the booking then takes.
    pub tokens: Arc<AccessTokens>,
    pub shutdown: CancellationToken,
}

/// What creating or changing a concert writes.
#[derive(Debug)]
pub struct Admin {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub catalog: Arc<CatalogHandle>,
    pub stock: LiveStock,
}

/// What the event streams share.
#[derive(Debug)]
pub struct Streams {
    /// The live feed's fan-out.
    pub hub: Arc<Hub>,
    /// What a stock snapshot is read from.
    pub catalog: Arc<CatalogHandle>,
    pub stock: LiveStock,
    /// The stock snapshot new and resynchronising streams share.
    pub snapshots: Snapshots,
    /// Event streams open at once.
    pub capacity: Capacity,
    /// Cancelled when the gateway shuts down: open streams end.
    pub shutdown: CancellationToken,
}

/// What every request and connection is held to before a handler sees it.
#[derive(Debug)]
pub struct Edge {
    /// Which origins' pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: AllowedOrigins,
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
}

impl Edge {
    /// The address a request is limited by.
    pub fn client_address(&self, peer: std::net::SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::http::limits::client_address(peer, headers, &self.trusted_proxies)
    }
}
