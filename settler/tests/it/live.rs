//! What browsers see of settlement: the booking's status stream ends with its final status, and
//! a decline's returned stock reaches the live stock feed.

use std::time::Duration;

use testkit::settler::Harness;

/// The `data:` lines of events named `event` in an SSE text; an event without a name is a
/// `message`.
fn events<'t>(text: &'t str, event: &str) -> Vec<&'t str> {
    text.split("\n\n")
        .filter(|block| {
            let name = block
                .lines()
                .find_map(|line| line.strip_prefix("event: "))
                .unwrap_or("message");
            name == event
        })
        .filter_map(|block| block.lines().find_map(|line| line.strip_prefix("data: ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_stream_ends_with_the_final_status() {
    let harness = Harness::start(5).await;
    let ids = harness.book(1).await;
    let url = format!("{}/api/bookings/{}/events", harness.gateway, ids[0]);
    let response = harness
        .client
        .get(&url)
        .send()
        .await
        .expect("stream opened");
    assert_eq!(response.status(), 200);
    let whole = tokio::spawn(async move { response.text().await.expect("stream read to its end") });

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (settler, _) = harness.settler("live", true).await;
    harness.drain(&settler).await;
    let text = tokio::time::timeout(Duration::from_secs(10), whole)
        .await
        .expect("the stream ended after the final status")
        .expect("joined");
    let statuses: Vec<serde_json::Value> = events(&text, "status")
        .into_iter()
        .map(|data| serde_json::from_str(data).expect("json"))
        .collect();
    assert_eq!(statuses.len(), 2, "{text}");
    assert_eq!(statuses[0]["booking"]["status"], "pending");
    assert_eq!(statuses[1]["booking"]["status"], "failed");
    assert_eq!(statuses[1]["booking"]["failureReason"], "card declined");

    // Already final: one event, then the end.
    let again = harness
        .client
        .get(&url)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("ended");
    assert_eq!(events(&again, "status").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declines_returned_stock_reaches_the_live_feed() {
    let harness = Harness::start(5).await;
    let mut feed = harness
        .client
        .get(format!("{}/api/concerts/stream", harness.gateway))
        .send()
        .await
        .expect("stream opened");
    harness.book(2).await;
    let (settler, _) = harness.settler("live", true).await;
    harness.drain(&settler).await;

    let mut text = String::new();
    let counts = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = feed
                .chunk()
                .await
                .expect("readable")
                .expect("stream goes on");
            text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
            // The concert's creation publishes its full stock, and that event may reach the feed
            // after it opened: only what follows it is the bookings' and declines' doing.
            let counts: Vec<i64> = events(&text, "message")
                .into_iter()
                .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                .filter_map(|event| event["availableQuantity"].as_i64())
                .skip_while(|&count| count == 5)
                .collect();
            if counts.len() == 4 {
                return counts;
            }
        }
    })
    .await
    .expect("four stock events");
    assert_eq!(
        counts,
        [4, 3, 4, 5],
        "two bookings, then two declines giving the tickets back"
    );
}
