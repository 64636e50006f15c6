//! SSE fan-out: many idle streams on several gateways, held by `sse_fanout --follow` (or
//! `--queue`) processes, and how long one change takes to reach every one of them.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use api_types::BookingBody;
use fred::prelude::{Builder, ClientLike, Config, EventInterface, PubsubInterface};
use hdrhistogram::Histogram;
use loadtest::services::{Launch, Service, free_port, rss_kib, sibling};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::http::{Tier, create_room};
use crate::settings::{Run, Settings};

/// Clients one `sse_fanout` process holds: below the 20,000 open files a process may have here.
const CLIENTS_PER_PROCESS: usize = 16_000;
/// Source addresses each `sse_fanout` process spreads its clients over.
const SOURCES_PER_PROCESS: u8 = 4;
const FANOUT_ROUNDS: usize = 5;
/// The waiting room whose positions are followed admits one place a second: every admission
/// moves every place, and the rounds stay apart.
const QUEUE_ADMIT_PER_SECOND: u32 = 1;

/// One `sse_fanout` process and its two pipes.
#[derive(Debug)]
struct Follower {
    child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
}

impl Follower {
    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.input.write_all(format!("{line}\n").as_bytes()).await?;
        Ok(self.input.flush().await?)
    }

    /// The rest of the next line that starts with `word`.
    async fn hear(&mut self, word: &str) -> anyhow::Result<String> {
        let line = self
            .output
            .next_line()
            .await?
            .context("sse_fanout ended early")?;
        line.strip_prefix(word)
            .map(|rest| rest.trim().to_owned())
            .with_context(|| format!("expected {word:?} from sse_fanout, got {line:?}"))
    }
}

/// The `sse_fanout` processes holding one kind of stream, together.
#[derive(Debug)]
struct Followers {
    processes: Vec<Follower>,
    connected: usize,
    /// Stream requests answered 503 and asked for again (after a second) while opening.
    retried: usize,
}

