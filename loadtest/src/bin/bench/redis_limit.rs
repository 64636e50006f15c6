//! The physical limit: `redis-benchmark` running the reservation script by SHA, beside a
//! reference script doing only a booking's essential work (`loadtest/reference.lua`), and the
//! Redis memory a booking takes while pending and once settled.

use anyhow::{Context, bail};
use domain::ids::{BookingId, ConcertId, Shard, TierId};
use domain::money::{Currency, Money};
use domain::record::{Booking, BookingStatus, Packed, Stub};
use domain::values::{Email, IdempotencyKey, Quantity};
use fred::prelude::{Client, ClientLike, Config, KeysInterface, ServerConfig, StreamsInterface};
use fred::types::scripts::Script;
use redis_store::keys::Keyspace;
use redis_store::scripts::reserve::{Outcome, Reservation, ReserveScript};
use redis_store::scripts::settle::{self, Applied, SettleScript};
use redis_store::scripts::{ScriptError, Verify};
use tokio::process::Command;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::settings::{Run, Settings};

/// `redis-benchmark` connections.
const CLIENTS: usize = 50;
/// Runs of each script, taken in turn so that both see the same machine; the median is kept.
const RUNS: usize = 3;
/// Bookings whose memory is measured.
const MEMORY_BOOKINGS: usize = 100_000;

/// One script's figures in one `redis-benchmark` run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptRate {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Redis memory per booking, from `INFO memory` over [`MEMORY_BOOKINGS`] bookings.
#[derive(Debug)]
pub(crate) struct BookingMemory {
    pub bookings: usize,
    /// Accepted, not yet settled: record, idempotency key, held count, stream entry.
    pub pending_bytes: f64,
    /// Settled and trimmed from the stream: the record (kept an hour), the idempotency key (a
    /// day) and the held count.
    pub settled_bytes: f64,
    /// `MEMORY USAGE` of one pending booking's record and of its idempotency key.
    pub record_bytes: u64,
    pub idempotency_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct RedisLimit {
    /// `reserve.lua`: the median run by rate.
    pub reserve: ScriptRate,
    /// The reference script: the median run by rate.
    pub reference: ScriptRate,
    pub clients: usize,
    pub runs: usize,
    pub memory: BookingMemory,
}

impl RedisLimit {
    pub(crate) fn per_second(&self) -> f64 {
        self.reserve.per_second
    }

