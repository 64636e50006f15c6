//! The hostile clients of DESIGN's "Hostile and broken clients", as a load beside the bookings:
//! sockets that connect and say nothing (some with half an HTTP/2 preface), requests whose bodies
//! never finish, and a dashboard flood with a different window each time (so nothing is shared
//! or cached). Each kind is kept up, a closed socket replaced, until the siege is stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How hard the siege presses.
#[derive(Debug, Clone, Copy)]
pub struct Siege {
    pub silent_sockets: usize,
    pub slow_bodies: usize,
    pub dashboards_per_second: u64,
}

/// What the siege did, counted as it went.
#[derive(Debug, Default)]
pub struct Tally {
    /// Silent sockets and slow bodies the gateway closed (each replaced by a new one).
    pub closed: AtomicU64,
    pub dashboards: AtomicU64,
}

/// Runs `siege` against `target` until `stop`.
pub async fn run(target: SocketAddr, siege: Siege, stop: CancellationToken) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let mut tasks = JoinSet::new();
    for n in 0..siege.silent_sockets {
        let hello: &'static [u8] = if n % 4 == 0 {
            b"PRI * HTTP/2.0\r\n"
        } else {
            b""
        };
        tasks.spawn(hold(target, hello, Arc::clone(&tally), stop.clone()));
    }
    for _ in 0..siege.slow_bodies {
        let head = b"POST /api/bookings HTTP/1.1\r\nHost: siege\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"tick";
        tasks.spawn(hold(target, head, Arc::clone(&tally), stop.clone()));
    }
    tasks.spawn(dashboards(
        target,
        siege.dashboards_per_second,
        Arc::clone(&tally),
        stop.clone(),
    ));
    stop.cancelled().await;
    tasks.shutdown().await;
    tally
}

/// One socket that sends `hello` and then nothing, opened again each time the gateway closes it.
async fn hold(
    target: SocketAddr,
    hello: &'static [u8],
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let Ok(mut socket) = TcpStream::connect(target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if socket.write_all(hello).await.is_err() {
            continue;
        }
        let mut sink = [0u8; 1024];
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                read = tokio::io::AsyncReadExt::read(&mut socket, &mut sink) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
            }
        }
        tally.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Dashboards at `per_second`, each over a window no other one asks for.
async fn dashboards(
    target: SocketAddr,
    per_second: u64,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second.max(1)));
    let mut n = 0i64;
    while !stop.is_cancelled() {
        tick.tick().await;
        n += 1;
        let start = chrono::Utc::now() - chrono::Duration::seconds(3_600 + n % 3_000);
        let url = format!(
            "http://{target}/api/analytics/dashboard?period=hour&startDate={}",
            start.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let (client, tally) = (client.clone(), Arc::clone(&tally));
        tokio::spawn(async move {
            if client.get(url).send().await.is_ok() {
                tally.dashboards.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
