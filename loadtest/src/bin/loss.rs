//! `make bench-loss`: how many accepted bookings a `kill -9` of Redis loses at 1,000 bookings/s
//! with each append-only-file fsync policy, and what the safer policy costs in booking throughput.
//!
//! For each policy: a private `redis-server` (its own port and directory), release settler and
//! gateway, a closed-loop booking run for the throughput, then 1,000 bookings/s for eight seconds
//! with Redis killed (`SIGKILL`) and restarted on the same files after three. A booking is lost
//! when it was answered 202 and, once everything settled, Postgres holds no trace of it.

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
use testkit::ScratchDatabase;
use tokio::time::Instant;
use uuid::Uuid;

const ADMIN_TOKEN: &str = "loss-bench-admin-token";
/// Bookings per second of the loss run.
const RATE: u64 = 1_000;
const LOSS_RUN: Duration = Duration::from_secs(8);
const KILL_AFTER: Duration = Duration::from_secs(3);
const THROUGHPUT_RUN: Duration = Duration::from_secs(5);

struct Row {
    policy: &'static str,
    throughput: f64,
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

async fn measure(policy: &'static str) -> anyhow::Result<Row> {
    let dir = std::env::temp_dir().join(format!("loss-{policy}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let redis_port = free_port()?;
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], redis_port));
    let redis_program = std::path::PathBuf::from("redis-server");
    let args = redis_args(redis_port, &dir, policy);
    let redis_launch = Launch {
        program: &redis_program,
        args: &args,
        env: &[],
        addr: redis_addr,
        ready: None,
    };
    let mut redis = Service::start(redis_launch).await?;
    let database = ScratchDatabase::new("loss");
    let prefix = format!("loss-{policy}-{}", Uuid::new_v4().simple());
    let common = [
        ("REDIS_URL", format!("redis://{redis_addr}")),
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
    let throughput = throughput.with_status(202) as f64 / throughput.elapsed.as_secs_f64();

    // The loss run: every 202's booking id, Redis killed and restarted on the same files.
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
            tokio::process::Command::new("kill")
                .args(["-KILL", &redis.pid()?.to_string()])
                .status()
                .await?;
            redis.stop().await?;
            redis = Service::start(redis_launch).await?;
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
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        policy,
        throughput,
        accepted: accepted.len(),
        lost: accepted.len() - found.len(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for policy in ["everysec", "always"] {
        rows.push(measure(policy).await?);
    }
    println!("appendfsync  bookings/s (closed loop)  accepted at {RATE}/s  lost to kill -9");
    for row in &rows {
        println!(
            "{:<11}  {:>23.0}  {:>17}  {:>15}",
            row.policy, row.throughput, row.accepted, row.lost
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
