//! A gateway and settlers sharing one fresh database and key prefix, removed when the harness
//! is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_types::BookingBody;
use chrono::Utc;
use domain::ids::Shard;
use domain::money::Currency;
use domain::record::{Booking, Packed, field};
use domain::values::{Email, IdempotencyKey, Quantity};
use fred::prelude::KeysInterface;
use fred::prelude::LuaInterface;
use gateway::GatewayConfig;
use redis_store::scripts::reserve::{Reservation, ReserveScript};
use runtime::config::Backends;
use serde_json::Value;
use settler::payment::SimulatedProvider;
use settler::settle::{Decided, Processed, Settler};
use settler::{Application, SettlerConfig};
use uuid::Uuid;

use crate::gateway::{ADMIN_TOKEN, TestApp, spawn_app_with};
use crate::isolation::Isolated;

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
        smtp_url: None,
        mail_from: "Tickets <tickets@localhost>".parse().expect("a mailbox"),
    }
}

/// A gateway on 2 shards with one concert of one tier, and the settlers a test makes beside it.
#[derive(Debug)]
pub struct Harness {
    pub backends: Backends,
    pub client: reqwest::Client,
    pub gateway: String,
    pub gateway_state: Arc<gateway::state::AppState>,
    pub app: TestApp,
    pub concert: Uuid,
    pub shard: Shard,
    pub tier: Uuid,
    pub price: f64,
}

impl Harness {
    /// A gateway with one concert of one tier of `total` tickets.
    pub async fn start(total: u32) -> Self {
        let backends: Backends = Isolated::names(2).into();
        let app = spawn_app_with(GatewayConfig {
            admin_token: Some(ADMIN_TOKEN.into()),
            ..GatewayConfig::embedded(backends.clone())
        })
        .await;
        let (concert, tiers) = app.create_concert(&[(12.5, total)]).await;
        let shard = app.shard_of(concert);
        Self {
            backends,
            client: app.client.clone(),
            gateway: app.address.clone(),
            gateway_state: Arc::clone(&app.state),
            app,
            concert,
            shard,
            tier: tiers[0].id,
            price: 12.5,
        }
    }

    /// Books `count` bookings of one ticket each, from distinct customers; returns their ids.
    pub async fn book(&self, count: usize) -> Vec<Uuid> {
        let requests = (0..count).map(|_| async {
            let email = format!("{}@example.com", Uuid::new_v4().simple());
            let price = self.price.to_string().parse().expect("money");
            let body = BookingBody::new(
                self.tier.into(),
                &email,
                1,
                price,
                &Uuid::new_v4().to_string(),
            )
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

    /// Reserves `quantity` tickets through the reservation script itself, but with the packed
    /// booking `doctor` rewrote: what a gateway with a weaker check, or a foreign writer, could put
    /// in the stream. Returns the booking id.
    pub async fn reserve_doctored(
        &self,
        quantity: u8,
        doctor: impl Fn(&mut serde_json::Value),
    ) -> Uuid {
        let state = &self.gateway_state;
        let booking = Booking {
            id: domain::ids::BookingId::new(self.shard),
            ticket_tier_id: self.tier.into(),
            concert_id: self.concert.into(),
            user_email: Email::parse("poison@example.com").expect("email"),
            quantity: Quantity::new(i64::from(quantity)).expect("quantity"),
            total_price: "12.50"
                .parse::<domain::money::Money>()
                .expect("money")
                .times(u32::from(quantity))
                .expect("total"),
            currency: Currency::Usd,
            created_at: Utc::now(),
            idempotency_key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).expect("key"),
        };
        let packed = Packed {
            booking,
            held_until: Utc::now().timestamp() + 86_400,
            customer_limit: 0,
            admission: None,
        };
        let (mut keys, mut args) = ReserveScript::keys_and_args(
            &state.keys,
            self.shard,
            Reservation {
                packed: &packed,
                admission: None,
            },
        );
        // ARGV 2 is the packed booking.
        let mut json: serde_json::Value = serde_json::from_str(&args[1]).expect("json");
        doctor(&mut json);
        args[1] = json.to_string();
        // The keys follow the doctored booking, as they would had it been written so.
        let concert: Uuid = json["booking"]["concertId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("concert");
        let email = json["booking"]["userEmail"].as_str().expect("email");
        let key = json["booking"]["idempotencyKey"].as_str().expect("key");
        keys[2] = state.keys.idempotency(self.shard, concert.into(), key);
        keys[4] = state.keys.held(self.shard, concert.into());
        args[5] = email.to_owned();
        let script = ReserveScript::default();
        script.load(state.redis.next()).await.expect("loaded");
        let reply: Vec<fred::types::Value> = state
            .redis
            .next()
            .evalsha(script.sha1(), keys, args)
            .await
            .expect("reserved");
        assert_eq!(reply[0].as_i64(), Some(0), "accepted");
        packed.booking.id.into()
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
        self.counter(self.gateway_state.keys.stock(self.shard, self.tier.into()))
            .await
    }

    pub async fn pending(&self) -> i64 {
        self.counter(
            self.gateway_state
                .keys
                .pending(self.shard, self.tier.into()),
        )
        .await
        .unwrap_or(0)
    }

    /// Rows in Postgres by status.
    pub async fn rows(&self) -> HashMap<String, i64> {
        crate::sql::bookings_by_status(&self.gateway_state.db).await
    }

    /// Status of a booking as the gateway answers it.
    pub async fn status(&self, id: Uuid) -> String {
        let body = self.app.get_json(&format!("/api/bookings/{id}")).await;
        body["booking"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
