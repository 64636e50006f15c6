//! A Redis master killed under load: a replica is promoted and the gateway sells on there within a
//! second, having lost no answered booking. Private servers of each supported topology: a Redis
//! Cluster of three masters, and a master with replicas under three sentinels.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway::config::GatewayConfig;
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use testkit::gateway::{ADMIN_TOKEN, TestApp, TestTier, booking_body, spawn_app_with};
use testkit::{Isolated, Persistence, PrivateCluster, PrivateSentinels};

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

/// Bookings made without pause by two workers per concert, every answer recorded.
struct Load {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Attempt>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts booking one ticket after another, each under a key of its own, on every tier of
    /// `tiers` (a tier and whether it is on the master to be killed).
    fn start(app: &Arc<TestApp>, tiers: &[(&TestTier, bool)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(Vec::new()));
        let workers = tiers
            .iter()
            .flat_map(|tier| [*tier, *tier])
            .enumerate()
            .map(|(worker, (tier, victim))| {
                let (app, tier) = (Arc::clone(app), tier.clone());
                let (stop, history) = (Arc::clone(&stop), Arc::clone(&history));
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("w{worker}-{n}");
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
                })
            })
            .collect();
        Self {
            stop,
            history,
            workers,
        }
    }

    /// Stops the workers: every answer they had.
    async fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("worker");
        }
        std::mem::take(&mut *self.history.lock().await)
    }
}

/// When the master was killed, when a replica took its place, and how long after that bookings
/// may still be refused.
struct Failover {
    killed: Instant,
    promoted: Instant,
    settles_within: Duration,
}

impl Failover {
    /// Selling on the dead master's shards resumed within a second of the promotion, and none
    /// was refused later than `settles_within` after it; prints the answers that were not bookings after the kill,
    /// on its shards and on others'.
    fn check_resumption(&self, history: &[Attempt]) {
        let first_sale_after = history
            .iter()
            .filter(|a| a.victim && a.status == 202 && a.answered_at > self.promoted)
            .map(|a| a.answered_at)
            .min()
            .expect("the dead master's shards sold again after the promotion");
        // Answers after the kill that were not bookings: how many, and the last one's time
        // after the kill.
        let refused = |victim: bool| {
            let refused: Vec<Instant> = history
                .iter()
                .filter(|a| a.victim == victim && a.answered_at > self.killed && a.status != 202)
                .map(|a| a.answered_at)
                .collect();
            let last = refused.iter().max().map(|last| *last - self.killed);
            (refused.len(), last)
        };
        eprintln!(
            "failover: promoted {:?} after the kill; its shards sold again {:?} after that; not \
             booked after the kill (count, the last's time after the kill): its shards {:?}, \
             other masters' {:?}",
            self.promoted - self.killed,
            first_sale_after - self.promoted,
            refused(true),
            refused(false)
        );
        assert!(
            first_sale_after - self.promoted <= Duration::from_secs(1),
            "selling resumed {:?} after the promotion",
            first_sale_after - self.promoted
        );
        if let (_, Some(last)) = refused(true) {
            assert!(
                last <= self.promoted - self.killed + self.settles_within,
                "bookings were refused until {last:?} after the kill"
            );
        }
    }
}

/// [`book`], asked again while the answer is 503 (at most 10 s), as a client retries.
async fn book_patiently(app: &TestApp, body: &Value) -> (u16, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, booking) = book(app, body).await;
        if !matches!(status, 0 | 503) || Instant::now() >= deadline {
            return (status, booking);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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
/// again (it rejoins as a replica, as a restarted pod does), and checks what was answered.
async fn cluster_fails_over_under_load(
    app: TestApp,
    cluster: &mut PrivateCluster,
    victim_node: usize,
) {
    let app = Arc::new(app);
    let (victim, bystander) = concerts_around(&app, cluster, victim_node).await;
    let load = Load::start(&app, &[(&victim.1, true), (&bystander.1, false)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim_key = app.state.keys.epoch(app.shard_of(victim.0));
    let killed = Instant::now();
    cluster.nodes[victim_node].kill();
    cluster
        .promoted_after(victim_node, &victim_key, Duration::from_secs(30))
        .await;
    let failover = Failover {
        killed,
        promoted: Instant::now(),
        settles_within: Duration::from_secs(1),
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = load.finish().await;
    cluster.nodes[victim_node].restart();
    failover.check_resumption(&history);
    check_history(&app, &history, &[&victim, &bystander]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_named_alone_in_the_url_dies_and_selling_resumes_on_its_promoted_replica() {
    let mut cluster = PrivateCluster::start(Persistence::None, 1).await;
    // The form README gives: one node, the rest learned from it.
    let app = gateway_on(cluster.url_of(0), 0).await;
    cluster_fails_over_under_load(app, &mut cluster, 0).await;
}

/// With `REDIS_MIN_REPLICAS=1` a master needs two replicas to sell through a failover: the
/// promoted one has the other to acknowledge its writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_min_replicas_a_killed_cluster_master_loses_no_answered_booking() {
    let mut cluster = PrivateCluster::start(Persistence::None, 2).await;
    let app = gateway_on(cluster.url(), 1).await;
    cluster_fails_over_under_load(app, &mut cluster, 1).await;
}

/// Sentinel, for deployments without a cluster: the sentinels promote a replica of the killed
/// master and the gateway, asking them, moves to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_min_replicas_a_master_killed_under_sentinel_loses_no_answered_booking() {
    let mut sentinels = PrivateSentinels::start(Persistence::None, 2).await;
    let app = Arc::new(gateway_on(sentinels.url(), 1).await);
    let (first, mut first_tiers) = app.create_concert(&[(10.0, 50_000)]).await;
    let (second, mut second_tiers) = app.create_concert(&[(10.0, 50_000)]).await;
    let concerts = [
        (first, first_tiers.remove(0)),
        (second, second_tiers.remove(0)),
    ];
    let load = Load::start(&app, &[(&concerts[0].1, true), (&concerts[1].1, true)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = Instant::now();
    sentinels.nodes[0].kill();
    sentinels.promoted_after(0, Duration::from_secs(30)).await;
    // The sentinels point the other replica at the promoted one only after announcing it; until
    // that replica has synced, a booking has no replica to acknowledge it and is refused.
    let failover = Failover {
        killed,
        promoted: Instant::now(),
        settles_within: Duration::from_secs(4),
    };
    tokio::time::sleep(Duration::from_secs(6)).await;
    let history = load.finish().await;
    failover.check_resumption(&history);
    check_history(&app, &history, &[&concerts[0], &concerts[1]]).await;
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
        let (status, booking) = book_patiently(app, &attempt.body).await;
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
