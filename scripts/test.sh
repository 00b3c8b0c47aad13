#!/usr/bin/env bash
# Every check, on a fresh machine: set up .venv with the test extras, then lint, type-check and
# run the test suite (real git, DVC, Hydra and MLflow in temporary directories).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k status`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
echo "==> installing reprotrain[test] into .venv"
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"

echo "==> ruff"
.venv/bin/ruff check reprotrain tests examples
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest -n 2 "$@"
