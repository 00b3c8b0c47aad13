"""Secrets: which names hold them, which values to mask, and masking text, configs and overrides.

A secret is never written to a tag, param, artifact or captured console log: its value becomes
`****` and its key stays, so a reader still sees that the value was set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MASK",
    "Masker",
    "config_strings",
    "env_value_digests",
    "holds_credentials",
    "is_secret_name",
    "mask_assignments",
    "secret_env_values",
    "url_secrets",
]

MASK = "****"
# Substrings that name a secret wherever they appear, and words that do so only as a whole word
# (`token` is a secret, `tokenizer` and `max_tokens` are not).
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "connectionstring",
)
_SECRET_WORDS = {"token", "auth", "pass", "pwd", "dsn", "cookie"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("session", "key"), ("connection", "string")}
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# bounded repeats: an unbounded scheme or key made a 100 KB word take 37 s to scan (quadratic)
_URL_IN_TEXT = re.compile(r"[a-zA-Z][\w+.-]{0,31}://[^\s'\"]+")
_MIN_SECRET = 4  # shorter values would mask ordinary text everywhere
_MIN_ENV_SECRET = 8  # an environment value under a non-secret name: masked in text from this length


_NOT_SECRET = {"PWD", "OLDPWD"}  # the shell's working directories, not passwords


def is_secret_name(name: str) -> bool:
    """Whether a variable or config key name says it holds a secret (`db.password`, `HF_TOKEN`)."""
    if name in _NOT_SECRET:
        return False
    last = name.rsplit(".", 1)[-1]
    flat = re.sub(r"[^a-z0-9]", "", last.lower())
    if any(part in flat for part in _SECRET_PARTS):
        return True
    words = [w.lower() for w in _WORD.findall(last)]
    return bool(_SECRET_WORDS.intersection(words)) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def _url_passwords(text: str) -> set[str]:
    found = set()
    for url in _URL_IN_TEXT.findall(text):
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.password:
            found.add(parts.password)
        elif parts.username and parts.scheme in {"http", "https"}:
            found.add(parts.username)  # `https://<token>@host`: a lone user part is a token
    return found


def secret_env_values(environ: Mapping[str, str]) -> set[str]:
    """Values of secret-named variables, and passwords or tokens embedded in any variable's URL."""
    values = set()
    for name, value in environ.items():
        if is_secret_name(name) or name in {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_USERNAME"}:
            values.add(value)
        values |= _url_passwords(value)
    return {v for v in values if len(v) >= _MIN_SECRET}


def url_secrets(texts: Iterable[str]) -> set[str]:
    """Passwords and tokens inside any URL in these texts (a config value
    `postgresql://admin:PW@host/db`, an override `+remote=https://user:PW@host`)."""
    found: set[str] = set()
    for text in texts:
        found |= _url_passwords(text)
    return {v for v in found if len(v) >= _MIN_SECRET}


def config_strings(resolved: Any) -> Iterable[str]:
    """Every string value (and key) anywhere in a resolved config."""
    if isinstance(resolved, Mapping):
        for key, value in resolved.items():
            yield str(key)
            yield from config_strings(value)
    elif isinstance(resolved, (list, tuple)):
        for value in resolved:
            yield from config_strings(value)
    elif isinstance(resolved, str):
        yield resolved


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_TOKEN_FORMATS = re.compile(  # AWS access key IDs, GitHub, GitLab and Slack tokens
    r"\b(AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}|xox[abprs]-[\w-]{10,})"
)
_KEY_BLOCK = re.compile(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY-----)", re.S)
# `key = value`, `key: value`, `"key": "value"`, `export KEY=value`: the key is group 2, the value 4
_ASSIGNMENT = re.compile(r"""(["']?)([A-Za-z_][\w.-]{0,127})\1\s*[:=]\s*(["']?)([^\s"',;]{4,})\3""")


def holds_credentials(text: str) -> bool:
    """Whether a text looks like it holds credentials: a private key, a known token format, or a
    value given to a secret-named key (`password = ...`, `"private_key": "..."`, `export API_TOKEN=...`)."""
    if _PRIVATE_KEY.search(text) or _TOKEN_FORMATS.search(text):
        return True
    return any(is_secret_name(m.group(2)) for m in _ASSIGNMENT.finditer(text))


def mask_assignments(text: str) -> str:
    """``text`` with the values of secret-named keys, private keys and known tokens as `****`."""

    def value(match: re.Match[str]) -> str:
        if not is_secret_name(match.group(2)):
            return match.group(0)
        quote = match.group(3)
        return match.group(0)[: match.start(4) - match.start(0)] + MASK + quote

    masked = _ASSIGNMENT.sub(value, text)
    masked = _TOKEN_FORMATS.sub(MASK, masked)
    return _KEY_BLOCK.sub(rf"\1{MASK}\2", masked)


class Masker:
    """Masks known secret values in text, secret keys in configs, and secret override values."""

    def __init__(self, values: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        self.values = sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True)
        self.keys = set(keys)  # dotted config keys to mask whatever their name
        self._pattern = re.compile("|".join(re.escape(v) for v in self.values)) if self.values else None

    def __bool__(self) -> bool:
        return bool(self.values or self.keys)

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def data(self, data: bytes) -> bytes | None:
        """Masked bytes, or None when nothing needed masking (binary-safe, UTF-8 values)."""
        if self._pattern is None:
            return None
        import os

        changed = data
        for value in self.values:  # undecodable bytes of an environment value are kept as they were
            changed = changed.replace(os.fsencode(value), MASK.encode())
        return None if changed == data else changed

    def config(self, resolved: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in resolved.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if dotted in self.keys or (is_secret_name(str(key)) and not isinstance(value, Mapping)):
                out[key] = MASK if value is not None else None
            elif isinstance(value, Mapping):
                out[key] = self.config(value, dotted)
            elif isinstance(value, str):
                out[key] = self.text(value)
            elif isinstance(value, list):
                out[key] = [self.text(v) if isinstance(v, str) else v for v in value]
            else:
                out[key] = value
        return out

    def overrides(self, overrides: Iterable[str]) -> list[str]:
        masked = []
        for override in overrides:
            key, sep, value = override.partition("=")
            bare = key.lstrip("+~")
            if sep and (is_secret_name(bare) or bare in self.keys):
                masked.append(f"{key}={MASK}")
            else:
                masked.append(self.text(override))
        return masked

    @staticmethod
    def secret_config_values(resolved: Mapping[str, Any], keys: Iterable[str]) -> set[str]:
        """Values to mask in text: those under secret-named keys, and those under the given keys
        (values from the environment) that are long enough to be a credential rather than a word
        (masking `train` as text would mangle every path that contains it)."""
        wanted = set(keys)
        found: set[str] = set()

        def walk(node: Any, prefix: str) -> None:
            if isinstance(node, Mapping):
                for key, child in node.items():
                    dotted = f"{prefix}.{key}" if prefix else str(key)
                    if (dotted in wanted or is_secret_name(str(key))) and isinstance(child, (str, int, float)):
                        text = str(child)
                        if not isinstance(child, bool) and (is_secret_name(str(key)) or len(text) >= _MIN_ENV_SECRET):
                            found.add(text)
                    else:
                        walk(child, dotted)

        walk(resolved, "")
        return found


def env_value_digests(resolved: Mapping[str, Any], keys: Iterable[str]) -> dict[str, str]:
    """sha256 of each config value that came from the environment and is not secret-named: masked
    in the record, yet a rerun can still tell that it changed. Secret-named values (a rotated
    password) are left out: they must not decide whether a result is reproduced."""
    import hashlib

    from reprotrain.core.config import canonical_json, lookup

    digests = {}
    for key in keys:
        if is_secret_name(key):
            continue
        try:
            value = lookup(resolved, key)
        except KeyError:
            continue
        digests[key] = hashlib.sha256(f"{key}={canonical_json(value)}".encode()).hexdigest()
    return digests
