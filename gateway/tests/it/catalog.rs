//! The catalog, the admin API, demo data, stock loading and health.

use fred::prelude::KeysInterface;
use serde_json::{Value, json};
use uuid::Uuid;

use domain::record::BookingStatus;
use testkit::gateway::{
    ADMIN_TOKEN, booking_body, counter, retry_after, spawn_app, spawn_app_with, test_config,
};
use testkit::sql::{PlantedBooking, plant_booking};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_catalog_is_seeded_with_the_demo_concerts() {
    let mut config = test_config();
    config.seed_demo = true;
    let app = spawn_app_with(config).await;

    let body: Value = app.get_json("/api/concerts").await;
    let concerts = body["concerts"].as_array().expect("concerts");
    let names: Vec<&str> = concerts.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["The Galactic Symphony", "Summer Vibes Festival"]);
    assert_eq!(concerts[0]["location"], "Royal Albert Hall, London");
    for concert in concerts {
        let tiers: Vec<(String, f64, u64, u64)> = concert["ticketTiers"]
            .as_array()
            .expect("tiers")
            .iter()
            .map(|t| {
                assert_eq!(t["concertId"], concert["id"]);
                (
                    t["name"].as_str().expect("name").to_owned(),
                    t["price"].as_f64().expect("price"),
                    t["totalQuantity"].as_u64().expect("total"),
                    t["availableQuantity"].as_u64().expect("available"),
                )
            })
            .collect();
        assert_eq!(
            tiers,
            [
                ("VIP".to_owned(), 100.0, 100, 100),
                ("Front Row".to_owned(), 50.0, 200, 200),
                ("General Admission".to_owned(), 10.0, 1000, 1000),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token_and_makes_stock_live_at_once() {
    let app = spawn_app().await;
    let body = json!({
        "name": "Late Show", "description": "", "location": "Club", "date": "2099-05-01T21:00:00+02:00",
        "ticketTiers": [{"name": "Standing", "price": "12.50", "totalQuantity": 3}]
    });
    let url = app.url("/api/admin/concerts");
    let without = app
        .client
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(without.status(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("wrong-token-wrong-token")
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);

    let created = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let concert: Value = created.json().await.expect("json");
    assert_eq!(concert["date"], "2099-05-01T19:00:00.000Z");
    let tier = &concert["ticketTiers"][0];
    assert_eq!(tier["price"], 12.5);
    assert_eq!(tier["availableQuantity"], 3);
    assert_eq!(
        location,
        format!("/api/concerts/{}", concert["id"].as_str().expect("id"))
    );

    let fetched: Value = app.get_json(&location).await;
    assert_eq!(fetched, concert);
    let booking = json!({
        "ticketTierId": tier["id"], "userEmail": "a@b.co", "quantity": 3, "totalPrice": 37.5, "idempotencyKey": "x"
    });
    assert_eq!(
        app.book(&booking).await.status(),
        202,
        "bookable right after creation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_are_listed_dearest_first_from_the_moment_a_concert_is_created() {
    let app = spawn_app().await;
    let (concert, _) = app.create_concert(&[(10.0, 5), (50.0, 5), (20.0, 5)]).await;
    let prices = |body: &Value| -> Vec<f64> {
        body["ticketTiers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tier| tier["price"].as_f64())
            .collect()
    };
    let created = app.get_json(&format!("/api/concerts/{concert}")).await;
    assert_eq!(prices(&created), [50.0, 20.0, 10.0]);
    gateway::refresh::refresh(&app.state).await;
    let refreshed = app.get_json(&format!("/api/concerts/{concert}")).await;
    assert_eq!(prices(&refreshed), [50.0, 20.0, 10.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_concert_lists_every_problem() {
    let app = spawn_app().await;
    let body = json!({
        "name": "", "location": 7, "date": "2001-01-01T00:00:00Z",
        "ticketTiers": [
            {"name": "A", "price": -1, "totalQuantity": 0},
            {"name": "a", "price": 1.234, "totalQuantity": 10}
        ]
    });
    let response = app
        .client
        .post(app.url("/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("json");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "location",
            "date",
            "ticketTiers[0].price",
            "ticketTiers[0].totalQuantity",
            "ticketTiers[1].name",
            "ticketTiers[1].price"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_token_the_bootstrap_credential_is_refused() {
    let mut config = test_config();
    config.admin_token = None;
    let app = spawn_app_with(config).await;
    let response = app
        .client
        .post(app.url("/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_gateway_loads_missing_stock_from_postgres() {
    let first = spawn_app().await;
    let (concert, tiers) = first.create_concert(&[(10.0, 20)]).await;
    let confirmed = PlantedBooking {
        id: Uuid::now_v7(),
        idempotency_key: "a",
        tier_id: tiers[0].id,
        concert_id: concert,
        user_email: "a@b.co",
        quantity: 3,
        total_price: 30.into(),
        status: BookingStatus::Confirmed,
        failure_reason: None,
        created_at: chrono::Utc::now(),
        admission_ticket_id: None,
    };
    let failed = PlantedBooking {
        id: Uuid::now_v7(),
        idempotency_key: "b",
        user_email: "b@b.co",
        quantity: 5,
        total_price: 50.into(),
        status: BookingStatus::Failed,
        failure_reason: Some("declined"),
        ..confirmed.clone()
    };
    plant_booking(&first.state.db, confirmed).await;
    plant_booking(&first.state.db, failed).await;
    let shard = first
        .state
        .catalog
        .current()
        .concert(concert.into())
        .expect("concert")
        .shard;
    let _: i64 = first
        .state
        .redis
        .del(first.state.keys.stock(shard, tiers[0].id.into()))
        .await
        .expect("deleted");

    let second = spawn_app_with(first.config.clone()).await;
    assert_eq!(
        second.redis_stock(concert, tiers[0].id).await,
        Some(17),
        "20 less 3 confirmed"
    );
    assert_eq!(second.catalog_stock(concert, tiers[0].id).await, 17);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concerts_are_found_by_id_and_unknown_paths_are_problems() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 5)]).await;
    assert_eq!(app.catalog_stock(concert, tiers[0].id).await, 5);

    let cases = [
        (
            "GET",
            format!("/api/concerts/{}", Uuid::new_v4()),
            404,
            "ConcertNotFound",
        ),
        (
            "GET",
            "/api/concerts/nope".to_owned(),
            400,
            "ValidationFailed",
        ),
        ("GET", "/api/nowhere".to_owned(), 404, "NotFound"),
        (
            "DELETE",
            "/api/bookings".to_owned(),
            405,
            "MethodNotAllowed",
        ),
    ];
    for (method, path, status, code) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["code"], code);
        assert_eq!(problem["instance"], path);
    }
    let health: Value = app.get_json("/api/health").await;
    assert_eq!(health, json!({"status": "ok"}));
    let ready = app
        .client
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_sell_only_within_the_sales_window() {
    let app = spawn_app().await;
    let create = |body: serde_json::Value| {
        app.client
            .post(app.url("/api/admin/concerts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tiers = json!([{"name": "GA", "price": 10, "totalQuantity": 10}]);
    let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let later: Value = create(json!({
        "name": "Later", "location": "Hall", "date": "2099-01-01T20:00:00Z",
        "salesOpenAt": in_a_minute, "ticketTiers": tiers,
    }))
    .await
    .expect("sent")
    .json()
    .await
    .expect("json");
    assert_eq!(later["salesCloseAt"], "2099-01-01T20:00:00.000Z");
    let now_then: Value = create(json!({
        "name": "Tonight", "location": "Hall", "date": soon, "ticketTiers": tiers,
    }))
    .await
    .expect("sent")
    .json()
    .await
    .expect("json");
    let body = |concert: &Value, key: &str| {
        json!({"ticketTierId": concert["ticketTiers"][0]["id"], "userEmail": "a@b.co",
               "quantity": 1, "totalPrice": 10, "idempotencyKey": key})
    };

    let early = app.book(&body(&later, "early")).await;
    assert_eq!(early.status(), 409);
    let wait = retry_after(&early);
    assert!((55..=61).contains(&wait), "{wait}");
    assert_eq!(
        early.json::<Value>().await.expect("json")["code"],
        "SalesNotOpen"
    );

    assert_eq!(app.book(&body(&now_then, "before")).await.status(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let after = app.book(&body(&now_then, "after")).await;
    assert_eq!(after.status(), 409, "no tickets sold after the show");
    assert_eq!(
        after.json::<Value>().await.expect("json")["code"],
        "SalesClosed"
    );

    for (bad, field) in [
        (json!({"date": "9999-12-31T23:59:59-23:59"}), "date"),
        (
            json!({"salesCloseAt": "2099-01-02T00:00:00Z"}),
            "salesCloseAt",
        ),
        (
            json!({"salesOpenAt": "2098-01-01T00:00:00Z", "salesCloseAt": "2097-01-01T00:00:00Z"}),
            "salesCloseAt",
        ),
    ] {
        let mut concert = json!({
            "name": "Bad", "location": "Hall", "date": "2099-01-01T20:00:00Z", "ticketTiers": tiers,
        });
        for (name, value) in bad.as_object().expect("object") {
            concert[name] = value.clone();
        }
        let response = create(concert).await.expect("sent");
        assert_eq!(response.status(), 400, "{bad}");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}

/// A concert created through one gateway is bookable through another at once, not only after
/// that one's periodic catalog refresh (every 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concert_created_through_one_gateway_is_bookable_through_every_other_at_once() {
    let first = spawn_app().await;
    let second = spawn_app_with(first.config.clone()).await;
    let (concert, tiers) = first.create_concert(&[(10.0, 5)]).await;
    let created = std::time::Instant::now();
    let body = booking_body(&tiers[0], 1, "elsewhere@example.com", "elsewhere");
    let status = loop {
        let status = second.book(&body).await.status();
        if status != 404 || created.elapsed() > std::time::Duration::from_secs(2) {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, 202, "booked through the other gateway");
    assert!(
        created.elapsed() < std::time::Duration::from_secs(1),
        "known elsewhere within a second, not at the next refresh: {:?}",
        created.elapsed()
    );
    assert_eq!(second.catalog_stock(concert, tiers[0].id).await, 4);
    second.stop().await;
}

/// RFC 9110: the auth scheme is case-insensitive. Wrong tokens are limited per address, and an
/// address out of them is refused even the right token until it may try again, so guessing
/// learns nothing faster than the limit allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_is_any_case_and_wrong_admin_tokens_lock_an_address_out() {
    let app = spawn_app().await;
    let url = app.url("/api/admin/concerts");
    let send = |authorization: String| {
        let request = app
            .client
            .post(&url)
            .header("authorization", authorization)
            .json(&json!({}));
        async move { request.send().await.expect("sent") }
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let answer = send(format!("{scheme} {ADMIN_TOKEN}")).await;
        assert_eq!(
            answer.status(),
            400,
            "{scheme}: authorized, then the body is refused"
        );
    }
    for guess in 0..10 {
        let answer = send(format!("Bearer guess-{guess}")).await;
        assert_eq!(answer.status(), 401, "guess {guess}");
    }
    let limited = send("Bearer guess-10".to_owned()).await;
    assert_eq!(limited.status(), 429);
    let wait = retry_after(&limited);
    assert!((1..=6).contains(&wait), "{wait}");
    let right = send(format!("Bearer {ADMIN_TOKEN}")).await;
    assert_eq!(
        right.status(),
        429,
        "the right token is told nothing either"
    );

    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let answer = send(format!("Bearer {ADMIN_TOKEN}")).await;
    assert_eq!(answer.status(), 400, "let in again once the lock-out ends");
    let metrics = app.metrics().await;
    assert!(
        counter(
            &metrics,
            "gateway_rate_limited_total{limit=\"authentication\"}"
        ) >= 2.0,
        "{metrics}"
    );
}
