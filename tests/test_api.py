"""The Python API (`reprotrain.load`, `reprotrain.runs`, `Run.open`), on runs the console script made.

Two runs of one real project: run A, then the data changed (a new commit with new DVC data), then
run B. The API is called in-process with ``cwd=`` (never a chdir), and once from a user's script
in a subprocess; `no_leaks` checks that no call leaves state behind for the next test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from helpers import (
    IMAGE_FILES,
    TRACKED_DATA_DIR,
    TRACKED_DATA_FILE,
    all_runs,
    commit_all,
    copy_project,
    dvc,
    dvc_out,
    embedded_uri,
    git,
    git_status,
    head_sha,
    run_cli,
    run_ok,
)

import reprotrain
from reprotrain.api import to_datetime

REFERENCE = Path(__file__).parents[1] / "docs" / "reference.md"
NEW_CSV = "a,b\n7,8\n"
NEW_IMAGE = b"changed image bytes"


@pytest.fixture(scope="module")
def two_runs(template_project, tmp_path_factory):
    """Run A on the original data; the data changed and committed; run B on the new data."""
    root = copy_project(template_project, tmp_path_factory.mktemp("api") / "demo")
    _, run_a = run_ok(root, "model.lr=0.3")
    sha_a = head_sha(root)
    hashes_a = {p: dvc_out(root, p + ".dvc")["md5"] for p in (TRACKED_DATA_FILE, TRACKED_DATA_DIR)}
    (root / TRACKED_DATA_FILE).write_text(NEW_CSV)
    (root / TRACKED_DATA_DIR / "img0.bin").write_bytes(NEW_IMAGE)
    dvc(root, "add", "-q", TRACKED_DATA_FILE, TRACKED_DATA_DIR)
    sha_b = commit_all(root, "new data")
    res = run_cli("run", "+experiment=fast", cwd=root)
    assert res.code == 0, res.describe()
    (run_b,) = {r.info.run_id for r in all_runs(embedded_uri(root))} - {run_a.info.run_id}
    return types.SimpleNamespace(root=root, a=run_a.info.run_id, b=run_b, sha_a=sha_a, sha_b=sha_b, hashes_a=hashes_a)


@pytest.fixture(autouse=True)
def no_leaks():
    """In-process use leaves the environment, the working directory and MLflow's fluent state as
    they were (the API opens a client for the store; it never sets a global URI or an active run)."""

    def environ() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    env, cwd = environ(), os.getcwd()
    yield
    assert environ() == env, "the API changed os.environ"
    assert os.getcwd() == cwd, "the API changed the working directory"
    if "mlflow" in sys.modules:
        import mlflow

        assert mlflow.active_run() is None, "the API left an active MLflow run"
        assert not mlflow.is_tracking_uri_set(), "the API set MLflow's global tracking URI"


# --------------------------------------------------------------------------- load


def test_load_gives_the_recorded_run_typed(two_runs):
    run = reprotrain.load(two_runs.a, cwd=two_runs.root)
    assert isinstance(run, reprotrain.Run)
    assert run.run_id == two_runs.a
    assert run.status == "FINISHED"
    assert run.commit == two_runs.sha_a and run.branch == "main" and run.pinned is True
    assert run.overrides == ("model.lr=0.3",)
    assert run.config["model"] == {"lr": 0.3, "layers": 2}
    assert run.metrics["acc"] == 0.9
    assert run.params["model.lr"] == "0.3"
    assert run.rerun_of is None and run.reproduced is None
    assert run.record["run_id"] == two_runs.a and run.record["git"]["commit"] == two_runs.sha_a
    assert run.root == two_runs.root.resolve()
    csv = run.version(TRACKED_DATA_FILE)
    digest = two_runs.hashes_a[TRACKED_DATA_FILE]
    assert csv == reprotrain.DataVersion(TRACKED_DATA_FILE, digest, 16, None, "data/train.csv.dvc")
    images = run.version(TRACKED_DATA_DIR)
    assert images.is_dir and images.hash == two_runs.hashes_a[TRACKED_DATA_DIR] and images.nfiles == 3
    assert {d.path for d in run.data} == {TRACKED_DATA_FILE, TRACKED_DATA_DIR}
    assert run.outputs == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "FAILED"  # type: ignore[misc]


def test_load_times_are_timezone_aware_datetimes(two_runs):
    run = reprotrain.load(two_runs.a, cwd=two_runs.root)
    assert isinstance(run.start, datetime) and isinstance(run.end, datetime)
    assert run.start.tzinfo is not None and run.end.tzinfo is not None
    assert run.start <= run.end <= datetime.now(timezone.utc)
    assert datetime.now(timezone.utc) - run.start < timedelta(hours=1)


def test_load_last_from_a_subdirectory(two_runs):
    run = reprotrain.load("last", cwd=two_runs.root / "data")
    assert run.run_id == two_runs.b
    assert run.commit == two_runs.sha_b
    assert run.overrides == ("+experiment=fast",)
    assert run.config["model"]["lr"] == 0.5


def test_load_by_a_unique_prefix(two_runs):
    assert reprotrain.load(two_runs.a[:8], cwd=two_runs.root).run_id == two_runs.a
    with pytest.raises(reprotrain.UsageError, match="too short"):
        reprotrain.load(two_runs.a[:4], cwd=two_runs.root)


def test_load_unknown_run_raises_reprotrain_error(two_runs):
    with pytest.raises(reprotrain.ReprotrainError) as caught:
        reprotrain.load("0123456789abcdef0123456789abcdef", cwd=two_runs.root)
    assert type(caught.value).__module__.startswith("reprotrain."), type(caught.value)
    assert "0123456789abcdef0123456789abcdef" in str(caught.value)


def test_load_outside_any_project_raises_reprotrain_error(tmp_path):
    with pytest.raises(reprotrain.ReprotrainError):
        reprotrain.load("last", cwd=tmp_path)


# --------------------------------------------------------------------------- the data as it was


def test_open_gives_the_recorded_bytes_after_the_data_changed(two_runs):
    assert (two_runs.root / TRACKED_DATA_FILE).read_text() == NEW_CSV, "the workspace holds the new data"
    assert git_status(two_runs.root) == ""
    old, new = reprotrain.load(two_runs.a, cwd=two_runs.root), reprotrain.load(two_runs.b, cwd=two_runs.root)
    with old.open(TRACKED_DATA_FILE) as f:
        assert f.read() == "a,b\n1,2\n3,4\n5,6\n"
    with new.open(TRACKED_DATA_FILE) as f:
        assert f.read() == NEW_CSV
    with old.open(f"{TRACKED_DATA_DIR}/img0.bin", mode="rb") as f:
        assert f.read() == IMAGE_FILES["img0.bin"]
    with new.open(f"./{TRACKED_DATA_DIR}/img0.bin", mode="rb") as f:
        assert f.read() == NEW_IMAGE


def test_data_path_is_a_local_file_with_the_recorded_bytes(two_runs):
    old = reprotrain.load(two_runs.a, cwd=two_runs.root)
    path = old.data_path(Path(TRACKED_DATA_DIR) / "img1.bin")
    assert path.read_bytes() == IMAGE_FILES["img1.bin"]
    assert not path.is_relative_to(two_runs.root / TRACKED_DATA_DIR), "a cache file, not the workspace's"
    assert old.data_path(TRACKED_DATA_FILE).read_text() == "a,b\n1,2\n3,4\n5,6\n"


def test_files_lists_a_directory_output_as_recorded(two_runs):
    old = reprotrain.load(two_runs.a, cwd=two_runs.root)
    assert old.files(TRACKED_DATA_DIR) == tuple(f"{TRACKED_DATA_DIR}/{n}" for n in sorted(IMAGE_FILES))


def test_open_refuses_what_the_run_did_not_record(two_runs):
    run = reprotrain.load(two_runs.a, cwd=two_runs.root)
    with pytest.raises(reprotrain.UsageError, match="recorded no data at 'train.py'"):
        run.open("train.py")
    with pytest.raises(reprotrain.UsageError, match="directory output"):
        run.open(TRACKED_DATA_DIR)
    with pytest.raises(reprotrain.ReprotrainError, match="no file 'nope.bin'"):
        run.open(f"{TRACKED_DATA_DIR}/nope.bin", mode="rb")
    with pytest.raises(reprotrain.UsageError, match="mode 'w'"):
        run.open(TRACKED_DATA_FILE, mode="w")  # type: ignore[call-overload]


def test_open_fetches_from_the_dvc_remote_and_refuses_a_damaged_cache_file(project, tmp_path):
    from rerun_helpers import dvc_remote, object_path

    dvc_remote(project, tmp_path / "dvc-store")
    run_ok(project)
    digest = dvc_out(project, TRACKED_DATA_FILE + ".dvc")["md5"]
    run = reprotrain.load("last", cwd=project)
    cached = object_path(project / ".dvc" / "cache", digest)
    cached.chmod(0o644)
    cached.write_text("a,b\n9,9\n9,9\n9,9\n")  # same size, other bytes: as a write through a hard link
    with pytest.raises(reprotrain.ReprotrainError, match="damaged"):
        run.open(TRACKED_DATA_FILE)
    manifest = object_path(project / ".dvc" / "cache", run.version(TRACKED_DATA_DIR).hash)
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"img2.bin"', '"img9.bin"'))
    with pytest.raises(reprotrain.ReprotrainError, match="damaged"):
        run.open(f"{TRACKED_DATA_DIR}/img9.bin", mode="rb")
    cached.unlink()
    shutil.rmtree(manifest.parent)  # the directory's manifest (and any object sharing its prefix)
    with run.open(TRACKED_DATA_FILE) as f:
        assert f.read() == "a,b\n1,2\n3,4\n5,6\n"
    assert cached.is_file(), "fetched into the cache"
    with run.open(f"{TRACKED_DATA_DIR}/img2.bin", mode="rb") as f:
        assert f.read() == IMAGE_FILES["img2.bin"]


def test_open_with_the_object_in_neither_cache_nor_remote(project):
    run_ok(project)
    run = reprotrain.load("last", cwd=project)
    shutil.rmtree(project / ".dvc" / "cache")
    with pytest.raises(reprotrain.ReprotrainError, match="DVC remote"):
        run.open(TRACKED_DATA_FILE)


def test_open_a_pipeline_output_the_run_made_and_nobody_committed(tmp_path):
    """A `dvc repro` run with an override: its output is in the record and the DVC cache, not in
    the workspace or any commit."""
    from test_pipeline import build_pipeline, with_python

    root = build_pipeline(tmp_path / "pipe")
    committed = (root / "model/model.txt").read_text()
    res = run_cli("run", "+experiment=more", cwd=root, env=with_python())
    assert res.code == 0, res.describe()
    run = reprotrain.load("last", cwd=root)
    assert [d.path for d in run.data] == ["data/raw.csv"]
    made = run.version("model/model.txt")
    assert made in run.outputs and made.source == "dvc.lock:train"
    with run.open("model/model.txt") as f:
        assert f.read() == str(2550 * 300) != committed
    assert (root / "model/model.txt").read_text() == committed, "the workspace is untouched"
    with run.open("prepared/rows.txt") as f:  # a file of a directory output (the stage did not rerun)
        assert f.read().split("\n")[:2] == ["2", "4"]
    kept = run.version("eval/scores.yaml")
    assert kept.source.endswith("(cache: false, in git)"), "an output git keeps: read from the run's artifacts"
    with run.open("eval/scores.yaml") as f:
        assert yaml.safe_load(f)["test"]["model"] == 2550 * 300
    assert yaml.safe_load((root / "eval/scores.yaml").read_text())["test"]["model"] == 2550 * 100
    with pytest.raises(reprotrain.UsageError, match="kept by git"):
        run.data_path("eval/scores.yaml")


def test_open_data_that_git_keeps_gives_the_bytes_of_the_run_commit(project):
    """`cache: false` data is pinned by git: read from the run's commit, after it changed."""
    from test_pin_sources import _set_out

    _set_out(project, f"{TRACKED_DATA_FILE}.dvc", cache=False)
    (project / "data" / ".gitignore").write_text("/images\n")
    git(project, "add", TRACKED_DATA_FILE)
    commit_all(project, "keep train.csv in git")
    run_ok(project)
    (project / TRACKED_DATA_FILE).write_text(NEW_CSV)
    dvc(project, "commit", "-q", "-f", f"{TRACKED_DATA_FILE}.dvc")
    commit_all(project, "new data in git")
    run = reprotrain.load("last", cwd=project)
    assert run.version(TRACKED_DATA_FILE).source.endswith("(cache: false, in git)")
    with run.open(TRACKED_DATA_FILE, mode="rb") as f:
        assert f.read() == b"a,b\n1,2\n3,4\n5,6\n"


