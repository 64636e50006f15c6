//! Hostile and broken clients (DESIGN "Hostile and broken clients"): none of them, nor a small
//! group, can stop the gateway answering others.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use testkit::Isolated;
use testkit::gateway::{ADMIN_TOKEN, booking_body, create_concert_at, spawn_app_with, test_config};

/// A gateway process at 1,024 open files, with short limits, and its own database and prefix.
struct Limited {
    process: testkit::Process,
    url: String,
    _isolated: Isolated,
}

impl Limited {
    fn start() -> Self {
        let isolated = Isolated::new(4);
        let backends = &isolated.names;
        let port = testkit::free_port();
        let env = [
            ("GATEWAY_ADDR", format!("127.0.0.1:{port}")),
            ("REDIS_URL", backends.redis_url.clone()),
            ("DATABASE_URL", backends.database_url.clone()),
            ("KEY_PREFIX", backends.key_prefix.clone()),
            ("REDIS_SHARDS", backends.redis_shards.to_string()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("SEED_DEMO", "false".to_owned()),
            ("RATE_LIMIT_PER_IP", "0".to_owned()),
            ("BOOKING_LIMIT_PER_IP", "0".to_owned()),
            ("MAX_CONNECTIONS", "800".to_owned()),
            ("MAX_IN_FLIGHT", "50".to_owned()),
            ("HEADER_TIMEOUT_MS", "1000".to_owned()),
            ("IDLE_TIMEOUT_S", "2".to_owned()),
            ("BODY_TIMEOUT_MS", "1000".to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value))
        .to_vec();
        Self {
            process: testkit::Process::start_limited("gateway", env, port, Some(1024)),
            url: format!("http://127.0.0.1:{port}"),
            _isolated: isolated,
        }
    }

    fn stop(mut self) {
        self.process.terminate();
    }
}

/// A fresh client's request, which must be answered within `patience`.
async fn answered(request: reqwest::RequestBuilder, patience: Duration) -> (u16, Duration) {
    let started = Instant::now();
    let response = tokio::time::timeout(patience, request.send())
        .await
        .unwrap_or_else(|_| panic!("no answer within {patience:?}"))
        .expect("answered");
    (response.status().as_u16(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_cannot_stop_the_gateway_answering_others() {
    let gateway = Limited::start();
    let client = reqwest::Client::new();
    let (_, tiers) = create_concert_at(&client, &gateway.url, &[(10.0, 100)]).await;
    let tier = tiers[0].id;
    let address = gateway.url.trim_start_matches("http://").to_owned();

    // More silent sockets than the gateway has files, some with half an HTTP/2 preface, and
    // requests whose bodies never finish, each waiting for an in-flight slot in the old way.
    let mut attackers = Vec::new();
    for n in 0..1200 {
        let Ok(Ok(mut socket)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(&address)).await
        else {
            continue;
        };
        if n % 4 == 0 {
            let _ = socket.write_all(b"PRI * HTTP/2.0\r\n").await;
        }
        attackers.push(socket);
    }
    for _ in 0..200 {
        let Ok(mut socket) = TcpStream::connect(&address).await else {
            continue;
        };
        let head = format!(
            "POST /api/bookings HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"tick"
        );
        let _ = socket.write_all(head.as_bytes()).await;
        attackers.push(socket);
    }
    assert!(
        attackers.len() > 1000,
        "the siege is on: {}",
        attackers.len()
    );

    // Within a few seconds of the timeouts, another client books and readiness answers.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let patience = Duration::from_secs(5);
    let (ready, waited) = answered(
        client.get(format!("{}/api/health/ready", gateway.url)),
        patience,
    )
    .await;
    assert_eq!(ready, 200, "ready after {waited:?}");
    let body = json!({
        "ticketTierId": tier, "userEmail": "fan@example.com", "quantity": 1, "totalPrice": 10,
        "idempotencyKey": Uuid::new_v4().to_string(),
    });
    let (booked, waited) = answered(
        client
            .post(format!("{}/api/bookings", gateway.url))
            .json(&body),
        patience,
    )
    .await;
    assert_eq!(booked, 202, "booked after {waited:?}");

    // And the silent ones were closed: each reads its end.
    let mut buffer = [0u8; 512];
    for socket in attackers.iter_mut().take(50) {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("closed within the header timeout");
        // A slow body gets its 408 first; a silent socket just its end.
        if let Ok(read) = read
            && read > 0
        {
            assert!(String::from_utf8_lossy(&buffer[..read]).contains("408"));
        }
    }
    drop(attackers);
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dashboard_flood_leaves_readiness_and_bookings_alone() {
    let mut config = test_config();
    config.analytics_connections = 1;
    let app = spawn_app_with(config).await;
    let (concert, tiers) = app.create_concert(&[(10.0, 100_000)]).await;
    // Enough bookings in the edge hours that every dashboard has real work to do.
    testkit::sql::plant_confirmed(&app.state.db, concert, tiers[0].id, 60_000, 7_200).await;

    let flood_until = Instant::now() + Duration::from_secs(4);
    let flood = (0..64).map(|worker| {
        let app = &app;
        async move {
            let mut n = 0u64;
            let (mut answered, mut shed) = (0, 0);
            while Instant::now() < flood_until {
                n += 1;
                // Every query different, so none is shared or cached.
                let minute = (worker * 1000 + n) % 50;
                let path = format!(
                    "/api/analytics/dashboard?period=hour&startDate={}",
                    urlencoded(
                        &(chrono::Utc::now() - chrono::Duration::minutes(90 + minute as i64))
                            .to_rfc3339()
                    )
                );
                match app
                    .client
                    .get(app.url(&path))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                {
                    Ok(200) => answered += 1,
                    Ok(503) => shed += 1,
                    other => panic!("dashboard answered {other:?}"),
                }
            }
            (answered, shed)
        }
    });
    let probes = async {
        let mut slowest = Duration::ZERO;
        while Instant::now() < flood_until {
            let started = Instant::now();
            let ready = app
                .client
                .get(app.url("/api/health/ready"))
                .send()
                .await
                .expect("sent");
            assert_eq!(ready.status(), 200, "readiness does not wait for analytics");
            let booking = app
                .book(&booking_body(
                    &tiers[0],
                    1,
                    &format!("{}@example.com", Uuid::new_v4().simple()),
                    &Uuid::new_v4().to_string(),
                ))
                .await;
            assert_eq!(booking.status(), 202);
            let id = booking.json::<Value>().await.expect("json")["booking"]["id"]
                .as_str()
                .expect("id")
                .to_owned();
            let found = app
                .client
                .get(app.url(&format!("/api/bookings/{id}")))
                .send()
                .await
                .expect("sent");
            assert_eq!(found.status(), 200);
            let catalog = app
                .client
                .get(app.url("/api/concerts"))
                .send()
                .await
                .expect("sent");
            assert_eq!(catalog.status(), 200);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slowest
    };
    let (outcomes, slowest) = tokio::join!(futures::future::join_all(flood), probes);
    let answered: u64 = outcomes.iter().map(|(answered, _)| answered).sum();
    assert!(answered > 0, "dashboards were answered too");
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest probe round took {slowest:?}"
    );
}

fn urlencoded(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
