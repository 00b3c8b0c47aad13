#!/usr/bin/env bash
# Every check, on a fresh machine: set up .venv with the test extras, then lint, type-check and
# run the test suite (real git, DVC, Hydra and MLflow in temporary directories).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k status`; `scripts/test.sh --ray` runs the Ray
# launcher's tests instead (below).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--ray" ]; then
  # The Ray launcher's tests (tests/test_ray.py), not part of the default run: Ray is about 900 MB,
  # and it listens on every interface whatever it is told, so the tests run in a network namespace
  # of their own whose only interface is loopback (root, or unprivileged user namespaces, needed).
  shift
  . scripts/_venv.sh test,ray
  exec unshare -n --map-root-user bash -c 'ip link set lo up && exec python -m pytest -p no:cacheprovider tests/test_ray.py "$@"' ray-tests "$@"
fi
. scripts/_venv.sh test

# `mlflow server` (team-setup and fault tests) needs the full mlflow package: it gets a venv of its
# own, so that the test venv, like a user's, has only mlflow-skinny (half the import time).
echo "==> installing mlflow server into .venv-server"
install_into .venv-server "mlflow>=3.9" "psycopg[binary]>=3.1" "boto3>=1.28"
export REPROTRAIN_TEST_MLFLOW_SERVER="$PWD/.venv-server/bin/mlflow"

echo "==> ruff"
ruff check reprotrain tests examples benchmarks
echo "==> mypy"
mypy
echo "==> pytest"
python -m pytest -n 2 --durations=15 "$@"
