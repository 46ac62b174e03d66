#!/usr/bin/env bash
# Block size and head memory: vmagent scrapes TARGETS targets of 10k series each (the receivers.sh
# payload) at 1s and writes into trawl-collector for SECONDS; SIGTERM cuts the head into a block.
# The same samples are then written into a block by Prometheus itself (`promtool tsdb dump` →
# OpenMetrics → `promtool tsdb create-blocks-from openmetrics`), and bytes per sample compared.
# Head memory per active series = collector RSS just before SIGTERM / head series.
# usage: tests/bench/blocks.sh [SECONDS]   (default 120; needs a release build of trawl-collector)
set -euo pipefail
DUR=${1:-120}; N=${TARGETS:-10}; PORT0=23000
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH_DIR:-$HERE/../../../shared/bench}
COLLECTOR=${TRAWL_COLLECTOR:-${CARGO_TARGET_DIR:-$HOME/.cache/trawl-target}/release/trawl-collector}
W=$(mktemp -d /tmp/blockbench.XXXX); chmod 755 $W
python3 $BENCH/gen_payload.py 10000 $W/metrics; chmod 644 $W/metrics
{
  echo "worker_processes 1; pid $W/nginx.pid; error_log $W/nginx.err; daemon on;"
  echo "events { worker_connections 1024; }"
  echo "http { access_log off; default_type 'text/plain; version=0.0.4'; server {"
  for i in $(seq 0 $((N-1))); do echo "  listen 127.0.0.1:$((PORT0+i));"; done
  echo "  location /metrics { alias $W/metrics; } } }"
} > $W/nginx.conf
nginx -c $W/nginx.conf
TARGETS=$(for i in $(seq 0 $((N-1))); do printf "'127.0.0.1:%d'," $((PORT0+i)); done)
printf 'global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: bench\n    static_configs: [{targets: [%s]}]\n' "${TARGETS%,}" > $W/scrape.yml
RPORT=18600
"$COLLECTOR" --tsdb.path=$W/collector --web.listen-address=127.0.0.1:$RPORT --log.level=warn 2>$W/collector.log &
CPID=$!
cleanup() { kill $SPID $CPID 2>/dev/null || true; kill $(cat $W/nginx.pid) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf $W; }
trap cleanup EXIT
sleep 1
vmagent -promscrape.config=$W/scrape.yml -remoteWrite.url=http://127.0.0.1:$RPORT/api/v1/receive \
  -remoteWrite.tmpDataPath=$W/vmq -httpListenAddr=127.0.0.1:18601 -loggerLevel=ERROR >$W/vmagent.log 2>&1 &
SPID=$!
sleep "$DUR"
kill $SPID; wait $SPID 2>/dev/null || true
metric() { curl -s 127.0.0.1:$RPORT/metrics | awk -v m="^$1[ {]" '$0 ~ m {s+=$NF} END{print s+0}'; }
series=$(metric trawl_collector_head_series)
rss_kb=$(awk '/VmRSS/{print $2}' /proc/$CPID/status)
kill -TERM $CPID; wait $CPID
BLOCK=$(ls -d $W/collector/bucket/01* | head -1)
mkdir -p $W/dump/wal $W/prom
cp -r "$BLOCK" $W/dump/
promtool tsdb dump $W/dump > $W/dump.txt
# dump lines: {__name__="m", a="b"} VALUE TS_MS  →  OpenMetrics: m{a="b"} VALUE TS_SECONDS
python3 - "$W/dump.txt" "$W/in.om" <<'PY'
import re, sys
pair = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"')
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        labels, value, ts = line.rstrip("\n").rsplit(" ", 2)
        pairs = pair.findall(labels)
        name = dict(pairs)["__name__"]
        rest = ",".join(f'{k}="{v}"' for k, v in pairs if k != "__name__")
        out.write(f"{name}{{{rest}}} {value} {int(ts) / 1000:.3f}\n")
    out.write("# EOF\n")
PY
promtool tsdb create-blocks-from openmetrics $W/in.om $W/prom >/dev/null
size() { du -sb "$1"/chunks "$1"/index | awk '{s+=$1} END{print s}'; }
samples() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stats']['numSamples'])" "$1/meta.json"; }
ours=$(size "$BLOCK"); ours_n=$(samples "$BLOCK")
theirs=0; theirs_n=0
for b in $W/prom/01*; do theirs=$((theirs + $(size $b))); theirs_n=$((theirs_n + $(samples $b))); done
python3 - <<PY
ours, on, theirs, tn, series, rss = $ours, $ours_n, $theirs, $theirs_n, $series, $rss_kb*1024
print(f"block trawl      bytes={ours} samples={on} bytes_per_sample={ours/on:.3f}")
print(f"block prometheus bytes={theirs} samples={tn} bytes_per_sample={theirs/tn:.3f}")
print(f"ratio trawl/prometheus={ (ours/on)/(theirs/tn):.3f}")
print(f"head series={series:.0f} rss_mb={rss/1e6:.0f} rss_bytes_per_series={rss/max(series,1):.0f}")
PY
