//! A private `redis-server`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fred::clients::Client;
use fred::prelude::{ClientLike, KeysInterface};
use fred::types::scan::Scanner;
use futures::StreamExt;

use crate::{TempDir, free_port, signal, wait_for_port};

/// What the server keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: a restart comes back empty.
    None,
    /// An append-only file, flushed to disk every second (`appendfsync everysec`).
    AofEverySec,
    /// An append-only file, flushed before every reply (`appendfsync always`).
    AofAlways,
}

#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    persistence: Persistence,
    /// The port of the master this server replicates, if it is a replica.
    master: Option<u16>,
    /// A node of a Redis Cluster ([`crate::PrivateCluster`]) rather than a server of its own.
    clustered: bool,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start(persistence: Persistence) -> Self {
        Self::launch(persistence, None)
    }

    /// A replica of `master`, with its persistence; it has caught up when this returns.
    pub async fn replica_of(master: &PrivateRedis) -> Self {
        Self::replica_at(master.persistence, master.port).await
    }

    /// A replica of the master reached at `port` of 127.0.0.1 (the master's own, or a
    /// [`crate::Proxy`]'s in front of it); it has caught up when this returns.
    pub async fn replica_at(persistence: Persistence, port: u16) -> Self {
        let replica = Self::launch(persistence, Some(port));
        let redis = connected(&replica.url()).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis
                .next()
                .custom(fred::cmd!("INFO"), vec!["replication"])
                .await
                .expect("INFO answers");
            if info.contains("master_link_status:up") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica never caught up: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = redis.quit().await;
        replica
    }

    fn launch(persistence: Persistence, master: Option<u16>) -> Self {
        Self::launch_on(free_port(), persistence, master, false)
    }

    /// A node of a Redis Cluster on `port`, joined to none yet.
    pub(crate) fn cluster_node(port: u16, persistence: Persistence) -> Self {
        Self::launch_on(port, persistence, None, true)
    }

    fn launch_on(
        port: u16,
        persistence: Persistence,
        master: Option<u16>,
        clustered: bool,
    ) -> Self {
        let mut redis = Self {
            port,
            persistence,
            master,
            clustered,
            dir: TempDir::new("redis"),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Makes this replica a master (`REPLICAOF NO ONE`), as a failover promotes one.
    pub async fn promote(&mut self) {
        let redis = connected(&self.url()).await;
        let _: () = redis
            .next()
            .custom(fred::cmd!("REPLICAOF"), vec!["NO", "ONE"])
            .await
            .expect("promoted");
        let _ = redis.quit().await;
        self.master = None;
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.address())
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Started and not killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server (again) on its port and data directory.
    pub fn restart(&mut self) {
        let (appendonly, fsync) = match self.persistence {
            Persistence::None => ("no", "everysec"),
            Persistence::AofEverySec => ("yes", "everysec"),
            Persistence::AofAlways => ("yes", "always"),
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                appendonly,
                "--appendfsync",
                fsync,
            ])
            .args(
                self.master
                    .map(|port| {
                        vec![
                            "--replicaof".to_owned(),
                            "127.0.0.1".to_owned(),
                            port.to_string(),
                        ]
                    })
                    .unwrap_or_default(),
            )
            .args(if self.clustered {
                // A node unanswered for a second is failed over: a test's failover takes seconds.
                vec!["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
            } else {
                Vec::new()
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (make test installs it)");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start"
        );
    }

    /// `SIGKILL`: gone at once, keeping only what its persistence wrote.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGSTOP`: alive, connections open, answering nothing.
    pub fn stall(&self) {
        signal(self.pid(), "-STOP");
    }

    /// `SIGCONT` after [`PrivateRedis::stall`].
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "-CONT");
        }
        self.kill();
    }
}

/// A pool of one connection to the Redis at `url`, as the binaries connect.
pub(crate) async fn connected(url: &str) -> fred::prelude::Pool {
    redis_store::connect(url, 1, Duration::from_secs(5))
        .await
        .expect("redis answers")
}

/// Keys a SCAN page asks for: a run that leaves millions (a bench) is removed in seconds.
const SCAN_PAGE: u32 = 5_000;

/// Deletes every key of a test's `prefix` on its `shards`. On one server in one pass over
/// `{prefix:*`; on a cluster shard by shard, since the pattern `{prefix:shard}:*` names one hash
/// slot, which a cluster client scans on the node that owns it. UNLINK frees the values off
/// Redis' main thread.
pub async fn delete_keys(redis: &Client, prefix: &str, shards: u8) {
    let patterns: Vec<String> = if redis.is_clustered() {
        (0..shards)
            .map(|shard| format!("{{{prefix}:{shard}}}:*"))
            .collect()
    } else {
        vec![format!("{{{prefix}:*")]
    };
    for pattern in patterns {
        let mut pages = redis.scan(pattern, Some(SCAN_PAGE), None);
        while let Some(page) = pages.next().await {
            let mut page = page.expect("keys scanned");
            if let Some(keys) = page.take_results()
                && !keys.is_empty()
            {
                let _: i64 = redis.unlink(keys).await.expect("keys deleted");
            }
        }
    }
}
