//! `redact`: hashes or drops the values of sensitive labels (email, user id, …) before they
//! leave the node.
//!
//! Config:
//! ```json
//! {"hash": ["email"], "drop": ["user_id"], "salt": "a-long-random-secret", "hash_length": 16}
//! ```
//! `hash` labels get the first `hash_length` hex digits (8–64, default 16) of
//! SHA-256(`salt` ‖ value): equal values stay equal, so series keep their identity, while the
//! salt stops dictionary look-ups of common values. `drop` labels are removed. Best in the
//! `relabel` stage (hashed once per new series) or the `write` stage.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use trawl_plugin_sdk::{Batch, Error, Plugin, is_valid_label_name, parse_config, register_plugin};

/// The plugin's config, as documented in the crate docs and README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    hash: Vec<String>,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    salt: String,
    #[serde(default = "default_hash_length")]
    hash_length: usize,
}

fn default_hash_length() -> usize {
    16
}

/// Digests remembered across batches, so a filter-stage plugin does not hash the same value on
/// every scrape; cleared when it reaches this many values.
const DIGEST_CACHE_LIMIT: usize = 16_384;

/// The plugin: see the crate docs.
pub struct Redact {
    hash: Vec<String>,
    drop: Vec<String>,
    salt: String,
    hash_length: usize,
    digests: HashMap<String, String>,
}

impl Plugin for Redact {
    const NAME: &'static str = "redact";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, Error> {
        let config: Config = parse_config(config)?;
        if config.hash.is_empty() && config.drop.is_empty() {
            return Err(Error::config("nothing to redact: set hash or drop"));
        }
        for (key, names) in [("hash", &config.hash), ("drop", &config.drop)] {
            for name in names {
                if name == "__name__" {
                    return Err(Error::config(format!("{key}: __name__ cannot be redacted")));
                }
                if !is_valid_label_name(name) {
                    return Err(Error::config(format!("{key}: invalid label name {name:?}")));
                }
            }
        }
        if let Some(both) = config.hash.iter().find(|name| config.drop.contains(name)) {
            return Err(Error::config(format!("{both:?} is in both hash and drop")));
        }
        if !config.hash.is_empty() && config.salt.is_empty() {
            return Err(Error::config(
                "salt: required with hash (unsalted hashes of emails are easy to reverse)",
            ));
        }
        if !(8..=64).contains(&config.hash_length) {
            return Err(Error::config(format!(
                "hash_length: {} is not within 8..=64 hex digits",
                config.hash_length
            )));
        }
        Ok(Redact {
            hash: config.hash,
            drop: config.drop,
            salt: config.salt,
            hash_length: config.hash_length,
            digests: HashMap::new(),
        })
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        for series in batch.series() {
            let index = series.index();
            for name in &self.drop {
                batch.remove_label(index, name)?;
            }
            for name in &self.hash {
                if let Some(value) = series.get(name) {
                    let digest = digest(&mut self.digests, &self.salt, self.hash_length, value);
                    batch.set_label(index, name, digest)?;
                }
            }
        }
        Ok(())
    }
}

/// The truncated hex SHA-256 of `salt ‖ value`, from `cache` when seen before.
fn digest<'c>(cache: &'c mut HashMap<String, String>, salt: &str, length: usize, value: &str) -> &'c str {
    if !cache.contains_key(value) {
        if cache.len() >= DIGEST_CACHE_LIMIT {
            cache.clear();
        }
        let sum = Sha256::new()
            .chain_update(salt.as_bytes())
            .chain_update(value.as_bytes())
            .finalize();
        let mut hex = String::with_capacity(64);
        for byte in sum {
            hex.push(HEX[usize::from(byte >> 4)]);
            hex.push(HEX[usize::from(byte & 0x0f)]);
        }
        hex.truncate(length);
        cache.insert(value.to_owned(), hex);
    }
    cache.get(value).map_or("", String::as_str)
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

register_plugin!(Redact);

#[cfg(test)]
mod tests;
