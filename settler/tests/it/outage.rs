//! Postgres unreachable mid-run: entries stay unacknowledged, the settler backs off, and the
//! backlog drains when Postgres returns; the gateway keeps accepting bookings meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::StreamsInterface;
use settler::settle::{Processed, SettleError};

use testkit::Proxy;
use testkit::settler::{Harness, settler_config};

async fn held(harness: &Harness) -> usize {
    let pending: Vec<(String, String, u64, u64)> = harness
        .gateway_state
        .redis
        .xpending(
            harness.gateway_state.keys.stream(harness.shard),
            redis_store::keys::SETTLER_GROUP,
            ("-", "+", 1000),
        )
        .await
        .expect("pending list");
    pending.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_loses_and_doubles_nothing() {
    let harness = Harness::start(100).await;
    harness.book(20).await;
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let mut config = settler_config(&harness.backends, "patient");
    config.claim_idle = Duration::from_millis(300);
    let (_, database) = harness
        .backends
        .database_url
        .rsplit_once('/')
        .expect("database url");
    config.backends.database_url = format!("postgres://postgres@{}/{database}", proxy.addr);
    let (_, provider) = harness.settler("unused", false).await;
    let settler = harness.settler_with(config, Arc::clone(&provider)).await;

    proxy.cut();
    let batch = tokio::spawn({
        let settler = Arc::clone(&settler);
        let shard = harness.shard;
        async move { settler.process_batch(shard).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!batch.is_finished(), "the batch waits for Postgres");
    assert_eq!(held(&harness).await, 20, "nothing acknowledged");
    assert!(harness.rows().await.is_empty());
    harness.book(5).await;
    // The batch is slow, not dead: its holder keeps renewing it, so no one else takes it over.
    let mut rival_config = settler_config(&harness.backends, "rival");
    rival_config.claim_idle = Duration::from_millis(300);
    let rival = harness
        .settler_with(rival_config, Arc::clone(&provider))
        .await;
    assert_eq!(rival.reclaim().await, 0);

    proxy.restore();
    let settled = tokio::time::timeout(Duration::from_secs(20), batch)
        .await
        .expect("drained after Postgres returned")
        .expect("joined")
        .expect("settled");
    assert_eq!(settled, Processed::Settled(20));
    assert_eq!(harness.drain(&settler).await, 5);
    assert_eq!(
        harness.rows().await.get("confirmed"),
        Some(&25),
        "nothing lost, nothing doubled"
    );
    assert_eq!(provider.charges(), 25);
    assert_eq!(held(&harness).await, 0);

    // Shutting down while Postgres is away leaves the batch unacknowledged, to be settled later.
    harness.book(3).await;
    proxy.cut();
    let batch = tokio::spawn({
        let settler = Arc::clone(&settler);
        let shard = harness.shard;
        async move { settler.process_batch(shard).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    settler.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), batch)
        .await
        .expect("stopped")
        .expect("joined");
    assert!(
        matches!(stopped, Err(SettleError::ShuttingDown)),
        "{stopped:?}"
    );
    assert_eq!(held(&harness).await, 3);

    proxy.restore();
    let (after, _) = harness.settler("patient", false).await;
    assert_eq!(
        after.recover_own().await,
        3,
        "the same consumer picks up what it held"
    );
    assert_eq!(harness.rows().await.get("confirmed"), Some(&28));
    assert_eq!(harness.pending().await, 0);
}
