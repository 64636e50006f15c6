//! Migrations against a real Postgres: the rollups migration backfills bookings confirmed before it.

use std::borrow::Cow;

use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use testkit::ScratchDatabase;
use uuid::Uuid;

#[tokio::test]
async fn the_rollups_migration_backfills_confirmed_bookings() {
    let scratch = ScratchDatabase::create("migrations").await;
    let db = PgPool::connect(&scratch.url).await.expect("connected");

    let rollups = pg_store::MIGRATOR
        .iter()
        .position(|migration| migration.description.contains("sales rollups"))
        .expect("the rollups migration");
    let before = Migrator {
        migrations: Cow::Owned(pg_store::MIGRATOR.migrations[..rollups].to_vec()),
        ..Migrator::DEFAULT
    };
    before.run(&db).await.expect("earlier migrations");
    let (concert, tier) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query!(
        "INSERT INTO concerts (id, name, location, date, shard) VALUES ($1, 'C', 'L', now(), 0)",
        concert
    )
    .execute(&db)
    .await
    .expect("concert inserted");
    sqlx::query!(
        "INSERT INTO ticket_tiers (id, concert_id, name, price, total_quantity)
         VALUES ($1, $2, 'T', 12.50, 100)",
        tier,
        concert
    )
    .execute(&db)
    .await
    .expect("tier inserted");
    // Every third booking failed; the rest are confirmed, 17 minutes apart.
    sqlx::query!(
        "INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                               quantity, total_price, currency, status, failure_reason, created_at)
         SELECT gen_random_uuid(), 'k' || i, $1, $2, 'a@b.co', 2, 25.00, 'USD',
                CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'confirmed' END::booking_status,
                CASE WHEN i % 3 = 0 THEN 'declined' END,
                timestamptz '2026-01-01' + i * interval '17 minutes'
         FROM generate_series(1, 30) i",
        tier,
        concert
    )
    .execute(&db)
    .await
    .expect("bookings inserted");

    pg_store::MIGRATOR.run(&db).await.expect("all migrations");

    let rollups = sqlx::query!(
        r#"SELECT SUM(revenue) AS "revenue!", SUM(tickets)::int8 AS "tickets!",
                  COUNT(*) AS "hours!"
           FROM sales_hourly"#
    )
    .fetch_one(&db)
    .await
    .expect("rollups");
    assert_eq!(
        (rollups.revenue, rollups.tickets),
        (Decimal::new(50000, 2), 40),
        "20 confirmed bookings of 2 tickets"
    );
    let distinct_hours = sqlx::query_scalar!(
        r#"SELECT COUNT(DISTINCT date_trunc('hour', created_at, 'UTC')) AS "hours!"
           FROM bookings WHERE status = 'confirmed'"#
    )
    .fetch_one(&db)
    .await
    .expect("hours");
    assert_eq!(rollups.hours, distinct_hours);

    db.close().await;
}
