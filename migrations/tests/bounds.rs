//! The domain's bounds are the schema's: what `domain::values` accepts at its limits Postgres
//! stores, and one past them its CHECK constraints refuse, so a bound changed on one side only
//! fails here.

use domain::values::{
    Email, IdempotencyKey, MAX_EMAIL_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_QUANTITY,
    MIN_EMAIL_CHARS, Quantity,
};
use sqlx::PgPool;
use testkit::ScratchDatabase;
use uuid::Uuid;

/// A booking row of `key`, `email` and `quantity`; whether Postgres took it.
async fn stores(
    db: &PgPool,
    tier: Uuid,
    concert: Uuid,
    key: &str,
    email: &str,
    quantity: i64,
) -> bool {
    sqlx::query(
        "INSERT INTO bookings (id, idempotency_key, ticket_tier_id, concert_id, user_email,
                               quantity, total_price, currency, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, 'USD', 'pending', now())",
    )
    .bind(Uuid::now_v7())
    .bind(key)
    .bind(tier)
    .bind(concert)
    .bind(email)
    .bind(i16::try_from(quantity).expect("a smallint"))
    .execute(db)
    .await
    .inspect_err(|error| eprintln!("refused: {error}"))
    .is_ok()
}

/// A valid-looking email of exactly `chars` characters: `a@`, then labels of at most 63.
fn email_of(chars: usize) -> String {
    let mut domain = "co".to_owned();
    while 2 + domain.len() < chars {
        let room = chars - 2 - domain.len() - 1;
        domain = format!("{}.{domain}", "b".repeat(room.min(63)));
    }
    format!("a@{domain}")
}

#[tokio::test]
async fn the_domain_bounds_are_the_check_constraints() {
    let scratch = ScratchDatabase::create("bounds").await;
    let db = PgPool::connect(&scratch.url).await.expect("connected");
    pg_store::MIGRATOR.run(&db).await.expect("migrated");
    let (concert, tier) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO concerts (id, name, location, date, shard, sales_open_at, sales_close_at)
         VALUES ($1, 'C', 'L', now() + interval '1 day', 0, now(), now() + interval '1 day')",
    )
    .bind(concert)
    .execute(&db)
    .await
    .expect("concert inserted");
    sqlx::query(
        "INSERT INTO ticket_tiers (id, concert_id, name, price, total_quantity)
         VALUES ($1, $2, 'T', 0, 100)",
    )
    .bind(tier)
    .bind(concert)
    .execute(&db)
    .await
    .expect("tier inserted");

    let longest_key = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS);
    let too_long_key = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
    let (shortest, too_short) = ("a@b", "ab");
    let (longest, too_long) = (email_of(MAX_EMAIL_CHARS), email_of(MAX_EMAIL_CHARS + 1));
    let most = i64::from(MAX_QUANTITY);
    assert_eq!(shortest.chars().count(), MIN_EMAIL_CHARS);
    assert_eq!(longest.chars().count(), MAX_EMAIL_CHARS);

    // The domain takes each limit and refuses one past it...
    assert!(
        IdempotencyKey::parse(&longest_key).is_ok()
            && IdempotencyKey::parse(&too_long_key).is_err()
    );
    assert!(Email::parse(&longest).is_ok() && Email::parse(&too_long).is_err());
    assert!(Email::parse(too_short).is_err());
    assert!(
        Quantity::new(most).is_ok()
            && Quantity::new(most + 1).is_err()
            && Quantity::new(0).is_err()
    );

    // ...and so does Postgres.
    assert!(
        stores(&db, tier, concert, &longest_key, &longest, most).await,
        "every bound at its limit"
    );
    assert!(
        stores(&db, tier, concert, "k1", shortest, 1).await,
        "the shortest email, one ticket"
    );
    assert!(
        !stores(&db, tier, concert, &too_long_key, "a@b.co", 1).await,
        "a key past the bound"
    );
    assert!(
        !stores(&db, tier, concert, "k2", &too_long, 1).await,
        "an email past the bound"
    );
    assert!(
        !stores(&db, tier, concert, "k3", too_short, 1).await,
        "an email too short"
    );
    assert!(
        !stores(&db, tier, concert, "k4", "a@b.co", most + 1).await,
        "a ticket too many"
    );
    assert!(
        !stores(&db, tier, concert, "k5", "a@b.co", 0).await,
        "no tickets"
    );
    assert!(
        !stores(&db, tier, concert, "", "a@b.co", 1).await,
        "an empty key"
    );

    db.close().await;
}
