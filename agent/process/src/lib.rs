//! Process plumbing shared by both binaries, so `trawl-agent` and `trawl-collector` log, stop and
//! expose metrics the same way:
//! - [`logfmt`]: the `--log.format=logfmt` line format, as Prometheus's go-kit logfmt.
//! - [`init_logging`]: `--log.level` and `--log.format`.
//! - [`build_runtime`]: the tokio runtime for `--runtime.worker-threads`.
//! - [`shutdown_on_signals`]: SIGTERM and SIGINT start a graceful shutdown.
//! - [`metrics_response`]: the `/metrics` answer in the Prometheus text format.

pub mod logfmt;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

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
