//! Booking races and stock conservation.

use api_types::headers::IDEMPOTENT_REPLAYED;
use std::collections::{HashMap, HashSet};

use domain::record::{BookingStatus, Packed, field};
use fred::prelude::{HashesInterface, KeysInterface, StreamsInterface};
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use uuid::Uuid;

use testkit::gateway::{TestApp, TestTier, booking_body, spawn_app, spawn_app_with, test_config};
use testkit::sql::{PlantedBooking, plant_booking};

/// Fires `bodies` at once and returns each answer's status and JSON body.
async fn book_all(app: &TestApp, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let requests = bodies.iter().map(|body| async move {
        let response = app.book(body).await;
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json body"))
    });
    join_all(requests).await
}

fn buyers(tier: &TestTier, count: usize, quantity: u32) -> Vec<Value> {
    (0..count)
        .map(|i| {
            booking_body(
                tier,
                quantity,
                &format!("buyer{i}@example.com"),
                &Uuid::new_v4().to_string(),
            )
        })
        .collect()
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_ticket_goes_to_exactly_one_of_fifty_buyers() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(50.0, 1)]).await;

    let answers = book_all(&app, buyers(&tiers[0], 50, 1)).await;

    assert_eq!(count(&answers, 202), 1, "{answers:?}");
    assert_eq!(count(&answers, 409), 49);
    for (status, body) in &answers {
        if *status == 409 {
            assert_eq!(body["code"], "TicketTierOutOfStock");
            assert_eq!(body["availableQuantity"], 0);
        }
    }
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(0));
    assert_eq!(app.catalog_stock(concert, tiers[0].id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_buyers_of_two_with_three_left_one_wins() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 3)]).await;

    let answers = book_all(&app, buyers(&tiers[0], 2, 2)).await;

    assert_eq!(count(&answers, 202), 1, "{answers:?}");
    assert_eq!(count(&answers, 409), 1);
    let refused = answers
        .iter()
        .find(|(s, _)| *s == 409)
        .map(|(_, body)| body)
        .expect("one refusal");
    assert_eq!(refused["availableQuantity"], 1);
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hundred_buyers_share_a_hundred_tickets_exactly() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 100)]).await;

    let answers = book_all(&app, buyers(&tiers[0], 400, 1)).await;

    assert_eq!(
        count(&answers, 202),
        100,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert_eq!(count(&answers, 409), 300);
    let ids: HashSet<&str> = answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .filter_map(|(_, body)| body["booking"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 100, "booking ids are distinct");
    assert_eq!(app.catalog_stock(concert, tiers[0].id).await, 0);
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accepted_booking_is_answered_and_readable_while_pending() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(25.5, 10)]).await;

    let response = app
        .book(&booking_body(&tiers[0], 2, "Fan@Example.com", "attempt-1"))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(response.headers().get(IDEMPOTENT_REPLAYED).is_none());
    let body: Value = response.json().await.expect("json");
    let booking = &body["booking"];
    assert_eq!(booking["status"], "pending");
    assert_eq!(booking["quantity"], 2);
    assert_eq!(booking["totalPrice"], 51.0);
    assert_eq!(booking["currency"], "USD");
    assert_eq!(booking["userEmail"], "fan@example.com");
    assert_eq!(booking["concertId"], concert.to_string());
    assert_eq!(
        location,
        format!("/api/bookings/{}", booking["id"].as_str().expect("id"))
    );

    let fetched: Value = app.get_json(&location).await;
    assert_eq!(&fetched["booking"], booking);
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settled_booking_is_read_from_postgres_once_redis_forgot_it() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 10)]).await;
    let id = domain::ids::BookingId::new(domain::ids::Shard::new(0));
    plant_booking(
        &app.state.db,
        PlantedBooking {
            id: id.into(),
            idempotency_key: "k",
            tier_id: tiers[0].id,
            concert_id: concert,
            user_email: "a@b.co",
            quantity: 2,
            total_price: 20.into(),
            status: BookingStatus::Confirmed,
            failure_reason: None,
            created_at: chrono::Utc::now(),
            admission_ticket_id: None,
        },
    )
    .await;

    let response = app
        .client
        .get(app.url(&format!("/api/bookings/{id}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["booking"]["status"], "confirmed");
    assert_eq!(body["booking"]["totalPrice"], 20.0);

    let unknown = app
        .client
        .get(app.url(&format!("/api/bookings/{}", Uuid::now_v7())))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
    let unknown: Value = unknown.json().await.expect("json");
    assert_eq!(unknown["code"], "BookingNotFound");
    let malformed = app
        .client
        .get(app.url("/api/bookings/not-a-uuid"))
        .send()
        .await
        .expect("sent");
    assert_eq!(malformed.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_may_hold_at_most_the_limit_per_concert() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 100), (20.0, 100)]).await;

    let first = app
        .book(&booking_body(&tiers[0], 6, "limit@example.com", "a"))
        .await;
    assert_eq!(first.status(), 202);
    // Another tier of the same concert, and the same email in other letters: still one customer.
    let over = app
        .book(&booking_body(&tiers[1], 5, "LIMIT@example.com", "b"))
        .await;
    assert_eq!(over.status(), 422);
    let over: Value = over.json().await.expect("json");
    assert_eq!(over["code"], "CustomerLimitExceeded");
    let within = app
        .book(&booking_body(&tiers[1], 4, "limit@example.com", "c"))
        .await;
    assert_eq!(within.status(), 202);
    let other = app
        .book(&booking_body(&tiers[1], 10, "other@example.com", "d"))
        .await;
    assert_eq!(other.status(), 202, "another customer is not affected");
    assert_eq!(app.redis_stock(concert, tiers[1].id).await, Some(86));
    // The refused request took nothing: the count it raised past the limit was given back.
    assert_eq!(
        held(&app, concert).await,
        HashMap::from([
            ("limit@example.com".to_owned(), 10),
            ("other@example.com".to_owned(), 10)
        ])
    );
}

