//! A transaction its client stopped talking to in the middle (a process cut off from Postgres by
//! a partition: the connection hangs, and Postgres cannot tell) gives its row locks back after
//! `IDLE_IN_TRANSACTION`, so the other settlers writing the same rows wait that long at most.

use std::time::{Duration, Instant};

use testkit::ScratchDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_idle_gives_its_locks_back() {
    let scratch = ScratchDatabase::create("abandoned").await;
    let db = pg_store::connect(&scratch.url, 4).await.expect("migrated");
    sqlx::raw_sql(
        "CREATE TABLE tally (id int PRIMARY KEY, n int); INSERT INTO tally VALUES (1, 0)",
    )
    .execute(&db)
    .await
    .expect("table made");

    let mut abandoned = db.begin().await.expect("begun");
    sqlx::query("UPDATE tally SET n = n + 1 WHERE id = 1")
        .execute(&mut *abandoned)
        .await
        .expect("row locked");
    // The holder now says nothing more, as a client whose network went away.
    let waited = Instant::now();
    let patience = pg_store::IDLE_IN_TRANSACTION + Duration::from_secs(5);
    tokio::time::timeout(
        patience,
        sqlx::query("UPDATE tally SET n = n + 10 WHERE id = 1").execute(&db),
    )
    .await
    .expect("the row given back within the idle limit")
    .expect("the row, once the idle transaction is ended");
    let waited = waited.elapsed();
    assert!(
        waited >= pg_store::IDLE_IN_TRANSACTION - Duration::from_secs(1),
        "the lock was given back after {waited:?}, before the holder went idle long enough"
    );
    // The abandoned transaction was rolled back: only the second update counts.
    let n: i32 = sqlx::query_scalar("SELECT n FROM tally WHERE id = 1")
        .fetch_one(&db)
        .await
        .expect("read");
    assert_eq!(n, 10);
    assert!(
        abandoned.commit().await.is_err(),
        "an ended session commits nothing"
    );
}