impl Followers {
    /// Starts processes holding `clients` streams (`watch` names what they follow) and waits
    /// until every stream is open; `first_source` numbers the first of their source addresses.
    async fn start(
        clients: usize,
        targets: &str,
        watch: [&str; 2],
        first_source: u8,
    ) -> anyhow::Result<Self> {
        let mut processes = Vec::new();
        let mut remaining = clients;
        while remaining > 0 {
            let clients = remaining.min(CLIENTS_PER_PROCESS);
            remaining -= clients;
            let offset = first_source + u8::try_from(processes.len())? * SOURCES_PER_PROCESS;
            let mut child = Command::new(sibling("sse_fanout")?)
                .args(["--gateways", targets])
                .args(watch)
                .args(["--clients", &clients.to_string()])
                .args(["--sources", &SOURCES_PER_PROCESS.to_string()])
                .args(["--source-offset", &offset.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let input = child.stdin.take().context("sse_fanout stdin")?;
            let output = BufReader::new(child.stdout.take().context("sse_fanout stdout")?).lines();
            processes.push(Follower {
                child,
                input,
                output,
            });
        }
        let (mut connected, mut retried) = (0, 0);
        for follower in &mut processes {
            let ready = follower.hear("ready").await?;
            let mut counts = ready.split(' ').map(str::parse::<usize>);
            connected += counts.next().context("no count of streams")??;
            retried += counts.next().context("no count of retries")??;
        }
        Ok(Self {
            processes,
            connected,
            retried,
        })
    }

    /// Source addresses the processes use.
    fn sources(&self) -> u8 {
        u8::try_from(self.processes.len()).unwrap_or(u8::MAX) * SOURCES_PER_PROCESS
    }

    /// Starts a round; returns the streams open.
    async fn arm(&mut self) -> anyhow::Result<usize> {
        for follower in &mut self.processes {
            follower.say("arm").await?;
        }
        let mut open = 0;
        for follower in &mut self.processes {
            open += follower.hear("armed").await?.parse::<usize>()?;
        }
        Ok(open)
    }

    /// Records in `delivery` how long after `sent` (unix µs) each stream saw the round's change.
    async fn collect(
        &mut self,
        sent: u128,
        open: usize,
        delivery: &mut Delivery,
    ) -> anyhow::Result<()> {
        let mut reached = 0;
        for follower in &mut self.processes {
            follower.say("collect").await?;
            for arrival in follower.hear("arrivals").await?.split(',') {
                if let Ok(at) = arrival.parse::<u128>() {
                    reached += 1;
                    delivery
                        .latency
                        .saturating_record(u64::try_from(at.saturating_sub(sent))?.max(1));
                }
            }
        }
        println!(
            "bench: round {}: {reached} of {open} open streams reached",
            delivery.rounds.len() + 1
        );
        delivery.rounds.push(Round { open, reached });
        Ok(())
    }

    /// Closes the processes' input, which ends them and their streams.
    async fn finish(self) {
        for follower in self.processes {
            let Follower {
                mut child, input, ..
            } = follower;
            drop(input);
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// One change and the streams it had to reach.
#[derive(Debug)]
pub(crate) struct Round {
    /// Streams open when the round began.
    pub open: usize,
    /// Streams that saw the change.
    pub reached: usize,
}

/// How changes reached the streams of one kind.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub clients: usize,
    pub connected: usize,
    /// Stream requests answered 503 and asked for again while the streams opened.
    pub retried: usize,
    pub rounds: Vec<Round>,
    /// Delivery latencies of every round, µs.
    pub latency: Histogram<u64>,
}

impl Delivery {
    fn new(clients: usize, followers: &Followers) -> anyhow::Result<Self> {
        Ok(Self {
            clients,
            connected: followers.connected,
            retried: followers.retried,
            rounds: Vec::new(),
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        })
    }

    /// Whether every round reached every stream open when it began.
    pub(crate) fn reached_all(&self) -> bool {
        !self.rounds.is_empty() && self.rounds.iter().all(|round| round.reached == round.open)
    }

    /// The fewest streams a round reached.
    pub(crate) fn fewest_reached(&self) -> usize {
        self.rounds
            .iter()
            .map(|round| round.reached)
            .min()
            .unwrap_or(0)
    }

    pub(crate) fn percentile_ms(&self, percentile: f64) -> f64 {
        self.latency.value_at_percentile(percentile) as f64 / 1e3
    }
}

#[derive(Debug)]
pub(crate) struct Fanout {
    /// Stock changes on the shared stream, timed from the booking that made each.
    pub stock: Delivery,
    /// Waiting-room positions, each stream its own place, timed from the admission tick's
    /// pub/sub message.
    pub queue: Delivery,
    pub kib_per_stream: f64,
}

fn unix_micros() -> anyhow::Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros())
}

/// Stock changes: each round books one ticket of `tier` through the first gateway.
async fn stock_rounds(
    gateway: SocketAddr,
    tier: &Tier,
    followers: &mut Followers,
    delivery: &mut Delivery,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..FANOUT_ROUNDS {
        let open = followers.arm().await?;
        let sent = unix_micros()?;
        let booked = http
            .post(format!("http://{gateway}/api/bookings"))
            .json(
                &BookingBody::new(
                    tier.id.into(),
                    &format!("{}@fanout.example", Uuid::new_v4().simple()),
                    1,
                    tier.price,
                    &Uuid::new_v4().to_string(),
                )
                .map_err(anyhow::Error::msg)?,
            )
            .send()
            .await?;
        if booked.status() != 202 {
            bail!("the triggering booking answered {}", booked.status());
        }
        followers.collect(sent, open, delivery).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Each admission tick of `concert` that moved its queue, with when it was heard (unix µs) on
/// the queue channel (payload `<concertId> <admitted> <state>`). The subscriber runs on a thread
/// of its own, so that the time is taken as the message arrives, not when the bench's runtime
/// gets round to it.
fn advances(settings: &Settings, run: &Run, concert: Uuid) -> anyhow::Result<Advances> {
    let config = Config::from_url(&settings.backends.redis_url)?;
    let channel = run.keys.queue_channel();
    let (sender, heard) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let subscriber = Builder::from_config(config).build_subscriber_client()?;
            subscriber.init().await?;
            let mut messages = subscriber.message_rx();
            subscriber.subscribe(channel).await?;
            let concert = concert.to_string();
            let mut admitted = 0;
            let listen = async {
                while let Ok(message) = messages.recv().await {
                    let heard = unix_micros().unwrap_or_default();
                    let payload = message.value.as_str().unwrap_or_default().into_owned();
                    let mut fields = payload.split(' ');
                    if fields.next() != Some(&concert) {
                        continue;
                    }
                    let now: u64 = fields
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .unwrap_or_default();
                    if now > admitted {
                        admitted = now;
                        if sender.send(heard).is_err() {
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                () = listen => {}
                _ = stopped => {}
            }
            subscriber.quit().await?;
            Ok(())
        })
    });
    Ok(Advances {
        heard,
        stop,
        thread,
    })
}

/// The admission ticks [`advances`] hears, and its thread.
#[derive(Debug)]
struct Advances {
    heard: mpsc::UnboundedReceiver<u128>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Advances {
    /// When the next advance was heard, at most 10 s from now.
    async fn next(&mut self) -> anyhow::Result<u128> {
        tokio::time::timeout(Duration::from_secs(10), self.heard.recv())
            .await
            .ok()
            .flatten()
            .context("the waiting room did not advance for 10 s")
    }

    fn finish(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the queue channel's subscriber panicked"))?
    }
}

/// Waiting-room positions: a room admitting [`QUEUE_ADMIT_PER_SECOND`]. A round is armed once
/// every stream has seen the last advance and is timed from the pub/sub message of the next; a
/// first round, not recorded, brings every stream level.
async fn queue_rounds(
    run: &Run,
    settings: &Settings,
    concert: Uuid,
    followers: &mut Followers,
    delivery: &mut Delivery,
) -> anyhow::Result<()> {
    let mut advances = advances(settings, run, concert)?;
    let mut warm_up = Delivery::new(delivery.clients, followers)?;
    for round in 0..=FANOUT_ROUNDS {
        // Advances heard while the last round was collected came before this one was armed.
        while advances.heard.try_recv().is_ok() {}
        let open = followers.arm().await?;
        let sent = advances.next().await?;
        let record = if round == 0 {
            &mut warm_up
        } else {
            &mut *delivery
        };
        followers.collect(sent, open, record).await?;
    }
    advances.finish()
}

/// Waits until every gateway serves `concert`: creation reaches the others over pub/sub.
async fn known_everywhere(gateways: &[Service], concert: Uuid) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for gateway in gateways {
        let url = format!("http://{}/api/concerts/{concert}", gateway.addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while http.get(&url).send().await?.status() != 200 {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} does not know the concert {concert} after 5 s",
                    gateway.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

pub(crate) async fn sse_fanout(
    settings: &Settings,
    run: &Run,
    tier: &Tier,
) -> anyhow::Result<Fanout> {
    let mut gateways = Vec::new();
    for index in 0..settings.sse_gateways {
        let port = free_port()?;
        // The first seeds the demo catalog (into an empty database only); the rest share it.
        let env = run.gateway_env(settings, SocketAddr::from(([0, 0, 0, 0], port)), index == 0);
        gateways.push(
            Service::start(Launch::http(
                &sibling("gateway")?,
                &env,
                SocketAddr::from(([127, 0, 0, 1], port)),
                "/api/health/ready",
            ))
            .await?,
        );
    }
    let pids = gateways
        .iter()
        .map(Service::pid)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rss = || pids.iter().filter_map(|pid| rss_kib(*pid)).sum::<u64>();
    let before = rss();
    let targets = gateways
        .iter()
        .map(|gateway| gateway.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let first = gateways.first().context("BENCH_SSE_GATEWAYS is 0")?.addr;

    println!(
        "bench: {} SSE clients on {} gateways",
        settings.sse_clients, settings.sse_gateways
    );
    let tier_id = tier.id.to_string();
    let mut followers =
        Followers::start(settings.sse_clients, &targets, ["--follow", &tier_id], 0).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    let mut stock = Delivery::new(settings.sse_clients, &followers)?;
    println!(
        "bench: {} streaming; {FANOUT_ROUNDS} stock changes",
        stock.connected
    );
    stock_rounds(first, tier, &mut followers, &mut stock).await?;
    // The queue's clients use source addresses of their own: the closed streams' ports linger.
    let next_source = followers.sources();
    followers.finish().await;

    let room = create_room(first, QUEUE_ADMIT_PER_SECOND).await?;
    known_everywhere(&gateways, room).await?;
    println!(
        "bench: {} places in a waiting room, each following its position",
        settings.sse_clients
    );
    let mut followers = Followers::start(
        settings.sse_clients,
        &targets,
        ["--queue", &room.to_string()],
        next_source,
    )
    .await?;
    let mut queue = Delivery::new(settings.sse_clients, &followers)?;
    println!(
        "bench: {} streaming; {FANOUT_ROUNDS} admission ticks",
        queue.connected
    );
    queue_rounds(run, settings, room, &mut followers, &mut queue).await?;
    followers.finish().await;

    for gateway in gateways {
        gateway.stop().await?;
    }
    Ok(Fanout {
        kib_per_stream: (after as f64 - before as f64) / stock.connected.max(1) as f64,
        stock,
        queue,
    })
}
