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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

#[derive(Debug)]
struct Options {
    gateways: Vec<SocketAddr>,
    clients: usize,
    sources: u8,
    rounds: usize,
    pids: Vec<u32>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        gateways: vec![SocketAddr::from(([127, 0, 0, 1], 8000))],
        clients: 1000,
        sources: 4,
        rounds: 5,
        pids: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag} {value:?}: expected {what}");
        match flag.as_str() {
            "--gateways" => {
                options.gateways = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("host:port,..."))?
            }
            "--clients" => options.clients = value.parse().map_err(|_| bad("a number"))?,
            "--sources" => {
                options.sources = value.parse().map_err(|_| bad("a number from 1 to 254"))?
            }
            "--rounds" => options.rounds = value.parse().map_err(|_| bad("a number"))?,
            "--pids" => {
                options.pids = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("pid,..."))?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(options)
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One client: connects from `source`, waits for its snapshot, then reports every time it sees a
/// stock event for `tier` after the current trigger.
async fn client(
    source: IpAddr,
    gateway: SocketAddr,
    tier: Arc<str>,
    mut trigger: watch::Receiver<Option<Instant>>,
    ready: mpsc::Sender<()>,
    seen: mpsc::UnboundedSender<Duration>,
) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(gateway).await?;
    stream
        .write_all(
            format!("GET /api/concerts/stream HTTP/1.1\r\nHost: {gateway}\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut snapshot = false;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        // Frames end in a blank line; act on complete ones only.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            if !snapshot && text.contains("event: snapshot") {
                snapshot = true;
                let _ = ready.send(()).await;
            } else if text.contains("event: stock")
                && text.contains(&*tier)
                && let Some(at) = *trigger.borrow_and_update()
            {
                let _ = seen.send(at.elapsed());
            }
        }
    }
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = options()?;
    let http = reqwest::Client::new();
    let first = options.gateways[0];
    let catalog: Value = http
        .get(format!("http://{first}/api/concerts"))
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
        .filter(|tier| tier["availableQuantity"].as_i64().unwrap_or(0) >= options.rounds as i64)
        .min_by(|a, b| {
            a["price"]
                .as_f64()
                .partial_cmp(&b["price"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or("no tier with stock to book")?;
    let tier_id: Arc<str> = tier["id"].as_str().ok_or("tier without id")?.into();
    let price = tier["price"].as_f64().ok_or("tier without price")?;

    let before: Vec<u64> = options
        .pids
        .iter()
        .filter_map(|pid| rss_kib(*pid))
        .collect();
    let (trigger_tx, trigger_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::channel(1024);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let opened = Instant::now();
    for n in 0..options.clients {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (n % usize::from(options.sources.max(1))) as u8,
        ));
        let gateway = options.gateways[n % options.gateways.len()];
        tokio::spawn(client(
            source,
            gateway,
            Arc::clone(&tier_id),
            trigger_rx.clone(),
            ready_tx.clone(),
            seen_tx.clone(),
        ));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < options.clients {
        match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => break,
        }
    }
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
        while seen_rx.try_recv().is_ok() {}
        trigger_tx.send_replace(Some(Instant::now()));
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
        let mut latencies = Vec::with_capacity(connected);
        while latencies.len() < connected {
            match tokio::time::timeout(Duration::from_secs(5), seen_rx.recv()).await {
                Ok(Some(latency)) => latencies.push(latency),
                _ => break,
            }
        }
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
