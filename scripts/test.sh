#!/usr/bin/env bash
# Every check, on a fresh machine: set up .venv with the test extras, then lint, type-check and
# run the test suite (real git, DVC, Hydra and MLflow in temporary directories).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k status`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh test

# `mlflow server` (team-setup and fault tests) needs the full mlflow package: it gets a venv of its
# own, so that the test venv, like a user's, has only mlflow-skinny (half the import time).
if [ ! -x .venv-server/bin/mlflow ]; then
  echo "==> creating .venv-server for mlflow server"
  "${PYTHON:-python3}" -m venv .venv-server
fi
PIP_CONSTRAINT="$PWD/scripts/constraints.txt" \
  .venv-server/bin/pip install --quiet --disable-pip-version-check "mlflow>=3.1" "psycopg[binary]>=3.1" "boto3>=1.28"
export REPROTRAIN_TEST_MLFLOW_SERVER="$PWD/.venv-server/bin/mlflow"

echo "==> ruff"
ruff check reprotrain tests examples benchmarks
echo "==> mypy"
mypy
echo "==> pytest"
python -m pytest -n 2 --durations=15 "$@"
