//! A private Redis under Sentinel: a master, its replicas and three sentinels watching them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::prelude::ClientLike;

use crate::redis::connected;
use crate::{Persistence, PrivateRedis, TempDir, free_port, wait_for_port};

/// The name the sentinels know the master by (`sentinelServiceName`).
const SERVICE: &str = "tickets";
const SENTINELS: usize = 3;

/// `nodes[0]` starts as the master, the rest as its replicas; three sentinels agree (two of
/// them) that a master unanswered for a second is down and promote a replica.
#[derive(Debug)]
pub struct PrivateSentinels {
    pub nodes: Vec<PrivateRedis>,
    sentinels: Vec<Sentinel>,
}

impl PrivateSentinels {
    pub async fn start(persistence: Persistence, replicas: usize) -> Self {
        let master = PrivateRedis::start(persistence);
        let mut nodes = Vec::with_capacity(1 + replicas);
        for _ in 0..replicas {
            nodes.push(PrivateRedis::replica_of(&master).await);
        }
        nodes.insert(0, master);
        let sentinels = (0..SENTINELS)
            .map(|_| Sentinel::start(nodes[0].port))
            .collect();
        let watched = Self { nodes, sentinels };
        watched.wait_until_watching().await;
        watched
    }

    /// `REDIS_URL` naming the sentinels and the service.
    pub fn url(&self) -> String {
        let (first, rest) = self.sentinels.split_first().expect("sentinels");
        let others: String = rest
            .iter()
            .map(|sentinel| format!("&node=127.0.0.1:{}", sentinel.port))
            .collect();
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={SERVICE}{others}",
            first.port
        )
    }

    /// The port of the master as the first answering sentinel names it.
    pub async fn master_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let Ok(redis) = redis_store::connect(
                &format!("redis://127.0.0.1:{}", sentinel.port),
                1,
                Duration::from_millis(500),
            )
            .await
            else {
                continue;
            };
            let address: Result<Vec<String>, _> = redis
                .next()
                .custom(
                    fred::cmd!("SENTINEL"),
                    vec!["get-master-addr-by-name", SERVICE],
                )
                .await;
            let _ = redis.quit().await;
            if let Some(port) = address
                .ok()
                .and_then(|address| address.get(1)?.parse().ok())
            {
                return Some(port);
            }
        }
        None
    }

    /// Waits until the sentinels name another master than node `dead`, at most `patience`: the
    /// promoted node's index.
    pub async fn promoted_after(&self, dead: usize, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let promoted = self.master_port().await.and_then(|port| {
                self.nodes
                    .iter()
                    .position(|node| node.port == port)
                    .filter(|index| *index != dead)
            });
            if let Some(promoted) = promoted {
                return promoted;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels promoted no replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every sentinel sees the master, its replicas and the other sentinels.
    async fn wait_until_watching(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let replicas = (self.nodes.len() - 1).to_string();
        let others = (SENTINELS - 1).to_string();
        for sentinel in &self.sentinels {
            let redis = connected(&format!("redis://127.0.0.1:{}", sentinel.port)).await;
            loop {
                let master: Vec<String> = redis
                    .next()
                    .custom(fred::cmd!("SENTINEL"), vec!["master", SERVICE])
                    .await
                    .unwrap_or_default();
                let field = |name: &str| {
                    master
                        .iter()
                        .position(|field| field == name)
                        .and_then(|index| master.get(index + 1))
                        .cloned()
                        .unwrap_or_default()
                };
                if field("num-slaves") == replicas && field("num-other-sentinels") == others {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the sentinels never saw the servers: {master:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = redis.quit().await;
        }
    }
}

/// One `redis-server --sentinel`, its configuration file (which it rewrites) in a directory of
/// its own.
#[derive(Debug)]
struct Sentinel {
    port: u16,
    _dir: TempDir,
    child: Child,
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = TempDir::new("sentinel");
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 10000\n",
                dir.path().display()
            ),
        )
        .expect("sentinel configuration written");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (make test installs it)");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "redis sentinel did not start"
        );
        Self {
            port,
            _dir: dir,
            child,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
