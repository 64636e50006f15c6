//! Typed environment variables. Every binary reads its whole configuration before binding a port;
//! a bad value is reported with the variable's name and the process exits with status 2.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::keys::Keyspace;

/// A configuration variable that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &'static str, value: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            name,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// Exit status for a configuration error, distinct from a crash (1) so supervisors can tell them apart.
pub const CONFIG_EXIT_CODE: u8 = 2;

/// The variable's value, or `None` when it is unset or empty.
pub fn raw(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Parses `name` with `parse`, or returns `default` when it is unset.
pub fn parse_or<T, E: fmt::Display>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    match raw(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|reason| ConfigError::new(name, value, reason)),
    }
}

/// Parses `name` with its `FromStr`, or returns `default` when it is unset.
pub fn from_str_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    parse_or(name, default, str::parse)
}

/// A boolean written as `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`.
pub fn bool_or(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    parse_or(name, default, |value| {
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false"),
        }
    })
}

/// A Redis key prefix: letters, digits, `_`, `-` and `.`, so it can never open a hash tag.
pub fn key_prefix(name: &'static str, default: &str) -> Result<String, ConfigError> {
    parse_or(name, default.to_owned(), |value| {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(value.to_owned())
        } else {
            Err("use 1-64 letters, digits, '_', '-' or '.'")
        }
    })
}

/// A value that must never reach a log: its `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// `url` with the password of its user info (`user:password@`) hidden, for logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:..@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// URL schemes fred understands: plain, TLS, cluster and sentinel deployments.
const REDIS_SCHEMES: [&str; 5] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
];

/// Where Redis and Postgres are and how their data is named: the variables every binary reads.
/// Its `Debug` hides the URLs' passwords.
#[derive(Clone)]
pub struct Backends {
    /// `REDIS_URL`: Redis, or one node of a cluster.
    pub redis_url: String,
    /// `DATABASE_URL`: Postgres; the database is created if missing.
    pub database_url: String,
    /// `KEY_PREFIX`: prefix of every Redis key and channel.
    pub key_prefix: String,
    /// `REDIS_SHARDS`: logical shards new concerts are spread over (1-128); the settler reads
    /// every shard's stream, so both binaries must agree on it.
    pub redis_shards: u8,
    /// `REDIS_TIMEOUT_MS`: how long a Redis command may take before it counts as failed.
    pub redis_timeout: Duration,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("redis_url", &redacted(&self.redis_url))
            .field("database_url", &redacted(&self.database_url))
            .field("key_prefix", &self.key_prefix)
            .field("redis_shards", &self.redis_shards)
            .field("redis_timeout", &self.redis_timeout)
            .finish()
    }
}

impl Backends {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            redis_url: parse_or("REDIS_URL", "redis://127.0.0.1:6379".to_owned(), |url| {
                let scheme = url.split("://").next().unwrap_or_default();
                if !REDIS_SCHEMES.contains(&scheme) {
                    return Err(format!("the scheme must be one of {REDIS_SCHEMES:?}"));
                }
                fred::prelude::Config::from_url(url)
                    .map(|_| url.to_owned())
                    .map_err(|error| error.to_string())
            })?,
            database_url: parse_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/tickets".to_owned(),
                |url| {
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                        return Err("the scheme must be postgres:// or postgresql://".to_owned());
                    }
                    PgConnectOptions::from_str(url)
                        .map(|_| url.to_owned())
                        .map_err(|error| error.to_string())
                },
            )?,
            key_prefix: key_prefix("KEY_PREFIX", "tix")?,
            redis_shards: parse_or("REDIS_SHARDS", 16, |value| match value.parse::<u8>() {
                Ok(shards @ 1..=128) => Ok(shards),
                _ => Err("expected a whole number from 1 to 128"),
            })?,
            redis_timeout: parse_or("REDIS_TIMEOUT_MS", Duration::from_millis(500), |value| {
                match value.parse::<u64>() {
                    Ok(ms @ 1..=60_000) => Ok(Duration::from_millis(ms)),
                    _ => Err("expected milliseconds from 1 to 60000"),
                }
            })?,
        })
    }

    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(self.key_prefix.clone(), self.redis_shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_variable() {
        let error = ConfigError::new("GATEWAY_ADDR", "nope", "invalid socket address syntax");
        assert_eq!(
            error.to_string(),
            "GATEWAY_ADDR=\"nope\" is invalid: invalid socket address syntax"
        );
    }

    #[test]
    fn secrets_and_passwords_stay_out_of_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
        let backends = Backends {
            redis_url: "redis://default:hunter2@cache:6379/0".to_owned(),
            database_url: "postgres://app:hunter2@db:5432/tickets".to_owned(),
            key_prefix: "tix".to_owned(),
            redis_shards: 1,
            redis_timeout: Duration::from_millis(500),
        };
        let printed = format!("{backends:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://app:..@db:5432/tickets"),
            "{printed}"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }
}
