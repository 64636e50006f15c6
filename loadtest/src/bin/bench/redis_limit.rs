//! The physical limit: `redis-benchmark` running the reservation script by SHA.

use anyhow::{Context, bail};
use booking::domain::{Email, IdempotencyKey, Quantity};
use booking::keys::Shard;
use booking::money::{Currency, Money};
use booking::record::{Booking, Packed};
use booking::scripts::reserve::{Reservation, ReserveScript};
use fred::prelude::{Config, KeysInterface, ServerConfig};
use tokio::process::Command;
use uuid::Uuid;

use crate::settings::{Run, Settings};

/// `redis-benchmark`'s own figures for the reservation script.
#[derive(Debug)]
pub struct RedisLimit {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub clients: usize,
}

/// Runs `lua/reserve.lua` by SHA with `redis-benchmark`, every call a new booking: random
/// idempotency key, booking id and customer, as the gateway sends them.
pub async fn redis_limit(settings: &Settings, run: &Run) -> anyhow::Result<RedisLimit> {
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
