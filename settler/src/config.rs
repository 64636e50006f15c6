//! The settler's configuration, read from the environment and validated before anything starts.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use booking::config::{self, Backends, ConfigError};

#[derive(Clone, Debug)]
pub struct SettlerConfig {
    /// `SETTLER_METRICS_ADDR`: where `/metrics` and the health endpoints listen.
    pub metrics_addr: SocketAddr,
    /// Redis, Postgres and the key prefix (shared with the gateway).
    pub backends: Backends,
    /// `PAYMENT_LATENCY_MS`: simulated provider latency, uniform in `min-max` milliseconds.
    pub payment_latency: RangeInclusive<u64>,
    /// `PAYMENT_FAILURE_RATE`: share of simulated payments declined, 0 to 1.
    pub payment_failure_rate: f64,
    /// `SETTLER_CONSUMER`: this process's consumer name in the group; stable across restarts
    /// (the pod name by default), so a restarted settler picks up what it held.
    pub consumer: String,
    /// `SETTLER_CONCURRENCY`: bookings in flight at most (payments are slow, so many at once).
    pub concurrency: usize,
    /// `SETTLER_BATCH_SIZE`: stream entries read, and rows written, per batch.
    pub batch_size: usize,
    /// `SETTLER_CLAIM_IDLE_MS`: how long an entry may sit unacknowledged with a consumer before
    /// another takes it over.
    pub claim_idle: Duration,
    /// `SETTLER_MAX_DELIVERIES`: deliveries after which an entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// `RECONCILE_INTERVAL_S`: how often the books are audited (stock against Postgres).
    pub reconcile_interval: Duration,
    /// `AUDIT_STUCK_AFTER_S`: how long a booking may wait unsettled before the audit calls it stuck.
    pub stuck_after: Duration,
}

fn latency_range(value: &str) -> Result<RangeInclusive<u64>, &'static str> {
    const HELP: &str = "expected milliseconds as MIN-MAX (e.g. 200-800) or one number";
    let (low, high) = value.split_once('-').unwrap_or((value, value));
    let low: u64 = low.trim().parse().map_err(|_| HELP)?;
    let high: u64 = high.trim().parse().map_err(|_| HELP)?;
    if low > high || high > 60_000 {
        return Err("MIN must not exceed MAX, and MAX must be at most 60000");
    }
    Ok(low..=high)
}

fn positive(max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |value| match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {max}")),
    }
}

impl SettlerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default_consumer = config::raw("HOSTNAME").unwrap_or_else(|| "settler".to_owned());
        Ok(Self {
            metrics_addr: config::from_str_or(
                "SETTLER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9100)),
            )?,
            backends: Backends::from_env()?,
            payment_latency: config::parse_or("PAYMENT_LATENCY_MS", 200..=800, latency_range)?,
            payment_failure_rate: config::parse_or(
                "PAYMENT_FAILURE_RATE",
                0.2,
                |value| match value.parse::<f64>() {
                    Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
                    _ => Err("expected a number from 0 to 1"),
                },
            )?,
            consumer: config::parse_or("SETTLER_CONSUMER", default_consumer, |value| {
                if value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(value.to_owned())
                } else {
                    Err("use 1-128 visible ASCII characters")
                }
            })?,
            concurrency: config::parse_or("SETTLER_CONCURRENCY", 4000, positive(100_000))? as usize,
            batch_size: config::parse_or("SETTLER_BATCH_SIZE", 500, positive(10_000))? as usize,
            claim_idle: Duration::from_millis(config::parse_or(
                "SETTLER_CLAIM_IDLE_MS",
                30_000,
                positive(3_600_000),
            )?),
            max_deliveries: config::parse_or("SETTLER_MAX_DELIVERIES", 5, positive(1_000))?,
            reconcile_interval: Duration::from_secs(config::parse_or(
                "RECONCILE_INTERVAL_S",
                30,
                positive(86_400),
            )?),
            stuck_after: Duration::from_secs(config::parse_or(
                "AUDIT_STUCK_AFTER_S",
                300,
                positive(86_400),
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ranges_parse() {
        assert_eq!(latency_range("200-800"), Ok(200..=800));
        assert_eq!(latency_range("5"), Ok(5..=5));
        assert!(latency_range("800-200").is_err());
        assert!(latency_range("a-b").is_err());
    }
}
