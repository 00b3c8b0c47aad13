#!/usr/bin/env bash
# Every check, on a fresh machine: set up .venv with the test extras, then lint, type-check and
# run the test suite (real git, DVC, Hydra and MLflow in temporary directories).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k status`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh test

echo "==> ruff"
ruff check reprotrain tests examples benchmarks
echo "==> mypy"
mypy
echo "==> pytest"
python -m pytest -n 2 "$@"
