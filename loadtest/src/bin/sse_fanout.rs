//! SSE fan-out: holds many idle `GET /api/concerts/stream` clients across one or more gateways,
//! spread over several source addresses (one address has only ~28,000 ports), then books one
//! ticket at a time and measures how long each stock change takes to reach every client.
//!
//! ```sh
//! cargo run --release -p loadtest --bin sse_fanout -- \
//!   --gateways 127.0.0.1:8000,127.0.0.1:8001 --clients 10000 --sources 4 --rounds 5 --pids 1234,1235
//! ```
//!
//! Prints, per round, how many clients the change reached and the p50/p99/max delivery latency,
//! and the gateways' resident memory per open stream when `--pids` names their processes.
//!
//! One process may hold at most 20,000 sockets here, so `bench` runs several with
//! `--follow <tierId>`: each then books nothing and prints `ready <streaming clients> <503s asked
//! again>`; on an `arm`
//! line of its standard input it answers `armed <streams still open>`, and on `collect`,
//! `arrivals <unix µs>,...`: when each of its clients saw the first change after arming. It ends
//! when its input closes.
//!
//! With `--queue <concertId>` instead, each client first joins the concert's waiting room and then
//! follows its own place (`GET /api/queue/{ticketId}/events?token=`); a change is then an
//! admission tick moving the place (`position`, or `admitted`, after which the stream ends).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

use loadtest::services::rss_kib;

/// Opens many event streams on one or more gateways and measures how fast a change reaches all.
#[derive(Debug, Parser)]
struct Options {
    /// The gateways, comma-separated; clients are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8000")]
    gateways: Vec<SocketAddr>,
    /// Streams to open.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Source addresses to connect from (each allows ~28,000 connections).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=254))]
    sources: u8,
    /// The first source address is 127.0.0.(1 + this).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..254))]
    source_offset: u8,
    /// Bookings timed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The gateways' processes, comma-separated, for their memory per stream.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Take rounds from standard input instead of booking, following this tier's stock.
    #[arg(long, value_name = "TIER_ID", conflicts_with = "queue")]
    follow: Option<String>,
    /// Take rounds from standard input, each client following its own place in this concert's
    /// waiting room.
    #[arg(long, value_name = "CONCERT_ID")]
    queue: Option<Uuid>,
}

impl Options {
    /// What the clients follow when rounds come from standard input.
    fn watch(&self) -> Option<Watch> {
        match (&self.follow, self.queue) {
            (Some(tier), _) => Some(Watch::Stock(tier.as_str().into())),
            (None, Some(concert)) => Some(Watch::Queue(concert)),
            (None, None) => None,
        }
    }
}

/// What the clients follow, and which of its events is a change.
#[derive(Debug, Clone)]
enum Watch {
    /// `GET /api/concerts/stream`: the stock changes (unnamed events) of this tier.
    Stock(Arc<str>),
    /// Each client's own place in this concert's waiting room.
    Queue(Uuid),
}

impl Watch {
    /// Whether a complete event frame is the first one of a stream that is now open (a place
    /// admitted before its stream opened is reached all the same, and its stream ends at once).
    fn opens(&self, frame: &str) -> bool {
        match self {
            Self::Stock(_) => frame.contains("event: snapshot"),
            Self::Queue(_) => ["position", "admitted", "soldout"]
                .iter()
                .any(|event| frame.contains(&format!("event: {event}"))),
        }
    }

    /// Whether a complete event frame is the last of its stream.
    fn ends(&self, frame: &str) -> bool {
        match self {
            Self::Stock(_) => false,
            Self::Queue(_) => frame.contains("event: admitted") || frame.contains("event: soldout"),
        }
    }

    /// Whether a complete event frame, after the first, is a change this watch reports.
    fn changes(&self, frame: &str) -> bool {
        match self {
            // Stock changes are the stream's unnamed events.
            Self::Stock(tier) => !frame.contains("event: ") && frame.contains(&**tier),
            Self::Queue(_) => {
                frame.contains("event: position") || frame.contains("event: admitted")
            }
        }
    }
}

/// Counts a stream as open until it is dropped.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a client reports, and how it knows the round.
#[derive(Clone)]
struct Reporting {
    armed: watch::Receiver<u64>,
    ready: mpsc::Sender<()>,
    seen: mpsc::UnboundedSender<SystemTime>,
    open: Arc<AtomicUsize>,
    /// Stream requests answered 503 and asked for again.
    retried: Arc<AtomicUsize>,
}

