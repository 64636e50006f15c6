use std::process::ExitCode;

use clap::Subcommand;
use gateway::{Application, GatewayConfig};
use runtime::config::{About, Cli};

/// Every request allocates a few dozen small buffers (keys, JSON, frames): in callgrind profiles
/// of bookings, glibc's malloc and free took about 30 % of the gateway's instructions, mimalloc's
/// about 9 % (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the API's OpenAPI 3.1 document and exits.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, config } = Cli::<GatewayConfig, Command>::parse(About {
        name: "gateway",
        version: env!("CARGO_PKG_VERSION"),
        summary: "The booking gateway: serves the API, the live feeds and the web app. Configured \
            by environment variables (see README), or the flags of the same names.",
    });
    if let Some(Command::Openapi) = command {
        println!(
            "{}",
            String::from_utf8_lossy(&gateway::routes::openapi_json())
        );
        return ExitCode::SUCCESS;
    }
    runtime::process::run("gateway", async {
        let app = Application::build(config).await?;
        app.run_until_stopped(runtime::signal::shutdown_token())
            .await?;
        Ok(true)
    })
    .await
}
