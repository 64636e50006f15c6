//! `spawn_app()`: the gateway on port 0 with its own database and `KEY_PREFIX`, on the real Redis
//! and Postgres named by `REDIS_URL` and `DATABASE_URL` (defaults: the local ones). Gateways
//! started on the same config share one [`Isolated`], removed when the last of them is dropped.

use api_types::headers::X_ACCEL_BUFFERING;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

use api_types::BookingBody;
use api_types::{NewConcertBody, NewTierBody};
use domain::money::{Currency, Money};
use domain::values::{Email, IdempotencyKey, Quantity};
use fred::prelude::{ClientLike, KeysInterface};
use gateway::state::AppState;
use gateway::{Application, GatewayConfig};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

use crate::isolation::Isolated;

/// Logs to stderr when `TEST_LOG` is set.
pub fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = runtime::telemetry::init();
        }
    });
}

/// A config for a fresh, isolated gateway: port 0, a new database, a new key prefix, 4 shards.
pub fn test_config() -> GatewayConfig {
    GatewayConfig {
        admin_token: Some(ADMIN_TOKEN.into()),
        ..GatewayConfig::embedded(Isolated::names(4).into())
    }
}

/// The isolation of `config`'s backends: the one a running gateway already holds, else a new one.
fn isolation(config: &GatewayConfig) -> Arc<Isolated> {
    static LIVE: Mutex<Option<HashMap<String, Weak<Isolated>>>> = Mutex::new(None);
    let mut live = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let live = live.get_or_insert_with(HashMap::new);
    live.retain(|_, isolated| isolated.strong_count() > 0);
    let url = &config.backends.database_url;
    if let Some(isolated) = live.get(url).and_then(Weak::upgrade) {
        return isolated;
    }
    let isolated = Arc::new(Isolated::adopt((&config.backends).into()));
    live.insert(url.clone(), Arc::downgrade(&isolated));
    isolated
}

#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub config: GatewayConfig,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    isolated: Arc<Isolated>,
}

impl Drop for TestApp {
    /// Stops the server; its database and keys go with the last gateway sharing them.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: GatewayConfig) -> TestApp {
    init_logs();
    let isolated = isolation(&config);
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
        server: Some(server),
        isolated,
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
        create_concert_at(&self.client, &self.address, tiers).await
    }

    /// Creates the concert `body` describes through the admin API: the answer's body.
    pub async fn post_concert(&self, body: &NewConcertBody) -> Value {
        post_concert_at(&self.client, &self.address, body).await
    }

    /// The shard a concert of this gateway's catalog is on.
    pub fn shard_of(&self, concert_id: Uuid) -> domain::ids::Shard {
        self.state
            .catalog
            .current()
            .concert(concert_id.into())
            .expect("known concert")
            .shard
    }

    /// Whether `GET /api/health/ready` answers 200 before `deadline`, asked every 50 ms.
    pub async fn ready_by(&self, deadline: Instant) -> bool {
        loop {
            let ready = self
                .client
                .get(self.url("/api/health/ready"))
                .send()
                .await
                .expect("answered")
                .status()
                == 200;
            if ready {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    /// `GET path` as the operator of `secret`, answered 200 with a JSON body.
    pub async fn get_json_as(&self, path: &str, secret: &str) -> Value {
        let answer = self
            .client
            .get(self.url(path))
            .bearer_auth(secret)
            .send()
            .await
            .expect("request sent");
        assert_eq!(answer.status(), 200, "GET {path}");
        answer.json().await.expect("json body")
    }

    /// The token of the latest sign-in link mailed to `email`, read from the outbox's mail.
    pub async fn link_token(&self, email: &str) -> String {
        crate::sql::signin_link_token(&self.state.db, email).await
    }

    /// Signs `email` in through a mailed link: the session's grant (`accessToken`, ...).
    pub async fn sign_in(&self, email: &str) -> Value {
        let asked = self
            .client
            .post(self.url("/api/auth/links"))
            .json(&serde_json::json!({ "email": email }))
            .send()
            .await
            .expect("answered");
        assert_eq!(asked.status(), 202, "asking for a link");
        let recipient = Email::parse(email).expect("an email");
        let token = self.link_token(recipient.as_str()).await;
        let signed_in = self
            .client
            .post(self.url("/api/auth/sessions"))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .expect("answered");
        assert_eq!(signed_in.status(), 201, "signing in");
        signed_in.json().await.expect("the grant")
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
        let shard = catalog
            .concert(concert_id.into())
            .expect("known concert")
            .shard;
        self.state
            .redis
            .get(self.state.keys.stock(shard, tier_id.into()))
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

    /// Stops the gateway and waits for it to finish; its database and keys stay while another
    /// gateway shares them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.db.close().await;
        let _ = self.state.redis.quit().await;
    }

    /// The database and key prefix this gateway runs in, kept while the returned value lives.
    pub fn isolation(&self) -> Arc<Isolated> {
        Arc::clone(&self.isolated)
    }
}

/// Creates a concert with tiers of `(price, total)` through the admin API of the gateway at
/// `base` (`http://host:port`, its admin token [`ADMIN_TOKEN`]): the concert's id and its tiers.
pub async fn create_concert_at(
    client: &reqwest::Client,
    base: &str,
    tiers: &[(f64, u32)],
) -> (Uuid, Vec<TestTier>) {
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
    let concert = post_concert_at(client, base, &body).await;
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

/// Creates the concert `body` describes through the admin API of the gateway at `base`: the
/// answer's body.
pub async fn post_concert_at(client: &reqwest::Client, base: &str, body: &NewConcertBody) -> Value {
    let response = client
        .post(format!("{base}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 201, "concert created");
    response.json().await.expect("json")
}

/// An answer's `Retry-After`, in whole seconds.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
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

/// A valid booking body for `tier`, as JSON a test may then break.
pub fn booking_body(tier: &TestTier, quantity: u32, email: &str, key: &str) -> Value {
    let price: Money = tier.price.to_string().parse().expect("money");
    let body = BookingBody {
        ticket_tier_id: tier.id.into(),
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
        assert_eq!(response.headers()[X_ACCEL_BUFFERING], "no");
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
