//! `REDIS_MIN_REPLICAS`: a booking is answered 202 only once a replica holds it, so a master that
//! dies with its replica behind loses no answered booking. A private master and replica each.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fred::prelude::ClientLike;
use serde_json::Value;

use testkit::gateway::{TestApp, TestTier, booking_body, spawn_app_with, test_config};
use testkit::{Persistence, PrivateRedis, Proxy};

use crate::waiting_room::{create_room, join};

/// A gateway on `master` that answers a booking once `replicas` replicas hold it.
async fn gateway_on(master: &PrivateRedis, replicas: u32) -> TestApp {
    let mut config = test_config();
    config.backends.redis_url = master.url();
    config.redis_min_replicas = replicas;
    config.redis_wait = Duration::from_millis(200);
    spawn_app_with(config).await
}

async fn problem_code(response: reqwest::Response) -> String {
    let problem: Value = response.json().await.expect("a problem body");
    problem["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_answered_only_once_a_replica_holds_it() {
    let master = PrivateRedis::start(Persistence::None);
    let replica = PrivateRedis::replica_of(&master).await;
    let app = gateway_on(&master, 1).await;
    let (concert, tiers) = app.create_concert(&[(10.0, 10)]).await;
    let tier = &tiers[0];
    let replicated = app.book(&booking_body(tier, 1, "a@b.co", "first")).await;
    assert_eq!(replicated.status(), 202);
    // A master that lost its scripts (a restart, a promoted replica) is given them again.
    let _: () = app
        .state
        .redis
        .next()
        .custom(fred::cmd!("SCRIPT"), vec!["FLUSH"])
        .await
        .expect("scripts flushed");
    let reloaded = app.book(&booking_body(tier, 1, "e@f.co", "reloaded")).await;
    assert_eq!(reloaded.status(), 202);

    replica.stall();
    let unreplicated = booking_body(tier, 1, "c@d.co", "while-stalled");
    let started = Instant::now();
    let answer = app.book(&unreplicated).await;
    assert_eq!(answer.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(problem_code(answer).await, "OutcomeUnknown");
    // Asked again while the replica is still behind: still not answered as booked.
    let answer = app.book(&unreplicated).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(problem_code(answer).await, "OutcomeUnknown");

    replica.resume();
    let answer = app.book(&unreplicated).await;
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["idempotent-replayed"], "true");
    // The attempts made one booking: three tickets gone, not four.
    assert_eq!(app.redis_stock(concert, tier.id).await, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_ticket_is_handed_out_only_once_a_replica_holds_it() {
    let master = PrivateRedis::start(Persistence::None);
    let replica = PrivateRedis::replica_of(&master).await;
    let app = gateway_on(&master, 1).await;
    let (concert, _) = create_room(&app, 10, 5, Duration::from_secs(3_600)).await;
    let (status, _) = join(&app, concert, "replicated".to_owned()).await;
    assert_eq!(status, 201);

    replica.stall();
    let (status, problem) = join(&app, concert, "while-stalled".to_owned()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("OutcomeUnknown"))
    );
    replica.resume();
    // The ticket the master made is handed out now, once: asked again, the key finds it.
    let (status, answer) = join(&app, concert, "while-stalled".to_owned()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = join(&app, concert, "after".to_owned()).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_min_replicas_a_stalled_replica_does_not_hold_bookings_back() {
    let master = PrivateRedis::start(Persistence::None);
    let replica = PrivateRedis::replica_of(&master).await;
    let app = gateway_on(&master, 0).await;
    let (_, tiers) = app.create_concert(&[(10.0, 10)]).await;
    replica.stall();
    let answer = app
        .book(&booking_body(&tiers[0], 1, "a@b.co", "unwaited"))
        .await;
    assert_eq!(answer.status(), 202);
    replica.resume();
}

/// Books in waves of 25 on `app`; the replication link is partitioned before wave `cut_at` (the
/// master keeps its replica's connection and hears nothing more from it, as when a network splits
/// a master from its replicas). Returns the ids answered 202 and how many answered 503.
async fn book_in_waves(
    app: &TestApp,
    tier: &TestTier,
    link: &Proxy,
    cut_at: usize,
) -> (HashSet<String>, usize) {
    let (mut answered, mut unknown) = (HashSet::new(), 0);
    for wave in 0..12 {
        if wave == cut_at {
            link.partition();
        }
        let answers = futures::future::join_all((0..25).map(|n| {
            let body = booking_body(
                tier,
                1,
                &format!("fan{wave}-{n}@example.com"),
                &format!("k{wave}-{n}"),
            );
            async move { app.book(&body).await }
        }))
        .await;
        for answer in answers {
            match answer.status().as_u16() {
                202 => {
                    let body: Value = answer.json().await.expect("json");
                    answered.insert(body["booking"]["id"].as_str().expect("an id").to_owned());
                }
                503 => unknown += 1,
                status => panic!("a booking answered {status}"),
            }
        }
    }
    (answered, unknown)
}

/// The answered bookings of `answered` that a gateway on the promoted replica cannot find.
async fn lost_after_failover(
    app: &TestApp,
    replica: &PrivateRedis,
    answered: &HashSet<String>,
) -> Vec<String> {
    let mut config = app.config.clone();
    config.backends.redis_url = replica.url();
    let promoted = spawn_app_with(config).await;
    assert!(
        promoted
            .ready_by(Instant::now() + Duration::from_secs(30))
            .await,
        "the promoted replica never became ready"
    );
    let mut lost = Vec::new();
    for id in answered {
        let found = promoted
            .client
            .get(promoted.url(&format!("/api/bookings/{id}")))
            .send()
            .await
            .expect("answered");
        match found.status().as_u16() {
            200 => {}
            404 => lost.push(id.clone()),
            status => panic!("booking {id} answered {status}"),
        }
    }
    lost
}

/// A master and a replica that reaches it through a link the test can partition.
async fn replicated_pair() -> (PrivateRedis, Proxy, PrivateRedis) {
    let master = PrivateRedis::start(Persistence::None);
    let link = Proxy::start(SocketAddr::from(([127, 0, 0, 1], master.port))).await;
    let replica = PrivateRedis::replica_at(Persistence::None, link.addr.port()).await;
    (master, link, replica)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_dying_with_its_replica_behind_loses_no_answered_booking() {
    let (mut master, link, mut replica) = replicated_pair().await;
    let app = gateway_on(&master, 1).await;
    let (_, tiers) = app.create_concert(&[(10.0, 1_000)]).await;
    let (answered, unknown) = book_in_waves(&app, &tiers[0], &link, 6).await;
    assert!(answered.len() >= 100, "{} answered", answered.len());
    assert!(
        unknown >= 25,
        "the replica cut off held bookings back: {unknown}"
    );
    master.kill();
    replica.promote().await;
    let lost = lost_after_failover(&app, &replica, &answered).await;
    assert!(
        lost.is_empty(),
        "{} of {} answered bookings lost: {lost:?}",
        lost.len(),
        answered.len()
    );
}

/// The control: the same failover without `REDIS_MIN_REPLICAS` loses what the replica never
/// received, which is why the setting exists (and shows the test above can see a loss).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_min_replicas_the_same_failover_loses_answered_bookings() {
    let (mut master, link, mut replica) = replicated_pair().await;
    let app = gateway_on(&master, 0).await;
    let (_, tiers) = app.create_concert(&[(10.0, 1_000)]).await;
    let (answered, unknown) = book_in_waves(&app, &tiers[0], &link, 6).await;
    assert_eq!(unknown, 0);
    master.kill();
    replica.promote().await;
    let lost = lost_after_failover(&app, &replica, &answered).await;
    assert!(
        lost.len() >= 100,
        "only {} of {} lost",
        lost.len(),
        answered.len()
    );
}
