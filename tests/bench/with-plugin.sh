#!/usr/bin/env bash
# Runs trawl-agent on a config that ../shared/bench/agents.sh generated, with one plugin added to
# every job (stage relabel or filter), so agents.sh measures the plugin's cost:
#   OURS_CMD="tests/bench/with-plugin.sh STAGE PLUGIN.wasm 'CONFIG_JSON' {config} \
#     --storage.path={data} --web.listen-address=127.0.0.1:{port} --log.level=warn" \
#     ../shared/bench/agents.sh ours node100 40
# e.g. STAGE=filter PLUGIN=value-filter.wasm CONFIG_JSON='{"drop_nan": true}'.
set -euo pipefail
STAGE=$1; WASM=$2; JSON=$3; CONFIG=$4; shift 4
AGENT=${TRAWL_AGENT:-${CARGO_TARGET_DIR:-$HOME/.cache/trawl-target}/release/trawl-agent}
OUT=$CONFIG.with-plugin.yml
python3 - "$CONFIG" "$OUT" "$STAGE" "$WASM" "$JSON" <<'PY'
import json, sys
src, out, stage, wasm, config = sys.argv[1:]
json.loads(config)  # fail early on a typo
lines = []
for line in open(src):
    lines.append(line)
    if line.strip().startswith("- job_name:"):
        indent = line[: len(line) - len(line.lstrip())] + "  "
        lines.append(f"{indent}plugins: [{{name: bench, stage: {stage}}}]\n")
lines.append(f"plugins:\n  - name: bench\n    path: {wasm}\n    config: {config}\n")
open(out, "w").write("".join(lines))
PY
exec "$AGENT" --config.file="$OUT" "$@"
