"""Hydra: the user's config directory run as a real Hydra app, with Hydra's own command line.

`hydra.main` is called on reprotrain's task function with the config path found at run time, so
overrides, `-m`, launchers, sweepers, callbacks, `--cfg` and `--help` behave exactly as Hydra
defines them (the Compose API would lose output dirs, multirun, launchers and callbacks).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprotrain.adapters.compat import reports_incompatible
from reprotrain.errors import ReprotrainError, UsageError

__all__ = [
    "config_sources",
    "PROVIDED_VARIABLES",
    "HydraArgs",
    "JobContext",
    "env_keys",
    "job_context",
    "names_the_run",
    "parse_args",
    "register_resolver",
    "resolve",
    "run_app",
    "volatile_keys",
]

# Flags after which Hydra composes and prints, or prints help, without running any job.
_NO_JOB_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion")


@dataclass(frozen=True)
class HydraArgs:
    namespace: argparse.Namespace
    overrides: list[str]

    @property
    def runs_jobs(self) -> bool:
        return not any(getattr(self.namespace, flag, None) for flag in _NO_JOB_FLAGS)

    @property
    def multirun(self) -> bool:
        return bool(self.namespace.multirun)

    @property
    def config_name(self) -> str | None:
        return self.namespace.config_name  # type: ignore[no-any-return]


def _parser() -> argparse.ArgumentParser:
    from hydra._internal.utils import get_args_parser  # Hydra's own parser: the only way to
    # read its command line exactly as hydra.main will (FACTS: appending to argv breaks flags)

    parser = get_args_parser()
    parser.prog = "reprotrain run"
    return parser


@reports_incompatible
def parse_args(tokens: Sequence[str]) -> HydraArgs:
    """Parse a Hydra command line; a malformed one exits 2 through argparse, as Hydra's does."""
    namespace = _parser().parse_args(list(tokens))
    overrides = list(namespace.overrides or [])
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:  # Hydra's own grammar, before anything runs: a malformed override gets one line
        OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        where = str(exc).splitlines()[0] if str(exc).strip() else "syntax error"
        raise UsageError(
            f"malformed override {exc.override!r}: {where}",
            hint="see `reprotrain run --help` and Hydra's override grammar (key=value, +key=value, ~key)",
        ) from None
    return HydraArgs(namespace, overrides)


def build_argv(args: HydraArgs, extra_overrides: Sequence[str]) -> list[str]:
    """Rebuild a command line equivalent to ``args`` with ``extra_overrides`` appended.

    Flags are written `--flag=value` so that no optional flag (such as `--info`) can swallow an
    override that follows it.
    """
    argv: list[str] = []
    for action in _parser()._actions:
        if not action.option_strings or action.dest in {"overrides", "version"}:
            continue
        value = getattr(args.namespace, action.dest, None)
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(flag)
        elif value is not None and value != action.default:
            argv.append(f"{flag}={value}")
    return argv + list(args.overrides) + list(extra_overrides)


_ELSEWHERE = ("hydra/launcher", "hydra/sweeper", "hydra.launcher.", "hydra.sweeper.")


