# Sourced by the other scripts: uv in .venv-uv, installed once with pip (unless REPROTRAIN_NO_UV
# is set, or it cannot be installed: then .venv-uv/bin/uv is absent and callers fall back to pip).
_python="${PYTHON:-python3}"
if [ ! -x .venv-uv/bin/uv ] && [ -z "${REPROTRAIN_NO_UV:-}" ]; then
  echo "==> installing uv into .venv-uv"
  { "$_python" -m venv .venv-uv && .venv-uv/bin/pip install --quiet --disable-pip-version-check uv; } \
    || { echo "==> uv could not be installed: pip instead"; rm -rf .venv-uv; }
fi
