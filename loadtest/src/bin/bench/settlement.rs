//! Settlement's figures, measured by `cargo bench -p settler --bench settle`.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// The settle benchmark's figures, from the file it wrote.
#[derive(Debug)]
pub(crate) struct Settlement {
    pub per_second: f64,
    pub settled: u64,
    pub latency_ms: u64,
}

pub(crate) fn settlement(out: &Path) -> anyhow::Result<Settlement> {
    let path = out.join("settle.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (BENCH_RESULT={} cargo bench -p settler --bench settle writes it)",
            path.display(),
            path.display()
        )
    })?;
    let figures: Value = serde_json::from_str(&text)?;
    Ok(Settlement {
        per_second: figures["perSecond"].as_f64().context("perSecond")?,
        settled: figures["settled"].as_u64().context("settled")?,
        latency_ms: figures["paymentLatencyMs"]
            .as_u64()
            .context("paymentLatencyMs")?,
    })
}