@reports_incompatible
def smoke_tokens(tokens: Sequence[str], smoke_overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """The command line of one short job before ``tokens`` (a run or a sweep): the sweep's first
    job (each swept key at its first value; no multirun, launcher or sweeper: it runs here), with
    ``smoke_overrides`` in place of whatever they set. Also the swept keys that cannot be
    enumerated (an `interval` or `glob` sweep), left at their config's value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args = parse_args(tokens)
    parser = OverridesParser.create()
    smoke_keys = {o.key_or_group for o in parser.parse_overrides(list(smoke_overrides))}
    kept: list[str] = []
    left: list[str] = []
    for override in parser.parse_overrides(args.overrides):
        key = override.key_or_group
        if key.startswith(_ELSEWHERE) or key in smoke_keys:
            continue
        if not override.is_sweep_override():
            kept.append(str(override.input_line))
            continue
        try:
            first = next(iter(override.sweep_string_iterator()), None)
        except HydraException:
            first = None
        if first is None:
            left.append(str(override.input_line))
        else:
            kept.append(f"{override.get_key_element()}={first}")
    namespace = argparse.Namespace(**vars(args.namespace))
    namespace.multirun = False
    return build_argv(HydraArgs(namespace, kept), list(smoke_overrides)), left


def quote_value(text: str) -> str:
    """A Hydra override value as a quoted string (paths may hold spaces or quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sets_key(args: HydraArgs, key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in args.overrides)


def _primary_raw(config_dir: Path, config_name: str) -> dict[str, Any] | None:
    """The primary config file as written: nothing resolved (its `${now:...}` or `${oc.env:...}`
    are Hydra's to resolve later, with resolvers only Hydra has), or None if it cannot be read.
    Read once per launch however many questions are asked of it (callers only read it)."""
    path = config_dir / (config_name if config_name.endswith(".yaml") else f"{config_name}.yaml")
    try:
        changed = path.stat().st_mtime_ns
    except OSError:
        return None
    return _load_raw(str(path), changed)


@functools.lru_cache(maxsize=8)
def _load_raw(path: str, _changed: int) -> dict[str, Any] | None:
    from omegaconf import OmegaConf

    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # a broken file (or a directory) is Hydra's to report, with its own message
        return None
    return {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else None


def _raw_get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def primary_config_value(config_dir: Path, config_name: str, dotted: str) -> Any:
    """What the primary config file itself sets ``dotted`` to (e.g. `hydra.run.dir`), unresolved."""
    return _raw_get(_primary_raw(config_dir, config_name), dotted)


def primary_config_sets(config_dir: Path, config_name: str, dotted: str) -> bool:
    """Whether the primary config file itself sets ``dotted`` (e.g. `hydra.run.dir`)."""
    return primary_config_value(config_dir, config_name, dotted) is not None


def override_value(args: HydraArgs, key: str) -> str | None:
    """The value the command line gives ``key`` (the last one wins, as in Hydra)."""
    found = None
    for override in args.overrides:
        name, sep, value = override.lstrip("+~").partition("=")
        if sep and name == key:
            found = value
    return found


def group_in_defaults(config_dir: Path, config_name: str, group: str) -> str | None:
    """How the primary config's defaults list names the config group ``group`` (`experiment:
    null`), or None when it does not name it."""
    defaults = _raw_get(_primary_raw(config_dir, config_name), "defaults")
    for item in defaults if isinstance(defaults, list) else []:
        if isinstance(item, dict):
            for key, value in item.items():
                text = str(key).strip()
                if "@" in text:
                    continue  # `experiment@foo: null` is another slot: `+experiment=x` adds one
                name = text.removeprefix("override ").removeprefix("optional ").strip().lstrip("/")
                if name == group:
                    return f"{key}: {'null' if value is None else value}"
    return None


def launcher_choice(args: HydraArgs, config_dir: Path, config_name: str) -> str | None:
    """The Hydra launcher a launch uses (`submitit_slurm`), from the command line or the primary
    config's defaults list (`override hydra/launcher: ...`); None for Hydra's basic one."""
    chosen = override_value(args, "hydra/launcher")
    if chosen:
        return chosen
    named = group_in_defaults(config_dir, config_name, "hydra/launcher")
    return named.split(":", 1)[1].strip() if named else None


_PACKAGE_GROUP = re.compile(r"^#\s*@package\s+_group_\s*$", re.M)


def uses_package_group(config_dir: Path, limit: int = 2000) -> Path | None:
    """A config file of ``config_dir`` written for Hydra 1.0 (`# @package _group_`), if any: such
    configs compose as their authors meant only with version_base 1.1."""
    for n, path in enumerate(sorted(config_dir.rglob("*.yaml"))):
        if n >= limit:
            break
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                head = fh.read(2048)
        except OSError:
            continue
        if _PACKAGE_GROUP.search(head):
            return path
    return None


def config_sources(args: HydraArgs, config_dir: Path, config_name: str, cwd: Path) -> list[tuple[Path, str]]:
    """Every local directory Hydra may compose this config from, with what named it: the
    project's config directory (or `--config-path`), `--config-dir`, and `file://` entries of
    `hydra.searchpath` given on the command line or in the primary config."""

    ns = args.namespace
    primary = Path(ns.config_path) if getattr(ns, "config_path", None) else config_dir
    sources = [(cwd / primary, "--config-path" if primary is not config_dir else "config_dir")]
    if getattr(ns, "config_dir", None):
        sources.append((cwd / ns.config_dir, "--config-dir"))
    entries: list[tuple[str, str]] = []
    for override in args.overrides:
        key, _, value = override.lstrip("+").partition("=")
        if key == "hydra.searchpath" and value:
            entries.extend((item, "hydra.searchpath on the command line") for item in _items(value))
    path = primary if primary.is_absolute() else cwd / primary
    path = path / (config_name if config_name.endswith(".yaml") else f"{config_name}.yaml")
    listed = _raw_get(_primary_raw(path.parent, path.name), "hydra.searchpath")
    if isinstance(listed, list):
        entries.extend((str(item), f"hydra.searchpath in {path.name}") for item in listed)
    for item, how in entries:
        if item.startswith("file://"):
            sources.append((cwd / item[len("file://") :], how))
    return sources


def _items(value: str) -> list[str]:
    """The elements of a list override value (`[file:///a,pkg://b]`), or the value itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"x={value}").value()
    except Exception:
        return [value]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


@reports_incompatible
def warm_imports() -> None:
    """Import what running the app needs, ahead of time (see launch._gate_while_importing)."""
    import hydra  # noqa: F401
    import hydra._internal.utils  # noqa: F401
    from omegaconf import OmegaConf  # noqa: F401


class LauncherFailed(ReprotrainError):
    """Hydra's launcher or sweeper raised (a cancelled Slurm job, a Ray cluster that refused the
    connection): its message, in one line."""

    exit_code = 1


_FULL_ERROR = "HYDRA_FULL_ERROR"


def run_app(
    config_dir: Path,
    config_name: str,
    version_base: str,
    argv: Sequence[str],
    task: Callable[[Any], Any],
) -> None:
    """Run the Hydra app. Hydra reports a bad command line or config itself and exits 1 (the caller
    maps it); what else it catches (a launcher's failure) it would print as a traceback: that is
    raised as LauncherFailed instead (HYDRA_FULL_ERROR makes Hydra raise what it catches)."""
    import hydra
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    if not config_dir.is_dir():
        raise UsageError(
            f"config directory {config_dir} does not exist",
            hint="set config_dir in [tool.reprotrain] to your Hydra config directory",
        )
    register_resolver()
    base = main_version_base(hydra.__version__, version_base)
    saved, users = sys.argv, os.environ.get(_FULL_ERROR)
    sys.argv = ["reprotrain-run", *argv]
    os.environ[_FULL_ERROR] = "1"
    as_user = functools.update_wrapper(functools.partial(_with_users_variable, task, users), task)
    try:
        hydra.main(config_path=str(config_dir), config_name=config_name, **base)(as_user)()
    except CompactHydraException as exc:  # as Hydra prints it
        sys.stderr.write(str(exc) + os.linesep)
        if isinstance(exc.__cause__, OmegaConfBaseException):
            sys.stderr.write(str(exc.__cause__) + os.linesep)
        raise SystemExit(1) from None
    except OmegaConfBaseException as exc:  # the config itself (`${oc.env:UNSET}` in hydra.run.dir)
        sys.stderr.write(str(exc) + os.linesep)
        raise SystemExit(1) from None
    except Exception as exc:
        if users == "1" or _raised_in_reprotrain(exc):  # asked for (as Hydra reads it), or reprotrain's defect
            traceback.print_exc()
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = lines[0][:400] + (" ..." if len(lines) > 1 or len(lines[0]) > 400 else "") if lines else ""
        raise LauncherFailed(f"{type(exc).__name__}: {text}" if text else type(exc).__name__) from exc
    finally:
        sys.argv = saved
        _set_variable(_FULL_ERROR, users)


def _raised_in_reprotrain(exc: BaseException) -> bool:
    """Whether the exception came out of reprotrain's own code (a job's, re-raised by Hydra's sweeper)."""
    here = Path(__file__).resolve()
    package = here.parent.parent
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # the first is run_app, which caught it
    for frame in frames:
        path = Path(frame.filename).resolve()
        if path != here and path.is_relative_to(package):
            return True
    return False


def _with_users_variable(task: Callable[[Any], Any], users: str | None, cfg: Any) -> Any:
    """The task (possibly in a launcher's worker) with HYDRA_FULL_ERROR as the user had it: the
    training code's own Hydra app reports its errors as it would without reprotrain."""
    raised = os.environ.get(_FULL_ERROR)
    _set_variable(_FULL_ERROR, users)
    try:
        return task(cfg)
    finally:
        _set_variable(_FULL_ERROR, raised)


def _set_variable(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:2])


def main_version_base(installed: str, wanted: str) -> dict[str, str]:
    """The version_base argument for hydra.main: Hydra 1.4 deprecates the argument (a
    `Hydra15MigrationWarning` on every call) and its defaults are those of 1.3, so it is left out
    there; older behaviour (1.1, for `# @package _group_` configs) is no longer available in 1.4."""
    if _release(installed) < (1, 4):
        return {"version_base": wanted}
    if _release(wanted) >= (1, 3):
        return {}
    raise UsageError(
        f"version_base {wanted} (Hydra 1.0-era configs: `# @package _group_`) is not supported by the installed "
        f"hydra-core {installed}",
        hint="write `# @package <group name>` (or drop the line) in those config files, or install hydra-core<1.4",
    )


@dataclass(frozen=True)
class JobContext:
    output_dir: Path
    name: str
    num: int
    overrides: list[str]
    choices: dict[str, Any]
    config_name: str
    sweep_dir: str | None
    hydra_overrides: list[str]
    optimizing_sweeper: str | None  # a sweeper that uses the jobs' return values (e.g. Optuna)
    direction: str = "minimize"  # the sweeper's `direction` (Optuna's; its default), for the best job
    # the Hydra launcher the job ran on: `name` (its hydra/launcher choice) and its `config`
    launcher: dict[str, Any] = field(default_factory=dict)


def job_context() -> JobContext:
    """What Hydra knows about the job running now (only valid inside the task function)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hc = HydraConfig.get()
    choices = OmegaConf.to_container(hc.runtime.choices, resolve=True) or {}
    choices = {k: v for k, v in choices.items() if not str(k).startswith("hydra/")}  # type: ignore[union-attr]
    num = OmegaConf.select(hc, "job.num", default=0)  # type: ignore[arg-type]  # absent in single runs
    sweep_dir = None
    if str(hc.mode) == "RunMode.MULTIRUN":
        sweep_dir = str(hc.sweep.dir)
    # as given: an override's own `${...}` (`logger.run_id=${reprotrain:run_id}`) is the job's to resolve
    task = [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False) or []]  # type: ignore[union-attr]
    hydra = [str(o) for o in OmegaConf.to_container(hc.overrides.hydra, resolve=False) or []]  # type: ignore[union-attr]
    return JobContext(
        output_dir=Path(hc.runtime.output_dir),
        name=str(hc.job.name),
        num=int(num) if num is not None else 0,
        overrides=task,
        choices={str(k): v for k, v in choices.items()},
        config_name=str(hc.job.config_name),
        sweep_dir=sweep_dir,
        hydra_overrides=[o for o in hydra if not _is_own(o)],
        optimizing_sweeper=_optimizing_sweeper(hc),
        direction=_direction(hc),
        launcher=_launcher(hc, hc.runtime.choices),
    )


def _launcher(hc: Any, choices: Any) -> dict[str, Any]:
    """The launcher a multirun job ran on, its settings as written (an `${oc.env:...}` in them is
    not resolved into the record); {} for a single run, which no launcher runs."""
    from omegaconf import OmegaConf

    if str(hc.mode) != "RunMode.MULTIRUN":
        return {}
    config = OmegaConf.to_container(hc.launcher, resolve=False)
    return {"name": str(choices.get("hydra/launcher") or "basic"), "config": config if isinstance(config, dict) else {}}


def _is_own(override: str) -> bool:
    """An override reprotrain adds to Hydra's command line, never recorded as the user's."""
    key, _, value = override.partition("=")
    key = key.lstrip("+~")
    return key in _OWN_KEYS or (key == "hydra/sweeper" and value == REPLAY_SWEEPER)


def _direction(hc: Any) -> str:
    """`minimize` or `maximize`: the sweeper's setting (the first objective's, for several)."""
    from omegaconf import OmegaConf

    value = OmegaConf.select(hc, "sweeper.direction", default=None)
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        value = value[0] if len(value) else None
    text = str(getattr(value, "name", value) or "minimize").lower()
    return "maximize" if "max" in text else "minimize"


def _optimizing_sweeper(hc: Any) -> str | None:
    from omegaconf import OmegaConf

    if str(hc.mode) != "RunMode.MULTIRUN":
        return None
    target = str(OmegaConf.select(hc, "sweeper._target_", default="") or "")
    # a replay's sweeper launches a list: it optimizes nothing
    return None if not target or target.endswith(("BasicSweeper", "ReplaySweeper")) else target.rsplit(".", 1)[-1]


def resolve(cfg: Any) -> dict[str, Any]:
    """Resolve every interpolation once (`${now:...}`, `${oc.env:...}` take one value here)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        missing = re.search(r"Environment variable '([^']+)' not found", str(exc))
        hint = None
        if missing:
            var = missing.group(1)
            hint = (
                f"export {var}=... before the run, or give a default: ${{oc.env:{var},<default>}}; if the "
                f"training code sets {var} itself when it starts (as rootutils sets PROJECT_ROOT), use a "
                "module:function entrypoint: reprotrain imports the module before it resolves the config"
            )
        raise UsageError(f"the config does not resolve: {exc}".splitlines()[0], hint=hint) from exc
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


# hydra.* overrides that reprotrain sets itself, or that only describe this invocation
_OWN_KEYS = {"hydra.run.dir", "hydra.sweep.dir", "hydra.job.name", "hydra.mode", "hydra.sweeper.jobs_file"}
REPLAY_SWEEPER = "reprotrain_replay"  # hydra_plugins/reprotrain_replay: a rerun's recorded jobs
_VOLATILE_MARKERS = ("${now:", "${hydra:runtime.", "${hydra:run.", "${hydra:sweep.", "${reprotrain:")
# variables reprotrain gives the code (DESIGN.md §4): they say where and as which run the job is
# recorded, not what it computes, so a value read from one is volatile; none is a secret from the
# user's environment, except a tracking URI that carries credentials or a query
_NOT_SECRET_VARIABLES = frozenset(
    {
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_RUN_CONTEXT",
        "REPROTRAIN_RUN_ID",
        "REPROTRAIN_CONFIG",
        "REPROTRAIN_OUTPUT_DIR",
        "REPROTRAIN_EXPERIMENT_ID",
        "REPROTRAIN_LINKS",
    }
)
_STORE_VARIABLES = frozenset({"MLFLOW_TRACKING_URI", "REPROTRAIN_TRACKING_URI"})
PROVIDED_VARIABLES = _NOT_SECRET_VARIABLES | _STORE_VARIABLES
_NAMES_THE_RUN = re.compile(
    r"\$\{\s*reprotrain:\s*run_id|\$\{oc\.env:\s*(MLFLOW_RUN_ID|REPROTRAIN_RUN_ID|MLFLOW_RUN_CONTEXT)\b"
)
_OC_ENV = re.compile(r"\$\{oc\.env:\s*([^,}\s]+)")


def volatile_keys(
    cfg: Any, resolved: dict[str, Any], output_dir: Path, run_id: str = "", root: Path | None = None
) -> list[str]:
    """Dotted keys whose value comes from the time, Hydra's runtime (`${hydra:runtime.cwd}`), the
    job's output directory, the run's ID or where the project lives (a path under its root, as
    `${oc.env:PROJECT_ROOT}` gives): they differ on every run, or in a rerun's worktree, by
    design, so digests and rerun checks leave them out (they are recorded all the same)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False)
    found = set()
    varies = [str(output_dir), *([run_id] if run_id else [])]
    top = str(root).rstrip(os.sep) if root is not None else None

    def under_root(node: str, resolved_node: Any) -> bool:
        # an interpolation (`${oc.env:PROJECT_ROOT}/data`, `${paths.root_dir}`) that gave a path in
        # the project: a literal path is the user's to keep the same, and is compared
        return (
            top is not None
            and "${" in node
            and isinstance(resolved_node, str)
            and (resolved_node == top or resolved_node.startswith(top + os.sep))
        )

    def walk(node: Any, resolved_node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                sub = resolved_node.get(key) if isinstance(resolved_node, dict) else None
                walk(child, sub, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, str) and (
            any(m in node for m in _VOLATILE_MARKERS)
            or any(var in PROVIDED_VARIABLES for var in _OC_ENV.findall(node))
            or (isinstance(resolved_node, str) and any(v in resolved_node for v in varies))
            or under_root(node, resolved_node)
        ):
            found.add(prefix)

    walk(raw, resolved, "")
    return sorted(found)


def names_the_run(cfg: Any) -> bool:
    """Whether the config refers to the run's ID (then it is resolved again once the run exists)."""
    from omegaconf import OmegaConf

    return bool(_NAMES_THE_RUN.search(str(OmegaConf.to_container(cfg, resolve=False))))


_RESOLVER_KEYS = {
    "run_id": "REPROTRAIN_RUN_ID",
    "experiment_id": "REPROTRAIN_EXPERIMENT_ID",
    "tracking_uri": "REPROTRAIN_TRACKING_URI",
}


def register_resolver() -> None:
    """`${reprotrain:run_id}`, `${reprotrain:experiment_id}`, `${reprotrain:tracking_uri}` in any
    config: the job's run, known when the config resolves (so a framework logger can be pointed
    at reprotrain's run from the command line)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("reprotrain"):
        import inspect

        # omegaconf 2.4.1 renames register_new_resolver (deprecated there) to register_resolver,
        # the name 2.0's string-only API had (deprecated in 2.1-2.3): told apart by `replace`
        register = OmegaConf.register_resolver
        if "replace" not in inspect.signature(register).parameters:
            register = OmegaConf.register_new_resolver
        register("reprotrain", _reprotrain_value)


def _reprotrain_value(key: str) -> str:
    from reprotrain.core.record import strip_credentials

    variable = _RESOLVER_KEYS.get(str(key).strip())
    if variable is None:
        raise ValueError(f"${{reprotrain:{key}}}: unknown key; use one of: {', '.join(_RESOLVER_KEYS)}")
    value = os.environ.get(variable)
    if value is None:
        raise ValueError(f"${{reprotrain:{key}}} is only known inside a job that reprotrain runs")
    return strip_credentials(value).split("?", 1)[0] if variable == "REPROTRAIN_TRACKING_URI" else value


def env_keys(cfg: Any, environ: Mapping[str, str]) -> list[str]:
    """Dotted keys whose value the environment supplied through `${oc.env:VAR}`: masked wherever
    written. A key that fell back to the default written in the config is not (it is in git)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False)
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, str) and any(_from_user(var, environ) for var in _OC_ENV.findall(node)):
            found.append(prefix)

    walk(raw, "")
    return found


def _from_user(variable: str, environ: Mapping[str, str]) -> bool:
    """Whether a `${oc.env:...}` value is the user's (masked wherever written)."""
    from reprotrain.core.record import strip_credentials

    if variable not in environ or variable in _NOT_SECRET_VARIABLES:
        return False
    value = environ[variable]
    from reprotrain.core.secrets import is_secret_name

    if os.path.isabs(value) and os.path.exists(value) and not is_secret_name(variable):
        return False  # a location on this machine (`PROJECT_ROOT`, a data dir): a path, not a credential
    if variable in _STORE_VARIABLES:
        uri = environ[variable]
        return strip_credentials(uri) != uri or "?" in uri
    return True


def to_config(resolved: dict[str, Any]) -> Any:
    """The resolved config as a read-only-structure DictConfig, as Hydra hands it to apps."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(resolved)
    OmegaConf.set_struct(cfg, True)
    return cfg


def to_yaml(resolved: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(resolved))
