#!/usr/bin/env bash
# The main job: trawl-agent scrapes node_exporter and both Trawl processes and remote-writes into
# trawl-collector; after about a minute the collector is stopped with SIGTERM, which cuts its head
# into a Prometheus TSDB block and uploads it to the embedded filesystem bucket; the script lists
# the bucket and runs `promtool tsdb analyze` on the block.
# Installs what it needs (Debian prometheus for promtool, prometheus-node-exporter) and builds Trawl.
# usage: examples/quickstart.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
. examples/lib/install.sh
RUN_FOR=${1:-60}

install_debian promtool:prometheus prometheus-node-exporter:prometheus-node-exporter curl:curl
ensure_rust
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/trawl-target}
echo "==> cargo build --release -p trawl-agent -p trawl-collector"
cargo build --release --locked -p trawl-agent -p trawl-collector
BIN=$CARGO_TARGET_DIR/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export NODE_EXPORTER_PORT=$(free_port) TRAWL_COLLECTOR_PORT=$(free_port) TRAWL_AGENT_PORT=$(free_port)
export TRAWL_AGENT_NAME=quickstart
WORK=$(mktemp -d /tmp/trawl-quickstart.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "==> node_exporter on 127.0.0.1:$NODE_EXPORTER_PORT"
prometheus-node-exporter --web.listen-address=127.0.0.1:$NODE_EXPORTER_PORT >"$WORK/node.log" 2>&1 & PIDS+=($!)

echo "==> trawl-collector on 127.0.0.1:$TRAWL_COLLECTOR_PORT, tsdb in $WORK/collector"
"$BIN/trawl-collector" --web.listen-address=127.0.0.1:$TRAWL_COLLECTOR_PORT --tsdb.path="$WORK/collector" \
  --label='replica="quickstart-0"' 2>"$WORK/collector.log" & PIDS+=($!)
COLLECTOR_PID=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$TRAWL_COLLECTOR_PORT/-/ready" >/dev/null && break; sleep 0.2; done

echo "==> trawl-agent on 127.0.0.1:$TRAWL_AGENT_PORT with examples/agent.yml"
"$BIN/trawl-agent" check-config examples/agent.yml
"$BIN/trawl-agent" --config.file=examples/agent.yml --web.listen-address=127.0.0.1:$TRAWL_AGENT_PORT \
  --storage.path="$WORK/agent" 2>"$WORK/agent.log" & PIDS+=($!)
AGENT_PID=$!

echo "==> letting them run for ${RUN_FOR}s"
sleep "$RUN_FOR"
echo
echo "\$ curl -s 127.0.0.1:$TRAWL_COLLECTOR_PORT/metrics | grep -E '^trawl_collector_(head_samples_appended_total|head_series) '"
curl -s "127.0.0.1:$TRAWL_COLLECTOR_PORT/metrics" | grep -E '^trawl_collector_(head_samples_appended_total|head_series)[ {]' || true

kill -TERM $AGENT_PID; wait $AGENT_PID && echo "==> agent stopped cleanly (SIGTERM flushed its queue)"
kill -TERM $COLLECTOR_PID; wait $COLLECTOR_PID && echo "==> collector stopped cleanly (SIGTERM cut the head into a block and uploaded it)"

BUCKET=$WORK/collector/bucket
echo
echo "\$ find $BUCKET -type f | sort"
(cd "$BUCKET" && find . -type f | sort | sed 's#^\./#  #')
BLOCK=$(cd "$BUCKET" && ls -d 01* | head -1)
[ -n "$BLOCK" ] || { echo "no block in the bucket; collector log:"; cat "$WORK/collector.log"; exit 1; }
echo
echo "\$ cat $BUCKET/$BLOCK/meta.json"
python3 -m json.tool "$BUCKET/$BLOCK/meta.json"
echo
# promtool opens a directory as a database, which needs a WAL directory: analyze a copy.
mkdir -p "$WORK/db/wal" && cp -r "$BUCKET/$BLOCK" "$WORK/db/"
echo "\$ promtool tsdb analyze $WORK/db $BLOCK"
promtool tsdb analyze "$WORK/db" "$BLOCK"
