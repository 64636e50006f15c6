//! Building the gateway (connections, migrations, catalog, stock) and serving it until shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use redis_store::recovery::{EpochChange, ShardGuard};
use redis_store::scripts::reserve::ReserveScript;
use sqlx::postgres::PgPoolOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::analytics::Dashboards;
use crate::catalog::CatalogHandle;
use crate::catalog::{seed, store};
use crate::config::GatewayConfig;
use crate::customers::Customers;
use crate::customers::tokens::AccessTokens;
use crate::http::connection::{Activity, Watched};
use crate::http::event_stream;
use crate::http::limits::{Capacity, FORGET_EVERY, RateLimits};
use crate::live::hub::{Hub, Subscription};
use crate::live::snapshots::Snapshots;
use crate::operators::Operators;
use crate::routes;
use crate::state::{Admin, AppState, BookingDesk, Edge, LiveStock, Streams};
use crate::web::WebApp;
use crate::{losses, metrics, refresh};

use crate::waiting_room::token::AdmissionSecret;
use crate::waiting_room::{self, WaitingRooms};

/// Redis connections per gateway; each is multiplexed, so a few keep both cores busy.
const REDIS_POOL_SIZE: usize = 4;
/// Postgres connections per gateway: it only reads the catalog and settled bookings.
const DB_POOL_SIZE: u32 = 8;
/// How long start-up waits for Redis before serving anyway (readiness says so until it answers).
const REDIS_START_WAIT: Duration = Duration::from_secs(5);
/// A dashboard waits this long for one of its connections before answering 503.
const ANALYTICS_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often every shard is checked for a loss of Redis data.
const GUARD_EVERY: Duration = Duration::from_secs(1);
/// In-flight requests get this long to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Accept errors (out of file descriptors, most often) back off from this to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    /// The live feed's pub/sub connection.
    subscription: Subscription,
}

impl Application {
    /// Connects, migrates, seeds, loads the catalog and stock, and binds the listener.
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let replication = config.replication()?;
        let backends = &config.backends;
        let db = pg_store::connect(&backends.database_url, DB_POOL_SIZE)
            .await
            .context("connecting to postgres")?;
        let keys = backends.keyspace();
        if config.seed_demo {
            seed::seed_if_empty(&db, &keys)
                .await
                .context("seeding the demo catalog")?;
        }
        let catalog = Arc::new(CatalogHandle::default());
        catalog.merge(store::catalog(&db).await.context("loading the catalog")?);

