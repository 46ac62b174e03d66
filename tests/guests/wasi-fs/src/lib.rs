//! Test-only Trawl plugin that reads a file with `std::fs` at init, so the component imports
//! `wasi:filesystem/*`. The host must refuse to load it, naming `wasi:filesystem`; if it ever
//! loaded, it would keep every series.

wit_bindgen::generate!({ world: "trawl-plugin", path: "../../../wit" });

use exports::trawl::plugin::plugin::Guest;
use trawl::plugin::types::{Batch, Needs, Outcome, PluginError, PluginInfo};

struct WasiFs;

impl Guest for WasiFs {
    fn init(config_json: String) -> Result<PluginInfo, PluginError> {
        // The config is the path to read, so the read cannot be optimised away.
        let text = std::fs::read_to_string(config_json.trim_matches(['{', '}', '"', ' ']))
            .map_err(|e| PluginError::InvalidConfig(e.to_string()))?;
        Ok(PluginInfo {
            name: format!("wasi-fs ({} bytes)", text.len()),
            version: "0.1.0".into(),
            needs: Needs::empty(),
        })
    }

    fn process(batch: Batch) -> Result<Outcome, PluginError> {
        let n = batch.offsets.len().saturating_sub(1);
        Ok(Outcome {
            verdicts: vec![0; n],
            set_labels: Vec::new(),
            remove_labels: Vec::new(),
            set_values: Vec::new(),
        })
    }

    fn reset_symbols() {}
}

export!(WasiFs);
