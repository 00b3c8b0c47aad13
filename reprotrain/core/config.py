"""Config canonicalisation, digests, flattening to params, and command templates.

The resolved config arrives here as plain Python containers (dicts, lists, scalars), already
resolved once by the Hydra adapter, so every function is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reprotrain.errors import UsageError

__all__ = [
    "MAX_PARAM_KEY",
    "MAX_PARAM_VALUE",
    "canonical_json",
    "config_differences",
    "config_digest",
    "flatten_params",
    "interpolate_command",
    "lookup",
    "seeds",
]

MAX_PARAM_VALUE = 6000  # MLflow truncates (or, over HTTP, rejects) longer param values
MAX_PARAM_KEY = 250
_PARAM_KEY_BAD = re.compile(r"[^\w\-. /:]")
_TEMPLATE = re.compile(r"\$(\$?)\{([^{}]*)\}")


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, NaN spelled out rather than invalid JSON."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def config_digest(resolved: Mapping[str, Any], volatile: Iterable[str] = ()) -> str:
    """sha256 of the canonical resolved config, with values that come from the time or the output
    directory (``volatile`` dotted keys) left out: a rerun of the same config has the same digest."""
    stable = _without(resolved, set(volatile))
    return hashlib.sha256(canonical_json(stable).encode("utf-8")).hexdigest()


def _without(value: Any, keys: set[str], prefix: str = "") -> Any:
    if not keys or not isinstance(value, Mapping):
        return value
    out = {}
    for key, child in value.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        out[key] = "<volatile>" if dotted in keys else _without(child, keys, dotted)
    return out


def config_differences(
    expected: Mapping[str, Any], actual: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(key, expected, actual) for every leaf that differs, keys in ``ignore`` aside."""
    skip = set(ignore)
    left = {k: v for k, v in _walk(expected, "") if k not in skip}
    right = {k: v for k, v in _walk(actual, "") if k not in skip}
    missing = object()
    rows = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key, missing), right.get(key, missing)
        if a is missing or b is missing or canonical_json(a) != canonical_json(b):
            rows.append((key, None if a is missing else a, None if b is missing else b))
    return rows


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            yield from _walk(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _param_text(value: Any) -> str:
    if isinstance(value, (Mapping, list, tuple)):
        return canonical_json(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten_params(resolved: Mapping[str, Any]) -> dict[str, str]:
    """Flatten nested dicts to dotted keys; lists become JSON; values are clipped to MLflow's limit.

    The full config is logged as an artifact, so a clipped param loses nothing.
    """
    params: dict[str, str] = {}
    for key, value in _walk(resolved, ""):
        if not key:
            continue
        name = _PARAM_KEY_BAD.sub("_", key)[:MAX_PARAM_KEY]
        params[name] = _param_text(value)[:MAX_PARAM_VALUE]
    return params


def lookup(resolved: Mapping[str, Any], dotted: str) -> Any:
    """Value at a dotted path (`model.lr`, `layers.0`); KeyError when absent."""
    node: Any = resolved
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(dotted)
    return node


def interpolate_command(template: str, resolved: Mapping[str, Any]) -> str:
    """Fill `${key}` in a shell command from the resolved config, each value shell-quoted.

    `$${...}` is a literal `${...}` for the shell; `$NAME` is left to the shell as usual.
    """

    def fill(match: re.Match[str]) -> str:
        escaped, key = match.group(1), match.group(2).strip()
        if escaped:
            return "${" + match.group(2) + "}"
        try:
            value = lookup(resolved, key)
        except KeyError:
            raise UsageError(
                f"entrypoint refers to ${{{key}}}, which is not in the resolved config",
                hint=f"add `{key}` to the config, or write $${{{key}}} (or ${key}) for a shell variable",
            ) from None
        return shlex.quote(_param_text(value))

    return _TEMPLATE.sub(fill, template)


def seeds(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Every config value whose key names a seed: what a reader checks first when results drift."""
    return {
        key: value
        for key, value in _walk(resolved, "")
        if "seed" in key.rsplit(".", 1)[-1].lower() and not isinstance(value, Mapping)
    }
