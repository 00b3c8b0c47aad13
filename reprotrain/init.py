"""`reprotrain init`: adopt reprotrain in an existing repository, without guessing silently.

It finds the training app (an `@hydra.main` function, else a plain script), the Hydra config
directory, the data directory and the project's name, writes `[tool.reprotrain]` into
pyproject.toml, and lists the shell commands still to run, in an order that works when followed
literally (`dvc add` before any `git add -A`, so the data never lands in git). What it cannot
decide it says, with the line to add. Running it again changes nothing.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprotrain.settings import STATE_DIR, default_name

if TYPE_CHECKING:
    from reprotrain.adapters.git import GitSnapshot

__all__ = ["Candidate", "InitReport", "Unwritten", "init"]

_SKIP_DIRS = {".git", ".dvc", ".venv", "venv", "node_modules", STATE_DIR, "outputs", "multirun", "__pycache__"}
_NOT_APPS = {"tests", "test", "docs", "doc"}  # directories whose scripts are never the training
_NOT_APP_FILES = {"setup.py", "conftest.py", "noxfile.py", "__init__.py", "__main__.py"}

# words in a script's path or function name that say what it does
_TRAINING = {"train", "training", "trainer", "fit", "finetune", "pretrain"}
_EVALUATION = {"eval", "evaluate", "evaluation", "test", "predict", "prediction", "inference", "infer"}
_EVALUATION |= {"score", "scoring", "validate", "validation", "benchmark", "export", "serve"}
_SEARCH = {"optuna", "hparams", "hparam", "hpo", "hyperopt", "search", "sweep", "tune", "tuning"}
_KIND_ORDER = ["training", "other", "evaluation", "search"]
_KIND_LABEL = {"evaluation": "an evaluation script", "search": "a hyperparameter-search variant"}

_VERSION_BASE_ABSENT = "1.1"  # hydra.main without version_base: Hydra 1.1's behaviour


@dataclass(frozen=True)
class Candidate:
    """Code that could be the training: an `@hydra.main` function, or a plain script."""

    path: str  # relative to the project root, posix
    function: str | None = None  # None for a plain script (run as a command)
    config_path: str | None = None
    config_name: str | None = None
    version_base: str | None = None  # what the decorator asks for, as Hydra reads it; None: unknown
    argparse: bool = False

    @property
    def entrypoint(self) -> str:
        return f"{self.path}:{self.function}" if self.function else f"python {self.path}"

    @property
    def kind(self) -> str:
        """training, evaluation, search (a hyperparameter-search variant), or other."""
        stem = posixpath.basename(self.path).removesuffix(".py")
        words = set(re.findall(r"[a-z0-9]+", f"{stem} {self.function or ''}".lower()))
        if words & _SEARCH:
            return "search"
        if words & _TRAINING:
            return "training"
        return "evaluation" if words & _EVALUATION else "other"


@dataclass(frozen=True)
class Unwritten:
    """A setting init did not write: why, the candidates it saw, and the line to add."""

    key: str
    reason: str
    line: str
    candidates: tuple[str, ...] = ()


@dataclass
class InitReport:
    root: Path
    written: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    unwritten: list[Unwritten] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _walk(root: Path, suffix: str, limit: int = 5000) -> list[Path]:
    found: list[Path] = []
    stack = [root]
    while stack and len(found) < limit:
        directory = stack.pop()
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.name.endswith(suffix):
                found.append(entry)
    return sorted(found)


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _version_base(keywords: dict[str, ast.expr]) -> str | None:
    """The version_base a `hydra.main` call asks for: absent means 1.1, None means the installed
    Hydra's own (its major.minor); None when it is not a literal."""
    if "version_base" not in keywords:
        return _VERSION_BASE_ABSENT
    node = keywords["version_base"]
    if isinstance(node, ast.Constant) and node.value is None:
        return _installed_hydra()
    return _literal(node)


def _installed_hydra() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return ".".join(version("hydra-core").split(".")[:2])
    except PackageNotFoundError:  # pragma: no cover - hydra-core is a dependency
        return "1.3"


def _is_hydra_main(deco: ast.expr) -> ast.Call | None:
    if isinstance(deco, ast.Call) and ast.unparse(deco.func) in {"hydra.main", "main"}:
        return deco
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


_CLI_LIBRARIES = {"argparse", "click", "typer", "fire"}


def _imports(tree: ast.Module, names: set[str]) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and {a.name.split(".")[0] for a in node.names} & names:
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in names:
            return True
    return False