/// The concert's held counts in Redis, by customer.
async fn held(app: &TestApp, concert: Uuid) -> HashMap<String, i64> {
    app.state
        .redis
        .hgetall(app.state.keys.held(app.shard_of(concert), concert.into()))
        .await
        .expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_booking_over_the_limit_leaves_no_count_behind() {
    let mut config = test_config();
    config.max_tickets_per_customer = 4;
    let app = spawn_app_with(config).await;
    let (concert, tiers) = app.create_concert(&[(10.0, 100)]).await;

    let over = app
        .book(&booking_body(&tiers[0], 5, "first@example.com", "a"))
        .await;
    assert_eq!(over.status(), 422);
    let over: Value = over.json().await.expect("json");
    assert_eq!(over["code"], "CustomerLimitExceeded");
    assert_eq!(
        over["detail"],
        "a customer may hold at most 4 tickets per concert; 0 already held"
    );
    assert!(
        held(&app, concert).await.is_empty(),
        "no count for a refusal"
    );
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(100));

    let within = app
        .book(&booking_body(&tiers[0], 4, "first@example.com", "b"))
        .await;
    assert_eq!(within.status(), 202);
    assert_eq!(
        held(&app, concert).await,
        HashMap::from([("first@example.com".to_owned(), 4)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_tiers_and_wrong_prices_are_refused_without_touching_stock() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 5)]).await;

    let unknown = TestTier {
        id: Uuid::new_v4(),
        price: 10.0,
        total: 5,
    };
    let response = app.book(&booking_body(&unknown, 1, "a@b.co", "k1")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json")["code"],
        "TicketTierNotFound"
    );

    let mut wrong = booking_body(&tiers[0], 2, "a@b.co", "k2");
    wrong["totalPrice"] = serde_json::json!(10);
    let response = app.book(&wrong).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.expect("json")["code"],
        "PriceMismatch"
    );

    let mut exact_string = booking_body(&tiers[0], 2, "a@b.co", "k3");
    exact_string["totalPrice"] = serde_json::json!("20.00");
    assert_eq!(
        app.book(&exact_string).await.status(),
        202,
        "a decimal string is exact too"
    );
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(3));
}

/// After a random storm of bookings, for every tier: available + pending = total, where pending
/// is what the shard's stream holds for the tier (the settler has not run).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_is_conserved_through_a_random_storm() {
    let app = spawn_app().await;
    let (concert, tiers) = app
        .create_concert(&[(100.0, 40), (50.0, 60), (10.0, 150)])
        .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut bodies = Vec::new();
    for i in 0..300 {
        let tier = &tiers[rng.random_range(0..tiers.len())];
        let quantity = rng.random_range(1..=4);
        let key = format!("storm-{}", rng.random_range(0..260));
        let mut body = booking_body(tier, quantity, &format!("fan{}@example.com", i % 90), &key);
        if rng.random_bool(0.1) {
            body["totalPrice"] = serde_json::json!(1);
        }
        bodies.push(body);
    }

    let answers = book_all(&app, bodies).await;

    assert!(
        answers.iter().all(|(s, _)| [202, 409, 422].contains(s)),
        "{answers:?}"
    );
    let shard = app
        .state
        .catalog
        .current()
        .concert(concert.into())
        .expect("concert")
        .shard;
    let entries: Vec<(String, HashMap<String, String>)> = app
        .state
        .redis
        .xrange(app.state.keys.stream(shard), "-", "+", None)
        .await
        .expect("stream read");
    let accepted: HashSet<&str> = answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .filter_map(|(_, body)| body["booking"]["id"].as_str())
        .collect();
    assert_eq!(
        entries.len(),
        accepted.len(),
        "one stream entry per accepted booking"
    );
    for tier in &tiers {
        let pending: i64 = entries
            .iter()
            .map(|(_, fields)| Packed::from_json(&fields[field::PACKED]).expect("booking"))
            .filter(|packed| packed.booking.ticket_tier_id == tier.id.into())
            .map(|packed| i64::from(packed.booking.quantity.get()))
            .sum();
        let available = app.redis_stock(concert, tier.id).await.expect("stock");
        assert!(available >= 0);
        assert_eq!(
            available + pending,
            i64::from(tier.total),
            "tier {}",
            tier.id
        );
        let pending_counter: Option<i64> = app
            .state
            .redis
            .get(app.state.keys.pending(shard, tier.id.into()))
            .await
            .expect("redis answers");
        assert_eq!(
            pending_counter.unwrap_or(0),
            pending,
            "the pending counter agrees with the stream"
        );
    }
}
