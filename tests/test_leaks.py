"""Nothing followed, nothing leaked (issue 14, security): links in the output dir are never
followed out of it, special files never opened, and secrets inside URLs (config values, overrides,
DVC's own config, the tracking URI), in large output files and in untracked credential files never
reach the store, its artifacts or reprotrain's own lines."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import (
    artifact_json,
    artifact_paths,
    artifact_text,
    configure,
    embedded_uri,
    git_status,
    run_cli,
    single_run,
)

LEAKY_PY = """\
import os
import sys
from pathlib import Path

out = Path(os.environ["REPROTRAIN_OUTPUT_DIR"])
mode = os.environ.get("LEAK_MODE", "print")
if mode == "links":
    (out / "real.txt").write_text("real output\\n")
    os.symlink("real.txt", out / "inside")
    os.symlink("/etc/passwd", out / "passwd")
    os.symlink(os.environ["LEAK_OUTSIDE"], out / "outside")
    os.symlink("nowhere", out / "dangling")
    os.symlink("/etc", out / "etc")
    os.mkfifo(out / "pipe")
elif mode == "print":
    text = Path(os.environ["REPROTRAIN_CONFIG"]).read_text()
    local = Path(".dvc/config.local")
    if local.exists():
        text += local.read_text()
    print(text, flush=True)
    print(text, file=sys.stderr, flush=True)
    (out / "printed.txt").write_text(text)
elif mode == "rootlink":  # the output dir itself replaced by a link to elsewhere
    import shutil

    shutil.rmtree(out)
    os.symlink(os.environ["LEAK_OUTSIDE_DIR"], out)
elif mode == "binary":  # a checkpoint with the config pickled in, as frameworks save hyperparameters
    import pickle
    import zipfile

    with zipfile.ZipFile(out / "model.ckpt", "w") as zf:
        zf.writestr("hparams.pkl", pickle.dumps({"token": os.environ["MY_API_TOKEN"]}))
    (out / "notes.txt").write_text("token " + os.environ["MY_API_TOKEN"] + "\\n")
elif mode == "names":
    token = os.environ["MY_API_TOKEN"]
    (out / f"ckpt-{token}.txt").write_text("weights\\n")
    deep = out
    for i in range(400):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("deep\\n")
elif mode == "leftover":
    import subprocess

    child = subprocess.Popen(["sleep", "300"], start_new_session=False)
    Path(os.environ["LEAK_PIDFILE"]).write_text(str(child.pid))
