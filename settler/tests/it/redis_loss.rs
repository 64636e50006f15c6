//! Redis losing its data (DESIGN invariant 7), simulated on the shared Redis by deleting every
//! key of the test's prefix (all of it, as a restart without persistence loses), or the traces of
//! the last bookings with the shard's recorded server changed (as a restart from an older file, or
//! a failover to a replica that missed the last writes, leaves it). Each shard is rebuilt without
//! a restart of anything; nothing is oversold, settled twice, or booked twice under one key.

use api_types::headers::IDEMPOTENT_REPLAYED;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::record::{Packed, field};
use fred::prelude::{HashesInterface, KeysInterface, StreamsInterface};
use serde_json::{Value, json};
use settler::Application;
use settler::payment::SimulatedProvider;
use tokio_util::sync::CancellationToken;

use testkit::settler::{Harness, settler_config};

/// Everything Redis held under the test's prefix is gone.
async fn wipe(harness: &Harness) {
    testkit::delete_keys(
        harness.gateway_state.redis.next(),
        &harness.backends.key_prefix,
        harness.backends.redis_shards,
    )
    .await;
}

async fn post(harness: &Harness, body: &Value) -> (u16, Value) {
    let response = harness
        .client
        .post(format!("{}/api/bookings", harness.gateway))
        .json(body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key(IDEMPOTENT_REPLAYED);
    let mut body: Value = response.json().await.expect("json");
    body["replayed"] = json!(replayed);
    (status, body)
}

fn booking_body(harness: &Harness, email: &str, quantity: u32, key: &str) -> Value {
    json!({
        "ticketTierId": harness.tier, "userEmail": email, "quantity": quantity,
        "totalPrice": harness.price * f64::from(quantity), "idempotencyKey": key,
    })
}

async fn audit_is_clean(harness: &Harness) {
    let state = &harness.gateway_state;
    let books = settler::audit::run(
        &state.redis,
        &state.db,
        &state.keys,
        Duration::from_secs(300),
    )
    .await
    .expect("audited");
    assert_eq!(books.problems(), Vec::<String>::new(), "{books:?}");
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settlement_goes_on_after_redis_restarts_empty() {
    let harness = Harness::start(100).await;
    let provider = Arc::new(SimulatedProvider::new(0..=0, 0.0));
    let mut config = settler_config(&harness.backends, "running");
    config.claim_idle = Duration::from_secs(30);
    let app = Application::build_with(config, Arc::clone(&provider))
        .await
        .expect("settler builds");
    let probe = format!("http://{}/health/ready", app.metrics_addr().expect("bound"));
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    harness.book(10).await;
    wait_for("first bookings settled", async || {
        harness.rows().await.get("confirmed") == Some(&10)
    })
    .await;

    wipe(&harness).await;
    // Refused with 503 until the shard is rebuilt, then accepted; never anything else.
    let mut attempt = 0;
    wait_for("bookings accepted again", async || {
        attempt += 1;
        let body = booking_body(&harness, "late@example.com", 1, &format!("late-{attempt}"));
        let (status, _) = post(&harness, &body).await;
        assert!(status == 202 || status == 503, "{status}");
        status == 202
    })
    .await;
    harness.book(10).await;
    wait_for("bookings after the loss settled, no restart", async || {
        harness.rows().await.get("confirmed") == Some(&21)
    })
    .await;
    wait_for("the settler ready again", async || {
        let ready = harness.client.get(&probe).send().await.expect("sent");
        let status = ready.status();
        let ready: Value = ready.json().await.expect("json");
        assert_eq!(ready["redis"], "ok");
        status == 200 && ready["recoveringShards"] == json!([])
    })
    .await;
    assert_eq!(harness.available().await, Some(79));
    audit_is_clean(&harness).await;
    stop.cancel();
    running.await.expect("joined").expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_a_settler_held_through_the_loss_is_never_oversold() {
    let harness = Harness::start(10).await;
    let held_ids = harness.book(6).await;
    // Charges take a second: the settler still holds its batch when Redis loses everything.
    let provider = Arc::new(SimulatedProvider::new(1000..=1000, 0.0));
    let holder = harness
        .settler_with(
            settler_config(&harness.backends, "holder"),
            Arc::clone(&provider),
        )
        .await;
    let entries = holder
        .consumer
        .read(harness.shard, 100, false)
        .await
        .expect("read");
    let holding = tokio::spawn({
        let holder = Arc::clone(&holder);
        let shard = harness.shard;
        async move { holder.settle(shard, entries).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    wipe(&harness).await;
    harness.gateway_state.guard.check_all().await;

    // Postgres confirms nothing yet, so all ten are for sale again: seven go to new buyers.
    assert_eq!(harness.available().await, Some(10));
    harness.book(7).await;

    // The held six come back: three are accepted again with the three tickets left, three fail.
    assert_eq!(holding.await.expect("joined").expect("settled"), 6);
    let other = harness
        .settler_with(
            settler_config(&harness.backends, "other"),
            Arc::clone(&provider),
        )
        .await;
    assert_eq!(
        harness.drain(&other).await,
        10,
        "the seven new and three re-accepted"
    );
    let rows = harness.rows().await;
    assert_eq!(rows.get("confirmed"), Some(&10), "never above the total");
    assert_eq!(rows.get("failed"), Some(&3));
    assert_eq!(provider.refunded_charges(), 3, "the failed were refunded");
    let statuses: Vec<String> =
        futures::future::join_all(held_ids.iter().map(|id| harness.status(*id))).await;
    assert_eq!(statuses.iter().filter(|s| *s == "confirmed").count(), 3);
    assert_eq!(statuses.iter().filter(|s| *s == "failed").count(), 3);
    assert_eq!(harness.available().await, Some(0));
    audit_is_clean(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_key_replays_and_the_customer_limit_holds_after_the_loss() {
    let harness = Harness::start(100).await;
    let first = booking_body(&harness, "fan@example.com", 10, "the-key");
    let (status, body) = post(&harness, &first).await;
    assert_eq!(status, 202);
    let id = body["booking"]["id"].clone();
    let (settler, _) = harness.settler("settles", false).await;
    assert_eq!(harness.drain(&settler).await, 1);

    wipe(&harness).await;
    harness.gateway_state.guard.check_all().await;

    let (status, replay) = post(&harness, &first).await;
    assert_eq!(status, 202);
    assert_eq!(
        replay["booking"]["id"], id,
        "the same booking, not a second"
    );
    assert_eq!(replay["booking"]["status"], "confirmed");
    assert_eq!(replay["replayed"], true);
    let (status, problem) = post(
        &harness,
        &booking_body(&harness, "fan@example.com", 9, "the-key"),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("IdempotencyKeyReused"))
    );
    let (status, problem) = post(
        &harness,
        &booking_body(&harness, "fan@example.com", 1, "more"),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("CustomerLimitExceeded")),
        "ten already held"
    );
    let (status, _) = post(
        &harness,
        &booking_body(&harness, "friend@example.com", 1, "more"),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(harness.drain(&settler).await, 1);
    assert_eq!(harness.rows().await.get("confirmed"), Some(&2));
    audit_is_clean(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_from_an_older_file_loses_the_last_writes_and_nothing_else() {
    let harness = Harness::start(20).await;
    harness.book(5).await;
    let provider = Arc::new(SimulatedProvider::new(1000..=1000, 0.0));
    let holder = harness
        .settler_with(
            settler_config(&harness.backends, "holder"),
            Arc::clone(&provider),
        )
        .await;
    let entries = holder
        .consumer
        .read(harness.shard, 100, false)
        .await
        .expect("read");
    assert_eq!(entries.len(), 5);
    let lost: Vec<Packed> = entries[3..]
        .iter()
        .map(|entry| Packed::from_json(&entry.fields[field::PACKED]).expect("booking"))
        .collect();
    let lost_entries: Vec<String> = entries[3..].iter().map(|e| e.id.clone()).collect();
    let holding = tokio::spawn({
        let holder = Arc::clone(&holder);
        let shard = harness.shard;
        async move { holder.settle(shard, entries).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The server restarts from a file written before the last two bookings.
    let state = &harness.gateway_state;
    let (keys, shard) = (&state.keys, harness.shard);
    let _: i64 = state
        .redis
        .xdel(keys.stream(shard), lost_entries)
        .await
        .expect("forgotten");
    for packed in &lost {
        let booking = &packed.booking;
        let forgotten = vec![
            keys.booking(shard, booking.id),
            keys.idempotency(shard, booking.concert_id, booking.idempotency_key.as_str()),
        ];
        let _: i64 = state.redis.del(forgotten).await.expect("forgotten");
        let _: i64 = state
            .redis
            .hincrby(
                keys.held(shard, booking.concert_id),
                booking.user_email.as_str(),
                -i64::from(booking.quantity.get()),
            )
            .await
            .expect("forgotten");
    }
    let _: i64 = state
        .redis
        .incr_by(keys.stock(shard, harness.tier.into()), 2)
        .await
        .expect("restored");
    let _: i64 = state
        .redis
        .decr_by(keys.pending(shard, harness.tier.into()), 2)
        .await
        .expect("restored");
    let _: () = state
        .redis
        .set(keys.run_id(shard), "an-older-server", None, None, false)
        .await
        .expect("restarted");
    let changes = state.guard.check_all().await;
    let recovered = changes
        .iter()
        .find_map(|change| change.recovered.as_ref())
        .expect("recovered");
    assert_eq!(recovered.cause, redis_store::recovery::Cause::Restarted);
    assert_eq!(recovered.carried, 3, "the three it still had");
    assert_eq!(harness.available().await, Some(17));

    // The holder's five: three carried over by the recovery, two accepted again.
    assert_eq!(holding.await.expect("joined").expect("settled"), 5);
    assert_eq!(harness.available().await, Some(15));
    let other = harness
        .settler_with(
            settler_config(&harness.backends, "other"),
            Arc::clone(&provider),
        )
        .await;
    assert_eq!(harness.drain(&other).await, 5);
    assert_eq!(harness.rows().await.get("confirmed"), Some(&5));
    assert_eq!(provider.charges(), 5, "one charge per booking");
    for packed in &lost {
        assert_eq!(harness.status(packed.booking.id.into()).await, "confirmed");
    }
    audit_is_clean(&harness).await;
}
