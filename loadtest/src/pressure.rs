//! A lean HTTP/1.1 load generator for the benchmarks: hyper client connections kept alive, either
//! as fast as they answer (closed loop) or at a fixed rate (open loop). At a fixed rate each
//! request's latency counts from when it was due, not when it was sent, so a server that falls
//! behind shows it in the percentiles instead of silently slowing the generator down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Builds the `n`th request of a run.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// One run of load.
#[derive(Clone)]
pub struct Load {
    pub target: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    /// Requests per second to send at; `None` sends the next as soon as the last answered.
    pub rate: Option<f64>,
    pub request: MakeRequest,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("target", &self.target)
            .field("connections", &self.connections)
            .field("duration", &self.duration)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// What a run saw. Latencies are in microseconds.
#[derive(Debug)]
pub struct Outcome {
    pub elapsed: Duration,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, closed).
    pub failures: u64,
    pub latency: Histogram<u64>,
    /// The latencies of requests due in each second of the run.
    pub per_second: Vec<Histogram<u64>>,
}

impl Outcome {
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers with `status`.
    pub fn with_status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Answers per second over the run.
    pub fn throughput(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency percentile (0-100), milliseconds.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        self.latency.value_at_percentile(percentile) as f64 / 1e3
    }
}

/// One connection's share of the outcome, merged at the end.
struct Tally {
    statuses: BTreeMap<u16, u64>,
    failures: u64,
    latency: Histogram<u64>,
    per_second: Vec<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 us to 60 s at 3 significant digits; recording clamps anything slower.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

impl Tally {
    fn new(seconds: usize) -> Self {
        Self {
            statuses: BTreeMap::new(),
            failures: 0,
            latency: histogram(),
            per_second: (0..seconds).map(|_| histogram()).collect(),
        }
    }

    fn record(&mut self, second: usize, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(micros);
        if let Some(bucket) = self.per_second.get_mut(second) {
            bucket.saturating_record(micros);
        }
    }

    fn merge(&mut self, other: Tally) {
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.failures += other.failures;
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            let _ = mine.add(theirs);
        }
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(target: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads the whole answer; `None` when the connection failed.
async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Option<u16> {
    sender.ready().await.ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// Runs `load` and gathers what it saw.
pub async fn run(load: Load) -> Outcome {
    let seconds = load.duration.as_secs().max(1) as usize;
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + load.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let load = load.clone();
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::new(seconds);
            let mut sender = None;
            tokio::time::sleep_until(start).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let due = match load.rate {
                    Some(rate) => start + Duration::from_secs_f64(n as f64 / rate),
                    None => Instant::now(),
                };
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                if sender.is_none() {
                    sender = connect(load.target).await.ok();
                }
                let answer = match sender.as_mut() {
                    Some(open) => exchange(open, (load.request)(n)).await,
                    None => None,
                };
                match answer {
                    Some(status) => {
                        *tally.statuses.entry(status).or_default() += 1;
                        let second = due.duration_since(start).as_secs() as usize;
                        tally.record(second, due.elapsed());
                    }
                    None => {
                        tally.failures += 1;
                        sender = None;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::new(seconds);
    for worker in workers {
        if let Ok(tally) = worker.await {
            total.merge(tally);
        }
    }
    Outcome {
        elapsed: start.elapsed(),
        statuses: total.statuses,
        failures: total.failures,
        latency: total.latency,
        per_second: total.per_second,
    }
}
