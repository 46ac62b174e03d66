//! `trawl-collector`: receive remote write, keep a head with a WAL, cut 2h Prometheus TSDB blocks
//! and ship them to object storage. Flag names follow Thanos Receive.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use trawl_collector::collector::{self, CollectorOptions};
use trawl_collector::external_labels::parse_label_flag;
use trawl_collector::receive::{ReceiveConfig, RequestLimits};
use trawl_collector::replicate::ReplicationFlags;
use trawl_collector::tools::ToolsCommand;
use trawl_model::duration::parse_duration;
use trawl_process::ProcessFlags;

/// Trawl collector: receives remote write (as Thanos Receive), keeps a head per tenant with a
/// WAL, writes 2h Prometheus TSDB blocks and uploads them to S3/MinIO or a local bucket.
#[derive(Debug, Parser)]
#[command(name = "trawl-collector", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Without a subcommand, the flags below run the collector.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address of the HTTP API: POST /api/v1/receive (and /api/v1/write), /metrics, /-/healthy, /-/ready.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:19291", value_name = "ADDR")]
    listen_address: SocketAddr,
    /// Directory of the heads' WALs and of the blocks before upload, one subdirectory per tenant.
    #[arg(long = "tsdb.path", default_value = "data/collector", value_name = "DIR")]
    tsdb_path: PathBuf,
    /// Time range of each block, aligned to multiples of it (Prometheus duration).
    #[arg(long = "tsdb.block-duration", default_value = "2h", value_parser = parse_duration, value_name = "DURATION")]
    block_duration: Duration,
    /// How long uploaded blocks stay on local disk, counted from their end.
    #[arg(long = "tsdb.retention", default_value = "6h", value_parser = parse_duration, value_name = "DURATION")]
    retention: Duration,
    /// Bucket configuration in Thanos's objstore.yml shape (type S3 or FILESYSTEM). Without it,
    /// blocks go to the filesystem bucket <tsdb.path>/bucket.
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    objstore_config: Option<PathBuf>,
    /// External label added to every block's Thanos labels, as key="value"; repeatable.
    #[arg(long = "label", value_parser = parse_label_flag, value_name = "KEY=\"VALUE\"")]
    labels: Vec<(String, String)>,
    /// HTTP header naming the tenant of a write request.
    #[arg(
        long = "receive.tenant-header",
        default_value = "THANOS-TENANT",
        value_name = "HEADER"
    )]
    tenant_header: String,
    /// Tenant of write requests without the tenant header.
    #[arg(
        long = "receive.default-tenant-id",
        default_value = "default-tenant",
        value_name = "ID"
    )]
    default_tenant: String,
    /// Trawl's: most series a tenant's head may hold; at the limit, the tenant's writes get 429
    /// (Thanos's `head_series_limit`). 0 means no limit.
    #[arg(long = "receive.head-series-limit", default_value_t = 0, value_name = "N")]
    head_series_limit: usize,
    /// Trawl's: most series in one write request; above it the request gets 413 (Thanos's
    /// `series_limit`). 0 means no limit.
    #[arg(long = "receive.request-series-limit", default_value_t = 0, value_name = "N")]
    request_series_limit: usize,
    /// Trawl's: most samples in one write request; above it the request gets 413 (Thanos's
    /// `samples_limit`). 0 means no limit.
    #[arg(long = "receive.request-samples-limit", default_value_t = 0, value_name = "N")]
    request_samples_limit: usize,
    #[command(flatten)]
    replication: ReplicationFlags,
    #[command(flatten)]
    process: ProcessFlags,
}

/// Subcommands; the collector itself runs without one.
#[derive(Debug, Subcommand)]
enum Command {
    /// Offline tools, as `thanos tools`.
    #[command(subcommand)]
    Tools(ToolsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Tools(tool)) = cli.command {
        return tool.run();
    }
    let (process, listen) = (cli.process.clone(), cli.listen_address);
    trawl_process::serve(&process, listen, "Collector", |listener, shutdown| async move {
        let opts = CollectorOptions {
            tsdb_path: cli.tsdb_path,
            block_duration: cli.block_duration,
            retention: cli.retention,
            objstore_config: cli.objstore_config,
            external_labels: cli.labels.into_iter().collect(),
            receive: ReceiveConfig {
                tenant_header: cli.tenant_header,
                default_tenant: cli.default_tenant,
                limits: RequestLimits {
                    series_limit: cli.request_series_limit,
                    samples_limit: cli.request_samples_limit,
                    head_series_limit: cli.head_series_limit,
                },
                ..ReceiveConfig::default()
            },
            replication: cli.replication.options(),
        };
        Ok(collector::run(opts, listener, shutdown).await?)
    })
}
