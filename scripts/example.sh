#!/usr/bin/env bash
# The bundled example on a fresh machine: set up, restore the example data offline, and launch a
# pinned run with the embedded store (no server), then rerun it from its record and verify that
# it reproduced. Safe to run again; leaves `git status` clean.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh

# the store helper a launch starts for the next ones (docs/reference.md) is stopped on the way
# out, by its PID: the example leaves no process behind
stop_store_helper() {
  local base="${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/reprotrain-$(id -u)"
  local uri="sqlite:///$PWD/.reprotrain/mlflow.db" f
  for f in "$base"/store-*.pid; do
    [ -f "$f" ] || continue
    if [ "$(sed -n 2p "$f")" = "$uri" ]; then kill "$(head -n 1 "$f")" 2>/dev/null || true; fi
  done
}
trap stop_store_helper EXIT

echo "==> restoring data/regression.csv from the bundled DVC remote (examples/dvc-store)"
dvc pull --quiet

echo "==> reprotrain run +experiment=baseline"
reprotrain run +experiment=baseline

echo "==> reprotrain show last"
reprotrain show last

echo "==> reprotrain rerun last --verify   (same commit, data and config, in a separate worktree)"
reprotrain rerun last --verify
