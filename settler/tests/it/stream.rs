//! The stream is trimmed only behind its oldest unacknowledged entry.

use std::collections::HashMap;

use fred::prelude::StreamsInterface;
use redis_store::scripts::trim::Mode;

use testkit::settler::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_keeps_every_unacknowledged_entry() {
    let harness = Harness::start(20).await;
    harness.book(10).await;
    let (settler, _) = harness.settler("settles", false).await;
    let stream = harness.gateway_state.keys.stream(harness.shard);
    let entries = |redis: &fred::prelude::Pool| {
        let stream = stream.clone();
        let redis = redis.clone();
        async move {
            let all: Vec<(String, HashMap<String, String>)> =
                redis.xrange(stream, "-", "+", None).await.expect("range");
            all.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
        }
    };
    let redis = &harness.gateway_state.redis;
    let all = entries(redis).await;
    assert_eq!(all.len(), 10);

    // 3 settled, then 4 held by a consumer that does not acknowledge, then 3 settled.
    let first = settler
        .consumer
        .read(harness.shard, 3, false)
        .await
        .expect("read");
    settler.settle(harness.shard, first).await.expect("settled");
    let (holder, _) = harness.settler("holder", false).await;
    let held = holder
        .consumer
        .read(harness.shard, 4, false)
        .await
        .expect("read");
    let held_ids: Vec<String> = held.iter().map(|e| e.id.clone()).collect();
    assert_eq!(held_ids, all[3..7]);
    assert_eq!(harness.drain(&settler).await, 3);

    let depth = settler
        .consumer
        .trim(harness.shard, Mode::Trim)
        .await
        .expect("trimmed");
    assert_eq!(
        depth.trimmed, 3,
        "only what precedes the oldest unacknowledged entry"
    );
    assert_eq!(depth.pending, 4);
    assert_eq!(depth.length, 7);
    assert_eq!(
        entries(redis).await,
        all[3..],
        "every held entry is still there"
    );

    holder
        .settle(harness.shard, held)
        .await
        .expect("settled at last");
    let depth = settler
        .consumer
        .trim(harness.shard, Mode::Trim)
        .await
        .expect("trimmed");
    assert_eq!(depth.pending, 0);
    assert_eq!(
        depth.length, 1,
        "all settled: only the last delivered entry stays"
    );
    assert_eq!(harness.rows().await.get("confirmed"), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_delivered_too_often_is_dead_lettered_and_resolved() {
    let harness = Harness::start(10).await;
    let ids = harness.book(1).await;
    let (crashing, _) = harness.settler("crashing", false).await;
    let (rescuer, provider) = harness.settler("rescuer", false).await;
    // Every claim counts as a delivery: claimed (and never finished) past the limit.
    crashing
        .consumer
        .read(harness.shard, 10, false)
        .await
        .expect("read");
    for _ in 0..5 {
        crashing
            .consumer
            .claim_stale(harness.shard, std::time::Duration::ZERO, 10, u64::MAX)
            .await
            .expect("claimed");
    }

    assert_eq!(rescuer.reclaim().await, 1);

    assert_eq!(provider.charges(), 0, "given up on, not charged");
    assert!(harness.rows().await.is_empty(), "no booking row");
    assert_eq!(harness.status(ids[0]).await, "failed");
    assert_eq!(
        harness.available().await,
        Some(10),
        "its ticket is back on sale"
    );
    let dead = testkit::sql::dead_letters(&harness.gateway_state.db).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, Some(ids[0]));
    assert!(dead[0].1.contains("deliveries"), "{}", dead[0].1);
    assert_eq!(rescuer.reclaim().await, 0, "resolved and acknowledged once");
}
