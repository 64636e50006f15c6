//! Gateway CPU per booking, in instructions, beside a hello-world hyper request's: both servers
//! run under callgrind, which counts instructions rather than time, so the figure does not move
//! with whatever else this shared machine is doing.
//!
//! Each server is warmed up, then its counters are zeroed and dumped around a quiet period and
//! around a load of the same length; the quiet period's count (timers, the admitter, the pub/sub
//! reader) is taken off the load's before dividing by the requests answered.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use loadtest::pressure::{self, Load, MakeRequest};
use loadtest::services::{Launch, Service, free_port, sibling};
use tokio::process::Command;

use crate::http::{book, create_tiers, get};
use crate::settings::{Run, Settings};

/// How long each counted period lasts.
const PERIOD: Duration = Duration::from_secs(5);
/// Connections of the counted load: enough to keep both cores of the server busy.
const CONNECTIONS: usize = 4;

#[derive(Debug)]
pub(crate) struct Counted {
    pub requests: u64,
    /// Instructions per answered request, the quiet period's taken off.
    pub per_request: f64,
}

#[derive(Debug)]
pub(crate) struct Instructions {
    pub hello: Counted,
    pub booking: Counted,
}

impl Instructions {
    /// A booking's instructions in hello-world requests.
    pub(crate) fn ratio(&self) -> f64 {
        self.booking.per_request / self.hello.per_request
    }
}

/// A server running under callgrind, dumping into a folder of its own.
struct UnderCallgrind {
    service: Service,
    dumps: PathBuf,
}

impl UnderCallgrind {
    /// Starts the program under valgrind, its profile dumped into `out/callgrind/name`.
    async fn start(out: &Path, name: &str, launch: Launch<'_>) -> anyhow::Result<Self> {
        let dumps = out.join("callgrind").join(name);
        if dumps.exists() {
            std::fs::remove_dir_all(&dumps)?;
        }
        std::fs::create_dir_all(&dumps)?;
        let mut callgrind = vec![
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}/callgrind.out", dumps.display()),
            launch.program.display().to_string(),
        ];
        callgrind.extend_from_slice(launch.args);
        let service = Service::start(Launch {
            program: Path::new("valgrind"),
            args: &callgrind,
            ..launch
        })
        .await?;
        Ok(Self { service, dumps })
    }

    async fn control(&self, flag: &str) -> anyhow::Result<()> {
        let status = Command::new("callgrind_control")
            .args([flag, &self.service.pid()?.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("callgrind_control {flag} failed: {status}");
        }
        Ok(())
    }

    /// The instructions counted from now until `during` ends.
    async fn count(&self, during: impl Future<Output = ()>) -> anyhow::Result<u64> {
        self.control("-z").await?;
        during.await;
        let before = self.dump_files()?;
        self.control("-d").await?;
        let dump = self
            .dump_files()?
            .into_iter()
            .find(|file| !before.contains(file))
            .context("callgrind wrote no dump")?;
        let text = std::fs::read_to_string(&dump)?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix("summary:")
                    .or(line.strip_prefix("totals:"))
            })
            .and_then(|total| total.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no total in {}", dump.display()))
    }

    fn dump_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        Ok(std::fs::read_dir(&self.dumps)?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .collect())
    }

    /// Warms up with `warm_up`, then counts a quiet period and a load of `counted` of the same
    /// length (two makers, so that no counted booking replays a warm-up one).
    async fn per_request(
        &self,
        addr: SocketAddr,
        warm_up: MakeRequest,
        counted: MakeRequest,
    ) -> anyhow::Result<Counted> {
        let load = |duration, request| Load {
            target: addr,
            connections: CONNECTIONS,
            duration,
            rate: None,
            request,
        };
        pressure::run(load(Duration::from_secs(2), warm_up)).await;
        let quiet = self.count(tokio::time::sleep(PERIOD)).await?;
        let mut outcome = None;
        let loaded = self
            .count(async {
                outcome = Some(pressure::run(load(PERIOD, counted)).await);
            })
            .await?;
        let requests = outcome.map_or(0, |outcome| outcome.answered());
        if requests == 0 {
            bail!("no request was answered under callgrind");
        }
        Ok(Counted {
            requests,
            per_request: loaded.saturating_sub(quiet) as f64 / requests as f64,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.service.stop().await
    }
}

pub(crate) async fn instructions(settings: &Settings, run: &Run) -> anyhow::Result<Instructions> {
    println!("bench: instructions per request under callgrind, hello-world then bookings");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let hello = UnderCallgrind::start(
        &settings.out,
        "hello",
        Launch {
            program: &sibling("hello")?,
            args: &[addr.to_string()],
            env: &[],
            addr,
            ready: None,
        },
    )
    .await?;
    let hello_counted = hello
        .per_request(addr, get(addr, "/"), get(addr, "/"))
        .await?;
    hello.stop().await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let gateway = UnderCallgrind::start(
        &settings.out,
        "gateway",
        Launch::http(
            &sibling("gateway")?,
            &run.gateway_env(settings, addr, false),
            addr,
            "/api/health/ready",
        ),
    )
    .await?;
    let [tier, ..] = create_tiers(addr).await?;
    let booking_counted = gateway
        .per_request(
            addr,
            book(addr, &tier, "warm-up"),
            book(addr, &tier, "counted"),
        )
        .await?;
    gateway.stop().await?;
    Ok(Instructions {
        hello: hello_counted,
        booking: booking_counted,
    })
}
