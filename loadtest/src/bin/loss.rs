//! `make bench-loss`: how many accepted bookings a `kill -9` of Redis loses at 1,000 bookings/s,
//! and what each safeguard costs in booking throughput and latency: the append-only file's fsync
//! policy on one server, and `REDIS_MIN_REPLICAS` on a master that fails over to a replica.
//!
//! For each setup: private Redis servers (ports and directories of their own), release settler
//! and gateway, a closed-loop booking run for the throughput and latency, then 1,000 bookings/s
//! for eight seconds with the Redis master killed (`SIGKILL`) after three. A lone server is
//! restarted on the same files; a master under Sentinel (two replicas, three sentinels) stays dead
//! and a replica is promoted. A booking is lost when it was answered 202 and, once everything
//! settled, Postgres holds no trace of it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use domain::ids::BookingId;
use http_body_util::Full;
use loadtest::pressure::{self, Load};
use loadtest::services::{Launch, Service, free_port, sibling};
use serde_json::{Value, json};
use testkit::{Persistence, PrivateSentinels, ScratchDatabase};
use tokio::time::Instant;
use uuid::Uuid;

const ADMIN_TOKEN: &str = "loss-bench-admin-token-0123456789ab";
/// Bookings per second of the loss run.
const RATE: u64 = 1_000;
const LOSS_RUN: Duration = Duration::from_secs(8);
const KILL_AFTER: Duration = Duration::from_secs(3);
const THROUGHPUT_RUN: Duration = Duration::from_secs(5);

/// The Redis a run books on, and how its master is lost.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// One server with an append-only file under this `appendfsync` policy, restarted on its
    /// files.
    Restarted(&'static str),
    /// A master (`appendfsync everysec`) with two replicas under three sentinels, failed over to
    /// a replica; bookings are answered once this many replicas hold them.
    FailedOver { min_replicas: u32 },
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Restarted(policy) => write!(f, "1 server, appendfsync {policy}"),
            Self::FailedOver { min_replicas } => {
                write!(f, "Sentinel, REDIS_MIN_REPLICAS={min_replicas}")
            }
        }
    }
}

/// The running Redis of a setup.
enum Redis {
    Restarted(Box<LoneServer>),
    FailedOver(PrivateSentinels),
}

