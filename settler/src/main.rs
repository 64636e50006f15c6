use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use runtime::config::{About, Cli};
use settler::audit::{self, DriftWatch};
use settler::{Application, SettlerConfig};

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks every invariant twice, a second apart, prints the books, verifies the audit log's
    /// hash chain, and exits 1 if anything is broken.
    Audit,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, config } = Cli::<SettlerConfig, Command>::parse(About {
        name: "settler",
        version: env!("CARGO_PKG_VERSION"),
        summary: "Settles accepted bookings: charges payment, writes them to Postgres, applies the \
            outcome in Redis. Configured by environment variables (see README), or the flags of \
            the same names.",
    });
    runtime::process::run("settler", async {
        if let Some(Command::Audit) = command {
            return audit_once(config).await;
        }
        let app = Application::build(config).await?;
        app.run_until_stopped(runtime::signal::shutdown_token())
            .await?;
        Ok(true)
    })
    .await
}

/// `settler audit`: a drift must be seen in both checks (a booking settling between the reads of
/// one check shows as a passing drift); everything else is judged on the second.
async fn audit_once(config: SettlerConfig) -> anyhow::Result<bool> {
    let backends = &config.backends;
    let db = pg_store::connect(&backends.database_url, 2).await?;
    let redis = redis_store::connect(&backends.redis_url, 1, backends.redis_timeout).await?;
    let keys = backends.keyspace();
    let mut watch = DriftWatch::default();
    watch.observe(
        &audit::run(&redis, &db, &keys, config.stuck_after)
            .await?
            .tiers,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let books = audit::run(&redis, &db, &keys, config.stuck_after).await?;
    let drifted = watch.observe(&books.tiers);
    println!(
        "tier                                  shard   total  available  pending  confirmed  drift"
    );
    for tier in &books.tiers {
        let available = tier
            .available
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "{}  {:>5}  {:>6}  {:>9}  {:>7}  {:>9}  {:>5}",
            tier.tier_id,
            tier.shard,
            tier.total,
            available,
            tier.pending,
            tier.confirmed,
            tier.drift()
        );
    }
    let problems: Vec<String> = books
        .problems()
        .into_iter()
        .filter(|problem| {
            !problem.contains(": drift ")
                || drifted
                    .iter()
                    .any(|tier| problem.contains(&tier.tier_id.to_string()))
        })
        .collect();
    for problem in &problems {
        println!("problem: {problem}");
    }
    let chain = match pg_store::audit::verify(&db).await? {
        pg_store::audit::Chain::Intact { entries } => {
            println!("audit log: {entries} entries, the chain is intact");
            true
        }
        pg_store::audit::Chain::Broken { seq, reason } => {
            println!("problem: audit log entry {seq} is not what was recorded: {reason}");
            false
        }
    };
    println!(
        "{} tiers, {} shards, {} problems",
        books.tiers.len(),
        books.shards.len(),
        problems.len() + usize::from(!chain)
    );
    Ok(problems.is_empty() && chain)
}
