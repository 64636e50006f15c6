//! The live feed over SSE, rate limits, load shedding, metrics and request ids.

use api_types::headers::{REQUEST_ID, X_FORWARDED_FOR};
use std::time::Duration;

use fred::prelude::PubsubInterface;
use futures::StreamExt;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use testkit::gateway::{
    SseReader, booking_body, counter, retry_after, spawn_app, spawn_app_with, test_config,
};

fn tier_stock(snapshot: &Value, tier: uuid::Uuid) -> Option<i64> {
    snapshot["tiers"]
        .as_array()?
        .iter()
        .find(|t| t["ticketTierId"] == tier.to_string())?["availableQuantity"]
        .as_i64()
}

/// The next `stock` event that a booking made: the concert's creation publishes each tier's full
/// stock, and on a Redis Cluster those messages may reach the feed after the snapshot, even after
/// another tier's later change.
async fn next_change(
    feed: &mut SseReader,
    tiers: &[testkit::gateway::TestTier],
) -> testkit::gateway::SseEvent {
    loop {
        let event = feed.expect("message").await;
        let json = event.json();
        let created = tiers.iter().any(|tier| {
            json["ticketTierId"] == tier.id.to_string() && json["availableQuantity"] == tier.total
        });
        if !created {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_gets_a_snapshot_then_the_stock_of_each_booking() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 10), (20.0, 5)]).await;
    let mut feed = SseReader::open(&app, "/api/concerts/stream").await;
    let snapshot = feed.expect("snapshot").await;
    assert_eq!(tier_stock(&snapshot.json(), tiers[0].id), Some(10));
    assert_eq!(tier_stock(&snapshot.json(), tiers[1].id), Some(5));

    assert_eq!(
        app.book(&booking_body(&tiers[0], 3, "a@b.co", "k1"))
            .await
            .status(),
        202
    );
    let event = next_change(&mut feed, &tiers).await;
    assert_eq!(
        event.json(),
        json!({"concertId": concert.to_string(), "ticketTierId": tiers[0].id.to_string(), "availableQuantity": 7, "newAvailableQuantity": 7})
    );
    assert!(event.id > snapshot.id, "event ids increase");

    // A refused booking changes nothing and sends nothing; the next real change comes through.
    assert_eq!(
        app.book(&booking_body(&tiers[1], 6, "a@b.co", "k2"))
            .await
            .status(),
        409
    );
    assert_eq!(
        app.book(&booking_body(&tiers[1], 5, "a@b.co", "k3"))
            .await
            .status(),
        202
    );
    let event = next_change(&mut feed, &tiers).await;
    assert_eq!(event.json()["ticketTierId"], tiers[1].id.to_string());
    assert_eq!(event.json()["availableQuantity"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_opening_together_share_a_snapshot_but_later_ones_see_later_stock() {
    let app = spawn_app().await;
    let (_, tiers) = app.create_concert(&[(10.0, 10)]).await;
    let mut storm = join_all((0..200).map(|_| SseReader::open(&app, "/api/concerts/stream"))).await;
    for feed in &mut storm {
        let snapshot = feed.expect("snapshot").await;
        assert_eq!(tier_stock(&snapshot.json(), tiers[0].id), Some(10));
    }

    assert_eq!(
        app.book(&booking_body(&tiers[0], 4, "a@b.co", "k1"))
            .await
            .status(),
        202
    );
    // Once the change has reached a stream, no new client may be given the older snapshot.
    assert_eq!(
        next_change(&mut storm[0], &tiers).await.json()["availableQuantity"],
        6
    );
    let mut later = SseReader::open(&app, "/api/concerts/stream").await;
    let snapshot = later.expect("snapshot").await;
    assert_eq!(tier_stock(&snapshot.json(), tiers[0].id), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_clients_on_two_gateways_all_get_the_same_event() {
    let first = spawn_app().await;
    let second = spawn_app_with(first.config.clone()).await;
    let (_, tiers) = first.create_concert(&[(10.0, 100)]).await;
    // The second gateway learns of the concert from Postgres.
    second.state.catalog.merge(
        gateway::catalog::store::catalog(&second.state.db)
            .await
            .expect("catalog"),
    );

    let mut feeds = join_all((0..1000).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        async move {
            let mut feed = SseReader::open(app, "/api/concerts/stream").await;
            feed.expect("snapshot").await;
            feed
        }
    }))
    .await;

    assert_eq!(
        first
            .book(&booking_body(&tiers[0], 4, "a@b.co", "one"))
            .await
            .status(),
        202
    );
    let events = join_all(
        feeds
            .iter_mut()
            .map(|feed| async move { feed.expect("message").await }),
    )
    .await;
    assert!(
        events.iter().all(|e| e.json()["availableQuantity"] == 96),
        "every client saw 96"
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_holds_back_no_one_and_is_resynchronised() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 100)]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stuck = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connected");
    stuck
        .write_all(
            format!("GET /api/concerts/stream HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request sent");
    let mut reader = SseReader::open(&app, "/api/concerts/stream").await;
    reader.expect("snapshot").await;

    // Far more than the stuck client's socket buffers and its place in the hub can hold.
    let channel = app.state.keys.stock_channel();
    let publish = |n: i64| {
        let payload = format!("{concert} {} {n}", tiers[0].id);
        let redis = app.state.redis.next().clone();
        let channel = channel.clone();
        async move {
            let _: i64 = redis.publish(channel, payload).await.expect("published");
        }
    };
    futures::stream::iter(0..30_000)
        .for_each_concurrent(64, publish)
        .await;
    publish(-1).await;
    while reader.expect_any().await.json()["availableQuantity"] != -1 {}

    // The stuck client, reading at last, finds a fresh snapshot in place of what it missed.
    let marker = b"event: snapshot";
    let mut snapshots = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while snapshots < 2 {
            let n = stuck.read(&mut chunk).await.expect("readable");
            assert!(n > 0, "stream ended early");
            // Search the new bytes plus the tail of the last read, for a marker cut in two.
            carry.extend_from_slice(&chunk[..n]);
            snapshots += carry
                .windows(marker.len())
                .filter(|window| window == marker)
                .count();
            let keep = carry.len().min(marker.len() - 1);
            carry.drain(..carry.len() - keep);
        }
    })
    .await;
    assert!(found.is_ok(), "no resynchronising snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams() {
    let app = spawn_app().await;
    app.create_concert(&[(10.0, 1)]).await;
    let mut feed = SseReader::open(&app, "/api/concerts/stream").await;
    feed.expect("snapshot").await;
    let state = app.state.clone();
    let stopped = tokio::spawn(app.stop());
    assert_eq!(feed.next().await, None, "the stream ended cleanly");
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("stopped in time")
        .expect("joined");
    assert!(state.shutdown.is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_are_shed_with_503() {
    let mut config = test_config();
    config.max_sse_clients = 1;
    let app = spawn_app_with(config).await;
    let mut first = SseReader::open(&app, "/api/concerts/stream").await;
    first.expect("snapshot").await;
    let second = app
        .client
        .get(app.url("/api/concerts/stream"))
        .send()
        .await
        .expect("sent");
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = app
        .client
        .get(app.url("/api/concerts/stream"))
        .send()
        .await
        .expect("sent");
    assert_eq!(third.status(), 200, "a closed stream frees its place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_refuse_per_address_and_spare_the_others() {
    let mut config = test_config();
    config.rate_limit_per_ip = 5;
    config.booking_limit_per_ip = 2;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let app = spawn_app_with(config).await;
    let (_, tiers) = app.create_concert(&[(10.0, 100)]).await;
    let get = |client: &'static str| {
        app.client
            .get(app.url("/api/concerts"))
            .header(X_FORWARDED_FOR, client)
            .send()
    };
    for _ in 0..10 {
        assert_eq!(
            get("198.51.100.1").await.expect("sent").status(),
            200,
            "within the burst"
        );
    }
    let refused = get("198.51.100.1").await.expect("sent");
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait));
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "RateLimited");
    assert_eq!(
        get("198.51.100.2").await.expect("sent").status(),
        200,
        "another address is spared"
    );
    let health = app
        .client
        .get(app.url("/api/health"))
        .header(X_FORWARDED_FOR, "198.51.100.1")
        .send();
    assert_eq!(
        health.await.expect("sent").status(),
        200,
        "probes are never limited"
    );

    let book = |key: String| {
        app.client
            .post(app.url("/api/bookings"))
            .header(X_FORWARDED_FOR, "198.51.100.3")
            .json(&booking_body(&tiers[0], 1, &format!("{key}@b.co"), &key))
            .send()
    };
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(book(format!("k{n}")).await.expect("sent").status().as_u16());
    }
    assert_eq!(
        statuses,
        [202, 202, 202, 202, 429, 429],
        "bookings have their own, tighter limit"
    );

    // A flood of distinct addresses is forgotten once their limits have recovered.
    join_all((0..2000).map(|n| get_from(&app, n))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.state.edge.limits.forget_idle();
    assert!(
        app.state.edge.limits.tracked() < 10,
        "{} still tracked",
        app.state.edge.limits.tracked()
    );
}

