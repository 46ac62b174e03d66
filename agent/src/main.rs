//! `trawl-agent`: scrape Prometheus/OpenMetrics targets and remote-write the samples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trawl_agent::agent::{self, AgentOptions};
use trawl_agent::check_plugin::{self, CheckPlugin};
use trawl_agent::config;
use trawl_agent::plugin::Stage;
use trawl_model::labels::Labels;
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
    /// Runs a Wasm plugin on an exposition file and prints what it keeps, changes and drops;
    /// exits 0 when the plugin loaded and answered, 1 otherwise.
    CheckPlugin(CheckPluginArgs),
}

#[derive(Debug, clap::Args)]
struct CheckPluginArgs {
    /// The plugin component (built with `cargo build --target wasm32-wasip2 --release`).
    wasm: PathBuf,
    /// The plugin's `config:`, as JSON.
    #[arg(long = "plugin.config", default_value = "{}", value_name = "JSON")]
    config: String,
    /// Exposition file to run the plugin on (text format, or OpenMetrics ending in `# EOF`).
    #[arg(long = "input", value_name = "FILE")]
    input: PathBuf,
    /// Stage the samples are sent as.
    #[arg(long = "plugin.stage", default_value = "filter", value_parser = ["relabel", "filter", "write"])]
    stage: String,
    /// A target label sent to plugins that ask for them, `NAME=VALUE` (repeatable).
    #[arg(long = "target.label", value_name = "NAME=VALUE", value_parser = parse_label)]
    target_labels: Vec<(String, String)>,
    /// Per-call deadline.
    #[arg(long = "plugin.timeout", default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Linear memory cap of the plugin instance, in bytes.
    #[arg(long = "plugin.memory-limit", default_value_t = 64 << 20, value_name = "BYTES")]
    memory_limit: u64,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    if !trawl_model::labels::is_valid_label_name(name) {
        return Err(format!("{name:?} is not a valid label name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => return check_config(file),
        Some(Command::CheckPlugin(args)) => return check_plugin(args, &cli.process),
        None => {}
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

fn check_plugin(args: &CheckPluginArgs, process: &ProcessFlags) -> ExitCode {
    trawl_process::init_logging(process.log_level, process.log_format);
    let stage = match args.stage.as_str() {
        "relabel" => Stage::Relabel,
        "write" => Stage::Write,
        _ => Stage::Filter,
    };
    let check = CheckPlugin {
        wasm: args.wasm.clone(),
        config_json: args.config.clone(),
        input: args.input.clone(),
        stage,
        target_labels: Labels::from_pairs(args.target_labels.iter().cloned()),
        timeout: args.timeout,
        memory_limit: args.memory_limit,
    };
    let mut out = String::new();
    let result = check_plugin::check_plugin(&check, &mut out);
    print!("{out}");
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Checking plugin {}\n  FAILED: {error}", args.wasm.display());
            ExitCode::FAILURE
        }
    }
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
