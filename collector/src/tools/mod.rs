//! `trawl-collector tools …`: offline tools, as `thanos tools`. One so far:
//!
//! `trawl-collector tools bucket verify --objstore.config-file=FILE
//! [--deduplication.replica-label=NAME …] [--output=text|json] [--series]` reads every block of
//! the bucket and checks it (see [`verify`]); with `--series` it also counts each series'
//! samples across replicas and blocks (see [`report`]), so a test can prove no sample is
//! missing. Exit code 0: no problem; 1: problems found; 2: the bucket could not be read (bad
//! config, listing or download failed) or the command line is wrong.
//!
//! - [`fetch`]: lists the bucket by block and downloads a block into a scratch directory.
//! - [`verify`]: the checks of one block, collecting problems.
//! - [`report`]: deduplicated series counts and the JSON/text output.

pub mod fetch;
pub mod report;
pub mod verify;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use object_store::ObjectStore;
use trawl_process::error_chain;
use trawl_tsdb::fs::FsError;

use crate::shipper::ShipperError;
use crate::shipper::objstore::{Backend, ObjstoreConfig};
use fetch::{ScratchDir, download_block, list_blocks};
pub use report::{Report, SeriesReport, SeriesTally};
pub use verify::{BlockReport, verify_block};

/// Exit code when problems were found.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code when the bucket could not be read.
pub const EXIT_UNREADABLE: u8 = 2;

/// Errors that stop a tool before it has a result; `verify` exits with [`EXIT_UNREADABLE`].
/// Problems inside blocks are not errors: they go into the report.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// The objstore config could not be read, parsed or turned into a bucket client.
    #[error(transparent)]
    Config(#[from] ShipperError),
    /// The directory of a `FILESYSTEM` bucket does not exist (verify never creates it).
    #[error("bucket directory {0} does not exist")]
    MissingDirectory(PathBuf),
    /// Listing the bucket failed.
    #[error("list the bucket")]
    List {
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
    /// Downloading an object failed (other than it having vanished since the listing).
    #[error("download {object}")]
    Download {
        /// Object name inside the bucket (before the config's `prefix`).
        object: String,
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
    /// Writing a downloaded block to the scratch directory failed.
    #[error(transparent)]
    Io(#[from] FsError),
    /// The async runtime could not be started.
    #[error("start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// `trawl-collector tools …`.
#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Tools working on a bucket of blocks.
    #[command(subcommand)]
    Bucket(BucketCommand),
}

/// `trawl-collector tools bucket …`.
#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Checks every block in the bucket (meta.json, index, chunks) and optionally counts each
    /// series' samples, deduplicated by replica labels. Exit 0: no problem, 1: problems, 2: the
    /// bucket could not be read.
    Verify(VerifyArgs),
}

/// Flags of `tools bucket verify` (names as `thanos tools bucket verify`).
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Bucket configuration in Thanos's objstore.yml shape (type S3 or FILESYSTEM).
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    pub objstore_config: PathBuf,
    /// Label naming the replica, left out of series identities; repeatable.
    #[arg(long = "deduplication.replica-label", value_name = "NAME")]
    pub replica_labels: Vec<String>,
    /// Output format on stdout.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also report every series (deduplicated): samples, staleness markers, first and last
    /// timestamp.
    #[arg(long = "series")]
    pub series: bool,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per block and per series, then a summary line.
    Text,
    /// One JSON document: `{"blocks": [..], "series": [..], "problems": N}`.
    Json,
}

/// What [`verify_bucket`] does besides the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Label names left out of series identities.
    pub replica_labels: Vec<String>,
    /// Count samples per deduplicated series.
    pub series: bool,
}

// === impl ToolsCommand ===

impl ToolsCommand {
    /// Runs the tool, printing its result on stdout and errors on stderr; returns the exit code.
    pub fn run(self) -> ExitCode {
        match self {
            ToolsCommand::Bucket(BucketCommand::Verify(args)) => args.run(),
        }
    }
}

impl VerifyArgs {
    /// Runs `tools bucket verify`; see the module docs for the exit codes.
    pub fn run(self) -> ExitCode {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ToolsError::Runtime)
            .and_then(|rt| rt.block_on(self.verify()));
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                eprintln!("trawl-collector tools bucket verify: {}", error_chain(&e));
                return ExitCode::from(EXIT_UNREADABLE);
            }
        };
        let text = match self.output {
            OutputFormat::Json => report.to_json() + "\n",
            OutputFormat::Text => report.to_text(),
        };
        // A closed stdout (`| head`) must not turn a verdict into a panic.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        if report.problems == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_PROBLEMS)
        }
    }

    async fn verify(&self) -> Result<Report, ToolsError> {
        let config = ObjstoreConfig::load(&self.objstore_config)?;
        if let Backend::Filesystem(fs) = &config.backend
            && !fs.directory.is_dir()
        {
            return Err(ToolsError::MissingDirectory(fs.directory.clone()));
        }
        let bucket = config.open()?;
        let opts = VerifyOptions {
            replica_labels: self.replica_labels.clone(),
            series: self.series,
        };
        verify_bucket(bucket.as_ref(), &opts, &std::env::temp_dir()).await
    }
}

/// Checks every block of `bucket`, downloading each in turn into a scratch directory under
/// `scratch` (removed afterwards). Errors: listing or downloading fails, or the scratch
/// directory cannot be written; problems inside blocks go into the [`Report`].
pub async fn verify_bucket(
    bucket: &dyn ObjectStore,
    opts: &VerifyOptions,
    scratch: &Path,
) -> Result<Report, ToolsError> {
    let blocks = list_blocks(bucket).await?;
    let mut tally = SeriesTally::new(opts.replica_labels.clone());
    let mut reports = Vec::with_capacity(blocks.len());
    for (id, objects) in &blocks {
        let dir = ScratchDir::create(scratch, *id)?;
        download_block(bucket, *id, objects, dir.path()).await?;
        let report = verify_block(dir.path(), *id, &mut |external, labels, samples| {
            if opts.series {
                tally.add(external, labels, samples);
            }
        });
        reports.push(report);
    }
    Ok(Report::new(reports, opts.series.then(|| tally.finish())))
}
