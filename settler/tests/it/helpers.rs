//! A gateway and a settler sharing one fresh database and key prefix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use booking::config::Backends;
use booking::keys::Shard;
use booking::record::{Packed, field};
use fred::prelude::KeysInterface;
use gateway::GatewayConfig;
use gateway::api::admin::NewConcertBody;
use gateway::api::bookings::BookingBody;
use serde_json::Value;
use settler::payment::SimulatedProvider;
use settler::settle::{Decided, Processed, Settler};
use settler::{Application, SettlerConfig};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ADMIN_TOKEN: &str = "settler-test-admin-token";

fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = booking::telemetry::init();
        }
    });
}

pub fn backends() -> Backends {
    let unique = Uuid::new_v4().simple().to_string();
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tickets".to_owned());
    let server = database
        .rsplit_once('/')
        .map(|(server, _)| server.to_owned())
        .unwrap_or(database);
    Backends {
        redis_url: std::env::var("REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        database_url: format!("{server}/gw_test_{unique}"),
        key_prefix: format!("settle-{unique}"),
        redis_shards: 2,
        redis_timeout: Duration::from_millis(500),
    }
}

/// A settler configuration for tests that drive its stages by hand: entries are stale at once,
/// so `reclaim` takes over whatever another consumer holds. A test running the whole app sets a
/// realistic claim idle time, or the reclaim loop would race its own workers.
pub fn settler_config(backends: &Backends, consumer: &str) -> SettlerConfig {
    SettlerConfig {
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backends: backends.clone(),
        payment_latency: 0..=0,
        payment_failure_rate: 0.0,
        consumer: consumer.to_owned(),
        concurrency: 100,
        batch_size: 50,
        claim_idle: Duration::ZERO,
        max_deliveries: 5,
        reconcile_interval: Duration::from_secs(3600),
        stuck_after: Duration::from_secs(300),
    }
}

#[derive(Debug)]
pub struct Harness {
    pub backends: Backends,
    pub client: reqwest::Client,
    pub gateway: String,
    pub gateway_state: Arc<gateway::state::AppState>,
    gateway_stop: CancellationToken,
    pub concert: Uuid,
    pub shard: Shard,
    pub tier: Uuid,
    pub price: f64,
}

impl Harness {
    /// A gateway with one concert of one tier of `total` tickets.
    pub async fn start(total: u32) -> Self {
        init_logs();
        let backends = backends();
        let config = GatewayConfig {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..GatewayConfig::embedded(backends.clone())
        };
        let app = gateway::Application::build(config)
            .await
            .expect("gateway builds");
        let gateway = format!("http://{}", app.local_addr().expect("bound"));
        let gateway_state = app.state();
        let gateway_stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(gateway_stop.clone()));
        let client = reqwest::Client::new();
        let concert: Value = client
            .post(format!("{gateway}/api/admin/concerts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&NewConcertBody::new(
                "Settlement Night",
                "Hall",
                "2099-01-01T20:00:00Z".parse().expect("date"),
                &[("GA", "12.50".parse().expect("money"), total)],
            ))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let id = |value: &Value| value.as_str().and_then(|id| id.parse().ok()).expect("uuid");
        let concert_id = id(&concert["id"]);
        let shard = gateway_state
            .catalog
            .current()
            .concert(concert_id)
            .expect("concert")
            .shard;
        Self {
            backends,
            client,
            gateway,
            gateway_state,
            gateway_stop,
            concert: concert_id,
            shard,
            tier: id(&concert["ticketTiers"][0]["id"]),
            price: 12.5,
        }
    }

    /// Books `count` bookings of one ticket each, from distinct customers; returns their ids.
    pub async fn book(&self, count: usize) -> Vec<Uuid> {
        let requests = (0..count).map(|_| async {
            let email = format!("{}@example.com", Uuid::new_v4().simple());
            let price = self.price.to_string().parse().expect("money");
            let body = BookingBody::new(self.tier, &email, 1, price, &Uuid::new_v4().to_string())
                .expect("booking");
            let response = self
                .client
                .post(format!("{}/api/bookings", self.gateway))
                .json(&body)
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.expect("json");
            body["booking"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("booking id")
        });
        futures::future::join_all(requests).await
    }

    /// A settler (not running its loops) with a provider that approves or declines everything.
    pub async fn settler(
        &self,
        consumer: &str,
        decline: bool,
    ) -> (Arc<Settler<SimulatedProvider>>, Arc<SimulatedProvider>) {
        let provider = Arc::new(SimulatedProvider::new(
            0..=0,
            if decline { 1.0 } else { 0.0 },
        ));
        let settler = self
            .settler_with(
                settler_config(&self.backends, consumer),
                Arc::clone(&provider),
            )
            .await;
        (settler, provider)
    }

    /// A settler (not running its loops) charging through `provider`.
    pub async fn settler_with(
        &self,
        config: SettlerConfig,
        provider: Arc<SimulatedProvider>,
    ) -> Arc<Settler<SimulatedProvider>> {
        let app = Application::build_with(config, provider)
            .await
            .expect("settler builds");
        app.settler()
    }

    /// Reads up to `count` new entries as `settler`'s consumer and decides their outcomes (charging
    /// them), without committing: what a consumer holds when it dies mid-batch.
    pub async fn read_and_decide(
        &self,
        settler: &Settler<SimulatedProvider>,
        count: usize,
    ) -> Vec<Decided> {
        let entries = settler
            .consumer
            .read(self.shard, count, false)
            .await
            .expect("read");
        let bookings = entries
            .iter()
            .map(|e| {
                let epoch = e.fields[field::EPOCH].parse().expect("epoch");
                let packed = Packed::from_json(&e.fields[field::PACKED]).expect("booking");
                (e.id.clone(), epoch, packed)
            })
            .collect();
        settler.decide(bookings).await.expect("decided")
    }

    /// Runs batches until the shard's stream has nothing new.
    pub async fn drain(&self, settler: &Settler<SimulatedProvider>) -> usize {
        let mut settled = 0;
        while let Processed::Settled(n) = settler
            .process_batch(self.shard)
            .await
            .expect("batch settles")
        {
            settled += n;
        }
        settled
    }

    pub async fn counter(&self, key: String) -> Option<i64> {
        self.gateway_state
            .redis
            .get(key)
            .await
            .expect("redis answers")
    }

    pub async fn available(&self) -> Option<i64> {
        self.counter(self.gateway_state.keys.stock(self.shard, self.tier))
            .await
    }

    pub async fn pending(&self) -> i64 {
        self.counter(self.gateway_state.keys.pending(self.shard, self.tier))
            .await
            .unwrap_or(0)
    }

    /// Rows in Postgres by status.
    pub async fn rows(&self) -> HashMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT status::text, COUNT(*) FROM bookings GROUP BY status",
        )
        .fetch_all(&self.gateway_state.db)
        .await
        .expect("counted")
        .into_iter()
        .collect()
    }

    /// Status of a booking as the gateway answers it.
    pub async fn status(&self, id: Uuid) -> String {
        let body: Value = self
            .client
            .get(format!("{}/api/bookings/{id}", self.gateway))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        body["booking"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn cleanup(self) {
        self.gateway_stop.cancel();
        testkit::delete_keys(
            self.gateway_state.redis.next(),
            &self.backends.key_prefix,
            self.backends.redis_shards,
        )
        .await;
        self.gateway_state.db.close().await;
        let (server, name) = self
            .backends
            .database_url
            .rsplit_once('/')
            .expect("database url");
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("admin connection");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("database dropped");
    }
}
