//! Logs: JSON lines on stdout, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::ConfigError;

/// Installs the global subscriber; a bad `RUST_LOG` is a configuration error.
pub fn init() -> Result<(), ConfigError> {
    let filter = match crate::config::raw("RUST_LOG") {
        None => EnvFilter::new("info"),
        Some(value) => EnvFilter::try_new(&value)
            .map_err(|error| ConfigError::new("RUST_LOG", value, error))?,
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .init();
    Ok(())
}
