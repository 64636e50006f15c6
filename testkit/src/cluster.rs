//! A private Redis Cluster: three masters with their replicas, as production runs Redis.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use fred::prelude::ClientLike;
use fred::util::redis_keyslot;

use crate::redis::connected;
use crate::{Persistence, PrivateRedis, free_port};

const MASTERS: usize = 3;

/// Nodes on free ports: masters `0..3` (slots split evenly, in order), then their replicas, node
/// `3 * (r + 1) + i` the `r`-th replica of master `i`. A node unanswered for a second is failed
/// over, so a test's failover takes seconds.
#[derive(Debug)]
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
    replicas: usize,
}

impl PrivateCluster {
    /// Three masters with `replicas` replicas each.
    pub async fn start(persistence: Persistence, replicas: usize) -> Self {
        let nodes: Vec<PrivateRedis> = (0..(1 + replicas) * MASTERS)
            .map(|_| PrivateRedis::cluster_node(free_cluster_port(), persistence))
            .collect();
        let addresses: Vec<String> = nodes[..MASTERS].iter().map(PrivateRedis::address).collect();
        redis_cli(
            ["--cluster", "create"]
                .into_iter()
                .map(str::to_owned)
                .chain(addresses.iter().cloned())
                .chain(["--cluster-yes".to_owned()]),
        );
        for (index, replica) in nodes.iter().enumerate().skip(MASTERS) {
            let master = &nodes[index % MASTERS];
            let id = redis_cli([
                "-p".to_owned(),
                master.port.to_string(),
                "cluster".to_owned(),
                "myid".to_owned(),
            ]);
            redis_cli([
                "--cluster".to_owned(),
                "add-node".to_owned(),
                replica.address(),
                master.address(),
                "--cluster-slave".to_owned(),
                "--cluster-master-id".to_owned(),
                id.trim().to_owned(),
            ]);
        }
        let cluster = Self { nodes, replicas };
        cluster.wait_until_whole().await;
        cluster
    }

    /// `REDIS_URL` naming every master.
    pub fn url(&self) -> String {
        let (first, rest) = self.nodes[..MASTERS].split_first().expect("masters");
        let others: Vec<String> = rest
            .iter()
            .map(|node| format!("node={}", node.address()))
            .collect();
        format!("redis-cluster://{}?{}", first.address(), others.join("&"))
    }

    /// `REDIS_URL` naming only node `index`: the client learns the other nodes from it.
    pub fn url_of(&self, index: usize) -> String {
        format!("redis-cluster://{}", self.nodes[index].address())
    }

    /// The index of the node that is the master of `key`'s hash slot now, as a live node sees it.
    pub async fn master_of(&self, key: &str) -> Option<usize> {
        let slot = redis_keyslot(key.as_bytes());
        let port = self.owner_of(slot).await?;
        self.nodes.iter().position(|node| node.port == port)
    }

    /// Waits until node `dead`'s slots have another master (a replica was promoted), at most
    /// `patience`: that master's index.
    pub async fn promoted_after(&self, dead: usize, key: &str, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(master) = self.master_of(key).await.filter(|master| *master != dead) {
                return master;
            }
            assert!(
                Instant::now() < deadline,
                "no replica of node {dead} was promoted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The port of the master serving `slot`, read from `CLUSTER NODES` of the first node that
    /// answers.
    async fn owner_of(&self, slot: u16) -> Option<u16> {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let Ok(redis) = redis_store::connect(&node.url(), 1, Duration::from_millis(500)).await
            else {
                continue;
            };
            let nodes: Result<String, _> = redis
                .next()
                .custom(fred::cmd!("CLUSTER"), vec!["NODES"])
                .await;
            let _ = redis.quit().await;
            if let Ok(nodes) = nodes {
                return serving(&nodes, slot);
            }
        }
        None
    }

    /// Every node reports the cluster whole and every replica is in sync with its master.
    async fn wait_until_whole(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            let redis = connected(&node.url()).await;
            loop {
                let cluster: String = redis
                    .next()
                    .custom(fred::cmd!("CLUSTER"), vec!["INFO"])
                    .await
                    .expect("CLUSTER INFO answers");
                let replication: String = redis
                    .next()
                    .custom(fred::cmd!("INFO"), vec!["replication"])
                    .await
                    .expect("INFO answers");
                let synced = replication.contains("role:master")
                    && replication.contains(&format!("connected_slaves:{}", self.replicas))
                    || replication.contains("master_link_status:up");
                if cluster.contains("cluster_state:ok") && synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never formed: {cluster}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = redis.quit().await;
        }
    }
}

/// The port of the live master `CLUSTER NODES` (its text) names for `slot`.
fn serving(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.contains("master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            matches!((first.parse::<u16>(), last.parse::<u16>()),
                (Ok(first), Ok(last)) if (first..=last).contains(&slot))
        });
        let address = fields.get(1)?.split('@').next()?;
        serves
            .then(|| address.rsplit_once(':')?.1.parse().ok())
            .flatten()
    })
}

/// A free port whose cluster bus port (10000 above it) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX - 10_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Runs `redis-cli` with `args`: what it printed.
fn redis_cli(args: impl IntoIterator<Item = String>) -> String {
    let output = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli runs (make test installs it)");
    assert!(
        output.status.success(),
        "redis-cli failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::serving;

    #[test]
    fn the_master_of_a_slot_is_read_off_cluster_nodes() {
        let nodes = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     b2 127.0.0.1:7001@17001 master,fail - 0 0 2 connected 5461-10922\n\
                     c3 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383\n\
                     d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected\n";
        assert_eq!(serving(nodes, 0), Some(7000));
        assert_eq!(serving(nodes, 16383), Some(7002));
        assert_eq!(serving(nodes, 6000), None, "a failed master serves nothing");
    }
}