/// One client: connects from `source`, opens `path`, waits for its first event, then reports
/// when it first sees a change in each armed round.
async fn client(
    source: IpAddr,
    gateway: SocketAddr,
    path: String,
    watch: Watch,
    mut to: Reporting,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    // A stream refused with 503 (the gateway shedding, or Redis slow to answer a crowd) is asked
    // for again after a second, as a client that keeps its place in line would.
    let (mut stream, mut buffer) = loop {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let mut stream = socket.connect(gateway).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {gateway}\r\n\r\n").as_bytes())
            .await?;
        let n = stream.read(&mut chunk).await?;
        if chunk[..n].starts_with(b"HTTP/1.1 503") {
            to.retried.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let status = chunk[..n].get(..12).unwrap_or_default();
        if status.starts_with(b"HTTP/1.1 ") && status != b"HTTP/1.1 200" {
            // Said once per process: a refused stream never opens, and the count alone would not
            // say why.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                let answer = String::from_utf8_lossy(&chunk[..n]);
                eprintln!(
                    "sse_fanout: {path} answered {}",
                    answer.lines().next().unwrap_or_default()
                );
            }
            return Ok(());
        }
        break (stream, chunk[..n].to_vec());
    };
    let mut opened: Option<Open> = None;
    let mut reported = 0;
    let mut arrived = SystemTime::now();
    loop {
        // Frames end in a blank line; act on complete ones only.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            if opened.is_none() && watch.opens(&text) {
                opened = Some(Open::count(&to.open));
                let _ = to.ready.send(()).await;
            } else if opened.is_some() && watch.changes(&text) {
                let round = *to.armed.borrow_and_update();
                if round > reported {
                    reported = round;
                    let _ = to.seen.send(arrived);
                }
            }
            if watch.ends(&text) {
                // The response is over; the connection may stay open for another request.
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        arrived = SystemTime::now();
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Streams open to the gateways, and what they report.
struct Clients {
    connected: usize,
    /// Stream requests answered 503 and asked for again before every stream was open.
    retried: usize,
    /// Streams open now: a waiting-room stream ends once its place is admitted.
    open: Arc<AtomicUsize>,
    /// Streams open when the current round was armed.
    expected: usize,
    round: watch::Sender<u64>,
    seen: mpsc::UnboundedReceiver<SystemTime>,
}

impl Clients {
    /// Opens `options.clients` streams following `watch` and waits (at most 30 s between two)
    /// until each has its first event.
    async fn open(options: &Options, watch: &Watch) -> Result<Self, String> {
        let paths = paths(options, watch).await?;
        let (round, armed) = watch::channel(0);
        let (ready_tx, mut ready_rx) = mpsc::channel(1024);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let retried = Arc::new(AtomicUsize::new(0));
        let reporting = Reporting {
            armed,
            ready: ready_tx,
            seen: seen_tx,
            open: Arc::clone(&open),
            retried: Arc::clone(&retried),
        };
        for (n, path) in paths.into_iter().enumerate() {
            let source = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + options.source_offset + (n % usize::from(options.sources.max(1))) as u8,
            ));
            let gateway = options.gateways[n % options.gateways.len()];
            tokio::spawn(client(
                source,
                gateway,
                path,
                watch.clone(),
                reporting.clone(),
            ));
        }
        drop(reporting);
        let mut connected = 0;
        while connected < options.clients {
            match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
                Ok(Some(())) => connected += 1,
                _ => break,
            }
        }
        Ok(Self {
            connected,
            retried: retried.load(Ordering::Relaxed),
            open,
            expected: connected,
            round,
            seen,
        })
    }

    /// Starts a round: the next change each client sees is reported. Returns the streams open.
    fn arm(&mut self) -> usize {
        while self.seen.try_recv().is_ok() {}
        self.round.send_modify(|round| *round += 1);
        self.expected = self.open.load(Ordering::Relaxed);
        self.expected
    }

    /// When each client saw the change, giving up on those that have not within 5 s.
    async fn arrivals(&mut self) -> Vec<SystemTime> {
        let mut arrivals = Vec::with_capacity(self.expected);
        while arrivals.len() < self.expected {
            match tokio::time::timeout(Duration::from_secs(5), self.seen.recv()).await {
                Ok(Some(arrived)) => arrivals.push(arrived),
                _ => break,
            }
        }
        arrivals
    }
}

