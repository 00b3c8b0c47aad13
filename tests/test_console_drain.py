"""The console tee (reprotrain/adapters/process.py) with a real child process: a slow reader of
reprotrain's own stdout loses nothing and is not taken for a daemon holding the pipes."""

from __future__ import annotations

import os
import sys
import threading
import time

from reprotrain.adapters.process import run_command


def test_a_slow_terminal_loses_no_output(tmp_path, monkeypatch, capfd):
    read_end, write_end = os.pipe()
    got = bytearray()

    def slow_reader() -> None:
        time.sleep(4)  # longer than the 2 s drain after the code exits
        while chunk := os.read(read_end, 65536):
            got.extend(chunk)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    terminal = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", terminal)
    log = tmp_path / "console.log"
    command = f"{sys.executable} -c \"import sys; sys.stdout.write('x' * 140000 + chr(10))\""
    outcome = run_command(command, tmp_path, dict(os.environ), log)
    terminal.close()
    reader.join(30)
    assert outcome.exit_code == 0
    assert len(got) == 140001, len(got)
    assert log.stat().st_size == 140001
    assert "still holds the console open" not in capfd.readouterr().err
