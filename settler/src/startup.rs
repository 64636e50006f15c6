//! Building the settler and running its loops until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use domain::ids::Shard;
use redis_store::recovery::{EpochChange, ShardGuard};
use redis_store::scripts::reserve::ReserveScript;
use redis_store::scripts::settle::SettleScript;
use redis_store::scripts::trim::Mode;

use crate::audit::{self, DriftWatch};
use crate::config::SettlerConfig;
use crate::held;
use crate::http::{self, Probe};
use crate::mail::{self, Delivery, Mailer};
use crate::payment::{PaymentProvider, SimulatedProvider};
use crate::settle::{Processed, Settler};
use crate::stream::Consumer;

/// Redis connections per settler, multiplexed.
const REDIS_POOL_SIZE: usize = 4;
/// Postgres connections: one batch statement per worker at a time, plus the background loops.
const DB_POOL_SIZE: u32 = 16;
/// A worker that found every shard empty waits this long at first, doubling to the maximum.
const IDLE_POLL_MIN: Duration = Duration::from_millis(5);
const IDLE_POLL_MAX: Duration = Duration::from_millis(200);
/// A worker whose batch failed waits this long before reading again.
const ERROR_PAUSE: Duration = Duration::from_millis(500);
/// The reclaim loop runs every half claim idle time, but not more often than this.
const RECLAIM_EVERY_MIN: Duration = Duration::from_millis(100);
/// How often streams are trimmed and their depth exported.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);
/// In-flight batches get this long to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often every shard is checked for a loss of Redis data.
const GUARD_EVERY: Duration = Duration::from_secs(1);
/// How often expired sign-in links and refresh tokens are deleted, and how long after their
/// expiry.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
const EXPIRED_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3_600);

#[derive(Debug)]
pub struct Application<P> {
    settler: Arc<Settler<P>>,
    mailer: Arc<Mailer>,
    listener: TcpListener,
    metrics: runtime::telemetry::Exporter,
    workers: usize,
    reconcile_interval: Duration,
    stuck_after: Duration,
}

impl Application<SimulatedProvider> {
    /// The settler with the simulated payment provider of `PAYMENT_LATENCY_MS` and
    /// `PAYMENT_FAILURE_RATE`.
    pub async fn build(config: SettlerConfig) -> anyhow::Result<Self> {
        let provider =
            SimulatedProvider::new(config.payment_latency.clone(), config.payment_failure_rate);
        Self::build_with(config, Arc::new(provider)).await
    }
}

impl<P: PaymentProvider> Application<P> {
    pub async fn build_with(config: SettlerConfig, provider: Arc<P>) -> anyhow::Result<Self> {
        let backends = &config.backends;
        let db = pg_store::connect(&backends.database_url, DB_POOL_SIZE)
            .await
            .context("connecting to postgres")?;
        let redis =
            redis_store::connect(&backends.redis_url, REDIS_POOL_SIZE, backends.redis_timeout)
                .await
                .context("configuring redis")?;
        let keys = backends.keyspace();
        let guard = Arc::new(ShardGuard::new(redis.clone(), db.clone(), keys.clone()));
        let settler = Settler {
            consumer: Consumer::new(redis.clone(), keys.clone(), config.consumer.clone()),
            redis,
            db,
            keys,
            provider,
            settle: SettleScript::default(),
            reserve: ReserveScript::default(),
            guard,
            batch_size: config.batch_size,
            claim_idle: config.claim_idle,
            max_deliveries: config.max_deliveries,
            shutdown: CancellationToken::new(),
        };
        let delivery = match &config.smtp_url {
            Some(url) => Delivery::smtp(url).context("configuring SMTP_URL")?,
            None => Delivery::Log,
        };
        let mailer = Mailer {
            db: settler.db.clone(),
            delivery,
            from: config.mail_from.clone(),
        };
        let listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("binding {}", config.metrics_addr))?;
        Ok(Self {
            settler: Arc::new(settler),
            mailer: Arc::new(mailer),
            listener,
            metrics: crate::metrics::install(),
            workers: config.concurrency.div_ceil(config.batch_size).max(1),
            reconcile_interval: config.reconcile_interval,
            stuck_after: config.stuck_after,
        })
    }

    pub fn settler(&self) -> Arc<Settler<P>> {
        Arc::clone(&self.settler)
    }

    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Settles until `shutdown`; then stops reading, and lets the batches in flight finish and be
    /// acknowledged for at most `SHUTDOWN_GRACE`. What is cut off stays unacknowledged.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            settler,
            mailer,
            listener,
            metrics,
            workers,
            reconcile_interval,
            stuck_after,
        } = self;
        let probe = Probe {
            redis: settler.redis.clone(),
            db: settler.db.clone(),
            guard: Arc::clone(&settler.guard),
            metrics,
        };
        let http = tokio::spawn(http::serve(listener, probe, shutdown.clone()));
        tracing::info!(
            consumer = settler.consumer.name(),
            workers,
            "settler starting"
        );

        // Mail needs Postgres alone: it goes out while Redis is still awaited.
        let mut tasks = JoinSet::new();
        for _ in 0..mail::SENDERS {
            tasks.spawn(Arc::clone(&mailer).run(shutdown.clone()));
        }
        if !start(&settler, &shutdown).await {
            while tasks.join_next().await.is_some() {}
            let _ = http.await;
            return Ok(());
        }
        for worker in 0..workers {
            tasks.spawn(work(Arc::clone(&settler), worker, shutdown.clone()));
        }
        tasks.spawn(every(
            (settler.claim_idle / 2).max(RECLAIM_EVERY_MIN),
            shutdown.clone(),
            {
                let settler = Arc::clone(&settler);
                move || reclaim(Arc::clone(&settler))
            },
        ));
        tasks.spawn(every(TRIM_INTERVAL, shutdown.clone(), {
            let settler = Arc::clone(&settler);
            move || trim(Arc::clone(&settler))
        }));
        tasks.spawn(every(reconcile_interval, shutdown.clone(), {
            let settler = Arc::clone(&settler);
            move || sweep_held(Arc::clone(&settler))
        }));
        tasks.spawn(every(PRUNE_EVERY, shutdown.clone(), {
            let db = settler.db.clone();
            move || prune_accounts(db.clone())
        }));
        let watch = Arc::new(tokio::sync::Mutex::new(DriftWatch::default()));
        tasks.spawn(every(reconcile_interval, shutdown.clone(), {
            let settler = Arc::clone(&settler);
            move || check_books(Arc::clone(&settler), Arc::clone(&watch), stuck_after)
        }));
        tasks.spawn({
            let settler = Arc::clone(&settler);
            let shutdown = shutdown.clone();
            async move {
                let guard = Arc::clone(&settler.guard);
                guard
                    .run(GUARD_EVERY, shutdown, |changes: Vec<EpochChange>| {
                        crate::metrics::HEALTH.guarded(&settler.guard, &changes);
                    })
                    .await;
            }
        });

        shutdown.cancelled().await;
        tracing::info!("finishing the batches in flight");
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; unfinished batches stay unacknowledged");
            settler.shutdown.cancel();
            tasks.shutdown().await;
        }
        let _ = http.await;
        tracing::info!("settler stopped");
        Ok(())
    }
}

