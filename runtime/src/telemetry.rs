//! Logs: JSON lines on stdout, filtered by `RUST_LOG` (default `info`). Metrics: the Prometheus
//! recorder each binary installs once.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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

/// What `/metrics` answers: the process' own metrics and the CPU and memory it uses
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read at each scrape.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    process: std::sync::Arc<metrics_process::Collector>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// The Prometheus text of every metric, the process' read now.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }
}

/// Installs the Prometheus recorder, once per process, with histogram `buckets` by metric name,
/// then calls `describe` to register help texts. Later calls return the first exporter.
pub fn install_metrics(buckets: &[(&str, &[f64])], describe: fn()) -> Exporter {
    static EXPORTER: OnceLock<Exporter> = OnceLock::new();
    EXPORTER
        .get_or_init(|| {
            let builder =
                buckets
                    .iter()
                    .try_fold(PrometheusBuilder::new(), |builder, (name, bounds)| {
                        builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), bounds)
                    });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(error) => {
                    tracing::error!(%error, "metric buckets refused; using the defaults");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            Exporter {
                handle,
                process: std::sync::Arc::new(process),
            }
        })
        .clone()
}
