#!/usr/bin/env bash
# Both ends of the supported dependency ranges, installed as a user would (no constraints file):
#
#   scripts/deps_check.sh oldest   mlflow-skinny, dvc, hydra-core, omegaconf and gitpython at the
#                                  floors pyproject.toml declares, everything else the newest
#   scripts/deps_check.sh newest   the newest of everything, pre-releases of hydra-core 1.4 and
#                                  omegaconf 2.4 included
#
# More arguments go to the installer: requirements (`newest omegaconf==2.4.0`) or, with uv, options
# (`oldest --resolution lowest-direct`: every direct dependency at its floor, SQLAlchemy too).
#
# Each builds a venv in a temporary directory (uv's cache makes that seconds), clones this
# repository there (the bundled example is a reprotrain project), and runs the acceptance:
# `reprotrain run`, `show last`, `rerun last --verify` (REPRODUCED), a sweep. Any failure, and any
# deprecation warning reprotrain causes (DeprecationWarning shown, not hidden), fails the check.
# The oldest end then swaps in the releases just below the floors, which import but break beside
# the newest SQLAlchemy and pathspec, and expects one line naming the package to upgrade.
# Leaves nothing running and nothing behind (the clone, the venv and the store helper go).
set -euo pipefail
cd "$(dirname "$0")/.."
end="${1:-}"
case "$end" in
  oldest | newest) ;;
  *) echo "usage: scripts/deps_check.sh oldest|newest [REQUIREMENT|INSTALLER OPTION ...]" >&2; exit 2 ;;
esac
shift
repo="$PWD"
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
. scripts/_uv.sh

tmp="$(mktemp -d "${TMPDIR:-/tmp}/reprotrain-deps-$end.XXXXXX")"
project="$tmp/project"
# the store helper a launch starts (docs/reference.md) keeps its socket and PID file under
# XDG_RUNTIME_DIR, here inside $tmp: every one there is this check's, stopped by its PID on the way out
stop_store_helper() {
  local f pid n
  for f in "$tmp"/run/reprotrain-*/store-*.pid; do
    [ -f "$f" ] || continue
    pid="$(head -n 1 "$f")"
    kill "$pid" 2>/dev/null || continue
    for n in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}
# REPROTRAIN_DEPS_KEEP=1 keeps the venv, the clone and each step's output for a look afterwards
trap 'stop_store_helper; if [ -n "${REPROTRAIN_DEPS_KEEP:-}" ]; then echo "kept: $tmp"; else rm -rf "$tmp"; fi' EXIT
export XDG_RUNTIME_DIR="$tmp/run" DVC_SITE_CACHE_DIR="$tmp/dvc-site"  # DVC's per-repo index and locks too
mkdir -m 700 "$XDG_RUNTIME_DIR"

# The floors, read from pyproject.toml: the check follows them when they move.
floor() {
  sed -n "s/^ *\"$1>=\([0-9][0-9.]*\)[\",;].*/\1/p" pyproject.toml | head -n 1
}
if [ "$end" = oldest ]; then
  requirements=()
  for pkg in mlflow-skinny dvc hydra-core omegaconf gitpython; do
    v="$(floor "$pkg")"
    [ -n "$v" ] || { echo "deps_check: no floor for $pkg in pyproject.toml" >&2; exit 1; }
    requirements+=("$pkg==$v")
  done
else
  requirements=("hydra-core>=1.4.0rc1" "omegaconf>=2.4.0rc1")  # a pre-release bound admits pre-releases
fi

venv="$tmp/venv"
started=$SECONDS
echo "==> [$end] installing reprotrain ${requirements[*]} $* into a fresh venv (no constraints file)"
if [ -x .venv-uv/bin/uv ] && [ -z "${REPROTRAIN_NO_UV:-}" ]; then
  uv=("$repo/.venv-uv/bin/uv" pip install --quiet --python "$venv/bin/python")
  .venv-uv/bin/uv venv --quiet --python "$(command -v "$_python")" "$venv"
  "${uv[@]}" "$repo" "${requirements[@]}" "$@"
else
  uv=("$venv/bin/pip" install --quiet --disable-pip-version-check)
  "$_python" -m venv "$venv"
  "${uv[@]}" "$repo" "${requirements[@]}" "$@"