/// The path each client streams: the stock stream, or, for a waiting room, the place it joins
/// (joined over a pool of 64 connections before any stream opens).
async fn paths(options: &Options, watch: &Watch) -> Result<Vec<String>, String> {
    let concert = match watch {
        Watch::Stock(_) => return Ok(vec!["/api/concerts/stream".to_owned(); options.clients]),
        Watch::Queue(concert) => *concert,
    };
    let http = reqwest::Client::new();
    let pool = Arc::new(Semaphore::new(64));
    let mut joins = tokio::task::JoinSet::new();
    // One person a place: emails of this process alone, since several join one room.
    let run = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..options.clients {
        let url = format!(
            "http://{}/api/concerts/{concert}/queue",
            options.gateways[n % options.gateways.len()]
        );
        let (http, pool) = (http.clone(), Arc::clone(&pool));
        let person = serde_json::json!({ "userEmail": format!("{run}-{n}@queue.example") });
        joins.spawn(async move {
            let _slot = pool.acquire().await.map_err(|e| e.to_string())?;
            let joined: Value = http
                .post(url)
                .json(&person)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let ticket = &joined["queueTicket"];
            let (Some(id), Some(token)) = (ticket["id"].as_str(), ticket["ticketToken"].as_str())
            else {
                return Err(format!("a join answered {joined}"));
            };
            Ok::<_, String>(format!("/api/queue/{id}/events?token={token}"))
        });
    }
    let mut paths = Vec::with_capacity(options.clients);
    while let Some(joined) = joins.join_next().await {
        paths.push(joined.map_err(|e| e.to_string())??);
    }
    Ok(paths)
}

fn unix_micros(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Rounds come from standard input (`arm`, then `collect`); answers go to standard output.
async fn follow(options: &Options, watch: &Watch) -> Result<(), String> {
    let mut clients = Clients::open(options, watch).await?;
    println!("ready {} {}", clients.connected, clients.retried);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        match line.trim() {
            "arm" => {
                let open = clients.arm();
                println!("armed {open}");
            }
            "collect" => {
                let arrivals: Vec<String> = clients
                    .arrivals()
                    .await
                    .into_iter()
                    .map(|at| unix_micros(at).to_string())
                    .collect();
                println!("arrivals {}", arrivals.join(","));
            }
            other => return Err(format!("expected `arm` or `collect`, got {other:?}")),
        }
    }
    Ok(())
}

/// Finds the cheapest tier with stock to book, and its price.
async fn tier_to_book(
    http: &reqwest::Client,
    gateway: SocketAddr,
    rounds: usize,
) -> Result<(Arc<str>, f64), String> {
    let catalog: Value = http
        .get(format!("http://{gateway}/api/concerts"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let tier = catalog["concerts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|concert| {
            concert["ticketTiers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|tier| tier["availableQuantity"].as_i64().unwrap_or(0) >= rounds as i64)
        .min_by(|a, b| {
            a["price"]
                .as_f64()
                .partial_cmp(&b["price"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or("no tier with stock to book")?;
    let id = tier["id"].as_str().ok_or("tier without id")?.into();
    let price = tier["price"].as_f64().ok_or("tier without price")?;
    Ok((id, price))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = Options::parse();
    if let Some(watch) = options.watch() {
        return follow(&options, &watch).await;
    }
    let http = reqwest::Client::new();
    let first = options.gateways[0];
    let (tier_id, price) = tier_to_book(&http, first, options.rounds).await?;

    let before: Vec<u64> = options
        .pids
        .iter()
        .filter_map(|pid| rss_kib(*pid))
        .collect();
    let opened = Instant::now();
    let mut clients = Clients::open(&options, &Watch::Stock(Arc::clone(&tier_id))).await?;
    let connected = clients.connected;
    println!(
        "sse_fanout: {connected} of {} clients streaming after {:.1} s",
        options.clients,
        opened.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<u64> = options
        .pids
        .iter()
        .filter_map(|pid| rss_kib(*pid))
        .collect();
    if !before.is_empty() && before.len() == after.len() && connected > 0 {
        let grown: i64 = after
            .iter()
            .zip(&before)
            .map(|(a, b)| *a as i64 - *b as i64)
            .sum();
        println!(
            "memory: gateways' RSS {} KiB -> {} KiB, {:.1} KiB per open stream",
            before.iter().sum::<u64>(),
            after.iter().sum::<u64>(),
            grown as f64 / connected as f64
        );
    }

    for round in 1..=options.rounds {
        clients.arm();
        let sent = SystemTime::now();
        let booked = http
            .post(format!("http://{first}/api/bookings"))
            .json(&json!({
                "ticketTierId": &*tier_id, "userEmail": format!("{}@fanout.example", Uuid::new_v4().simple()),
                "quantity": 1, "totalPrice": price, "idempotencyKey": Uuid::new_v4().to_string()
            }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if booked.status() != 202 {
            return Err(format!(
                "the triggering booking answered {}",
                booked.status()
            ));
        }
        let mut latencies: Vec<Duration> = clients
            .arrivals()
            .await
            .into_iter()
            .map(|at| at.duration_since(sent).unwrap_or_default())
            .collect();
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "round {round}: reached {} of {connected} clients; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