/// Waits for Redis and brings every shard to whole (creating the consumer groups, recovering
/// what Redis lost), then settles what this consumer held when it last stopped. Returns false if
/// shut down first.
async fn start<P: PaymentProvider>(settler: &Settler<P>, shutdown: &CancellationToken) -> bool {
    while !settler.guard.start(shutdown, ERROR_PAUSE * 10).await {
        if shutdown.is_cancelled() {
            return false;
        }
        tracing::warn!(not_whole = ?settler.guard.not_whole(), "shards not ready; retrying");
    }
    let settled = settler.recover_own().await;
    if settled > 0 {
        tracing::info!(settled, "settled what this consumer held before");
    }
    true
}

/// One worker: reads batches from the shards in turn until shutdown.
async fn work<P: PaymentProvider>(
    settler: Arc<Settler<P>>,
    worker: usize,
    shutdown: CancellationToken,
) {
    let shards: Vec<Shard> = settler.keys.shards().collect();
    let mut next = worker % shards.len();
    let mut idle = IDLE_POLL_MIN;
    while !shutdown.is_cancelled() {
        let shard = shards[next];
        next = (next + 1) % shards.len();
        match settler.process_batch(shard).await {
            Ok(Processed::Settled(_)) => {
                idle = IDLE_POLL_MIN;
                continue;
            }
            Ok(Processed::Empty) => {}
            Err(error) => {
                tracing::warn!(%shard, %error, "batch left unacknowledged");
                pause(&shutdown, ERROR_PAUSE).await;
                continue;
            }
        }
        // A full round of empty shards: back off.
        if next == worker % shards.len() {
            pause(&shutdown, idle).await;
            idle = (idle * 2).min(IDLE_POLL_MAX);
        }
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// Runs `task` every `interval` until shutdown.
async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, task: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => task().await,
        }
    }
}

async fn reclaim<P: PaymentProvider>(settler: Arc<Settler<P>>) {
    settler.reclaim().await;
}

async fn trim<P: PaymentProvider>(settler: Arc<Settler<P>>) {
    for shard in settler.keys.shards() {
        match settler.consumer.trim(shard, Mode::Trim).await {
            Ok(depth) => crate::metrics::stream_depth(shard, &depth),
            Err(error) => tracing::warn!(%shard, %error, "trimming the stream failed"),
        }
    }
}

async fn sweep_held<P: PaymentProvider>(settler: Arc<Settler<P>>) {
    match held::sweep(&settler.redis, &settler.db, &settler.keys).await {
        Ok(0) => {}
        Ok(given) => tracing::debug!(given, "held counts given their expiry"),
        Err(error) => tracing::warn!(%error, "giving held counts their expiry failed"),
    }
}

async fn prune_accounts(db: sqlx::PgPool) {
    match pg_store::accounts::prune(&db, EXPIRED_KEPT_FOR).await {
        Ok(pruned) => tracing::debug!(?pruned, "expired sign-in links and refresh tokens deleted"),
        Err(error) => tracing::warn!(%error, "deleting expired sign-in links failed"),
    }
}

async fn check_books<P: PaymentProvider>(
    settler: Arc<Settler<P>>,
    watch: Arc<tokio::sync::Mutex<DriftWatch>>,
    stuck_after: Duration,
) {
    match audit::run(&settler.redis, &settler.db, &settler.keys, stuck_after).await {
        Ok(audit) => {
            for tier in watch.lock().await.observe(&audit.tiers) {
                tracing::warn!(
                    tier_id = %tier.tier_id,
                    drift = tier.drift(),
                    total = tier.total,
                    available = tier.available,
                    pending = tier.pending,
                    confirmed = tier.confirmed,
                    "stock drift"
                );
            }
            for shard in &audit.shards {
                if let Some(waited) = shard.oldest_unsettled
                    && waited > stuck_after
                {
                    tracing::warn!(shard = %shard.shard, waited = ?waited, "a booking is stuck unsettled");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "audit failed"),
    }
}
