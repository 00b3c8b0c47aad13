"""`reprotrain env RUN_ID` (issue 19, first part): a run's record names the Python environment its
code ran in with where every package came from, and prints it as a requirements file that parses,
with the package indexes in use and no credential."""

from __future__ import annotations

import json
import time

from helpers import git_status, run_cli
from packaging.requirements import Requirement

from reprotrain.launch import environment_memo


def test_env_prints_the_runs_environment_as_a_requirements_file(project):
    env = {"PIP_INDEX_URL": "https://alice:pw12345678@idx.example/simple"}
    res = run_cli("run", "model.lr=0.3", cwd=project, env=env)
    assert res.code == 0, res.describe()
    data = json.loads(run_cli("env", "last", "--json", cwd=project).out)
    environment = data["environment"]
    assert len(environment["digest"]) == 64 and environment["indexes"][0] == "https://idx.example/simple"
    assert environment["sources"]["reprotrain"]["editable"] is True  # the test venv installs it editable

    printed = run_cli("env", data["run_id"], cwd=project)
    assert printed.code == 0, printed.describe()
    text = printed.out
    assert "pw12345678" not in text and "pw12345678" not in json.dumps(environment)
    assert f"# digest {environment['digest']}" in text and "--index-url https://idx.example/simple" in text
    lines = [line.split("  #")[0] for line in text.splitlines() if line and not line.startswith(("#", "--"))]
    editable = [line for line in lines if line.startswith("-e ")]
    assert len(editable) == 1 and editable[0].startswith("-e file://"), editable
    pinned = {
        Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines if line not in editable
    }
    assert pinned["mlflow-skinny"].startswith("==") and pinned["dvc"].startswith("==")
    assert len(pinned) + 1 == len(environment["packages"])
    assert git_status(project) == ""


def test_env_of_a_sweep_or_an_unknown_run_is_one_line(project):
    res = run_cli("run", "-m", "seed=1,2", cwd=project)
    assert res.code == 0, res.describe()
    sweep = run_cli("env", "last", cwd=project)
    assert sweep.code == 2 and "is a sweep" in sweep.err and "reprotrain env JOB_RUN_ID" in sweep.err, sweep.describe()
    missing = run_cli("env", "0" * 32, cwd=project)
    assert missing.code != 0 and len(missing.err.strip().splitlines()) == 1, missing.describe()


def _distribution(site, version: str) -> None:
    """What an installer leaves for a distribution: its `.dist-info` with METADATA (others removed)."""
    import shutil

    for old in site.glob("rtprobe-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"rtprobe-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: rtprobe\nVersion: {version}\n")


def _recorded(project, site) -> str:
    time.sleep(2.2)  # a distribution changed within 2 s is read, never remembered
    res = run_cli("run", cwd=project, env={"PYTHONPATH": str(site)})
    assert res.code == 0, res.describe()
    return json.loads(run_cli("env", "last", "--json", cwd=project).out)["environment"]["packages"]["rtprobe"]


def test_the_environment_is_remembered_until_a_distribution_changes(project, tmp_path):
    """The launch remembers the distributions (reading every METADATA costs ≈0.1 s) by the stats of
    their metadata: proven by editing the memo, which the next launch then records; an upgrade, and
    a same-size edit of METADATA with its mtime put back, are read again."""
    import os

    site = tmp_path / "site"
    _distribution(site, "1.0")
    assert _recorded(project, site) == "1.0"
    path = environment_memo()  # the console script's Python is this one
    memo = json.loads(path.read_text())
    assert memo["packages"]["rtprobe"] == "1.0"
    memo["packages"]["rtprobe"] = "9.9"
    path.write_text(json.dumps(memo))
    assert _recorded(project, site) == "9.9", "the memo was not used"

    _distribution(site, "2.0")  # an upgrade: another .dist-info
    assert _recorded(project, site) == "2.0"
    metadata = site / "rtprobe-2.0.dist-info" / "METADATA"
    stat = metadata.stat()
    metadata.write_text(metadata.read_text().replace("2.0", "2.1"))  # same size
    os.utime(metadata, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # its mtime put back: its ctime tells
    assert _recorded(project, site) == "2.1"


def test_a_damaged_environment_memo_a_token_url_and_a_shadowed_distribution(project, tmp_path):
    """A memo with the right signature but content of the wrong shape is read afresh; a source URL's
    query string (a presigned URL's signature) is in neither the record nor the memo, which only its
    user may read; of one distribution twice on sys.path, the one Python imports is recorded."""
    import os
    import stat

    first, second = tmp_path / "first", tmp_path / "second"
    _distribution(first, "2.0")
    _distribution(second, "1.0")
    info = first / "rtprobe-2.0.dist-info"
    (info / "direct_url.json").write_text(
        json.dumps({"url": "https://files.example/rtprobe-2.0.whl?X-Amz-Signature=SeKrEt012345", "archive_info": {}})
    )
    path = f"{first}{os.pathsep}{second}"
    time.sleep(2.2)
    res = run_cli("run", cwd=project, env={"PYTHONPATH": path})
    assert res.code == 0, res.describe()
    environment = json.loads(run_cli("env", "last", "--json", cwd=project).out)["environment"]
    assert environment["packages"]["rtprobe"] == "2.0", "the first on sys.path is the one imported"
    assert environment["sources"]["rtprobe"]["url"] == "https://files.example/rtprobe-2.0.whl"
    memo = environment_memo()
    cache = memo.parent
    assert "SeKrEt" not in memo.read_text()
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700

    damaged = json.loads(memo.read_text())
    damaged["packages"] = ["rtprobe"]
    memo.write_text(json.dumps(damaged))
    res = run_cli("run", cwd=project, env={"PYTHONPATH": path})
    assert res.code == 0, res.describe()
    again = json.loads(run_cli("env", "last", "--json", cwd=project).out)["environment"]
    assert again["packages"] == environment["packages"]
