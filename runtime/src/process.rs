//! How a binary's process ends, the same for each: logging set up first (a bad `RUST_LOG` is
//! a configuration error, exit 2), then its work, whose error is logged before exit 1 (or exit
//! 2, when it is a configuration error only the whole configuration shows).

use std::future::Future;
use std::process::ExitCode;

use crate::config::{CONFIG_EXIT_CODE, ConfigError};

/// Runs `work` once logging is installed. It answers whether everything it checked held
/// (`Ok(false)` exits 1 without an error to log).
pub async fn run(process: &str, work: impl Future<Output = anyhow::Result<bool>>) -> ExitCode {
    if let Err(error) = crate::telemetry::init() {
        eprintln!("{process}: {error}");
        return ExitCode::from(CONFIG_EXIT_CODE);
    }
    match work.await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // A value that only the whole configuration shows to be wrong is found while building.
        Err(error) if error.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("{process}: {error}");
            ExitCode::from(CONFIG_EXIT_CODE)
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{process} failed");
            ExitCode::FAILURE
        }
    }
}
