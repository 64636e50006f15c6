//! Entries that can never be written (DESIGN invariant 6): each is resolved as failed once, its
//! stock returned, recorded once in `dead_letters`, acknowledged and trimmed behind, and none
//! holds back its batch, its stream or a restarted settler's recovery.

use std::sync::Arc;

use fred::prelude::HashesInterface;
use redis_store::scripts::trim::Mode;
use serde_json::json;
use uuid::Uuid;

use testkit::settler::{Harness, settler_config};

async fn dead_letters(harness: &Harness) -> Vec<(Option<Uuid>, String)> {
    testkit::sql::dead_letters(&harness.gateway_state.db).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_postgres_can_never_hold_are_failed_once_and_hold_nothing_back() {
    let harness = Harness::start(50).await;
    let before = harness.book(3).await;
    // 316 characters once it reached Postgres: its length check refuses the row.
    let unreadable = harness
        .reserve_doctored(5, |json| {
            json["booking"]["userEmail"] = json!(format!("{}@example.com", "i\u{307}".repeat(150)));
        })
        .await;
    // Reads back, is charged, and then refused by a foreign key: no such concert.
    let refused = harness
        .reserve_doctored(5, |json| {
            json["booking"]["concertId"] = json!(Uuid::new_v4());
        })
        .await;
    let after = harness.book(3).await;
    assert_eq!(harness.available().await, Some(50 - 3 - 5 - 5 - 3));

    let (settler, provider) = harness.settler("settles", false).await;
    assert_eq!(harness.drain(&settler).await, 8, "every entry resolved");

    assert_eq!(harness.rows().await.get("confirmed"), Some(&6));
    for id in before.iter().chain(&after) {
        assert_eq!(harness.status(*id).await, "confirmed");
    }
    assert_eq!(harness.status(refused).await, "failed");
    // The unreadable one has no shape the API could show; Redis holds its final status.
    let state = &harness.gateway_state;
    let status: Option<String> = state
        .redis
        .hget(state.keys.booking(harness.shard, unreadable.into()), "s")
        .await
        .expect("read");
    assert_eq!(status.as_deref(), Some("failed"));
    assert_eq!(
        harness.available().await,
        Some(44),
        "both gave their tickets back"
    );
    assert_eq!(harness.pending().await, 0);
    assert_eq!(
        provider.refunded_charges(),
        1,
        "the charged one was refunded"
    );
    let letters = dead_letters(&harness).await;
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].0, Some(unreadable));
    assert_eq!(letters[1].0, Some(refused));
    assert!(letters[1].1.contains("refused by postgres"), "{letters:?}");

    // Trimmed behind like any settled entry, and never delivered again.
    let depth = settler
        .consumer
        .trim(harness.shard, Mode::Trim)
        .await
        .expect("trimmed");
    assert_eq!(depth.pending, 0);
    assert!(depth.length <= 1, "{depth:?}");
    assert_eq!(harness.drain(&settler).await, 0);
    assert_eq!(settler.reclaim().await, 0);
    assert_eq!(dead_letters(&harness).await.len(), 2, "recorded once");

    // Once Redis forgets the failed booking, Postgres answers for it from the dead letter.
    let _: i64 = state
        .redis
        .hdel(
            state.keys.booking(harness.shard, refused.into()),
            vec!["b", "s", "r"],
        )
        .await
        .expect("forgotten");
    assert_eq!(harness.status(refused).await, "failed");
    let books = settler::audit::run(
        &state.redis,
        &state.db,
        &state.keys,
        std::time::Duration::from_secs(300),
    )
    .await
    .expect("audited");
    assert_eq!(books.problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_settler_recovers_past_a_bad_entry() {
    let harness = Harness::start(20).await;
    harness.book(2).await;
    harness
        .reserve_doctored(1, |json| {
            json["booking"]["currency"] = json!("EUR");
        })
        .await;
    harness.book(2).await;
    let (crashed, provider) = harness.settler("same-name", false).await;
    let held = crashed
        .consumer
        .read(harness.shard, 100, false)
        .await
        .expect("read");
    assert_eq!(held.len(), 5, "all read, then the settler died");

    let restarted = harness
        .settler_with(
            settler_config(&harness.backends, "same-name"),
            Arc::clone(&provider),
        )
        .await;
    assert_eq!(restarted.recover_own().await, 5, "past the bad entry");
    assert_eq!(harness.rows().await.get("confirmed"), Some(&4));
    assert_eq!(dead_letters(&harness).await.len(), 1);
    assert_eq!(harness.available().await, Some(16));
    assert_eq!(harness.pending().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_accepts_exactly_what_postgres_stores() {
    let harness = Harness::start(100).await;
    let labels = [
        "b".repeat(63),
        "b".repeat(62),
        "b".repeat(62),
        "b".repeat(62),
    ];
    let longest_email = format!("A@{}", labels.join("."));
    let longest_key = "k".repeat(255);
    let at_the_edge = json!({
        "ticketTierId": harness.tier, "userEmail": longest_email, "quantity": 10,
        "totalPrice": 125, "idempotencyKey": longest_key,
    });
    let response = harness
        .client
        .post(format!("{}/api/bookings", harness.gateway))
        .json(&at_the_edge)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    let id: Uuid = body["booking"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    for (field, value) in [
        ("userEmail", json!(format!("A{longest_email}"))),
        ("idempotencyKey", json!(format!("k{longest_key}"))),
        ("quantity", json!(11)),
    ] {
        let mut beyond = at_the_edge.clone();
        beyond[field] = value;
        let response = harness
            .client
            .post(format!("{}/api/bookings", harness.gateway))
            .json(&beyond)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 400, "{field}");
    }
    let (settler, _) = harness.settler("edge", false).await;
    assert_eq!(harness.drain(&settler).await, 1);
    assert_eq!(harness.status(id).await, "confirmed", "Postgres took it");
    assert!(dead_letters(&harness).await.is_empty());
}
