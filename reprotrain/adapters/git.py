"""git, through GitPython: one `git status` call answers commit, branch and every dirty path."""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from reprotrain.core.pin import GitState, parse_porcelain_v2
from reprotrain.core.record import strip_credentials
from reprotrain.core.secrets import holds_credentials, mask_assignments
from reprotrain.errors import ReprotrainError

__all__ = ["GitSnapshot", "changes", "ignored_files", "origin_url", "repository_name", "snapshot", "tracked_paths"]


@dataclass(frozen=True)
class GitSnapshot:
    root: Path
    state: GitState
    remote: str  # credentials already removed
    uninitialized_submodules: tuple[str, ...] = ()


def snapshot(path: Path) -> GitSnapshot | None:
    """The repository containing ``path`` as `git status` sees it now; None outside git."""
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        with repo:
            if repo.bare or repo.working_tree_dir is None:
                return None
            out = repo.git.status(
                "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", "--ignore-submodules=none"
            )
            remote = _remote_url(repo)
            root = Path(repo.working_tree_dir)
            # `git status` is silent about a submodule that was never checked out
            missing = repo.git.submodule("status").splitlines() if (root / ".gitmodules").is_file() else []
            absent = tuple(line[1:].split()[1] for line in missing if line.startswith("-"))
            return GitSnapshot(root, parse_porcelain_v2(out), remote, absent)
    except git.GitCommandError as exc:
        raise ReprotrainError(f"git status failed in {path}: {exc.stderr.strip() or exc}") from exc


def tracked_paths(root: Path, paths: list[str]) -> set[str]:
    """Those of ``paths`` (relative to ``root``) that git tracks: the file, or files under the
    directory."""
    if not paths:
        return set()
    import git

    with git.Repo(root) as repo:
        listed = repo.git.ls_files("-z", "--", *(f":(literal){p}" for p in paths)).split("\0")
    files = [f for f in listed if f]
    return {p for p in paths if any(f == p or f.startswith(p.rstrip("/") + "/") for f in files)}


def changes(root: Path) -> list[str]:
    """What `git status` shows for the work tree (`M metrics.csv`, `?? model.pt`), short form."""
    import git

    with git.Repo(root) as repo:
        listed = repo.git.status("--porcelain", "-z", "--untracked-files=normal").split("\0")
    return [f"{item[:2].strip()} {item[3:]}" for item in listed if len(item) > 3]


def restore_paths(root: Path, paths: list[str]) -> None:
    """Put tracked ``paths`` back as the commit has them, and remove those git does not track."""
    import git

    with git.Repo(root) as repo:
        tracked = set(repo.git.ls_files("-z", "--", *paths).split("\0")) - {""} if paths else set()
        if tracked:
            repo.git.checkout("--", *sorted(tracked))
    for rel in set(paths) - tracked:
        (root / rel).unlink(missing_ok=True)


