//! `make bench`: the project's performance figures next to DESIGN.md's targets, measured in one
//! go on this machine, printed as one table and written with two charts to `BENCH_OUT`
//! (default `target/bench`).
//!
//! 1. The physical limit: `redis-benchmark` running `lua/reserve.lua` by SHA on the same Redis,
//!    in turn with a reference script doing only a booking's essential work; Redis memory per
//!    pending and per settled booking.
//! 2. A release gateway: `POST /api/bookings` as fast as it answers, then at half the Redis rate
//!    (latency counted from when each request was due), then so under siege; `GET /api/concerts`
//!    next to a hello-world hyper server; joining a waiting room as fast as it answers, and the
//!    room's admission rate.
//! 3. Instructions per booking against a hello-world request's, both servers under callgrind.
//! 4. Settlement at 500 ms payment latency: read from `BENCH_OUT/settle.json`, which
//!    `cargo bench -p settler --bench settle` writes when `BENCH_RESULT` names it.
//! 5. SSE fan-out: `BENCH_SSE_CLIENTS` (default 50,000) streams on four gateways, held by
//!    several `sse_fanout --follow` processes over 127.0.0.x source addresses; how long each
//!    stock change takes to reach every client, and the gateways' memory per stream. Then as many
//!    places in a waiting room, each following its own position: how long each admission tick
//!    takes to move every one.
//!
//! Uses `REDIS_URL` and the server of `DATABASE_URL`, with a key prefix and database of its own
//! that it removes afterwards. `BENCH_SECONDS` (default 10) sets each HTTP run's length.

mod fanout;
mod http;
mod instructions;
mod redis_limit;
mod report;
mod settings;
mod settlement;

use fred::prelude::{Builder, ClientLike, Config};

use clap::Parser;
use settings::{Run, Settings};

async fn measure(settings: &Settings, run: &Run) -> anyhow::Result<String> {
    let settle = settlement::settlement(&settings.out)?;
    println!(
        "bench: redis-benchmark, {} calls of reserve.lua",
        settings.redis_requests
    );
    let redis = redis_limit::redis_limit(settings, run).await?;
    let (http, tier) = http::http_figures(settings, run, &redis).await?;
    let instructions = instructions::instructions(settings, run).await?;
    let fanout = fanout::sse_fanout(settings, run, &tier).await?;
    report::booking_chart(&settings.out.join("booking-latency.svg"), &http)?;
    report::fanout_chart(&settings.out.join("sse-delivery.svg"), &fanout)?;
    Ok(report::table(
        settings,
        &redis,
        &http,
        &instructions,
        &settle,
        &fanout,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    std::fs::create_dir_all(&settings.out)?;
    let redis = Builder::from_config(Config::from_url(&settings.backends.redis_url)?).build()?;
    redis.init().await?;
    let run = Run::new(&settings, redis);
    let measured = measure(&settings, &run).await;
    drop(run);
    let table = measured?;
    let path = settings.out.join("results.md");
    std::fs::write(&path, &table)?;
    println!("\n{table}\nwritten to {}", path.display());
    Ok(())
}
