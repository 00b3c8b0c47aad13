#!/usr/bin/env bash
# The bundled example on a fresh machine: set up, restore the example data offline, and launch a
# pinned run with the embedded store (no server), then rerun it from its record and verify that
# it reproduced. Safe to run again; leaves `git status` clean.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh

echo "==> restoring data/regression.csv from the bundled DVC remote (examples/dvc-store)"
dvc pull --quiet

echo "==> reprotrain run +experiment=baseline"
reprotrain run +experiment=baseline

echo "==> reprotrain show last"
reprotrain show last

echo "==> reprotrain rerun last --verify   (same commit, data and config, in a separate worktree)"
reprotrain rerun last --verify
