//! The gateway's configuration, read from the environment and validated before anything starts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use redis_store::scripts::Replication;
use runtime::config::{self, Backends, ConfigError, Secret};

/// Where `make run` builds the web app, relative to the repository.
const DEFAULT_WEB_DIR: &str = "web/dist";

/// The gateway's configuration: every field from its environment variable (or the matching
/// `--flag`); a bad value names the variable and the process exits with status 2.
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayConfig {
    /// Where the gateway listens (port 0 picks a free one).
    #[arg(long = "addr", env = "GATEWAY_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Redis, Postgres and the key prefix.
    #[command(flatten)]
    pub backends: Backends,
    /// Insert the demo concerts into an empty catalog.
    #[arg(long, env = "SEED_DEMO", default_value = "true", value_parser = config::boolean,
        action = clap::ArgAction::Set)]
    pub seed_demo: bool,
    /// Bearer token of the bootstrap admin (32 bytes at least, 8 different characters at least,
    /// no spaces), who makes the API keys operators use; unset, only API keys are admitted.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_token: Option<Secret>,
    /// The sales dashboard is open to anyone; `false` opens it to `analyst` and `admin`
    /// credentials only.
    #[arg(long, env = "ANALYTICS_PUBLIC", default_value = "true", value_parser = config::boolean,
        action = clap::ArgAction::Set)]
    pub analytics_public: bool,
    /// Tickets one email may hold per concert; 0 turns the limit off.
    #[arg(long, env = "MAX_TICKETS_PER_CUSTOMER", default_value = "10",
        value_parser = count(0, 10_000))]
    pub max_tickets_per_customer: u32,
    /// Requests per second per client address (burst twice that); 0 is off.
    #[arg(long, env = "RATE_LIMIT_PER_IP", default_value = "100",
        value_parser = count(0, 1_000_000))]
    pub rate_limit_per_ip: u32,
    /// Bookings per second per client address (burst twice that); 0 is off.
    #[arg(long, env = "BOOKING_LIMIT_PER_IP", default_value = "10",
        value_parser = count(0, 1_000_000))]
    pub booking_limit_per_ip: u32,
    /// Addresses or networks, comma-separated, whose `X-Forwarded-For` is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = network)]
    pub trusted_proxies: Vec<IpNet>,
    /// Requests answered at once; past it the gateway sheds load with 503.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value = "4096", value_parser = capacity)]
    pub max_in_flight: usize,
    /// Event streams held open at once; past it new ones get 503.
    #[arg(long, env = "MAX_SSE_CLIENTS", default_value = "20000", value_parser = capacity)]
    pub max_sse_clients: usize,
    /// The built web app served at `/` (a directory holding `index.html`); unset, `web/dist` is
    /// served when it has been built, and the API alone otherwise.
    #[arg(long, env = "WEB_DIR", default_value = DEFAULT_WEB_DIR, value_parser = web_dir)]
    pub web_dir: ::std::option::Option<PathBuf>,
    /// Connections open at once; past it new ones wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value = "25000", value_parser = capacity)]
    pub max_connections: usize,
    /// How long a connection may take to send its first request's headers, and stay idle.
    #[command(flatten)]
    pub connection_limits: ConnectionLimits,
    /// How long a request body may take to arrive, in milliseconds.
    #[arg(long = "body-timeout-ms", env = "BODY_TIMEOUT_MS", default_value = "10000",
        value_parser = config::millis(100, 120_000))]
    pub body_timeout: Duration,
    /// Postgres connections the dashboard may use, apart from those of bookings and the catalog.
    #[arg(long, env = "ANALYTICS_DB_CONNECTIONS", default_value = "2", value_parser = count(1, 64))]
    pub analytics_connections: u32,
    /// After a shard's recovery, how long (seconds) settlers get to finish (or accept again)
    /// what they held before the bookings accepted earlier are looked for and any found nowhere
    /// counted as lost.
    #[arg(long = "loss-check-delay-s", env = "LOSS_CHECK_DELAY_S", default_value = "30",
        value_parser = config::seconds(1, 3_600))]
    pub loss_check_delay: Duration,
    /// How long (seconds) a waiting-room admission token stays valid.
    #[arg(long = "admission-ttl-s", env = "ADMISSION_TTL_S", default_value = "600",
        value_parser = config::seconds(10, 86_400))]
    pub admission_ttl: Duration,
    /// Origins, comma-separated (`https://tickets.example`), whose pages may call the API from a
    /// browser, or `*` for any; unset, same-origin only.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_parser = allowed_origins)]
    pub cors_allowed_origins: Option<AllowedOrigins>,
    /// The HMAC key (as `ADMIN_TOKEN`: 32 bytes, 8 different characters, no spaces) of
    /// admission tokens and of the draw; every gateway of a deployment needs the same one.
    /// Unset, a random key of this process.
    #[arg(long, env = "ADMISSION_SECRET", hide_env_values = true, value_parser = secret)]
    pub admission_secret: Option<Secret>,
    /// Replicas a booking, a queue ticket or an admission must reach before anyone is told of it
    /// (0: the master alone). A failover then loses none of them; one that cannot reach them in
    /// time is answered 503.
    #[arg(long, env = "REDIS_MIN_REPLICAS", default_value = "0", value_parser = count(0, 16))]
    pub redis_min_replicas: u32,
    /// How long (milliseconds) a booking may wait for those replicas; below `REDIS_TIMEOUT_MS`.
    #[arg(long = "redis-wait-ms", env = "REDIS_WAIT_MS", default_value = "100",
        value_parser = config::millis(1, 60_000))]
    pub redis_wait: Duration,
    /// Where the web app is reached from outside (`https://tickets.example`): the links in mails
    /// point there, and its host names every mail's `Message-ID`.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://127.0.0.1:8000", value_parser = public_url)]
    pub public_url: PublicUrl,
    /// The HMAC key (as `ADMIN_TOKEN`: 32 bytes, 8 different characters, no spaces) of
    /// customers' access tokens; every gateway of a deployment needs the same one. Unset, a
    /// random key of this process (a restart signs everyone out of their access tokens, not of
    /// their sessions).
    #[arg(long, env = "AUTH_SIGNING_KEY", hide_env_values = true, value_parser = secret)]
    pub auth_signing_key: Option<Secret>,
}

