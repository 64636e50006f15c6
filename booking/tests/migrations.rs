//! Migrations against a real Postgres: the rollups migration backfills bookings confirmed before it.

use std::borrow::Cow;

use rust_decimal::Decimal;
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

fn server() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tickets".to_owned());
    url.rsplit_once('/')
        .map(|(server, _)| server.to_owned())
        .unwrap_or(url)
}

#[tokio::test]
async fn the_rollups_migration_backfills_confirmed_bookings() {
    let name = format!("gw_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", server()))
        .await
        .expect("admin connection");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("created");
    let db = PgPool::connect(&format!("{}/{name}", server()))
        .await
        .expect("connected");

    let rollups = booking::db::MIGRATOR
        .iter()
        .position(|migration| migration.description.contains("sales rollups"))
        .expect("the rollups migration");
    let before = Migrator {
        migrations: Cow::Owned(booking::db::MIGRATOR.migrations[..rollups].to_vec()),
        ..Migrator::DEFAULT
    };
    before.run(&db).await.expect("earlier migrations");
    sqlx::raw_sql(
        "INSERT INTO concerts (id, name, location, date, shard) VALUES ('00000000-0000-7000-8000-000000000001', 'C', 'L', now(), 0); \
         INSERT INTO ticket_tiers (id, concert_id, name, price, total_quantity) \
             VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', 'T', 12.50, 100); \
         INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email, quantity, total_price, currency, status, failure_reason, created_at) \
         SELECT gen_random_uuid(), 'k' || i, '00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', \
                'a@b.co', 2, 25.00, 'USD', CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'confirmed' END::booking_status, \
                CASE WHEN i % 3 = 0 THEN 'declined' END, timestamptz '2026-01-01' + i * interval '17 minutes' \
         FROM generate_series(1, 30) i",
    )
    .execute(&db)
    .await
    .expect("bookings inserted");

    booking::db::MIGRATOR
        .run(&db)
        .await
        .expect("all migrations");

    let (revenue, tickets, hours): (Decimal, i64, i64) =
        sqlx::query_as("SELECT SUM(revenue), SUM(tickets)::int8, COUNT(*) FROM sales_hourly")
            .fetch_one(&db)
            .await
            .expect("rollups");
    assert_eq!(
        (revenue, tickets),
        (Decimal::new(50000, 2), 40),
        "20 confirmed bookings of 2 tickets"
    );
    let distinct_hours: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT date_trunc('hour', created_at, 'UTC')) FROM bookings WHERE status = 'confirmed'",
    )
    .fetch_one(&db)
    .await
    .expect("hours");
    assert_eq!(hours, distinct_hours);

    db.close().await;
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("dropped");
}
