"""DVC's config files read as text, without importing DVC: the credentials they hold (remote
passwords, access keys, tokens in remote URLs) are masked wherever reprotrain writes, like the
environment's. A training that prints its DVC remote's settings must not store them."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from reprotrain.core.secrets import url_secrets

__all__ = ["cache_dir_setting", "default_remote", "default_remote_url", "remote_secrets"]

# DVC's remote options that hold a credential (s3, azure, gs, gdrive, ssh, http, webdav, oss, ...):
# named one by one, since a rule by name would also mask `auth = basic` or `ask_password = true`
CREDENTIAL_OPTIONS = frozenset(
    {
        "password",
        "passphrase",
        "secret_access_key",
        "access_key_id",
        "session_token",
        "token",
        "sas_token",
        "account_key",
        "connection_string",
        "client_secret",
        "gdrive_client_secret",
        "key_secret",
        "oss_key_secret",
        "oss_key_id",
        "custom_auth_header_value",
    }
)


def _parsed(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser


def default_remote(root: Path) -> tuple[str, Path] | None:
    """The default DVC remote (`core.remote`) that `dvc push` and `dvc pull` use and the config file
    that names it, as DVC picks it: the repository's `config.local` over its `config` over the
    user's and the system's."""
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files = [Path("/etc/xdg/dvc/config"), home / "dvc" / "config", *_repo_config_files(root)]
    found = None
    for path in files:
        parser = _parsed(path)
        if parser is not None and parser.has_option("core", "remote"):
            name = parser.get("core", "remote").strip().strip("'\"")
            found = (name, path) if name else None
    return found


def _repo_config_files(root: Path) -> list[Path]:
    for directory in (root, *root.parents):
        if (directory / ".dvc").is_dir():
            return [directory / ".dvc" / "config", directory / ".dvc" / "config.local"]
    return []


def _config_files(root: Path) -> list[Path]:
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [*_repo_config_files(root), home / "dvc" / "config"]


def remote_secrets(root: Path) -> set[str]:
    """Values of DVC's credential options (`secret_access_key`, `password`, `account_key`, ...) and
    passwords inside URLs, in the project's DVC config, its `config.local` and the user's."""
    found: set[str] = set()
    for path in _config_files(root):
        parser = _parsed(path)
        if parser is None:
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                value = value.strip().strip("'\"")
                if key.lower() in CREDENTIAL_OPTIONS and value.lower() not in {"true", "false", ""}:
                    found.add(value)
                found |= url_secrets([value])
    return {v for v in found if len(v) >= 4}


def default_remote_url(root: Path) -> str:
    """The URL of the project's default DVC remote (`core.remote`), with any credentials removed;
    a relative local path made absolute, as DVC reads it (from the config file's directory). Read
    as text, as DVC merges its files: the user's config, then the project's, then config.local."""
    from reprotrain.core.record import strip_credentials

    files = _config_files(root)
    ordered = [files[-1], *files[:-1]]  # global first: the project's files win
    name = ""
    urls: dict[str, tuple[str, Path]] = {}
    for path in ordered:
        parser = _parsed(path)
        if parser is None:
            continue
        for section in parser.sections():
            words = section.strip().strip("'").split(None, 1)  # ['remote "name"']
            if section.strip() == "core" and parser.has_option(section, "remote"):
                name = parser.get(section, "remote").strip().strip("'\"")
            elif len(words) == 2 and words[0] == "remote" and parser.has_option(section, "url"):
                urls[words[1].strip().strip("'\"")] = (parser.get(section, "url").strip().strip("'\""), path.parent)
    if not name or name not in urls:
        return ""
    url, base = urls[name]
    if "://" not in url and not os.path.isabs(url):
        url = os.path.normpath(os.path.join(base, url))
    return strip_credentials(url)


def cache_dir_setting(root: Path) -> str | None:
    """The DVC cache directory the repository's config sets (`cache.dir`, resolved as DVC does:
    relative to the config file's directory), or None for the default `.dvc/cache`."""
    found = None
    for path in _repo_config_files(root):
        parser = _parsed(path)
        if parser is not None and parser.has_option("cache", "dir"):
            value = parser.get("cache", "dir").strip().strip("'\"")
            found = os.path.normpath(os.path.join(path.parent, os.path.expanduser(value))) if value else None
    return found