        let web = match &config.web_dir {
            Some(dir) => WebApp::load(dir)
                .with_context(|| format!("reading the web app in {}", dir.display()))?,
            None => WebApp::default(),
        };
        let redis =
            redis_store::connect(&backends.redis_url, REDIS_POOL_SIZE, backends.redis_timeout)
                .await
                .context("configuring redis")?;
        let guard = Arc::new(ShardGuard::new(redis.clone(), db.clone(), keys.clone()));
        let analytics_db = PgPoolOptions::new()
            .max_connections(config.analytics_connections)
            .acquire_timeout(ANALYTICS_ACQUIRE_TIMEOUT)
            .connect_lazy(&backends.database_url)
            .context("configuring the analytics pool")?;
        let waiting_rooms = Arc::new(WaitingRooms::new(
            waiting_room::Backing {
                redis: redis.clone(),
                keys: keys.clone(),
                guard: Arc::clone(&guard),
                catalog: Arc::clone(&catalog),
                replication,
            },
            config
                .admission_secret
                .as_ref()
                .and_then(|key| AdmissionSecret::new(key.expose().as_bytes()))
                .unwrap_or_else(AdmissionSecret::random),
            config.admission_ttl,
        ));
        let shutdown = CancellationToken::new();
        let hub = Arc::<Hub>::default();
        let tokens = match &config.auth_signing_key {
            Some(key) => AccessTokens::new(key.expose().as_bytes()),
            None => AccessTokens::random(),
        };
        let tokens = Arc::new(tokens.context("making the access tokens' key")?);
        let stock = LiveStock {
            redis: redis.clone(),
            keys: keys.clone(),
            missing: Arc::default(),
        };
        let bookings = Arc::new(BookingDesk {
            redis: redis.clone(),
            db: db.clone(),
            keys: keys.clone(),
            catalog: Arc::clone(&catalog),
            waiting_rooms: Arc::clone(&waiting_rooms),
            reserve: ReserveScript::with_replication(replication),
            guard: Arc::clone(&guard),
            accepted: Arc::default(),
            stock: stock.clone(),
            max_tickets_per_customer: config.max_tickets_per_customer,
            hub: Arc::clone(&hub),
            tokens: Arc::clone(&tokens),
            shutdown: shutdown.clone(),
        });
        let operators = Arc::new(Operators::new(
            db.clone(),
            config.admin_token.clone(),
            config.analytics_public,
        ));
        if let Err(error) = operators.reload().await {
            tracing::warn!(%error, "reading the API keys failed; they are refused until they are read");
        }
        let admin = Admin {
            redis: redis.clone(),
            db: db.clone(),
            keys: keys.clone(),
            catalog: Arc::clone(&catalog),
            stock: stock.clone(),
        };
        let streams = Arc::new(Streams {
            hub,
            catalog: Arc::clone(&catalog),
            stock: stock.clone(),
            snapshots: Snapshots::default(),
            capacity: Capacity::new(config.max_sse_clients),
            shutdown: shutdown.clone(),
        });
        let edge = Edge {
            cors: config.cors_allowed_origins.clone().unwrap_or_default(),
            limits: RateLimits::new(config.rate_limit_per_ip, config.booking_limit_per_ip),
            trusted_proxies: config.trusted_proxies.clone(),
            request_capacity: Capacity::new(config.max_in_flight),
            connection_capacity: Capacity::new(config.max_connections),
            connection_limits: config.connection_limits,
            body_timeout: config.body_timeout,
        };
        let customers = Customers {
            db: db.clone(),
            public_url: config.public_url.clone(),
            tokens: Arc::clone(&tokens),
        };
        let state = Arc::new(AppState {
            redis,
            db,
            keys,
            guard,
            catalog,
            stock,
            bookings,
            admin,
            operators,
            customers,
            waiting_rooms,
            streams,
            dashboards: Dashboards::new(analytics_db),
            web,
            metrics: crate::metrics::install(),
            edge,
            loss_check_delay: config.loss_check_delay,
            shutdown,
        });
        // Every shard whole (recovered where Redis lacks it) before the first booking.
        if state
            .guard
            .start(&CancellationToken::new(), REDIS_START_WAIT)
            .await
        {
            if let Err(error) = state.bookings.reserve.load(state.redis.next()).await {
                tracing::warn!(%error, "loading the reservation script failed; it loads on first use");
            }
            refresh::refresh(&state).await;
        } else {
            tracing::warn!(
                "redis is not answering yet, or shards are recovering; serving, and readiness says so"
            );
        }

