//! Clients of the system we replace, as their users run them: called from another origin (CORS),
//! reading `message` from errors, following stock with `onmessage`, and asking a booking to wait
//! for its outcome (`Prefer: wait`).

use api_types::headers::{PREFER, PREFERENCE_APPLIED};
use std::time::{Duration, Instant};

use serde_json::Value;

use gateway::config;
use testkit::gateway::{SseReader, TestApp, booking_body, spawn_app, spawn_app_with, test_config};

const THEIR_ORIGIN: &str = "http://tickets.example:3000";

/// A gateway that lets pages of [`THEIR_ORIGIN`] call it.
async fn open_to_their_origin() -> TestApp {
    let mut config = test_config();
    config.cors_allowed_origins = Some(config::allowed_origins(THEIR_ORIGIN).expect("origin"));
    spawn_app_with(config).await
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/api/bookings"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, idempotency-key, prefer",
        )
        .send()
        .await
        .expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_may_call_the_api_and_open_its_streams_and_no_other_may() {
    let app = open_to_their_origin().await;
    let (_, tiers) = app.create_concert(&[(10.0, 5)]).await;

    let answer = preflight(&app, THEIR_ORIGIN).await;
    assert_eq!(answer.status(), 204);
    let headers = answer.headers();
    assert_eq!(headers["access-control-allow-origin"], THEIR_ORIGIN);
    for method in ["GET", "POST", "PATCH"] {
        let allowed = headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii");
        assert!(allowed.contains(method), "{method} in {allowed}");
    }
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    for header in [
        "content-type",
        "idempotency-key",
        "admission-token",
        "authorization",
        "prefer",
    ] {
        assert!(allowed.contains(header), "{header} in {allowed}");
    }
    assert_eq!(headers["vary"], "origin");

    // The booking itself: granted, with the headers its client reads made readable.
    let booked = app
        .client
        .post(app.url("/api/bookings"))
        .header("origin", THEIR_ORIGIN)
        .json(&booking_body(&tiers[0], 1, "a@b.co", "cors-1"))
        .send()
        .await
        .expect("sent");
    assert_eq!(booked.status(), 202);
    assert_eq!(
        booked.headers()["access-control-allow-origin"],
        THEIR_ORIGIN
    );
    let exposed = booked.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    for header in [
        "location",
        "retry-after",
        "idempotent-replayed",
        "x-request-id",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    assert!(
        booked
            .headers()
            .get_all("vary")
            .iter()
            .any(|vary| vary == "origin"),
        "the answer depends on the origin"
    );

    // A stream, served on its own path, carries the grant too.
    let stream = app
        .client
        .get(app.url("/api/concerts/stream"))
        .header("origin", THEIR_ORIGIN)
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["access-control-allow-origin"],
        THEIR_ORIGIN
    );
    drop(stream);

    // Another origin gets no grant of any kind, not even a wider one.
    let refused = preflight(&app, "http://evil.example").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_ne!(refused.status(), 204);
    let read = app
        .client
        .get(app.url("/api/concerts"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 200);
    assert!(read.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_configured_nothing_is_granted() {
    let app = spawn_app().await;
    let answer = preflight(&app, THEIR_ORIGIN).await;
    assert_eq!(
        answer.status(),
        405,
        "no preflight answer: the browser blocks the call"
    );
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let read = app
        .client
        .get(app.url("/api/concerts"))
        .header("origin", THEIR_ORIGIN)
        .send()
        .await
        .expect("sent");
    assert!(read.headers().get("access-control-allow-origin").is_none());
    assert!(read.headers().get("vary").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_a_message_a_client_can_show() {
    let app = spawn_app().await;
    let (_, tiers) = app.create_concert(&[(10.0, 2)]).await;

    let mut invalid = booking_body(&tiers[0], 1, "a@b.co", "msg-1");
    invalid["quantity"] = Value::from(0);
    invalid["userEmail"] = Value::from("nobody");
    let answer: Value = app.book(&invalid).await.json().await.expect("json");
    let messages: Vec<&str> = answer["message"]
        .as_array()
        .expect("a list for a validation failure")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(messages.len(), 2, "{answer}");
    assert!(
        messages.iter().any(|m| m.starts_with("quantity ")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("userEmail ")),
        "{messages:?}"
    );
    assert_eq!(answer["statusCode"], 400);

    let too_many: Value = app
        .book(&booking_body(&tiers[0], 3, "a@b.co", "msg-2"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(too_many["code"], "TicketTierOutOfStock");
    assert_eq!(too_many["message"], too_many["detail"]);
    assert!(
        too_many["message"]
            .as_str()
            .is_some_and(|message| message.contains("2 left")),
        "{too_many}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_changes_reach_a_client_listening_to_unnamed_events() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 7)]).await;
    let mut feed = SseReader::open(&app, "/api/concerts/stream").await;
    feed.expect("snapshot").await;
    assert_eq!(
        app.book(&booking_body(&tiers[0], 2, "a@b.co", "onmessage"))
            .await
            .status(),
        202
    );
    // The creation's own message may arrive late; the booking's change is the one with 5.
    let change = loop {
        let event = feed.expect("message").await.json();
        if event["availableQuantity"] != 7 {
            break event;
        }
    };
    assert_eq!(change["concertId"], concert.to_string());
    assert_eq!(change["ticketTierId"], tiers[0].id.to_string());
    assert_eq!(change["availableQuantity"], 5);
    assert_eq!(change["newAvailableQuantity"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_answers_202_and_holds_no_slot_meanwhile() {
    let mut config = test_config();
    config.max_in_flight = 1;
    let app = spawn_app_with(config).await;
    let (_, tiers) = app.create_concert(&[(10.0, 5)]).await;

    // No settler runs: the booking stays pending past the wait.
    let started = Instant::now();
    let waiting = app
        .client
        .post(app.url("/api/bookings"))
        .header(PREFER, "wait=2")
        .json(&booking_body(&tiers[0], 1, "a@b.co", "patient"))
        .send();
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.book(&booking_body(&tiers[0], 1, "b@b.co", "meanwhile"))
            .await
            .status()
    };
    let (waited, meanwhile) = tokio::join!(waiting, meanwhile);
    let waited = waited.expect("sent");
    assert_eq!(
        meanwhile, 202,
        "the only slot was free while the other waited"
    );
    assert_eq!(waited.status(), 202);
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    assert!(waited.headers().get(PREFERENCE_APPLIED).is_none());
    let body: Value = waited.json().await.expect("json");
    assert_eq!(body["booking"]["status"], "pending");
}
