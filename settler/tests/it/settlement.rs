//! Settlement end to end: approvals, declines, compensation, reconciliation, shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::record::Stub;
use fred::prelude::{KeysInterface, StreamsInterface};
use redis_store::scripts::settle::Applied;
use settler::Application;
use settler::payment::SimulatedProvider;
use settler::{audit, held};
use tokio_util::sync::CancellationToken;

use testkit::settler::{Harness, settler_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_accepted_bookings_are_confirmed_once_each() {
    let harness = Harness::start(300).await;
    let ids = harness.book(200).await;

    let provider = Arc::new(SimulatedProvider::new(0..=5, 0.0));
    let mut config = settler_config(&harness.backends, "runner");
    config.claim_idle = Duration::from_secs(30);
    let app = Application::build_with(config, Arc::clone(&provider))
        .await
        .expect("settler builds");
    let metrics = format!("http://{}", app.metrics_addr().expect("bound"));
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.rows().await.get("confirmed").copied().unwrap_or(0) < 200 {
        assert!(
            Instant::now() < deadline,
            "not settled in time: {:?}",
            harness.rows().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last batch is acknowledged after its Redis outcome is applied.
    while harness.pending().await > 0 {
        assert!(Instant::now() < deadline, "pending counter not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(harness.rows().await.get("confirmed"), Some(&200));
    assert_eq!(harness.rows().await.len(), 1, "no other status");
    let history = testkit::sql::status_history_rows(&harness.gateway_state.db).await;
    assert_eq!(history, 400, "pending and confirmed for each booking");
    assert_eq!(provider.charges(), 200);
    assert_eq!(harness.available().await, Some(100));
    assert_eq!(harness.pending().await, 0);
    for id in ids.iter().take(5) {
        assert_eq!(harness.status(*id).await, "confirmed");
    }
    let books = audit::run(
        &harness.gateway_state.redis,
        &harness.gateway_state.db,
        &harness.gateway_state.keys,
        Duration::from_secs(300),
    )
    .await
    .expect("audited");
    assert_eq!(books.problems(), Vec::<String>::new(), "{books:?}");

    let exported = harness
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(
        exported.contains("settler_bookings_settled_total"),
        "{exported}"
    );
    let ready = harness
        .client
        .get(format!("{metrics}/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);

    stop.cancel();
    running.await.expect("joined").expect("stopped cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_payments_fail_and_give_every_ticket_back_once() {
    let harness = Harness::start(50).await;
    let ids = harness.book(50).await;
    assert_eq!(harness.available().await, Some(0));
    let (settler, provider) = harness.settler("decliner", true).await;

    assert_eq!(harness.drain(&settler).await, 50);

    assert_eq!(harness.rows().await.get("failed"), Some(&50));
    assert_eq!(provider.charges(), 50);
    assert_eq!(harness.available().await, Some(50), "stock fully back");
    assert_eq!(harness.pending().await, 0);
    let reasons = testkit::sql::failure_reasons(&harness.gateway_state.db).await;
    assert_eq!(reasons[0].as_deref(), Some("card declined"));
    assert_eq!(harness.status(ids[0]).await, "failed");
    // The customer holds nothing any more: the per-customer count went back too, and the
    // concert's held counts, all at zero, are gone.
    let held = harness
        .gateway_state
        .keys
        .held(harness.shard, harness.concert.into());
    let left: i64 = harness
        .gateway_state
        .redis
        .next()
        .exists(held)
        .await
        .expect("read");
    assert_eq!(left, 0, "held counts left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_applied_twice_credits_stock_once() {
    let harness = Harness::start(5).await;
    harness.book(2).await;
    let (settler, _) = harness.settler("twice", true).await;
    let decided = harness.read_and_decide(&settler, 10).await;
    let committed = settler
        .commit(harness.shard, decided)
        .await
        .expect("committed");
    assert_eq!(harness.available().await, Some(3));

    let settlement = &committed.written[0].settlement;
    let stub = Stub::from(&settlement.packed.booking);
    let apply = || {
        settler.settle.apply(
            harness.gateway_state.redis.next(),
            &harness.gateway_state.keys,
            harness.shard,
            redis_store::scripts::settle::Outcome {
                booking: &stub,
                status: settlement.status,
                reason: settlement.failure_reason.as_deref(),
            },
            &*settler.guard,
        )
    };
    assert_eq!(apply().await.expect("applied"), Applied::Now);
    assert_eq!(harness.available().await, Some(4));
    assert_eq!(apply().await.expect("applied"), Applied::Already);
    assert_eq!(harness.available().await, Some(4), "credited once");
    assert_eq!(
        harness.pending().await,
        1,
        "only the first booking was settled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_drift_and_missing_stock_is_loaded_again() {
    let harness = Harness::start(20).await;
    harness.book(6).await;
    let (settler, _) = harness.settler("books", false).await;
    harness.drain(&settler).await;
    let state = &harness.gateway_state;
    let check = || {
        audit::run(
            &state.redis,
            &state.db,
            &state.keys,
            Duration::from_secs(300),
        )
    };

    let balanced = check().await.expect("checked");
    assert_eq!(balanced.tiers.len(), 1);
    let tier = &balanced.tiers[0];
    assert_eq!(
        (tier.available, tier.pending, tier.confirmed),
        (Some(14), 0, 6)
    );
    assert_eq!(balanced.problems(), Vec::<String>::new());

    let _: i64 = state
        .redis
        .incr_by(state.keys.stock(harness.shard, harness.tier.into()), 2)
        .await
        .expect("tampered");
    let tampered = check().await.expect("checked");
    assert_eq!(
        tampered.tiers[0].drift(),
        -2,
        "two tickets too many on sale"
    );
    assert_eq!(tampered.problems().len(), 1);
    // A booking waiting longer than the audit allows is stuck, whatever the books say.
    harness.book(1).await;
    let waited = audit::run(&state.redis, &state.db, &state.keys, Duration::ZERO)
        .await
        .expect("checked");
    assert!(
        waited
            .problems()
            .iter()
            .any(|problem| problem.contains("unsettled for")),
        "{waited:?}"
    );
    assert_eq!(harness.drain(&settler).await, 1);

    let _: i64 = state
        .redis
        .del(state.keys.stock(harness.shard, harness.tier.into()))
        .await
        .expect("lost");
    assert!(check().await.expect("checked").problems()[0].contains("no stock"));
    // The gateway loads a missing tier of a whole shard from Postgres.
    state.stock.missing.notify_one();
    let deadline = Instant::now() + Duration::from_secs(5);
    while harness.available().await != Some(13) {
        assert!(Instant::now() < deadline, "stock not loaded again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        check().await.expect("checked").problems(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_and_acknowledges_the_batches_in_flight() {
    let harness = Harness::start(100).await;
    harness.book(60).await;
    let provider = Arc::new(SimulatedProvider::new(200..=400, 0.0));
    let mut config = settler_config(&harness.backends, "stopping");
    config.batch_size = 10;
    config.claim_idle = Duration::from_secs(30);
    let app = Application::build_with(config, Arc::clone(&provider))
        .await
        .expect("settler builds");
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.pending().await == 60
        || harness.rows().await.is_empty() && provider.charges() == 0
    {
        assert!(Instant::now() < deadline, "nothing started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    running.await.expect("joined").expect("stopped cleanly");

    let state = &harness.gateway_state;
    let held: Vec<(String, String, u64, u64)> = state
        .redis
        .xpending(
            state.keys.stream(harness.shard),
            redis_store::keys::SETTLER_GROUP,
            ("-", "+", 1000),
        )
        .await
        .expect("pending list");
    assert!(
        held.is_empty(),
        "everything read was finished and acknowledged: {held:?}"
    );
    let first = harness.rows().await.get("confirmed").copied().unwrap_or(0);
    assert!(first > 0);

    let (after, _) = harness.settler("after", false).await;
    let rest = harness.drain(&after).await as i64;
    assert_eq!(
        first + rest,
        60,
        "what was not read is settled later, nothing twice"
    );
    assert_eq!(harness.rows().await.get("confirmed"), Some(&60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_counts_get_their_expiry_from_the_sweep_and_keep_it() {
    let harness = Harness::start(10).await;
    harness.book(2).await;
    let state = &harness.gateway_state;
    let held = state.keys.held(harness.shard, harness.concert.into());
    let client = state.redis.next();
    let expiry = || async {
        let at: i64 = client.expire_time(&held).await.expect("read");
        at
    };
    assert_eq!(expiry().await, -1, "a booking leaves the hash without one");

    let swept = || held::sweep(&state.redis, &state.db, &state.keys);
    assert_eq!(
        swept().await.expect("swept"),
        1,
        "the one hash without an expiry"
    );
    let date = state
        .catalog
        .current()
        .concert(harness.concert.into())
        .expect("known")
        .date;
    let until = redis_store::keys::held_until(date, chrono::Utc::now());
    assert!(date > chrono::Utc::now(), "the harness' concert is to come");
    assert_eq!(expiry().await, until, "a day after the concert");

    assert_eq!(swept().await.expect("swept"), 0, "nothing left to give one");
    let _: bool = client
        .expire_at(&held, until + 3_600, None)
        .await
        .expect("set");
    assert_eq!(swept().await.expect("swept"), 0);
    assert_eq!(expiry().await, until + 3_600, "an expiry it has is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_row_keeps_the_waiting_room_admission_it_spent() {
    let harness = Harness::start(10).await;
    let ticket = uuid::Uuid::now_v7();
    let admitted = harness
        .reserve_doctored(1, |json| json["admission"] = serde_json::json!(ticket))
        .await;
    let plain = harness.reserve_doctored(1, |_| {}).await;
    let (settler, _) = harness.settler("admissions", false).await;
    assert_eq!(harness.drain(&settler).await, 2);
    let db = &harness.gateway_state.db;
    assert_eq!(testkit::sql::admission_of(db, admitted).await, Some(ticket));
    assert_eq!(testkit::sql::admission_of(db, plain).await, None);
}
