//! Dashboard latency: fills a fresh database with `BENCH_BOOKINGS` (default 1,000,000) confirmed
//! bookings over 30 days, 10 concerts and 30 tiers, with their hourly rollups, then times the
//! dashboard (rollups) against the same answer computed as a plain aggregate over the bookings,
//! for an unfiltered, a one-concert and a narrow-window query. Prints medians of 21 runs.
//!
//! `cargo bench -p gateway --bench dashboard` (uses `DATABASE_URL`'s server, its own database).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use gateway::analytics::{self, DashboardQuery};
use sqlx::PgPool;
use testkit::ScratchDatabase;

const RUNS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time<F, Fut>(mut run: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        run().await?;
        samples.push(started.elapsed());
    }
    Ok(median(samples))
}

/// The same three parts of the answer, aggregated straight from the bookings.
async fn plain(db: &PgPool, query: &DashboardQuery) -> anyhow::Result<()> {
    testkit::sql::plain_dashboard(
        db,
        query.concert_id,
        query.start,
        query.end,
        query.period.as_str(),
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bookings: i32 = runtime::config::from_str_or("BENCH_BOOKINGS", 1_000_000)?;
    let scratch = ScratchDatabase::new("bench");
    let db = pg_store::connect(&scratch.url, 4).await?;

    let filled = Instant::now();
    sqlx::query!(
        "INSERT INTO concerts (id, name, location, date, shard)
         SELECT gen_random_uuid(), 'Concert ' || c, 'Hall', now() + interval '90 days', 0
         FROM generate_series(1, 10) c"
    )
    .execute(&db)
    .await?;
    sqlx::query!(
        "INSERT INTO ticket_tiers (id, concert_id, name, price, total_quantity)
         SELECT gen_random_uuid(), c.id, tier.name, tier.price, 1000000 FROM concerts c
         CROSS JOIN (VALUES ('VIP', 100.00), ('Front Row', 50.00), ('General Admission', 10.00))
             AS tier(name, price)"
    )
    .execute(&db)
    .await?;
    sqlx::query!(
        "WITH tiers AS (SELECT array_agg(id ORDER BY id) AS ids FROM ticket_tiers),
              picks AS (SELECT i, ids[1 + (i * 7919) % 30] AS tier_id, 1 + (i % 4) AS q
                        FROM tiers, generate_series(1, $1) i)
         INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                               quantity, total_price, currency, status, created_at)
         SELECT gen_random_uuid(), 'k' || p.i, t.id, t.concert_id, 'fan' || p.i || '@example.com',
                p.q, t.price * p.q, 'USD', 'confirmed',
                timestamptz '2026-03-01 00:00:00+00' + (p.i % 2592000) * interval '1 second'
         FROM picks p JOIN ticket_tiers t ON t.id = p.tier_id",
        bookings
    )
    .execute(&db)
    .await?;
    sqlx::query!(
        "INSERT INTO sales_hourly (concert_id, ticket_tier_id, hour, revenue, tickets)
         SELECT concert_id, ticket_tier_id, date_trunc('hour', created_at, 'UTC'), SUM(total_price),
                SUM(quantity)
         FROM bookings WHERE status = 'confirmed' GROUP BY 1, 2, 3"
    )
    .execute(&db)
    .await?;
    sqlx::query!("ANALYZE").execute(&db).await?;
    let filled = filled.elapsed();

    let concert = sqlx::query_scalar!("SELECT id FROM concerts ORDER BY id LIMIT 1")
        .fetch_one(&db)
        .await?;
    let at = |day, hour, minute| Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).single();
    let cases = [
        (
            "unfiltered, by day",
            DashboardQuery {
                concert_id: None,
                start: None,
                end: None,
                period: analytics::Period::Day,
            },
        ),
        (
            "one concert, by day",
            DashboardQuery {
                concert_id: Some(concert),
                start: None,
                end: None,
                period: analytics::Period::Day,
            },
        ),
        (
            "narrow window (22 h, unaligned), by hour",
            DashboardQuery {
                concert_id: None,
                start: at(10, 10, 30),
                end: at(11, 8, 15),
                period: analytics::Period::Hour,
            },
        ),
    ];
    println!(
        "dashboard: {bookings} confirmed bookings (filled in {:.1} s), medians of {RUNS} runs",
        filled.as_secs_f64()
    );
    println!(
        "{:<42} {:>12} {:>16} {:>8}",
        "query", "rollups", "plain aggregate", "ratio"
    );
    for (label, query) in &cases {
        let rollups = time(|| async {
            analytics::dashboard(&db, query)
                .await
                .map(drop)
                .map_err(Into::into)
        })
        .await?;
        let aggregate = time(|| plain(&db, query)).await?;
        println!(
            "{label:<42} {:>9.2} ms {:>13.2} ms {:>7.0}x",
            rollups.as_secs_f64() * 1e3,
            aggregate.as_secs_f64() * 1e3,
            aggregate.as_secs_f64() / rollups.as_secs_f64()
        );
    }

    db.close().await;
    Ok(())
}