        let subscription = Subscription::start(&backends.redis_url, &state.keys, REDIS_START_WAIT)
            .await
            .context("configuring the pub/sub subscriber")?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(Self {
            listener,
            state,
            subscription,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests
    /// finish for at most `SHUTDOWN_GRACE`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            subscription,
        } = self;
        let mut background = JoinSet::new();
        background.spawn(refresh::run(Arc::clone(&state), shutdown.clone()));
        background.spawn(subscription.run(Arc::clone(&state.streams.hub), shutdown.clone()));
        background.spawn(forget_idle_clients(Arc::clone(&state), shutdown.clone()));
        background.spawn(guard_shards(Arc::clone(&state), shutdown.clone()));
        background.spawn(Arc::clone(&state.waiting_rooms).run(shutdown.clone()));
        background.spawn(Arc::clone(&state.operators).run(shutdown.clone()));
        let limits = state.edge.connection_limits;
        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let server = Arc::new(server);
        let graceful = GracefulShutdown::new();
        tracing::info!(addr = %listener.local_addr()?, "gateway listening");

        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            // At the connection limit, new connections wait in the kernel's backlog until one
            // closes, rather than taking file descriptors the open ones need.
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = state.edge.connection_capacity.wait() => permit,
            };
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        backoff = ACCEPT_BACKOFF_MIN;
                        accepted
                    }
                    Err(error) => {
                        // Typically EMFILE under a connection flood: back off instead of spinning.
                        tracing::warn!(%error, retry_in = ?backoff, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let activity = Activity::new();
            let connection = serve_connection(
                Arc::clone(&state),
                Arc::clone(&server),
                graceful.watcher(),
                stream,
                peer,
                Arc::clone(&activity),
            );
            tokio::spawn(async move {
                let _permit = permit;
                tokio::select! {
                    ended = connection => if let Err(error) = ended {
                        tracing::debug!(%error, "connection ended with an error");
                    },
                    () = activity.watchdog(limits) => tracing::debug!("connection closed by its limits"),
                }
            });
        }

        drop(listener);
        // Event streams end now; their connections then drain like the others.
        state.shutdown.cancel();
        tracing::info!("draining connections");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections drained"),
            () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over; closing the rest"),
        }
        background.shutdown().await;
        Ok(())
    }
}

/// Serves one accepted connection: by the lean event-stream path when its first request opens a
/// stream, by hyper otherwise. Either way it holds `watcher` until it ends, so shutdown waits.
async fn serve_connection(
    state: Arc<AppState>,
    server: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    stream: TcpStream,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A connection that has sent nothing yet is dropped at shutdown, as hyper drops an idle one.
    let first_is_a_stream = tokio::select! {
        peeked = event_stream::first_request_is_a_stream(&stream, routes::is_event_stream) => peeked?,
        () = state.shutdown.cancelled() => return Ok(()),
    };
    if first_is_a_stream {
        let io = Watched::new(stream, Arc::clone(&activity));
        let answer = |request| routes::handle(state, peer, request);
        let served = event_stream::serve(answer, io, activity).await;
        drop(watcher);
        return Ok(served?);
    }
    let service = service_fn({
        let activity = Arc::clone(&activity);
        move |request| {
            let (state, in_flight) = (Arc::clone(&state), activity.request());
            async move {
                let response = routes::handle(state, peer, request).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        }
    });
    let io = TokioIo::new(Watched::new(stream, activity));
    // Boxed: only connections served by hyper carry its connection's state.
    Box::pin(
        watcher.watch(
            server
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        ),
    )
    .await
}

/// Watches every shard, recovering those Redis lost, and counts the bookings lost with them.
async fn guard_shards(state: Arc<AppState>, shutdown: CancellationToken) {
    let watched = Arc::clone(&state);
    watched
        .guard
        .run(GUARD_EVERY, shutdown, |changes: Vec<EpochChange>| {
            metrics::HEALTH.guarded(&state.guard, &changes);
            for change in changes {
                // A shard seen whole before whose epoch moved on: look for what it lost.
                if change.from > 0 {
                    let places = losses::Places {
                        redis: state.redis.clone(),
                        db: state.db.clone(),
                        keys: state.keys.clone(),
                        accepted: Arc::clone(&state.bookings.accepted),
                    };
                    tokio::spawn(losses::count_lost(
                        places,
                        change.shard,
                        tokio::time::Instant::now(),
                        state.loss_check_delay,
                    ));
                }
            }
        })
        .await;
}

/// Forgets rate-limit state of addresses that went quiet, so memory follows live clients only.
async fn forget_idle_clients(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(FORGET_EVERY) => state.edge.limits.forget_idle(),
        }
    }
}
