"""DVC's config files read as text, without importing DVC: the credentials they hold (remote
passwords, access keys, tokens in remote URLs) are masked wherever reprotrain writes, like the
environment's. A training that prints its DVC remote's settings must not store them."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from reprotrain.core.secrets import is_secret_name, url_secrets

__all__ = ["remote_secrets"]


def _config_files(root: Path) -> list[Path]:
    files = []
    for directory in (root, *root.parents):
        if (directory / ".dvc").is_dir():
            files += [directory / ".dvc" / "config", directory / ".dvc" / "config.local"]
            break
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [*files, home / "dvc" / "config"]


def remote_secrets(root: Path) -> set[str]:
    """Values of secret-named keys (`secret_access_key`, `password`, `access_key_id`, ...) and
    passwords inside URLs, in the project's DVC config, its `config.local` and the user's."""
    found: set[str] = set()
    for path in _config_files(root):
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                value = value.strip().strip("'\"")
                if is_secret_name(key) and value:
                    found.add(value)
                found |= url_secrets([value])
    return {v for v in found if len(v) >= 4}