elif mode == "daemon":  # a daemon (its own session) that keeps the console open and prints on
    import subprocess

    code = (
        "import time\\nwhile True:\\n try: print('DAEMON-LINE', flush=True)\\n except OSError: pass\\n"
        " time.sleep(0.05)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    Path(os.environ["LEAK_PIDFILE"]).write_text(str(child.pid))
elif mode == "big":
    secret = os.environ["MY_API_TOKEN"].encode()
    with open(out / "big.log", "wb") as fh:  # text over 16 MB, a secret across the first 1 MiB chunk's end
        fh.write(b"a" * ((1 << 20) - 5) + secret + b"x" * (17 << 20) + secret + b"end")
print("LEAKY-DONE", flush=True)
"""

TOKEN = "tok-LeakTestToken-4242"
PG_PASSWORD = "PgUrlPassw0rd-8888"
OVERRIDE_PASSWORD = "OverrideUrlPass-9999"
DVC_SECRET = "dvcSecretAccess-7777"
DVC_KEY_ID = "AKIADVCLOCALKEY01"


def leaky(project: Path, **settings) -> Path:
    (project / "leaky.py").write_text(LEAKY_PY)
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text() + f"db:\n  url: postgresql://admin:{PG_PASSWORD}@db.internal/prod\n")
    configure(project, entrypoint="python leaky.py", **settings)
    return project


def stored_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the embedded store: the SQLite database and every artifact."""
    state = root / ".reprotrain"
    files = [*state.glob("mlflow.db*"), *(p for p in (state / "artifacts").rglob("*") if p.is_file())]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_a_link_out_of_the_output_dir_is_never_followed(project, tmp_path):
    """A training that leaves `out/passwd -> /etc/passwd`, a link to a file outside, a dangling
    link and a FIFO: nothing outside is uploaded, the run is closed and its console log kept (with
    a secret in the environment, the FIFO used to hang the run forever)."""
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("OUTSIDE-THE-OUTPUT-DIR-5150\n")
    leaky(project)
    env = {"LEAK_MODE": "links", "LEAK_OUTSIDE": str(outside), "MY_API_TOKEN": TOKEN}
    res = run_cli("run", cwd=project, env=env, timeout=120)
    assert res.code == 0, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FINISHED"
    uri, run_id = embedded_uri(project), run.info.run_id
    paths = artifact_paths(uri, run_id)
    assert {"real.txt", "inside", "reprotrain/console.log"} <= paths, paths
    assert not {"passwd", "outside", "dangling", "pipe"} & paths and not any(p.startswith("etc/") for p in paths)
    assert artifact_text(uri, run_id, "inside") == "real output\n", "a link inside the output dir is sent as its file"
    outputs = artifact_json(uri, run_id, "reprotrain/outputs.json")
    assert outputs["passwd"] == "symlink:/etc/passwd" and outputs["dangling"] == "symlink:nowhere"
    assert "pipe" not in outputs
    (warning,) = [line for line in res.err.splitlines() if "not uploaded from the output dir" in line]
    assert "passwd -> /etc/passwd" in warning and "pipe (not a regular file)" in warning, warning
    stored = stored_bytes(project)
    root_line = Path("/etc/passwd").read_bytes().splitlines()[0]
    assert not [p for p, data in stored.items() if b"OUTSIDE-THE-OUTPUT-DIR-5150" in data or root_line in data]


def test_passwords_inside_urls_are_masked_everywhere(project):
    """`postgresql://admin:PW@host/db` in a config value and `+remote=https://user:PW@host` on the
    command line: in params, tags, config.yaml, the record, Hydra's files, the console log and
    output files the password is `****`; the code gets the real value."""
    leaky(project)
    override = f"+remote=https://builder:{OVERRIDE_PASSWORD}@git.internal/x.git"
    res = run_cli("run", override, cwd=project, env={"LEAK_MODE": "print"})
    assert res.code == 0, res.describe()
    assert PG_PASSWORD in res.out, "the code itself was given the real value"
    run = single_run(embedded_uri(project))
    assert run.data.params["db.url"] == "postgresql://admin:****@db.internal/prod"
    assert run.data.params["remote"] == "https://builder:****@git.internal/x.git"
    assert OVERRIDE_PASSWORD not in run.data.tags["reprotrain.overrides"]
    uri, run_id = embedded_uri(project), run.info.run_id
    assert "admin:****@" in artifact_text(uri, run_id, "printed.txt")
    needles = (PG_PASSWORD.encode(), OVERRIDE_PASSWORD.encode())
    leaks = [p for p, data in stored_bytes(project).items() if any(n in data for n in needles)]
    assert not leaks, f"a password inside a URL is stored in {leaks}"
    own_lines = [line for line in res.err.splitlines() if line.startswith("reprotrain")]
    assert not [line for line in own_lines if PG_PASSWORD in line or OVERRIDE_PASSWORD in line]


def test_dvc_remote_credentials_printed_by_the_code_are_masked(project):
    leaky(project)
    (project / ".dvc" / "config.local").write_text(
        "['remote \"private\"']\n"
        "    url = s3://bucket/data\n"
        f"    access_key_id = {DVC_KEY_ID}\n"
        f"    secret_access_key = {DVC_SECRET}\n"
    )
    assert git_status(project) == "", "DVC's config.local is ignored by git"
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "print"})
    assert res.code == 0, res.describe()
    assert DVC_SECRET in res.out, "the code printed them"
    run = single_run(embedded_uri(project))
    console = artifact_text(embedded_uri(project), run.info.run_id, "reprotrain/console.log")
    assert "secret_access_key = ****" in console and DVC_KEY_ID not in console, console[-500:]
    needles = (DVC_SECRET.encode(), DVC_KEY_ID.encode())
    leaks = [p for p, data in stored_bytes(project).items() if any(n in data for n in needles)]
    assert not leaks, leaks


