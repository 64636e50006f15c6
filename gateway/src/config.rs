//! The gateway's configuration, read from the environment and validated before anything starts.

use std::net::SocketAddr;

use booking::config::{self, Backends, ConfigError};

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `GATEWAY_ADDR`: where the gateway listens (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Redis, Postgres and the key prefix.
    pub backends: Backends,
    /// `SEED_DEMO`: insert the demo concerts into an empty catalog.
    pub seed_demo: bool,
    /// `ADMIN_TOKEN`: bearer token of the admin API; unset turns the admin API off.
    pub admin_token: Option<String>,
    /// `MAX_TICKETS_PER_CUSTOMER`: tickets one email may hold per concert; 0 turns the limit off.
    pub max_tickets_per_customer: u32,
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::from_str_or("GATEWAY_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            backends: Backends::from_env()?,
            seed_demo: config::bool_or("SEED_DEMO", true)?,
            admin_token: config::parse_or("ADMIN_TOKEN", None, |token| {
                if token.len() >= 16 {
                    Ok(Some(token.to_owned()))
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
        })
    }
}