def _is_script(tree: ast.Module, path: Path) -> bool:
    """Code meant to be run: a `__main__` block, a command-line parser, or statements at the top
    level of a file named like training."""
    if any(_is_main_guard(node) for node in tree.body) or _imports(tree, _CLI_LIBRARIES):
        return True
    words = set(re.findall(r"[a-z0-9]+", path.stem.lower()))
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    return bool(words & _TRAINING) and not all(map(_is_definition, body))


def _is_definition(node: ast.stmt) -> bool:
    """An import, a def, a class or a constant: what a module holds without doing anything."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    return isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Constant, type(None)))


def _may_run(path: Path) -> bool:
    """A cheap look before parsing: only files that might be run are (a library's modules are not)."""
    if set(re.findall(r"[a-z0-9]+", path.stem.lower())) & _TRAINING:
        return True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(word in text for word in ("hydra", "__main__", *_CLI_LIBRARIES))


def _candidates(root: Path) -> tuple[list[Candidate], list[Candidate]]:
    """(`@hydra.main` functions, plain scripts with a `__main__` guard), outside tests and docs."""
    apps: list[Candidate] = []
    scripts: list[Candidate] = []
    for path in _walk(root, ".py"):
        rel = path.relative_to(root).as_posix()
        if path.name in _NOT_APP_FILES or path.name.startswith("test_") or set(rel.split("/")[:-1]) & _NOT_APPS:
            continue
        tree = _parse(path) if _may_run(path) else None
        if tree is None:
            continue
        found = False
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for call in filter(None, map(_is_hydra_main, node.decorator_list)):
                kwargs = dict(zip(("config_path", "config_name", "version_base"), call.args))
                kwargs.update({k.arg: k.value for k in call.keywords if k.arg})
                cp, cn = _literal(kwargs.get("config_path")), _literal(kwargs.get("config_name"))
                apps.append(Candidate(rel, node.name, cp, cn, _version_base(kwargs)))
                found = True
        if not found and _is_script(tree, path):
            scripts.append(Candidate(rel, argparse=_imports(tree, _CLI_LIBRARIES)))
    return apps, scripts


# --------------------------------------------------------------------------- what the project runs


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _stages(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(working directory, definition) of every stage of dvc.yaml (`foreach`/`matrix`: its `do`)."""
    pipeline = _yaml(root / "dvc.yaml") if (root / "dvc.yaml").is_file() else None
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    found = []
    for stage in stages.values() if isinstance(stages, dict) else ():
        if isinstance(stage, dict):
            body = stage["do"] if isinstance(stage.get("do"), dict) else stage
            found.append((str(body.get("wdir") or stage.get("wdir") or "."), body))
    return found


def _stage_paths(root: Path, *keys: str) -> list[str]:
    """The paths a dvc.yaml lists under ``keys`` (deps, outs, ...), relative to the root."""
    paths = []
    for wdir, body in _stages(root):
        for key in keys:
            entries = body.get(key)
            for entry in entries if isinstance(entries, list) else ():
                name = next(iter(entry), None) if isinstance(entry, dict) else entry
                if isinstance(name, str):
                    paths.append(posixpath.normpath(posixpath.join(wdir, name)))
    return paths


def _commands(root: Path) -> dict[str, list[tuple[str, str]]]:
    """The commands the project says it runs, as (working directory, command), by the file that
    says so: every `cmd` of a stage in dvc.yaml, and every line of a fenced code block in the README."""
    commands: dict[str, list[tuple[str, str]]] = {"dvc.yaml": []}
    for wdir, body in _stages(root):
        cmd = body.get("cmd")
        lines = cmd if isinstance(cmd, list) else [cmd]
        commands["dvc.yaml"] += [(wdir, line) for line in lines if isinstance(line, str)]
    for name in ("README.md", "readme.md", "README.markdown", "README"):
        if (root / name).is_file():
            commands[name] = [(".", line) for line in _code_block_lines(root / name)]
            break
    return commands


def _code_block_lines(readme: Path) -> list[str]:
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines, fence = [], None
    for line in text.splitlines():
        stripped = line.strip()
        marker = stripped[:3]
        if marker in ("```", "~~~"):
            fence = None if fence == marker else (fence or marker)
            continue
        if fence:
            lines.append(stripped.removeprefix("$ "))
    return lines


def _references(commands: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """(script paths, modules) that the commands run with python: `python src/train.py ...`,
    `python -m src.train ...`."""
    paths: set[str] = set()
    modules: set[str] = set()
    for wdir, command in commands:
        try:
            words = shlex.split(command, comments=True)
        except ValueError:
            words = command.split()
        for i, word in enumerate(words):
            if word == "-m" and i + 1 < len(words):
                modules.add(words[i + 1])
            elif word.endswith(".py"):
                paths.add(posixpath.normpath(posixpath.join(wdir, word)))
    return paths, modules


def _is_referenced(candidate: Candidate, paths: set[str], modules: set[str]) -> bool:
    module = candidate.path.removesuffix(".py").replace("/", ".")
    return candidate.path in paths or module in modules or module.removeprefix("src.") in modules


# --------------------------------------------------------------------------- choosing


def _choose(candidates: list[Candidate], referenced: list[Candidate]) -> Candidate | None:
    """The training code, when one stands out: among those the project runs (dvc.yaml, README)
    if any of them may train, else among all; evaluation scripts and search variants never win."""
    eligible = [c for c in candidates if c.kind in ("training", "other")]
    run = [c for c in referenced if c in eligible]
    pool = run or eligible
    training = [c for c in pool if c.kind == "training"]
    if len(training) == 1:
        return training[0]
    if not training and len(pool) == 1:
        return pool[0]
    return None


def _label(candidate: Candidate) -> str:
    label = _KIND_LABEL.get(candidate.kind)
    return f"{candidate.entrypoint} ({label})" if label else candidate.entrypoint


def _set_entrypoint(
    root: Path, report: InitReport, settings: dict[str, str], candidates: list[Candidate]
) -> Candidate | None:
    """Write the entrypoint when the training code stands out, else say why not, with the line."""
    references = {source: _references(commands) for source, commands in _commands(root).items()}
    run_by = {
        c: [s for s, (paths, modules) in references.items() if _is_referenced(c, paths, modules)] for c in candidates
    }
    chosen = _choose(candidates, [c for c in candidates if run_by[c]])
    what = "script" if candidates and candidates[0].function is None else "@hydra.main app"
    if chosen is None:
        report.unwritten.append(_no_entrypoint(candidates, what))
        return None
    settings["entrypoint"] = chosen.entrypoint
    why = f"the one {' and '.join(run_by[chosen])} runs" if run_by[chosen] and len(candidates) > 1 else ""
    others = [_label(c) for c in candidates if c != chosen]
    if others:
        report.notes.append(f"chose {chosen.entrypoint} as {why or 'the training ' + what}, not " + ", ".join(others))
    if chosen.argparse:
        report.notes.append(
            f"{chosen.path} takes command-line flags: pass them from the config if it needs any, e.g. "
            f'entrypoint = "python {chosen.path} --lr ${{train.lr}}"'
        )
    return chosen


def _no_entrypoint(candidates: list[Candidate], what: str) -> Unwritten:
    if not candidates:
        return Unwritten(
            "entrypoint",
            'no @hydra.main app and no script with an `if __name__ == "__main__"` block found',
            'entrypoint = "python train.py"   # the command that trains, or "path/to/file.py:function"',
        )
    likeliest = sorted(candidates, key=lambda c: _KIND_ORDER.index(c.kind))
    return Unwritten(
        "entrypoint",
        f"{len(candidates)} candidate {what}s and none is clearly the training one "
        "(name it in dvc.yaml or the README, or set it yourself)",
        f'entrypoint = "{likeliest[0].entrypoint}"',
        tuple(_label(c) for c in likeliest),
    )


def _app_settings(root: Path, app: Candidate) -> dict[str, str | None]:
    """What an `@hydra.main` decorator says about the config: its directory, name, version_base."""
    found: dict[str, str | None] = {"config_dir": None, "config_name": app.config_name}
    if app.config_path is not None:
        config_dir = ((root / app.path).parent / app.config_path).resolve()
        if config_dir.is_dir() and config_dir.is_relative_to(root):
            found["config_dir"] = config_dir.relative_to(root).as_posix()
    found["hydra_version_base"] = app.version_base
    return found


def _set_config(root: Path, report: InitReport, settings: dict[str, str], apps: list[Candidate]) -> None:
    """Config settings from the decorator of the training app, or from those of every candidate
    app where they all agree; else the config directory found by its files."""
    said = [_app_settings(root, app) for app in apps if app.function is not None]
    for key in ("config_dir", "config_name", "hydra_version_base"):
        values = {found[key] for found in said}
        value = values.pop() if len(values) == 1 else None
        if value is not None:
            settings[key] = value
    if len(apps) == 1 and apps[0].function is not None and apps[0].version_base is None:
        report.notes.append(
            f"hydra_version_base not written: the version_base of {apps[0].entrypoint} is not a literal"
        )
    if "config_dir" not in settings:
        candidates = _config_dirs(root)
        if candidates:
            settings["config_dir"] = candidates[0].relative_to(root).as_posix()
            if len(candidates) > 1:
                report.notes.append("other config dirs: " + ", ".join(str(c.relative_to(root)) for c in candidates[1:]))
        else:
            report.notes.append(
                "config_dir not written: no Hydra config directory found; create conf/config.yaml with the "
                "values your training reads (a command entrypoint gets them as ${...})"
            )
    if "config_name" not in settings and "config_dir" in settings:
        names = sorted(p.stem for p in (root / settings["config_dir"]).glob("*.yaml"))
        if names and "config" not in names:
            settings["config_name"] = names[0]


def _config_dirs(root: Path) -> list[Path]:
    """Directories whose YAML files look like a Hydra primary config (a `defaults:` list)."""
    dirs = []
    for path in _walk(root, ".yaml"):
        try:
            head = path.read_text(encoding="utf-8")[:4000]
        except (OSError, UnicodeDecodeError):
            continue
        if "defaults:" in head and path.parent not in dirs:
            dirs.append(path.parent)
    for name in ("conf", "config", "configs"):
        if (root / name).is_dir() and root / name not in dirs:
            dirs.append(root / name)
    return sorted(dirs, key=lambda d: len(d.parts))  # conf/ before conf/hparams_search/


# --------------------------------------------------------------------------- data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _data_dirs(root: Path, settings: dict[str, str], app: Candidate | None) -> list[str]:
    """The data to track with DVC: a top-level `data/`, else the directories that the configs,
    the training code and dvc.yaml's deps name (existing directories holding no Python code)."""
    if (root / "data").is_dir() and not any((root / "data").glob("*.py")):
        return ["data"]
    named: list[str] = []
    if "config_dir" in settings:
        for path in _walk(root / settings["config_dir"], ".yaml"):
            named += _strings(_yaml(path))
    if app is not None:
        tree = _parse(root / app.path)
        nodes = ast.walk(tree) if tree else ()
        named += [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    named += _stage_paths(root, "deps")
    found: list[str] = []
    for text in named:
        rel = _existing_data_dir(root, text, settings)
        if rel and not any(rel == f or rel.startswith(f + "/") for f in found):
            found = [f for f in found if not f.startswith(rel + "/")] + [rel]
    return found


def _existing_data_dir(root: Path, text: str, settings: dict[str, str]) -> str | None:
    text = text.strip()
    if "${" in text:  # ${paths.root_dir}/data/train.csv: what follows the last interpolation
        text = text.rsplit("}", 1)[-1].lstrip("/")
    if not text or "\n" in text or len(text) > 300 or text.startswith(("-", "~")):
        return None
    rel = posixpath.normpath(text)
    if rel.startswith(("..", "/")) or rel == ".":
        return None
    path = root / rel
    try:
        directory = path if path.is_dir() else path.parent if path.is_file() else None
    except (OSError, ValueError):  # a name too long, or with a NUL byte: not a path
        return None
    if directory is None or directory == root:
        return None
    rel = directory.relative_to(root).as_posix()
    parts = rel.split("/")
    config_dir = settings.get("config_dir", "")
    if set(parts) & _SKIP_DIRS or any(p.startswith(".") for p in parts) or rel == config_dir:
        return None
    if rel.startswith(config_dir + "/") or any(directory.glob("*.py")):
        return None
    return rel


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _dvc_tracked(root: Path, rel: str) -> bool:
    """Whether DVC already tracks ``rel``: its own or an enclosing `.dvc` file, a `.dvc` file
    inside it, or an output of dvc.yaml."""
    parts = rel.split("/")
    if any((root / f"{'/'.join(parts[: i + 1])}.dvc").is_file() for i in range(len(parts))):
        return True
    if any((root / rel).rglob("*.dvc")):
        return True
    return any(
        rel == out or rel.startswith(out + "/") or out.startswith(rel + "/")
        for out in _stage_paths(root, "outs", "metrics", "plots")
    )


# --------------------------------------------------------------------------- the steps


def _steps(root: Path, report: InitReport, data: list[str], git: GitSnapshot | None) -> None:
    """The shell commands still to run, in an order that works when followed literally: git and
    DVC first, then `dvc add` (which git-ignores the data), and only then `git add -A`."""
    from reprotrain.adapters.git import tracked_paths

    steps: list[str] = []
    if git is None:
        steps.append("git init")
    if not (root / ".dvc").is_dir() and not (git is not None and (git.root / ".dvc").is_dir()):
        up = os.path.relpath(git.root, root) if git is not None and git.root != root else None
        steps.append(f"(cd {shlex.quote(up)} && dvc init)" if up else "dvc init")  # at git's top: DVC refuses elsewhere
    untracked = [d for d in data if not _dvc_tracked(root, d)]
    if git is not None and untracked:  # committed to git already: `dvc add` refuses until it leaves git
        in_repo = {(root / d).relative_to(git.root).as_posix(): d for d in untracked}
        in_git = [in_repo[p] for p in sorted(tracked_paths(git.root, list(in_repo)))]
        if in_git:
            steps.append("git rm -r -q --cached " + " ".join(map(shlex.quote, in_git)))
    if untracked:
        steps.append("dvc add " + " ".join(map(shlex.quote, untracked)))
    elif not data and not _walk(root, ".dvc", limit=1) and not (root / "dvc.lock").is_file():
        report.notes.append(
            "no data directory found (no top-level data/, and no existing directory that the configs, the "
            "code or dvc.yaml name): track the data with `dvc add` before the commit, or set has_data = false"
        )
    if steps or report.written:
        if git is not None and git.state.commit is not None:
            _warn_uncommitted(root, report, git, untracked)
        what = ["track data with DVC"] if untracked else []
        what += ["configure reprotrain"] if report.written else []
        message = "adopt reprotrain" + (": " + ", ".join(what) if what else "")
        steps.append(f"git add -A && git commit -q -m {shlex.quote(message)}")
        steps.append("reprotrain check")
    report.todo = steps


def _warn_uncommitted(root: Path, report: InitReport, git: GitSnapshot, data: list[str]) -> None:
    """`git add -A` commits whatever was already uncommitted too: say so, with the paths."""
    ours = {"pyproject.toml", *data}
    mine = [(root / d).relative_to(git.root).as_posix() for d in ours] if root.is_relative_to(git.root) else []
    others = [e.path for e in git.state.entries if not any(_under(e.path.rstrip("/"), m) for m in mine)]
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        report.notes.append(
            f"the tree had uncommitted changes before init ({shown}): the `git add -A` below commits them "
            "too; commit or stash them first if they do not belong in this commit"
        )


# --------------------------------------------------------------------------- init


def _project_name(root: Path, pyproject_text: str) -> str:
    from reprotrain.settings import tomllib

    try:
        declared = tomllib.loads(pyproject_text).get("project", {}).get("name") if pyproject_text else None
    except (tomllib.TOMLDecodeError, AttributeError):
        declared = None
    return declared if isinstance(declared, str) and declared.strip() else default_name(root)


def _configured(root: Path, pyproject_text: str) -> dict[str, str]:
    """The string settings a project already has (for finding its data again)."""
    from reprotrain.settings import tomllib

    own = root / "reprotrain.toml"
    try:
        if own.is_file():
            table = tomllib.loads(own.read_text(encoding="utf-8"))
        else:
            table = tomllib.loads(pyproject_text).get("tool", {}).get("reprotrain", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return {}
    return {k: v for k, v in table.items() if isinstance(v, str)} if isinstance(table, dict) else {}


def init(root: Path) -> InitReport:
    from reprotrain.adapters.git import snapshot

    root = root.resolve()
    report = InitReport(root)
    git = snapshot(root)  # before anything is written: what is uncommitted now is the user's
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    if "[tool.reprotrain]" in text or (root / "reprotrain.toml").is_file():
        report.notes.append("reprotrain is already configured here: pyproject.toml was not changed")
        _steps(root, report, _data_dirs(root, _configured(root, text), None), git)
        return report

    settings: dict[str, str] = {}
    apps, scripts = _candidates(root)
    app = _set_entrypoint(root, report, settings, apps or scripts)
    _set_config(root, report, settings, [app] if app else [c for c in apps if c.kind in ("training", "other")])
    settings["experiment_name"] = _project_name(root, text)
    data = _data_dirs(root, settings, app)

    lines = ["", "[tool.reprotrain]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines += [f"# {u.line}   # required" for u in report.unwritten if u.key == "entrypoint"]
    block = "\n".join(lines) + "\n"
    pyproject.write_text(
        (text.rstrip("\n") + "\n" if text else "") + block.lstrip("\n" if not text else ""), encoding="utf-8"
    )
    report.written = pyproject
    report.settings = settings
    report.notes.append(f"reprotrain keeps its state in {STATE_DIR}/, which ignores itself: no .gitignore edit needed")
    _steps(root, report, data, git)
    return report
