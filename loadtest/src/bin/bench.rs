//! `make bench`: the project's performance figures next to DESIGN.md's targets, measured in one
//! go on this machine, printed as one table and written with two charts to `BENCH_OUT`
//! (default `target/bench`).
//!
//! 1. The physical limit: `redis-benchmark` running `lua/reserve.lua` by SHA on the same Redis.
//! 2. A release gateway: `POST /api/bookings` as fast as it answers, then at half the Redis rate
//!    (latency counted from when each request was due); `GET /api/concerts` next to a hello-world
//!    hyper server.
//! 3. Settlement at 500 ms payment latency: read from `BENCH_OUT/settle.json`, which
//!    `cargo bench -p settler --bench settle` writes when `BENCH_RESULT` names it.
//! 4. SSE fan-out: `BENCH_SSE_CLIENTS` (default 50,000) streams on four gateways, held by
//!    several `sse_fanout --follow` processes over 127.0.0.x source addresses; how long each
//!    stock change takes to reach every client, and the gateways' memory per stream.
//!
//! Uses `REDIS_URL` and the server of `DATABASE_URL`, with a key prefix and database of its own
//! that it removes afterwards. `BENCH_SECONDS` (default 10) sets each HTTP run's length.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use booking::config::{self, Backends};
use booking::domain::{Email, IdempotencyKey, Quantity};
use booking::keys::{Keyspace, Shard};
use booking::money::{Currency, Money};
use booking::record::{Booking, Packed};
use booking::scripts::reserve::{Reservation, ReserveScript};
use bytes::Bytes;
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, ServerConfig};
use gateway::api::admin::{NewConcertBody, WaitingRoomBody};
use gateway::api::bookings::BookingBody;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::Request;
use loadtest::abuse;
use loadtest::pressure::{self, Load, Outcome};
use loadtest::services::{Service, free_port, rss_kib, sibling};
use plotters::prelude::*;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "bench-admin-token";
/// Clients one `sse_fanout` process holds: below the 20,000 open files a process may have here.
const CLIENTS_PER_PROCESS: usize = 16_000;
/// Source addresses each `sse_fanout` process spreads its clients over.
const SOURCES_PER_PROCESS: u8 = 4;
const FANOUT_ROUNDS: usize = 5;

#[derive(Debug)]
struct Settings {
    backends: Backends,
    /// `DATABASE_URL` without its database name.
    database_server: String,
    seconds: u64,
    /// Connections of the closed-loop runs; the fixed-rate run gets four times as many.
    connections: usize,
    redis_requests: usize,
    sse_clients: usize,
    sse_gateways: usize,
    out: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let backends = Backends::from_env()?;
        let database_server = backends
            .database_url
            .rsplit_once('/')
            .map(|(server, _)| server.to_owned())
            .context("DATABASE_URL has no database name")?;
        Ok(Self {
            backends,
            database_server,
            seconds: config::from_str_or("BENCH_SECONDS", 10)?,
            connections: config::from_str_or("BENCH_CONNECTIONS", 64)?,
            redis_requests: config::from_str_or("BENCH_REDIS_REQUESTS", 500_000)?,
            sse_clients: config::from_str_or("BENCH_SSE_CLIENTS", 50_000)?,
            sse_gateways: config::from_str_or("BENCH_SSE_GATEWAYS", 4)?,
            out: config::raw("BENCH_OUT")
                .unwrap_or_else(|| "target/bench".to_owned())
                .into(),
        })
    }
}

/// One run's own key prefix and database.
#[derive(Debug)]
struct Run {
    keys: Keyspace,
    database: String,
    redis: fred::prelude::Client,
}

impl Run {
    fn database_url(&self, settings: &Settings) -> String {
        format!("{}/{}", settings.database_server, self.database)
    }

