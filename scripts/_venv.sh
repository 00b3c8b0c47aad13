# Sourced by the other scripts: create .venv on first use and install reprotrain with the given
# extras into it; everything runs offline afterwards except the package registry.
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
echo "==> installing reprotrain${1:+[$1]} into .venv"
PIP_CONSTRAINT="$PWD/scripts/constraints.txt" \
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".${1:+[$1]}"
export PATH="$PWD/.venv/bin:$PATH"