def test_a_verified_rerun_names_its_original_and_the_verdict(project):
    from rerun_helpers import rerun

    _, original = run_ok(project)
    res = rerun(project, original.info.run_id, "--verify")
    assert res.code == 0, res.describe()
    (new,) = {r.info.run_id for r in all_runs(embedded_uri(project))} - {original.info.run_id}
    run = reprotrain.load(new, cwd=project)
    assert run.rerun_of == original.info.run_id and run.reproduced is True and run.verdict == "reproduced"
    assert reprotrain.load(original.info.run_id, cwd=project).reproduced is None
    row = next(r for r in reprotrain.runs(cwd=project) if r.run_id == new)
    assert row.rerun_of == original.info.run_id and row.reproduced is True and row.verdict == "reproduced"


# --------------------------------------------------------------------------- runs


def test_runs_lists_newest_first_as_summaries(two_runs):
    rows = reprotrain.runs(cwd=two_runs.root)
    assert [r.run_id for r in rows] == [two_runs.b, two_runs.a]
    b, a = rows
    assert isinstance(a, reprotrain.RunSummary)
    assert a.commit == two_runs.sha_a and a.pinned and a.status == "FINISHED"
    assert a.overrides == ("model.lr=0.3",) and a.metrics["acc"] == 0.9
    assert a.start is not None and a.start.tzinfo is not None and b.start is not None and a.start <= b.start
    assert a.reproduced is None and a.rerun_of is None and a.parent is None and a.outputs == {}
    assert a.name and a.params["model.lr"] == "0.3" and b.params["model.lr"] == "0.5"
    assert a.end is not None and a.start <= a.end <= b.start
    assert a.data_digest and a.data_digest != b.data_digest


