"""Shell completion for `reprotrain` (bash, zsh): subcommands, their options, and for `run`,
reprotrain's options and Hydra's own completion of overrides and config groups.

The shell function asks `reprotrain __complete CWORD WORDS...` for candidates, one per line.
`run` words go to Hydra's completion (`-sc query=bash`, with the line rewritten as Hydra expects an
app's), so groups, options and keys come from the project's real config.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Callable, Sequence

__all__ = ["candidates", "script"]

_BASH = """\
# reprotrain completion for bash; add to ~/.bashrc:  eval "$(reprotrain completion bash)"
_reprotrain_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(reprotrain __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
}
# `key=value` is one word to complete (as Hydra's own completion has it)
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _reprotrain_complete reprotrain
"""

_ZSH = """\
# reprotrain completion for zsh; add to ~/.zshrc:  eval "$(reprotrain completion zsh)"
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
""" + _BASH.split("\n", 1)[1]


def script(shell: str) -> str:
    return {"bash": _BASH, "zsh": _ZSH}[shell]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _choices(parser: argparse.ArgumentParser, flag: str) -> list[str]:
    for action in parser._actions:
        if flag in action.option_strings and action.choices:
            return [str(c) for c in action.choices]
    return []


def candidates(
    words: Sequence[str],
    cword: int,
    parser: argparse.ArgumentParser,
    rerun_parser: argparse.ArgumentParser,
    run_flags: Sequence[str],
    hydra_query: Callable[[str], list[str]],
    own_flags: Sequence[str] = ("--allow-unpinned", "--require-pushed", "--timeout"),
) -> list[str]:
    """What may complete word ``cword`` of ``words`` (``words[0]`` is `reprotrain`)."""
    words = list(words) + [""] * max(0, cword + 1 - len(words))
    current = words[cword]
    before = words[1:cword]
    commands = _subparsers(parser)
    if not before:
        return [c for c in [*commands, "--help", "--version"] if c.startswith(current)]
    command = before[0]
    if command == "run":
        if current.startswith("--"):
            return [f for f in run_flags if f.startswith(current)]
        found = hydra_query(" ".join(["reprotrain-run", *_hydras(words[2:cword], own_flags), current]))
        return [f for f in found if f.startswith(current)]
    sub = rerun_parser if command == "rerun" else commands.get(command)
    if sub is None:
        return []
    if before[-1].startswith("--") and _choices(sub, before[-1]):
        return [c for c in _choices(sub, before[-1]) if c.startswith(current)]
    if current.startswith("-"):
        return [f for f in _options(sub) if f.startswith(current)]
    if command in {"show", "env", "rerun", "apply", "diff"} and "last".startswith(current):
        return ["last"]
    if command == "completion":
        return [s for s in ("bash", "zsh") if s.startswith(current)]
    return []


def _hydras(words: Sequence[str], own_flags: Sequence[str]) -> list[str]:
    """The words of a `run` line that are Hydra's: reprotrain's options (and --timeout's value) left out,
    since Hydra's completion stops at an option it does not know."""
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.split("=", 1)[0] in own_flags:
            skip = word == "--timeout"
            continue
        kept.append(word)
    return kept


def hydra_query(line: str, run: Callable[[list[str]], int]) -> list[str]:
    """Hydra's completion of ``line`` (an app's command line), asked through `reprotrain run`."""
    saved = os.environ.get("COMP_LINE")
    os.environ["COMP_LINE"] = line
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            run(["-sc", "query=bash"])
    except BaseException:  # noqa: BLE001 - completion never fails the shell: no candidates instead
        return []
    finally:
        if saved is None:
            os.environ.pop("COMP_LINE", None)
        else:
            os.environ["COMP_LINE"] = saved
    return out.getvalue().split()
