//! The listener: connections that can all be cut at once (a restart or an outage of the API
//! server), and the task that accepts them.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Shared;
use super::http::dispatch;

/// A serving listener: cancelling `generation` cuts its connections and closes it.
pub(crate) struct Running {
    pub(crate) generation: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

/// Starts serving on `listener`; its connections belong to `generation`.
pub(crate) fn serve(listener: TcpListener, shared: Arc<Shared>, generation: CancellationToken) -> Running {
    let app = axum::Router::new().fallback(dispatch).with_state(shared);
    let cut = generation.clone();
    let listener = CuttableListener {
        listener,
        generation: generation.clone(),
    };
    let task = tokio::spawn(async move {
        tokio::select! {
            // `serve` only ends on an accept loop failure, which the listener retries.
            _ = axum::serve(listener, app) => {}
            () = cut.cancelled() => {}
        }
    });
    Running { generation, task }
}

/// A TCP listener whose connections fail as soon as their generation is cancelled.
struct CuttableListener {
    listener: TcpListener,
    generation: CancellationToken,
}

impl axum::serve::Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CuttableStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let cut = Box::pin(self.generation.clone().cancelled_owned());
                    return (CuttableStream { stream, cut }, addr);
                }
                // Out of file descriptors and the like: wait a little, as axum's listener does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that errors on every read and write once cut; hyper then drops it, which
/// closes the socket, as a crashing API server would.
struct CuttableStream {
    stream: TcpStream,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl CuttableStream {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fake API server stopped",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for CuttableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