def ignored_files(root: Path, path: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files under ``path`` (relative to ``root``) that git ignores, ending in one of ``suffixes``."""
    import git

    with git.Repo(root) as repo:
        listed = repo.git.ls_files(
            "-z", "--others", "--ignored", "--exclude-standard", "--", f":(literal){path}"
        ).split("\0")
    return sorted(f for f in listed if f and f.endswith(suffixes))


def _remote_url(repo: object) -> str:
    remotes = {r.name: r for r in repo.remotes}  # type: ignore[attr-defined]
    remote = remotes.get("origin") or next(iter(remotes.values()), None)
    if remote is None:
        return ""
    try:
        urls = list(remote.urls)
    except Exception:  # a remote without url: nothing to record
        return ""
    return strip_credentials(urls[0]) if urls else ""


def origin_url(root: Path) -> str | None:
    """The URL of remote ``origin`` of the repository whose top is ``root``, credentials removed;
    None without one. Read from the config file (this runs on every command: no git process),
    or asked of `git config` when the file cannot be read as plain INI."""
    config = _config_file(root / ".git")
    if config is not None:
        parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
        try:
            parser.read(config, encoding="utf-8")
            url = parser.get('remote "origin"', "url", fallback=None)
            return strip_credentials(url.strip()) if url and url.strip() else None
        except (configparser.Error, OSError, UnicodeDecodeError):
            pass
    return _origin_url_from_git(root)


def _config_file(dot_git: Path) -> Path | None:
    """The config file of a `.git` directory, or of the `gitdir:` a `.git` file names (a linked
    worktree shares its main repository's config, found through `commondir`)."""
    if dot_git.is_dir():
        return dot_git / "config"
    try:
        line = dot_git.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    gitdir = (dot_git.parent / line.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return gitdir / "config"
    return (gitdir / common).resolve() / "config"


def _origin_url_from_git(root: Path) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "config", "--get", "remote.origin.url"],
            cwd=root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    url = proc.stdout.strip()
    return strip_credentials(url) if proc.returncode == 0 and url else None


def repository_name(url: str) -> str | None:
    """The repository's name in a remote URL: `git@host:team/proj.git`, `https://u:pw@host/team/proj`,
    `/srv/git/proj.git/` all give `proj`. Credentials never reach the name."""
    url = strip_credentials(url.strip())
    if "://" in url:
        path = urlsplit(url).path
    elif ":" in url.split("/", 1)[0] and not _is_drive(url):
        path = url.rsplit("@", 1)[-1].split(":", 1)[1]  # scp-like [user@]host:path
    else:
        path = url
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return name or None


def _is_drive(url: str) -> bool:
    return len(url) > 2 and url[0].isalpha() and url[1] == ":" and url[2] in "/\\"


def commit_on_remote(path: Path) -> tuple[bool, bool]:
    """(has a remote, HEAD is contained in some remote-tracking branch) as of the last fetch."""
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        if not repo.remotes:
            return False, False
        try:
            out = repo.git.branch("-r", "--contains", "HEAD")
        except git.GitCommandError:
            return True, False
        return True, bool(out.strip())


# untracked files whose contents are kept with an unpinned run: code and config, by their name
_CODE_SUFFIXES = (
    *(".py", ".pyi", ".ipynb", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json", ".sh", ".sql", ".md", ".rst"),
    *(".c", ".cc", ".cpp", ".cu", ".h", ".hpp", ".js", ".ts", ".go", ".rs", ".jl", ".r", ".java", ".scala", ".lua"),
)
_CODE_NAMES = {"makefile", "dockerfile", "justfile"}
_CODE_PREFIXES = ("requirements", "constraints")  # requirements-dev.txt
_HASH_LIMIT = 256 << 20  # larger untracked files (data) get a size, not a hash: the launch stays quick


def save_unpinned_evidence(path: Path, dest: Path, max_file: int = 1 << 20, max_total: int = 20 << 20) -> None:
    """What makes the tree unpinned, kept with the run: `git diff HEAD` of tracked files, and each
    untracked file's name, size and sha256 (`untracked.json`; the names alone in `untracked.txt`).
    Contents are kept only of untracked code and config files (by name; never a link, nor a
    file whose name suggests a secret), up to a size limit, and are masked when uploaded."""
    import git

    dest.mkdir(parents=True, exist_ok=True)
    with git.Repo(path, search_parent_directories=True) as repo:
        root = Path(repo.working_tree_dir or path)
        has_head = repo.head.is_valid()
        diff = repo.git.diff("HEAD", "--binary") if has_head else repo.git.diff("--cached", "--binary")
        # a credential pasted into a tracked file: its value is masked here, like in untracked files
        (dest / "diff.patch").write_text(mask_assignments(diff) + ("\n" if diff else ""), encoding="utf-8")
        listed = repo.git.ls_files("--others", "--exclude-standard", "-z")
    untracked = [p for p in listed.split("\0") if p]
    (dest / "untracked.txt").write_text("".join(f"{p}\n" for p in untracked), encoding="utf-8")
    rows = []
    total = 0
    for rel in untracked:
        row = _untracked_row(root / rel, rel)
        size = int(str(row.get("size") or 0))
        if row.get("kept") is None and total + size <= max_total and size <= max_file:
            target = dest / "untracked" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                text = (root / rel).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                row["kept"] = f"name only: {getattr(exc, 'strerror', None) or 'not text'}"
            else:
                if holds_credentials(text):
                    row["kept"] = "name only: its contents look like credentials"
                else:
                    target.write_text(text, encoding="utf-8")
                    row["kept"] = "contents"
                    total += size
        elif row.get("kept") is None:
            row["kept"] = "name only: over the size limit"
        rows.append(row)
    (dest / "untracked.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


def _untracked_row(source: Path, rel: str) -> dict[str, object]:
    """What is recorded of one untracked file; ``kept`` is None while its contents may be kept."""
    import hashlib
    import stat

    try:
        info = source.lstat()
    except OSError as exc:
        return {"path": rel, "kept": f"name only: {exc.strerror}"}
    if stat.S_ISLNK(info.st_mode):
        return {"path": rel, "symlink": os.readlink(source), "kept": "name only: a link is never followed"}
    if not stat.S_ISREG(info.st_mode):
        return {"path": rel, "kept": "name only: not a regular file"}
    row: dict[str, object] = {"path": rel, "size": info.st_size}
    if info.st_size > _HASH_LIMIT:
        row["kept"] = "name only: over the size limit"
        return row
    try:
        digest = hashlib.sha256()
        with source.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        row["sha256"] = digest.hexdigest()
    except OSError as exc:
        row["kept"] = f"name only: {exc.strerror}"
        return row
    name = rel.rsplit("/", 1)[-1].lower()
    if _looks_secret(rel):
        row["kept"] = "name only: its name suggests it holds secrets"
    elif not (name.endswith(_CODE_SUFFIXES) or name in _CODE_NAMES or name.startswith(_CODE_PREFIXES)):
        row["kept"] = "name only: not code or config"
    else:
        row["kept"] = None
    return row


def file_at(path: Path, sha: str, rel: str) -> bytes:
    """The bytes git keeps for ``rel`` (from the repository root) in commit ``sha``, as stored (no
    filter or line-ending conversion)."""
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        try:
            blob = repo.commit(sha).tree / rel
            return bytes(blob.data_stream.read())
        except (KeyError, ValueError, git.BadName, git.GitCommandError) as exc:
            raise ReprotrainError(
                f"commit {sha[:12]} holds no file {rel} in the repository at {repo.working_tree_dir}",
                hint=f"git fetch (the commit may be on a remote only), or git show {sha[:12]}:{rel}",
            ) from exc


def has_commit(path: Path, sha: str) -> bool:
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        try:
            repo.git.cat_file("-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False


def fetch_commit(path: Path, sha: str) -> list[str]:
    """Fetch from the repository's own configured remotes (never a URL from run metadata) until
    ``sha`` is present. Returns the remotes tried."""
    import git

    tried = []
    with git.Repo(path, search_parent_directories=True) as repo:
        for remote in repo.remotes:
            tried.append(remote.name)
            for refspec in ((), (sha,)):  # branches first; then the commit itself, if the server allows
                try:
                    repo.git.fetch("--quiet", remote.name, *refspec)
                except git.GitCommandError:
                    continue
                if has_commit(path, sha):
                    return tried
    return tried


def add_worktree(path: Path, target: Path, sha: str, lock_reason: str | None = None) -> None:
    """A detached worktree of ``sha`` at ``target``; with ``lock_reason``, locked (git's own
    `worktree prune` then leaves it, and `git worktree list` names its owner)."""
    import git

    lock = ["--lock", "--reason", lock_reason] if lock_reason else []
    with git.Repo(path, search_parent_directories=True) as repo:
        try:
            repo.git.worktree("add", "--detach", "--quiet", *lock, str(target), sha)
        except git.GitCommandError as exc:
            raise ReprotrainError(f"cannot create a worktree of {sha[:12]} at {target}: {exc.stderr.strip()}") from exc


@dataclass(frozen=True)
class Worktree:
    path: Path
    locked: str | None  # the lock's reason ("" when locked without one); None when not locked


def worktrees(path: Path) -> list[Worktree]:
    """Every worktree git has registered for the repository at ``path`` (the main one first)."""
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        listed = repo.git.worktree("list", "--porcelain")
    found: list[Worktree] = []
    for block in listed.split("\n\n"):
        lines = block.splitlines()
        where = next((line[len("worktree ") :] for line in lines if line.startswith("worktree ")), None)
        if where is None:
            continue
        lock = next((line for line in lines if line == "locked" or line.startswith("locked ")), None)
        found.append(Worktree(Path(where), None if lock is None else lock[len("locked ") :]))
    return found


def unlock_worktree(path: Path, target: Path) -> None:
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        try:
            repo.git.worktree("unlock", str(target))
        except git.GitCommandError:
            pass  # not locked


def remove_worktree(path: Path, target: Path) -> None:
    """Remove the worktree and its registration (locked or not, its directory there or gone),
    and nothing else: no `git worktree prune`, which would drop the user's worktrees on an
    unmounted disk too."""
    import shutil

    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        try:
            repo.git.worktree("remove", "--force", "--force", str(target))
        except git.GitCommandError:
            shutil.rmtree(target, ignore_errors=True)
            try:
                repo.git.worktree("remove", "--force", "--force", str(target))
            except git.GitCommandError:
                pass  # never registered (killed before git made it)


_SECRET_FILES = (".env", ".netrc", ".pgpass", ".pypirc", ".git-credentials", "id_rsa", "id_dsa", "id_ecdsa", "id_ed")
_SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".keystore", ".jks", ".ppk", ".env")
_SECRET_PARTS = ("secret", "credential", "token", "passw", "kubeconfig", "service-account", "serviceaccount")


def _looks_secret(rel: str) -> bool:
    """Whether a file's name says it holds credentials (`.git-credentials`, `prod.env`,
    `token.json`, `kubeconfig.yaml`, `.docker/config.json`, a key file)."""
    path = rel.lower()
    name = path.rsplit("/", 1)[-1]
    return (
        name.startswith(_SECRET_FILES)
        or name.endswith(_SECRET_SUFFIXES)
        or any(part in path for part in _SECRET_PARTS)
        or path.endswith(".docker/config.json")
    )


def code_changes(path: Path, a: str, b: str, limit: int = 20) -> dict[str, object]:
    """Commits between two commits (both directions) and the files changed between them."""
    import git

    with git.Repo(path, search_parent_directories=True) as repo:
        missing = [sha for sha in (a, b) if sha and not has_commit(path, sha)]
        if missing or not a or not b:
            return {"available": False, "missing": missing}
        ahead = repo.git.rev_list("--count", f"{a}..{b}")
        behind = repo.git.rev_list("--count", f"{b}..{a}")
        log = repo.git.log("--format=%h %s", f"-{limit}", f"{a}..{b}")
        status = repo.git.diff("--name-status", a, b)
    files = []
    for line in status.splitlines():
        code, _, name = line.partition("\t")
        files.append({"status": code, "path": name.replace("\t", " -> ")})
    return {
        "available": True,
        "commits_a_to_b": int(ahead),
        "commits_b_to_a": int(behind),
        "log": log.splitlines(),
        "files": files,
    }


def remote_secrets(path: Path) -> set[str]:
    """Passwords and tokens embedded in the repository's remote URLs: masked in every log."""
    import git

    from reprotrain.core.secrets import secret_env_values

    try:
        with git.Repo(path, search_parent_directories=True) as repo:
            urls = {f"remote.{r.name}": url for r in repo.remotes for url in _urls(r)}
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        return set()
    return secret_env_values({f"URL_{i}": url for i, url in enumerate(urls.values())})


def _urls(remote: object) -> list[str]:
    try:
        return list(remote.urls)  # type: ignore[attr-defined]
    except Exception:  # a remote without url
        return []
