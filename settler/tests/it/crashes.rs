//! A consumer that dies mid-batch: whoever reclaims its entries settles each exactly once.

use testkit::settler::{Harness, settler_config};

/// Consumer "a" reads every entry and charges it, then (optionally) commits, and dies.
async fn die_after(
    harness: &Harness,
    commit: bool,
) -> (usize, std::sync::Arc<settler::payment::SimulatedProvider>) {
    let (a, provider) = harness.settler("a", false).await;
    let decided = harness.read_and_decide(&a, 100).await;
    let held = decided.len();
    if commit {
        a.commit(harness.shard, decided).await.expect("committed");
    }
    (held, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dying_after_commit_is_finished_by_another_without_a_second_row_or_charge() {
    let harness = Harness::start(40).await;
    let ids = harness.book(30).await;
    let (held, provider_a) = die_after(&harness, true).await;
    assert_eq!(held, 30);
    assert_eq!(harness.rows().await.get("confirmed"), Some(&30));
    assert_eq!(harness.pending().await, 30, "Redis not yet told");

    let (b, provider_b) = harness.settler("b", false).await;
    assert_eq!(b.reclaim().await, 30);

    assert_eq!(
        harness.rows().await.get("confirmed"),
        Some(&30),
        "no second row"
    );
    assert_eq!(provider_a.charges(), 30);
    assert_eq!(
        provider_b.charges(),
        0,
        "b found the outcomes in Postgres and charged nobody"
    );
    assert_eq!(harness.pending().await, 0);
    assert_eq!(harness.available().await, Some(10));
    assert_eq!(harness.status(ids[0]).await, "confirmed");
    assert_eq!(b.reclaim().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dying_before_commit_still_settles_each_booking_once() {
    let harness = Harness::start(40).await;
    harness.book(25).await;
    let (a, provider) = harness.settler("a", false).await;
    let first = harness.read_and_decide(&a, 100).await;
    assert!(harness.rows().await.is_empty(), "a died before committing");

    // The provider is the same service for both consumers: it keeps its idempotency records.
    let b = harness
        .settler_with(
            settler_config(&harness.backends, "b"),
            std::sync::Arc::clone(&provider),
        )
        .await;
    assert_eq!(b.reclaim().await, 25);

    assert_eq!(harness.rows().await.get("confirmed"), Some(&25));
    assert_eq!(provider.charges(), 25, "charged once per booking");
    let references = testkit::sql::payment_references(&harness.gateway_state.db).await;
    let mut expected: Vec<Option<String>> = first
        .iter()
        .map(|d| d.settlement.payment_reference.clone())
        .collect();
    expected.sort();
    let mut stored = references;
    stored.sort();
    assert_eq!(
        stored, expected,
        "the outcome b recorded is the one a was given"
    );
    assert_eq!(harness.pending().await, 0);
}