/// `PUBLIC_URL`: an origin, perhaps with a path under which the web app is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Without a trailing slash: `https://tickets.example`.
    pub base: String,
    /// `tickets.example`.
    pub host: String,
}

fn public_url(value: &str) -> Result<PublicUrl, String> {
    let base = value.trim().trim_end_matches('/');
    let uri: http::Uri = base.parse().map_err(|_| format!("{base:?} is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if uri.query().is_none() && !base.contains('@') => {
            Ok(PublicUrl {
                base: base.to_owned(),
                host: host.to_ascii_lowercase(),
            })
        }
        _ => Err(format!("{base:?}: expected http(s)://host[:port][/path]")),
    }
}

/// The limits every connection is held to.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ConnectionLimits {
    /// From accept to the first request's headers, in milliseconds.
    #[arg(long = "header-timeout-ms", env = "HEADER_TIMEOUT_MS", default_value = "5000",
        value_parser = config::millis(100, 120_000))]
    pub header_timeout: Duration,
    /// With no request in progress and no byte either way, in seconds.
    #[arg(long = "idle-timeout-s", env = "IDLE_TIMEOUT_S", default_value = "60",
        value_parser = config::seconds(1, 3_600))]
    pub idle_timeout: Duration,
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// Same-origin only: no CORS headers are ever sent.
    #[default]
    None,
    /// `*`: any origin. The API needs no cookies, so a wildcard grants nothing credentialed.
    Any,
    /// These origins exactly (`scheme://host[:port]`, lowercase).
    Listed(Vec<String>),
}

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins, or `*` alone.
pub fn allowed_origins(value: &str) -> Result<AllowedOrigins, String> {
    let items = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(origin)
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        return Ok(AllowedOrigins::None);
    }
    if items.iter().any(|item| item == "*") {
        return if items.len() == 1 {
            Ok(AllowedOrigins::Any)
        } else {
            Err("`*` stands alone".to_owned())
        };
    }
    Ok(AllowedOrigins::Listed(items))
}

