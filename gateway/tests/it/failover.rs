//! A master of a Redis Cluster killed under load: its replica is promoted and the gateway sells on
//! there, having lost no answered booking. A private cluster of three masters and three replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway::config::GatewayConfig;
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use testkit::gateway::{ADMIN_TOKEN, TestApp, TestTier, booking_body, spawn_app_with};
use testkit::{Isolated, Persistence, PrivateCluster};

/// One booking request's outcome, as a history checker reads it.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    body: Value,
    victim: bool,
    answered_at: Instant,
    status: u16,
    booking: Option<String>,
}

/// Creates concerts until one is on a shard `master` serves and one on a shard another master
/// serves: `(victim, bystander)`, each a concert and its one tier.
async fn concerts_around(
    app: &TestApp,
    cluster: &PrivateCluster,
    master: usize,
) -> ((Uuid, TestTier), (Uuid, TestTier)) {
    let (mut victim, mut bystander) = (None, None);
    for _ in 0..60 {
        let (concert, mut tiers) = app.create_concert(&[(10.0, 50_000)]).await;
        let epoch = app.state.keys.epoch(app.shard_of(concert));
        match cluster.master_of(&epoch).await {
            Some(node) if node == master => victim = victim.or(tiers.pop().map(|t| (concert, t))),
            Some(_) => bystander = bystander.or(tiers.pop().map(|t| (concert, t))),
            None => {}
        }
        if let (Some(victim), Some(bystander)) = (&victim, &bystander) {
            return (victim.clone(), bystander.clone());
        }
    }
    panic!("no concerts on both sides of master {master}");
}

