//! The fault suite: the whole system as processes (a gateway, two settlers, a private Redis and a
//! private Postgres), a steady load of bookings, and one fault each: a settler or the gateway
//! killed, Postgres away for 15 s, Redis killed with and without its append-only file, Redis
//! stalled past the command timeout; and faults of the network, through a [`Proxy`] on the
//! gateway's link to Redis and on one settler's link to Postgres: the gateway partitioned from
//! Redis for 10 s (connections hang while Redis serves the settlers), 200 ms added to each of its
//! Redis round trips, a settler partitioned from Postgres for 30 s in the middle of its batches.
//! After each, every invariant of DESIGN.md is checked against the history of every request: the
//! audit is clean (every tier balances, nothing oversold, every shard whole, nothing stuck), every
//! booking answered 202 is settled exactly once (or, after Redis lost its data, counted as lost,
//! within the bound the persistence allows, and counted the same by the gateway), no key made two
//! bookings, the only errors clients saw were 503s with `Retry-After`, and every purchase whose
//! outcome a 503 left unknown was resolved (booked or refused) by asking again with its key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use testkit::gateway::{ADMIN_TOKEN, create_concert_at};
use testkit::{Persistence, PrivatePostgres, PrivateRedis, Process, Proxy, free_port};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One scenario at a time: each runs five processes, and the machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bookings per second the load sends.
const RATE: u64 = 300;
/// Tickets of the tier that sells out during a scenario, and of the one that never does.
const SMALL_TIER: u32 = 600;
const LARGE_TIER: u32 = 100_000;