async fn get_from(app: &testkit::gateway::TestApp, n: u32) {
    let address = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
    let _ = app
        .client
        .get(app.url("/api/concerts"))
        .header(X_FORWARDED_FOR, address)
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_after_a_booking_and_requests_carry_an_id() {
    let app = spawn_app().await;
    let (_, tiers) = app.create_concert(&[(10.0, 10)]).await;
    let accepted = r#"gateway_bookings_total{outcome="accepted"}"#;
    let before = counter(&app.metrics().await, accepted);

    let response = app
        .client
        .post(app.url("/api/bookings"))
        .header(REQUEST_ID, "trace-me-123")
        .json(&booking_body(&tiers[0], 1, "a@b.co", "metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()[REQUEST_ID], "trace-me-123");
    let generated = app
        .client
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        generated.headers()[REQUEST_ID].len(),
        36,
        "an id is made when none is sent"
    );

    let metrics = app.metrics().await;
    assert!(counter(&metrics, accepted) >= before + 1.0, "{metrics}");
    assert!(
        metrics.contains(r#"route="/api/bookings""#),
        "requests are labelled by route template"
    );
    assert!(metrics.contains("gateway_redis_script_duration_seconds_bucket"));
    assert!(metrics.contains("gateway_http_request_duration_seconds_bucket"));
    assert!(
        !metrics.contains(&tiers[0].id.to_string()),
        "no raw ids in labels"
    );
}