    /// `reserve.lua`'s rate as a share of the reference script's.
    pub(crate) fn ratio(&self) -> f64 {
        self.reserve.per_second / self.reference.per_second
    }
}

/// The scripts are loaded before any call: nothing to check before loading one again.
struct Loaded;

impl Verify for Loaded {
    async fn verify(&self) -> Result<(), ScriptError> {
        Ok(())
    }
}

/// One run of `redis-benchmark` with `command`, each `__rand_int__` in it a new random number.
async fn benchmark(
    server: &(String, u16),
    requests: usize,
    command: &[String],
) -> anyhow::Result<ScriptRate> {
    let output = Command::new("redis-benchmark")
        .args(["-h", &server.0, "-p", &server.1.to_string()])
        .args(["-c", &CLIENTS.to_string(), "-n", &requests.to_string()])
        .args(["-r", "1000000000", "--csv"])
        .args(command)
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
    Ok(ScriptRate {
        per_second,
        p50_ms,
        p99_ms,
    })
}

fn median(mut runs: Vec<ScriptRate>) -> anyhow::Result<ScriptRate> {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.get(runs.len() / 2).copied().context("no run")
}

/// A new booking of `tier`, as the gateway packs it.
fn packed(
    id: BookingId,
    concert: ConcertId,
    tier: TierId,
    customer: &str,
) -> anyhow::Result<Packed> {
    Ok(Packed {
        booking: Booking {
            id,
            ticket_tier_id: tier,
            concert_id: concert,
            user_email: Email::parse(&format!("{customer}@bench.example"))
                .map_err(anyhow::Error::msg)?,
            quantity: Quantity::new(1).map_err(anyhow::Error::msg)?,
            total_price: Money::new(rust_decimal::Decimal::TEN)?,
            currency: Currency::Usd,
            created_at: chrono::Utc::now(),
            idempotency_key: IdempotencyKey::parse(customer).map_err(anyhow::Error::msg)?,
        },
        held_until: chrono::Utc::now().timestamp() + 86_400,
        // The gateway's default: the count is kept and checked, as in production.
        customer_limit: 10,
        admission: None,
    })
}

/// `reserve.lua` as the gateway's wrapper calls it, every call a new booking: random idempotency
/// key, booking id and customer.
fn reserve_command(
    keys: &Keyspace,
    shard: Shard,
    script: &ReserveScript,
    concert: ConcertId,
    tier: TierId,
) -> anyhow::Result<Vec<String>> {
    let random = "__rand_int__";
    let packed = packed(Uuid::nil().into(), concert, tier, random)?;
    let nil = Uuid::nil().to_string();
    let reservation = Reservation {
        packed: &packed,
        admission: None,
    };
    let (script_keys, script_args) = ReserveScript::keys_and_args(keys, shard, reservation);
    let mut command = vec![
        "EVALSHA".to_owned(),
        script.sha1().to_owned(),
        script_keys.len().to_string(),
    ];
    command.extend(
        script_keys
            .into_iter()
            .chain(script_args)
            .map(|arg| arg.replace(&nil, random)),
    );
    Ok(command)
}

/// `loadtest/reference.lua` on the same shard's keys, every call a new booking.
fn reference_command(keys: &Keyspace, shard: Shard, sha1: &str, tier: TierId) -> Vec<String> {
    let random = "__rand_int__";
    [
        "EVALSHA",
        sha1,
        "3",
        &keys.idempotency(shard, Uuid::nil().into(), &format!("ref-{random}")),
        &keys.stock(shard, tier),
        &format!("{}-reference", keys.stream(shard)),
        &format!("{random}-0000-7000-8000-000000000000"),
        &tier.to_string(),
        &format!("{random}@bench.example"),
        &format!("ref-{random}"),
        &chrono::Utc::now().to_rfc3339(),
        &keys.stock_channel(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `used_memory` from `INFO memory`, bytes.
async fn used_memory(redis: &Client) -> anyhow::Result<f64> {
    let info: String = redis
        .custom(fred::cmd!("INFO"), vec!["memory".to_owned()])
        .await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse().ok())
        .context("INFO memory without used_memory")
}

async fn memory_usage(redis: &Client, key: String) -> anyhow::Result<u64> {
    Ok(redis
        .custom(fred::cmd!("MEMORY"), vec!["USAGE".to_owned(), key])
        .await?)
}

/// Reserves [`MEMORY_BOOKINGS`] bookings of `tier`, each its own customer, then settles them as
/// confirmed and trims the stream as the settler would, reading Redis' memory at each step.
async fn booking_memory(run: &Run, shard: Shard, tier: TierId) -> anyhow::Result<BookingMemory> {
    let keys = &run.keys;
    let concert = ConcertId::from(Uuid::new_v4());
    let (reserve, settle) = (ReserveScript::default(), SettleScript::default());
    reserve.load(&run.redis).await?;
    let before = used_memory(&run.redis).await?;
    let mut bookings = Vec::with_capacity(MEMORY_BOOKINGS);
    for batch in 0..MEMORY_BOOKINGS / 1_000 {
        let mut calls = JoinSet::new();
        for n in 0..1_000 {
            let booking = packed(
                Uuid::now_v7().into(),
                concert,
                tier,
                &format!("memory-{batch}-{n}"),
            )?;
            let (redis, keys, reserve) = (run.redis.clone(), keys.clone(), reserve.clone());
            calls.spawn(async move {
                let reservation = Reservation {
                    packed: &booking,
                    admission: None,
                };
                let outcome = reserve
                    .run(&redis, &keys, shard, reservation, &Loaded)
                    .await?;
                anyhow::ensure!(
                    matches!(outcome, Outcome::Accepted { .. }),
                    "a memory booking answered {outcome:?}"
                );
                Ok(Stub::from(&booking.booking))
            });
        }
        while let Some(booked) = calls.join_next().await {
            bookings.push(booked??);
        }
    }
    let pending = used_memory(&run.redis).await?;
    let sample = bookings.first().context("no booking")?;
    let record_bytes = memory_usage(&run.redis, keys.booking(shard, sample.id)).await?;
    let idempotency_bytes =
        memory_usage(&run.redis, keys.idempotency(shard, concert, "memory-0-0")).await?;

    for batch in bookings.chunks(1_000) {
        let mut calls = JoinSet::new();
        for booking in batch {
            let booking = booking.clone();
            let (redis, keys, settle) = (run.redis.clone(), keys.clone(), settle.clone());
            calls.spawn(async move {
                let outcome = settle::Outcome {
                    booking: &booking,
                    status: BookingStatus::Confirmed,
                    reason: None,
                };
                let applied = settle.apply(&redis, &keys, shard, outcome, &Loaded).await?;
                anyhow::ensure!(applied == Applied::Now, "a settlement answered {applied:?}");
                Ok(())
            });
        }
        while let Some(settled) = calls.join_next().await {
            settled??;
        }
    }
    let _: u64 = run.redis.xtrim(keys.stream(shard), ("MAXLEN", 0)).await?;
    let settled = used_memory(&run.redis).await?;
    let count = bookings.len() as f64;
    Ok(BookingMemory {
        bookings: bookings.len(),
        pending_bytes: (pending - before) / count,
        settled_bytes: (settled - before) / count,
        record_bytes,
        idempotency_bytes,
    })
}

/// Makes `shard` whole (an epoch) with a billion tickets of `tier`, so no run sells out.
async fn open_shard(run: &Run, shard: Shard, tier: TierId) -> anyhow::Result<()> {
    let keys = &run.keys;
    let _: () = run
        .redis
        .set(keys.stock(shard, tier), 1_000_000_000, None, None, false)
        .await?;
    let _: () = run
        .redis
        .set(keys.epoch(shard), 1, None, None, false)
        .await?;
    Ok(())
}

/// Runs `reserve.lua` and the reference script in turn, [`RUNS`] times each (`BENCH_REDIS_REQUESTS`
/// calls of each script in all), then measures a booking's memory.
pub(crate) async fn redis_limit(settings: &Settings, run: &Run) -> anyhow::Result<RedisLimit> {
    let keys = &run.keys;
    let shard = Shard::new(0);
    let (concert, tier) = (
        ConcertId::from(Uuid::new_v4()),
        TierId::from(Uuid::new_v4()),
    );
    open_shard(run, shard, tier).await?;
    let script = ReserveScript::default();
    script.load(&run.redis).await?;
    let reference = Script::from_lua(include_str!("../../../reference.lua"));
    reference.load(&run.redis).await?;

    let server = match &Config::from_url(&settings.backends.redis_url)?.server {
        ServerConfig::Centralized { server } => (server.host.to_string(), server.port),
        other => bail!("redis-benchmark needs one Redis server, not {other:?}"),
    };
    let reserve_command = reserve_command(keys, shard, &script, concert, tier)?;
    let reference_command = reference_command(keys, shard, reference.sha1(), tier);
    let (mut reserve_runs, mut reference_runs) = (Vec::new(), Vec::new());
    let requests = settings.redis_requests / RUNS;
    for _ in 0..RUNS {
        reference_runs.push(benchmark(&server, requests, &reference_command).await?);
        reserve_runs.push(benchmark(&server, requests, &reserve_command).await?);
    }
    // The reference's stream is not the shard's: nothing reads it.
    let _: u64 = run
        .redis
        .del(format!("{}-reference", keys.stream(shard)))
        .await?;
    println!("bench: Redis memory of {MEMORY_BOOKINGS} bookings, pending then settled");
    // On a shard of its own: the benchmark's bookings fill shard 0's stream.
    let memory_shard = Shard::new(1);
    open_shard(run, memory_shard, tier).await?;
    let memory = booking_memory(run, memory_shard, tier).await?;
    Ok(RedisLimit {
        reserve: median(reserve_runs)?,
        reference: median(reference_runs)?,
        clients: CLIENTS,
        runs: RUNS,
        memory,
    })
}
