//! `Prefer: wait=N` (RFC 7240) on a booking: the answer waits for the settlement and says how it
//! went, 201 confirmed or 422 `PaymentDeclined`; a replay with the same preference answers alike.

use api_types::headers::{PREFER, PREFERENCE_APPLIED};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use api_types::BookingBody;
use settler::settle::Processed;
use testkit::settler::Harness;

/// Posts a booking of one ticket under `key`, preferring to wait `prefer` if given: the status,
/// the `Preference-Applied` header and the body.
async fn post(harness: &Harness, key: &str, prefer: Option<&str>) -> (u16, Option<String>, Value) {
    let body = BookingBody::new(
        harness.tier.into(),
        "fan@example.com",
        1,
        "12.50".parse().expect("money"),
        key,
    )
    .expect("booking");
    let mut request = harness
        .client
        .post(format!("{}/api/bookings", harness.gateway))
        .json(&body);
    if let Some(prefer) = prefer {
        request = request.header(PREFER, prefer);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let applied = response
        .headers()
        .get(PREFERENCE_APPLIED)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (status, applied, response.json().await.expect("json"))
}

/// Settles whatever is booked, after `delay`, with a provider that declines all or none.
async fn settle_after(
    harness: &Harness,
    delay: Duration,
    decline: bool,
) -> tokio::task::JoinHandle<usize> {
    let (settler, _) = harness
        .settler(&format!("after-{}", Uuid::new_v4()), decline)
        .await;
    let shard = harness.shard;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut settled = 0;
        while let Ok(Processed::Settled(n)) = settler.process_batch(shard).await {
            settled += n;
        }
        settled
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_that_asks_to_wait_is_answered_201_once_confirmed() {
    let harness = Harness::start(10).await;
    let settling = settle_after(&harness, Duration::from_millis(300), false).await;
    let (status, applied, body) = post(&harness, "wait-ok", Some("wait=5")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(applied.as_deref(), Some("wait=5"));
    assert_eq!(body["booking"]["status"], "confirmed");
    assert_eq!(settling.await.expect("joined"), 1);

    // The same key with the same preference answers the same way, at once.
    let started = Instant::now();
    let (again, applied, body) = post(&harness, "wait-ok", Some("wait=5")).await;
    assert_eq!((again, applied.as_deref()), (201, Some("wait=5")));
    assert_eq!(body["booking"]["status"], "confirmed");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Without the preference nothing changes: 202, whatever the booking's status.
    let (plain, applied, _) = post(&harness, "wait-ok", None).await;
    assert_eq!((plain, applied), (202, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_is_a_422_with_the_failed_booking() {
    let harness = Harness::start(10).await;
    let settling = settle_after(&harness, Duration::from_millis(300), true).await;
    let (status, applied, body) =
        post(&harness, "wait-declined", Some("respond-async, wait=5")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(applied.as_deref(), Some("wait=5"));
    assert_eq!(body["code"], "PaymentDeclined");
    assert_eq!(body["booking"]["status"], "failed");
    assert_eq!(body["booking"]["failureReason"], "card declined");
    assert_eq!(body["message"], "card declined");
    assert_eq!(settling.await.expect("joined"), 1);
    assert_eq!(
        harness.available().await,
        Some(10),
        "the ticket is back on sale"
    );

    let (again, _, body) = post(&harness, "wait-declined", Some("wait=5")).await;
    assert_eq!(again, 422);
    assert_eq!(body["code"], "PaymentDeclined");
}
