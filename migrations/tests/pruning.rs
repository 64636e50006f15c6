//! Expired sign-in links and refresh tokens are deleted once they have been expired for longer
//! than they are kept; every other one stays.

use std::time::Duration;

use testkit::ScratchDatabase;
use uuid::Uuid;

const KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3_600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_expired_longer_ago_than_kept_is_deleted() {
    let scratch = ScratchDatabase::create("pruning").await;
    let db = pg_store::connect(&scratch.url, 2).await.expect("migrated");
    let (customer, session) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO customers (id, email) VALUES ($1, 'fan@example.com')")
        .bind(customer)
        .execute(&db)
        .await
        .expect("customer");
    sqlx::query("INSERT INTO sessions (id, customer_id) VALUES ($1, $2)")
        .bind(session)
        .bind(customer)
        .execute(&db)
        .await
        .expect("session");
    // Expired eight days ago (deleted), a day ago and not yet (kept).
    for (n, expired_days_ago) in [8, 1, -1].into_iter().enumerate() {
        let hash = vec![u8::try_from(n).expect("small"); 32];
        sqlx::query(
            "INSERT INTO signin_links (token_hash, email, requested_by, expires_at)
             VALUES ($1, 'fan@example.com', '127.0.0.1', now() - make_interval(days => $2))",
        )
        .bind(&hash)
        .bind(expired_days_ago)
        .execute(&db)
        .await
        .expect("link");
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
             VALUES ($1, $2, now() - make_interval(days => $3))",
        )
        .bind(&hash)
        .bind(session)
        .bind(expired_days_ago)
        .execute(&db)
        .await
        .expect("refresh token");
    }

    let pruned = pg_store::accounts::prune(&db, KEPT_FOR)
        .await
        .expect("pruned");
    assert_eq!(
        pruned,
        pg_store::accounts::Pruned {
            links: 1,
            refresh_tokens: 1
        }
    );
    for table in ["signin_links", "refresh_tokens"] {
        let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&db)
            .await
            .expect("counted");
        assert_eq!(left, 2, "{table}");
    }
    let again = pg_store::accounts::prune(&db, KEPT_FOR)
        .await
        .expect("pruned");
    assert_eq!(again.links + again.refresh_tokens, 0);
}