/// The system under test.
struct System {
    redis: PrivateRedis,
    postgres: PrivatePostgres,
    /// The gateway's link to Redis.
    gateway_to_redis: Proxy,
    /// The first settler's link to Postgres.
    settler_to_postgres: Proxy,
    gateway: Process,
    settlers: Vec<Process>,
    gateway_url: String,
    settler_probes: Vec<String>,
    database: String,
    prefix: String,
    client: reqwest::Client,
    tiers: Vec<(Uuid, f64)>,
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

impl System {
    async fn start(persistence: Persistence) -> Self {
        let redis = PrivateRedis::start(persistence);
        let postgres = PrivatePostgres::start();
        let local = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let gateway_to_redis = Proxy::start(local(redis.port)).await;
        let settler_to_postgres = Proxy::start(local(postgres.port)).await;
        let database = "faults".to_owned();
        let prefix = format!("faults-{}", Uuid::new_v4().simple());
        let common = [
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", postgres.url(&database)),
            ("KEY_PREFIX", prefix.clone()),
            ("REDIS_SHARDS", "4".to_owned()),
            (
                "RUST_LOG",
                std::env::var("FAULTS_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ];
        let gateway_port = free_port();
        let mut gateway_env = env(&common);
        gateway_env.extend(env(&[
            ("REDIS_URL", format!("redis://{}", gateway_to_redis.addr)),
            ("GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("SEED_DEMO", "false".to_owned()),
            ("RATE_LIMIT_PER_IP", "0".to_owned()),
            ("BOOKING_LIMIT_PER_IP", "0".to_owned()),
            ("LOSS_CHECK_DELAY_S", "2".to_owned()),
        ]));
        let gateway = Process::start("gateway", gateway_env, gateway_port);
        let mut settlers = Vec::new();
        let mut settler_probes = Vec::new();
        for name in ["a", "b"] {
            let port = free_port();
            let mut settler_env = env(&common);
            if name == "a" {
                let database_url = format!(
                    "postgres://postgres@{}/{database}",
                    settler_to_postgres.addr
                );
                settler_env.extend(env(&[("DATABASE_URL", database_url)]));
            }
            settler_env.extend(env(&[
                ("SETTLER_METRICS_ADDR", format!("127.0.0.1:{port}")),
                ("SETTLER_CONSUMER", name.to_owned()),
                ("PAYMENT_LATENCY_MS", "20-80".to_owned()),
                ("PAYMENT_FAILURE_RATE", "0.2".to_owned()),
                ("SETTLER_CLAIM_IDLE_MS", "3000".to_owned()),
                ("SETTLER_CONCURRENCY", "400".to_owned()),
                ("SETTLER_BATCH_SIZE", "100".to_owned()),
            ]));
            settlers.push(Process::start("settler", settler_env, port));
            settler_probes.push(format!("http://127.0.0.1:{port}"));
        }
        let mut system = Self {
            redis,
            postgres,
            gateway_to_redis,
            settler_to_postgres,
            gateway,
            settlers,
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            settler_probes,
            database,
            prefix,
            client: reqwest::Client::new(),
            tiers: Vec::new(),
        };
        system
            .wait_ready(&system.gateway_url.clone(), "/api/health/ready")
            .await;
        let (_, tiers) = create_concert_at(
            &system.client,
            &system.gateway_url,
            &[(20.0, SMALL_TIER), (10.0, LARGE_TIER)],
        )
        .await;
        system.tiers = tiers.iter().map(|tier| (tier.id, tier.price)).collect();
        system
    }

    async fn wait_ready(&self, base: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self.client.get(format!("{base}{path}")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "{base}{path} never ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn connections(&self) -> (fred::prelude::Pool, sqlx::PgPool) {
        let redis = redis_store::connect(&self.redis.url(), 1, Duration::from_secs(2))
            .await
            .expect("redis");
        fred::prelude::ClientLike::wait_for_connect(&redis)
            .await
            .expect("connected");
        let db = pg_store::connect(&self.postgres.url(&self.database), 2)
            .await
            .expect("postgres");
        (redis, db)
    }

    fn keys(&self) -> redis_store::keys::Keyspace {
        redis_store::keys::Keyspace::new(self.prefix.clone(), 4)
    }

    /// Waits until every booking the streams hold is settled, then audits the books.
    async fn settled_audit(&self) -> settler::audit::Audit {
        let (redis, db) = self.connections().await;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let audit =
                settler::audit::run(&redis, &db, &self.keys(), Duration::from_secs(300)).await;
            if let Ok(audit) = &audit
                && audit
                    .shards
                    .iter()
                    .all(|shard| shard.unsettled == 0 && shard.whole)
                && audit.tiers.iter().all(|tier| tier.pending == 0)
            {
                return audit.clone();
            }
            if Instant::now() > deadline {
                let stream = self.keys().stream(domain::ids::Shard::new(0));
                let mut diagnosis = Vec::new();
                for shard in self.keys().shards() {
                    let stream = self.keys().stream(shard);
                    let groups: Result<fred::types::Value, _> =
                        fred::prelude::StreamsInterface::xinfo_groups(&redis, &stream).await;
                    let length: Result<u64, _> =
                        fred::prelude::StreamsInterface::xlen(&redis, &stream).await;
                    diagnosis.push(format!("{stream}: {length:?} {groups:?}"));
                }
                drop(stream);
                panic!(
                    "bookings never all settled: {audit:?}\n{}",
                    diagnosis.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `gateway_bookings_lost_total` as the gateway exports it.
    async fn lost_counted_by_gateway(&self) -> u64 {
        let metrics = self
            .client
            .get(format!("{}/metrics", self.gateway_url))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("gateway_bookings_lost_total "))
            .map_or(0, |count| count.trim().parse().expect("a count"))
    }
}

/// A client's last answer to one purchase attempt (one idempotency key), after retrying connection
/// failures and 503s with the same key as a careful client does.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    statuses: Vec<u16>,
    booking_ids: HashSet<Uuid>,
}

/// Sends [`RATE`] bookings a second until stopped.
struct Load {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(system: &System) -> Self {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let url = format!("{}/api/bookings", system.gateway_url);
        let tiers = system.tiers.clone();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let task = tokio::spawn({
            let attempts = Arc::clone(&attempts);
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
                let mut inflight = tokio::task::JoinSet::new();
                while !stop.is_cancelled() {
                    tick.tick().await;
                    let (tier, price) = tiers[usize::from(rand::rng().random_bool(0.5))];
                    let quantity: u32 = rand::rng().random_range(1..=2);
                    let key = Uuid::new_v4().to_string();
                    let body = json!({
                        "ticketTierId": tier, "userEmail": format!("{key}@load.example"),
                        "quantity": quantity, "totalPrice": price * f64::from(quantity),
                        "idempotencyKey": key,
                    });
                    let (client, url, attempts) =
                        (client.clone(), url.clone(), Arc::clone(&attempts));
                    inflight.spawn(async move {
                        let attempt = attempt(&client, &url, key, &body).await;
                        attempts.lock().expect("lock").push(attempt);
                    });
                }
                while inflight.join_next().await.is_some() {}
            }
        });
        Self {
            attempts,
            stop,
            task,
        }
    }

    async fn stop(self) -> Vec<Attempt> {
        self.stop.cancel();
        self.task.await.expect("load joined");
        let attempts = self.attempts.lock().expect("lock");
        attempts.clone()
    }
}

/// One purchase attempt: retried with the same key on a connection failure or a 503, as the
/// web app does, for up to 30 s.
async fn attempt(client: &reqwest::Client, url: &str, key: String, body: &Value) -> Attempt {
    let mut attempt = Attempt {
        key,
        statuses: Vec::new(),
        booking_ids: HashSet::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(response) = client.post(url).json(body).send().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let status = response.status().as_u16();
        if status == 503 {
            assert!(
                response.headers().contains_key("retry-after"),
                "a 503 without Retry-After"
            );
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        attempt.statuses.push(status);
        if let Some(id) = answer["booking"]["id"].as_str() {
            attempt.booking_ids.insert(id.parse().expect("booking id"));
        }
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    attempt
}

/// What a scenario does to the system, `after` seconds into the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillSettler,
    KillGateway,
    PostgresAway,
    KillRedis,
    StallRedis,
    PartitionGatewayFromRedis,
    SlowRedis,
    PartitionSettlerFromPostgres,
}

async fn inflict(system: &mut System, fault: Fault) {
    match fault {
        Fault::KillSettler => {
            system.settlers[0].kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            system.settlers[0].restart();
        }
        Fault::KillGateway => {
            system.gateway.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            system.gateway.restart();
        }
        Fault::PostgresAway => {
            system.postgres.kill();
            let away = Instant::now();
            while away.elapsed() < Duration::from_secs(15) {
                // Bookings need no Postgres: the gateway stays ready; the settlers cannot settle.
                let gateway = system
                    .client
                    .get(format!("{}/api/health/ready", system.gateway_url))
                    .send()
                    .await
                    .expect("gateway answers");
                assert_eq!(gateway.status(), 200, "gateway ready without Postgres");
                let settler = system
                    .client
                    .get(format!("{}/health/ready", system.settler_probes[0]))
                    .send()
                    .await
                    .expect("settler answers");
                assert_eq!(settler.status(), 503, "settler not ready without Postgres");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            system.postgres.restart();
        }
        Fault::KillRedis => {
            system.redis.kill();
            tokio::time::sleep(Duration::from_millis(200)).await;
            system.redis.restart();
        }
        Fault::StallRedis => {
            system.redis.stall();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            system.redis.resume();
        }
        Fault::PartitionGatewayFromRedis => {
            system.gateway_to_redis.partition();
            let cut_off = Instant::now();
            while cut_off.elapsed() < Duration::from_secs(10) {
                // Readiness goes on answering, and says the gateway cannot sell.
                let ready = system
                    .client
                    .get(format!("{}/api/health/ready", system.gateway_url))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .expect("gateway answers");
                if cut_off.elapsed() > Duration::from_secs(2) {
                    assert_eq!(ready.status(), 503, "gateway ready without Redis");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            system.gateway_to_redis.restore();
        }
        Fault::SlowRedis => {
            // 100 ms each way: 200 ms more per round trip, within REDIS_TIMEOUT_MS (500 ms).
            system.gateway_to_redis.delay(Duration::from_millis(100));
            let asked = Instant::now();
            let ready = system
                .client
                .get(format!("{}/api/health/ready", system.gateway_url))
                .send()
                .await
                .expect("gateway answers");
            let round_trip = asked.elapsed();
            assert_eq!(ready.status(), 200, "gateway ready with a slow Redis");
            assert!(
                round_trip >= Duration::from_millis(200),
                "readiness asked Redis in {round_trip:?}: the delay is not in the path"
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
            system.gateway_to_redis.restore();
        }
        Fault::PartitionSettlerFromPostgres => {
            system.settler_to_postgres.partition();
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (_, db) = system.connections().await;
            let settled_before = testkit::sql::settled_ids(&db).await.len();
            // Its readiness says so (or hangs, which a probe's timeout counts as not ready).
            let cut_off = system
                .client
                .get(format!("{}/health/ready", system.settler_probes[0]))
                .timeout(Duration::from_secs(3))
                .send()
                .await;
            assert!(
                cut_off.is_err() || cut_off.is_ok_and(|ready| ready.status() == 503),
                "a settler cut off from Postgres ready"
            );
            tokio::time::sleep(Duration::from_secs(15)).await;
            // The other settler takes over what the cut-off one holds, and settles on.
            let settled_after = testkit::sql::settled_ids(&db).await.len();
            assert!(
                settled_after > settled_before,
                "nothing settled while one settler was cut off ({settled_before} -> {settled_after})"
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
            system.settler_to_postgres.restore();
        }
    }
}

/// Runs `fault` under load and checks every invariant; returns the bookings lost.
async fn scenario(persistence: Persistence, fault: Fault, lost_allowed: usize) -> usize {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut system = System::start(persistence).await;
    let load = Load::start(&system);
    tokio::time::sleep(Duration::from_secs(3)).await;
    inflict(&mut system, fault).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = load.stop().await;
    let audit = system.settled_audit().await;

    // The books balance, nothing is oversold, every shard is whole, nothing is stuck.
    assert_eq!(
        audit.problems(),
        Vec::<String>::new(),
        "{fault:?}: {audit:?}"
    );
    let small = audit
        .tiers
        .iter()
        .find(|tier| tier.total == i64::from(SMALL_TIER))
        .expect("small tier");
    assert!(small.confirmed <= small.total);

    // Clients saw 202, 409 (sold out) or 503 with Retry-After, no key made two bookings, and
    // every outcome a 503 left unknown was known in the end.
    let mut accepted: HashMap<Uuid, String> = HashMap::new();
    for attempt in &attempts {
        assert!(
            attempt.statuses.last().is_some_and(|last| *last != 503),
            "{fault:?}: key {} never resolved: {:?}",
            attempt.key,
            attempt.statuses
        );
        for status in &attempt.statuses {
            assert!(
                [202, 409, 503].contains(status),
                "{fault:?}: {status} for {}",
                attempt.key
            );
        }
        assert!(
            attempt.booking_ids.len() <= 1,
            "{fault:?}: key {} made {:?}",
            attempt.key,
            attempt.booking_ids
        );
        if let Some(id) = attempt.booking_ids.iter().next() {
            accepted.insert(*id, attempt.key.clone());
        }
    }
    assert!(
        accepted.len() > 1000,
        "{fault:?}: the load ran ({})",
        accepted.len()
    );

    // Every accepted booking settled exactly once, or lost with Redis' data.
    let (_, db) = system.connections().await;
    let settled = testkit::sql::settled_ids(&db).await;
    let settled_set: HashSet<Uuid> = settled.iter().copied().collect();
    assert_eq!(
        settled.len(),
        settled_set.len(),
        "{fault:?}: a booking settled twice"
    );
    for id in &settled_set {
        assert!(
            accepted.contains_key(id),
            "{fault:?}: booking {id} settled but never answered 202"
        );
    }
    let lost: Vec<&Uuid> = accepted
        .keys()
        .filter(|id| !settled_set.contains(id))
        .collect();
    assert!(
        lost.len() <= lost_allowed,
        "{fault:?}: {} of {} accepted bookings lost",
        lost.len(),
        accepted.len()
    );
    if fault == Fault::KillRedis {
        // The gateway lived through it and counts what Redis lost, as the client does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while system.lost_counted_by_gateway().await != lost.len() as u64 {
            assert!(
                Instant::now() < deadline,
                "{fault:?}: gateway counted {} lost, clients {}",
                system.lost_counted_by_gateway().await,
                lost.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if fault == Fault::SlowRedis {
        let refused = attempts
            .iter()
            .filter(|attempt| attempt.statuses.contains(&503))
            .count();
        assert_eq!(refused, 0, "{fault:?}: bookings refused within the timeout");
    }
    println!(
        "{fault:?} with {persistence:?}: {} attempts, {} accepted, {} settled, {} lost",
        attempts.len(),
        accepted.len(),
        settled_set.len(),
        lost.len()
    );
    lost.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settler_killed_mid_batch() {
    scenario(Persistence::None, Fault::KillSettler, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_killed() {
    scenario(Persistence::None, Fault::KillGateway, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_away_for_fifteen_seconds() {
    scenario(Persistence::None, Fault::PostgresAway, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_with_its_append_only_file() {
    // `kill -9` leaves what Redis wrote in the kernel's page cache: nothing acknowledged is lost.
    scenario(Persistence::AofEverySec, Fault::KillRedis, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_without_persistence() {
    // What no settler had read yet is lost: at most about a second of bookings.
    scenario(Persistence::None, Fault::KillRedis, RATE as usize).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stalled_past_the_command_timeout() {
    scenario(Persistence::None, Fault::StallRedis, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_partitioned_from_redis_for_ten_seconds() {
    scenario(Persistence::None, Fault::PartitionGatewayFromRedis, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_hundred_milliseconds_further_away() {
    scenario(Persistence::None, Fault::SlowRedis, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settler_partitioned_from_postgres_for_thirty_seconds() {
    scenario(Persistence::None, Fault::PartitionSettlerFromPostgres, 0).await;
}