/// Books one ticket after another on `tier` until `stop`, each under a key of its own.
async fn book_until(
    app: Arc<TestApp>,
    tier: TestTier,
    victim: bool,
    worker: usize,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Attempt>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{}-{worker}-{n}", if victim { "v" } else { "b" });
        let body = booking_body(&tier, 1, &format!("{key}@failover.example"), &key);
        let (status, booking) = book(&app, &body).await;
        history.lock().await.push(Attempt {
            key,
            body,
            victim,
            answered_at: Instant::now(),
            status,
            booking,
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn book(app: &TestApp, body: &Value) -> (u16, Option<String>) {
    let Ok(response) = app
        .client
        .post(app.url("/api/bookings"))
        .timeout(Duration::from_secs(5))
        .json(body)
        .send()
        .await
    else {
        return (0, None);
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let booking = body["booking"]["id"].as_str().map(str::to_owned);
    (status, booking)
}

/// A gateway on `cluster` (through `redis_url`) with 16 shards, answering a booking once
/// `min_replicas` replicas hold it.
async fn gateway_on(redis_url: String, min_replicas: u32) -> TestApp {
    let mut config = GatewayConfig {
        admin_token: Some(ADMIN_TOKEN.into()),
        ..GatewayConfig::embedded(Isolated::names(16).into())
    };
    config.backends.redis_url = redis_url;
    config.redis_min_replicas = min_replicas;
    config.redis_wait = Duration::from_millis(200);
    spawn_app_with(config).await
}

/// Books on a concert of master `victim_node` and on one of another master, kills the victim
/// (`SIGKILL`) a second in, books on until 3 s after a replica took its place, then starts it
/// again (it rejoins as a replica, as a restarted pod does). Checks that selling on the victim's
/// shard resumed within a second of the promotion and the whole history of answers.
async fn fail_over_under_load(app: TestApp, cluster: &mut PrivateCluster, victim_node: usize) {
    let app = Arc::new(app);
    let (victim, bystander) = concerts_around(&app, cluster, victim_node).await;
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (_, tier) = if worker % 2 == 0 { &victim } else { &bystander };
            tokio::spawn(book_until(
                Arc::clone(&app),
                tier.clone(),
                worker % 2 == 0,
                worker,
                Arc::clone(&stop),
                Arc::clone(&history),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim_key = app.state.keys.epoch(app.shard_of(victim.0));
    let killed = Instant::now();
    cluster.nodes[victim_node].kill();
    let promoted_node = cluster
        .promoted_after(victim_node, &victim_key, Duration::from_secs(30))
        .await;
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    cluster.nodes[victim_node].restart();
    let history = std::mem::take(&mut *history.lock().await);

    let first_sale_after = history
        .iter()
        .filter(|a| a.victim && a.status == 202 && a.answered_at > promoted)
        .map(|a| a.answered_at)
        .min()
        .expect("the victim's concert sold again after the promotion");
    let refused = |victim: bool| {
        let refused: Vec<Instant> = history
            .iter()
            .filter(|a| a.victim == victim && a.answered_at > killed && a.status != 202)
            .map(|a| a.answered_at)
            .collect();
        let span = match (refused.iter().min(), refused.iter().max()) {
            (Some(first), Some(last)) => *last - *first,
            _ => Duration::ZERO,
        };
        (refused.len(), span)
    };
    eprintln!(
        "failover: node {promoted_node} promoted {:?} after the kill; the victim's shard sold \
         again {:?} after that; not booked after the kill (count, first to last): victim {:?}, \
         bystander {:?}",
        promoted - killed,
        first_sale_after - promoted,
        refused(true),
        refused(false)
    );
    assert!(
        first_sale_after - promoted <= Duration::from_secs(1),
        "selling resumed {:?} after the promotion",
        first_sale_after - promoted
    );
    check_history(&app, &history, &[&victim, &bystander]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_named_alone_in_the_url_dies_and_selling_resumes_on_its_promoted_replica() {
    let mut cluster = PrivateCluster::start(Persistence::None, 1).await;
    // The form README gives: one node, the rest learned from it.
    let app = gateway_on(cluster.url_of(0), 0).await;
    fail_over_under_load(app, &mut cluster, 0).await;
}

/// With `REDIS_MIN_REPLICAS=1` a master needs two replicas to sell through a failover: the
/// promoted one has the other to acknowledge its writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_min_replicas_a_killed_master_loses_no_answered_booking() {
    let mut cluster = PrivateCluster::start(Persistence::None, 2).await;
    let app = gateway_on(cluster.url(), 1).await;
    fail_over_under_load(app, &mut cluster, 1).await;
}

/// What a history checker asks of the run's outcomes: every `202` is a booking the promoted
/// cluster still has, every unknown resolves to exactly one booking or none when retried with its
/// key, and the stock taken is exactly the bookings made.
async fn check_history(app: &TestApp, history: &[Attempt], tiers: &[&(Uuid, TestTier)]) {
    let mut bookings: HashMap<String, String> = HashMap::new();
    for attempt in history.iter().filter(|a| a.status == 202) {
        let id = attempt.booking.clone().expect("a 202 names its booking");
        assert!(
            bookings.insert(attempt.key.clone(), id).is_none(),
            "key {} answered twice",
            attempt.key
        );
    }
    for (key, id) in &bookings {
        let found = app
            .client
            .get(app.url(&format!("/api/bookings/{id}")))
            .send()
            .await
            .expect("answered")
            .status();
        assert_eq!(
            found, 200,
            "booking {id} of key {key}, answered 202, is gone"
        );
    }
    for attempt in history.iter().filter(|a| a.status != 202) {
        assert!(
            matches!(attempt.status, 0 | 503),
            "a booking answered {}",
            attempt.status
        );
        let (status, booking) = book(app, &attempt.body).await;
        assert_eq!(
            status, 202,
            "key {} retried after the failover",
            attempt.key
        );
        let id = booking.expect("a 202 names its booking");
        if let Some(before) = bookings.insert(attempt.key.clone(), id.clone()) {
            assert_eq!(before, id, "key {} made two bookings", attempt.key);
        }
    }
    for (concert, tier) in tiers {
        let sold = history
            .iter()
            .filter(|a| a.body["ticketTierId"] == tier.id.to_string())
            .map(|a| &a.key)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let available = app.redis_stock(*concert, tier.id).await.expect("stock");
        assert_eq!(
            i64::from(tier.total) - available,
            i64::try_from(sold).unwrap_or(i64::MAX),
            "tickets taken against bookings made"
        );
    }
}
