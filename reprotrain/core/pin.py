"""The pin policy: turn what git and DVC report into problems, each with the command that fixes it."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

__all__ = [
    "GitState",
    "Problem",
    "data_problems",
    "config_source_problems",
    "dvc_status_problems",
    "external_output_problems",
    "hash_mismatch_problem",
    "hidden_dvc_file_problems",
    "git_status_problems",
    "missing_object_problems",
    "not_pushed_problem",
    "parse_porcelain_v2",
    "uncached_problems",
]


@dataclass(frozen=True)
class Problem:
    """One reason why a run would not be reproducible."""

    kind: str
    path: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} (fix: {self.fix})"


@dataclass(frozen=True)
class StatusEntry:
    """One line of `git status --porcelain=v2`: XY codes, submodule state, path(s)."""

    code: str  # "1", "2", "u" or "?"
    xy: str = ".."
    submodule: str = "N..."
    path: str = ""
    orig_path: str = ""


@dataclass(frozen=True)
class GitState:
    """What one `git status --porcelain=v2 --branch -z` says about the repository."""

    commit: str | None
    branch: str | None
    upstream: str | None = None
    entries: tuple[StatusEntry, ...] = field(default_factory=tuple)


def parse_porcelain_v2(output: str) -> GitState:
    """Parse NUL-separated `git status --porcelain=v2 --branch -z` output."""
    commit: str | None = None
    branch: str | None = None
    upstream: str | None = None
    entries: list[StatusEntry] = []
    records = output.split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if not rec:
            continue
        if rec.startswith("# branch.oid "):
            value = rec[len("# branch.oid ") :]
            commit = None if value == "(initial)" else value
        elif rec.startswith("# branch.head "):
            value = rec[len("# branch.head ") :]
            branch = None if value == "(detached)" else value
        elif rec.startswith("# branch.upstream "):
            upstream = rec[len("# branch.upstream ") :]
        elif rec.startswith("1 "):
            parts = rec.split(" ", 8)
            entries.append(StatusEntry("1", parts[1], parts[2], parts[8]))
        elif rec.startswith("2 "):
            parts = rec.split(" ", 9)
            entries.append(StatusEntry("2", parts[1], parts[2], parts[9], records[i]))
            i += 1
        elif rec.startswith("u "):
            parts = rec.split(" ", 10)
            entries.append(StatusEntry("u", parts[1], parts[2], parts[10]))
        elif rec.startswith("? "):
            entries.append(StatusEntry("?", path=rec[2:]))
    return GitState(commit, branch, upstream, tuple(entries))


def _q(path: str) -> str:
    return shlex.quote(path)


def _entry_problem(entry: StatusEntry) -> Problem:
    path = entry.path
    if entry.code == "?":
        return Problem(
            "untracked",
            path,
            "untracked file (not committed, not ignored)",
            f"git add {_q(path)} && git commit, or add it to .gitignore",
        )
    if entry.code == "u":
        return Problem(
            "conflict", path, "unresolved merge conflict", f"resolve it, then git add {_q(path)} && git commit"
        )
    if entry.submodule.startswith("S"):
        moved, modified = entry.submodule[1], entry.submodule[2]
        if moved == "C":
            return Problem(
                "submodule-moved",
                path,
                "submodule checked out at a commit other than the one recorded",
                f"git add {_q(path)} && git commit, or git submodule update {_q(path)}",
            )
        detail = "uncommitted changes" if modified == "M" else "untracked files"
        return Problem(
            "submodule-dirty",
            path,
            f"submodule has {detail}",
            f"commit or discard them inside {_q(path)}, then commit the submodule",
        )
    staged, unstaged = entry.xy[0], entry.xy[1]
    if entry.code == "2":
        return Problem(
            "staged",
            path,
            f"renamed from {entry.orig_path}, not committed",
            "git commit",
        )
    if unstaged != ".":
        verb = "deleted" if unstaged == "D" else "modified"
        return Problem(
            "modified",
            path,
            f"tracked file {verb}, not committed",
            f"git commit {_q(path)}, or git restore {_q(path)}",
        )
    verb = {"A": "added", "D": "deleted", "M": "modified", "T": "type changed"}.get(staged, "changed")
    return Problem("staged", path, f"{verb} in the index, not committed", "git commit")


def git_status_problems(state: GitState) -> list[Problem]:
    """Every reason the git side is not pinned: no commit yet, or anything `git status` shows."""
    problems: list[Problem] = []
    if state.commit is None:
        problems.append(Problem("no-commit", "", "the git repository has no commit yet", "git add -A && git commit"))
    problems.extend(_entry_problem(entry) for entry in state.entries)
    return problems


def _out_problem(stage: str, path: str, change: str, lock: bool) -> Problem:
    if lock:
        repin = f"dvc repro {_q(stage)} && git commit dvc.lock"
    else:
        repin = f"dvc add {_q(path)} && git commit {_q(stage)}"
    if change == "deleted":
        return Problem(
            "data-missing",
            path,
            f"DVC output pinned by {stage} is missing from the workspace",
            f"dvc checkout {_q(path)} (or dvc pull {_q(path)})",
        )
    if change == "not in cache":
        return Problem(
            "data-not-cached",
            path,
            f"DVC output pinned by {stage} is not in the DVC cache",
            f"dvc pull {_q(path)}, or dvc commit {_q(stage)}",
        )
    return Problem(
        "data-modified",
        path,
        f"DVC output differs from the version {stage} pins ({change})",
        f"dvc checkout {_q(path)} to restore it, or {repin} to pin the new version",
    )


def dvc_status_problems(status: Mapping[str, Sequence[object]], lock_stages: Iterable[str] = ()) -> list[Problem]:
    """Translate `Repo.status()` output into problems.

    ``status`` maps a `.dvc` file or a `dvc.yaml` stage to a list of changes; ``lock_stages``
    names the keys that are pipeline stages (their outputs are pinned by dvc.lock).
    """
    pipeline = set(lock_stages)
    problems: list[Problem] = []
    for stage, changes in sorted(status.items()):
        lock = stage in pipeline or not stage.endswith(".dvc")
        source = f"dvc.lock stage {stage}" if lock else stage
        for change in changes:
            if isinstance(change, str):
                if change == "always changed":
                    continue
                problems.append(
                    Problem(
                        "stage-changed",
                        stage,
                        f"{source}: {change}",
                        f"dvc repro {_q(stage)} && git commit dvc.lock" if lock else f"dvc commit {_q(stage)}",
                    )
                )
                continue
            if not isinstance(change, Mapping):
                continue
            for key, items in change.items():
                if key == "changed outs" and isinstance(items, Mapping):
                    problems.extend(_out_problem(stage, p, str(c), lock) for p, c in items.items())
                elif key == "changed deps" and isinstance(items, Mapping):
                    problems.extend(
                        Problem(
                            "stage-dep-changed",
                            p,
                            f"dependency of {source} changed since dvc.lock was written ({c})",
                            f"dvc repro {_q(stage)} && git commit dvc.lock",
                        )
                        for p, c in items.items()
                    )
                else:
                    problems.append(
                        Problem(
                            "stage-changed",
                            stage,
                            f"{source}: {key}",
                            f"dvc repro {_q(stage)} && git commit dvc.lock" if lock else f"dvc commit {_q(stage)}",
                        )
                    )
    return problems


def data_problems(
    outputs: Sequence[tuple[str, str]],
    inputs: Iterable[str],
    has_data: bool,
    is_dvc_repo: bool,
) -> list[Problem]:
    """Policy over the pinned outputs (`(path, source)` pairs): the project must pin some data
    (unless it declares it has none), and every declared input must lie in a pinned output."""
    problems: list[Problem] = []
    if has_data and not outputs:
        what = "no DVC-tracked data" if is_dvc_repo else "not a DVC repository, so no data is pinned"
        first = "dvc add <data> && git add <data>.dvc && git commit"
        if not is_dvc_repo:
            first = "dvc init && " + first
        problems.append(Problem("no-data", "", f"{what}", f"{first}, or set has_data = false under [tool.reprotrain]"))
    for path in inputs:
        norm = path.strip("/")
        if not any(norm == out or norm.startswith(out.rstrip("/") + "/") for out, _ in outputs):
            problems.append(
                Problem(
                    "input-not-tracked",
                    norm,
                    "declared input is not tracked by DVC",
                    f"dvc add {_q(norm)} && git add {_q(norm)}.dvc && git commit",
                )
            )
    return problems


def missing_object_problems(
    missing: Mapping[str, int],
    source: Mapping[str, str],
    where: str,
    stuck_manifests: Mapping[str, str] | None = None,
) -> list[Problem]:
    """One problem per output with objects absent from ``where`` (`cache` or `remote`).

    ``stuck_manifests`` maps a directory output to the location of its manifest on the remote
    when the manifest is there but entries are not: `dvc push` then skips the directory."""
    stuck = stuck_manifests or {}
    problems = []
    for path, count in sorted(missing.items()):
        what = f"{count} object{'s' if count != 1 else ''}"
        if where == "cache":
            problems.append(
                Problem(
                    "data-not-cached",
                    path,
                    f"{what} of this DVC output missing from the local DVC cache (a rerun could not restore it)",
                    f"dvc pull {_q(path)}, or dvc commit {_q(source.get(path, path))}",
                )
            )
        else:
            problems.append(
                Problem(
                    "data-not-pushed",
                    path,
                    f"{what} of this DVC output missing from the default DVC remote",
                    f"dvc push {_q(path)}"
                    if path not in stuck
                    else (
                        f"rm -f {_q(stuck[path])} && dvc push {_q(path)}"
                        if stuck[path].startswith("/")
                        else f"delete {stuck[path]} from the remote (dvc push skips a directory whose manifest "
                        f"is there), then dvc push {_q(path)}"
                    ),
                )
            )
    return problems


def config_source_problems(
    sources: Iterable[tuple[str, str]], git_root: str, ignored: Mapping[str, Sequence[str]]
) -> list[Problem]:
    """Hydra's config must come from the commit: every directory it composes from (absolute,
    normalized paths, with what named it) lies inside the repository, and holds no YAML file that
    git ignores (it could be composed, and is in no commit)."""
    problems = []
    root = os.path.normpath(git_root)
    for path, how in sources:
        norm = os.path.normpath(path)
        if norm != root and not norm.startswith(root.rstrip(os.sep) + os.sep):
            problems.append(
                Problem(
                    "config-outside-repo",
                    norm,
                    f"config directory named by {how} lies outside the repository: the config is in no commit",
                    f"move the configs into the repository and commit them (set config_dir under "
                    f"[tool.reprotrain], or give {how} a path inside {root})",
                )
            )
            continue
        for name in ignored.get(path, ()):
            problems.append(
                Problem(
                    "config-ignored",
                    name,
                    "config file that git ignores, in a directory Hydra composes from: it is in no commit",
                    f"git add -f {_q(name)} && git commit, or move it out of {_q(os.path.relpath(norm, root))}",
                )
            )
    return problems


def external_output_problems(external: Iterable[tuple[str, str]]) -> list[Problem]:
    """DVC outputs outside the repository (`path: ../elsewhere` or an absolute path, DVC's
    "external outputs"): neither git nor the DVC cache keeps them, so nothing could restore them."""
    return [
        Problem(
            "data-outside-repo",
            path,
            f"DVC output pinned by {source} lies outside the repository: no commit or DVC cache keeps it",
            f"move it into the repository and dvc add it (then git rm {_q(source)} if it was a .dvc file)"
            if source.endswith(".dvc")
            else "make the stage write its output inside the repository, then dvc repro && git commit dvc.lock",
        )
        for path, source in sorted(external)
    ]


def hidden_dvc_file_problems(hidden: Iterable[tuple[str, str, Sequence[str]]]) -> list[Problem]:
    """Committed `.dvc` files that DVC skips because its git library takes their directory for
    ignored (`/data/*` matches `data/` itself there, not in git): the data would not be pinned."""
    problems = []
    for dvc_file, directory, lines in sorted(hidden):
        if lines:
            fix = (
                "in .gitignore, write "
                + " and ".join(f"`{line}` as `{line[:-2] if line.endswith('**') else line[:-1]}?*`" for line in lines)
                + " (the same files for git; DVC then sees the .dvc files), then git commit .gitignore"
            )
        else:
            fix = f"change the .gitignore pattern that matches {directory}/ so that it matches only what is in it"
        problems.append(
            Problem(
                "data-hidden-by-gitignore",
                dvc_file,
                f"committed, but DVC does not read it: DVC takes {directory}/ for ignored by .gitignore",
                fix,
            )
        )
    return problems


def hash_mismatch_problem(path: str, source: str, files: int) -> Problem:
    """A DVC output whose bytes differ from its pin although DVC's stored stamps (inode, size,
    mtime) say it is unchanged: a same-size rewrite with the mtime set back, found by hashing."""
    lock = not source.endswith(".dvc")
    repin = (
        f"dvc repro {_q(source[9:])} && git commit dvc.lock"
        if lock
        else f"dvc add {_q(path)} && git commit {_q(source)}"
    )
    return Problem(
        "data-modified",
        path,
        f"DVC output differs from the version {source} pins when hashed ({files} file{'s' if files != 1 else ''}; "
        "DVC's status trusted its size and mtime)",
        f"rm -r {_q(path)} && dvc checkout {_q(path)} to restore it, or {repin} to pin the new version",
    )


def uncached_problems(uncached: Iterable[tuple[str, str]], tracked_by_git: Iterable[str]) -> list[Problem]:
    """DVC outputs with `cache: false` are pinned only if git tracks them (then the clean tree
    vouches for their content); otherwise nothing could bring them back for a rerun."""
    tracked = set(tracked_by_git)
    problems = []
    for path, source in sorted(uncached):
        if path in tracked or not source.endswith(".dvc"):  # a stage's product is made again by it
            continue
        problems.append(
            Problem(
                "data-uncached",
                path,
                f"DVC output pinned by {source} has `cache: false` and git does not track it: "
                "neither the DVC cache nor a commit keeps it",
                f"git add {_q(path)} && git commit (remove it from .gitignore first if it is listed there), "
                f"or drop `cache: false` from {_q(source)} and dvc commit {_q(source)}",
            )
        )
    return problems


def not_pushed_problem(branch: str | None, has_remote: bool) -> Problem:
    if not has_remote:
        return Problem(
            "commit-not-pushed",
            "",
            "the repository has no git remote, so the commit is on no remote branch",
            f"git remote add origin <url> && git push -u origin {branch or 'HEAD'}",
        )
    return Problem(
        "commit-not-pushed",
        "",
        "HEAD is on no remote branch (as of the last fetch)",
        f"git push -u origin {branch}" if branch else "git push origin HEAD:<branch>",
    )