fi
"$venv/bin/python" - <<'EOF'
from importlib.metadata import version
names = ["mlflow-skinny", "dvc", "hydra-core", "omegaconf", "gitpython", "sqlalchemy", "alembic", "pathspec"]
print("    " + " ".join(f"{n}=={version(n)}" for n in names))
EOF
echo "    installed in $((SECONDS - started)) s"

git clone --quiet "$repo" "$project"
cd "$project"
export PATH="$venv/bin:$PATH"
# bytecode is written as modules are imported (only what the acceptance uses gets compiled)
unset PYTHONDONTWRITEBYTECODE
# DeprecationWarnings are hidden by default outside __main__: shown here, so that one caused by
# reprotrain's own calls (reported at reprotrain's line) cannot pass unseen
export PYTHONWARNINGS="default::DeprecationWarning,default::PendingDeprecationWarning"
dvc pull --quiet

failed=0
# step NAME EXPECTED_EXIT COMMAND...: run it, keep its output, fail on another exit code or on a
# deprecation warning of reprotrain's making: one reported from reprotrain's or the example's code,
# or Hydra's migration warning (it comes from how hydra.main is called)
step() {
  local name="$1" want="$2" got=0
  shift 2
  echo "==> [$end] $*"
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || got=$?
  if [ "$got" != "$want" ]; then
    echo "deps_check: FAILED: \`$*\` exited $got (expected $want)" >&2
    tail -n 30 "$tmp/$name.out" "$tmp/$name.err" >&2
    failed=1
    return 0
  fi
  if grep -E -n -B1 -A1 "(/reprotrain/|/examples/)[^:]*:[0-9]+: [A-Za-z]*(Deprecation|Future)Warning|MigrationWarning" \
    "$tmp/$name.err" >&2; then
    echo "deps_check: FAILED: \`$*\` printed a deprecation warning of reprotrain's making (above)" >&2
    failed=1
  fi
  # anything else on stderr (warnings from inside the libraries, their log lines): listed, not failed
  grep -v -E "^reprotrain: " "$tmp/$name.err" | sort | uniq -c | sort -rn | head -n 8 | cut -c 1-180 | sed "s/^/    (not reprotrain's) /" || true
}

step run 0 reprotrain run +experiment=baseline
step show 0 reprotrain show last
step rerun 0 reprotrain rerun last --verify
if ! grep -q "REPRODUCED" "$tmp/rerun.out" "$tmp/rerun.err"; then
  echo "deps_check: FAILED: \`reprotrain rerun last --verify\` did not say REPRODUCED" >&2
  failed=1
fi
step sweep 0 reprotrain run -m +experiment=baseline train.lr=0.01,0.02

# one_line NAME PATTERN: the step's stderr is exactly one line, matching PATTERN
one_line() {
  if [ "$(wc -l <"$tmp/$1.err")" = 1 ] && grep -q -E "$2" "$tmp/$1.err"; then
    sed "s/^/    /" "$tmp/$1.err"
  else
    echo "deps_check: FAILED: a broken pair should be one line naming the package to upgrade; got:" >&2
    cat "$tmp/$1.err" >&2
    failed=1
  fi
}

if [ "$end" = oldest ]; then
  # Known-broken pairs: the releases just below the floors install beside the newest pathspec and
  # SQLAlchemy and fail there; reprotrain says so in one line naming the package to upgrade.
  stop_store_helper  # it holds the MLflow it imported; these launches do the store work themselves
  export REPROTRAIN_STORE_HELPER=0
  echo "==> [$end] dvc 3.65.0 beside pathspec 1.x (below the floor)"
  "${uv[@]}" --no-deps "dvc==3.65.0" "pathspec>=1"
  step broken-dvc 1 reprotrain check --hash
  one_line broken-dvc "^reprotrain: error: dvc 3\.65\.0 cannot be imported with pathspec .*pip install 'dvc>=3\.66'"
  echo "==> [$end] mlflow-skinny 3.8.1 beside SQLAlchemy 2.1 (below the floor)"
  "${uv[@]}" --no-deps "dvc==$(floor dvc)" "pathspec<1" "mlflow-skinny==3.8.1" "sqlalchemy>=2.1"
  step broken-mlflow 1 reprotrain run +experiment=baseline
  one_line broken-mlflow "^reprotrain: error: mlflow-skinny 3\.8\.1 cannot be imported with SQLAlchemy 2\.1.*pip install 'mlflow-skinny>=3\.9'"
fi

echo "==> [$end] $([ "$failed" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
exit "$failed"
