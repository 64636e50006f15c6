//! `spawn_app()`: the gateway on port 0 with its own database and `KEY_PREFIX`, on the real Redis
//! and Postgres named by `REDIS_URL` and `DATABASE_URL` (defaults: the local ones).

use std::sync::{Arc, Once};
use std::time::Duration;

use booking::config::Backends;
use booking::domain::{Email, IdempotencyKey, Quantity};
use booking::money::{Currency, Money};
use fred::prelude::{ClientLike, KeysInterface};
use gateway::api::admin::{NewConcertBody, NewTierBody};
use gateway::api::bookings::BookingBody;
use gateway::state::AppState;
use gateway::{Application, GatewayConfig};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn server_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tickets".to_owned());
    match url.rsplit_once('/') {
        Some((server, _database)) => server.to_owned(),
        None => url,
    }
}

fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = booking::telemetry::init();
        }
    });
}

/// A config for a fresh, isolated gateway: port 0, a new database, a new key prefix.
pub fn test_config() -> GatewayConfig {
    let unique = Uuid::new_v4().simple().to_string();
    GatewayConfig {
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        ..GatewayConfig::embedded(Backends {
            redis_url: redis_url(),
            database_url: format!("{}/gw_test_{unique}", server_url()),
            key_prefix: format!("test-{unique}"),
            redis_shards: 4,
            redis_timeout: Duration::from_millis(500),
        })
    }
}

#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub config: GatewayConfig,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: GatewayConfig) -> TestApp {
    init_logs();
    let app = Application::build(config.clone())
        .await
        .expect("gateway builds");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let state = app.state();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client"),
        state,
        config,
        shutdown,
        server,
    }
}

/// One tier of a concert created for a test.
#[derive(Debug, Clone)]
pub struct TestTier {
    pub id: Uuid,
    pub price: f64,
    pub total: u32,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Creates a concert through the admin API with tiers of `(price, total)`.
    pub async fn create_concert(&self, tiers: &[(f64, u32)]) -> (Uuid, Vec<TestTier>) {
        let body = NewConcertBody {
            name: "Test Night".to_owned(),
            description: Some("A concert made by a test".to_owned()),
            location: "Test Hall".to_owned(),
            date: "2099-01-01T20:00:00Z".parse().expect("date"),
            sales_open_at: None,
            sales_close_at: None,
            waiting_room: None,
            ticket_tiers: tiers
                .iter()
                .enumerate()
                .map(|(i, (price, total))| NewTierBody {
                    name: format!("Tier {i}"),
                    price: price.to_string().parse().expect("money"),
                    total_quantity: *total,
                })
                .collect(),
        };
        let concert = self.post_concert(&body).await;
        let id = concert["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("concert id");
        let tiers = concert["ticketTiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .map(|tier| TestTier {
                id: tier["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .expect("tier id"),
                price: tier["price"].as_f64().expect("price"),
                total: tier["totalQuantity"].as_u64().expect("total") as u32,
            })
            .collect();
        (id, tiers)
    }

    /// Creates the concert `body` describes through the admin API: the answer's body.
    pub async fn post_concert(&self, body: &NewConcertBody) -> Value {
        let response = self
            .client
            .post(self.url("/api/admin/concerts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 201, "concert created");
        response.json().await.expect("json")
    }

    /// The shard a concert of this gateway's catalog is on.
    pub fn shard_of(&self, concert_id: Uuid) -> booking::keys::Shard {
        self.state
            .catalog
            .current()
            .concert(concert_id)
            .expect("known concert")
            .shard
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    /// `GET path`, answered with a JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("json body")
    }

    /// Posts a booking body as JSON.
    pub async fn book(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/bookings"))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// The tier's stock as Redis holds it.
    pub async fn redis_stock(&self, concert_id: Uuid, tier_id: Uuid) -> Option<i64> {
        let catalog = self.state.catalog.current();
        let shard = catalog.concert(concert_id).expect("known concert").shard;
        self.state
            .redis
            .get(self.state.keys.stock(shard, tier_id))
            .await
            .expect("redis answers")
    }

    /// The tier's `availableQuantity` in `GET /api/concerts/{id}`.
    pub async fn catalog_stock(&self, concert_id: Uuid, tier_id: Uuid) -> i64 {
        let concert = self.get_json(&format!("/api/concerts/{concert_id}")).await;
        concert["ticketTiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .find(|tier| tier["id"] == tier_id.to_string())
            .and_then(|tier| tier["availableQuantity"].as_i64())
            .expect("tier listed")
    }

    /// Stops the gateway, leaving its database and keys to another app sharing them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.state.db.close().await;
        let _ = self.state.redis.quit().await;
    }

    /// Stops the gateway, drops its database and deletes its Redis keys.
    pub async fn cleanup(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.state.db.close().await;
        let backends = &self.config.backends;
        testkit::delete_keys(
            self.state.redis.next(),
            &backends.key_prefix,
            backends.redis_shards,
        )
        .await;
        let _ = self.state.redis.quit().await;
        drop_database(&self.config.backends.database_url).await;
    }
}

/// The value of the first series in `metrics` whose line starts with `line_start`; 0 if none.
pub fn counter(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

pub async fn drop_database(url: &str) {
    let Some((server, name)) = url.rsplit_once('/') else {
        return;
    };
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("postgres admin connection");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("database dropped");
}

/// A valid booking body for `tier`, as JSON a test may then break.
pub fn booking_body(tier: &TestTier, quantity: u32, email: &str, key: &str) -> Value {
    let price: Money = tier.price.to_string().parse().expect("money");
    let body = BookingBody {
        ticket_tier_id: tier.id,
        user_email: Email::parse(email).expect("email"),
        quantity: Quantity::new(i64::from(quantity)).expect("quantity"),
        total_price: price.times(quantity).expect("total"),
        currency: Some(Currency::Usd),
        idempotency_key: Some(IdempotencyKey::parse(key).expect("key")),
    };
    serde_json::to_value(body).expect("json")
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Reads events from a streaming response; comments (heartbeats) are skipped.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader")
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl SseReader {
    pub async fn open(app: &TestApp, path: &str) -> Self {
        let response = app
            .client
            .get(app.url(path))
            .send()
            .await
            .expect("stream opened");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, `None` when the stream ended; panics after 10 s of silence.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".to_owned(),
                    id: None,
                    data: String::new(),
                };
                let mut comment_only = true;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        event.event = value.to_owned();
                        comment_only = false;
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        event.id = value.parse().ok();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        event.data.push_str(value);
                        comment_only = false;
                    }
                }
                if comment_only {
                    continue;
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("stream readable")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// The next event of any kind but heartbeats.
    pub async fn expect_any(&mut self) -> SseEvent {
        self.next().await.expect("the stream goes on")
    }

    /// The next event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> SseEvent {
        let event = self.next().await.expect("the stream goes on");
        assert_eq!(event.event, kind, "{event:?}");
        event
    }
}