    fn gateway_env(
        &self,
        settings: &Settings,
        addr: SocketAddr,
        seed_demo: bool,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("GATEWAY_ADDR", addr.to_string()),
            ("REDIS_URL", settings.backends.redis_url.clone()),
            ("DATABASE_URL", self.database_url(settings)),
            ("KEY_PREFIX", self.keys.prefix().to_owned()),
            ("REDIS_SHARDS", self.keys.shard_count().to_string()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("SEED_DEMO", seed_demo.to_string()),
            ("RATE_LIMIT_PER_IP", "0".to_owned()),
            ("BOOKING_LIMIT_PER_IP", "0".to_owned()),
            ("MAX_TICKETS_PER_CUSTOMER", "0".to_owned()),
            ("MAX_SSE_CLIENTS", "25000".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
    }

    async fn clean_up(&self, settings: &Settings) -> anyhow::Result<()> {
        let pattern = format!("{{{}:*", self.keys.prefix());
        let mut cursor = "0".to_owned();
        loop {
            let (next, keys): (String, Vec<String>) = self
                .redis
                .custom(
                    fred::cmd!("SCAN"),
                    vec![
                        cursor.clone(),
                        "MATCH".into(),
                        pattern.clone(),
                        "COUNT".into(),
                        "1000".into(),
                    ],
                )
                .await?;
            if !keys.is_empty() {
                self.redis.del::<(), _>(keys).await?;
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        let mut admin =
            PgConnection::connect(&format!("{}/postgres", settings.database_server)).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// `redis-benchmark`'s own figures for the reservation script.
#[derive(Debug)]
struct RedisLimit {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    clients: usize,
}

/// Runs `lua/reserve.lua` by SHA with `redis-benchmark`, every call a new booking: random
/// idempotency key, booking id and customer, as the gateway sends them.
async fn redis_limit(settings: &Settings, run: &Run) -> anyhow::Result<RedisLimit> {
    const CLIENTS: usize = 50;
    let keys = &run.keys;
    let shard = Shard::new(0);
    let (concert, tier) = (Uuid::new_v4(), Uuid::new_v4());
    run.redis
        .set::<(), _, _>(keys.stock(shard, tier), 1_000_000_000, None, None, false)
        .await?;
    let script = ReserveScript::default();
    script.load(&run.redis).await?;
    let _: () = run
        .redis
        .set(keys.epoch(shard), 1, None, None, false)
        .await?;

    // Every call a new booking: redis-benchmark replaces `__rand_int__` in each argument.
    let random = "__rand_int__";
    let packed = Packed {
        booking: Booking {
            id: Uuid::nil(),
            ticket_tier_id: tier,
            concert_id: concert,
            user_email: Email::parse(&format!("{random}@bench.example"))
                .map_err(anyhow::Error::msg)?,
            quantity: Quantity::new(1).map_err(anyhow::Error::msg)?,
            total_price: Money::new(rust_decimal::Decimal::TEN)?,
            currency: Currency::Usd,
            created_at: chrono::Utc::now(),
            idempotency_key: IdempotencyKey::parse(random).map_err(anyhow::Error::msg)?,
        },
        held_until: chrono::Utc::now().timestamp() + 86_400,
        customer_limit: 0,
    };
    let nil = Uuid::nil().to_string();
    let (script_keys, script_args) = ReserveScript::keys_and_args(
        keys,
        shard,
        Reservation {
            packed: &packed,
            admission: None,
        },
    );
    let mut args = vec![
        "EVALSHA".to_owned(),
        script.sha1().to_owned(),
        script_keys.len().to_string(),
    ];
    args.extend(
        script_keys
            .into_iter()
            .chain(script_args)
            .map(|arg| arg.replace(&nil, random)),
    );

    let server = match &Config::from_url(&settings.backends.redis_url)?.server {
        ServerConfig::Centralized { server } => server.clone(),
        other => bail!("redis-benchmark needs one Redis server, not {other:?}"),
    };
    let output = Command::new("redis-benchmark")
        .args(["-h", &server.host, "-p", &server.port.to_string()])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-n",
            &settings.redis_requests.to_string(),
        ])
        .args(["-r", "1000000000", "--csv"])
        .args(&args)
        .output()
        .await
        .context("running redis-benchmark")?;
    let csv = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
    let figures: Vec<f64> = csv
        .lines()
        .nth(1)
        .map(|line| {
            line.split(',')
                .skip(1)
                .filter_map(|field| field.trim_matches('"').parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [per_second, _, _, p50_ms, _, p99_ms, ..] = figures[..] else {
        bail!(
            "unexpected redis-benchmark output: {csv}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Ok(RedisLimit {
        per_second,
        p50_ms,
        p99_ms,
        clients: CLIENTS,
    })
}

/// A tier the benchmark books, as large as a tier may be (a million), so that it does not sell out.
#[derive(Debug, Clone)]
struct Tier {
    id: Uuid,
    price: Money,
}

/// Two tiers: one per booking run, so that each run has a million tickets of its own.
async fn create_tiers(gateway: SocketAddr) -> anyhow::Result<[Tier; 2]> {
    let response = reqwest::Client::new()
        .post(format!("http://{gateway}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&NewConcertBody::new(
            "Bench Arena",
            "Bench Hall",
            "2099-01-01T20:00:00Z".parse()?,
            &[
                ("Floor", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000),
                ("Stands", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000),
            ],
        ))
        .send()
        .await?;
    let status = response.status();
    let concert: Value = response.json().await?;
    if status != 201 {
        bail!("creating the bench concert answered {status}: {concert}");
    }
    let tier = |index: usize| -> anyhow::Result<Tier> {
        let tier = &concert["ticketTiers"][index];
        Ok(Tier {
            id: tier["id"].as_str().context("tier without id")?.parse()?,
            price: tier["price"].to_string().parse()?,
        })
    };
    Ok([tier(0)?, tier(1)?])
}

fn get(host: SocketAddr, path: &'static str) -> pressure::MakeRequest {
    Arc::new(move |_| {
        Request::get(path)
            .header("host", host.to_string())
            .body(Full::default())
            .unwrap_or_default()
    })
}

/// A new booking for every `n`: distinct buyer and idempotency key; `run` keeps runs apart.
fn book(host: SocketAddr, tier: &Tier, run: &'static str) -> pressure::MakeRequest {
    let tier = tier.clone();
    Arc::new(move |n| {
        let booking = BookingBody::new(
            tier.id,
            &format!("{run}{n}@bench.example"),
            1,
            tier.price,
            &format!("{run}-{n}"),
        );
        let body = booking
            .ok()
            .and_then(|booking| serde_json::to_vec(&booking).ok())
            .unwrap_or_default();
        Request::post("/api/bookings")
            .header("host", host.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    })
}

/// The waiting room the bench joins admits this many a second.
const ADMIT_PER_SECOND: u32 = 1_000;
/// How long the admission rate is watched for.
const ADMISSION_WINDOW: Duration = Duration::from_secs(5);

/// A concert of one tier sold through a waiting room admitting [`ADMIT_PER_SECOND`], on sale now.
async fn create_room(gateway: SocketAddr) -> anyhow::Result<Uuid> {
    let body = NewConcertBody {
        waiting_room: Some(WaitingRoomBody {
            admit_per_second: ADMIT_PER_SECOND,
        }),
        ..NewConcertBody::new(
            "Bench Queue",
            "Bench Hall",
            "2099-01-01T20:00:00Z".parse()?,
            &[("Floor", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000)],
        )
    };
    let response = reqwest::Client::new()
        .post(format!("http://{gateway}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let concert: Value = response.json().await?;
    if status != 201 {
        bail!("creating the waiting-room concert answered {status}: {concert}");
    }
    Ok(concert["id"]
        .as_str()
        .context("concert without id")?
        .parse()?)
}

/// A new place in `concert`'s waiting room for every request.
fn join(host: SocketAddr, concert: Uuid) -> pressure::MakeRequest {
    Arc::new(move |_| {
        Request::post(format!("/api/concerts/{concert}/queue"))
            .header("host", host.to_string())
            .body(Full::default())
            .unwrap_or_default()
    })
}

/// Admissions per second of `concert`'s waiting room over [`ADMISSION_WINDOW`], as Redis counts
/// them.
async fn admission_rate(run: &Run, concert: Uuid) -> anyhow::Result<f64> {
    let shard = run.keys.shard_for_new_concert(concert);
    let key = run.keys.queue(shard, concert, "admitted");
    let before: u64 = run.redis.get(&key).await?;
    let started = std::time::Instant::now();
    tokio::time::sleep(ADMISSION_WINDOW).await;
    let after: u64 = run.redis.get(&key).await?;
    Ok((after - before) as f64 / started.elapsed().as_secs_f64())
}

#[derive(Debug)]
struct HttpFigures {
    hello: Outcome,
    catalog: Outcome,
    booking_max: Outcome,
    join_max: Outcome,
    /// Admissions per second measured of a room admitting [`ADMIT_PER_SECOND`].
    admission: f64,
    booking_half: Outcome,
    /// The same run, with the siege of [`SIEGE`] under way.
    booking_besieged: Outcome,
    half_rate: f64,
}

/// Hostile clients beside the booking load: silent sockets, bodies that never finish, and
/// 90 dashboards a second each over its own window.
const SIEGE: abuse::Siege = abuse::Siege {
    silent_sockets: 2_000,
    slow_bodies: 500,
    dashboards_per_second: 90,
};

async fn http_figures(
    settings: &Settings,
    run: &Run,
    redis: &RedisLimit,
) -> anyhow::Result<(HttpFigures, Tier)> {
    let duration = Duration::from_secs(settings.seconds);
    let closed = |target, request| Load {
        target,
        connections: settings.connections,
        duration,
        rate: None,
        request,
    };

    let hello_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let hello = Service::start(
        &sibling("hello")?,
        &[hello_addr.to_string()],
        &[],
        hello_addr,
        None,
    )
    .await?;
    println!("bench: hello-world hyper server, {} s", settings.seconds);
    let hello_outcome = pressure::run(closed(hello_addr, get(hello_addr, "/"))).await;
    hello.stop().await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let gateway = Service::start(
        &sibling("gateway")?,
        &[],
        &run.gateway_env(settings, addr, true),
        addr,
        Some("/api/health/ready"),
    )
    .await?;
    let [floor, stands] = create_tiers(addr).await?;
    println!("bench: GET /api/concerts, {} s", settings.seconds);
    let catalog = pressure::run(closed(addr, get(addr, "/api/concerts"))).await;
    println!(
        "bench: POST /api/bookings as fast as answered, {} s",
        settings.seconds
    );
    let booking_max = pressure::run(closed(addr, book(addr, &floor, "max"))).await;
    let room = create_room(addr).await?;
    println!(
        "bench: POST /api/concerts/{{id}}/queue as fast as answered, {} s",
        settings.seconds
    );
    let join_max = pressure::run(closed(addr, join(addr, room))).await;
    println!(
        "bench: the waiting room's admissions at {ADMIT_PER_SECOND}/s, {} s",
        ADMISSION_WINDOW.as_secs()
    );
    let admission = admission_rate(run, room).await?;
    let half_rate = redis.per_second / 2.0;
    println!(
        "bench: POST /api/bookings at {half_rate:.0}/s, {} s",
        settings.seconds
    );
    let at_half = |run: &'static str| Load {
        target: addr,
        connections: settings.connections * 4,
        duration,
        rate: Some(half_rate),
        request: book(addr, &stands, run),
    };
    let booking_half = pressure::run(at_half("half")).await;
    println!(
        "bench: POST /api/bookings at {half_rate:.0}/s besieged ({SIEGE:?}), {} s",
        settings.seconds
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let siege = tokio::spawn(abuse::run(addr, SIEGE, stop.clone()));
    // The siege takes hold (sockets open, pool busy) before the bookings start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let booking_besieged = pressure::run(at_half("besieged")).await;
    stop.cancel();
    let tally = siege.await?;
    println!(
        "bench: the siege had {} sockets closed by the gateway and {} dashboards answered",
        tally.closed.load(std::sync::atomic::Ordering::Relaxed),
        tally.dashboards.load(std::sync::atomic::Ordering::Relaxed)
    );
    gateway.stop().await?;
    Ok((
        HttpFigures {
            hello: hello_outcome,
            catalog,
            booking_max,
            join_max,
            admission,
            booking_half,
            booking_besieged,
            half_rate,
        },
        floor,
    ))
}

/// The settle benchmark's figures, from the file it wrote.
#[derive(Debug)]
struct Settlement {
    per_second: f64,
    settled: u64,
    latency_ms: u64,
}

fn settlement(out: &Path) -> anyhow::Result<Settlement> {
    let path = out.join("settle.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (BENCH_RESULT={} cargo bench -p settler --bench settle writes it)",
            path.display(),
            path.display()
        )
    })?;
    let figures: Value = serde_json::from_str(&text)?;
    Ok(Settlement {
        per_second: figures["perSecond"].as_f64().context("perSecond")?,
        settled: figures["settled"].as_u64().context("settled")?,
        latency_ms: figures["paymentLatencyMs"]
            .as_u64()
            .context("paymentLatencyMs")?,
    })
}

/// One `sse_fanout --follow` process and its two pipes.
#[derive(Debug)]
struct Follower {
    child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
}

impl Follower {
    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.input.write_all(format!("{line}\n").as_bytes()).await?;
        Ok(self.input.flush().await?)
    }

    /// The rest of the next line that starts with `word`.
    async fn hear(&mut self, word: &str) -> anyhow::Result<String> {
        let line = self
            .output
            .next_line()
            .await?
            .context("sse_fanout ended early")?;
        line.strip_prefix(word)
            .map(|rest| rest.trim().to_owned())
            .with_context(|| format!("expected {word:?} from sse_fanout, got {line:?}"))
    }
}

#[derive(Debug)]
struct Fanout {
    clients: usize,
    connected: usize,
    /// Per round, clients the change reached.
    reached: Vec<usize>,
    /// Delivery latencies of every round, µs.
    latency: Histogram<u64>,
    kib_per_stream: f64,
}

async fn sse_fanout(settings: &Settings, run: &Run, tier: &Tier) -> anyhow::Result<Fanout> {
    let mut gateways = Vec::new();
    for index in 0..settings.sse_gateways {
        let port = free_port()?;
        // The first seeds the demo catalog (into an empty database only); the rest share it.
        let env = run.gateway_env(settings, SocketAddr::from(([0, 0, 0, 0], port)), index == 0);
        gateways.push(
            Service::start(
                &sibling("gateway")?,
                &[],
                &env,
                SocketAddr::from(([127, 0, 0, 1], port)),
                Some("/api/health/ready"),
            )
            .await?,
        );
    }
    let pids = gateways
        .iter()
        .map(Service::pid)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rss = || pids.iter().filter_map(|pid| rss_kib(*pid)).sum::<u64>();
    let before = rss();
    let targets = gateways
        .iter()
        .map(|gateway| gateway.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");

    println!(
        "bench: {} SSE clients on {} gateways",
        settings.sse_clients, settings.sse_gateways
    );
    let mut followers = Vec::new();
    let mut remaining = settings.sse_clients;
    while remaining > 0 {
        let clients = remaining.min(CLIENTS_PER_PROCESS);
        remaining -= clients;
        let offset = u8::try_from(followers.len())? * SOURCES_PER_PROCESS;
        let mut child = Command::new(sibling("sse_fanout")?)
            .args(["--gateways", &targets, "--follow", &tier.id.to_string()])
            .args(["--clients", &clients.to_string()])
            .args(["--sources", &SOURCES_PER_PROCESS.to_string()])
            .args(["--source-offset", &offset.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let input = child.stdin.take().context("sse_fanout stdin")?;
        let output = BufReader::new(child.stdout.take().context("sse_fanout stdout")?).lines();
        followers.push(Follower {
            child,
            input,
            output,
        });
    }
    let mut connected = 0;
    for follower in &mut followers {
        connected += follower.hear("ready").await?.parse::<usize>()?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    println!("bench: {connected} streaming; {FANOUT_ROUNDS} stock changes");

    let http = reqwest::Client::new();
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    let mut reached = Vec::new();
    for _ in 0..FANOUT_ROUNDS {
        for follower in &mut followers {
            follower.say("arm").await?;
        }
        for follower in &mut followers {
            follower.hear("armed").await?;
        }
        let sent = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
        let booked = http
            .post(format!("http://{}/api/bookings", gateways[0].addr))
            .json(
                &BookingBody::new(
                    tier.id,
                    &format!("{}@fanout.example", Uuid::new_v4().simple()),
                    1,
                    tier.price,
                    &Uuid::new_v4().to_string(),
                )
                .map_err(anyhow::Error::msg)?,
            )
            .send()
            .await?;
        if booked.status() != 202 {
            bail!("the triggering booking answered {}", booked.status());
        }
        let mut count = 0;
        for follower in &mut followers {
            follower.say("collect").await?;
            for arrival in follower.hear("arrivals").await?.split(',') {
                if let Ok(at) = arrival.parse::<u128>() {
                    count += 1;
                    latency.saturating_record(u64::try_from(at.saturating_sub(sent))?.max(1));
                }
            }
        }
        reached.push(count);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for follower in followers {
        let Follower {
            mut child, input, ..
        } = follower;
        drop(input);
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    for gateway in gateways {
        gateway.stop().await?;
    }
    Ok(Fanout {
        clients: settings.sse_clients,
        connected,
        reached,
        latency,
        kib_per_stream: (after as f64 - before as f64) / connected.max(1) as f64,
    })
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Answers that were not `expected`, and requests with no answer, as a short note.
fn unexpected(outcome: &Outcome, expected: u16) -> String {
    let other = outcome.answered() - outcome.with_status(expected);
    if other == 0 && outcome.failures == 0 {
        String::new()
    } else {
        format!(
            "; {other} answers other than {expected}, {} unanswered",
            outcome.failures
        )
    }
}

fn table(
    settings: &Settings,
    redis: &RedisLimit,
    http: &HttpFigures,
    settle: &Settlement,
    fanout: &Fanout,
) -> String {
    let booking_ratio = http.booking_max.throughput() / redis.per_second;
    let catalog_ratio = http.hello.throughput() / http.catalog.throughput();
    let fanout_p99 = fanout.latency.value_at_percentile(99.0) as f64 / 1e3;
    let mut table = String::new();
    let mut row = |measure: &str, result: String, target: &str, verdict: &str| {
        let _ = writeln!(table, "| {measure} | {result} | {target} | {verdict} |");
    };
    row("Measure", "Result".into(), "Target", "");
    row("---", "---".into(), "---", "---");
    row(
        "Redis: `reserve.lua` by SHA (`redis-benchmark`)",
        format!(
            "{}/s, p50 {:.2} ms, p99 {:.2} ms ({} clients)",
            thousands(redis.per_second),
            redis.p50_ms,
            redis.p99_ms,
            redis.clients
        ),
        "the physical limit",
        "",
    );
    row(
        "Gateway: `POST /api/bookings`, as fast as answered",
        format!(
            "{}/s = {booking_ratio:.2}x Redis, p50 {:.2} ms, p99 {:.2} ms ({} connections{})",
            thousands(http.booking_max.throughput()),
            http.booking_max.percentile_ms(50.0),
            http.booking_max.percentile_ms(99.0),
            settings.connections,
            unexpected(&http.booking_max, 202)
        ),
        ">= 0.5x Redis",
        verdict(booking_ratio >= 0.5),
    );
    let join_ratio = http.join_max.throughput() / http.booking_max.throughput();
    row(
        "Waiting room: `POST /api/concerts/{id}/queue`, as fast as answered",
        format!(
            "{}/s = {join_ratio:.2}x bookings, p50 {:.2} ms, p99 {:.2} ms{}",
            thousands(http.join_max.throughput()),
            http.join_max.percentile_ms(50.0),
            http.join_max.percentile_ms(99.0),
            unexpected(&http.join_max, 201)
        ),
        ">= 1x bookings",
        verdict(join_ratio >= 1.0),
    );
    let admission_ratio = http.admission / f64::from(ADMIT_PER_SECOND);
    row(
        "Waiting room: admissions of a room admitting 1,000/s",
        format!(
            "{:.1}/s over {} s = {admission_ratio:.3}x",
            http.admission,
            ADMISSION_WINDOW.as_secs()
        ),
        "within 5 %",
        verdict((admission_ratio - 1.0).abs() <= 0.05),
    );
    row(
        "Gateway: `POST /api/bookings` at half the Redis rate",
        format!(
            "{}/s asked, {}/s answered, p50 {:.2} ms, p99 {:.2} ms{}",
            thousands(http.half_rate),
            thousands(http.booking_half.throughput()),
            http.booking_half.percentile_ms(50.0),
            http.booking_half.percentile_ms(99.0),
            unexpected(&http.booking_half, 202)
        ),
        "p99 < 5 ms",
        verdict(http.booking_half.percentile_ms(99.0) < 5.0),
    );
    row(
        "... the same, besieged: silent sockets, endless bodies, a dashboard flood",
        format!(
            "{}/s answered, p50 {:.2} ms, p99 {:.2} ms ({} silent, {} slow bodies, {} dashboards/s{})",
            thousands(http.booking_besieged.throughput()),
            http.booking_besieged.percentile_ms(50.0),
            http.booking_besieged.percentile_ms(99.0),
            SIEGE.silent_sockets,
            SIEGE.slow_bodies,
            SIEGE.dashboards_per_second,
            unexpected(&http.booking_besieged, 202)
        ),
        "bookings go on",
        verdict(http.booking_besieged.with_status(202) > 0),
    );
    row(
        "Hello-world hyper server",
        format!(
            "{}/s, p99 {:.2} ms",
            thousands(http.hello.throughput()),
            http.hello.percentile_ms(99.0)
        ),
        "the yardstick",
        "",
    );
    row(
        "Gateway: `GET /api/concerts`",
        format!(
            "{}/s = hello-world / {catalog_ratio:.2}, p99 {:.2} ms{}",
            thousands(http.catalog.throughput()),
            http.catalog.percentile_ms(99.0),
            unexpected(&http.catalog, 200)
        ),
        "within 2x of hello-world",
        verdict(catalog_ratio <= 2.0),
    );
    row(
        "Settler: bookings settled into Postgres",
        format!(
            "{}/s ({} bookings, {} ms payment latency)",
            thousands(settle.per_second),
            thousands(settle.settled as f64),
            settle.latency_ms
        ),
        ">= 5,000/s at 500 ms",
        verdict(settle.per_second >= 5_000.0 && settle.latency_ms >= 500),
    );
    let reached = fanout.reached.iter().min().copied().unwrap_or(0);
    row(
        "SSE: a stock change reaching every client",
        format!(
            "{} of {} clients streaming on {} gateways; every one of {} changes reached at least {}; p50 {:.0} ms, p99 {fanout_p99:.0} ms, max {:.0} ms",
            thousands(fanout.connected as f64),
            thousands(fanout.clients as f64),
            settings.sse_gateways,
            fanout.reached.len(),
            thousands(reached as f64),
            fanout.latency.value_at_percentile(50.0) as f64 / 1e3,
            fanout.latency.max() as f64 / 1e3
        ),
        "50,000 clients, p99 < 1 s",
        verdict(fanout.connected >= 50_000 && reached == fanout.connected && fanout_p99 < 1_000.0),
    );
    row(
        "SSE: gateway memory per idle stream",
        format!(
            "{:.1} KiB (resident memory growth / streams)",
            fanout.kib_per_stream
        ),
        "< 10 KiB",
        verdict(fanout.kib_per_stream < 10.0),
    );
    table
}

/// Latency percentiles per second of the fixed-rate booking run.
fn booking_chart(path: &Path, http: &HttpFigures) -> anyhow::Result<()> {
    let seconds = &http.booking_half.per_second;
    let series = |percentile: f64| -> Vec<(f64, f64)> {
        seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| {
                (
                    s as f64 + 1.0,
                    h.value_at_percentile(percentile) as f64 / 1e3,
                )
            })
            .collect()
    };
    let lines = [
        ("p50", 50.0, BLUE),
        ("p99", 99.0, RED),
        ("p99.9", 99.9, MAGENTA),
    ];
    let top = lines
        .iter()
        .flat_map(|(_, p, _)| series(*p))
        .map(|(_, ms)| ms)
        .fold(5.0_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "POST /api/bookings at {}/s: latency per second",
                thousands(http.half_rate)
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..(seconds.len() as f64 + 1.0), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("latency, ms")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 5.0), (seconds.len() as f64 + 1.0, 5.0)],
            BLACK.mix(0.4),
        ))?
        .label("target p99 (5 ms)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (name, percentile, color) in lines {
        chart
            .draw_series(LineSeries::new(series(percentile), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Share of SSE deliveries within each latency.
fn fanout_chart(path: &Path, fanout: &Fanout) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = (0..=1000)
        .map(|step| {
            let percentile = f64::from(step) / 10.0;
            (
                fanout.latency.value_at_percentile(percentile) as f64 / 1e3,
                percentile,
            )
        })
        .collect();
    let right = (fanout.latency.max() as f64 / 1e3 * 1.1).max(10.0);
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "A stock change reaching {} SSE clients: share delivered by latency",
                thousands(fanout.connected as f64)
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..right, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("latency from the booking request, ms")
        .y_desc("deliveries, %")
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

async fn measure(settings: &Settings, run: &Run) -> anyhow::Result<String> {
    let settle = settlement(&settings.out)?;
    println!(
        "bench: redis-benchmark, {} calls of reserve.lua",
        settings.redis_requests
    );
    let redis = redis_limit(settings, run).await?;
    let (http, tier) = http_figures(settings, run, &redis).await?;
    let fanout = sse_fanout(settings, run, &tier).await?;
    booking_chart(&settings.out.join("booking-latency.svg"), &http)?;
    fanout_chart(&settings.out.join("sse-delivery.svg"), &fanout)?;
    Ok(table(settings, &redis, &http, &settle, &fanout))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    std::fs::create_dir_all(&settings.out)?;
    let tag = Uuid::new_v4().simple().to_string();
    let redis = Builder::from_config(Config::from_url(&settings.backends.redis_url)?).build()?;
    redis.init().await?;
    let run = Run {
        keys: Keyspace::new(format!("bench-{tag}"), settings.backends.redis_shards),
        database: format!("bench_{tag}"),
        redis,
    };
    let measured = measure(&settings, &run).await;
    run.clean_up(&settings).await?;
    let table = measured?;
    let path = settings.out.join("results.md");
    std::fs::write(&path, &table)?;
    println!("\n{table}\nwritten to {}", path.display());
    Ok(())
}
