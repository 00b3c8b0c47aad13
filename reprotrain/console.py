"""The console script `reprotrain`. A `reprotrain run` goes to this context's warm process first
(adapters/warm.py): this process is then only the launch's client, so nothing is imported here
but what talking to it needs; every other command, and a launch no warm process takes, is the CLI's
(cli.py)."""

from __future__ import annotations


def entry() -> None:
    import sys

    if sys.argv[1:2] == ["run"]:
        from reprotrain.adapters import warm

        forked = warm.launch(sys.argv)  # in a fork of a warm process, if this context has one
        if forked is not None:
            raise SystemExit(forked)
    from reprotrain.cli import entry as cli_entry

    cli_entry()
