//! Redis connections with the behaviour the booking path depends on: a command that cannot be
//! answered within `command_timeout` fails (the gateway answers 503), and the client keeps
//! reconnecting in the background, so the service recovers without a restart.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, Error, Pool, ReconnectPolicy, ServerConfig};
use fred::types::config::ClusterDiscoveryPolicy;

/// Reconnect delays grow from 50 ms to at most 200 ms, forever: a Redis coming back, or the
/// replica promoted in a dead master's place, is found within a fifth of a second (a refused
/// connection costs a server next to nothing).
const RECONNECT_MIN_MS: u32 = 50;
const RECONNECT_MAX_MS: u32 = 200;

/// Builds a pool of `size` multiplexed connections and connects it, waiting at most one
/// `command_timeout` for Redis: a client of a Redis Cluster routes a command by the slot map its
/// connection read, and refuses commands until it has one. A Redis that does not answer by then
/// is left to the reconnect policy; the process serves meanwhile and readiness says so.
pub async fn connect(url: &str, size: usize, command_timeout: Duration) -> Result<Pool, Error> {
    let mut config = Config::from_url(url)?;
    // Start even while Redis is down; readiness reports it until it answers.
    config.fail_fast = false;
    if matches!(config.server, ServerConfig::Clustered { .. }) {
        // Rediscover the cluster through every node it last named, not only those of the URL: a
        // URL naming one master would otherwise lose the whole cluster with that master, and
        // never learn of the replica promoted in its place.
        config
            .server
            .set_cluster_discovery_policy(ClusterDiscoveryPolicy::UseCache)?;
    }
    let pool = Builder::from_config(config)
        .with_performance_config(|performance| {
            performance.default_command_timeout = command_timeout;
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = command_timeout;
            connection.internal_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_MS,
            RECONNECT_MAX_MS,
            2,
        ))
        .build_pool(size)?;
    pool.connect();
    if tokio::time::timeout(command_timeout, pool.wait_for_connect())
        .await
        .is_err()
    {
        tracing::warn!("redis is not answering yet; connecting in the background");
    }
    Ok(pool)
}
