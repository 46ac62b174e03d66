//! `trawl-agent`: scrape Prometheus/OpenMetrics targets and remote-write the samples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trawl_agent::agent::{self, AgentOptions};
use trawl_agent::config;
use trawl_process::ProcessFlags;

/// Trawl agent: discovers targets, scrapes them, relabels, and remote-writes what it scraped.
/// The config file is a Prometheus `prometheus.yml` (global, scrape_configs, remote_write).
#[derive(Debug, Parser)]
#[command(name = "trawl-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (Prometheus YAML keys).
    #[arg(long = "config.file", default_value = "agent.yml", value_name = "FILE")]
    config_file: PathBuf,
    /// Address of the HTTP API (/metrics, /-/ready, /-/reload, /api/v1/targets).
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9480", value_name = "ADDR")]
    listen_address: SocketAddr,
    /// Directory for the agent's state.
    #[arg(long = "storage.path", default_value = "data/agent", value_name = "DIR")]
    storage_path: PathBuf,
    #[command(flatten)]
    process: ProcessFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates a config file; exits 0 when it is valid, 1 otherwise.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
    }
    let (process, listen) = (cli.process.clone(), cli.listen_address);
    trawl_process::serve(&process, listen, "Agent", |listener, shutdown| async move {
        let opts = AgentOptions {
            config_file: cli.config_file,
            storage_path: cli.storage_path,
        };
        Ok(agent::run(opts, listener, shutdown).await?)
    })
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::check_config(file) {
        Ok(summary) => {
            println!("Checking {}\n  SUCCESS: {summary}", file.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Checking {}\n  FAILED: {error}", file.display());
            ExitCode::FAILURE
        }
    }
}
