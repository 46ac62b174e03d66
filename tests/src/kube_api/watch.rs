//! WATCH: a streaming response of newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR), resumed from a resourceVersion out of the history, as the real API server
//! streams them (`apiserver/pkg/endpoints/handlers/watch.go`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, interval_at, sleep};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::http::{Filter, Params, status, status_object};
use super::resource::Resource;
use super::store::{Change, ChangeKind, Expired, Notice};

/// The server-side timeout of a watch without `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// A watch's chunks: event lines, or an error that aborts the connection mid-stream.
type Chunk = Result<String, io::Error>;

/// Starts a watch of `resource` (in `namespace`, all when `None`) and returns its streaming
/// response; a bad parameter is a 400, a compacted resourceVersion a 200 carrying one ERROR event.
pub(crate) fn start(shared: &Arc<Shared>, resource: Resource, namespace: Option<String>, params: &Params) -> Response {
    let bad = |message: String| status(StatusCode::BAD_REQUEST, "BadRequest", message, None);
    let filter = match Filter::parse(resource, namespace, params) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    if params.get("sendInitialEvents").is_some_and(|v| v == "true") {
        return bad("sendInitialEvents (streaming lists) is not served by the fake API server".into());
    }
    let timeout = match params.get("timeoutSeconds").map(|t| t.parse::<u64>()) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(seconds)) => Duration::from_secs(seconds),
        Some(Err(_)) => return bad(format!("invalid timeoutSeconds {:?}", params["timeoutSeconds"])),
    };
    let from = match params.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return bad(format!("invalid resource version {rv:?}")),
        },
    };

    // Subscribe and read the first events under one lock, so no change falls in between.
    let store = shared.store();
    let (notices, seen) = store.subscribe();
    let first = match from {
        // No resourceVersion: the current state as ADDED events, then changes.
        None => store.snapshot(resource, None, None).map(|snapshot| {
            snapshot
                .objects
                .iter()
                .filter(|((ns, _), object)| filter.matches(ns, object))
                .map(|(_, object)| event_line("ADDED", object))
                .collect()
        }),
        Some(rv) => store.changes_since(rv).map(|changes| {
            changes
                .iter()
                .filter_map(|change| event_for(change, resource, &filter))
                .collect()
        }),
    };
    drop(store);

    let (tx, rx) = mpsc::channel::<Chunk>(256);
    let watch = Watch {
        shared: shared.clone(),
        resource,
        filter,
        bookmarks: params.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
        seen,
        tx,
        generation: shared.generation(),
    };
    tokio::spawn(watch.run(first, notices, timeout));
    let mut rx = rx;
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response()
}

/// One open watch, run as its own task.
struct Watch {
    shared: Arc<Shared>,
    resource: Resource,
    filter: Filter,
    bookmarks: bool,
    /// The newest resourceVersion this watch has passed (delivered or filtered out): bookmarks
    /// carry it, so a client resuming from a bookmark misses nothing.
    seen: u64,
    tx: mpsc::Sender<Chunk>,
    /// Cancelled when the server stops or restarts: the stream is cut mid-flight.
    generation: CancellationToken,
}

impl Watch {
    async fn run(
        mut self,
        first: Result<Vec<String>, Expired>,
        mut notices: broadcast::Receiver<Notice>,
        timeout: Duration,
    ) {
        let _open = OpenWatch::new(self.shared.clone(), self.resource);
        let lines = match first {
            Ok(lines) => lines,
            Err(expired) => {
                let message = format!("too old resource version: {} ({})", expired.requested, expired.oldest);
                self.send(expired_line(&message)).await;
                return;
            }
        };
        for line in lines {
            if !self.send(line).await {
                return;
            }
        }
        let every = self.shared.options.bookmark_interval;
        let mut bookmark = interval_at(Instant::now() + every, every);
        let deadline = sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let line = tokio::select! {
                biased;
                () = self.generation.cancelled() => {
                    let _ = self.tx.send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "fake API server stopped"))).await;
                    return;
                }
                () = self.tx.closed() => return,
                notice = notices.recv() => match notice {
                    Ok(Notice::Change(change)) => {
                        self.seen = change.rv;
                        event_for(&change, self.resource, &self.filter)
                    }
                    Ok(Notice::RawLine(resource, line)) => (resource == self.resource).then(|| format!("{line}\n")),
                    Ok(Notice::Compacted) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.send(expired_line("The resourceVersion for the provided watch is too old.")).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmark.tick(), if self.bookmarks => Some(self.bookmark_line()),
                () = &mut deadline => {
                    // The real server ends a timed-out watch with a last bookmark.
                    if self.bookmarks {
                        self.send(self.bookmark_line()).await;
                    }
                    return;
                }
            };
            if let Some(line) = line
                && !self.send(line).await
            {
                return;
            }
        }
    }

    /// Sends one chunk; false once the client is gone.
    async fn send(&self, line: String) -> bool {
        self.tx.send(Ok(line)).await.is_ok()
    }

    fn bookmark_line(&self) -> String {
        let object = serde_json::json!({
            "kind": self.resource.kind(),
            "apiVersion": self.resource.api_version(),
            "metadata": {"resourceVersion": self.seen.to_string(), "creationTimestamp": null},
        });
        event_line("BOOKMARK", &object)
    }
}

/// The event a watch with `filter` sees for `change`, as the real server derives it: an object
/// entering the selection is ADDED, one leaving it is DELETED, one staying MODIFIED.
fn event_for(change: &Change, resource: Resource, filter: &Filter) -> Option<String> {
    if change.resource != resource {
        return None;
    }
    let was = change
        .old
        .as_ref()
        .is_some_and(|old| filter.matches(&change.namespace, old));
    let is = change.kind != ChangeKind::Deleted && filter.matches(&change.namespace, &change.object);
    let kind = match (was, is) {
        (false, true) => "ADDED",
        (true, true) => "MODIFIED",
        (true, false) => "DELETED",
        (false, false) => return None,
    };
    Some(event_line(kind, &change.object))
}

fn event_line(kind: &str, object: &Value) -> String {
    format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n")
}

fn expired_line(message: &str) -> String {
    event_line("ERROR", &status_object(410, "Expired", message, None))
}

/// Counts a watch as open for as long as it lives.
struct OpenWatch {
    shared: Arc<Shared>,
    resource: Resource,
}

impl OpenWatch {
    fn new(shared: Arc<Shared>, resource: Resource) -> OpenWatch {
        *shared.open_watches().entry(resource).or_default() += 1;
        OpenWatch { shared, resource }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        if let Some(n) = self.shared.open_watches().get_mut(&self.resource) {
            *n = n.saturating_sub(1);
        }
    }
}