/// One origin as configured: `http(s)://host[:port]`, nothing after it.
pub fn origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    if value == "*" {
        return Ok(value.to_owned());
    }
    let uri: http::Uri = value
        .parse()
        .map_err(|_| format!("{value:?} is not an origin"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri.path() == "/" && uri.query().is_none() && !value.contains('@');
    match uri.authority() {
        Some(_) if scheme_ok && bare => Ok(value.to_ascii_lowercase()),
        _ => Err(format!(
            "{value:?} is not an origin: expected http(s)://host[:port]"
        )),
    }
}

/// A whole number from `min` to `max`.
fn count(min: u32, max: u32) -> impl Fn(&str) -> Result<u32, String> + Clone {
    let parse = config::within(u64::from(min), u64::from(max), "a whole number");
    move |value| parse(value).map(|n| u32::try_from(n).unwrap_or(max))
}

fn capacity(value: &str) -> Result<usize, String> {
    config::within(1, 1_000_000, "a whole number")(value).map(|n| n as usize)
}

/// The shortest `ADMIN_TOKEN` or `ADMISSION_SECRET` accepted, in bytes.
pub const SECRET_MIN_BYTES: usize = 32;
/// The fewest different characters such a secret may have: `aaaa…` or a word repeated is long
/// and guessable; 32 random hex digits have 8 different ones but once in about 10^11.
const SECRET_MIN_DISTINCT: usize = 8;

/// `ADMIN_TOKEN` and `ADMISSION_SECRET`: long, varied, and printable without spaces (a bearer
/// token travels in a header). The reason never quotes the value.
fn secret(value: &str) -> Result<Secret, String> {
    let distinct = value
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if value.len() < SECRET_MIN_BYTES || distinct < SECRET_MIN_DISTINCT {
        Err(format!(
            "use at least {SECRET_MIN_BYTES} bytes with at least {SECRET_MIN_DISTINCT} different \
             characters (for example `openssl rand -hex 32`)"
        ))
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("spaces and control characters are not allowed".to_owned())
    } else {
        Ok(Secret::new(value))
    }
}

/// A directory holding the built web app; the default, `web/dist`, is optional.
fn web_dir(value: &str) -> Result<Option<PathBuf>, &'static str> {
    let dir = Path::new(value);
    if dir.join("index.html").is_file() {
        Ok(Some(dir.to_path_buf()))
    } else if value == DEFAULT_WEB_DIR {
        Ok(None)
    } else {
        Err("expected a directory holding the built web app (index.html)")
    }
}

/// An address (`10.0.0.7`) or a network (`10.0.0.0/8`).
fn network(item: &str) -> Result<IpNet, String> {
    let item = item.trim();
    item.parse::<IpNet>()
        .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{item:?} is neither an address nor a network"))
}

impl GatewayConfig {
    /// The configuration from the environment alone.
    pub fn from_env() -> Result<Self, clap::Error> {
        config::from_env()
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
            analytics_public: true,
            loss_check_delay: Duration::from_secs(30),
            admission_ttl: Duration::from_secs(600),
            cors_allowed_origins: None,
            // Gateways started on one config share it, as a deployment's gateways do.
            admission_secret: Some(Secret::new(hex::encode(rand::random::<[u8; 32]>()))),
            redis_min_replicas: 0,
            redis_wait: Duration::from_millis(100),
            public_url: PublicUrl {
                base: "http://127.0.0.1:8000".to_owned(),
                host: "127.0.0.1".to_owned(),
            },
            auth_signing_key: Some(Secret::new(hex::encode(rand::random::<[u8; 32]>()))),
        }
    }

    /// What a booking must reach before it is answered. The wait must end before Redis
    /// commands time out, or every wait that runs long would look like a Redis failure.
    pub fn replication(&self) -> Result<Replication, ConfigError> {
        if self.redis_min_replicas > 0 && self.redis_wait >= self.backends.redis_timeout {
            return Err(ConfigError::new(
                "REDIS_WAIT_MS",
                self.redis_wait.as_millis().to_string(),
                format!(
                    "must be below REDIS_TIMEOUT_MS ({} ms)",
                    self.backends.redis_timeout.as_millis()
                ),
            ));
        }
        Ok(Replication {
            replicas: u8::try_from(self.redis_min_replicas).unwrap_or(u8::MAX),
            wait: self.redis_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        assert!(
            network("10.0.0.0/8")
                .expect("network")
                .contains(&"10.1.2.3".parse::<IpAddr>().expect("ip"))
        );
        assert!(network(" 127.0.0.1").is_ok());
        assert!(network("::1").is_ok());
        assert!(network("nope").is_err());
    }

    #[test]
    fn public_urls_give_links_their_base_and_mails_their_host() {
        assert_eq!(
            public_url("https://Tickets.example/app/"),
            Ok(PublicUrl {
                base: "https://Tickets.example/app".to_owned(),
                host: "tickets.example".to_owned(),
            })
        );
        for bad in ["tickets.example", "ftp://x", "https://u@x", "https://x?a=1"] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(
            origin("https://Tickets.example").as_deref(),
            Ok("https://tickets.example")
        );
        assert_eq!(
            origin("http://localhost:3000/").as_deref(),
            Ok("http://localhost:3000")
        );
        for bad in [
            "tickets.example",
            "ftp://tickets.example",
            "https://tickets.example/app",
            "https://user@tickets.example",
            "https://tickets.example?x=1",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
        assert!(allowed_origins("*, https://a.example").is_err());
        assert_eq!(allowed_origins("*"), Ok(AllowedOrigins::Any));
        assert!(allowed_origins("https://a.example, nope").is_err());
    }

    #[test]
    fn the_admin_token_is_not_printed() {
        let mut config = GatewayConfig::embedded(config::from_env().expect("defaults"));
        config.admin_token = Some(Secret::new("a-token-of-thirty-two-bytes-or-more"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("thirty-two"), "{printed}");
    }
}