def test_runs_filters(two_runs):
    def ids(**filters):
        return [r.run_id for r in reprotrain.runs(cwd=two_runs.root, **filters)]

    assert ids(commit=two_runs.sha_a[:10]) == [two_runs.a]
    assert ids(commit=two_runs.sha_b) == [two_runs.b]
    assert ids(data_hash=two_runs.hashes_a[TRACKED_DATA_FILE]) == [two_runs.a]
    assert ids(data=TRACKED_DATA_FILE, data_hash=two_runs.hashes_a[TRACKED_DATA_DIR]) == []
    assert ids(data=f"./{TRACKED_DATA_DIR}") == [two_runs.b, two_runs.a]
    assert ids(status="finished") == [two_runs.b, two_runs.a]
    assert ids(status="FAILED") == []
    assert ids(limit=1) == [two_runs.b]
    assert ids(sweep=two_runs.a) == []
    assert ids(filter="params.`model.lr` = '0.3'") == [two_runs.a]
    assert ids(filter="metrics.acc > 0.5", commit=two_runs.sha_b) == [two_runs.b]
    assert ids(sort="start_time:asc") == [two_runs.a, two_runs.b]
    assert ids(sort="params.model.lr:desc") == [two_runs.b, two_runs.a]


def test_runs_of_an_unknown_experiment_raises_reprotrain_error(two_runs):
    with pytest.raises(reprotrain.ReprotrainError, match="no experiment 'nope'"):
        reprotrain.runs(experiment="nope", cwd=two_runs.root)
    with pytest.raises(reprotrain.UsageError):
        reprotrain.runs(limit=0, cwd=two_runs.root)
    with pytest.raises(reprotrain.UsageError):
        reprotrain.runs(filter="metrics.acc >>> 1", cwd=two_runs.root)