def test_large_output_files_are_masked_too(project):
    """Over 16 MB (they used to be uploaded unmasked): masked while streamed, a secret across two
    read chunks included."""
    leaky(project)
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "big", "MY_API_TOKEN": TOKEN}, timeout=240)
    assert res.code == 0, res.describe()
    run = single_run(embedded_uri(project))
    artifact = Path(run.info.artifact_uri.removeprefix("file://")) / "big.log"
    data = artifact.read_bytes()
    assert TOKEN.encode() not in data and data.count(b"****") == 2 and data.endswith(b"end")
    assert len(data) == (1 << 20) - 5 + 4 + (17 << 20) + 4 + 3


def test_a_password_in_the_tracking_uri_is_never_printed(project):
    leaky(project)
    port = _closed_port()
    uri = f"http://admin:TrackingUriPass-3131@127.0.0.1:{port}"
    res = run_cli("run", cwd=project, env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
    assert res.code == 1, res.describe()
    assert "TrackingUriPass-3131" not in res.out + res.err, res.describe()
    assert f"http://127.0.0.1:{port}" in res.err, res.describe()


def test_unpinned_evidence_keeps_no_credential_file(project):
    """`--allow-unpinned` with credential files lying untracked: their names, sizes and hashes are
    kept, never their contents; code and config are kept whole, masked."""
    leaky(project)
    files = {
        ".git-credentials": f"https://me:{TOKEN}@github.com\n",
        "id_ecdsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYKEYKEY\n",
        "prod.env": f"API_TOKEN={TOKEN}\n",
        "token.txt": f"{TOKEN}\n",
        "kubeconfig": f"token: {TOKEN}\n",
        ".pypirc": f"[pypi]\npassword = {TOKEN}\n",
        "scratch.py": f"TOKEN = '{TOKEN}'  # pasted while debugging\n",
        "my-project-4f2a1c.json": '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nKEY"}',
        "gcloud/token.json": '{"refresh": "r"}',
        "deploy.sh": f"export AWS_SECRET_ACCESS_KEY={TOKEN}\n",
        "requirements-dev.txt": "pytest\n",
        "notes.py": "LR = 0.1\n",
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    train = project / "leaky.py"
    train.write_text(train.read_text() + "PASTED_PASSWORD = 'pw-NotInTheEnvironment-5151'\n")  # a tracked file
    os.symlink("/etc/passwd", project / "passwd-link")
    res = run_cli("run", "--allow-unpinned", cwd=project, env={"MY_API_TOKEN": TOKEN})
    assert res.code == 0, res.describe()
    uri, run_id = embedded_uri(project), single_run(embedded_uri(project)).info.run_id
    rows = {r["path"]: r for r in artifact_json(uri, run_id, "reprotrain/unpinned/untracked.json")}
    for name in files:
        assert rows[name]["size"] == len(files[name]) and len(rows[name]["sha256"]) == 64, rows[name]
    kept = {p for p in artifact_paths(uri, run_id) if p.startswith("reprotrain/unpinned/untracked/")}
    assert kept == {f"reprotrain/unpinned/untracked/{n}" for n in ("requirements-dev.txt", "notes.py")}, kept
    assert rows["scratch.py"]["kept"] == "name only: its contents look like credentials"
    assert rows["my-project-4f2a1c.json"]["kept"] == "name only: its contents look like credentials"
    assert rows["passwd-link"]["symlink"] == "/etc/passwd"
    leaks = [p for p, data in stored_bytes(project).items() if TOKEN.encode() in data or b"KEYKEYKEY" in data]
    assert not leaks, leaks
    assert "PASTED_PASSWORD = '****'" in artifact_text(uri, run_id, "reprotrain/unpinned/diff.patch")
    assert not [p for p, data in stored_bytes(project).items() if b"NotInTheEnvironment-5151" in data]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_output_dir_replaced_by_a_link_is_not_followed(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "id_rsa").write_text("PRIVATE-KEY-BEHIND-THE-LINK\n")
    leaky(project)
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "rootlink", "LEAK_OUTSIDE_DIR": str(elsewhere)})
    assert res.code == 0, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FINISHED"
    assert not [p for p in artifact_paths(embedded_uri(project), run.info.run_id) if "id_rsa" in p]
    assert not [p for p, data in stored_bytes(project).items() if b"PRIVATE-KEY-BEHIND-THE-LINK" in data]
    assert any("not uploaded from the output dir" in line and ". -> " in line for line in res.err.splitlines())


