use std::process::ExitCode;
use std::time::Duration;

use booking::config::CONFIG_EXIT_CODE;
use settler::reconcile::{self, DriftWatch};
use settler::{Application, SettlerConfig};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: settler [reconcile]";

#[tokio::main]
async fn main() -> ExitCode {
    let reconcile_only = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("reconcile") => true,
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(CONFIG_EXIT_CODE);
        }
    };
    let config = match booking::telemetry::init().and_then(|()| SettlerConfig::from_env()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("settler: {error}");
            return ExitCode::from(CONFIG_EXIT_CODE);
        }
    };
    let result = if reconcile_only {
        reconcile_once(config).await
    } else {
        let shutdown = CancellationToken::new();
        tokio::spawn(booking::signal::cancel_on_signal(shutdown.clone()));
        async {
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown).await?;
            Ok(true)
        }
        .await
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "settler failed");
            ExitCode::FAILURE
        }
    }
}

/// `settler reconcile`: checks every tier twice, a second apart, prints the books and answers
/// whether they balance.
async fn reconcile_once(config: SettlerConfig) -> anyhow::Result<bool> {
    let backends = &config.backends;
    let db = booking::db::connect(&backends.database_url, 2).await?;
    let redis = booking::redis::connect(&backends.redis_url, 1, backends.redis_timeout)?;
    let keys = backends.keyspace();
    let mut watch = DriftWatch::default();
    watch.observe(&reconcile::check(&redis, &db, &keys).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let balances = reconcile::check(&redis, &db, &keys).await?;
    let drifted = watch.observe(&balances);
    println!(
        "tier                                     total  available  pending  confirmed  drift"
    );
    for tier in &balances {
        println!(
            "{}  {:>6}  {:>9}  {:>7}  {:>9}  {:>5}",
            tier.tier_id,
            tier.total,
            tier.available,
            tier.pending,
            tier.confirmed,
            tier.drift()
        );
    }
    println!("{} tiers, {} drifted", balances.len(), drifted.len());
    Ok(drifted.is_empty())
}
