//! The settler's configuration, read from the environment and validated before anything starts.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use lettre::message::Mailbox;
use runtime::config::{self, Backends};

use crate::mail::Delivery;

/// The settler's configuration: every field from its environment variable (or the matching
/// `--flag`); a bad value names the variable and the process exits with status 2.
#[derive(Clone, Debug, clap::Args)]
pub struct SettlerConfig {
    /// Where `/metrics` and the health endpoints listen.
    #[arg(long, env = "SETTLER_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: SocketAddr,
    /// Redis, Postgres and the key prefix (shared with the gateway).
    #[command(flatten)]
    pub backends: Backends,
    /// Simulated provider latency, uniform in `MIN-MAX` milliseconds (or one number).
    #[arg(long = "payment-latency-ms", env = "PAYMENT_LATENCY_MS", default_value = "200-800",
        value_parser = latency_range)]
    pub payment_latency: RangeInclusive<u64>,
    /// Share of simulated payments declined, 0 to 1.
    #[arg(long, env = "PAYMENT_FAILURE_RATE", default_value = "0.2", value_parser = failure_rate)]
    pub payment_failure_rate: f64,
    /// This process's consumer name in the group; stable across restarts (the pod name,
    /// `HOSTNAME`, by default), so a restarted settler picks up what it held.
    #[arg(long, env = "SETTLER_CONSUMER", default_value_t = default_consumer(),
        value_parser = consumer)]
    pub consumer: String,
    /// Bookings in flight at most (payments are slow, so many at once).
    #[arg(long, env = "SETTLER_CONCURRENCY", default_value = "4000",
        value_parser = positive(100_000))]
    pub concurrency: usize,
    /// Stream entries read, and rows written, per batch.
    #[arg(long, env = "SETTLER_BATCH_SIZE", default_value = "500", value_parser = positive(10_000))]
    pub batch_size: usize,
    /// How long (milliseconds) an entry may sit unacknowledged with a consumer before another
    /// takes it over.
    #[arg(long = "claim-idle-ms", env = "SETTLER_CLAIM_IDLE_MS", default_value = "30000",
        value_parser = config::millis(1, 3_600_000))]
    pub claim_idle: Duration,
    /// Deliveries after which an entry is resolved as a dead letter.
    #[arg(long, env = "SETTLER_MAX_DELIVERIES", default_value = "5",
        value_parser = config::within(1, 1_000, "a whole number"))]
    pub max_deliveries: u64,
    /// How often (seconds) the books are audited (stock against Postgres) and concerts' new held
    /// counts given their expiry.
    #[arg(long = "reconcile-interval-s", env = "RECONCILE_INTERVAL_S", default_value = "30",
        value_parser = config::seconds(1, 86_400))]
    pub reconcile_interval: Duration,
    /// How long (seconds) a booking may wait unsettled before the audit calls it stuck.
    #[arg(long = "stuck-after-s", env = "AUDIT_STUCK_AFTER_S", default_value = "300",
        value_parser = config::seconds(1, 86_400))]
    pub stuck_after: Duration,
    /// The SMTP server mails go to (`smtp://host:port`, `smtps://user:pass@host`, or
    /// `smtp://host?tls=required` for STARTTLS); unset, mails are logged instead of sent.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, value_parser = smtp_url)]
    pub smtp_url: Option<String>,
    /// The sender of every mail (`Tickets <tickets@example.com>`).
    #[arg(long, env = "MAIL_FROM", default_value = "Tickets <tickets@localhost>",
        value_parser = mailbox)]
    pub mail_from: Mailbox,
}

fn smtp_url(value: &str) -> Result<String, String> {
    Delivery::smtp(value)
        .map(|_| value.to_owned())
        .map_err(|_| {
            "expected smtp://host:port or smtps://host (optionally user:password@)".to_owned()
        })
}

fn mailbox(value: &str) -> Result<Mailbox, String> {
    value
        .parse()
        .map_err(|_| "expected an address, optionally with a name: Name <address>".to_owned())
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

fn failure_rate(value: &str) -> Result<f64, &'static str> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err("expected a number from 0 to 1"),
    }
}

fn default_consumer() -> String {
    config::raw("HOSTNAME").unwrap_or_else(|| "settler".to_owned())
}

fn consumer(value: &str) -> Result<String, &'static str> {
    if !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err("use 1-128 visible ASCII characters")
    }
}

fn positive(max: u64) -> impl Fn(&str) -> Result<usize, String> + Clone {
    let parse = config::within(1, max, "a whole number");
    move |value| parse(value).map(|n| n as usize)
}

impl SettlerConfig {
    /// The configuration from the environment alone.
    pub fn from_env() -> Result<Self, clap::Error> {
        config::from_env()
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