# --------------------------------------------------------------------------- as a user's script uses it


def test_a_script_in_the_project_uses_the_api(two_runs):
    script = (
        "import json, reprotrain\n"
        "run = reprotrain.load('last')\n"
        "with run.open('data/train.csv') as f:\n"
        "    text = f.read()\n"
        "print(json.dumps({'id': run.run_id, 'lr': run.config['model']['lr'], 'text': text,\n"
        "                  'runs': [r.run_id for r in reprotrain.runs(limit=5)], 'start': run.start.isoformat()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=two_runs.root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout)
    assert seen["id"] == two_runs.b and seen["lr"] == 0.5 and seen["text"] == NEW_CSV
    assert seen["runs"] == [two_runs.b, two_runs.a]
    assert datetime.fromisoformat(seen["start"]).tzinfo is not None


def test_importing_reprotrain_imports_no_heavy_library(tmp_path):
    probe = (
        "import sys, reprotrain\n"
        "assert callable(reprotrain.load) and callable(reprotrain.runs) and reprotrain.Run.open\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'mlflow', 'dvc', 'hydra', 'omegaconf', 'git'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout


# --------------------------------------------------------------------------- the public surface


def _documented() -> set[str]:
    """Every `reprotrain.NAME` in the first column of the tables of docs/reference.md's "Python API"."""
    text = REFERENCE.read_text(encoding="utf-8")
    assert "\n## Python API\n" in text, "docs/reference.md has no section `## Python API`"
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `reprotrain.")]
    return {name for cell in cells for name in re.findall(r"`reprotrain\.(\w+)", cell)}


def test_all_is_sorted_and_is_the_public_namespace():
    assert reprotrain.__all__ == sorted(reprotrain.__all__)
    public = {  # dir(): the API's names are imported when first used (reprotrain/__init__.py)
        name
        for name in dir(reprotrain)
        if not name.startswith("_")
        and not isinstance(getattr(reprotrain, name), types.ModuleType)
        and name != "annotations"
    }
    assert public | {"__version__"} == set(reprotrain.__all__)


def test_all_matches_the_reference():
    assert _documented() == set(reprotrain.__all__), "docs/reference.md, section Python API, drifted from __all__"


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    "value",
    [
        1764626400000,
        "1764626400000",
        "2025-12-01T22:00:00Z",
        "2025-12-01T22:00:00+00:00",
        "2025-12-01T23:00:00+01:00",
        "2025-12-01T22:00:00",
        "2025-12-01T22:00:00.000Z",
    ],
)
def test_times_from_epoch_milliseconds_or_iso_8601(value):
    when = to_datetime(value)
    assert when == datetime(2025, 12, 1, 22, 0, tzinfo=timezone.utc)
    assert when is not None and when.tzinfo is not None


def test_times_absent_or_unreadable():
    assert to_datetime(None) is None and to_datetime("") is None
    with pytest.raises(reprotrain.ReprotrainError):
        to_datetime("yesterday")
