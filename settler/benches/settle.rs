//! Settlement throughput: fills the booking streams with accepted bookings (through the gateway's
//! own booking function, no HTTP), then times the settler draining them into Postgres with the
//! simulated payment latency. Prints one line of figures.
//!
//! `cargo bench -p settler --bench settle` with `BENCH_BOOKINGS` (default 20000),
//! `PAYMENT_LATENCY_MS` (default 500), `SETTLER_CONCURRENCY`, `SETTLER_BATCH_SIZE`, and the usual
//! `REDIS_URL` / `DATABASE_URL` (the benchmark uses its own database and key prefix). With
//! `BENCH_RESULT` set it also writes the figures there as JSON, for `make bench`'s table.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::money::Currency;
use domain::values::{Email, IdempotencyKey, Quantity};
use futures::StreamExt;
use gateway::GatewayConfig;
use gateway::api::admin::{NewConcert, NewTier};
use gateway::api::bookings::{BookingRequest, book};
use runtime::config::{Backends, ConfigError};
use settler::{Application, SettlerConfig};
use testkit::Isolated;
use tokio_util::sync::CancellationToken;

/// Concerts the bookings are spread over, so that several shards' streams are read.
const CONCERTS: usize = 8;

fn env_or(name: &'static str, default: usize) -> Result<usize, ConfigError> {
    runtime::config::from_str_or(name, default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bookings = env_or("BENCH_BOOKINGS", 20_000)?;
    let mut backends: Backends = runtime::config::from_env()?;
    let isolated = {
        let names = Isolated::names(backends.redis_shards);
        backends.database_url = names.database_url.clone();
        backends.key_prefix = names.key_prefix.clone();
        Isolated::adopt((&backends).into())
    };
    let mut settler_config = SettlerConfig::from_env()?;
    settler_config.backends = backends.clone();
    settler_config.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    settler_config.consumer = "bench".to_owned();
    if runtime::config::raw("PAYMENT_LATENCY_MS").is_none() {
        settler_config.payment_latency = 500..=500;
    }

    let gateway = gateway::Application::build(GatewayConfig {
        max_tickets_per_customer: 0,
        ..GatewayConfig::embedded(backends.clone())
    })
    .await?;
    let state = gateway.state();
    let per_concert = bookings.div_ceil(CONCERTS);
    let mut tiers = Vec::new();
    for index in 0..CONCERTS {
        let concert = gateway::api::admin::create_concert(
            &state.admin,
            &pg_store::audit::Actor::system("bench"),
            NewConcert {
                name: format!("Bench {index}"),
                description: String::new(),
                location: "Bench Hall".to_owned(),
                date: Utc::now() + chrono::Duration::days(30),
                sales_open_at: None,
                sales_close_at: None,
                admit_per_second: None,
                tiers: vec![NewTier {
                    name: "GA".to_owned(),
                    price: "10".parse()?,
                    total_quantity: u32::try_from(per_concert)?,
                }],
            },
        )
        .await
        .map_err(|error| anyhow::anyhow!("creating a concert: {error}"))?;
        tiers.push(concert.tiers[0].clone());
    }

    let fill = Instant::now();
    let accepted = futures::stream::iter(0..bookings)
        .map(|i| {
            let state = &state;
            let tier = &tiers[i % CONCERTS];
            async move {
                let request = BookingRequest {
                    ticket_tier_id: tier.id,
                    user_email: Email::parse(&format!("bench{i}@example.com")).expect("email"),
                    quantity: Quantity::new(1).expect("quantity"),
                    total_price: tier.price,
                    currency: Currency::Usd,
                    idempotency_key: IdempotencyKey::parse(&format!("bench-{i}")).expect("key"),
                    admission_token: None,
                };
                book(&state.bookings, request).await.is_ok()
            }
        })
        .buffer_unordered(64)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let fill = fill.elapsed();

    let latency = settler_config.payment_latency.clone();
    let (concurrency, batch) = (settler_config.concurrency, settler_config.batch_size);
    let settler = Application::build(settler_config).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(settler.run_until_stopped(stop.clone()));
    let settled = loop {
        let settled: i64 = testkit::sql::bookings_by_status(&state.db)
            .await
            .values()
            .sum();
        if settled as usize >= accepted || started.elapsed() > Duration::from_secs(600) {
            break settled;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    stop.cancel();
    running.await??;

    println!(
        "settle: {settled} bookings settled in {:.2} s = {:.0} bookings/s (payment latency {}-{} ms, \
         concurrency {concurrency}, batch {batch}; streams filled at {:.0} bookings/s)",
        took.as_secs_f64(),
        settled as f64 / took.as_secs_f64(),
        latency.start(),
        latency.end(),
        accepted as f64 / fill.as_secs_f64(),
    );

    if let Some(path) = runtime::config::raw("BENCH_RESULT") {
        let figures = serde_json::json!({
            "settled": settled,
            "seconds": took.as_secs_f64(),
            "perSecond": settled as f64 / took.as_secs_f64(),
            "paymentLatencyMs": latency.start(),
        });
        std::fs::write(path, figures.to_string())?;
    }

    state.db.close().await;
    drop(isolated);
    Ok(())
}