/// A lone `redis-server` and what it takes to start it again on its files.
struct LoneServer {
    service: Service,
    program: std::path::PathBuf,
    args: Vec<String>,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Redis {
    async fn start(setup: Setup) -> anyhow::Result<Self> {
        let Setup::Restarted(policy) = setup else {
            return Ok(Self::FailedOver(
                PrivateSentinels::start(Persistence::AofEverySec, 2).await,
            ));
        };
        let dir = std::env::temp_dir().join(format!("loss-{policy}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let program = std::path::PathBuf::from("redis-server");
        let args = redis_args(addr.port(), &dir, policy);
        let service = Service::start(Launch {
            program: &program,
            args: &args,
            env: &[],
            addr,
            ready: None,
        })
        .await?;
        Ok(Self::Restarted(Box::new(LoneServer {
            service,
            program,
            args,
            addr,
            dir,
        })))
    }

    fn url(&self) -> String {
        match self {
            Self::Restarted(lone) => format!("redis://{}", lone.addr),
            Self::FailedOver(sentinels) => sentinels.url(),
        }
    }

    /// `SIGKILL` of the master; a lone server is started again on its files.
    async fn kill_master(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Restarted(lone) => {
                tokio::process::Command::new("kill")
                    .args(["-KILL", &lone.service.pid()?.to_string()])
                    .status()
                    .await?;
                lone.service = Service::start(Launch {
                    program: &lone.program,
                    args: &lone.args,
                    env: &[],
                    addr: lone.addr,
                    ready: None,
                })
                .await?;
            }
            Self::FailedOver(sentinels) => sentinels.nodes[0].kill(),
        }
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        if let Self::Restarted(lone) = self {
            lone.service.stop().await?;
            let _ = std::fs::remove_dir_all(&lone.dir);
        }
        Ok(())
    }
}

struct Row {
    setup: Setup,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    accepted: usize,
    lost: usize,
}

fn redis_args(port: u16, dir: &std::path::Path, policy: &str) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        policy,
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        "redis.log",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn measure(setup: Setup) -> anyhow::Result<Row> {
    let mut redis = Redis::start(setup).await?;
    let database = ScratchDatabase::new("loss");
    let prefix = format!("loss-{}", Uuid::new_v4().simple());
    let min_replicas = match setup {
        Setup::Restarted(_) => 0,
        Setup::FailedOver { min_replicas } => min_replicas,
    };
    let common = [
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", database.url.clone()),
        ("KEY_PREFIX", prefix),
        ("RUST_LOG", "error".to_owned()),
    ];
    let settler = start_app(
        "settler",
        "SETTLER_METRICS_ADDR",
        &common,
        &[
            ("PAYMENT_LATENCY_MS", "50-150"),
            ("SETTLER_CLAIM_IDLE_MS", "3000"),
        ],
        "/health",
    )
    .await?;
    let gateway = start_app(
        "gateway",
        "GATEWAY_ADDR",
        &common,
        &[
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("SEED_DEMO", "false"),
            ("RATE_LIMIT_PER_IP", "0"),
            ("BOOKING_LIMIT_PER_IP", "0"),
            ("REDIS_MIN_REPLICAS", &min_replicas.to_string()),
        ],
        "/api/health/ready",
    )
    .await?;
    let gateway_addr = gateway.addr;
    let client = reqwest::Client::new();
    let concert: Value = client
        .post(format!("http://{gateway_addr}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "name": "Loss Night", "location": "Hall", "date": "2099-01-01T20:00:00Z",
            "ticketTiers": [{"name": "GA", "price": 10, "totalQuantity": 1_000_000}]
        }))
        .send()
        .await?
        .json()
        .await?;
    let tier = concert["ticketTiers"][0]["id"]
        .as_str()
        .context("tier id")?
        .to_owned();

    let run = Uuid::new_v4().simple().to_string();
    let booking = move |n: u64| {
        json!({
            "ticketTierId": tier, "userEmail": format!("{run}{n}@loss.example"), "quantity": 1,
            "totalPrice": 10, "idempotencyKey": format!("{run}-{n}"),
        })
    };
    let throughput = {
        let booking = booking.clone();
        pressure::run(Load {
            target: gateway_addr,
            connections: 64,
            duration: THROUGHPUT_RUN,
            rate: None,
            request: Arc::new(move |n| {
                hyper::Request::post("/api/bookings")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(booking(n).to_string())))
                    .unwrap_or_default()
            }),
        })
        .await
    };
    let (p50_ms, p99_ms) = (
        throughput.percentile_ms(50.0),
        throughput.percentile_ms(99.0),
    );
    let throughput = throughput.with_status(202) as f64 / throughput.elapsed.as_secs_f64();

    // The loss run: every 202's booking id, the Redis master killed.
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut killed = false;
    let mut n = 1_000_000_000u64;
    while started.elapsed() < LOSS_RUN {
        tick.tick().await;
        if !killed && started.elapsed() >= KILL_AFTER {
            killed = true;
            redis.kill_master().await?;
        }
        n += 1;
        let (client, accepted, body) = (client.clone(), Arc::clone(&accepted), booking(n));
        let url = format!("http://{gateway_addr}/api/bookings");
        sends.spawn(async move {
            let Ok(response) = client.post(url).json(&body).send().await else {
                return;
            };
            if response.status() == 202
                && let Ok(answer) = response.json::<Value>().await
                && let Some(id) = answer["booking"]["id"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok())
            {
                accepted
                    .lock()
                    .map(|mut ids| ids.insert(id))
                    .unwrap_or_default();
            }
        });
    }
    while sends.join_next().await.is_some() {}
    let accepted: HashSet<Uuid> = accepted.lock().map(|ids| ids.clone()).unwrap_or_default();

    // Settled: Postgres' count stops moving.
    let db = sqlx::PgPool::connect(&database.url).await?;
    let mut last = None;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let count = testkit::sql::settled_ids(&db).await.len();
        if last == Some(count) {
            break;
        }
        last = Some(count);
    }
    let ids: Vec<BookingId> = accepted.iter().copied().map(BookingId::from).collect();
    let found = pg_store::known(&db, &ids).await?;
    db.close().await;
    gateway.stop().await?;
    settler.stop().await?;
    redis.stop().await?;
    Ok(Row {
        setup,
        throughput,
        p50_ms,
        p99_ms,
        accepted: accepted.len(),
        lost: accepted.len() - found.len(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for setup in [
        Setup::Restarted("everysec"),
        Setup::Restarted("always"),
        Setup::FailedOver { min_replicas: 0 },
        Setup::FailedOver { min_replicas: 1 },
    ] {
        rows.push(measure(setup).await?);
    }
    println!(
        "{:<32}  bookings/s (closed loop)  p50 ms  p99 ms  accepted at {RATE}/s  lost to kill -9",
        "setup"
    );
    for row in &rows {
        println!(
            "{:<32}  {:>24.0}  {:>6.2}  {:>6.2}  {:>17}  {:>15}",
            row.setup.to_string(),
            row.throughput,
            row.p50_ms,
            row.p99_ms,
            row.accepted,
            row.lost
        );
    }
    Ok(())
}

/// Starts the sibling binary `name` on a free port (given to it as `addr_variable`) with the
/// `common` and its `own` variables, and waits until `ready` answers.
async fn start_app(
    name: &str,
    addr_variable: &'static str,
    common: &[(&'static str, String)],
    own: &[(&'static str, &str)],
    ready: &str,
) -> anyhow::Result<Service> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut env = common.to_vec();
    env.push((addr_variable, addr.to_string()));
    env.extend(
        own.iter()
            .map(|(variable, value)| (*variable, (*value).to_owned())),
    );
    Service::start(Launch::http(&sibling(name)?, &env, addr, ready)).await
}
