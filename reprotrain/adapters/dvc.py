"""DVC, through its Python API: what the `.dvc` files and `dvc.lock` pin, whether the workspace
holds exactly that, and whether every pinned object is in the cache (and, if asked, the remote).
DVC's stored hashes are reused, so unchanged data is not re-hashed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprotrain.adapters import data_memo
from reprotrain.adapters.compat import reports_incompatible
from reprotrain.core.pin import (
    Problem,
    dvc_status_problems,
    external_output_problems,
    hash_mismatch_problem,
    hidden_dvc_file_problems,
    missing_object_problems,
)
from reprotrain.core.record import DataOutput
from reprotrain.errors import ReprotrainError
from reprotrain.fileio import write_json

__all__ = ["DataSnapshot", "cache_dir", "dir_manifests", "first_line", "quiet_dvc", "restore", "snapshot"]


def quiet_dvc() -> None:
    """DVC logs warnings to stderr from inside its API; reprotrain reports problems itself."""
    import logging

    for name in ("dvc", "dvc_data", "dvc_objects", "scmrepo"):
        logging.getLogger(name).setLevel(logging.ERROR)


def first_line(exc: BaseException) -> str:
    """The first line of DVC's message and of what caused it (DVC's `SCM error` alone says
    nothing; its cause says `Failed to clone repo '<url>'`), credentials taken out of URLs."""
    from reprotrain.core.record import strip_credentials

    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(lines) < 3:
        seen.add(id(current))
        text = str(current).strip()
        line = text.splitlines()[0] if text else type(current).__name__
        if line not in lines:
            lines.append(line)
        current = current.__cause__ or current.__context__
    return ": ".join(" ".join(strip_credentials(word) for word in line.split(" ")) for line in lines)


@dataclass(frozen=True)
class DataSnapshot:
    is_dvc_repo: bool
    outputs: list[DataOutput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # outputs with `cache: false`: the DVC cache does not keep them, so only git can pin them
    uncached: list[DataOutput] = field(default_factory=list)


def _no_dvc_dir(path: Path) -> bool:
    """True when no `.dvc` directory is at ``path`` or above it: DVC cannot find a repository."""
    current = path.resolve()
    return not any((candidate / ".dvc").is_dir() for candidate in (current, *current.parents))


@reports_incompatible
def snapshot(
    path: Path,
    relative_to: Path,
    check_remote: bool = False,
    verified: bool = False,
    memo: Path | None = None,
    commit: str = "",
    hash_files: bool = False,
) -> DataSnapshot:
    """Pinned outputs (paths relative to ``relative_to``) and every problem with them.

    ``verified``: the workspace was just restored and every file hashed against its pin (a
    rerun's worktree), so DVC's status and the cache check are skipped. ``memo``: where the
    last passing check at ``commit`` is remembered (see :mod:`data_memo`); the caller passes it
    only when the git tree is clean and the remote is not to be checked. ``hash_files``: every
    file is hashed and compared with its pin, not only what DVC's stored stamps (inode, size,
    mtime) say has changed (slower: every byte is read)."""
    if _no_dvc_dir(path):
        return DataSnapshot(False)
    if hash_files:
        memo = None  # what is remembered is what the stamps said
    if memo is not None and not verified:
        remembered = data_memo.load(memo, commit, path, relative_to)
        if remembered is not None:
            return DataSnapshot(True, remembered[0], [], remembered[1])
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    quiet_dvc()
    try:
        repo = Repo(os.fspath(path))
    except NotDvcRepoError:
        return DataSnapshot(False)
    except DvcException as exc:
        raise ReprotrainError(f"cannot open the DVC repository at {path}: {first_line(exc)}") from exc
    try:
        with repo:
            pinned: list[tuple[DataOutput, Any]] = []
            uncached: list[DataOutput] = []
            external: list[tuple[str, str]] = []
            lock_stages = set()
            for out in repo.index.outs:
                stage = out.stage
                if stage.is_data_source:
                    source = stage.relpath
                else:
                    source = f"dvc.lock:{stage.name}"
                    lock_stages.add(stage.addressing)
                if not out.is_in_repo:  # DVC's "external output": no cache, no checkout can bring it back
                    external.append((out.def_path, source))
                    continue
                if out.hash_info is None or not out.hash_info.value:
                    continue
                rel = os.path.relpath(out.fs_path, relative_to)
                data = DataOutput(rel, out.hash_info.value, out.meta.size, out.meta.nfiles, source)
                if not out.use_cache:
                    # a `.dvc` file's data must be kept by git; a stage's uncached output (metrics,
                    # plots) is a product the pipeline makes again: recorded when git keeps it
                    uncached.append(data)
                    continue
                pinned.append((data, out))
            uncached.sort(key=lambda o: o.path)
            if verified:
                outputs = sorted((o for o, _ in pinned), key=lambda o: o.path)
                return DataSnapshot(True, outputs, [], uncached)
            hidden = _hidden_dvc_files(repo)
            # the memo vouches for what DVC reads (an uncached output's stats too: git is asked
            # about it after the memo as after this check); never for an external output
            watch = _watch(repo) if memo is not None and not external else None
            problems = external_output_problems(external) + hidden_dvc_file_problems(hidden)
            # DVC's status cannot look at an external output (it asserts); the rest is checked
            problems.extend(dvc_status_problems(repo.status(), lock_stages) if not external else [])
            sources = {o.path: o.source for o, _ in pinned}
            oids, missing_dirs = _object_ids(repo, pinned)
            cache_missing = _count_missing(repo.cache.local, oids)
            for p in missing_dirs:
                cache_missing[p] = cache_missing.get(p, 0) + 1
            reported = {p.path for p in problems if p.kind == "data-not-cached"}  # DVC's status saw it too
            cache_missing = {p: n for p, n in cache_missing.items() if p not in reported}
            problems.extend(missing_object_problems(cache_missing, sources, "cache"))
            if hash_files:
                changed = {p.path for p in problems if p.kind in ("data-modified", "data-missing")}
                problems.extend(_hash_problems(repo, [(o, out) for o, out in pinned if o.path not in changed]))
            if check_remote and pinned:
                problems.extend(_remote_problems(repo, oids, sources))
            if watch is not None:
                watch.cache_dir = str(repo.cache.local.path)
                watch.oids = [oid for ids in oids.values() for oid in ids]
    except DvcException as exc:
        message = first_line(exc)
        hint = (
            "the source repository of a `dvc import` must be reachable for DVC to check its pin: restore "
            "access to it (its URL is under `repo: url:` in the importing .dvc file)"
            if "clone" in message.lower()
            else None
        )
        raise ReprotrainError(f"DVC could not read the pinned data in {path}: {message}", hint=hint) from exc
    outputs = sorted((o for o, _ in pinned), key=lambda o: o.path)
    if memo is not None:
        if watch is not None and not problems:
            data_memo.save(memo, commit, path, relative_to, watch, outputs, uncached)
        else:
            data_memo.forget(memo)
    return DataSnapshot(True, outputs, problems, uncached)


def _hidden_dvc_files(repo: Any) -> list[tuple[str, str, list[str]]]:
    """Committed `.dvc` files that DVC does not see, with the directory DVC skips and the
    .gitignore lines that make it skip it: DVC's git library takes `data/` itself for ignored by
    `/data/*` (git does not), so a `.gitignore` of `/data/*` and `!/data/*.dvc` hides every
    `.dvc` file in data/ from DVC."""
    import git

    root = Path(repo.root_dir)
    try:
        with git.Repo(root, search_parent_directories=True) as scm:
            top = Path(scm.working_tree_dir or root)
            listed = scm.git.ls_files("-z", "--", "*.dvc").split("\0")
    except Exception:  # noqa: BLE001 - the check is a courtesy; DVC's own problems still come
        return []
    # relative to the DVC root (`dvc init --subdir`): git lists them from its top
    listed = [os.path.relpath(top / f, root) for f in listed if f]
    listed = [f for f in listed if not f.startswith("..")]
    seen = {os.path.relpath(stage.path, root) for stage in repo.index.stages}
    hidden = []
    for rel in (f for f in listed if f and f not in seen and os.path.basename(f) != ".dvc"):
        parts = Path(rel).parts[:-1]
        for n in range(1, len(parts) + 1):
            directory = "/".join(parts[:n])
            if repo.scm.is_ignored(os.path.join(repo.root_dir, directory) + os.sep):
                hidden.append((rel, directory, _star_lines(root, directory)))
                break
    return hidden


def _star_lines(root: Path, directory: str) -> list[str]:
    """`.gitignore` lines of the form `<directory>/*`, as written, from the files that can hold them."""
    found = []
    parts = directory.split("/")
    for n in range(len(parts)):
        ignore = root.joinpath(*parts[:n], ".gitignore")
        rest = "/".join(parts[n:])
        try:
            lines = ignore.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        found += [line.strip() for line in lines if line.strip().lstrip("/") in (f"{rest}/*", f"{rest}/**")]
    return found


def _watch(repo: Any) -> data_memo.Watch | None:
    """Stat what DVC's status is about to read: every stage's file, lock file, dependencies and
    outputs, and DVC's config files. None when the status depends on something beyond local
    files (an import from another repository or a URL), which no stat can vouch for."""
    watched = [os.path.join(repo.root_dir, ".dvcignore")]
    for stage in repo.index.stages:
        watched.append(stage.path)
        if stage.path.endswith((".yaml", ".yml")):
            watched.append(os.path.splitext(stage.path)[0] + ".lock")
        for dep in stage.deps:
            if getattr(dep, "def_repo", None) or dep.fs.protocol != "local":
                return None
            watched.append(dep.fs_path)
        watched.extend(out.fs_path for out in stage.outs)
    return data_memo.Watch(watched, list(repo.config.files.values()))


def _object_ids(repo: Any, pinned: list[tuple[DataOutput, Any]]) -> tuple[dict[str, list[str]], list[str]]:
    """Every object id behind each output: the file's, or a directory's manifest and entries."""
    oids: dict[str, list[str]] = {}
    missing_manifest = []
    for data, out in pinned:
        ids = [out.hash_info.value]
        if out.hash_info.isdir:
            entries = _manifest(repo, out.hash_info)
            if entries is None:
                missing_manifest.append(data.path)  # its entries are unknown: counted as one
                oids[data.path] = []
                continue
            ids.extend(oid for _key, oid in entries)
        oids[data.path] = ids
    return oids, missing_manifest


def _count_missing(odb: Any, oids: dict[str, list[str]]) -> dict[str, int]:
    """Ask the object database once for every id; count what is absent, per output."""
    wanted = {oid for ids in oids.values() for oid in ids}
    present = set(odb.oids_exist(list(wanted))) if wanted else set()
    counts = {}
    for path, ids in oids.items():
        absent = sum(1 for oid in set(ids) if oid not in present)
        if absent:
            counts[path] = absent
    return counts


def _remote_problems(repo: Any, oids: dict[str, list[str]], sources: dict[str, str]) -> list[Problem]:
    """Check each object id on the default remote (DVC's own cloud status misses deleted ones)."""
    from dvc.exceptions import DvcException

    try:
        remote = repo.cloud.get_remote_odb(None, "reprotrain check")
    except DvcException as exc:
        return [
            Problem(
                "no-dvc-remote",
                "",
                f"cannot check the DVC remote: {first_line(exc)}",
                "dvc remote add -d <name> <url> && git commit .dvc/config",
            )
        ]
    try:
        wanted = {oid for ids in oids.values() for oid in ids}
        present = set(remote.oids_exist(list(wanted))) if wanted else set()
    except Exception as exc:  # network and credential errors come from many fsspec backends
        return [
            Problem(
                "dvc-remote-unreachable", "", f"the DVC remote cannot be read: {first_line(exc)}", "check the remote"
            )
        ]
    missing = {p: n for p, ids in oids.items() if (n := sum(1 for o in set(ids) if o not in present))}
    stuck = {
        path: str(remote.oid_to_path(ids[0]))
        for path, ids in oids.items()
        if path in missing and ids and ids[0].endswith(".dir") and ids[0] in present
    }
    return missing_object_problems(missing, sources, "remote", stuck)


@reports_incompatible
def cache_dir(path: Path) -> Path:
    """The local DVC cache directory of the repository at ``path`` (the one holding `files/`)."""
    from dvc.repo import Repo

    with Repo(os.fspath(path)) as repo:
        return Path(repo.cache.local.path).parents[1]


def forget_site_cache(worktree: Path, known: str | None = None) -> None:
    """Remove the directory DVC keeps for the repository at ``worktree`` in its site cache
    (`/var/tmp/dvc/repo/<hash of the path>`: its state and index databases, ≈80 KB). A worktree's
    path is never used again, so each run or rerun would leave one behind. ``known``: the
    directory, as read from a Repo of the worktree already (else one is opened)."""
    site = known
    if site is None:
        try:
            from dvc.repo import Repo

            with Repo(os.fspath(worktree)) as repo:
                site = repo.site_cache_dir
        except Exception:  # noqa: BLE001 - nothing to remove when DVC cannot even open it
            return
    shutil.rmtree(site, ignore_errors=True)


@reports_incompatible
def restore(
    worktree: Path,
    shared_cache: Path,
    local_config: Path | None,
    verified_index: Path | None = None,
    optional: frozenset[str] = frozenset(),
) -> list[str]:
    """Restore every DVC output of ``worktree`` at its pinned hash from the shared cache, fetching
    from the DVC remote (DVC's own `fetch`) only what the cache lacks. Returns the outputs that
    had to be fetched.

    Every object is verified: copied and hashed in one pass, the first time. DVC itself trusts
    any read-only cache file, but a process running as root writes through a hard-linked cache
    file anyway. ``verified_index`` remembers each verified object's inode, size, mtime and
    ctime; ctime cannot be set back from user space, so any write since then shows, and an
    object unchanged since it was verified is copied by the kernel without hashing it again.
    ``optional``: outputs (relative to ``worktree``) that may be missing from cache and remote
    alike (a pipeline's own, which `dvc repro` makes again); they are left out."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    quiet_dvc()
    dvc_dir = worktree / ".dvc"
    local = local_config.read_text(encoding="utf-8") if local_config and local_config.is_file() else ""
    try:
        if "[cache]" in local:  # the user's own cache section: let DVC merge ours into it
            (dvc_dir / "config.local").write_text(local, encoding="utf-8")
            with Repo(os.fspath(worktree)) as repo, repo.config.edit("local") as conf:
                conf["cache"]["dir"] = os.fspath(shared_cache)
        else:
            # written by hand, relative to .dvc/ (as DVC stores relative paths): DVC's config
            # writer is ASCII-only, and the shared prefix that may hold non-ASCII drops out
            section = f"[cache]\n    dir = {os.path.relpath(shared_cache, dvc_dir)}\n"
            (dvc_dir / "config.local").write_text(local + ("\n" if local else "") + section, encoding="utf-8")
        index = _load_index(verified_index)
        fresh: dict[str, list[int]] = {}  # objects verified now
        with Repo(os.fspath(worktree)) as repo:
            outs = [o for o in repo.index.outs if o.use_cache and o.is_in_repo and o.hash_info and o.hash_info.value]
            try:
                missing = _restore_outputs(repo, outs, worktree, index, fresh)  # what the cache has, in one pass
                if set(missing) <= optional:
                    missing = []  # the pipeline makes them again: no fetch for them
                if missing:
                    _fetch_and_restore(repo, outs, missing, worktree, index, fresh, optional)
            finally:
                if fresh and verified_index is not None:
                    write_json(verified_index, index | fresh, separators=(",", ":"))
    except DvcException as exc:
        raise ReprotrainError(f"restoring the data in {worktree} failed: {first_line(exc)}") from exc
    except UnicodeEncodeError as exc:
        raise ReprotrainError(
            f"DVC cannot write the shared cache path {shared_cache} into its config (non-ASCII characters)",
            hint="move the DVC cache to a path of ASCII characters: dvc cache dir <path>",
        ) from exc
    except OSError as exc:  # an unreadable cache object, a full disk, ...
        raise ReprotrainError(
            f"restoring the data in {worktree} failed: {exc}",
            hint="check that the DVC cache is readable (dvc cache dir shows where) and that the disk has room",
        ) from exc
    return missing


def _fetch_and_restore(
    repo: Any,
    outs: list[Any],
    missing: list[str],
    worktree: Path,
    index: dict[str, list[int]],
    fresh: dict[str, list[int]],
    optional: frozenset[str] = frozenset(),
) -> None:
    """DVC's fetch for the outputs the cache lacked, then those outputs restored again."""
    from dvc.exceptions import DvcException

    try:
        repo.fetch()
    except DvcException as exc:
        raise ReprotrainError(
            f"the data {', '.join(missing)} is not in the DVC cache and fetching it from the DVC "
            f"remote failed: {first_line(exc)}",
            hint="dvc push from a clone that has it, or check the DVC remote (dvc remote list)",
        ) from exc
    again = [o for o in outs if os.path.relpath(o.fs_path, worktree) in missing]
    still = [name for name in _restore_outputs(repo, again, worktree, index, fresh) if name not in optional]
    if still:
        raise ReprotrainError(
            f"the data {', '.join(still)} is in neither the DVC cache nor the DVC remote",
            hint="dvc push from a clone that has it, or point the DVC remote at the right store",
        )


def _manifest(repo: Any, hash_info: Any) -> list[tuple[tuple[str, ...], str]] | None:
    """(path parts, md5) of every file in a `.dir` manifest; None when the local cache lacks it
    or cannot read it. Iterates DVC's Tree as loaded, without building its prefix trie."""
    from dvc_data.hashfile.tree import Tree

    try:
        tree = Tree.load(repo.cache.local, hash_info)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return [(key, hi.value) for key, _meta, hi in tree if hi and hi.value]


def _entries(repo: Any, out: Any) -> list[tuple[str, str]] | None:
    """(destination file, md5) for every file of an output; None when its `.dir` manifest is not
    in the cache."""
    if not out.hash_info.isdir:
        return [(out.fs_path, out.hash_info.value)]
    entries = _manifest(repo, out.hash_info)
    return None if entries is None else [(os.path.join(out.fs_path, *key), oid) for key, oid in entries]


def _hash_problems(repo: Any, pinned: list[tuple[DataOutput, Any]]) -> list[Problem]:
    """Hash every file of every output and compare it with its pin (DVC's own hash function, so
    `md5-dos2unix` pins of DVC 2 are hashed as DVC 2 did); files a directory has beyond its
    manifest count as changes too."""
    from concurrent.futures import ThreadPoolExecutor

    from dvc_data.hashfile.hash import file_md5

    jobs: list[tuple[str, str, str, str]] = []  # (output, file, expected md5, hash name)
    extra: dict[str, int] = {}
    for data, out in pinned:
        entries = _entries(repo, out)
        if entries is None:
            continue  # its manifest is not in the cache: reported as such
        name = out.hash_info.name or "md5"
        jobs.extend((data.path, dest, oid, name) for dest, oid in entries)
        if out.hash_info.isdir and os.path.isdir(out.fs_path):
            listed = {dest for dest, _ in entries}
            ignore = repo.dvcignore  # what DVC leaves out of a directory is not an extra file
            found = sum(
                1
                for top, _dirs, files in ignore.walk(repo.fs, out.fs_path)
                for f in files
                if os.path.join(top, f) not in listed
            )
            if found:
                extra[data.path] = found

    def differs(job: tuple[str, str, str, str]) -> str | None:
        output, dest, expected, name = job
        try:
            return None if file_md5(dest, name=name) == expected else output
        except OSError:
            return output

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:  # hashing releases the GIL
        bad = [output for output in pool.map(differs, jobs) if output is not None]
    counts = {path: bad.count(path) for path in set(bad)}
    for path, n in extra.items():
        counts[path] = counts.get(path, 0) + n
    sources = {data.path: data.source for data, _ in pinned}
    return [hash_mismatch_problem(path, sources[path], n) for path, n in sorted(counts.items())]


def _load_index(path: Path | None) -> dict[str, list[int]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _restore_outputs(
    repo: Any, outs: list[Any], worktree: Path, index: dict[str, list[int]], fresh: dict[str, list[int]]
) -> list[str]:
    """Copy every file of ``outs`` from the cache into the worktree, hashing the objects ``index``
    has no current stamp for (their stamps go into ``fresh``). Returns the outputs (relative
    paths) whose manifest or objects the cache lacks; raises if an object does not match its md5."""
    from concurrent.futures import ThreadPoolExecutor

    cache = repo.cache.local
    absent: set[str] = set()
    owner: dict[str, str] = {}  # destination file -> its output (relative)
    jobs = []
    for out in outs:
        name = os.path.relpath(out.fs_path, worktree)
        target = Path(out.fs_path)  # a checked-out worktree may hold a stale copy or DVC's placeholder
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entries = _entries(repo, out)
        if entries is None:
            absent.add(name)
            continue
        for dest, oid in entries:
            owner[dest] = name
            jobs.append((cache.oid_to_path(oid), dest, oid, index.get(oid)))
    for parent in sorted({os.path.dirname(dest) for dest in owner}):
        os.makedirs(parent, exist_ok=True)
    workers = max(2, os.cpu_count() or 1)
    batches = [jobs[i : i + 256] for i in range(0, len(jobs), 256)]  # one task per file costs more than a copy
    with ThreadPoolExecutor(max_workers=workers) as pool:  # hashing and I/O release the GIL
        results = list(pool.map(_copy_batch, batches))
    bad = [dest for batch_bad, _, _ in results for dest in batch_bad]
    for _, stamps, batch_absent in results:
        fresh.update(stamps)
        absent.update(owner[dest] for dest in batch_absent)
    if bad:
        shown = ", ".join(os.path.relpath(b, worktree) for b in bad[:5]) + (
            f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        )
        raise ReprotrainError(
            f"restored data does not match its pinned hash (corrupted DVC cache object?): {shown}",
            hint="remove the bad objects from the DVC cache (dvc cache dir shows where) and dvc pull them again",
        )
    return sorted(absent)


def _copy_batch(
    jobs: list[tuple[str, str, str, list[int] | None]],
) -> tuple[list[str], dict[str, list[int]], list[str]]:
    """Copy each cache object to its destination. Returns the destinations that did not match
    their md5 (removed), the stamps of the objects verified now, and the destinations whose
    object is not in the cache."""
    bad: list[str] = []
    absent: list[str] = []
    stamps: dict[str, list[int]] = {}
    for source, dest, expected, known in jobs:
        try:
            outcome = _copy_one(source, dest, expected, known)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and exc.filename == source:
                absent.append(dest)
                continue
            raise OSError(exc.errno, exc.strerror, source, None, dest) from exc  # names both files
        if outcome is None:
            bad.append(dest)
        elif outcome:
            stamps[expected] = outcome
    return bad, stamps, absent


def _copy_one(source: str, dest: str, expected: str, known: list[int] | None) -> list[int] | None:
    """Copy one cache object. One unchanged since it was verified (``known`` is its stamp) is
    copied by the kernel: returns []. Otherwise it is hashed on the way: returns its stamp, or
    None (the copy removed) when it does not match ``expected``."""
    src = os.open(source, os.O_RDONLY)
    try:
        st = os.fstat(src)
        stamp = data_memo.stamp(st)
        dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            if known == stamp:
                _kernel_copy(src, dst, st.st_size)
                return []
            digest = hashlib.md5()
            with open(dst, "wb", closefd=False) as out:
                while chunk := os.read(src, 4 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        finally:
            os.close(dst)
        if digest.hexdigest() != expected:
            os.unlink(dest)
            return None
        return stamp if data_memo.stamp(os.fstat(src)) == stamp else []  # [] if written to meanwhile
    finally:
        os.close(src)


def _kernel_copy(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes between two open files inside the kernel (copy_file_range), or with a
    read/write loop where the platform or file system does not offer it."""
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < size:
                step = os.copy_file_range(src, dst, size - done)
                if not step:
                    break
                done += step
            return
        except OSError:
            if done:  # a real I/O error part-way (disk full, ...)
                raise
    with open(src, "rb", closefd=False) as fin, open(dst, "wb", closefd=False) as fout:
        shutil.copyfileobj(fin, fout, 4 << 20)


@reports_incompatible
def dir_manifests(path: Path, hashes: list[str]) -> dict[str, dict[str, str] | None]:
    """Entries (relative path -> md5) of each `.dir` hash found in the local cache; None if absent."""
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    found: dict[str, dict[str, str] | None] = {}
    try:
        repo = Repo(os.fspath(path))
    except Exception:  # not a DVC repo here: nothing to list
        return dict.fromkeys(hashes)
    with repo:
        for value in hashes:
            entries = _manifest(repo, HashInfo("md5", value))
            found[value] = None if entries is None else {"/".join(key): oid for key, oid in entries}
    return found
