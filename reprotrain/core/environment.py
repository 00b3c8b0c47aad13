"""A recorded Python environment as a requirements file (pure): what `reprotrain env RUN_ID` prints,
so anyone can rebuild the environment a run's code ran in (`uv pip install -r` or `pip install -r`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["requirement_lines", "requirements_text"]


def requirement_lines(environment: Mapping[str, Any]) -> list[str]:
    """One line per distribution: `name==version` from an index; `name @ git+URL@COMMIT` from a VCS;
    `name @ URL` from a wheel or archive; `-e URL` (editable) or `name @ URL` from a local directory."""
    sources = environment.get("sources") or {}
    lines = []
    for name, version in sorted((environment.get("packages") or {}).items()):
        source = sources.get(name)
        if not source:
            lines.append(f"{name}=={version}")
            continue
        fragment = f"#subdirectory={source['subdirectory']}" if source.get("subdirectory") else ""
        if source.get("vcs"):
            url = str(source["url"])
            vcs = source["vcs"]
            url = url if url.startswith(f"{vcs}+") else f"{vcs}+{url}"
            lines.append(f"{name} @ {url}@{source.get('commit') or source.get('revision', '')}{fragment}")
        elif source.get("editable"):
            lines.append(f"-e {source['url']}{fragment}  # {name} {version}, editable")
        else:
            lines.append(f"{name} @ {source['url']}{fragment}  # {version}")
    return lines


def requirements_text(environment: Mapping[str, Any], run_id: str) -> str:
    """The whole file: a header naming the interpreter and the digest, the index options, the lines."""
    python = environment.get("python") or "?"
    head = [
        f"# the Python environment of reprotrain run {run_id}",
        f"# {environment.get('implementation') or 'Python'} {python} on {environment.get('platform') or '?'}",
    ]
    if environment.get("digest"):
        head.append(f"# digest {environment['digest']}")
    if not environment.get("sources") and not environment.get("digest"):
        head.append("# recorded before reprotrain recorded where packages came from: every one is pinned from an index")
    indexes = list(environment.get("indexes") or [])
    options = []
    if indexes:
        options.append(f"--index-url {indexes[0]}")
        options += [f"--extra-index-url {url}" for url in indexes[1:]]
    return "\n".join([*head, *options, *requirement_lines(environment)]) + "\n"
