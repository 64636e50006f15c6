//! The gateway's configuration, read from the environment and validated before anything starts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use booking::config::{self, Backends, ConfigError, Secret};

use crate::http::connection::ConnectionLimits;
use crate::waiting_room::token::AdmissionSecret;

/// Where `make run` builds the web app, relative to the repository.
const DEFAULT_WEB_DIR: &str = "web/dist";

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `GATEWAY_ADDR`: where the gateway listens (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Redis, Postgres and the key prefix.
    pub backends: Backends,
    /// `SEED_DEMO`: insert the demo concerts into an empty catalog.
    pub seed_demo: bool,
    /// `ADMIN_TOKEN`: bearer token of the admin API; unset turns the admin API off.
    pub admin_token: Option<Secret>,
    /// `MAX_TICKETS_PER_CUSTOMER`: tickets one email may hold per concert; 0 turns the limit off.
    pub max_tickets_per_customer: u32,
    /// `RATE_LIMIT_PER_IP`: requests per second per client address (burst twice that); 0 is off.
    pub rate_limit_per_ip: u32,
    /// `BOOKING_LIMIT_PER_IP`: bookings per second per client address (burst twice that); 0 is off.
    pub booking_limit_per_ip: u32,
    /// `TRUSTED_PROXIES`: addresses or networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `MAX_IN_FLIGHT`: requests answered at once; past it the gateway sheds load with 503.
    pub max_in_flight: usize,
    /// `MAX_SSE_CLIENTS`: event streams held open at once; past it new ones get 503.
    pub max_sse_clients: usize,
    /// The built web app served at `/`; `None` serves the API alone.
    pub web_dir: Option<PathBuf>,
    /// `MAX_CONNECTIONS`: connections open at once; past it new ones wait to be accepted.
    pub max_connections: usize,
    /// `HEADER_TIMEOUT_MS` (from accept to a first request's headers) and `IDLE_TIMEOUT_S`
    /// (a connection with no request in progress and no traffic).
    pub connection_limits: ConnectionLimits,
    /// `BODY_TIMEOUT_MS`: how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// `ANALYTICS_DB_CONNECTIONS`: Postgres connections the dashboard may use, apart from those
    /// of bookings and the catalog.
    pub analytics_connections: u32,
    /// `LOSS_CHECK_DELAY_S`: after a shard's recovery, how long settlers get to finish (or accept
    /// again) what they held before the bookings accepted earlier are looked for and any found
    /// nowhere counted as lost.
    pub loss_check_delay: Duration,
    /// `ADMISSION_TTL_S`: how long a waiting-room admission token stays valid.
    pub admission_ttl: Duration,
    /// `ADMISSION_SECRET`: the HMAC key of admission tokens and of the draw; every gateway of a
    /// deployment needs the same one. Unset, a random key of this process.
    pub admission_secret: AdmissionSecret,
}

fn per_second(value: &str) -> Result<u32, &'static str> {
    match value.parse::<u32>() {
        Ok(rate @ 0..=1_000_000) => Ok(rate),
        _ => Err("expected a whole number of requests per second, 0 to 1000000 (0 turns it off)"),
    }
}

/// A whole number of `unit` from `min` to `max`.
fn within(min: u64, max: u64, unit: &'static str) -> impl Fn(&str) -> Result<u64, String> {
    move |value| match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected {unit} from {min} to {max}")),
    }
}

fn capacity(value: &str) -> Result<usize, &'static str> {
    match value.parse::<usize>() {
        Ok(count @ 1..=1_000_000) => Ok(count),
        _ => Err("expected a whole number from 1 to 1000000"),
    }
}

/// `WEB_DIR` must hold a built app; unset, `web/dist` is served when it has been built.
fn web_dir() -> Result<Option<PathBuf>, ConfigError> {
    let built = |dir: &Path| dir.join("index.html").is_file();
    match config::raw("WEB_DIR") {
        Some(value) if built(Path::new(&value)) => Ok(Some(PathBuf::from(value))),
        Some(value) => Err(ConfigError::new(
            "WEB_DIR",
            value,
            "expected a directory holding the built web app (index.html)",
        )),
        None => Ok(Some(PathBuf::from(DEFAULT_WEB_DIR)).filter(|dir| built(dir))),
    }
}

