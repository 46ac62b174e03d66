//! Process plumbing shared by both binaries, so `trawl-agent` and `trawl-collector` log, stop and
//! expose metrics the same way:
//! - [`logfmt`]: the `--log.format=logfmt` line format, as Prometheus's go-kit logfmt.
//! - [`init_logging`]: `--log.level` and `--log.format`.
//! - [`build_runtime`]: the tokio runtime for `--runtime.worker-threads`.
//! - [`shutdown_on_signals`]: SIGTERM and SIGINT start a graceful shutdown.
//! - [`ProcessFlags`] and [`serve`]: a binary's common flags and its `main`: logging, runtime,
//!   listener, signals, and the exit code.
//! - [`metrics_response`]: the `/metrics` answer in the Prometheus text format.
//! - [`error_chain`]: an error and its sources on one line, for logs and answers.

pub mod logfmt;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The flags both binaries share: `--log.level`, `--log.format`, `--runtime.worker-threads`.
#[derive(Debug, Clone, Args)]
pub struct ProcessFlags {
    /// Only log messages with this severity or above.
    #[arg(long = "log.level", default_value = "info", value_name = "LEVEL")]
    pub log_level: LogLevel,
    /// Log line format.
    #[arg(long = "log.format", default_value = "logfmt", value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Threads of the runtime. One is the cheapest per unit of work (no cross-thread wake-ups:
    /// about 15% less CPU than two on the agent's node100 benchmark) and handles about a million
    /// samples per second; 0 means one per CPU core. Blocking work (block writing, uploads) runs
    /// on separate threads.
    #[arg(long = "runtime.worker-threads", default_value_t = 1, value_name = "N")]
    pub worker_threads: usize,
}

/// `--log.level`: only messages with this severity or above are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    /// Everything, including per-target and per-request detail.
    Debug,
    /// Lifecycle events and recoverable failures.
    Info,
    /// Failures only.
    Warn,
    /// Failures that stop a component.
    Error,
}

/// `--log.format`: one event per line on stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// `ts=… level=… caller=… msg=…`, as Prometheus.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber writing to stderr.
pub fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // Neither format uses colour: logfmt and JSON lines are for files, pipes and journald.
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Logfmt => builder.event_format(logfmt::Logfmt).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The runtime for `--runtime.worker-threads=N`: 1 runs everything on the calling thread without
/// cross-thread wake-ups (the cheapest per unit of work), 0 uses one worker per CPU core, any other
/// number a work-stealing runtime with that many workers.
///
/// Errors: the runtime's I/O driver cannot be created.
pub fn build_runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    builder.enable_all().build()
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT. Must be called inside the runtime.
///
/// Errors: the signal handlers cannot be installed.
pub fn shutdown_on_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(message = "Received SIGTERM; shutting down."),
            _ = int.recv() => tracing::info!(message = "Received SIGINT; shutting down."),
        }
        shutdown.cancel();
    });
    Ok(())
}

/// `GET /metrics`: the registry in the Prometheus text format 0.0.4, or 500 when encoding fails.
pub fn metrics_response(registry: &Registry) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A binary's `main`: sets up logging from `flags`, builds the runtime for its worker threads
/// (see [`build_runtime`]), binds `listen`, cancels the shutdown token on SIGTERM or SIGINT, and runs
/// `run(listener, shutdown)` to its end. Any failure is logged as `"<component> failed."` with its
/// cause chain and gives exit code 1.
pub fn serve<F, Fut>(flags: &ProcessFlags, listen: SocketAddr, component: &str, run: F) -> ExitCode
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_logging(flags.log_level, flags.log_format);
    let runtime = match build_runtime(flags.worker_threads) {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(message = "Cannot start the runtime.", %error);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("listen on {listen}: {e}"))?;
        let shutdown = CancellationToken::new();
        shutdown_on_signals(shutdown.clone())?;
        run(listener, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(message = format!("{component} failed."), error = format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// An error and all its sources on one line (`a: b: c`), skipping a source whose text the line
/// already ends with; reqwest's and std's Display hide the cause (TLS, connection, I/O).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}
