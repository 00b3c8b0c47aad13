"""The Python environment a run's code ran in: this interpreter's, or another one's, asked by
running this file with it (standard library only, so it runs in any Python 3)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

__all__ = ["describe", "describe_other", "first_on_path", "rebuild_digest", "same_environment"]


def describe(memo: str | None = None) -> dict[str, Any]:
    """The host, Python version and implementation, platform, executable and every installed
    distribution; where each one not from an index came from (`sources`, from its direct_url.json),
    the package indexes configured (credentials removed), and a digest of what a rebuild needs.
    ``memo``: a file that remembers the distributions by the stats of their metadata (see
    _distributions)."""
    packages, sources = _distributions(memo)
    found = {
        "host": platform.node(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
        "packages": dict(sorted(packages.items())),
        "sources": dict(sorted(sources.items())),
        "indexes": _indexes(),
        "find_links": _indexes(_FIND_LINKS_VARIABLES, ("find-links",)),
    }
    found["digest"] = rebuild_digest(found)
    return found


def _read_distributions() -> tuple[dict[str, str], dict[str, Any]]:
    """Every distribution's version and source; of two with one name, the first on sys.path (the
    one Python imports, and importlib.metadata.version() reports)."""
    from importlib import metadata

    packages: dict[str, str] = {}
    sources: dict[str, Any] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in packages:
            packages[name.lower()] = dist.version
            source = _source(dist.read_text("direct_url.json"))
            if source:
                sources[name.lower()] = source
    return packages, sources


_MEMO_VERSION = 2
_SETTLE_NS = 2_000_000_000  # a file changed this recently is not trusted by its stats
_METADATA_DIRS = (".dist-info", ".egg-info")
# finders whose distributions are the sys.path entries' (the backport's is added by importing it)
_PATH_FINDERS = {
    ("_frozen_importlib_external", "PathFinder"),
    ("importlib.metadata", "MetadataPathFinder"),
    ("importlib_metadata", "MetadataPathFinder"),
}


def _stamp(path: str) -> list[Any] | None:
    st = os.stat(path)
    return [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _signature() -> list[Any] | None:
    """What installing, removing, upgrading or editing a distribution changes: sys.path and each
    of its entries, each `*.dist-info`/`*.egg-info` there (an egg's `EGG-INFO`) and its METADATA
    (or PKG-INFO) and direct_url.json: device, inode, size, mtime and ctime (which no one can set
    back). None (read them all) when one changed within 2 s, when an entry is on a read-only file
    system (an image's: its stamps are the image builder's, alike in two images), or when a finder
    other than Python's own lists distributions."""
    for finder in sys.meta_path:
        kind = finder if isinstance(finder, type) else type(finder)
        if hasattr(finder, "find_distributions") and (kind.__module__, kind.__qualname__) not in _PATH_FINDERS:
            return None
    limit = time.time_ns() - _SETTLE_NS
    here = os.path.abspath(__file__)  # another reprotrain (an editable checkout changed) reads afresh
    signature: list[Any] = [sys.executable, sys.prefix, list(sys.path), _stamp(here)]
    for entry in sys.path:
        top = entry or os.curdir
        try:
            stamp = _stamp(top)
            readonly = bool(os.statvfs(top).f_flag & os.ST_RDONLY)
        except OSError:
            signature.append([entry, None])
            continue
        if readonly or stamp is None or stamp[5] >= limit:
            return None
        signature.append(stamp)
        if not os.path.isdir(top):
            continue
        try:
            names = sorted(e.name for e in os.scandir(top) if e.name.lower().endswith(_METADATA_DIRS))
        except OSError:
            return None
        if top.lower().endswith(".egg"):
            names.append("EGG-INFO")
        for name in names:
            path = os.path.join(top, name)
            for file in (path, os.path.join(path, "METADATA"), os.path.join(path, "PKG-INFO")):
                try:
                    stamp = _stamp(file)
                except OSError:
                    continue
                if stamp is None or stamp[5] >= limit:
                    return None
                signature.append(stamp)
                if file != path:
                    break  # METADATA, else PKG-INFO
            try:
                stamp = _stamp(os.path.join(path, "direct_url.json"))
            except OSError:
                continue
            if stamp is None or stamp[5] >= limit:
                return None
            signature.append(stamp)
    return signature


def _valid(packages: Any, sources: Any) -> bool:
    """A memo's content as _read_distributions makes it (a damaged or foreign one is read afresh)."""
    if not isinstance(packages, dict) or not isinstance(sources, dict):
        return False
    if not all(isinstance(k, str) and isinstance(v, str) and v.split() == [v] for k, v in packages.items()):
        return False  # a version with a blank in it would be an installer option
    return all(isinstance(k, str) and isinstance(v, dict) and k in packages for k, v in sources.items())


def _distributions(memo: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    """The installed distributions' versions and sources. With ``memo`` (a file of this user's
    only), remembered by their metadata's stats: reading every METADATA costs ≈0.1 s, the stats a
    few milliseconds."""
    if memo is None:
        return _read_distributions()
    signature = _signature()
    if signature is not None:
        try:
            fd = os.open(memo, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, encoding="utf-8") as fh:
                data = json.load(fh) if os.fstat(fh.fileno()).st_uid == os.getuid() else {}
            same = data.get("version") == _MEMO_VERSION and data.get("signature") == signature
            if same and _valid(data.get("packages"), data.get("sources")):
                return data["packages"], data["sources"]
        except (OSError, ValueError, AttributeError):
            pass  # none yet, damaged, or another user's
    packages, sources = _read_distributions()
    if signature is not None:
        _remember(memo, {"version": _MEMO_VERSION, "signature": signature, "packages": packages, "sources": sources})
    return packages, sources


def _remember(memo: str, data: dict[str, Any]) -> None:
    import tempfile

    try:
        os.makedirs(os.path.dirname(memo), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(memo), prefix=".environment-", suffix=".tmp")  # 0600
    except OSError:
        return  # only an optimisation
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, memo)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


# what a rebuild of the environment needs (not where it ran: host, executable)
_REBUILD_KEYS = ("python", "implementation", "machine", "packages", "sources", "indexes", "find_links")


def rebuild_digest(environment: dict[str, Any]) -> str:
    """sha256 of what a rebuild needs, as a rebuilt environment's cache is keyed."""
    import hashlib

    wanted = {k: environment.get(k) for k in _REBUILD_KEYS}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def _no_credentials(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.query:  # `?X-Amz-Signature=...`, `?token=...`: a presigned or token URL's secret
        parts = parts._replace(query="")
        url = urlunsplit(parts)
    if "@" not in parts.netloc:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    if parts.scheme in ("ssh", "git+ssh") and ":" not in user:
        return url  # ssh://git@host/x: a login name, not a secret (the key authenticates); needed to clone
    return urlunsplit(parts._replace(netloc=host))


def _source(text: str | None) -> dict[str, Any] | None:
    """A distribution's origin from its PEP 610 direct_url.json: `url` (credentials removed), and
    `vcs` with `commit`, or `editable`, or `archive`; None when it came from an index."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    source: dict[str, Any] = {"url": _no_credentials(data["url"])}
    if isinstance(data.get("subdirectory"), str) and data["subdirectory"]:
        source["subdirectory"] = data["subdirectory"]  # the package inside a repository or archive
    if isinstance(data.get("vcs_info"), dict):
        vcs = data["vcs_info"]
        source |= {"vcs": vcs.get("vcs", "git"), "commit": vcs.get("commit_id", "")}
        if vcs.get("requested_revision"):
            source["revision"] = vcs["requested_revision"]
    elif isinstance(data.get("dir_info"), dict):
        source["editable"] = bool(data["dir_info"].get("editable"))
    elif isinstance(data.get("archive_info"), dict):
        source["archive"] = True
    return source


_INDEX_VARIABLES = (
    "PIP_INDEX_URL",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "PIP_EXTRA_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
)


_FIND_LINKS_VARIABLES = ("PIP_FIND_LINKS", "UV_FIND_LINKS")


def configured_indexes() -> list[str]:
    """The index URLs configured here now, as a record lists them."""
    return _indexes()


def _indexes(
    variables: tuple[str, ...] = _INDEX_VARIABLES, keys: tuple[str, ...] = ("index-url", "extra-index-url")
) -> list[str]:
    """The package index URLs this environment's installers are configured with (variables, then
    pip's configuration files), credentials removed; [] means PyPI. With the find-links names:
    the directories and pages of wheels they also install from."""
    import configparser

    found: list[str] = []
    for name in variables:
        found += os.environ.get(name, "").replace(",", " ").split()
    home = os.path.expanduser("~")
    files = [
        "/etc/pip.conf",
        *(os.path.join(d, "pip", "pip.conf") for d in os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")),
        os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf"),
        os.path.join(home, ".pip", "pip.conf"),
        os.path.join(sys.prefix, "pip.conf"),
    ]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(os.environ["PIP_CONFIG_FILE"])
    for path in files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            for key in keys:
                if parser.has_option(section, key):
                    found += parser.get(section, key).split()
    unique: list[str] = []
    for url in (_no_credentials(u) for u in found if u):
        if url not in unique:
            unique.append(url)
    return unique


def same_environment(prefix: str) -> bool:
    """Whether a Python whose `sys.prefix` is ``prefix`` runs in this environment (a venv's
    `python` is a link to the system's: the file names the interpreter, the prefix the packages)."""
    return os.path.realpath(prefix) == os.path.realpath(sys.prefix)


def describe_other(executable: str, timeout: float = 60) -> dict[str, Any] | None:
    """What ``describe`` says in the Python at ``executable`` (isolated mode: no PYTHONPATH, no
    user site), or None if it cannot be asked."""
    try:
        proc = subprocess.run(
            [executable, "-I", os.path.abspath(__file__)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return found if isinstance(found, dict) else None


def first_on_path() -> dict[str, str]:
    """PATH with the directory of the Python reprotrain runs under first (and VIRTUAL_ENV set when
    it is a virtualenv), as `uv run` and `poetry run` do: `python train.py` runs in the
    environment reprotrain was started from, activated or not. Not when the user activated
    another environment (reprotrain installed with pipx or `uv tool`, driving a project's venv or
    a conda env): that one stays first. Either way the record describes the Python that ran."""
    active = os.environ.get("VIRTUAL_ENV") or os.environ.get("CONDA_PREFIX")
    if active and os.path.realpath(active) != os.path.realpath(sys.prefix):
        return {}
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    env = {}
    if bindir and path.split(os.pathsep, 1)[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, path]) if path else bindir
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


if __name__ == "__main__":
    sys.stdout.write(json.dumps(describe()))
