//! Redis going away mid-run: quick 503s with `Retry-After`, then recovery without a restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use fred::prelude::StreamsInterface;
use testkit::gateway::{SseReader, booking_body, spawn_app_with, test_config};

/// A private redis-server, so stopping it disturbs no other test.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (make test installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server: its connections stay open and
    /// silent, as a stalled server's do.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_fast_and_the_gateway_heals_when_it_returns() {
    let mut redis = PrivateRedis::start(free_port());
    let mut config = test_config();
    config.backends.redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(config).await;
    let (concert, tiers) = app.create_concert(&[(10.0, 10)]).await;
    assert_eq!(
        app.book(&booking_body(&tiers[0], 1, "a@b.co", "before"))
            .await
            .status(),
        202
    );

    redis.stop();
    let started = Instant::now();
    let response = app
        .book(&booking_body(&tiers[0], 1, "a@b.co", "during"))
        .await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.expect("json");
    // Redis gone mid-command leaves the outcome unknown, and the answer says so.
    assert!(
        ["ServiceUnavailable", "OutcomeUnknown"]
            .contains(&problem["code"].as_str().unwrap_or_default()),
        "{problem}"
    );
    assert!(
        !problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("redis"),
        "5xx bodies reveal nothing"
    );
    assert!(waited < Duration::from_secs(2), "503 took {waited:?}");
    let ready = app
        .client
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["redis"], "unavailable");
    assert_eq!(ready["postgres"], "ok");
    let live = app
        .client
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("sent");
    assert_eq!(live.status(), 200, "liveness does not depend on Redis");

    // Streams opening together share one failed snapshot read rather than queueing for their own.
    let started = Instant::now();
    let streams = futures::future::join_all(
        (0..40).map(|_| app.client.get(app.url("/api/concerts/stream")).send()),
    )
    .await;
    let waited = started.elapsed();
    for stream in streams {
        assert_eq!(stream.expect("answered").status(), 503);
    }
    assert!(
        waited < Duration::from_secs(3),
        "40 streams took {waited:?} to refuse"
    );

    // It comes back empty (no persistence): scripts and stock must be reloaded by the gateway.
    let _redis = PrivateRedis::start(redis.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = app
            .book(&booking_body(
                &tiers[0],
                1,
                "a@b.co",
                &format!("after-{attempt}"),
            ))
            .await;
        if response.status() == 202 {
            break;
        }
        assert_eq!(response.status(), 503, "only 503 while healing");
        assert!(Instant::now() < deadline, "the gateway did not heal");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every shard whole again: ready, with no restart.
    assert!(app.ready_by(deadline).await, "never ready again");
    // Redis lost the pending booking with its data; stock is rebuilt from Postgres' totals.
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(9));
    // The live feed resubscribed: a new booking reaches a new stream.
    let mut feed = SseReader::open(&app, "/api/concerts/stream").await;
    feed.expect("snapshot").await;
    let again = app
        .book(&booking_body(&tiers[0], 2, "b@b.co", "after-the-storm"))
        .await;
    assert_eq!(again.status(), 202);
    // The change arrives as itself, or, when the subscription came back only after it was
    // published, in the snapshot the hub resynchronises its clients with.
    let tier = tiers[0].id.to_string();
    loop {
        let event = feed.expect_any().await;
        let data = event.json();
        let available = match event.event.as_str() {
            "message" => data["availableQuantity"].clone(),
            "snapshot" => data["tiers"]
                .as_array()
                .and_then(|tiers| tiers.iter().find(|t| t["ticketTierId"] == tier.as_str()))
                .map(|t| t["availableQuantity"].clone())
                .unwrap_or_default(),
            other => panic!("unexpected event {other}"),
        };
        if available == 7 {
            break;
        }
        assert_eq!(event.event, "snapshot", "a change to {available}, not 7");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_never_gets_a_booking_a_wrong_answer() {
    let redis = PrivateRedis::start(free_port());
    let mut config = test_config();
    config.backends.redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(config).await;
    let (concert, tiers) = app.create_concert(&[(10.0, 500)]).await;

    // Stalled past the command timeout (500 ms) while 200 bookings arrive.
    redis.signal("-STOP");
    let bookings = futures::future::join_all((0..200).map(|n| {
        let body = booking_body(
            &tiers[0],
            1,
            &format!("fan{n}@example.com"),
            &format!("k{n}"),
        );
        let app = &app;
        async move {
            let response = app.book(&body).await;
            let status = response.status().as_u16();
            (body, status, response.json::<Value>().await.expect("json"))
        }
    }));
    let resume = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.signal("-CONT");
    };
    let (answers, ()) = tokio::join!(bookings, resume);

    let mut ids = std::collections::HashSet::new();
    for (body, status, answer) in &answers {
        match status {
            202 => {
                let id = answer["booking"]["id"].as_str().expect("id");
                let found = app.get_json(&format!("/api/bookings/{id}")).await;
                assert_eq!(
                    found["booking"]["id"], id,
                    "a 202 names a booking that exists"
                );
                ids.insert(id.to_owned());
            }
            503 => {
                assert_eq!(answer["code"], "OutcomeUnknown", "{answer}");
                assert!(
                    answer["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("same idempotency key")
                );
                // Retrying with the same key is safe: it answers with the one booking.
                let retried = app.book(body).await;
                assert_eq!(retried.status(), 202);
                let retried: Value = retried.json().await.expect("json");
                ids.insert(retried["booking"]["id"].as_str().expect("id").to_owned());
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 200, "one booking per key");
    let shard = app
        .state
        .catalog
        .current()
        .concert(concert.into())
        .expect("concert")
        .shard;
    let entries: u64 = app
        .state
        .redis
        .xlen(app.state.keys.stream(shard))
        .await
        .expect("length");
    assert_eq!(entries, 200, "none booked twice");
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(300));
}
