//! The same idempotency key never books twice.

use api_types::headers::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
use std::collections::HashSet;

use chrono::Utc;
use fred::prelude::StreamsInterface;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::waiting_room::closing_soon;
use testkit::gateway::{booking_body, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_copies_of_one_request_at_once_book_once() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 50)]).await;
    let body = booking_body(&tiers[0], 3, "same@example.com", "double-click");

    let answers = join_all((0..20).map(|_| async {
        let response = app.book(&body).await;
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get(IDEMPOTENT_REPLAYED)
            .map(|v| v.as_bytes().to_vec());
        (
            status,
            replayed,
            response.json::<Value>().await.expect("json"),
        )
    }))
    .await;

    assert!(
        answers.iter().all(|(status, _, _)| *status == 202),
        "{answers:?}"
    );
    let replays = answers
        .iter()
        .filter(|(_, replayed, _)| replayed.as_deref() == Some(b"true"))
        .count();
    assert_eq!(replays, 19);
    let ids: HashSet<&str> = answers
        .iter()
        .filter_map(|(_, _, b)| b["booking"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one booking");
    assert_eq!(
        app.redis_stock(concert, tiers[0].id).await,
        Some(47),
        "stock taken once"
    );
    let shard = app
        .state
        .catalog
        .current()
        .concert(concert.into())
        .expect("concert")
        .shard;
    let length: u64 = app
        .state
        .redis
        .xlen(app.state.keys.stream(shard))
        .await
        .expect("xlen");
    assert_eq!(length, 1, "one stream entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_reused_with_another_request_is_refused() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 50)]).await;
    assert_eq!(
        app.book(&booking_body(&tiers[0], 1, "a@b.co", "k"))
            .await
            .status(),
        202
    );

    for other in [
        booking_body(&tiers[0], 2, "a@b.co", "k"),
        booking_body(&tiers[0], 1, "someone@else.co", "k"),
    ] {
        let response = app.book(&other).await;
        assert_eq!(response.status(), 422);
        assert_eq!(
            response.json::<Value>().await.expect("json")["code"],
            "IdempotencyKeyReused"
        );
    }
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(49));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_request_is_not_remembered() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 2)]).await;

    let mut wrong_price = booking_body(&tiers[0], 1, "a@b.co", "retry-me");
    wrong_price["totalPrice"] = json!(9.99);
    assert_eq!(app.book(&wrong_price).await.status(), 422);
    let too_many = booking_body(&tiers[0], 3, "a@b.co", "retry-me");
    assert_eq!(app.book(&too_many).await.status(), 409);

    let corrected = app
        .book(&booking_body(&tiers[0], 1, "a@b.co", "retry-me"))
        .await;
    assert_eq!(corrected.status(), 202);
    assert!(
        corrected.headers().get(IDEMPOTENT_REPLAYED).is_none(),
        "a first booking, not a replay"
    );
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_may_come_in_a_header_and_must_agree_with_the_body() {
    let app = spawn_app().await;
    let (_, tiers) = app.create_concert(&[(10.0, 5)]).await;
    let mut body = booking_body(&tiers[0], 1, "a@b.co", "unused");
    body.as_object_mut()
        .expect("object")
        .remove("idempotencyKey");

    let send = |key: &'static str, body: Value| {
        let request = app
            .client
            .post(app.url("/api/bookings"))
            .header(IDEMPOTENCY_KEY, key)
            .json(&body);
        async move { request.send().await.expect("sent") }
    };
    let first = send("header-key", body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    let replay = send("header-key", body.clone()).await;
    assert_eq!(replay.headers()[IDEMPOTENT_REPLAYED], "true");
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["booking"]["id"], first["booking"]["id"]);

    let mut disagreeing = body.clone();
    disagreeing["idempotencyKey"] = json!("body-key");
    let response = send("header-key", disagreeing).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["errors"][0]["field"], "idempotencyKey");

    let missing = app.book(&body).await;
    assert_eq!(missing.status(), 400, "a key is required somewhere");
}

/// A key is one purchase attempt for one concert: the same key for another concert is another
/// attempt (checking every concert's records would cost a second Redis round trip per booking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_scoped_to_its_concert() {
    let app = spawn_app().await;
    let (_, first) = app.create_concert(&[(10.0, 50)]).await;
    let (_, second) = app.create_concert(&[(10.0, 50)]).await;
    let mut ids = Vec::new();
    for tier in [&first[0], &second[0], &first[0]] {
        let response = app
            .book(&booking_body(tier, 1, "a@b.co", "shared-key"))
            .await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("json");
        ids.push(body["booking"]["id"].clone());
    }
    assert_ne!(ids[0], ids[1], "another concert, another booking");
    assert_eq!(ids[0], ids[2], "the same concert replays");
    let response = app
        .book(&booking_body(&first[0], 2, "a@b.co", "shared-key"))
        .await;
    assert_eq!(
        response.status(),
        422,
        "another request under the key, same concert"
    );
}

/// DESIGN invariant 3 holds whatever changed since: a client retrying after a lost answer is told
/// the booking it has, although sales closed in between and a new booking is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_made_answers_its_replay_after_sales_closed() {
    let app = spawn_app().await;
    let (concert, tier, closes) = closing_soon(&app, None).await;
    let made = app.book(&booking_body(&tier, 2, "late@b.co", "made")).await;
    assert_eq!(made.status(), 202);
    let made: Value = made.json().await.expect("json");

    let wait = (closes - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(100)).await;
    let replay = app.book(&booking_body(&tier, 2, "late@b.co", "made")).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()[IDEMPOTENT_REPLAYED], "true");
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["booking"]["id"], made["booking"]["id"]);

    let other = app.book(&booking_body(&tier, 3, "late@b.co", "made")).await;
    assert_eq!(other.status(), 422, "another request under the key");
    let fresh = app
        .book(&booking_body(&tier, 2, "late@b.co", "fresh"))
        .await;
    assert_eq!(fresh.status(), 409);
    let fresh: Value = fresh.json().await.expect("json");
    assert_eq!(fresh["code"], "SalesClosed");
    assert_eq!(app.redis_stock(concert, tier.id).await, Some(48));
}
