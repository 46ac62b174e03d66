//! Test-only Trawl plugin written with the SDK: keeps every series after reading its metric
//! name, so the plugin benchmark measures the SDK's own per-series cost (symbol table, views,
//! verdicts) on top of the boundary.

use trawl_plugin_sdk::{Batch, Error, Plugin, register_plugin};

/// Keeps everything; counts metric-name bytes so reading them cannot be optimised away.
struct KeepAll {
    name_bytes: u64,
}

impl Plugin for KeepAll {
    const NAME: &'static str = "sdk-keep";
    const VERSION: &'static str = "0.1.0";

    fn new(_config: serde_json::Value) -> Result<Self, Error> {
        Ok(KeepAll { name_bytes: 0 })
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        for series in batch.series() {
            self.name_bytes = self.name_bytes.wrapping_add(series.metric_name().len() as u64);
        }
        Ok(())
    }
}

register_plugin!(KeepAll);
