"""`reprotrain init`: adopt reprotrain in an existing repository, without guessing silently.

It finds git and DVC (printing the commands for what is missing), an existing Hydra config
directory and `@hydra.main` apps, and writes `[tool.reprotrain]` into pyproject.toml. Running it
again changes nothing.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

from reprotrain.settings import STATE_DIR

__all__ = ["InitReport", "init"]

_SKIP_DIRS = {".git", ".dvc", ".venv", "venv", "node_modules", STATE_DIR, "outputs", "multirun", "__pycache__"}


@dataclass
class InitReport:
    root: Path
    written: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
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
    return found


def _hydra_apps(root: Path) -> list[tuple[Path, str, str | None, str | None]]:
    """(file, function, config_path, config_name) of every `@hydra.main`-decorated function."""
    apps = []
    for path in _walk(root, ".py"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "hydra.main" not in text and "from hydra import main" not in text:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and ast.unparse(deco.func) in {"hydra.main", "main"}:
                    kwargs = {k.arg: k.value for k in deco.keywords if k.arg}
                    path_value = kwargs.get("config_path")
                    name_value = kwargs.get("config_name")
                    cp = path_value.value if isinstance(path_value, ast.Constant) else None
                    cn = name_value.value if isinstance(name_value, ast.Constant) else None
                    cp = cp if isinstance(cp, str) else None
                    cn = cn if isinstance(cn, str) else None
                    apps.append((path, node.name, cp, cn))
    return apps


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
    return dirs


def init(root: Path) -> InitReport:
    from reprotrain.adapters import git as git_adapter

    root = root.resolve()
    report = InitReport(root)
    git = git_adapter.snapshot(root)
    if git is None:
        report.todo.append('git init && git add -A && git commit -m "initial commit"')
    elif git.state.commit is None:
        report.todo.append('git add -A && git commit -m "initial commit"')
    if not (root / ".dvc").is_dir():
        report.todo.append("dvc init && dvc add <your data> && git add -A && git commit -m 'track data with DVC'")

    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    if "[tool.reprotrain]" in text or (root / "reprotrain.toml").is_file():
        report.notes.append("reprotrain is already configured here; nothing changed")
        return report

    settings: dict[str, str] = {}
    apps = _hydra_apps(root)
    if apps:
        path, function, config_path, config_name = apps[0]
        settings["entrypoint"] = f"{path.relative_to(root).as_posix()}:{function}"
        if config_path is not None:
            config_dir = (path.parent / config_path).resolve()
            if config_dir.is_dir():
                settings["config_dir"] = config_dir.relative_to(root).as_posix()
        if config_name:
            settings["config_name"] = config_name
        for other in apps[1:]:
            report.notes.append(f"another @hydra.main app: {other[0].relative_to(root)}:{other[1]}")
    else:
        report.todo.append('set entrypoint under [tool.reprotrain] (e.g. "python train.py" or "src/train.py:main")')
    if "config_dir" not in settings:
        candidates = _config_dirs(root)
        if candidates:
            settings["config_dir"] = candidates[0].relative_to(root).as_posix()
            if len(candidates) > 1:
                report.notes.append("other config dirs: " + ", ".join(str(c.relative_to(root)) for c in candidates[1:]))
        else:
            report.todo.append("create a Hydra config directory (conf/config.yaml) and set config_dir")
    if "config_name" not in settings and "config_dir" in settings:
        names = sorted(p.stem for p in (root / settings["config_dir"]).glob("*.yaml"))
        if names and "config" not in names:
            settings["config_name"] = names[0]

    lines = ["", "[tool.reprotrain]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    if "entrypoint" not in settings:
        lines.append('# entrypoint = "python train.py"   # required: a command or module:function')
    block = "\n".join(lines) + "\n"
    pyproject.write_text(
        (text.rstrip("\n") + "\n" if text else "") + block.lstrip("\n" if not text else ""), encoding="utf-8"
    )
    report.written = pyproject
    report.settings = settings
    report.notes.append(f"reprotrain keeps its state in {STATE_DIR}/, which ignores itself: no .gitignore edit needed")
    report.todo.append("git add pyproject.toml && git commit -m 'configure reprotrain'")
    return report
