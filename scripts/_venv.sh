# Sourced by the other scripts: create .venv on first use and install reprotrain with the given
# extras into it; everything runs offline afterwards except the package registry.
#
# The versions are pinned by scripts/constraints.txt. uv installs that same set in seconds where pip
# takes minutes (it lives in .venv-uv, installed once with pip); pip is the fallback when uv cannot
# be installed. `install_into VENV ARGS...` installs ARGS into another venv the same way.
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
. scripts/_uv.sh

install_into() {
  local venv="$1"
  shift
  if [ -x .venv-uv/bin/uv ] && [ -z "${REPROTRAIN_NO_UV:-}" ]; then
    [ -x "$venv/bin/python" ] || .venv-uv/bin/uv venv --quiet --seed --python "$(command -v "$_python")" "$venv"
    # --compile-bytecode: as pip does; with PYTHONDONTWRITEBYTECODE set (as on CI machines), nothing
    # would ever be compiled and every process would parse MLflow, DVC and Hydra from source (3x slower)
    .venv-uv/bin/uv pip install --quiet --compile-bytecode --python "$venv/bin/python" \
      -c "$PWD/scripts/constraints.txt" "$@"
  else
    [ -x "$venv/bin/python" ] || "$_python" -m venv "$venv"
    PIP_CONSTRAINT="$PWD/scripts/constraints.txt" \
      "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

echo "==> installing reprotrain${1:+[$1]} into .venv"
install_into .venv -e ".${1:+[$1]}"
# An editable install's sources stay here, out of site-packages, where --compile-bytecode does not
# reach: compiled now, or with PYTHONDONTWRITEBYTECODE set every reprotrain process (each command,
# store helper, pipeline runner and the tests' thousands of them) compiles them anew (≈0.5 s each)
.venv/bin/python -m compileall -q reprotrain hydra_plugins tests examples >/dev/null
export PATH="$PWD/.venv/bin:$PATH"
