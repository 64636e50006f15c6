use std::process::ExitCode;

use booking::config::CONFIG_EXIT_CODE;
use gateway::{Application, GatewayConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match booking::telemetry::init().and_then(|()| GatewayConfig::from_env()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gateway: {error}");
            return ExitCode::from(CONFIG_EXIT_CODE);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(booking::signal::cancel_on_signal(shutdown.clone()));
    let result = async {
        let app = Application::build(config).await?;
        app.run_until_stopped(shutdown).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "gateway failed");
            ExitCode::FAILURE
        }
    }
}
