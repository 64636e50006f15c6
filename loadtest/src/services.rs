//! The processes a benchmark starts: release gateways and the hello-world yardstick, each on a
//! port of its own, stopped with SIGTERM like any deployment would.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// The directory of the running binary: the release gateway and tools sit beside it.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("the running binary has no directory")?
        .join(name);
    if !path.exists() {
        bail!("{} is missing: build it first", path.display());
    }
    Ok(path)
}

/// A port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A program to start, and how to tell that it is up.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    /// Set on top of this process's environment.
    pub env: &'a [(&'a str, String)],
    pub addr: SocketAddr,
    /// An HTTP path that answers 200 once it is up, or `None` for "accepts connections".
    pub ready: Option<&'a str>,
}

impl<'a> Launch<'a> {
    /// A service taking no arguments, up once `ready` answers 200 on `addr`.
    pub fn http(
        program: &'a Path,
        env: &'a [(&'a str, String)],
        addr: SocketAddr,
        ready: &'a str,
    ) -> Self {
        Self {
            program,
            args: &[],
            env,
            addr,
            ready: Some(ready),
        }
    }
}

/// A started process; killed if dropped without [`Service::stop`].
#[derive(Debug)]
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
}

impl Service {
    /// Starts the program and waits until it is up.
    pub async fn start(launch: Launch<'_>) -> anyhow::Result<Self> {
        let Launch {
            program,
            args,
            env,
            addr,
            ready,
        } = launch;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let service = Self { child, addr };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let up = match ready {
                Some(path) => http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success()),
                None => tokio::net::TcpStream::connect(addr).await.is_ok(),
            };
            if up {
                return Ok(service);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not become ready on {addr}", program.display())
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the process has already ended")
    }

    /// SIGTERM, then up to 15 s to drain before it is killed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}
