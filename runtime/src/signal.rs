//! SIGINT and SIGTERM (what Kubernetes sends) cancel the token the whole process watches.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM the process receives.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(cancel_on_signal(token.clone()));
    token
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
    token.cancel();
}