def test_a_binary_file_holding_a_secret_is_held_back_not_corrupted(project):
    """Masking changes a file's length: a zip or pickle would be broken. A binary file that holds
    a secret is not sent (and named); a text file is sent masked."""
    leaky(project)
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "binary", "MY_API_TOKEN": TOKEN})
    assert res.code == 0, res.describe()
    uri, run_id = embedded_uri(project), single_run(embedded_uri(project)).info.run_id
    paths = artifact_paths(uri, run_id)
    assert "model.ckpt" not in paths and "notes.txt" in paths, paths
    assert artifact_text(uri, run_id, "notes.txt") == "token ****\n"
    assert "model.ckpt" in artifact_json(uri, run_id, "reprotrain/outputs.json"), "its hash is still recorded"
    (line,) = [line for line in res.err.splitlines() if "not uploaded from the output dir" in line]
    assert "model.ckpt (a binary file that holds a secret)" in line, line
    assert not [p for p, data in stored_bytes(project).items() if TOKEN.encode() in data]


def test_secrets_in_file_names_and_very_deep_trees(project):
    leaky(project)
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "names", "MY_API_TOKEN": TOKEN})
    assert res.code == 0, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FINISHED"
    paths = artifact_paths(embedded_uri(project), run.info.run_id)
    assert "ckpt-****.txt" in paths and not [p for p in paths if TOKEN in p], sorted(paths)[:5]
    assert any(p.endswith("/leaf.txt") for p in paths), "400 directories deep is uploaded too"


def test_a_non_utf8_secret_in_the_environment_does_not_stop_the_run(project):
    leaky(project)
    env = {"LEAK_MODE": "print", "MY_API_TOKEN": "abc\udcff\udcfedefgh-NonUtf8"}
    res = run_cli("run", cwd=project, env=env)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err


def test_processes_the_training_leaves_running_are_stopped(project, tmp_path):
    """A child the code started and left behind would keep writing into the output dir while it
    is uploaded (and keep reprotrain's console pipes open): it is stopped when the code exits."""
    from helpers import pid_alive, wait_for

    leaky(project)
    pidfile = tmp_path / "child.pid"
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "leftover", "LEAK_PIDFILE": str(pidfile)}, timeout=120)
    assert res.code == 0, res.describe()
    child = int(pidfile.read_text())
    assert wait_for(lambda: not pid_alive(child), 10), "the training's leftover child still runs"


def test_a_daemon_holding_the_console_open_neither_stalls_nor_breaks_the_run(project, tmp_path):
    """A process the code started in a session of its own is out of reach of the process group
    and keeps printing into the console pipes: reprotrain stops reading after a short drain."""
    import signal

    from helpers import pid_alive

    leaky(project)
    pidfile = tmp_path / "daemon.pid"
    try:
        res = run_cli("run", cwd=project, env={"LEAK_MODE": "daemon", "LEAK_PIDFILE": str(pidfile)}, timeout=120)
        # it prints until killed: had reprotrain waited for the pipes to end, it would not be back
        assert pid_alive(int(pidfile.read_text())), "the daemon should still be running"
    finally:
        if pidfile.exists() and pid_alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()
    assert "still holds the console open" in res.err, res.describe()
    run = single_run(embedded_uri(project))
    assert run.info.status == "FINISHED"
    assert "LEAKY-DONE" in artifact_text(embedded_uri(project), run.info.run_id, "reprotrain/console.log")


def test_dvc_options_that_are_not_credentials_are_not_masked(project):
    leaky(project)
    (project / ".dvc" / "config.local").write_text(
        "['remote \"web\"']\n    url = https://dvc.example.invalid/store\n    auth = basic\n"
        "    ask_password = true\n    custom_auth_header = Authorization\n"
    )
    res = run_cli("run", cwd=project, env={"LEAK_MODE": "print"})
    assert res.code == 0, res.describe()
    run_id = single_run(embedded_uri(project)).info.run_id
    console = artifact_text(embedded_uri(project), run_id, "reprotrain/console.log")
    assert "auth = basic" in console and "ask_password = true" in console, console[-400:]