/// A comma-separated list of addresses (`10.0.0.7`) and networks (`10.0.0.0/8`).
fn networks(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither an address nor a network"))
        })
        .collect()
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::from_str_or("GATEWAY_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            backends: Backends::from_env()?,
            seed_demo: config::bool_or("SEED_DEMO", true)?,
            admin_token: config::parse_or("ADMIN_TOKEN", None, |token| {
                if token.len() >= 16 {
                    Ok(Some(Secret::new(token)))
                } else {
                    Err("use at least 16 characters")
                }
            })?,
            max_tickets_per_customer: config::parse_or("MAX_TICKETS_PER_CUSTOMER", 10, |value| {
                match value.parse::<u32>() {
                    Ok(limit @ 0..=10_000) => Ok(limit),
                    _ => Err("expected a whole number from 0 (off) to 10000"),
                }
            })?,
            rate_limit_per_ip: config::parse_or("RATE_LIMIT_PER_IP", 100, per_second)?,
            booking_limit_per_ip: config::parse_or("BOOKING_LIMIT_PER_IP", 10, per_second)?,
            trusted_proxies: config::parse_or("TRUSTED_PROXIES", Vec::new(), networks)?,
            max_in_flight: config::parse_or("MAX_IN_FLIGHT", 4096, capacity)?,
            max_sse_clients: config::parse_or("MAX_SSE_CLIENTS", 20_000, capacity)?,
            web_dir: web_dir()?,
            max_connections: config::parse_or("MAX_CONNECTIONS", 25_000, capacity)?,
            connection_limits: ConnectionLimits {
                header_timeout: Duration::from_millis(config::parse_or(
                    "HEADER_TIMEOUT_MS",
                    5_000,
                    within(100, 120_000, "milliseconds"),
                )?),
                idle_timeout: Duration::from_secs(config::parse_or(
                    "IDLE_TIMEOUT_S",
                    60,
                    within(1, 3_600, "seconds"),
                )?),
            },
            body_timeout: Duration::from_millis(config::parse_or(
                "BODY_TIMEOUT_MS",
                10_000,
                within(100, 120_000, "milliseconds"),
            )?),
            analytics_connections: u32::try_from(config::parse_or(
                "ANALYTICS_DB_CONNECTIONS",
                2,
                within(1, 64, "connections"),
            )?)
            .unwrap_or(2),
            loss_check_delay: Duration::from_secs(config::parse_or(
                "LOSS_CHECK_DELAY_S",
                30,
                within(1, 3_600, "seconds"),
            )?),
            admission_ttl: Duration::from_secs(config::parse_or(
                "ADMISSION_TTL_S",
                600,
                within(10, 86_400, "seconds"),
            )?),
            admission_secret: config::parse_or(
                "ADMISSION_SECRET",
                AdmissionSecret::random(),
                |key| AdmissionSecret::new(key.as_bytes()).ok_or("use at least 32 bytes"),
            )?,
        })
    }

    /// A gateway run inside another process (tests, benchmarks): a free port of 127.0.0.1, no
    /// demo data, no admin API, no rate limits and no load shedding to speak of, no web app.
    /// Callers set whatever else they need on top.
    pub fn embedded(backends: Backends) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backends,
            seed_demo: false,
            admin_token: None,
            max_tickets_per_customer: 10,
            rate_limit_per_ip: 0,
            booking_limit_per_ip: 0,
            trusted_proxies: Vec::new(),
            max_in_flight: 100_000,
            max_sse_clients: 100_000,
            web_dir: None,
            max_connections: 100_000,
            connection_limits: ConnectionLimits {
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
            },
            body_timeout: Duration::from_secs(10),
            analytics_connections: 2,
            loss_check_delay: Duration::from_secs(30),
            admission_ttl: Duration::from_secs(600),
            admission_secret: AdmissionSecret::random(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let parsed = networks("10.0.0.0/8, 127.0.0.1,::1").expect("valid");
        assert_eq!(parsed.len(), 3);
        assert!(parsed[0].contains(&"10.1.2.3".parse::<IpAddr>().expect("ip")));
        assert!(networks("10.0.0.0/8,nope").is_err());
        assert_eq!(networks("").map(|n| n.len()), Ok(0));
    }
}
