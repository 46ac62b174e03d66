//! The replication flags of `trawl-collector`, named as Thanos Receive's.

use std::path::PathBuf;
use std::time::Duration;

use trawl_model::duration::parse_duration;

use super::ReplicationConfig;
use crate::collector::ReplicationOptions;
use crate::hashring::{Algorithm, HashringSettings};

/// `--receive.hashrings-file` and its companions; flattened into the collector's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicationFlags {
    /// Hashrings file in Thanos's hashrings.json shape; each series goes to its
    /// --receive.replication-factor owners in it. Reloaded on change. Without it, every series
    /// is stored here.
    #[arg(long = "receive.hashrings-file", value_name = "FILE", requires = "local_endpoint")]
    hashrings_file: Option<PathBuf>,
    /// Placement of hashrings without their own "algorithm": hashmod (Thanos's default) or
    /// ketama.
    #[arg(
        long = "receive.hashrings-algorithm",
        value_enum,
        default_value = "hashmod",
        value_name = "ALGORITHM"
    )]
    algorithm: Algorithm,
    /// Re-read the hashrings file this often even without a change notification (Thanos's
    /// default).
    #[arg(
        long = "receive.hashrings-file-refresh-interval",
        default_value = "5m",
        value_parser = positive_duration,
        value_name = "DURATION"
    )]
    refresh_interval: Duration,
    /// This collector's entry in the hashrings file's endpoints (its HTTP host:port as peers
    /// reach it).
    #[arg(long = "receive.local-endpoint", value_name = "HOST:PORT")]
    local_endpoint: Option<String>,
    /// Owners of each series; a write succeeds when RF/2+1 of them stored every series.
    #[arg(
        long = "receive.replication-factor",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..),
        requires = "hashrings_file",
        value_name = "N"
    )]
    replication_factor: u16,
    /// Longest time the forwards of one write request may take, retries included (Thanos's
    /// default; well under the agents' 30s remote timeout).
    #[arg(
        long = "receive-forward-timeout",
        default_value = "5s",
        value_parser = positive_duration,
        value_name = "DURATION"
    )]
    forward_timeout: Duration,
}

impl ReplicationFlags {
    /// The replication options, `None` without a hashrings file.
    pub fn options(self) -> Option<ReplicationOptions> {
        let file = self.hashrings_file?;
        Some(ReplicationOptions {
            hashrings: HashringSettings {
                file,
                algorithm: self.algorithm,
                replication_factor: usize::from(self.replication_factor),
                refresh_interval: self.refresh_interval,
            },
            replication: ReplicationConfig {
                local_endpoint: self.local_endpoint.unwrap_or_default(),
                forward_timeout: self.forward_timeout,
            },
        })
    }
}

/// A Prometheus duration above zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be above 0".to_owned()),
        Ok(d) => Ok(d),
        Err(error) => Err(error.to_string()),
    }
}
