//! Redis going away mid-run: quick 503s with `Retry-After`, then recovery without a restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{SseReader, booking_body, spawn_app_with, test_config};

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
    assert_eq!(problem["code"], "ServiceUnavailable");
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
    let ready = app
        .client
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);
    // Redis lost the pending booking with its data; stock is rebuilt from Postgres' totals.
    assert_eq!(app.redis_stock(concert, tiers[0].id).await, Some(9));
    // The live feed resubscribed: a new booking reaches a new stream.
    let mut feed = SseReader::open(&app, "/api/concerts/stream").await;
    feed.expect("snapshot").await;
    let again = app
        .book(&booking_body(&tiers[0], 2, "b@b.co", "after-the-storm"))
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(feed.expect("stock").await.json()["availableQuantity"], 7);
    app.cleanup().await;
}
